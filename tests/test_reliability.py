"""Faults a user meets with their own data, each the line the user sees: the model and the data agree,
every check comes before work, nothing on disk is left half-written (README "Reliability")."""

from __future__ import annotations

import errno
import logging
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from seg.core.errors import ConfigError, user_errors
from seg.data.datamodule import DataCheckError
from seg.data.folder import read_classes
from seg.data.folder_data import FolderDataModule

from helpers import CROP, compose_config, run_module, write_folder_dataset


def snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def folder_args(root, tmp_path):
    return [
        "data=folder",
        f"data.root={root}",
        f"data.crop_size={CROP}",
        "data.batch_size=2",
        f"data.cache_dir={tmp_path / 'checks'}",
        f"paths.data_dir={tmp_path / 'data'}",
        "data.allow_unseen_classes=true",  # two photos per split: not every class is in train
    ]


# ---------------------------------------------------------------- the model and the data agree ------


def test_eval_refuses_a_model_of_other_classes_and_matches_by_name_when_asked(tiny_run, tmp_path):
    from seg.eval import evaluate

    root = write_folder_dataset(tmp_path / "own", per_split={"train": 2, "val": 2, "test": 2})
    (root / "classes.txt").write_text("sky\nroad\ncar\n")
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    args = [*folder_args(root, tmp_path), f"ckpt_path={ckpt}", f"paths.output_dir={tmp_path / 'eval'}"]
    with pytest.raises(ConfigError) as err:
        evaluate(compose_config("eval", *args))
    line = str(err.value)
    assert f"ckpt_path={ckpt} was trained on other classes than the data's (23 classes in the model, 3 in" in line
    assert "class 0 is 'building' in the model, 'sky' in the data" in line and "match_classes=by_name" in line
    assert not (tmp_path / "eval").exists()

    metrics = evaluate(compose_config("eval", *args, "match_classes=by_name"))
    support = {c["name"]: c["pixels"] for c in metrics["per_class"] if c["pixels"]}
    assert set(support) <= {"sky", "road", "car"} and sum(support.values()) > 0  # scored as the model's sky, ...


def test_train_from_another_runs_checkpoint_writes_only_its_own_folder(tiny_run, tmp_path):
    """ckpt_path= of another data set's run: refused, pointing to init_from; init_from fine-tunes with a
    fresh classifier into the new run's folder; the first run's folder is never written."""
    root = write_folder_dataset(tmp_path / "own", per_split={"train": 2, "val": 2, "test": 2})
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    before = snapshot(tiny_run)
    common = [*folder_args(root, tmp_path), "model.net.weights=null", "trainer.accelerator=cpu"]
    common += ["trainer.max_epochs=1", "callbacks.progress_bar.refresh_rate=0"]
    proc = run_module("seg.train", *common, f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'a'}", check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"pass init_from={ckpt} instead of ckpt_path" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_module("seg.train", *common, f"init_from={ckpt}", f"hydra.run.dir={tmp_path / 'b'}")
    out = proc.stdout + proc.stderr
    assert "its weights loaded, except net.classifier.weight, net.classifier.bias, started fresh" in out
    assert (tmp_path / "b" / "checkpoints" / "last.ckpt").is_file()
    assert snapshot(tiny_run) == before


def test_export_refuses_to_verify_on_photos_of_other_classes(tiny_run, tmp_path):
    from seg.export import export

    root = write_folder_dataset(tmp_path / "own", per_split={"train": 2, "val": 2, "test": 2})
    out = tmp_path / "model.pt"
    args = [*folder_args(root, tmp_path), f"ckpt_path={tiny_run / 'checkpoints' / 'last.ckpt'}", "format=torchscript"]
    with pytest.raises(ConfigError, match="verify_split=null to export without the check"):
        export(compose_config("export", *args, f"output={out}", f"paths.output_dir={tmp_path / 'x'}"))
    assert not out.exists() and not list(tmp_path.glob(".model*"))  # refused before anything was written


# ---------------------------------------------------------------- the data set's own faults --------


