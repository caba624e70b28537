"""The planned decay of a budgeted run: peak lr until the plan, then down to its last step; its plan in
the scheduler's state, loadable with weights_only=True."""

from __future__ import annotations

import io

import pytest
import torch

from seg.model.schedules import PlanFactor, PlannedDecay


def test_the_factor_holds_the_peak_until_the_plan_then_decays_to_its_end():
    f = PlanFactor("linear")
    assert [f(s) for s in (0, 10, 1000)] == [1.0, 1.0, 1.0]  # not planned yet
    f.start, f.steps = 10, 110
    assert f(10) == 1.0
    assert f(60) == pytest.approx(0.5)
    assert f(110) == 0.0 and f(500) == 0.0
    c = PlanFactor("cosine", final=0.1)
    c.start, c.steps = 0, 100
    assert c(50) == pytest.approx(0.1 + 0.9 * 0.5)
    assert c(100) == pytest.approx(0.1)
    w = PlanFactor("linear", warmup_steps=4)
    assert [w(s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    with pytest.raises(ValueError, match="linear or cosine"):
        PlanFactor("step")


def test_every_group_keeps_its_own_peak_and_the_plan_survives_a_checkpoint():
    w = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.Adam([{"params": [w[0]]}, {"params": [w[1]], "lr": 1e-4}], lr=1e-3)
    sched = PlannedDecay(opt)
    assert sched.planned is None and PlannedDecay.interval == "step"
    sched.plan(start=2, steps=6)
    for _ in range(4):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3 * 0.5, 1e-4 * 0.5])
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)  # plain values only

    opt2 = torch.optim.Adam([{"params": [w[0]]}, {"params": [w[1]], "lr": 1e-4}], lr=1e-3)
    again = PlannedDecay(opt2)
    again.load_state_dict(state)
    assert again.planned == (2, 6)
    again.step()
    # both groups follow the one restored plan
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx([1e-3 * 0.25, 1e-4 * 0.25])
