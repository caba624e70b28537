"""The global random states travel in checkpoints (also through weights_only loading)."""

from __future__ import annotations

import numpy as np
import torch

from seg.callbacks.random_state import RandomState


def test_random_state_round_trip():
    import random

    cb = RandomState()
    state = cb.state_dict()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    cb.load_state_dict(torch.load(_roundtrip(state), weights_only=True))  # survives weights_only loading
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def _roundtrip(obj) -> object:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf
