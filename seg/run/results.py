"""What a run leaves on disk for people and for sweeps, each file written atomically.

- ``result.json`` of a training run (every metric, epochs, wall time): read by :mod:`seg.run.sweep`
  and, with the run's recipe and checkpoint, by the model picker of ``seg.demo`` (:func:`finished_runs`);
- ``metrics.json`` and ``per_class.csv`` of an evaluation, and its table for the terminal.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seg.core.files import atomic_write, write_csv

RESULT_FILE = "result.json"  # written by seg.train at the end of a run (rank 0 only)


def finite(v: Any) -> float | None:
    """``v`` as a float, or None if it is not a finite number."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def write_result(
    output_dir: str | os.PathLike,
    metrics: Mapping[str, float],
    epochs: int,
    wall_time: float,
    budget: Mapping[str, Any] | None = None,
) -> Path:
    """``<output_dir>/result.json``: every metric of a finished run, its epoch count and wall time, and for a
    budgeted run its budget, plan and the time used."""
    path = Path(output_dir) / RESULT_FILE
    data = {
        "metrics": {k: finite(v) for k, v in metrics.items()},
        "epochs": int(epochs),
        "wall_time_s": round(float(wall_time), 3),
    }
    if budget:
        data["budget"] = dict(budget)
    atomic_write(path, json.dumps(data, indent=2) + "\n")
    return path


def read_result(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The ``result.json`` of a run dir, or None if the run did not finish."""
    path = Path(run_dir) / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


# overrides that say where a run read and wrote, not what it trained: left out of its recipe
NOT_RECIPE = ("paths.", "hydra.", "data.url", "data.sha256", "data.num_workers", "callbacks.progress_bar")


@dataclass(frozen=True)
class FinishedRun:
    """A finished training run as a model picker lists it."""

    run_dir: Path
    checkpoint: Path  # the one its test/acc was measured with
    started: dt.datetime
    recipe: str  # its command-line overrides, "defaults" without any
    test_acc: float | None  # None: the run was not tested

    def label(self) -> str:
        acc = "not tested" if self.test_acc is None else f"test/acc {100 * self.test_acc:.1f}%"
        return f"{self.started:%Y-%m-%d %H:%M} · {self.recipe} · {acc}"


def _started(run_dir: Path) -> dt.datetime:
    """When a run started: from its folder names (``<date>/<time>``), else when Hydra wrote its config."""
    try:
        return dt.datetime.strptime(f"{run_dir.parent.name} {run_dir.name}", "%Y-%m-%d %H-%M-%S")
    except ValueError:
        return dt.datetime.fromtimestamp((run_dir / ".hydra" / "config.yaml").stat().st_mtime)


def _recipe(run_dir: Path) -> str:
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    kept = [str(o) for o in overrides if not str(o).lstrip("+~").startswith(NOT_RECIPE)]
    return " ".join(kept) or "defaults"


def _tested_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a run was tested with: the best val/acc one with ``test_ckpt=best``, else last.ckpt."""
    config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text()) or {}
    last = run_dir / "checkpoints" / "last.ckpt"
    best = sorted((run_dir / "checkpoints").glob("epoch_*.ckpt"), key=lambda p: p.stat().st_mtime)
    if config.get("test_ckpt") == "best" and best:
        return best[-1]
    return last if last.is_file() else (best[-1] if best else None)


def finished_runs(root: str | os.PathLike) -> list[FinishedRun]:
    """The training runs under ``root`` (at any depth) that finished (a ``result.json``) and kept a
    checkpoint, newest first; a run dir whose files cannot be read is left out."""
    runs = []
    for result in Path(root).expanduser().rglob(RESULT_FILE):
        run_dir = result.parent
        try:
            checkpoint = _tested_checkpoint(run_dir)
            if checkpoint is None:
                continue
            acc = finite((read_result(run_dir) or {}).get("metrics", {}).get("test/acc"))
            runs.append(FinishedRun(run_dir, checkpoint, _started(run_dir), _recipe(run_dir), acc))
        except (OSError, ValueError, AttributeError, TypeError, yaml.YAMLError):  # not a seg.train run dir: not listed
            continue
    return sorted(runs, key=lambda r: (r.started, str(r.run_dir)), reverse=True)


def write_eval_report(metrics: dict[str, Any], out_dir: Path) -> None:
    """``metrics.json`` (everything) and ``per_class.csv`` (IoU, accuracy and pixels per class)."""
    atomic_write(out_dir / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    write_csv(out_dir / "per_class.csv", metrics["per_class"], ["id", "name", "iou", "acc", "pixels"])


def format_table(metrics: dict[str, Any]) -> str:
    """The per-class table and the split's headline metrics, for the terminal and the log."""

    def pct(v: float | None) -> str:
        return "   -  " if v is None else f"{100 * v:6.2f}"

    lines = [f"{'class':10s} {'IoU %':>6s} {'acc %':>6s} {'pixels':>9s}"]
    lines += [f"{c['name']:10s} {pct(c['iou'])} {pct(c['acc'])} {c['pixels']:9d}" for c in metrics["per_class"]]
    lines += [
        "",
        f"split {metrics['split']} ({metrics['num_images']} images, tta={metrics['tta']}, "
        f"max_side={metrics.get('max_side')}, tile={metrics.get('tile')})",
        f"acc (global masked pixel accuracy)   {pct(metrics['acc'])}",
        f"acc_per_image_mean (course metric)   {pct(metrics['acc_per_image_mean'])}",
        f"miou                                 {pct(metrics['miou'])}",
    ]
    return "\n".join(lines)
