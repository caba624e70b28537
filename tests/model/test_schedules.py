"""The planned decay of a budgeted run: peak lr until the plan, then down to its last step; its plan in
the scheduler's state, loadable with weights_only=True."""

from __future__ import annotations

import io
import itertools

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


def test_a_revised_plan_keeps_the_decay_so_far_and_ends_at_its_new_last_step():
    f = PlanFactor("linear")
    f.start, f.steps = 10, 110
    first = [f(s) for s in range(0, 131)]
    f.steps, f.revisions = 130, [[30, 110]]  # revised at step 30: 20 steps more
    revised = [f(s) for s in range(0, 131)]
    assert revised[:31] == first[:31]  # the steps already taken are as they were
    assert revised[30] == pytest.approx(0.8) and revised[80] == pytest.approx(0.4)  # on from 0.8 to 0 at 130
    assert revised[130] == 0.0 and revised[120] > 0 and all(a >= b for a, b in itertools.pairwise(revised))
    # revised again at step 80 (at 0.4), to 100: the steps before are kept, then on from 0.4 to 0 at 100
    f.steps, f.revisions = 100, [[30, 110], [80, 130]]
    again = [f(s) for s in range(0, 101)]
    assert again[:81] == revised[:81]
    assert again[90] == pytest.approx(0.2) and again[100] == 0.0 and again[99] > 0
    # the revision travels in the scheduler's state, as plain values
    w = torch.nn.Parameter(torch.zeros(1))
    sched = PlannedDecay(torch.optim.Adam([w], lr=1.0))
    sched.plan(10, 130, revisions=[(30, 110)])
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    other = PlannedDecay(torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0))
    other.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert [other.lr_lambdas[0](s) for s in range(131)] == revised
