"""Data sets of your own in folders: every layout and mask kind reads the same ids as the MSRC archive they
were written from, classes come from where users keep them, and every bad case names its file and value."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.msrc_folders import LAYOUTS, MASKS, write_folder
from seg.core.errors import ConfigError, SegError
from seg.data.archive import ARCHIVE_DIR
from seg.data.datamodule import DataCheckError
from seg.data.folder import Layout, catalogue, label_set, read_classes
from seg.data.folder_data import FolderDataModule
from seg.data.labels import MSRC, default_palette
from seg.data.msrc_data import MSRCDataModule
from seg.data.splits import SPLITS

from helpers import CROP, write_folder_dataset


def folder_module(root, tmp_path, **kwargs) -> FolderDataModule:
    return FolderDataModule(str(root), crop_size=CROP, cache_dir=str(tmp_path / "checks"), **kwargs)


def layout_kwargs(layout: str) -> dict:
    photos, masks, lists = LAYOUTS[layout]
    if layout == "per_split":
        return {s: {"images": photos.format(split=s), "masks": masks.format(split=s)} for s in SPLITS}
    return {"images": photos, "masks": masks, "splits_dir": lists}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("masks", MASKS)
def test_every_layout_and_mask_kind_reads_what_the_archive_holds(layout, masks, data_dir, tmp_path):
    root = write_folder(data_dir / ARCHIVE_DIR, tmp_path / "folder", layout, masks)
    dm = folder_module(root, tmp_path, allow_unseen_classes=True, **layout_kwargs(layout))
    dm.prepare_data()  # no problems
    assert dm.label_set().names == MSRC.names and (dm.label_set().palette == MSRC.palette).all()
    msrc = MSRCDataModule(str(data_dir), url="unused", crop_size=CROP)
    for split in SPLITS:
        assert dm.class_pixel_counts(split).tolist() == msrc.class_pixel_counts(split).tolist(), split
        if layout != "per_split":  # the archive's lists and their order
            assert dm.split_dataset(split).names == msrc.split_dataset(split).names
    mode = {"index": "L", "index16": "I;16", "palette": "P", "rgb": "RGB"}[masks]
    assert set(dm.survey().splits["train"].mask_modes) == {mode}


@pytest.mark.parametrize("masks", ["index", "rgb"])
def test_the_enlarged_folder_form_holds_the_same_scenes_at_twice_the_size(masks, data_dir, tmp_path):
    root = write_folder(data_dir / ARCHIVE_DIR, tmp_path / "folder", "flat", masks, scale=2)
    dm = folder_module(root, tmp_path, allow_unseen_classes=True, **layout_kwargs("flat"))
    msrc = MSRCDataModule(str(data_dir), url="unused", crop_size=CROP)
    big, small = dm.split_dataset("val"), msrc.split_dataset("val")
    for i in range(len(small)):
        (p, t), (p2, t2) = small.raw(i), big.raw(i)
        assert p2.shape == (2 * p.shape[0], 2 * p.shape[1], 3)
        labelled, every_other = t != msrc.label_set().ignore_index, t2[::2, ::2]
        assert (every_other[labelled] == t[labelled]).all()
        assert (every_other[~labelled] == dm.label_set().ignore_index).all()
        assert (t2 == every_other.repeat(2, 0).repeat(2, 1)).all()  # each label a 2x2 block: nearest
    assert dm.class_pixel_counts("train").tolist() == (4 * msrc.class_pixel_counts("train")).tolist()


def test_mosaics_lay_each_splits_photos_out_n_by_n(data_dir, tmp_path):
    from benchmarks.msrc_folders import CELL, write_mosaics

    root = write_mosaics(data_dir / ARCHIVE_DIR, tmp_path / "mosaic", 2)
    msrc = MSRCDataModule(str(data_dir), url="unused", crop_size=CROP)
    small = msrc.split_dataset("train")
    assert (root / "train.txt").read_text() == "train_mosaic_000\n"  # 6 photos: one full mosaic of 4
    assert (root / "val.txt").read_text() == (root / "test.txt").read_text() == ""  # 3 each: none
    photo = np.asarray(Image.open(root / "images" / "train_mosaic_000.png"))
    ids = np.asarray(Image.open(root / "masks" / "train_mosaic_000.png"))
    assert photo.shape == (2 * CELL[1], 2 * CELL[0], 3) and ids.shape == photo.shape[:2]
    # the second photo of the split is the top right cell, its labels resized nearest (void 255)
    target = small.raw(1)[1]
    want = np.where(target == msrc.label_set().ignore_index, 255, target).astype(np.uint8)
    want = np.asarray(Image.fromarray(want).resize(CELL, Image.Resampling.NEAREST))
    assert (ids[: CELL[1], CELL[0] :] == want).all()
    assert read_classes(root / "classes.txt")[0] == list(MSRC.names)  # the folder's class table reads back


def test_the_folder_form_has_the_folds_of_the_archive(data_dir, tmp_path):
    root = write_folder(data_dir / ARCHIVE_DIR, tmp_path / "folder", "flat", "palette")
    for fold in range(3):
        dm = folder_module(root, tmp_path, allow_unseen_classes=True, folds=3, fold=fold, **layout_kwargs("flat"))
        msrc = MSRCDataModule(str(data_dir), url="unused", crop_size=CROP, folds=3, fold=fold)
        for split in SPLITS:  # the same photos in each fold's train and val, the same test
            assert dm.split_dataset(split).names == msrc.split_dataset(split).names, (fold, split)


def test_the_folder_form_is_written_only_into_a_new_or_empty_folder(data_dir, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep me")
    with pytest.raises(SegError, match="taken: exists and is not empty"):
        write_folder(data_dir / ARCHIVE_DIR, taken)
    assert [p.name for p in taken.iterdir()] == ["mine.txt"] and (taken / "mine.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_folder(data_dir / ARCHIVE_DIR, empty) == empty and (empty / "classes.txt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "taken"]  # no half-written folder beside


def test_training_on_the_folder_form_gives_the_numbers_of_the_archive(train_overrides, data_dir, tmp_path):
    from seg.train import train

    from helpers import compose_config

    root = write_folder(data_dir / ARCHIVE_DIR, tmp_path / "folder", "flat", "palette")
    common = [*train_overrides, "trainer.max_epochs=2", "++trainer.limit_train_batches=2"]
    msrc = train(compose_config("train", *common, f"paths.output_dir={tmp_path / 'msrc'}"))
    msrc_only = ("data.url=", "data.sha256=")  # keys of the archive's config
    folder = train(
        compose_config(
            "train",
            *(o for o in common if not o.startswith(msrc_only)),
            "data=folder",
            f"data.root={root}",
            f"data.crop_size={CROP}",
            "data.batch_size=3",
            f"data.eval_crop_size={CROP}",  # the course protocol that data=msrc scores with
            "data.eval_batch_size=null",
            "data.allow_unseen_classes=true",
            f"data.cache_dir={tmp_path / 'checks'}",
            f"paths.output_dir={tmp_path / 'folder_run'}",
        )
    )
    for key in ("best/val/acc", "val/acc", "val/loss", "test/acc", "test/miou", "train/loss_epoch"):
        assert folder[key] == pytest.approx(msrc[key], abs=1e-6), key
    assert (tmp_path / "folder_run" / "splits" / "train.txt").read_text().split() == list(
        MSRCDataModule(str(data_dir), url="unused").split_items("train")
    )


def test_a_pool_without_lists_is_split_by_seed_and_written_into_the_run(tmp_path):
    root = write_folder_dataset(tmp_path / "own")
    dm = folder_module(root, tmp_path, split_fractions=[0.6, 0.2, 0.2])
    dm.prepare_data()
    sizes = {s: len(dm.split_items(s)) for s in SPLITS}
    assert sizes == {"train": 6, "val": 2, "test": 2} and "seeded split" in dm.survey().how
    again = folder_module(root, tmp_path, split_fractions=[0.6, 0.2, 0.2])
    assert [i.name for i in again.split_items("val")] == [i.name for i in dm.split_items("val")]
    other = folder_module(root, tmp_path, split_fractions=[0.6, 0.2, 0.2], split_seed=1)
    assert [i.name for i in other.split_items("val")] != [i.name for i in dm.split_items("val")]
    dm.write_splits(tmp_path / "run" / "splits")
    listed = {s: (tmp_path / "run" / "splits" / f"{s}.txt").read_text().split() for s in SPLITS}
    assert sorted(n for names in listed.values() for n in names) == [f"photo_{i:03d}" for i in range(10)]
    # the written lists reproduce the split: point splits_dir at them
    replay = folder_module(root, tmp_path, splits_dir=str(tmp_path / "run" / "splits"))
    assert {s: [i.name for i in replay.split_items(s)] for s in SPLITS} == listed


def test_a_mask_suffix_pairs_masks_with_their_photos(tmp_path):
    root = write_folder_dataset(tmp_path / "own", per_split={"train": 4, "val": 2, "test": 2})
    for mask in (root / "masks").glob("*.png"):
        mask.rename(mask.with_name(f"{mask.stem}_mask.png"))
    (root / "masks" / "README.png").write_bytes(b"not a mask and without the suffix: not looked at")
    dm = folder_module(root, tmp_path, mask_suffix="_mask")
    dm.prepare_data()
    assert [i.mask.name for i in dm.split_items("val")] == ["photo_004_mask.png", "photo_005_mask.png"]


def test_classes_come_from_the_settings_a_classes_file_or_the_masks(tmp_path):
    root = write_folder_dataset(tmp_path / "own", per_split={"train": 4, "val": 2, "test": 2})
    found = folder_module(root, tmp_path).label_set()  # no names anywhere: found in the masks
    assert found.names == ("class_0", "class_1", "class_2") and found.ignore_index == 255
    assert (found.palette == default_palette(3)).all()
    # a palette PNG's own colours are the default for pictures
    palette = np.array([[9, 9, 9], [8, 8, 8], [7, 7, 7]], np.uint8)
    assert label_set(root, None, 255, [0, 1, 2], palette).palette.tolist() == palette.tolist()
    named = folder_module(root, tmp_path, classes=["sky", "road", "car"]).label_set()
    assert named.names == ("sky", "road", "car")
    (root / "classes.txt").write_text("# my classes\nsky 10 20 30\nroad\n\ncar 1 2 3\nvoid 0 0 0\n")
    table = folder_module(root, tmp_path).label_set()
    assert table.names == ("sky", "road", "car") and table.ignore_colours == ((0, 0, 0),)
    assert table.palette.tolist() == [[10, 20, 30], default_palette(3)[1].tolist(), [1, 2, 3]]
    (root / "classes.txt").write_text("\n# nothing\n")
    with pytest.raises(ConfigError, match="names no classes"):
        read_classes(root / "classes.txt")


def test_voc_without_a_test_list_tests_on_val(tmp_path):
    root = write_folder_dataset(tmp_path / "own", per_split={"train": 4, "val": 3})
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for split in ("train", "val"):
        (root / f"{split}.txt").rename(root / "ImageSets" / "Segmentation" / f"{split}.txt")
    (root / "images").rename(root / "JPEGImages")
    (root / "masks").rename(root / "SegmentationClass")
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(root / "JPEGImages" / "unlabelled.png")  # not listed: fine
    cat = catalogue(root, Layout("JPEGImages", "SegmentationClass", splits_dir="ImageSets/Segmentation"))
    assert cat.problems == [] and cat.splits["test"] == cat.splits["val"] and "the test stage scores val" in cat.how


def _problems(root, tmp_path, **kwargs) -> str:
    dm = folder_module(root, tmp_path, **kwargs)
    with pytest.raises(DataCheckError) as err:
        dm.prepare_data()
    assert not list((tmp_path / "checks").glob("*")) if (tmp_path / "checks").exists() else True  # nothing cached
    return str(err.value)


def test_every_bad_case_names_its_file_and_value(tmp_path):
    root = write_folder_dataset(tmp_path / "own", per_split={"train": 4, "val": 2, "test": 2})
    ids = np.array(Image.open(root / "masks" / "photo_000.png"))
    ids[:2, :3] = 7  # a value that is neither a class id nor the ignore index
    Image.fromarray(ids).save(root / "masks" / "photo_000.png")
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(root / "masks" / "photo_001.png")  # another size
    (root / "masks" / "photo_002.png").write_bytes(b"broken")  # unreadable
    shutil.copyfile(root / "images" / "photo_003.png", root / "images" / "stray.png")  # a photo without a mask
    shutil.copyfile(root / "masks" / "photo_004.png", root / "masks" / "lonely.png")  # a mask without a photo
    message = _problems(root, tmp_path, classes=["sky", "road", "car"])
    lines = message.splitlines()
    assert any(
        "photo_000.png: the value 7 is neither a class id (0..2) nor the ignore index 255; fix" in x for x in lines
    )
    assert any("photo_001.png: size 9x9 differs from its photo" in x for x in lines)
    assert any("photo_002.png cannot be decoded" in x for x in lines)
    assert any("stray.png" in x for x in lines) is False  # listed splits: unlisted files are not the data set
    (root / "train.txt").unlink()
    (root / "val.txt").unlink()
    (root / "test.txt").unlink()
    message = _problems(root, tmp_path, classes=["sky", "road", "car"])
    assert f"{root / 'images' / 'stray.png'}: a photo without a mask; each photo's mask is " in message
    assert f"{root / 'masks' / 'lonely.png'}: a mask without a photo" in message


def test_colour_masks_need_a_table_and_unknown_colours_are_named(tmp_path):
    root = write_folder_dataset(tmp_path / "own", per_split={"train": 3, "val": 1, "test": 1})
    colours = {0: (200, 0, 0), 1: (0, 200, 0), 2: (0, 0, 200), 255: (0, 0, 0)}
    for mask in (root / "masks").glob("*.png"):
        ids = np.array(Image.open(mask))
        rgb = np.zeros((*ids.shape, 3), np.uint8)
        for v, c in colours.items():
            rgb[ids == v] = c
        if mask.stem == "photo_001":
            rgb[0, 0] = (1, 2, 3)
        Image.fromarray(rgb).save(mask)
    message = _problems(root, tmp_path)
    assert "is an RGB colour mask: its colours need a table" in message and "classes.txt" in message
    (root / "classes.txt").write_text("sky 200 0 0\nroad 0 200 0\ncar 0 0 200\nvoid 0 0 0\n")
    message = _problems(root, tmp_path)
    assert (
        "photo_001.png: the colour (1, 2, 3) is outside the class table; add it to classes.txt: a class, or " in message
    )
    Image.open(root / "masks" / "photo_000.png").save(root / "masks" / "photo_001.png")
    shutil.copyfile(root / "images" / "photo_000.png", root / "images" / "photo_001.png")
    dm = folder_module(root, tmp_path)
    dm.prepare_data()
    assert dm.class_pixel_counts("train").sum() > 0 and dm.label_set().names == ("sky", "road", "car")


def test_an_empty_split_and_a_class_never_in_train_are_problems(tmp_path):
    root = write_folder_dataset(tmp_path / "own", per_split={"train": 3, "val": 1, "test": 1})
    (root / "test.txt").write_text("")
    message = _problems(root, tmp_path, classes=["sky", "road", "car", "boat"])
    assert "the test split is empty" in message
    assert "classes that never occur in the train split: boat" in message and "allow_unseen_classes" in message


def test_a_class_never_in_train_is_a_note_when_allowed(tmp_path):
    root = write_folder_dataset(tmp_path / "own", per_split={"train": 3, "val": 1, "test": 1})
    dm = folder_module(root, tmp_path, classes=["sky", "road", "car", "boat"], allow_unseen_classes=True)
    dm.prepare_data()  # no problem
    unseen = [n for n in dm.survey().notes if "never occur in the train split: boat" in n]
    assert unseen and unseen[0].endswith("cannot learn them; trained anyway, as data.allow_unseen_classes=true)")


def test_a_missing_root_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"data.root=.*nowhere: not a folder"):
        folder_module(tmp_path / "nowhere", tmp_path).prepare_data()


def test_the_survey_is_cached_by_the_files(tmp_path, monkeypatch):
    import seg.data.survey as survey_module

    root = write_folder_dataset(tmp_path / "own", per_split={"train": 3, "val": 1, "test": 1})
    folder_module(root, tmp_path).prepare_data()
    assert len(list((tmp_path / "checks").glob("survey-*.json"))) == 1
    monkeypatch.setattr(survey_module, "_survey", lambda *a: pytest.fail("read again"))
    folder_module(root, tmp_path).prepare_data()  # the same files: from the cache
    (root / "masks" / "photo_000.png").touch()
    monkeypatch.undo()
    folder_module(root, tmp_path).prepare_data()  # a file changed: read again
    assert len(list((tmp_path / "checks").glob("survey-*.json"))) == 2


def test_the_label_set_travels_from_the_data_to_every_output(tmp_path):
    """Trained on three classes of its own: the checkpoint, seg.eval, Segmenter, seg.predict's CSV and the
    export metadata all speak of sky, road and car, with the data's ignore index."""
    import json

    from seg.deploy.formats import load_deploy_net
    from seg.deploy.segmenter import Segmenter
    from seg.eval import evaluate
    from seg.model.checkpoint import load_model
    from seg.predict import predict
    from seg.train import train

    from helpers import compose_config, read_csv

    root = write_folder_dataset(tmp_path / "own", per_split={"train": 4, "val": 2, "test": 2})
    (root / "classes.txt").write_text("sky 10 20 200\nroad 90 90 90\ncar 200 0 0\n")
    data = ["data=folder", f"data.root={root}", f"data.crop_size={CROP}", "data.batch_size=2"]
    data += [f"data.cache_dir={tmp_path / 'checks'}", f"paths.data_dir={tmp_path / 'data'}"]
    run = tmp_path / "run"
    common = ["model.net.weights=null", "trainer.accelerator=cpu", "callbacks.progress_bar.refresh_rate=0"]
    train(compose_config("train", *data, *common, "trainer.max_epochs=1", f"paths.output_dir={run}"))
    ckpt = run / "checkpoints" / "last.ckpt"
    model, _ = load_model(ckpt)
    assert model.label_set.names == ("sky", "road", "car") and model.label_set.ignore_index == 255
    assert model.label_set.palette.tolist() == [[10, 20, 200], [90, 90, 90], [200, 0, 0]]
    metrics = evaluate(compose_config("eval", *data, f"ckpt_path={ckpt}", f"paths.output_dir={tmp_path / 'eval'}"))
    assert [c["name"] for c in metrics["per_class"]] == ["sky", "road", "car"] and metrics["num_images"] == 2
    assert [r["name"] for r in read_csv(tmp_path / "eval" / "per_class.csv")] == ["sky", "road", "car"]
    segmenter = Segmenter.from_checkpoint(ckpt)
    assert segmenter.class_names == ("sky", "road", "car")
    assert segmenter.predict(root / "images" / "photo_000.png").max() < 3
    _, metadata = load_deploy_net(ckpt)
    assert json.loads(metadata["seg.class_names"]) == ["sky", "road", "car"]
    assert json.loads(metadata["seg.ignore_index"]) == 255 and json.loads(metadata["seg.output"])["shape"][1] == 3
    out = tmp_path / "predicted"
    predict(compose_config("predict", f"ckpt_path={ckpt}", f"input={root / 'images'}", f"output={out}"))
    names = {c.split(":")[0] for row in read_csv(out / "predictions.csv") for c in row["classes"].split(";")}
    assert names and names <= {"sky", "road", "car"}


