"""A diverging run stops at the first non-finite loss, names where, keeps its checkpoints, exits non-zero.
(Stops by SIGTERM / Ctrl-C and their resume are in tests/test_resume.py.)"""

from __future__ import annotations

import re

import pytest

from helpers import compose_config, run_module

# lr x 1e33 after the first epoch: epoch 0 trains and saves normally, epoch 1 diverges
EXPLODE_AFTER_EPOCH_0 = [
    "scheduler=cosine",
    "~scheduler.T_max",
    "~scheduler.eta_min",
    "scheduler._target_=torch.optim.lr_scheduler.MultiStepLR",
    "+scheduler.milestones=[1]",
    "+scheduler.gamma=1e33",
]


def test_divergence_stops_with_epoch_and_step_and_keeps_the_good_checkpoints(train_overrides, tmp_path):
    run = tmp_path / "run"
    proc = run_module(
        "seg.train",
        *train_overrides,
        *EXPLODE_AFTER_EPOCH_0,
        "trainer.max_epochs=3",
        f"hydra.run.dir={run}",
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = next(s for s in proc.stderr.splitlines() if "TrainingDiverged" in s)
    assert re.search(r"the training loss became (nan|inf) at epoch 1, step [2-9]", line), line
    assert "before this step changed the weights" in line and "Lower optimizer.lr" in line
    assert "epoch_000.ckpt, last.ckpt" in line and "Traceback" not in proc.stderr
    import torch

    kept = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert kept["epoch"] == 0 and all(torch.isfinite(v).all() for v in kept["state_dict"].values())
    assert not (run / "result.json").exists()  # the run did not finish


def test_an_absurd_learning_rate_diverges_at_the_first_steps(train_overrides, tmp_path, caplog):
    from seg.train import run

    cfg = compose_config("train", *train_overrides, "optimizer.lr=1e30", f"paths.output_dir={tmp_path}")
    with pytest.raises(SystemExit) as exit_:
        run(cfg)
    assert exit_.value.code == 2
    assert "at epoch 0, step 1" in caplog.text and "Checkpoints kept (none written yet)" in caplog.text
