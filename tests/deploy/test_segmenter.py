"""The Python API: Segmenter from a checkpoint and from exported files, any photo source at its own
size, TTA and max_side, pictures, clear errors, no torch through ONNX, the same ids as seg.eval."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seg import Segmenter
from seg.data.archive import ARCHIVE_DIR
from seg.data.dataset import MSRCDataset
from seg.data.labels import CLASS_NAMES, PALETTE
from seg.data.photos import PhotoError
from seg.data.transforms import center_crop
from seg.deploy.metadata import ModelFileError
from seg.eval import evaluate
from seg.model.metrics import SplitScore

from helpers import ROOT, compose_config

SIZES = [(1, 1), (17, 301), (213, 320), (64, 64), (3001, 17)]


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def ckpt(tiny_run) -> Path:
    return tiny_run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def segmenter(ckpt) -> Segmenter:
    return Segmenter.from_checkpoint(ckpt)


@pytest.mark.parametrize("hw", SIZES)
def test_predict_gives_ids_at_the_photo_size(segmenter, hw):
    ids = segmenter.predict(photo(*hw))
    assert ids.shape == hw and ids.dtype == np.uint8 and ids.max() < len(CLASS_NAMES)


def test_class_names_palette_and_metadata(segmenter):
    assert segmenter.class_names == CLASS_NAMES and segmenter.backend == "torch"
    np.testing.assert_array_equal(segmenter.palette, PALETTE)
    assert segmenter.metadata["seg.normalization"]["applied_in_graph"] is True
    assert segmenter.metadata["seg.trained_crop_size"] == 64  # the tiny run's crop


def test_a_path_a_pil_image_and_an_array_give_the_same_ids(segmenter, tmp_path):
    p = photo(40, 70, seed=3)
    Image.fromarray(p).save(tmp_path / "p.png")
    ids = segmenter.predict(p)
    np.testing.assert_array_equal(segmenter.predict(tmp_path / "p.png"), ids)
    np.testing.assert_array_equal(segmenter.predict(str(tmp_path / "p.png")), ids)
    np.testing.assert_array_equal(segmenter.predict(Image.fromarray(p)), ids)
    np.testing.assert_array_equal(segmenter.predict_batch([p, p])[1], ids)


def test_tta_averages_the_flipped_photo(ckpt, segmenter):
    p = photo(50, 60, seed=4)
    tta = Segmenter.from_checkpoint(ckpt, tta=True)
    expected = (segmenter.logits([p]) + segmenter.logits([p[:, ::-1].copy()])[..., ::-1]) / 2
    np.testing.assert_allclose(tta.logits([p]), expected, atol=1e-5)
    np.testing.assert_array_equal(tta.predict(p), expected[0].argmax(0))


def test_with_tta_shares_the_loaded_model(ckpt, segmenter):
    p = photo(50, 60, seed=4)
    flipped = segmenter.with_tta(True)
    assert flipped.tta is True and segmenter.tta is False and flipped._backend is segmenter._backend
    np.testing.assert_array_equal(flipped.predict(p), Segmenter.from_checkpoint(ckpt, tta=True).predict(p))
    with pytest.raises(ValueError, match="tta scales must be positive"):
        segmenter.with_tta([0.0])


def test_max_side_runs_large_photos_shrunk(ckpt):
    p = photo(90, 120, seed=5)
    full, capped = Segmenter.from_checkpoint(ckpt, max_side=None), Segmenter.from_checkpoint(ckpt, max_side=60)
    assert capped.logits([p]).shape == full.logits([p]).shape == (1, 23, 90, 120)
    assert not np.allclose(capped.logits([p]), full.logits([p]))
    # within max_side nothing changes
    np.testing.assert_array_equal(Segmenter.from_checkpoint(ckpt, max_side=120).logits([p]), full.logits([p]))
    with pytest.raises(ValueError, match="max_side"):
        Segmenter.from_checkpoint(ckpt, max_side=0)


def test_pictures(segmenter):
    p = photo(30, 40)
    ids = segmenter.predict(p)
    np.testing.assert_array_equal(segmenter.colorize(ids), PALETTE[ids])
    picture = segmenter.overlay(p, ids)
    assert picture.width > 40 and picture.height >= 30
    with pytest.raises(PhotoError, match="not the photo's size"):
        segmenter.overlay(p, ids[:, :-1])
    with pytest.raises(PhotoError, match="one size"):
        segmenter.predict_batch([p, p[:-1]])


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_models_predict_like_the_checkpoint(exported, ckpt, segmenter, fmt):
    other = Segmenter.load(exported[fmt])
    assert other.backend == {"onnx": "onnxruntime", "torchscript": "torchscript"}[fmt]
    assert other.class_names == CLASS_NAMES and np.array_equal(other.palette, PALETTE)
    for i, hw in enumerate(SIZES):
        p = photo(*hw, seed=i)
        a, b = segmenter.logits([p]), other.logits([p])
        assert b.shape == a.shape == (1, 23, *hw)
        assert np.abs(a - b).max() < 1e-3
        assert (a.argmax(1) == b.argmax(1)).mean() >= 0.999
        assert other.predict(p).shape == hw
    # TTA and max_side go through the same shared code for every backend
    p = photo(90, 150, seed=9)
    ref, other = (Segmenter.load(f, tta=True, max_side=100) for f in (ckpt, exported[fmt]))
    assert (ref.predict(p) == other.predict(p)).mean() >= 0.999


def test_onnx_backend_needs_no_torch(exported, tmp_path):
    Image.fromarray(photo(17, 301)).save(tmp_path / "p.webp", lossless=True)
    code = f"""
