"""Each epoch's order, per-sample seeds and training crop follow from (seed, epoch) alone."""

from __future__ import annotations

import torch

from seg.data.msrc_data import MSRCDataModule
from seg.data.sampling import EpochSampler

from helpers import CROP


def test_each_epoch_is_a_permutation_fixed_by_seed_and_epoch():
    s = EpochSampler(10, seed=3)
    s.set_epoch(0)
    a = list(s)
    assert sorted(i for i, _ in a) == list(range(10)) and len({seed for _, seed in a}) == 10
    assert list(s) == a  # the same epoch again: the same order and seeds
    s.set_epoch(1)
    assert list(s) != a
    other = EpochSampler(10, seed=4)
    assert list(other) != a
    torch.manual_seed(123)  # the global random state plays no part
    s.set_epoch(0)
    assert list(s) == a and len(s) == 10


def test_resume_skips_what_the_interrupted_epoch_did_once():
    s = EpochSampler(10, seed=3)
    s.set_epoch(2)
    full = list(s)
    s.resume(epoch=2, samples_done=4)
    assert list(s) == full[4:]
    assert list(s) == full  # only once
    s.resume(epoch=1, samples_done=4)  # another epoch's progress does not shorten this one
    assert list(s) == full


def test_crop_sizes_per_epoch_and_the_last_for_the_rest():
    s = EpochSampler(4, seed=0, crop_sizes=[64, 96])
    crops = []
    for epoch in range(4):
        s.set_epoch(epoch)
        crops.append({c for _, _, c in s})
    assert crops == [{64}, {96}, {96}, {96}]


def test_training_batches_follow_the_schedule_and_do_not_depend_on_the_global_rng(data_dir):
    dm = MSRCDataModule(str(data_dir), crop_size=CROP, batch_size=3, augment=True, train_crop_sizes=[32, CROP])
    dm.setup("fit")
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(0)
    torch.manual_seed(0)
    x0, y0 = next(iter(loader))
    torch.manual_seed(1)
    x0b, y0b = next(iter(loader))
    assert x0.shape == (3, 3, 32, 32) and torch.equal(x0, x0b) and torch.equal(y0, y0b)
    loader.sampler.set_epoch(1)
    x1, _ = next(iter(loader))
    assert x1.shape == (3, 3, CROP, CROP)
    assert dm.datasets["val"][0][0].shape == (3, CROP, CROP)  # evaluation keeps crop_size
