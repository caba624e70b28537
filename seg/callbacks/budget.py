"""A run planned to a wall-clock budget (``budget=15m``): the whole run, fit and test, ends within it, and
the learning rate decays to its planned last step instead of being cut.

:class:`Budget` measures the run's costs in its first epoch (a training step, a validation pass, what an
epoch's end adds), then fixes the plan: the number of optimizer steps, the step the decay starts from,
and which epochs are validated, so that validation takes at most ``val_share`` of the budget and the test
stage fits after the last step. The plan goes to ``plan.json`` in the run folder, into every checkpoint
(a resume follows it exactly) and to the planned scheduler (:class:`seg.model.schedules.PlannedDecay`).
A run given an earlier ``plan.json`` measures nothing and follows it: two runs with one plan are identical.
The plan is revised at the end of the epoch it was fixed in, by that epoch's own step time (the first
epoch's steps can be slower or faster than the later ones'), and again at the end of any later epoch
but the last whose recent steps call for a last step off by more than ``REVISE_OFF`` of the steps left
(a machine's step time drifts over a long run; ``replan=false``: the first revision only): the decay so
far is kept and goes on to the revised last step; each revision is part of the plan (and of that epoch's
checkpoints), so a run following it or resumed from them takes the same steps.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import statistics
import time
from collections import deque
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from seg.core.errors import ConfigError
from seg.core.files import atomic_write
from seg.core.rules import Get, Settings, is_number, number, shown, switch
from seg.model.schedules import PlannedDecay

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([hms])")
_NEVER = 10**9  # check_val_every_n_epoch of an epoch that is not validated
SKIPPED_STEPS = 2  # at least the first steps' times are left out of the step time
# later epochs' steps took 5-7% longer than the first epoch's last ones (budget=5m on MSRC, 2-core Xeon,
# docs/results.md): planned with this much more, the run ends at its plan rather than being cut short
LATER_STEPS = 1.06
RECENT_EPOCHS = 3  # a later revision's step time: the mean of this many last epochs' steps
REVISE_OFF = 0.01  # a later revision is made when the last step moves by more than this share of the steps left


def seconds(budget: Any) -> float:
    """A budget in seconds: a number of seconds, or text such as ``90s``, ``15m``, ``1h30m``, ``2.5h``."""
    if is_number(budget) and not isinstance(budget, bool):
        total = float(budget)
    elif isinstance(budget, str) and budget.strip():
        text = budget.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            total = float(text)
        elif re.fullmatch(rf"(?:{_PART.pattern})+", text):
            total = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in _PART.findall(text))
        else:
            raise ValueError(budget)
    else:
        raise ValueError(budget)
    if not (math.isfinite(total) and total > 0):
        raise ValueError(budget)
    return total


def budget_problem(v: Any) -> str | None:
    """The rule of the ``budget`` key."""
    if v is None:
        return None
    try:
        seconds(v)
    except ValueError:
        return "must be a duration such as 90s, 15m, 1h30m or a number of seconds > 0 (or null: no budget)"
    return None


def _plan_file(get: Get, at: str) -> list[str]:
    plan = get("plan")
    if isinstance(plan, str) and plan and not Path(plan).is_file():
        return [f"{at}plan={shown(plan)}: no such file; give the {PLAN_FILE} of an earlier budgeted run"]
    return []


def with_planned_decay(cfg: Any) -> bool:
    """Whether the run's scheduler is to be the planned decay: a budget is set and ``callbacks.budget.decay``
    is on (off: the scheduler group's own, e.g. the plateau scheduler, under the budget)."""
    cb = (cfg.get("callbacks") or {}).get("budget") or {}
    return cfg.get("budget") is not None and bool(cb.get("decay", True))


PLANNED_DECAY = {"_target_": "seg.model.schedules.PlannedDecay", "_partial_": True}


class Budget(pl.Callback):
    """Plans the run to ``budget`` seconds (inactive when None). ``val_share``: the largest share of the
    budget validation may take; ``replan``: revise the plan on drift after its first revision; ``plan``: an
    earlier run's ``plan.json`` to follow instead of measuring; ``dirpath``: where ``plan.json`` is written;
    ``decay``/``keep_ema``/``low_res_loss``/``class_weight_power``: seg.train's budget recipe;
    ``test``/``test_tta``: what the test stage will run, so its time is kept free."""

    # the budget itself is the run's top-level key, checked by seg.train (budget_problem)
    SETTINGS = Settings(
        {
            "val_share": number(0, 1, above=True),
            "replan": switch,
            "decay": switch,
            "keep_ema": switch,
            "low_res_loss": switch,
            "class_weight_power": number(0),
        },
        checks=(_plan_file,),
    )

    def __init__(
        self,
        budget: str | float | None = None,
        val_share: float = 0.1,
        replan: bool = True,
        decay: bool = True,
        keep_ema: bool = False,
        low_res_loss: bool = True,
        class_weight_power: float = 0.5,
        plan: str | None = None,
        dirpath: str | None = None,
        test: bool = True,
        test_tta: Any = False,
    ) -> None:
        self.seconds = seconds(budget) if budget is not None else None
        # the recipe keys are taken here only so that the config builds: seg.train (budget_recipe) reads them
        # from the config, since they change what is built before this callback exists
        del decay, keep_ema, low_res_loss, class_weight_power
        self.val_share, self.dirpath, self.replan = float(val_share), dirpath, bool(replan)
        self.test_passes = 0 if not test else _passes(test_tta)
        self.plan: dict[str, Any] | None = json.loads(Path(plan).read_text()) if plan else None
        self.plan_given = plan is not None
        if self.plan is not None and self.seconds is None:
            self.seconds = float(self.plan["budget_s"])
        self.started = time.monotonic()
        self.used_before = 0.0  # seconds used by the earlier parts of a resumed run
        self._batch_starts: list[float] = []
        self._epoch_starts: list[float] = []  # this epoch's step starts once the plan is fixed (its revisions)
        self._recent_gaps: deque[list[float]] = deque(maxlen=RECENT_EPOCHS)  # the last epochs' step times
        self._last_batch_end: float | None = None
        self._sanity: float | None = None  # seconds of the sanity check's last batch (the first warms up)
        self._val_batch_started: float | None = None
        self._val_started: float | None = None
        self.val_times: list[float] = []
        self._test_started: float | None = None
        self.test_time: float | None = None
        self.fit_time: float | None = None
        self.stopped_early: str | None = None

    @property
    def active(self) -> bool:
        return self.seconds is not None

    def count_from(self, started: float) -> None:
        """Count the budget from ``started`` (``time.monotonic()`` at the start of the job, so that the data's
        preparation is in it); the first job of a process counts from the process's start (Python's imports)."""
        global _first_job
        age = _process_age() if _first_job else None
        _first_job = False
        self.started = min(started, time.monotonic() - age) if age is not None else started

    def used(self) -> float:
        return self.used_before + time.monotonic() - self.started

    def left(self) -> float:
        return self.seconds - self.used()

    # -- the trainer's limits follow the plan, not max_epochs ------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not self.active or stage != "fit":
            return
        if trainer.max_epochs not in (None, -1) or trainer.max_steps != -1:
            log.info(f"budget={self.seconds:g}s: the plan sets the run's length (trainer.max_epochs/max_steps ignored)")
        trainer.fit_loop.max_epochs = -1
        trainer.fit_loop.epoch_loop.max_steps = -1
        trainer.fit_loop.min_epochs = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.active and self.plan is not None:
            self._apply(trainer)  # a given plan, or the one restored with a checkpoint

    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if trainer.sanity_checking:
            self._val_batch_started = time.monotonic()

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking and self._val_batch_started is not None:
            self._sanity = time.monotonic() - self._val_batch_started

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._val_started = time.monotonic()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and self._val_started is not None:
            self.val_times.append(time.monotonic() - self._val_started)
            self._val_started = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.active:
            return
        self._epoch_starts = []
        if self.plan is None and trainer.current_epoch >= 1:  # the first epoch measured whole
            self._make_plan(trainer, time.monotonic())
        # Lightning reads the interval at each epoch's end: 1 validates this epoch, a huge one skips it
        validated = self.plan is None or self._validated(trainer.current_epoch)
        trainer.check_val_every_n_epoch = 1 if validated else _NEVER

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.active and self.plan is None:
            self._batch_starts.append(time.monotonic())
        elif self.active and not self.plan_given:
            self._epoch_starts.append(time.monotonic())

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.active:
            return
        now = time.monotonic()
        self._last_batch_end = now
        if self.plan is None:
            # an epoch too long to measure whole: plan once a tenth of the budget is spent training
            measured = len(self._batch_starts) > SKIPPED_STEPS + 2
            if measured and now - self._batch_starts[0] >= 0.1 * self.seconds:
                self._make_plan(trainer, now)
                trainer.check_val_every_n_epoch = 1 if self._validated(trainer.current_epoch) else _NEVER
            return
        if trainer.global_step >= self.plan["steps"]:
            trainer.should_stop = True
        elif self.left() < self._end_reserve() and not self.stopped_early:
            self.stopped_early = (
                f"budget: stopped at step {trainer.global_step} of the {self.plan['steps']} planned, "
                f"{self.left():.0f} s before the budget's end, to keep the validation and test stage in it "
                f"(its last steps ran slower than its plan measured)"
            )
            log.warning(self.stopped_early)
            trainer.should_stop = True
            # the epoch ends now: validate it
            trainer.check_val_every_n_epoch = 1

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # before the epoch's checkpoints are written (Lightning runs checkpoint callbacks last): a run
        # resumed from them follows the revised plan
        if self.active and self.plan is not None and not self.plan_given:
            # the first steps after the plan are left out of the first revision's (they may still warm up)
            skipped = SKIPPED_STEPS if not revisions(self.plan) else 0
            self._recent_gaps.append([b - a for a, b in itertools.pairwise(self._epoch_starts[skipped:])])
            if self._revisable(trainer):
                self._revise(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.active:
            self.fit_time = self.used()

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._test_started = time.monotonic()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._test_started is not None:
            self.test_time = time.monotonic() - self._test_started

    # -- the plan in checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if not self.active:
            return {}
        return {"plan": self.plan, "used": self.used(), "budget_s": self.seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not self.active or not state_dict:
            return
        if state_dict.get("plan") is not None and not self.plan_given:
            self.plan = state_dict["plan"]
        self.used_before = float(state_dict.get("used", 0.0))
        self.started = time.monotonic()

    # -- the plan ------------------------------------------------------------------------------------
    def _steps_per_epoch(self, trainer: pl.Trainer) -> int:
        return max(1, math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches))

    def _validated(self, epoch: int, plan: dict[str, Any] | None = None) -> bool:
        """Whether ``epoch`` is validated by the plan: every ``val_every``-th epoch counted back from the last
        (before a revision: as the first plan said)."""
        plan = plan or self.plan
        history = revisions(plan)
        if history and epoch < history[-1]["epoch"]:
            return epoch in plan.get("validated_before", history[-1].get("validated_before", ()))
        last, every = plan["last_epoch"], plan["val_every"]
        # the epochs before the plan was fixed were validated (the first one's validation is measured)
        return epoch < plan["planned_epoch"] or epoch >= last or (last - epoch) % every == 0

    def _costs(self, trainer: pl.Trainer, now: float) -> dict[str, float]:
        """What the first epoch (or its first steps) measured, in seconds."""
        # the later half of the steps measured: the first ones run slower (kernels, allocator and caches warm up)
        starts = self._batch_starts[max(SKIPPED_STEPS, len(self._batch_starts) // 2) :] or self._batch_starts
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        if not gaps and self._last_batch_end is not None and starts:
            gaps = [self._last_batch_end - starts[-1]]
        # the mean, stalls included: they are spent again in every epoch
        step = (statistics.fmean(gaps) if gaps else 1.0) * trainer.accumulate_grad_batches * LATER_STEPS
        val_batches = sum(trainer.num_val_batches) if trainer.num_val_batches else 0
        if self.val_times:
            val = self.val_times[-1]
        elif self._sanity:
            val = self._sanity * val_batches
        else:  # no sanity check: a validation batch counted as a training step (it is cheaper)
            val = step * val_batches
        epoch_end = 0.0
        if trainer.current_epoch >= 1 and self._last_batch_end is not None:
            # between the last step of epoch 0 and now: its validation, checkpoints, images, a new loader
            epoch_end = max(0.0, now - self._last_batch_end - (self.val_times[-1] if self.val_times else 0.0))
        per_val_batch = val / val_batches if val_batches else step
        test = self.test_passes * per_val_batch * max(val_batches, 1) * 1.1  # its batches: as many as val's
        return {"step_s": step, "val_s": val, "epoch_end_s": epoch_end, "test_s": test}

    def _end_reserve(self) -> float:
        """Seconds kept free after the last step: the final validation, the test stage, a margin."""
        c = self.plan["measured"]
        val = self.val_times[-1] if self.val_times else c["val_s"]
        return val + c["test_s"] + c["epoch_end_s"] + self._margin()

    def _margin(self) -> float:
        return 0.01 * self.seconds + 1.0

    def _revisable(self, trainer: pl.Trainer) -> bool:
        """Whether the plan may be revised at the end of this epoch: an epoch is left, and at least the epoch
        it was fixed in has been measured (enough of its steps)."""
        p = self.plan
        return (
            p is not None
            and not self.plan_given
            and p["planned_epoch"] <= trainer.current_epoch < p["last_epoch"]
            and (self.replan or not revisions(p))
            and sum(map(len, self._recent_gaps)) > 2
        )

    def _revise(self, trainer: pl.Trainer) -> None:
        """The plan made again with the step time of the epochs since it (the last ``RECENT_EPOCHS``) and the
        last validations' time, the epoch-end costs as measured before, the decay so far kept. The first
        revision is always made; a later one when the last step moves by more than ``REVISE_OFF`` of the
        steps left."""
        before, history = self.plan, revisions(self.plan)
        gaps = [g for epoch in self._recent_gaps for g in epoch]
        step = statistics.fmean(gaps) * trainer.accumulate_grad_batches
        costs = {**before["measured"], "step_s": step}
        if self.val_times:
            costs["val_s"] = statistics.fmean(self.val_times[-RECENT_EPOCHS:])
        epoch = trainer.current_epoch + 1  # the plan's remaining epochs start with the next
        plan = self._new_plan(trainer, costs, epoch)
        done = trainer.global_step
        if history and abs(plan["steps"] - before["steps"]) <= max(1, REVISE_OFF * (before["steps"] - done)):
            return
        if plan["steps"] <= done + 1:
            return  # nothing left to plan: the run ends (or stops early) by the plan it has
        plan["decay_from"] = before["decay_from"]  # the decay so far is kept
        plan["planned_epoch"] = before["planned_epoch"]  # epochs before this one were validated as planned
        plan["revisions"] = [
            *history,
            {"at_step": int(done), "epoch": epoch, "steps_before": before["steps"], "step_s": round(step, 4)},
        ]
        # which epochs before this revision the plans so far validated: a run following this plan does too
        plan["validated_before"] = [e for e in range(epoch) if self._validated(e, before)]
        self.plan = plan
        self._apply(trainer)
        self._write_plan(trainer)
        log.info(
            f"budget={self.seconds:g}s: plan revised at step {done}: {plan['steps']} steps instead of "
            f"{before['steps']} ({step:.3f} s a step in the last epochs, {before['measured']['step_s']:.3f} planned)"
        )

    def _make_plan(self, trainer: pl.Trainer, now: float) -> None:
        """Fix the plan from what the first epoch (or its first steps) measured; apply, log and write it."""
        costs = self._costs(trainer, now)
        self.plan = p = self._new_plan(trainer, costs, trainer.current_epoch)
        self._apply(trainer)
        spe, every = p["steps_per_epoch"], p["val_every"]
        log.info(
            f"budget={self.seconds:g}s: {p['steps']} steps ({p['steps'] / spe:.1f} epochs of {spe}), the lr decaying "
            f"from step {p['decay_from']}, validation {cadence(every)} ({p['validations']} in all); measured "
            f"{costs['step_s']:.3f} s a step, {costs['val_s']:.1f} s a validation, {costs['test_s']:.1f} s for the test"
        )
        self._write_plan(trainer)

    def _new_plan(self, trainer: pl.Trainer, costs: dict[str, float], epoch: int) -> dict[str, Any]:
        """The plan that fills what is left of the budget at ``costs``, its remaining epochs from ``epoch``:
        the most steps, and the most frequent validation within its share."""
        spe = self._steps_per_epoch(trainer)
        done = trainer.global_step
        left = self.left() - costs["test_s"] - self._margin()
        val_left = self.val_share * self.seconds - sum(self.val_times)

        def cost(steps: int, every: int) -> tuple[float, int]:
            last = math.ceil(steps / spe) - 1
            epochs = range(epoch, last + 1)
            vals = sum(1 for e in epochs if e >= last or (last - e) % every == 0)
            # each epoch left ends once (checkpoints, images, a new loader) and some are validated
            return (steps - done) * costs["step_s"] + len(epochs) * costs["epoch_end_s"] + vals * costs["val_s"], vals

        def most_steps(every: int) -> int:
            lo, hi = done + 1, done + 1
            while cost(hi, every)[0] <= left:
                lo, hi = hi, hi * 2
            while lo < hi:  # the most steps that fit
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if cost(mid, every)[0] <= left else (lo, mid - 1)
            return lo

        def fits(steps: int, every: int) -> bool:
            vals = cost(steps, every)[1]
            return vals * costs["val_s"] <= max(val_left, costs["val_s"]) or vals <= 1

        # the most frequent validation within its share; then, of the cadences giving as many validations
        # (e.g. only the last epoch's), the one that leaves the most steps
        first = next((e for e in range(1, 10_000) if fits(most_steps(e), e)), _NEVER)
        count = cost(most_steps(first), first)[1]
        options = [(most_steps(e), -e) for e in (*range(first, first + 20), _NEVER)]
        steps, every = max((s, e) for s, e in options if cost(s, -e)[1] == count and fits(s, -e))
        every = -every
        if steps <= done + 1:
            log.warning(f"budget={self.seconds:g}s: too short to train beyond step {done} on this machine")
        return {
            "budget_s": self.seconds,
            "steps": int(steps),
            "decay_from": int(done),
            "planned_epoch": int(epoch),
            "steps_per_epoch": spe,
            "last_epoch": int(math.ceil(steps / spe) - 1),
            "val_every": int(every),
            "validations": int(cost(steps, every)[1]) + len(self.val_times),
            "planned_at_s": round(self.used(), 2),
            "measured": {k: round(v, 4) for k, v in costs.items()},
        }

    def _write_plan(self, trainer: pl.Trainer) -> None:
        if self.dirpath and trainer.is_global_zero:
            atomic_write(Path(self.dirpath) / PLAN_FILE, json.dumps(self.plan, indent=2) + "\n")

    def _apply(self, trainer: pl.Trainer) -> None:
        spe = self._steps_per_epoch(trainer)
        if self.plan_given and self.plan["steps_per_epoch"] != spe:
            raise ConfigError(
                f"callbacks.budget.plan: the plan has {self.plan['steps_per_epoch']} steps per epoch, this run "
                f"{spe}; a plan is followed only on the same data and batch size (leave plan out to plan anew)"
            )
        knots = [(r["at_step"], r["steps_before"]) for r in revisions(self.plan)]
        for config in trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, PlannedDecay):
                config.scheduler.plan(self.plan["decay_from"], self.plan["steps"], knots)

    # -- the summary ---------------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """Planned against used time, for the run's summary and result.json."""
        if not self.active:
            return {}
        out = {"budget_s": self.seconds, "used_s": round(self.used(), 1)}
        if self.fit_time is not None:
            out["fit_s"] = round(self.fit_time, 1)
        if self.test_time is not None:
            out["test_s"] = round(self.test_time, 1)
        out["validations"] = len(self.val_times)
        out["validation_s"] = round(sum(self.val_times), 1)
        if self.plan:
            out["plan"] = self.plan
        if self.stopped_early:
            out["stopped_early"] = self.stopped_early
        return out


_first_job = True


def revisions(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """A plan's revisions in order (a plan of an earlier version holds at most one, as ``revised``)."""
    if "revisions" in plan:
        return list(plan["revisions"])
    return [plan["revised"]] if plan.get("revised") else []


def _process_age() -> float | None:
    """Seconds since this process started (Linux's /proc), or None where that cannot be read."""
    try:
        start_ticks = float(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def cadence(every: int) -> str:
    """How a plan's ``val_every`` reads."""
    return "in the last epoch only" if every >= _NEVER else "every epoch" if every == 1 else f"every {every} epochs"


def _passes(tta: Any) -> int:
    """Forward passes per test batch of a ``test_tta`` value (the photo, its flip, each scale's)."""
    if tta in (False, None):
        return 1
    if tta is True:
        return 2
    return 2 * len(tta)