import sys
from seg import Segmenter
s = Segmenter.load({str(exported["onnx"])!r}, tta=True, max_side=100)
ids = s.predict({str(tmp_path / "p.webp")!r})
assert ids.shape == (17, 301) and ids.max() < 23, ids.shape
s.overlay({str(tmp_path / "p.webp")!r}, ids).save({str(tmp_path / "o.jpg")!r})
print("torch imported:", "torch" in sys.modules)
sys.exit(1 if "torch" in sys.modules else 0)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "torch imported: False" in proc.stdout and (tmp_path / "o.jpg").is_file()


def test_bad_model_files_are_clear_errors(tmp_path, exported):
    with pytest.raises(ModelFileError, match="Model file not found"):
        Segmenter.load(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match=r"junk\.onnx is not an ONNX model"):
        Segmenter.load(tmp_path / "junk.onnx")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match=r"junk\.pt is not a TorchScript model"):
        Segmenter.load(tmp_path / "junk.pt")
    with pytest.raises(ModelFileError, match=r"unknown model file type '\.h5'"):
        Segmenter.load(tmp_path / "model.h5")
    # a TorchScript file not written by seg.export has no metadata
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(tmp_path / "plain.pt"))
    with pytest.raises(ModelFileError, match="has no seg metadata"):
        Segmenter.load(tmp_path / "plain.pt")


def segmenter_vs_eval(ckpt: Path, data_dir: Path, url: str, tmp_path: Path, moved: float = 0.0) -> None:
    """seg.eval on the val split (CenterCrop 240) and Segmenter.predict on the same crops: equal ids, but
    for at most a share ``moved`` of the pixels (batch 8 vs batch 1 sums in another order: near-ties flip)."""
    metrics = evaluate(
        compose_config(
            "eval",
            f"ckpt_path={ckpt}",
            "split=val",
            "data.crop_size=240",
            f"data.url={url}",
            f"paths.data_dir={data_dir}",
            f"paths.output_dir={tmp_path / 'eval'}",
        )
    )
    segmenter = Segmenter.from_checkpoint(ckpt)
    crops = MSRCDataset(data_dir / ARCHIVE_DIR, "val", transform=lambda image, target: center_crop(image, target, 240))
    scored = SplitScore()
    for i in range(len(crops)):
        image, target = crops[i]  # uint8 3x240x240 (padded with black), 1x240x240 ids
        ids = segmenter.predict(image.permute(1, 2, 0).numpy())
        assert ids.shape == (240, 240)
        scored.update(torch.from_numpy(ids.astype(np.int64))[None], target)
    mine = scored.compute()
    assert mine["num_images"] == metrics["num_images"] == len(crops)
    # every pixel's class is the same (up to `moved`): the confusion matrices agree count for count
    diff = np.abs(np.array(mine["confusion_matrix"]) - np.array(metrics["confusion_matrix"])).sum()
    assert diff <= 2 * moved * len(crops) * 240 * 240  # a pixel that moves changes two cells
    assert mine["acc"] == pytest.approx(metrics["acc"], abs=moved)