def test_a_bad_data_set_stops_seg_train_before_any_work(tmp_path, caplog):
    from seg.train import run

    from helpers import compose_config

    root = write_folder_dataset(tmp_path / "own", per_split={"train": 3, "val": 1, "test": 1})
    (root / "masks" / "photo_001.png").unlink()
    cfg = compose_config(
        "train", "data=folder", f"data.root={root}", "model.net.weights=null", f"paths.output_dir={tmp_path / 'run'}"
    )
    with pytest.raises(SystemExit) as exit_:
        run(cfg)
    assert exit_.value.code == 2 and "DataCheckError" in caplog.text
    assert "train.txt lists 1 names without a photo and mask pair, e.g. ['photo_001']" in caplog.text
    assert not (tmp_path / "run").exists()  # nothing built, nothing written


def test_a_data_set_too_large_for_the_cache_is_decoded_at_every_access(tmp_path, caplog):
    root = write_folder_dataset(tmp_path / "own", per_split={"train": 3, "val": 1, "test": 1})
    small = folder_module(root, tmp_path)
    assert small.cached and 0 < small.decoded_bytes() < 2**20
    tight = folder_module(root, tmp_path, cache_max_gb=small.decoded_bytes() / 2**30 / 2)
    tight.setup("fit")
    assert not tight.cached and tight.datasets["train"].images is None  # decoded on demand
    assert "decoded at every access instead" in caplog.text
    x, y = tight.datasets["train"][0]
    assert x.shape[0] == 3 and y.dtype == torch.int64
