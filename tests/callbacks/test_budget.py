"""A run planned to a wall-clock budget: the duration setting, the plan's arithmetic and validation cadence,
and tiny budgeted runs (the plan in the run and the checkpoint, the lr decayed to the end, the run in time,
one plan giving identical runs)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from seg.callbacks.budget import LATER_STEPS, PLAN_FILE, Budget, revisions, seconds

from helpers import compose_config, entry_problems, run_module, start_train, wait_for_epoch

BUDGET_S = 20  # the tiny run's budget: Python's imports, the data, fit and test


def test_a_budget_is_read_as_people_write_durations():
    assert [seconds(v) for v in ("90s", "15m", "1h30m", "2.5h", "1h 5s", "45", 7.5)] == [
        90,
        900,
        5400,
        9000,
        3605,
        45,
        7.5,
    ]
    for bad in ("fifteen", "15 minutes", "", "0s", -3, "m", True):
        with pytest.raises(ValueError):
            seconds(bad)


def test_bad_budget_settings_are_one_line_each_before_any_work():
    found = entry_problems(compose_config("train", "budget=fifteen", "callbacks.budget.val_share=0"))
    assert any(p.startswith("budget='fifteen': must be a duration such as 90s, 15m") for p in found), found
    assert any(p.startswith("callbacks.budget.val_share=0: must be") for p in found), found
    found = entry_problems(compose_config("train", "scheduler=planned"))
    assert any("scheduler=planned: its decay is planned to a budget; give one, e.g. budget=15m" in p for p in found)
    found = entry_problems(compose_config("train", "budget=5m", "callbacks.budget.plan=/nope/plan.json"))
    assert any(p.startswith("callbacks.budget.plan='/nope/plan.json': no such file") for p in found), found
    assert entry_problems(compose_config("train", "budget=5m")) == []


def fake_trainer(**kw) -> SimpleNamespace:
    base = {
        "num_training_batches": 10,
        "accumulate_grad_batches": 1,
        "global_step": 10,
        "current_epoch": 1,
        "num_val_batches": [4],
        "lr_scheduler_configs": [],
        "is_global_zero": True,
        "check_val_every_n_epoch": 1,
    }
    return SimpleNamespace(**{**base, **kw})


def test_the_plan_fills_the_budget_and_keeps_validation_within_its_share(tmp_path):
    b = Budget(budget=100, val_share=0.1, dirpath=str(tmp_path))
    now = time.monotonic()
    b.started = now - 7  # 7 s used: start-up and the first epoch
    b._batch_starts = [now - 7 + 0.1 * i for i in range(10)]  # 0.1 s a step
    b._last_batch_end = now - 5.5  # then 5 s of validation and 0.5 s of epoch end
    b.val_times = [5.0]
    b._make_plan(fake_trainer(), now)
    p = b.plan
    step = 0.1 * LATER_STEPS  # the first epoch's steps, as later epochs take them
    assert p["measured"] == pytest.approx({"step_s": step, "val_s": 5.0, "epoch_end_s": 0.5, "test_s": 5.5}, abs=0.01)
    # 10 s for validation, 5 of them spent: one more validation, the last epoch's
    assert p["validations"] == 2 and p["last_epoch"] == (p["steps"] - 1) // 10
    assert [e for e in range(p["last_epoch"] + 1) if b._validated(e)] == [0, p["last_epoch"]]
    left = 93 - 5.5 - b._margin()  # what the steps, epoch ends and the last validation may take

    def cost(steps: int) -> float:
        epochs = (steps - 1) // 10 + 1 - 1
        return (steps - 10) * step + epochs * 0.5 + 5.0

    assert cost(p["steps"]) <= left + 0.01 < cost(p["steps"] + 2)
    assert p["decay_from"] == 10 and p["planned_epoch"] == 1
    assert json.loads((tmp_path / PLAN_FILE).read_text()) == p


def test_validation_every_few_epochs_counted_back_from_the_last():
    b = Budget(budget=600)
    b.plan = {"last_epoch": 9, "val_every": 3, "planned_epoch": 1}
    assert [e for e in range(10) if b._validated(e)] == [0, 3, 6, 9]


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory, archive_url, data_dir) -> dict[str, Path]:
    """A tiny run planned to BUDGET_S seconds, and two runs following its plan."""
    from helpers import tiny_overrides

    tmp = tmp_path_factory.mktemp("budget")
    # batches of one photo: 6 steps an epoch, enough to measure the epoch after the plan and revise it
    base = [*tiny_overrides(archive_url, data_dir, tmp), "seed=3", "data.batch_size=1"]
    runs = {"measured": tmp / "measured", "followed": tmp / "followed", "again": tmp / "again"}
    started = time.monotonic()
    run_module("seg.train", *base, f"budget={BUDGET_S}s", f"hydra.run.dir={runs['measured']}")
    runs["measured_wall"] = time.monotonic() - started
    plan = runs["measured"] / PLAN_FILE
    for name in ("followed", "again"):  # a long budget: only the plan decides
        run_module("seg.train", *base, "budget=10m", f"callbacks.budget.plan={plan}", f"hydra.run.dir={runs[name]}")
    return runs


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def test_a_budgeted_run_ends_in_time_with_its_plan_in_the_run_and_the_checkpoint(budgeted):
    run = budgeted["measured"]
    result = json.loads((run / "result.json").read_text())
    b, plan = result["budget"], json.loads((run / PLAN_FILE).read_text())
    assert b["budget_s"] == BUDGET_S and b["plan"] == plan
    assert b["used_s"] <= BUDGET_S * 1.05
    assert budgeted["measured_wall"] <= BUDGET_S * 1.05 + 1  # the whole process, as a user times it
    assert plan["steps"] > plan["decay_from"] > 0
    # revised at the end of the epoch it was fixed in, by that epoch's steps (the log says so)
    first, last = plan["revisions"][0], plan["revisions"][-1]
    assert first["at_step"] == 2 * plan["steps_per_epoch"] and first["epoch"] == 2
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    state = next(v for k, v in ckpt["callbacks"].items() if k.startswith("Budget"))
    assert state["plan"] == plan
    if "stopped_early" not in b:  # the plan ran to its end: the lr decayed to 0 at its last step
        assert ckpt["global_step"] == plan["steps"]
        assert [g["lr"] for g in ckpt["optimizer_states"][0]["param_groups"]] == [0.0, 0.0]
    assert b["validations"] == plan["validations"] or "stopped_early" in b
    log = (run / "train.log").read_text()
    assert "budget=20s: scheduler is the planned decay to the last step (scheduler=planned)" in log
    assert "budget=20s: model.low_res_loss is true" in log and "callbacks.ema is none" in log
    assert f"budget                  {BUDGET_S} s, used" in log
    assert f"plan revised at step {first['at_step']}: " in log
    assert f"plan: {plan['steps']} steps (first {first['steps_before']}, revised {len(plan['revisions'])}x)" in log
    assert f"plan revised at step {last['at_step']}: {plan['steps']} steps instead of {last['steps_before']}" in log


def test_two_runs_with_one_plan_are_identical(budgeted):
    followed, again = weights(budgeted["followed"]), weights(budgeted["again"])
    assert all(torch.equal(followed[k], again[k]) for k in followed)
    plan = json.loads((budgeted["measured"] / PLAN_FILE).read_text())
    assert (
        torch.load(budgeted["followed"] / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
        == plan["steps"]
    )
    # the run that measured the plan followed it too, unless the machine slowed down under it
    if "stopped_early" not in json.loads((budgeted["measured"] / "result.json").read_text())["budget"]:
        measured = weights(budgeted["measured"])
        assert all(torch.equal(measured[k], followed[k]) for k in followed)


def test_a_budgeted_run_stopped_and_resumed_ends_exactly_like_the_uninterrupted_one(
    budgeted, train_overrides, tmp_path
):
    plan = budgeted["measured"] / PLAN_FILE
    run = tmp_path / "run"
    args = [*train_overrides, "seed=3", "data.batch_size=1", "budget=10m", f"callbacks.budget.plan={plan}"]
    proc = start_train(run, args)
    wait_for_epoch(proc, run / "checkpoints" / "last.ckpt", 2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=300)
    assert proc.returncode == 143
    stopped = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert stopped["global_step"] < json.loads(plan.read_text())["steps"]  # stopped before the plan's end
    run_module("seg.train", f"resume={run}")
    resumed, uninterrupted = weights(run), weights(budgeted["followed"])
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


def test_a_budget_changes_the_recipe_as_measured_and_each_change_can_be_kept_out(caplog):
    from seg.train import budget_recipe

    plain = compose_config("train")
    budget_recipe(plain)  # no budget: nothing changes
    assert (
        plain.scheduler._target_.endswith("ReduceLROnPlateau") and plain.callbacks.ema and not plain.model.low_res_loss
    )
    assert plain.model.loss.class_weight_power == 0

    cfg = compose_config("train", "budget=5m")
    budget_recipe(cfg)
    assert cfg.scheduler._target_ == "seg.model.schedules.PlannedDecay"
    assert cfg.callbacks.ema is None and cfg.model.low_res_loss is True
    assert cfg.model.loss.class_weight_power == 0.5

    kept = compose_config(
        "train",
        "budget=5m",
        "callbacks.budget.decay=false",
        "callbacks.budget.keep_ema=true",
        "callbacks.budget.low_res_loss=false",
        "callbacks.budget.class_weight_power=0",
    )
    budget_recipe(kept)
    assert kept.scheduler._target_.endswith("ReduceLROnPlateau") and kept.callbacks.ema and not kept.model.low_res_loss
    assert kept.model.loss.class_weight_power == 0

    own = compose_config(
        "train", "budget=5m", "scheduler=planned", "scheduler.shape=cosine", "model.loss.class_weight_power=0.3"
    )
    budget_recipe(own)
    assert own.scheduler.shape == "cosine"  # scheduler=planned as given
    assert own.model.loss.class_weight_power == 0.3  # the user's own weights as given


def test_the_plan_is_revised_by_the_epoch_after_it_and_again_when_the_steps_drift(tmp_path):
    b = Budget(budget=100, val_share=0.1, dirpath=str(tmp_path))
    now = time.monotonic()
    b.started = now - 7
    b._batch_starts = [now - 7 + 0.1 * i for i in range(10)]  # the first epoch: 0.1 s a step
    b._last_batch_end = now - 5.5
    b.val_times = [5.0]
    b._make_plan(fake_trainer(), now)
    first = dict(b.plan)

    def epoch_ends(epoch: int, step_s: float) -> dict:
        """Epoch ``epoch`` (10 steps of ``step_s``) ends: its time is spent and the hook runs."""
        b.started -= 10 * step_s
        b._epoch_starts = [now + step_s * i for i in range(10)]
        b.on_train_epoch_end(fake_trainer(global_step=10 * (epoch + 1), current_epoch=epoch), None)
        return b.plan

    # the epoch after the plan ran at 0.05 s a step: the rest of the budget holds more steps
    p = epoch_ends(1, 0.05)
    assert p["steps"] > first["steps"] and p["decay_from"] == first["decay_from"] == 10
    assert p["measured"]["step_s"] == pytest.approx(0.05) and p["measured"]["val_s"] == first["measured"]["val_s"]
    assert p["revisions"] == [{"at_step": 20, "epoch": 2, "steps_before": first["steps"], "step_s": 0.05}]
    assert p["validated_before"] == [e for e in range(2) if b._validated(e, first)]
    assert json.loads((tmp_path / PLAN_FILE).read_text()) == p
    # an epoch as fast: within REVISE_OFF of the steps left, the plan stands
    assert epoch_ends(2, 0.05) == p
    # the machine slows down (0.1 s a step): the steps of the last epochs call for fewer steps, revised again
    again = epoch_ends(3, 0.1)
    assert again["steps"] < p["steps"] and again["decay_from"] == 10
    assert [r["at_step"] for r in again["revisions"]] == [20, 40]
    assert again["revisions"][1]["steps_before"] == p["steps"]
    # the last three epochs' steps, the first two after the plan left out (they may still warm up)
    assert again["revisions"][1]["step_s"] == pytest.approx((0.05 * 7 + 0.05 * 9 + 0.1 * 9) / 25, abs=1e-4)
    assert again["validated_before"] == [e for e in range(4) if b._validated(e, p)]
    # a run following the revised plan validates the same epochs and is never revised itself
    follower = Budget(budget=100, plan=str(tmp_path / PLAN_FILE))
    assert follower.plan == again
    assert [follower._validated(e) for e in range(again["last_epoch"] + 1)] == [
        b._validated(e) for e in range(again["last_epoch"] + 1)
    ]
    follower._recent_gaps = b._recent_gaps
    assert not follower._revisable(fake_trainer(global_step=50, current_epoch=4))
    # callbacks.budget.replan=false: after the first revision the plan stands, even at twice the step time
    b.replan = False
    assert epoch_ends(4, 0.2) == again


def test_a_plan_of_the_earlier_format_revised_once_is_followed_as_it_was():
    b = Budget(budget=100)
    b.plan = {
        "last_epoch": 9,
        "val_every": 3,
        "planned_epoch": 1,
        "revised": {"at_step": 20, "epoch": 2, "steps_before": 90, "validated_before": [0, 1]},
    }
    assert [e for e in range(10) if b._validated(e)] == [0, 1, 3, 6, 9]
    assert revisions(b.plan) == [b.plan["revised"]]