def test_segmenter_gives_the_ids_of_seg_eval(ckpt, data_dir, archive_url, tmp_path):
    segmenter_vs_eval(ckpt, data_dir, archive_url, tmp_path)


def test_segmenter_gives_the_ids_of_seg_eval_on_the_real_val_split(real_run, real_env, tmp_path):
    run, data = real_run
    # a trained net has near-ties: in one run 1 pixel of the 3.4 million changed class between the batchings
    segmenter_vs_eval(run / "checkpoints" / "last.ckpt", data, real_env["SEG_DATA_URL"], tmp_path, moved=1e-5)


def seam_rows_and_columns(hw: tuple[int, int], tile: int, overlap: float, width: int = 2) -> np.ndarray:
    """A mask of the pixels within ``width`` of an inner edge of a tile window."""
    from seg.model.inference import tile_spans

    mask = np.zeros(hw, bool)
    for axis, length in enumerate(hw):
        for a, b in tile_spans(length, tile, overlap):
            for edge in (a, b):
                if 0 < edge < length:
                    index = [slice(None), slice(None)]
                    index[axis] = slice(max(edge - width, 0), edge + width)
                    mask[tuple(index)] = True
    return mask


def test_a_photo_of_one_tile_is_predicted_as_without_tiles(ckpt):
    plain, tiled = Segmenter.from_checkpoint(ckpt, max_side=None), Segmenter.from_checkpoint(ckpt, tile=64)
    for hw in [(64, 64), (40, 64), (3, 5)]:
        p = photo(*hw, seed=3)
        np.testing.assert_array_equal(tiled.logits([p]), plain.logits([p]))
    # a photo larger than max_side but within the tile: at its own size, not shrunk
    p = photo(60, 64, seed=4)
    np.testing.assert_array_equal(Segmenter.from_checkpoint(ckpt, max_side=32, tile=64).logits([p]), plain.logits([p]))
    with pytest.raises(ValueError, match="tile"):
        Segmenter.from_checkpoint(ckpt, tile=8)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_tiles_leave_no_seams_on_every_backend(exported, ckpt, data_dir, fmt):
    # a real photo of the val split, enlarged 3x: tiled against one whole-photo pass, which fits here
    val = MSRCDataset(data_dir / ARCHIVE_DIR, "val")
    small = Image.fromarray(val.raw(0)[0])
    p = np.asarray(small.resize((small.width * 3, small.height * 3), Image.Resampling.BILINEAR))
    tile, overlap = 64, 1 / 3
    whole = Segmenter.from_checkpoint(ckpt, max_side=None).predict(p)
    ref = Segmenter.from_checkpoint(ckpt, tile=tile, tile_overlap=overlap)
    other = Segmenter.load(exported[fmt], tile=tile, tile_overlap=overlap)
    tiled = ref.predict(p)
    seams = seam_rows_and_columns(p.shape[:2], tile, overlap)
    assert seams.any() and (~seams).any()
    agree = tiled == whole
    assert agree.mean() > 0.95 and agree[seams].mean() > 0.9, (agree.mean(), agree[seams].mean())
    assert (other.predict(p) == tiled).mean() >= 0.999  # the same shared code on every backend
