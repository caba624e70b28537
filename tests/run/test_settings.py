"""Every setting of every entry point is checked before any work: a bad value is one line naming the key,
the value and what is allowed, exit code 2; an unwritable folder too."""

from __future__ import annotations

import pytest

from seg.core.errors import ConfigError
from seg.core.files import unwritable

from helpers import check_entry, compose_config, entry_problems, run_module

# (entry point, overrides, what the one line says): a bad value of each kind at every entry point
BAD_VALUES = [
    ("train", ["data.batch_size=0"], "data.batch_size=0: must be an integer >= 1"),
    ("train", ["data.crop_size=16"], "data.crop_size=16: must be an integer >= 32 or null"),
    ("train", ["optimizer.lr=-0.1"], "optimizer.lr=-0.1: must be a number > 0"),
    ("train", ["optimizer.lr=nan"], "optimizer.lr=nan: must be a number > 0"),
    ("train", ["trainer.max_epochs=0"], "trainer.max_epochs=0: must be an integer >= 1"),
    ("train", ["model.net.freeze_params=200"], "model.net.freeze_params=200: must be an integer in [0, 156]"),
    ("train", ["model.net.encoder=vgg16"], "model.net.encoder=vgg16: unknown encoder; choose one of mobilenet_v2,"),
    (
        "train",
        ["model.net.encoder=resnet18", "model.net.freeze_params=61"],
        "model.net.freeze_params=61: must be an integer in [0, 60] (ResNet-18 has 60)",
    ),
    ("train", ["model.net.context=aspp"], "model.net.context='aspp': must be one of null, lraspp"),
    ("train", ["model.encoder_lr_mult=0"], "model.encoder_lr_mult=0: must be a number > 0"),
    ("train", ["model.loss.dice_weight=-1"], "model.loss.dice_weight=-1: must be a number >= 0"),
    ("train", ["model.loss.label_smoothing=0.9"], "model.loss.label_smoothing=0.9: must be a number in [0, 0.5]"),
    ("train", ["model.loss.ohem_keep=0"], "model.loss.ohem_keep=0: must be a number in (0, 1] (the share of"),
    ("train", ["model.loss.focal_gamma=-1"], "model.loss.focal_gamma=-1: must be a number in [0, 5]"),
    ("train", ["data.augment_scale=[1.5,0.5]"], "data.augment_scale=[1.5, 0.5]: must be [low, high]"),
    ("train", ["data.sha256=abc"], "data.sha256='abc': must be 64 hex digits"),
    ("train", ["model.low_res_loss=maybe"], "model.low_res_loss='maybe': must be true or false"),
    ("train", ["data.augment=yes please"], "data.augment='yes please': must be true or false"),
    ("train", ["test_tta=[0,1.0]"], "test_tta=[0, 1.0]: use false, true (+ flip) or scales"),
    ("train", ["~optimizer"], "optimizer: training needs one, e.g. optimizer=adam"),
    ("train", ["test_ckpt=first"], "test_ckpt='first': must be one of last, best"),
    ("train", ["data.crop_size=null"], "data.crop_size=null: data.augment=true needs a crop size"),
    ("train", ["++trainer.limit_val_batches=0"], "trainer.limit_val_batches=0: validation is what picks"),
    ("train", ["model.net.decoder_channels=[64,32]"], "model.net.decoder_channels=[64, 32]: the skip decoder needs 3"),
    ("train", ["logger=wandb", "logger.offline=maybe"], "logger.offline='maybe': must be true or false"),
    ("train", ["logger=many", "logger.wandb.offline=1"], "logger.wandb.offline=1: must be true or false"),
    ("train", ["logger=many", "logger.csv._target_=null"], "logger.csv: names no logger class (_target_)"),
    ("train", ["data=folder"], "data.root: pass the folder of your data set, e.g. python -m seg.train data=folder"),
    ("check", ["data=folder"], "data.root: pass the folder of your data set"),
    ("eval", ["ckpt_path=x", "split=training"], "split='training': must be one of train, val, test"),
    ("eval", ["ckpt_path=x", "tta=maybe"], "tta='maybe': use false, true (+ flip) or scales"),
    ("eval", ["ckpt_path=x", "max_side=0"], "max_side=0: must be an integer >= 1 or null"),
    ("eval", [], "ckpt_path: pass the checkpoint to evaluate"),
    ("predict", ["ckpt_path=x", "input=y", "tta=maybe"], "tta='maybe': use false, true (+ flip) or scales"),
    ("predict", ["ckpt_path=x", "input=y", "tta=[0,1]"], "tta=[0, 1]: use false, true (+ flip) or scales"),
    ("predict", ["ckpt_path=x", "input=y", "overlay_alpha=2"], "overlay_alpha=2: must be a number in [0, 1]"),
    ("predict", ["ckpt_path=x", "input=y", "batch_size=0"], "batch_size=0: must be an integer >= 1"),
    ("predict", ["ckpt_path=x", "input=y", "overwrite=sure"], "overwrite='sure': must be true or false"),
    ("predict", ["input=y"], "ckpt_path / model_file: pass one model"),
    ("predict", ["ckpt_path=x"], "input: pass the photos"),
    ("predict", ["ckpt_path=x", "input=y", "output=README.md"], "output=README.md: is a file"),
    ("export", ["ckpt_path=x", "format=tflite"], "format='tflite': must be one of onnx, torchscript"),
    ("export", ["ckpt_path=x", "min_agreement=99.9"], "min_agreement=99.9: must be a number in [0, 1] (a share"),
    ("export", ["ckpt_path=x", "verify_split=holdout"], "verify_split='holdout': must be one of train, val, test"),
    ("export", ["ckpt_path=x", "output=model.pt"], "output=model.pt: a format=onnx file must end in .onnx"),
    ("export", ["ckpt_path=x", "output=README.md", "format=torchscript"], "must end in .pt"),
    ("export", [], "ckpt_path: pass the checkpoint to export"),
    ("demo", ["port=0"], "port=0: must be an integer in [1, 65535] or null (null: the first free port from 7860)"),
    ("demo", ["host="], "host='': must be a non-empty string"),
    ("demo", ["share=1"], "share=1: must be true or false"),
    ("demo", ["max_megapixels=0"], "max_megapixels=0: must be a number > 0"),
    ("demo", ["overlay_alpha=-1"], "overlay_alpha=-1: must be a number in [0, 1]"),
    ("demo", ["ckpt_path=x", "model_file=y"], "ckpt_path / model_file: pass at most one model"),
]


