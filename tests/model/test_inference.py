"""Logits with and without flip test-time augmentation, whole photos under max_side, for tensors and arrays."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch

from seg.model.inference import class_ids, forward_size, photo_ids, photo_logits, predict_logits, resize

from helpers import ROOT


class ColumnNet(torch.nn.Module):
    """Logits that depend on the column: flipping the input flips them, unless the net is symmetric."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.shape[-1]
        ramp = torch.linspace(-1, 1, w).expand(*x.shape[:1], 1, x.shape[-2], w)
        return torch.cat([ramp, -ramp, x[:, :1]], 1)


def test_flip_tta_averages_the_flipped_logits():
    x = torch.randn(2, 3, 4, 6)
    net = ColumnNet()
    plain = predict_logits(net, x)
    torch.testing.assert_close(plain, net(x))
    tta = predict_logits(net, x, tta=True)
    torch.testing.assert_close(tta, (net(x) + net(x.flip(-1)).flip(-1)) / 2)
    # the column ramp cancels out (it is antisymmetric), the per-pixel channel stays
    torch.testing.assert_close(tta[:, :2], torch.zeros_like(tta[:, :2]))
    torch.testing.assert_close(tta[:, 2], x[:, 0])
    assert not tta.requires_grad


def test_flip_tta_on_arrays_equals_tta_on_tensors():
    x = torch.randn(2, 3, 4, 6)
    net = ColumnNet()
    as_array = predict_logits(lambda a: net(torch.from_numpy(np.ascontiguousarray(a))).numpy(), x.numpy(), tta=True)
    assert isinstance(as_array, np.ndarray)
    np.testing.assert_allclose(as_array, predict_logits(net, x, tta=True).numpy(), atol=1e-6)


@pytest.mark.parametrize(
    ("hw", "max_side", "expected"),
    [
        ((213, 320), None, (213, 320)),
        ((213, 320), 320, (213, 320)),  # not over max_side: untouched
        ((768, 1024), 512, (384, 512)),
        ((3001, 17), 1024, (1024, 6)),  # the aspect ratio is kept
        ((3001, 1), 240, (240, 1)),  # never below one pixel
        ((1, 1), 240, (1, 1)),
    ],
)
def test_forward_size_caps_the_long_side(hw, max_side, expected):
    assert forward_size(*hw, max_side) == expected


