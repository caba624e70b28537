"""Checks before any work: every bad config value and an unwritable folder are one line and exit code 2."""

from __future__ import annotations

import pytest

from seg.checks import check_eval_config, check_train_config, unwritable
from seg.errors import ConfigError

from helpers import compose_config, run_module

BAD_VALUES = [
    ("data.batch_size=0", "data.batch_size=0: must be an integer >= 1"),
    ("data.crop_size=16", "data.crop_size=16: must be an integer >= 32"),
    ("optimizer.lr=-0.1", "optimizer.lr=-0.1: must be a number > 0"),
    ("optimizer.lr=nan", "optimizer.lr=nan: must be a number > 0"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0: must be an integer >= 1"),
    ("model.net.freeze_params=200", "model.net.freeze_params=200: must be an integer in [0, 156]"),
    ("model.encoder_lr_mult=0", "model.encoder_lr_mult=0: must be a number > 0"),
    ("model.loss.dice_weight=-1", "model.loss.dice_weight=-1: must be a number >= 0"),
    ("data.augment_scale=[1.5,0.5]", "data.augment_scale=[1.5, 0.5]: must be [low, high]"),
    ("data.sha256=abc", "data.sha256='abc': must be 64 hex digits"),
    ("model.low_res_loss=maybe", "model.low_res_loss='maybe': must be true or false"),
    ("data.augment=yes please", "data.augment='yes please': must be true or false"),
    ("test_tta=[0,1.0]", "test_tta=[0, 1.0]: use false, true (+ flip) or scales"),
]


@pytest.mark.parametrize("override, message", BAD_VALUES, ids=[o.split("=")[0] for o, _ in BAD_VALUES])
def test_bad_train_values_are_named(override, message):
    with pytest.raises(ConfigError) as err:
        check_train_config(compose_config("train", override))
    assert message in str(err.value)


def test_the_shipped_recipes_pass_the_checks():
    for overrides in ([], ["experiment=seed"], ["experiment=best"], ["experiment=fast"], ["trainer=ddp"]):
        check_train_config(compose_config("train", *overrides))
    check_eval_config(compose_config("eval", "ckpt_path=x"))
    with pytest.raises(ConfigError, match="split='training': must be one of train, val, test"):
        check_eval_config(compose_config("eval", "ckpt_path=x", "split=training"))


def test_bad_values_stop_seg_train_before_any_work(train_overrides, tmp_path):
    run = tmp_path / "run"
    proc = run_module(
        "seg.train", *train_overrides, "data.batch_size=0", "optimizer.lr=-1", f"hydra.run.dir={run}", check=False
    )
    assert proc.returncode == 2
    lines = [s for s in proc.stderr.splitlines() if "ConfigError" in s]
    assert len(lines) == 1 and "data.batch_size=0" in lines[0] and "optimizer.lr=-1" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (run / "checkpoints").exists() and not (run / "tensorboard").exists()


def test_unknown_model_option_is_a_clear_error(tmp_path):
    proc = run_module("seg.train", "model=resnet", f"hydra.run.dir={tmp_path / 'r'}", check=False)
    assert proc.returncode != 0 and "Could not find 'model/resnet'" in proc.stderr
    assert "mobilenet_tconv" in proc.stderr and "Traceback" not in proc.stderr  # Hydra lists the options


def test_unknown_split_is_a_clear_error(tiny_run, tmp_path, caplog):
    from seg.eval import run

    cfg = compose_config(
        "eval", f"ckpt_path={tiny_run / 'checkpoints' / 'last.ckpt'}", "split=training", f"paths.output_dir={tmp_path}"
    )
    with pytest.raises(SystemExit) as exit_:
        run(cfg)
    assert exit_.value.code == 2 and "split='training': must be one of train, val, test" in caplog.text


def test_full_traceback_on_request(train_overrides, tmp_path):
    proc = run_module(
        "seg.train",
        *train_overrides,
        "data.batch_size=0",
        f"hydra.run.dir={tmp_path / 'r'}",
        env={"HYDRA_FULL_ERROR": "1"},
        check=False,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "check_train_config" in proc.stderr


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
