"""data.augment: joint image + mask augmentation (transforms.v2) keeps image and target aligned."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CROP

from seg.data import ARCHIVE_DIR, PALETTE, VOID, JointAugment, MSRCDataModule, MSRCDataset, center_crop

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
        (m[1:-1, 1:-1] == m[:-2, 1:-1]) & (m[1:-1, 1:-1] == m[2:, 1:-1])
        & (m[1:-1, 1:-1] == m[1:-1, :-2]) & (m[1:-1, 1:-1] == m[1:-1, 2:])
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


def test_datamodule_augments_train_only_and_default_is_off(data_dir, archive_url):
    dm = MSRCDataModule(str(data_dir), url=archive_url, crop_size=CROP, augment=True)
    dm.setup("fit")
    dm.setup("test")
    assert dm.datasets["train"].augment is not None
    for split in ("val", "test"):
        ds = dm.datasets[split]
        assert ds.augment is None
        x1, y1 = ds[0]
        x2, y2 = ds[0]
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
        ref_x, ref_y = MSRCDataset(data_dir / ARCHIVE_DIR, split, crop_size=CROP)[0]
        assert torch.equal(x1, ref_x) and torch.equal(y1, ref_y)
    torch.manual_seed(0)
    train = dm.datasets["train"]
    samples = [train[0] for _ in range(4)]
    assert all(x.shape == (3, CROP, CROP) and x.dtype == torch.float32 for x, _ in samples)
    assert all(y.shape == (CROP, CROP) and y.dtype == torch.int64 for _, y in samples)
    assert len({y.numpy().tobytes() for _, y in samples}) > 1
    default = MSRCDataModule(str(data_dir), url=archive_url, crop_size=CROP)
    default.setup("fit")
    assert default.datasets["train"].augment is None
    img = torch.from_numpy(default.datasets["train"].images[0]).permute(2, 0, 1)
    tgt = torch.from_numpy(default.datasets["train"].targets[0]).long()[None]
    cx, cy = center_crop(img, tgt, CROP)
    x, y = default.datasets["train"][0]
    assert torch.equal(y, cy[0]) and torch.allclose(x[0], (cx[0].float() / 255 - 0.485) / 0.229)


def test_data_config_keeps_augmentation_off_by_default():
    from omegaconf import OmegaConf

    from conftest import ROOT

    cfg = OmegaConf.load(ROOT / "conf" / "data" / "msrc.yaml")
    assert cfg.augment is False
    assert list(cfg.augment_scale) == [0.75, 1.25]
