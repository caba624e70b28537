"""Split lists, seeded splits and k-fold cross-validation: folds partition train+val exactly, are
stratified by each item's rarest class, reproducible, and never touch test."""

from __future__ import annotations

import re

import pytest

from seg.data.msrc_data import MSRCDataModule
from seg.data.splits import SPLITS, fold_of, read_split, seeded_split

from helpers import CROP, SPLIT_COUNTS


def test_split_files_tolerate_crlf_blank_lines_and_suffixes(tmp_path):
    (tmp_path / "train.txt").write_bytes(b"a.bmp\r\nb\r\n\r\n  c.png  \n")
    assert read_split(tmp_path / "train.txt", (".bmp", ".png")) == ["a", "b", "c"]


def test_a_seeded_split_is_a_partition_that_depends_on_the_seed_only():
    names = [f"n{i}" for i in range(20)]
    split = seeded_split(names, [0.7, 0.2, 0.1], seed=3)
    assert sorted(n for s in SPLITS for n in split[s]) == sorted(names)
    assert [len(split[s]) for s in SPLITS] == [14, 4, 2]
    assert seeded_split(list(reversed(names)), [0.7, 0.2, 0.1], seed=3) == split  # order of the pool: irrelevant
    assert seeded_split(names, [0.7, 0.2, 0.1], seed=4) != split


def test_folds_are_stratified_by_the_rarest_class():
    names = [f"n{i:02d}" for i in range(30)]
    classes = {n: [0, 1] for n in names}
    rare = names[::6]  # 5 items show the rare class 9
    for n in rare:
        classes[n] = [0, 9]
    folds = fold_of(names, classes, 5, seed=0)
    assert sorted(folds) == names and set(folds.values()) == set(range(5))
    assert sorted(folds[n] for n in rare) == [0, 1, 2, 3, 4]  # one rare item in every fold
    assert [list(folds.values()).count(k) for k in range(5)] == [6] * 5
    assert fold_of(names, classes, 5, seed=0) == folds and fold_of(names, classes, 5, seed=1) != folds


def test_folds_of_the_datamodule_partition_train_and_val_and_leave_test(data_dir):
    k = 3
    plain = MSRCDataModule(str(data_dir), url="unused", crop_size=CROP)
    pool = sorted(plain.split_items("train") + plain.split_items("val"))
    vals = []
    for fold in range(k):
        dm = MSRCDataModule(str(data_dir), url="unused", crop_size=CROP, folds=k, fold=fold)
        train, val, test = (dm.items(s) for s in SPLITS)
        assert sorted(train + val) == pool and not set(train) & set(val)
        assert test == plain.items("test")
        vals.append(val)
        assert MSRCDataModule(str(data_dir), url="unused", folds=k, fold=fold).items("val") == val  # reproducible
    assert sorted(n for v in vals for n in v) == pool  # every image in exactly one fold's val
    assert len(pool) == SPLIT_COUNTS["train"] + SPLIT_COUNTS["val"]
    assert MSRCDataModule(str(data_dir), url="unused", folds=k, fold=0, fold_seed=1).items("val") != vals[0]


def test_a_fold_outside_the_folds_is_refused(data_dir):
    """The datamodule refuses what the settings check refuses, in the same words (one rule, folds_problem)."""
    from helpers import compose_config, entry_problems

    with pytest.raises(ValueError, match=re.escape("data.fold=3: must be in 0..2 (data.folds=3)")):
        MSRCDataModule(str(data_dir), url="unused", folds=3, fold=3)
    with pytest.raises(ValueError, match=re.escape("data.folds=1: must be an integer >= 2 or null")):
        MSRCDataModule(str(data_dir), url="unused", folds=1)
    found = entry_problems(compose_config("train", "data.folds=3", "data.fold=3"))
    assert "data.fold=3: must be in 0..2 (data.folds=3)" in found
    found = entry_problems(compose_config("train", "data.folds=1"))
    assert found[0].startswith("data.folds=1: must be an integer >= 2")