@pytest.mark.parametrize(
    "entry, overrides, message", BAD_VALUES, ids=[f"{e}-{o[-1] if o else 'none'}" for e, o, _ in BAD_VALUES]
)
def test_a_bad_value_of_each_kind_is_named_at_every_entry_point(entry, overrides, message):
    found = entry_problems(compose_config(entry, *overrides))
    # data.eval_crop_size follows data.crop_size in data=msrc: a bad crop is named for both
    assert len(found) == (2 if overrides == ["data.crop_size=16"] else 1) and message in found[0], found


def test_every_problem_is_named_once_in_one_line():
    with pytest.raises(ConfigError) as err:
        check_entry(compose_config("predict", "input=y", "batch_size=0", "overlay_alpha=0.5", "max_side=9"))
    message = str(err.value)
    assert "\n" not in message and message.count("batch_size=0") == 1
    # the valid values are not in the complaint
    assert "overlay_alpha" not in message and "max_side" not in message


def test_the_shipped_configs_pass_the_checks():
    for overrides in ([], ["experiment=reference"], ["experiment=seed"], ["experiment=best"], ["experiment=fast"]):
        check_entry(compose_config("train", *overrides))
    check_entry(compose_config("train", "trainer=ddp"))
    for logger in ("csv", "mlflow", "wandb", "many", "null"):  # the extras of every logger are installed here
        check_entry(compose_config("train", f"logger={logger}" if logger != "null" else "~logger"))
    # native-size evaluation, as documented in conf/eval.yaml
    check_entry(compose_config("eval", "ckpt_path=x", "split=val", "data.crop_size=null", "data.batch_size=1"))
    check_entry(compose_config("predict", "ckpt_path=x", "input=y", "tta=[0.75,1.0]"))
    check_entry(compose_config("export", "ckpt_path=x", "format=torchscript", "verify_split=null"))
    check_entry(compose_config("demo"))
    check_entry(compose_config("demo", "model_file=x", "port=null", "tta=[0.75,1.0]"))


