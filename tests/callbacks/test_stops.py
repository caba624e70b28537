"""A diverging run stops at the first non-finite or exploding loss, names where, keeps its checkpoints,
exits 2. (Stops by SIGTERM / Ctrl-C and their resume are in tests/run/test_resume.py.)"""

from __future__ import annotations

import re

import numpy as np
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


def _fake_trainer(tmp_path, epoch=0, step=0):
    from types import SimpleNamespace

    return SimpleNamespace(
        optimizers=[SimpleNamespace(param_groups=[{"lr": 1e6}])],
        checkpoint_callback=SimpleNamespace(dirpath=str(tmp_path)),
        current_epoch=epoch,
        global_step=step,
    )


def test_an_exploding_but_finite_loss_stops_the_run(tmp_path):
    import torch

    from seg.callbacks.stops import DivergenceGuard, TrainingDiverged

    guard = DivergenceGuard(max_ratio=100)
    (tmp_path / "last.ckpt").write_bytes(b"")
    for step, loss in enumerate([3.5, 3.1, 12.0, 2.9]):  # an early spike of a few times the start is learning
        guard.on_before_backward(_fake_trainer(tmp_path, step=step), None, torch.tensor(loss))
    with pytest.raises(TrainingDiverged) as err:
        guard.on_before_backward(_fake_trainer(tmp_path, epoch=1, step=4), None, torch.tensor(8.9e10))
    message = str(err.value)
    assert "exploded to 8.9e+10 at epoch 1, step 4" in message and "first value 3.5" in message
    assert "Checkpoints kept" in message and "last.ckpt" in message and "Lower optimizer.lr (now 1e+06)" in message
    # the reference travels with checkpoints: a resumed run keeps it
    resumed = DivergenceGuard(max_ratio=100)
    resumed.load_state_dict(guard.state_dict())
    assert resumed.limit() == pytest.approx(350.0)


def test_a_run_that_learns_slowly_is_never_stopped(tmp_path):
    import torch

    from seg.callbacks.stops import DivergenceGuard

    rng = np.random.default_rng(0)
    stuck, fine_tuned = DivergenceGuard(), DivergenceGuard()
    for step in range(1000):  # a loss stuck near its start, noisy; a fine-tune from a loss near 0, spiky
        stuck.on_before_backward(_fake_trainer(tmp_path, step=step), None, torch.tensor(3.2 + rng.normal(0, 0.5)))
        loss = 0.05 if step == 0 else abs(rng.normal(0, 10))
        fine_tuned.on_before_backward(_fake_trainer(tmp_path, step=step), None, torch.tensor(loss))


@pytest.mark.cpu_kinds
def test_an_absurd_learning_rate_stops_the_run_on_every_cpu_kind(cpu_kind, train_overrides, tmp_path):
    run = tmp_path / "run"
    proc = run_module(
        "seg.train",
        *train_overrides,
        "optimizer.lr=1e6",
        "scheduler=none",
        "trainer.max_epochs=3",
        "++trainer.limit_train_batches=2",
        "test=false",
        f"hydra.run.dir={run}",
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = next(s for s in proc.stderr.splitlines() if "TrainingDiverged" in s)
    assert re.search(r"the training loss (became nan|became inf|exploded to \S+) .*at epoch \d, step \d", line), line
    assert "Traceback" not in proc.stderr and not (run / "result.json").exists()
    assert ("bf16-mixed" in proc.stderr) == (cpu_kind == "avx512_bf16")