class RecordingNet(torch.nn.Module):
    """Per-pixel logits (a fixed linear map of the colour) that records the sizes it was run at."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, -1, 0.5]])
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(x.shape[-2:]))
        return torch.einsum("kc,nchw->nkhw", self.weight, x)


def test_photo_logits_shrink_large_photos_and_return_logits_at_their_size():
    # a smooth photo, which loses little when shrunk
    x = torch.nn.functional.interpolate(torch.rand(2, 3, 6, 8), size=(90, 120), mode="bilinear")
    net = RecordingNet()
    full = photo_logits(net, x)
    assert net.sizes == [(90, 120)] and full.shape == (2, 4, 90, 120)
    capped = photo_logits(net, x, max_side=60)
    assert net.sizes[1] == (45, 60) and capped.shape == (2, 4, 90, 120)
    # a per-pixel net commutes with resizing: shrinking then enlarging only smooths the logits
    assert (capped - full).abs().mean() < 0.02 and not torch.equal(capped, full)
    torch.testing.assert_close(capped, resize(net(resize(x, (45, 60), antialias=True)), (90, 120)))
    with_tta = photo_logits(net, x, tta=True, max_side=60)
    assert net.sizes[-2:] == [(45, 60), (45, 60)] and with_tta.shape == capped.shape


@pytest.mark.parametrize("size", [(30, 48), (101, 163), (7, 3), (1, 1)])
def test_array_resize_matches_torch(size):
    # arrays go through Pillow, tensors through torch: the same bilinear (antialiased when shrinking)
    x = np.random.default_rng(0).random((2, 3, 50, 80), dtype=np.float32)
    out = resize(x, size, antialias=True)
    assert out.shape == (2, 3, *size) and out.dtype == np.float32
    np.testing.assert_allclose(out, resize(torch.from_numpy(x), size, antialias=True).numpy(), atol=1e-5)


def test_photo_logits_on_arrays_equal_those_on_tensors():
    x = torch.rand(1, 3, 90, 120)
    net = RecordingNet()
    on_array = photo_logits(lambda a: net(torch.from_numpy(np.ascontiguousarray(a))).numpy(), x.numpy(), True, 60)
    np.testing.assert_allclose(on_array, photo_logits(net, x, True, 60).numpy(), atol=1e-5)
    logits = torch.randn(2, 23, 5, 7)
    np.testing.assert_array_equal(class_ids(logits.numpy()), class_ids(logits).numpy())
    np.testing.assert_array_equal(class_ids(logits).numpy(), logits.argmax(1).numpy())


def test_inference_on_arrays_imports_no_torch():
    code = (
        "import sys, numpy as np; from seg.model.inference import photo_logits, class_ids; "
        "x = np.ones((1, 3, 50, 30), np.float32); "
        "ids = class_ids(photo_logits(lambda a: np.concatenate([a, -a], axis=1), x, tta=True, max_side=20)); "
        "assert ids.shape == (1, 50, 30), ids.shape; sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("max_side", [None, 60, 17])
def test_photo_ids_are_the_argmax_of_photo_logits_class_by_class(max_side):
    x = torch.rand(2, 3, 90, 120)
    net = torch.nn.Conv2d(3, 23, 3, padding=1).eval()  # any net: 23 classes with real competition
    expected = class_ids(photo_logits(net, x, True, max_side))
    torch.testing.assert_close(photo_ids(net, x, True, max_side), expected, rtol=0, atol=0)
    on_array = photo_ids(
        lambda a: net(torch.from_numpy(np.ascontiguousarray(a))).detach().numpy(), x.numpy(), True, max_side
    )
    assert on_array.shape == (2, 90, 120) and (on_array == expected.numpy()).mean() > 0.999


def test_multi_scale_tta_averages_the_flipped_logits_of_each_scale():
    import torch.nn.functional as nnf

    from seg.model.inference import tta_scales

    net = ColumnNet()
    x = torch.randn(1, 3, 8, 12)
    # flip only is today's flip TTA, bit for bit
    torch.testing.assert_close(predict_logits(net, x, tta=[1.0]), predict_logits(net, x, tta=True), rtol=0, atol=0)

    def view(s: float) -> torch.Tensor:
        size = (round(8 * s), round(12 * s))
        xs = nnf.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=s < 1)
        flipped = (net(xs) + net(xs.flip(-1)).flip(-1)) / 2
        return nnf.interpolate(flipped, size=(8, 12), mode="bilinear", align_corners=False)

    expected = (view(0.5) + (net(x) + net(x.flip(-1)).flip(-1)) / 2 + view(1.5)) / 3
    torch.testing.assert_close(predict_logits(net, x, tta=[0.5, 1.0, 1.5]), expected)
    # the same views through NumPy (an ONNX Runtime session's arrays, resized by Pillow)
    numpy_net = lambda a: net(torch.from_numpy(np.ascontiguousarray(a))).numpy()  # noqa: E731
    a = x.numpy()

    def np_view(s: float) -> np.ndarray:
        xs = resize(a, (round(8 * s), round(12 * s)), antialias=s < 1)
        return resize((numpy_net(xs) + numpy_net(xs[..., ::-1])[..., ::-1]) / 2, (8, 12))

    np_expected = (np_view(0.5) + (numpy_net(a) + numpy_net(a[..., ::-1])[..., ::-1]) / 2 + np_view(1.5)) / 3
    np.testing.assert_allclose(predict_logits(numpy_net, a, tta=[0.5, 1.0, 1.5]), np_expected, rtol=1e-6, atol=1e-6)
    assert tta_scales(False) == () and tta_scales(True) == (1.0,) and tta_scales([0.75, 1]) == (0.75, 1.0)
    with pytest.raises(ValueError, match="positive factors"):
        tta_scales([0.0])


@pytest.mark.parametrize("length, tile, overlap", [(100, 100, 1 / 3), (50, 100, 0.25), (301, 96, 1 / 3), (97, 32, 0.0)])
def test_tile_spans_cover_the_side_with_equal_flush_windows(length, tile, overlap):
    from seg.model.inference import tile_spans

    spans = tile_spans(length, tile, overlap)
    covered = np.zeros(length, bool)
    for a, b in spans:
        covered[a:b] = True
    assert covered.all() and spans[0][0] == 0 and spans[-1][1] == length
    assert {b - a for a, b in spans} == {min(length, tile)}  # every window of one size, the last flush with the end
    stride = tile - round(tile * overlap)
    assert all(b[0] - a[0] <= stride for a, b in itertools.pairwise(spans))


@pytest.mark.parametrize("size, tile", [((90, 120), 32), ((70, 33), 32), ((40, 200), 64), ((64, 64), 64)])
def test_tiles_of_a_per_pixel_net_leave_no_seams(size, tile):
    # a per-pixel net needs no context: every window's logits are the whole photo's there, so averaged
    # overlaps must give back the whole-photo logits exactly, on tensors and on arrays
    x = torch.rand(2, 3, *size)
    net = RecordingNet()
    whole = photo_logits(net, x)
    tiled = photo_logits(net, x, max_side=16, tile=tile)  # max_side does not apply with tiles
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-6)
    assert all(max(s) <= tile for s in net.sizes[1:]) and (len(net.sizes) > 2) == (max(size) > tile)
    torch.testing.assert_close(photo_ids(net, x, tile=tile), class_ids(whole), rtol=0, atol=0)
    on_array = lambda a: net(torch.from_numpy(np.ascontiguousarray(a))).numpy()  # noqa: E731
    np.testing.assert_allclose(photo_logits(on_array, x.numpy(), tile=tile), whole.numpy(), atol=1e-6)
    np.testing.assert_array_equal(photo_ids(on_array, x.numpy(), tile=tile), class_ids(whole).numpy())


def test_tiled_ids_are_the_argmax_of_tiled_logits_with_tta():
    # a net with context (3x3): tiles differ from the whole photo near their edges, but the banded ids
    # are exactly the argmax of the averaged logits, flip TTA inside each window included
    x = torch.rand(1, 3, 150, 110)
    net = torch.nn.Conv2d(3, 23, 3, padding=1).eval()
    logits = photo_logits(net, x, tta=True, tile=48, tile_overlap=0.5)
    torch.testing.assert_close(
        photo_ids(net, x, tta=True, tile=48, tile_overlap=0.5), class_ids(logits), rtol=0, atol=0
    )
    # and away from the windows' edges (a pixel of context), they are the whole photo's logits
    whole = photo_logits(net, x, tta=True)
    assert (class_ids(logits) == class_ids(whole)).float().mean() > 0.95


@pytest.mark.parametrize("tile, overlap", [(31, 0.3), (True, 0.3), ("256", 0.3), (64, 0.9), (64, -0.1)])
def test_a_bad_tile_setting_is_named(tile, overlap):
    from seg.model.inference import tile_overlap_problem, tile_problem

    assert tile_problem(tile) or tile_overlap_problem(overlap)
    assert tile_problem(None) is None and tile_problem(32) is None and tile_overlap_problem(0.5) is None
