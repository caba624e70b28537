"""The LightningDataModule: batches, deterministic val/test, augmentation on the training split only."""

from __future__ import annotations

import torch

from seg.data.archive import ARCHIVE_DIR
from seg.data.dataset import MSRCDataset
from seg.data.msrc_data import MSRCDataModule
from seg.data.transforms import EvalPreset, TrainPreset, center_crop

from helpers import CROP, SPLIT_COUNTS


def test_datamodule_batches(archive_url, data_dir):
    dm = MSRCDataModule(data_dir=str(data_dir), url=archive_url, batch_size=4, crop_size=CROP)
    dm.prepare_data()
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, CROP, CROP) and y.shape == (4, CROP, CROP)
    assert len(dm.val_dataloader().dataset) == SPLIT_COUNTS["val"]
    dm.setup("test")
    # val/test are deterministic: two passes give identical batches
    a = [b[0] for b in dm.test_dataloader()]
    c = [b[0] for b in dm.test_dataloader()]
    assert all(torch.equal(p, q) for p, q in zip(a, c))


def test_datamodule_augments_train_only_by_default_and_augment_false_turns_it_off(data_dir, archive_url):
    dm = MSRCDataModule(str(data_dir), url=archive_url, crop_size=CROP)  # augment: on by default
    dm.setup("fit")
    dm.setup("test")
    assert isinstance(dm.datasets["train"].transform, TrainPreset)
    for split in ("val", "test"):
        ds = dm.datasets[split]
        assert isinstance(ds.transform, EvalPreset)
        x1, y1 = ds[0]
        x2, y2 = ds[0]
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
        ref_x, ref_y = MSRCDataset(data_dir / ARCHIVE_DIR, split, EvalPreset(CROP))[0]
        assert torch.equal(x1, ref_x) and torch.equal(y1, ref_y)
    torch.manual_seed(0)
    train = dm.datasets["train"]
    samples = [train[0] for _ in range(4)]
    assert all(x.shape == (3, CROP, CROP) and x.dtype == torch.float32 for x, _ in samples)
    assert all(y.shape == (CROP, CROP) and y.dtype == torch.int64 for _, y in samples)
    assert len({y.numpy().tobytes() for _, y in samples}) > 1
    plain = MSRCDataModule(str(data_dir), url=archive_url, crop_size=CROP, augment=False)
    plain.setup("fit")
    assert isinstance(plain.datasets["train"].transform, EvalPreset)
    img = torch.from_numpy(plain.datasets["train"].images[0]).permute(2, 0, 1)
    tgt = torch.from_numpy(plain.datasets["train"].targets[0]).long()[None]
    cx, cy = center_crop(img, tgt, CROP)
    x, y = plain.datasets["train"][0]
    assert torch.equal(y, cy[0]) and torch.allclose(x[0], (cx[0].float() / 255 - 0.485) / 0.229)


def test_class_pixel_counts_of_the_training_split(data_dir):
    dm = MSRCDataModule(str(data_dir), url="unused", crop_size=CROP)
    counts = dm.class_pixel_counts("train")
    root = data_dir / ARCHIVE_DIR
    assert counts.dtype == torch.int64 and counts.tolist() == MSRCDataset(root, "train").class_pixel_counts(23).tolist()
    assert counts.sum() > 0 and (counts == 0).any()  # 6 images of 4 classes each: not every class occurs