@pytest.mark.parametrize(
    "module, args, message",
    [
        ("seg.train", ["data.batch_size=0", "optimizer.lr=-1"], "data.batch_size=0"),
        ("seg.eval", ["ckpt_path=x", "split=training"], "split='training'"),
        ("seg.predict", ["ckpt_path=x", "input=y", "tta=[0,1]"], "tta=[0, 1]"),
        ("seg.export", ["ckpt_path=x", "min_agreement=99.9"], "min_agreement=99.9"),
    ],
    ids=["train", "eval", "predict", "export"],
)
def test_each_entry_point_stops_on_a_bad_value_with_one_line_and_exit_2(module, args, message, tmp_path):
    run = tmp_path / "run"
    proc = run_module(module, *args, f"hydra.run.dir={run}", env={"SEG_DATA_URL": "/nowhere.zip"}, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [s for s in proc.stderr.splitlines() if "ConfigError" in s]
    assert len(lines) == 1 and message in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    assert not (run / "checkpoints").exists() and not (run / "tensorboard").exists()


def test_unknown_model_option_is_a_clear_error(tmp_path):
    proc = run_module("seg.train", "model=resnet", f"hydra.run.dir={tmp_path / 'r'}", check=False)
    assert proc.returncode != 0 and "Could not find 'model/resnet'" in proc.stderr
    assert "mobilenet_tconv" in proc.stderr and "Traceback" not in proc.stderr  # Hydra lists the options


def test_full_traceback_on_request(tmp_path):
    proc = run_module(
        "seg.train", "data.batch_size=0", f"hydra.run.dir={tmp_path / 'r'}", env={"HYDRA_FULL_ERROR": "1"}, check=False
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "check_settings" in proc.stderr


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nothing can be written to, even by root: a read-only tmpfs (or chmod when not root)."""
    import os
    import subprocess

    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(d)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot make a read-only folder here as root: {mounted.stderr.decode().strip()}")
    yield d
    subprocess.run(["umount", str(d)], check=True)


def test_unwritable_folders_are_found(read_only_dir, tmp_path):
    assert "Read-only file system" in unwritable(read_only_dir / "runs" / "x") or "Permission" in unwritable(
        read_only_dir / "runs" / "x"
    )
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert unwritable(blocker / "sub") == f"{blocker} is not a folder"
    assert unwritable(tmp_path / "new" / "deeper") is None


def test_read_only_output_or_data_folder_stops_before_training(read_only_dir, train_overrides, tmp_path):
    proc = run_module("seg.train", *train_overrides, f"paths.log_dir={read_only_dir}", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"cannot write the run folder {read_only_dir}/runs/" in proc.stderr and "paths.log_dir=" in proc.stderr
    assert "Traceback" not in proc.stderr
    # a data folder that still has to receive the data set
    proc = run_module(
        "seg.train",
        *train_overrides,
        f"paths.data_dir={read_only_dir / 'data'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        check=False,
    )
    assert proc.returncode == 2 and f"cannot write the data folder {read_only_dir / 'data'}" in proc.stderr
    assert not (tmp_path / "run").exists()  # stopped before Hydra made the run folder


def test_read_only_predict_and_export_outputs_are_refused_before_any_work(read_only_dir):
    found = entry_problems(compose_config("predict", "ckpt_path=x", "input=y", f"output={read_only_dir / 'masks'}"))
    assert len(found) == 1 and f"output={read_only_dir / 'masks'}: cannot be written" in found[0], found
    found = entry_problems(compose_config("export", "ckpt_path=x", f"output={read_only_dir / 'model.onnx'}"))
    assert len(found) == 1 and "its folder cannot be written" in found[0], found


def test_a_logger_whose_package_is_missing_names_the_extra_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    found = entry_problems(compose_config("train", "logger=many"))
    assert found == [
        "logger.mlflow: MLFlowLogger needs the mlflow package, which is not installed: pip install -e '.[mlflow]' "
        "(or choose another logger, e.g. logger=tensorboard)"
    ]
    assert entry_problems(compose_config("train", "logger=many", "logger.mlflow=null")) == []
