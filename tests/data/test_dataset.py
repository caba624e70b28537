"""One split as a Dataset: shapes, void padding, agreement with the files, the in-memory cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from seg.data.archive import ARCHIVE_DIR
from seg.data.dataset import MSRCDataset, load_split
from seg.data.labels import PALETTE, decode_target
from seg.data.splits import read_split
from seg.data.transforms import EvalPreset
from seg.deploy.pictures import colorize

from helpers import CROP, SPLIT_COUNTS


def test_dataset_shapes_dtypes_and_void_padding(data_dir):
    ds = MSRCDataset(data_dir / ARCHIVE_DIR, "train", EvalPreset(CROP, normalize=False))
    assert len(ds) == SPLIT_COUNTS["train"]
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, CROP, CROP) and x.dtype == torch.float32
        assert y.shape == (CROP, CROP) and y.dtype == torch.int64
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert set(y.unique().tolist()) <= set(range(-1, 23))
    # Sample 3 is 48x40: all of the padding is void in the target and black in the image.
    x, y = ds[3]
    assert (y[:12] == -1).all() and (y[:, :8] == -1).all()
    assert (x[:, :12] == 0).all()
    assert (y[12:-12, 8:-8] >= 0).any()


def test_dataset_target_agrees_with_the_colour_file(data_dir):
    ds = MSRCDataset(data_dir / ARCHIVE_DIR, "val", EvalPreset(crop_size=None, normalize=False))
    name = ds.names[0]
    rgb = np.asarray(Image.open(data_dir / ARCHIVE_DIR / "targets" / f"{name}_GT.bmp").convert("RGB"))
    _, y = ds[0]
    np.testing.assert_array_equal(colorize(y.numpy(), PALETTE), rgb)


def test_default_transform_is_the_course_crop_with_imagenet_normalisation(data_dir):
    default = MSRCDataset(data_dir / ARCHIVE_DIR, "test")[0][0]
    raw = MSRCDataset(data_dir / ARCHIVE_DIR, "test", EvalPreset(240, normalize=False))[0][0]
    assert default.shape == (3, 240, 240)
    torch.testing.assert_close(default[1], (raw[1] - 0.456) / 0.224)


def test_split_is_decoded_once_per_process(data_dir):
    root = str((data_dir / ARCHIVE_DIR).resolve())
    assert load_split(root, "train")[1] is load_split(root, "train")[1]
    a = MSRCDataset(data_dir / ARCHIVE_DIR, "train", EvalPreset(CROP))
    b = MSRCDataset(data_dir / ARCHIVE_DIR, "train", EvalPreset(CROP))
    assert a.images is b.images


def test_uncached_dataset_reads_the_same_samples(data_dir):
    cached = MSRCDataset(data_dir / ARCHIVE_DIR, "val", EvalPreset(CROP))
    fresh = MSRCDataset(data_dir / ARCHIVE_DIR, "val", EvalPreset(CROP), cache=False)
    assert fresh.images is None and len(fresh) == len(cached) == 3
    for i in range(len(cached)):
        for a, b in zip(cached[i], fresh[i]):
            torch.testing.assert_close(a, b)


def test_class_pixel_counts_match_the_targets_on_disk(data_dir):
    root = data_dir / ARCHIVE_DIR
    expected = np.zeros(23, np.int64)
    for name in read_split(root / "train.txt"):
        ids = decode_target(np.asarray(Image.open(root / "targets" / f"{name}_GT.bmp").convert("RGB")))
        expected += np.bincount(ids[ids >= 0], minlength=23)
    for cache in (True, False):
        assert MSRCDataset(root, "train", cache=cache).class_pixel_counts(23).tolist() == expected.tolist()


def test_unknown_split_is_rejected(data_dir):
    with pytest.raises(ValueError, match="split must be one of"):
        MSRCDataset(data_dir / ARCHIVE_DIR, "training")
