"""The learning-rate schedule of a budgeted run, :class:`PlannedDecay`: the peak lr until the run's plan
is fixed, then a decay that ends at the planned last step. Stepped per optimizer step; the plan itself
comes from :class:`seg.callbacks.budget.Budget` and travels in the scheduler's state (checkpoints)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.optim.lr_scheduler import LambdaLR


class PlanFactor:
    """The lr factor at a step: 1 up to ``start`` (the step the plan was fixed at), then ``shape``
    (linear or cosine) down to ``final`` at ``steps``. Unplanned (``steps`` None): 1. A plain object so
    that LambdaLR saves its attributes in the scheduler's state."""

    def __init__(self, shape: str = "linear", final: float = 0.0, warmup_steps: int = 0) -> None:
        if shape not in ("linear", "cosine"):
            raise ValueError(f"scheduler.shape={shape!r}: must be linear or cosine")
        self.shape, self.final, self.warmup_steps = shape, float(final), int(warmup_steps)
        self.start: int | None = None
        self.steps: int | None = None
        # the plan's revisions, [step revised at, the last step planned before], in order: at each the decay
        # so far is kept, and from there it goes on to ``final`` at the next plan's last step
        self.revisions: list[list[int]] = []

    def _decay(self, step: int, start: int, steps: int) -> float:
        done = min(1.0, (step - start) / max(1, steps - start))
        return 1.0 - done if self.shape == "linear" else 0.5 * (1.0 + math.cos(math.pi * done))

    def __call__(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.steps is None or self.start is None or step <= self.start:
            return warm
        # each plan's shape, from where the plan before it had got to, to its own last step
        level, since = 1.0, self.start
        for at, steps_before in self.revisions:
            if step <= at:
                return warm * (self.final + (1.0 - self.final) * level * self._decay(step, since, steps_before))
            level, since = level * self._decay(at, since, steps_before), at
        return warm * (self.final + (1.0 - self.final) * level * self._decay(step, since, self.steps))


class PlannedDecay(LambdaLR):
    """LambdaLR over :class:`PlanFactor`, for every parameter group (their own peak lr kept): stepped once
    per optimizer step (``interval``), planned by :meth:`plan`."""

    interval = "step"  # read by the module's configure_optimizers

    def __init__(
        self, optimizer: torch.optim.Optimizer, shape: str = "linear", final: float = 0.0, warmup_steps: int = 0
    ) -> None:
        # one factor object shared by the groups; not an attribute of its own, as LambdaLR's state holds
        # every attribute and a checkpoint must hold plain values only (weights_only=True)
        factor = PlanFactor(shape, final, warmup_steps)
        super().__init__(optimizer, lr_lambda=[factor] * len(optimizer.param_groups))

    @property
    def planned(self) -> tuple[int, int] | None:
        """(start, steps) of the plan, or None before it is fixed."""
        f = self.lr_lambdas[0]
        return None if f.steps is None else (f.start, f.steps)

    def plan(self, start: int, steps: int, revisions: Sequence[tuple[int, int]] = ()) -> None:
        """Decay from step ``start`` to the last step, ``steps``; ``revisions``: (the step the plan was
        revised at, its last step before) of each revision in order, the decay up to each kept."""
        f = self.lr_lambdas[0]
        f.start, f.steps = int(start), int(steps)
        f.revisions = [[int(at), int(before)] for at, before in revisions]