def test_an_ignore_index_that_is_also_a_class_is_named(tmp_path):
    root = write_folder_dataset(tmp_path / "own", classes=("a", "b", "c", "d"), per_split={"train": 4, "val": 2})
    for mask in (root / "masks").glob("*.png"):  # ids 0..3 only: no value is left for unlabelled pixels
        ids = np.array(Image.open(mask))
        Image.fromarray(np.where(ids == 255, 0, ids).astype(np.uint8)).save(mask)
    dm = FolderDataModule(str(root), ignore_index=2, cache_dir=str(tmp_path / "c"), allow_unseen_classes=True)
    with pytest.raises(DataCheckError) as err:
        dm.prepare_data()
    assert "data.ignore_index=2 is also class 2 (class_2) of the 4 classes 0..3" in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sky 128 128\n", "classes.txt:1: 'sky 128 128': a colour is three values R G B"),
        ("road\nsky -1 128 128\n", "classes.txt:2: colour values must be 0..255, got -1 128 128"),
        ("road\nsky\nroad\n", "classes.txt:3: the class 'road' is named twice (line 1 too)"),
        ("128 0 0\n", "classes.txt:1: '128 0 0' has no class name"),
    ],
)
def test_classes_txt_is_read_strictly_with_line_numbers(tmp_path, text, message):
    (tmp_path / "classes.txt").write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_classes(tmp_path / "classes.txt")


def test_a_utf8_bom_is_not_part_of_the_first_class(tmp_path):
    (tmp_path / "classes.txt").write_bytes("sky\nroad\n".encode("utf-8-sig"))
    assert read_classes(tmp_path / "classes.txt")[0] == ["sky", "road"]


def test_one_problem_in_many_masks_is_one_line(tmp_path):
    root = write_folder_dataset(tmp_path / "own", per_split={"train": 5, "val": 2, "test": 2})
    for mask in (root / "masks").glob("*.png"):  # colour masks, their ignored band black
        ids = np.array(Image.open(mask))
        rgb = np.array([[200, 0, 0], [0, 200, 0], [0, 0, 200]], np.uint8)[np.where(ids == 255, 0, ids)]
        rgb[ids == 255] = 0
        Image.fromarray(rgb).save(mask)
    (root / "classes.txt").write_text("sky 200 0 0\nroad 0 200 0\ncar 0 0 200\n")  # no 'void 0 0 0'
    with pytest.raises(DataCheckError) as err:
        FolderDataModule(str(root), cache_dir=str(tmp_path / "c"), allow_unseen_classes=True).prepare_data()
    lines = [x for x in str(err.value).splitlines() if "(0, 0, 0)" in x]
    assert len(lines) == 1, lines
    assert lines[0].startswith("the colour (0, 0, 0) is outside the class table in 9 masks, e.g. ")
    assert lines[0].endswith(": add it to classes.txt: a class, or 'void 0 0 0'")


