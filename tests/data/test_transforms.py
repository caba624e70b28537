"""The presets: the course centre crop, and joint image + mask augmentation (transforms.v2) that keeps
image and target aligned."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf

from seg.data.labels import PALETTE, VOID
from seg.data.transforms import EvalPreset, JointAugment, TrainPreset, center_crop

WHITE = np.array([255, 255, 255], np.uint8)  # the photo's colour of void pixels (padding is black)
COLOURS = np.concatenate([PALETTE, WHITE[None]]).astype(np.int64)  # row 23 = void


def colour_coded_sample(h: int = 70, w: int = 110, block: int = 10, seed: int = 0):
    """A photo whose colour is its label: blocks of random classes (and some void), no black."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(-1, len(PALETTE), size=(-(-h // block), -(-w // block)))
    ids = ids.repeat(block, 0).repeat(block, 1)[:h, :w]
    image = np.where((ids == VOID)[..., None], WHITE, PALETTE[ids.clip(0)])
    return torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(ids)[None]


def decode_colours(image: torch.Tensor) -> torch.Tensor:
    """Nearest colour of COLOURS for each pixel -> label (void for white)."""
    px = image.permute(1, 2, 0).reshape(-1, 1, 3).long()
    nearest = ((px - torch.from_numpy(COLOURS)[None]) ** 2).sum(-1).argmin(-1)
    labels = torch.where(nearest == len(PALETTE), VOID, nearest)
    return labels.reshape(image.shape[1:])


def interior(mask: torch.Tensor) -> torch.Tensor:
    """Pixels whose 4 neighbours have the same label (bilinear resizing blends colours at edges)."""
    m = mask
    same = torch.ones_like(m, dtype=torch.bool)
    same[1:-1, 1:-1] = (
        (m[1:-1, 1:-1] == m[:-2, 1:-1])
        & (m[1:-1, 1:-1] == m[2:, 1:-1])
        & (m[1:-1, 1:-1] == m[1:-1, :-2])
        & (m[1:-1, 1:-1] == m[1:-1, 2:])
    )
    same[[0, -1], :] = False
    same[:, [0, -1]] = False
    return same


@pytest.mark.parametrize("seed", range(12))
def test_colour_encoded_labels_stay_aligned_and_padding_is_void(seed):
    image, target = colour_coded_sample(seed=seed)
    torch.manual_seed(seed)
    aug = JointAugment(96, scale=(0.6, 1.4), jitter=0.0)  # 70 px high: padded at most scales
    out_img, out_mask = aug(image, target)
    assert out_img.shape == (3, 96, 96) and out_img.dtype == torch.uint8
    assert out_mask.shape == (1, 96, 96) and out_mask.dtype == torch.int64
    mask = out_mask[0]
    assert set(mask.unique().tolist()) <= set(target.unique().tolist()) | {VOID}
    padding = (out_img == 0).all(0)  # the photo has no black pixel: black is padding
    assert (mask[padding] == VOID).all(), "padding must be void, never class 0"
    inside = interior(mask) & ~padding
    assert inside.sum() > 500
    agree = (decode_colours(out_img)[inside] == mask[inside]).float().mean().item()
    assert agree > 0.99, agree


def test_augmentation_is_random_scales_crops_and_flips():
    image, target = colour_coded_sample(h=150, w=200, seed=1)
    aug = JointAugment(96, scale=(0.75, 1.25), jitter=0.0)
    torch.manual_seed(0)
    masks = [aug(image, target)[1] for _ in range(8)]
    assert len({m.numpy().tobytes() for m in masks}) == 8  # different crops every time
    # a crop of the full photo, not only its centre: corner labels of the photo are reached
    corner = target[0, :20, :20].unique()
    assert any(bool(torch.isin(m, corner).any()) for m in masks)


def test_colour_jitter_changes_the_image_only():
    image, target = colour_coded_sample(seed=2)
    torch.manual_seed(5)
    plain_img, plain_mask = JointAugment(96, jitter=0.0)(image, target)
    torch.manual_seed(5)  # jitter is the last step: the same geometry is drawn first
    jit_img, jit_mask = JointAugment(96, jitter=0.3)(image, target)
    assert torch.equal(plain_mask, jit_mask)
    assert not torch.equal(plain_img, jit_img)


def test_centre_crop_pads_with_black_and_void_and_crops_the_middle():
    image = torch.full((3, 40, 100), 7, dtype=torch.uint8)
    target = torch.arange(100).repeat(40, 1)[None]
    img, tgt = center_crop(image, target, 64)
    assert img.shape == (3, 64, 64) and tgt.shape == (1, 64, 64)
    assert (img[:, :12] == 0).all() and (img[:, 12:52] == 7).all()  # 24 rows of padding, split 12 / 12
    assert (tgt[0, :12] == VOID).all() and (tgt[0, 52:] == VOID).all()
    assert tgt[0, 20].tolist() == list(range(18, 82))  # the middle 64 of 100 columns


def test_eval_preset_crops_and_normalises_train_preset_augments():
    image, target = colour_coded_sample(h=70, w=110)
    x, y = EvalPreset(64, normalize=False)(image, target)
    ref_img, ref_tgt = center_crop(image, target, 64)
    assert torch.equal(y, ref_tgt[0]) and torch.equal(x, ref_img.float() / 255)
    xn, _ = EvalPreset(64, normalize=True)(image, target)
    torch.testing.assert_close(xn[2], (x[2] - 0.406) / 0.225)
    whole, whole_y = EvalPreset(None, normalize=False)(image, target)
    assert whole.shape == (3, 70, 110) and torch.equal(whole_y, target[0])
    torch.manual_seed(0)
    xa, ya = TrainPreset(64, normalize=False, jitter=0.0)(image, target)
    torch.manual_seed(0)
    ref_img, ref_tgt = JointAugment(64, jitter=0.0)(image, target)
    assert torch.equal(ya, ref_tgt[0]) and torch.equal(xa, ref_img.float() / 255)


def test_the_soft_targets_move_with_the_photo_and_pad_with_no_teacher():
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    target = torch.randint(-1, 5, (1, 50, 70))
    soft = nnf.one_hot(target[0].clamp(0), 5).permute(2, 0, 1).to(torch.uint8) * 255
    soft[:, target[0] < 0] = 0  # no teacher on void pixels here: the padding's value
    preset = TrainPreset(64, scale=(0.5, 1.6))
    for _ in range(8):
        x, y, s = preset(image, target, soft=soft)
        covered = s.sum(0) > 0
        assert s.shape == (5, 64, 64) and x.shape == (3, 64, 64)
        assert torch.equal(covered, y >= 0) and torch.equal(s.argmax(0)[covered], y[covered])
    x, y, s = EvalPreset(64)(image, target, soft=soft)  # padded to 64 rows: no teacher there
    assert torch.equal(s.sum(0) > 0, y >= 0)
    assert len(TrainPreset(64)(image, target)) == 2  # without soft targets, samples are as before
