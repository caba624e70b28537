"""The recipe a folder data set gets from its photo sizes (crop, batch, scale range), and that a folder
run left at auto uses it and says why."""

from __future__ import annotations

import logging

from seg.data.folder_data import FolderDataModule
from seg.data.recipe import recipe, short_side

from helpers import compose_config, entry_problems, write_folder_dataset


def test_the_rule_follows_the_photos_short_side():
    msrc_like = recipe({"320x213": 200, "213x320": 76})
    assert (msrc_like.crop_size, msrc_like.batch_size, msrc_like.augment_scale) == (192, 12, (0.75, 1.25))
    street = recipe({"480x360": 367})
    assert (street.crop_size, street.batch_size, street.augment_scale) == (352, 4, (0.75, 1.25))
    phone = recipe({"4000x3000": 10, "3000x4000": 5})
    assert (phone.crop_size, phone.batch_size, phone.augment_scale) == (384, 3, (0.5, 1.5))
    tiny = recipe({"64x48": 3})
    assert (tiny.crop_size, tiny.batch_size) == (128, 16)
    assert "median short side is 3000 px" in phone.why and "at least twice the crop" in phone.why
    assert short_side({"100x50": 1, "300x200": 2}) == 200


def test_auto_is_allowed_for_folder_data_only_and_bad_values_still_named(tmp_path):
    found = entry_problems(compose_config("train", "data=folder", f"data.root={tmp_path}"))
    assert not [p for p in found if "crop_size" in p or "batch_size" in p or "augment_scale" in p], found
    found = entry_problems(compose_config("train", "data=folder", "data.root=/tmp", "data.batch_size=0"))
    assert any(p.startswith("data.batch_size=0: must be an integer >= 1, or auto") for p in found), found
    found = entry_problems(compose_config("train", "data.crop_size=auto"))  # MSRC: the course's crops
    assert any(p.startswith("data.crop_size='auto': must be") for p in found), found


def test_a_folder_data_set_left_at_auto_trains_with_the_chosen_recipe(tmp_path, caplog):
    root = write_folder_dataset(tmp_path / "data", per_split={"train": 4, "val": 2, "test": 2})
    dm = FolderDataModule(root=str(root), crop_size="auto", batch_size="auto", augment_scale="auto")
    with caplog.at_level(logging.INFO):
        dm.prepare_data()
    assert (dm.hparams.crop_size, dm.hparams.batch_size, dm.hparams.augment_scale) == (128, 16, (0.75, 1.25))
    assert "crop_size=128, batch_size=16, augment_scale=(0.75, 1.25) (auto)" in caplog.text
    dm.setup("fit")
    photo, _ = dm.datasets["train"][0]
    assert photo.shape[-2:] == (128, 128)
    kept = FolderDataModule(root=str(root), crop_size=64, batch_size=2, augment_scale=[0.9, 1.1])
    kept.prepare_data()
    assert (kept.hparams.crop_size, kept.hparams.batch_size, kept.hparams.augment_scale) == (64, 2, (0.9, 1.1))