def test_check_decodes_photos_and_finds_a_truncated_one(tmp_path):
    root = write_folder_dataset(tmp_path / "own", per_split={"train": 3, "val": 2, "test": 2})
    photo = root / "images" / "photo_001.png"
    photo.write_bytes(photo.read_bytes()[: len(photo.read_bytes()) // 2])  # its header intact
    proc = run_module("seg.check", *folder_args(root, tmp_path), f"hydra.run.dir={tmp_path / 'out'}", check=False)
    assert proc.returncode == 2 and f"{photo}: cannot be read as a photo" in proc.stderr, proc.stderr[-2000:]


def test_more_folds_than_photos_is_refused_before_training(tmp_path):
    root = write_folder_dataset(tmp_path / "own", per_split={"train": 4, "val": 2, "test": 2})
    dm = FolderDataModule(str(root), cache_dir=str(tmp_path / "c"), folds=8, fold=0, allow_unseen_classes=True)
    with pytest.raises(ConfigError, match=r"data.folds=8: train\+val hold 6 photos, too few .* use data.folds=3"):
        dm.split_dataset("train")
    assert dm.fold_count_problem().startswith("data.folds=8: train+val hold 6 photos")  # what seg.check reports


# ---------------------------------------------------------------- folders, disks, workers ----------


def test_an_unwritable_output_dir_is_one_line_before_the_survey(tmp_path):
    root = write_folder_dataset(tmp_path / "own", per_split={"train": 2, "val": 2, "test": 2})
    proc = run_module("seg.train", *folder_args(root, tmp_path), "paths.output_dir=/proc/x", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot write paths.output_dir=/proc/x" in proc.stderr
    assert not (tmp_path / "checks").exists()  # before the survey


def test_a_read_only_data_dir_does_not_stop_a_folder_data_set(tmp_path):
    from seg.run.settings import WritableFolders

    cfg = compose_config("train", "data=folder", "data.root=x", "paths.data_dir=/proc/x", hydra_config=True)
    assert WritableFolders._data_dir(cfg) is None  # data=folder downloads nothing
    msrc = compose_config("train", "paths.data_dir=/proc/x", hydra_config=True)
    assert str(WritableFolders._data_dir(msrc)) == "/proc/x"


def test_a_full_disk_leaves_the_last_checkpoint_whole(tmp_path, monkeypatch):
    import tempfile

    from seg.callbacks.checkpoint_io import DiskFull, WholeCheckpointIO

    io, path = WholeCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 0, "w": torch.ones(3)}, path)
    real = tempfile.NamedTemporaryFile

    def full(*args, **kwargs):  # a disk with room for a part of the file only
        f = real(*args, **kwargs)
        write = f.write

        def partial(data):
            write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        f.write = partial
        return f

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", full)
    with pytest.raises(DiskFull, match=r"the disk is full: .*last.ckpt was not written .* resume="):
        io.save_checkpoint({"epoch": 1, "w": torch.zeros(3)}, path)
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary left beside it
    assert torch.load(path, weights_only=True)["epoch"] == 0


def test_machine_conditions_and_worker_errors_are_one_line(caplog):
    from torch.utils.data import DataLoader, Dataset

    from seg.data.masks import DataFileError

    class Broken(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            raise DataFileError("photo_001.png: cannot be decoded; replace the file")

    caplog.set_level(logging.ERROR, logger="seg")
    with pytest.raises(SystemExit) as stop, user_errors():
        next(iter(DataLoader(Broken(), num_workers=1)))
    assert stop.value.code == 2
    assert caplog.messages[-1] == "DataFileError: photo_001.png: cannot be decoded; replace the file"
    with pytest.raises(SystemExit), user_errors():
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/a/result.json")
    assert caplog.messages[-1].startswith("OSError: the disk is full (/runs/a/result.json): free space")
    with pytest.raises(KeyError), user_errors():  # a bug of ours keeps its traceback
        raise KeyError("x")


def test_the_demo_page_limits_uploads_and_removes_its_cache(monkeypatch, tmp_path):
    import seg.demo as demo

    seen = {}

    class Page:
        def close(self):
            seen["closed"] = True

    def serve(page, cfg, workdir):
        cache = os.environ["GRADIO_TEMP_DIR"]
        os.makedirs(cache)
        open(os.path.join(cache, "upload.png"), "wb").close()  # what Gradio keeps of an upload
        seen["cache"], seen["limit"] = cache, cfg.max_upload_mb
        os.kill(os.getpid(), signal.SIGTERM)  # the page is stopped
        return "http://127.0.0.1:7860"

    class Models:
        fixed, runs = None, []

    monkeypatch.setattr(demo, "open_models", lambda cfg: Models())
    monkeypatch.setattr(demo, "build_page", lambda models, cfg, workdir: Page())
    monkeypatch.setattr(demo, "serve", serve)
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        demo.demo(compose_config("demo", f"paths.output_dir={tmp_path}"))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen["closed"] and seen["limit"] == 50 and not os.path.exists(seen["cache"])
    assert "GRADIO_TEMP_DIR" not in os.environ


def test_the_demo_server_is_told_the_upload_limit(tmp_path):
    import seg.demo as demo

    class Page:
        share_url, local_url = None, "http://127.0.0.1:7860/"

        def launch(self, **kwargs):
            self.kwargs = kwargs

    page = Page()
    demo.serve(page, compose_config("demo", "max_upload_mb=7"), tmp_path)
    assert page.kwargs["max_file_size"] == "7mb"  # Gradio refuses a larger upload on the page


def test_a_missing_init_from_is_named_before_any_work(tmp_path):
    from seg.model.checkpoint import CheckpointError
    from seg.train import train

    cfg = compose_config("train", f"init_from={tmp_path / 'nope.ckpt'}", f"paths.data_dir={tmp_path / 'data'}")
    with pytest.raises(CheckpointError, match=r"Checkpoint not found: .*nope.ckpt. Pass init_from=\.\.\."):
        train(cfg)
    assert not (tmp_path / "data").exists()  # before the data set was fetched
