"""Checkpoints as written by an earlier release of seg.train, kept as small JSON skeletons.

A real checkpoint is 12-14 MB of weights; what matters for compatibility is its structure: the
hyperparameters that rebuild the model, the datamodule settings, and the state_dict keys, shapes and
dtypes. ``skeleton()`` turns a checkpoint into JSON (every tensor replaced by its shape and dtype);
``materialise()`` turns it back into a loadable checkpoint with deterministic weights, so that the
tests can check that old checkpoints still load and score the same. Only torch is needed here.

Made with (at the release being frozen; each tests/fixtures/legacy_*.json names its commit):
    python tests/model/legacy_checkpoint.py freeze RUN/checkpoints/last.ckpt tests/fixtures/legacy_<net>.json
where RUN is a one-epoch tiny run of that release on the tests' synthetic archive. The files' extra
keys were measured with that release's code on ``materialise(checkpoint)``: ``logits_before`` (its
``seg.eval.load_model`` net on the input named there) and ``metrics_before`` (its ``seg.eval`` on the
synthetic test split).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

TENSOR = "__tensor__"


def skeleton(obj: Any) -> Any:
    """The checkpoint with tensors replaced by ``{"__tensor__": shape, "dtype": name}`` (JSON-able)."""
    if isinstance(obj, torch.Tensor):
        return {TENSOR: list(obj.shape), "dtype": str(obj.dtype).removeprefix("torch.")}
    if isinstance(obj, dict):
        return {str(k): skeleton(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [skeleton(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


def _fill(shape: list[int], dtype: str, name: str, gen: torch.Generator) -> torch.Tensor:
    dt = getattr(torch, dtype)
    if not dt.is_floating_point:
        return torch.zeros(shape, dtype=dt)
    t = torch.randn(shape, generator=gen, dtype=torch.float64) * 0.1
    if name.endswith("running_var"):
        t = t.abs() + 1.0  # a variance must be positive
    return t.to(dt)


def materialise(skel: Any, seed: int = 0) -> Any:
    """A loadable checkpoint from a skeleton: float tensors N(0, 0.1^2) from ``seed`` in key order
    (BatchNorm variances |x| + 1), integer tensors 0."""
    gen = torch.Generator().manual_seed(seed)

    def walk(obj: Any, name: str) -> Any:
        if isinstance(obj, dict) and TENSOR in obj:
            return _fill(obj[TENSOR], obj["dtype"], name, gen)
        if isinstance(obj, dict):
            return {k: walk(v, k) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v, name) for v in obj]
        return obj

    return walk(skel, "")


def freeze(ckpt_path: str, out: str, **extra: Any) -> None:
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    keep = {
        k: ckpt[k]
        for k in (
            "hyper_parameters",
            "datamodule_hyper_parameters",
            "state_dict",
            "epoch",
            "global_step",
            "pytorch-lightning_version",
            "hparams_name",
            "datamodule_hparams_name",
        )
        if k in ckpt
    }
    Path(out).write_text(json.dumps({**extra, "checkpoint": skeleton(keep)}, indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] != "freeze":
        sys.exit(__doc__)
    freeze(sys.argv[2], sys.argv[3], **dict(a.split("=", 1) for a in sys.argv[4:]))
