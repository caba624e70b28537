"""Exact resume: identical uninterrupted runs, kill -9 + resume, SIGTERM / Ctrl-C + resume, one run folder."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import torch
import yaml

from seg.core.errors import ConfigError
from seg.run.resume import resume_args

from helpers import run_module, scalars, start_train, wait_for_epoch

# batch 1: six training steps per epoch, so a stop lands inside an epoch; the default recipe, so
# augmentation's per-sample randomness, the EMA of the weights and the plateau scheduler are all resumed
RECIPE = ["data.batch_size=1", "trainer.max_epochs=4", "seed=7"]


def outcome(run: Path) -> dict:
    """What must not depend on interruptions: per-epoch val/acc, the best checkpoint, test metrics, weights."""
    result = json.loads((run / "result.json").read_text())
    best = sorted(p.name for p in (run / "checkpoints").glob("epoch_*.ckpt"))
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return {
        "val_acc": scalars(run)["val/acc"],
        "best": best,
        "test": {k: v for k, v in result["metrics"].items() if k.startswith("test/")},
        "best_val": result["metrics"]["best/val/acc"],
        "weights": float(sum(v.double().abs().sum() for v in state.values() if v.is_floating_point())),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory, archive_url, data_dir) -> dict:
    """An uninterrupted run of RECIPE, and a second one that must be identical to it."""
    from helpers import tiny_overrides

    tmp = tmp_path_factory.mktemp("reference")
    runs = []
    for name in ("a", "b"):
        run = tmp / name
        run_module("seg.train", *tiny_overrides(archive_url, data_dir, tmp), *RECIPE, f"hydra.run.dir={run}")
        runs.append(outcome(run))
    return {"first": runs[0], "second": runs[1]}


def test_two_uninterrupted_runs_with_one_seed_are_identical(reference):
    first, second = reference["first"], reference["second"]
    assert len(first["val_acc"]) == 4
    assert first == second


def test_kill_9_during_an_epoch_then_resume_ends_exactly_like_the_uninterrupted_run(
    reference, train_overrides, tmp_path
):
    run = tmp_path / "run"
    proc = start_train(run, [*train_overrides, *RECIPE])
    wait_for_epoch(proc, run / "checkpoints" / "last.ckpt", 1)
    time.sleep(0.3)  # into epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    killed_at = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert killed_at["epoch"] < 3  # the run had not finished

    # the short form: the run's folder; its own overrides come back, nothing needs retyping
    run_module("seg.train", f"resume={run}")
    assert outcome(run) == reference["first"]
    # one folder: the first part's record is kept and the resumed part's is beside it
    assert yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())[-1] == "seed=7"
    assert len(list((run / ".hydra").glob("resume-*/overrides.yaml"))) == 1
    assert "Resuming" in (run / "train.log").read_text()


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_saves_progress_mid_epoch_and_resume_continues_exactly(
    sig, code, reference, train_overrides, tmp_path
):
    run = tmp_path / "run"
    proc = start_train(run, [*train_overrides, *RECIPE])
    wait_for_epoch(proc, run / "checkpoints" / "last.ckpt", 0)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").glob("epoch_*.ckpt")}
    config = (run / ".hydra" / "config.yaml").read_text()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == code, out[-2000:] + err[-3000:]
    line = next(s for s in (out + err).splitlines() if "Stopped by" in s)
    assert f"Stopped by {signal.Signals(sig).name} at epoch" in line
    assert f"progress saved to {run / 'checkpoints' / 'last.ckpt'}" in line
    assert line.endswith(f"Resume with: python -m seg.train resume={run}")
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    step = int(line.split("step ")[1].split(":")[0])
    assert saved["global_step"] == step
    # nothing written before is lost
    assert all((run / "checkpoints" / n).read_bytes() == b for n, b in before.items())
    assert (run / ".hydra" / "config.yaml").read_text() == config

    run_module("seg.train", f"resume={run}", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}")  # the long form
    assert outcome(run) == reference["first"]


def test_resume_args_rebuild_the_run_and_let_the_user_override(tmp_path):
    run = tmp_path / "runs" / "r"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["experiment=best", "seed=3", "ckpt_path=old"]))
    args = resume_args([f"resume={run}", "trainer.max_epochs=60"])
    assert args[:3] == ["experiment=best", "seed=3", "trainer.max_epochs=60"]
    assert args[3] == f"ckpt_path={(run / 'checkpoints' / 'last.ckpt').resolve()}"
    assert args[4] == f"hydra.run.dir={run.resolve()}" and args[5].startswith("hydra.output_subdir=.hydra/resume-")
    # ckpt_path= alone, even of a run's checkpoint, is a new run: only the folder the user names is written
    inside = f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"
    assert resume_args([inside, "seed=4"]) == [inside, "seed=4"]
    foreign = tmp_path / "model.ckpt"
    assert resume_args([f"ckpt_path={foreign}"]) == [f"ckpt_path={foreign}"]
    # resume= with one of the run's checkpoints resumes from that one; sweeps are left alone
    assert resume_args([f"resume={run}", inside])[2] == f"ckpt_path={(run / 'checkpoints' / 'last.ckpt').resolve()}"
    assert resume_args(["-m", f"resume={run}"]) == ["-m", f"resume={run}"]
    with pytest.raises(ConfigError, match=r"resume=.*: not a seg.train run folder"):
        resume_args([f"resume={tmp_path}"])
    (run / "checkpoints" / "last.ckpt").unlink()
    with pytest.raises(ConfigError, match="saved no checkpoint to resume"):
        resume_args([f"resume={run}"])
