"""What a run leaves on disk for people and for sweeps, each file written atomically.

- ``result.json`` of a training run (every metric, epochs, wall time): read by :mod:`seg.run.sweep`;
- ``metrics.json`` and ``per_class.csv`` of an evaluation, and its table for the terminal.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seg.core.files import atomic_write, write_csv

RESULT_FILE = "result.json"  # written by seg.train at the end of a run (rank 0 only)


def finite(v: Any) -> float | None:
    """``v`` as a float, or None if it is not a finite number."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def write_result(output_dir: str | os.PathLike, metrics: Mapping[str, float], epochs: int, wall_time: float) -> Path:
    """``<output_dir>/result.json``: every metric of a finished run, its epoch count and wall time."""
    path = Path(output_dir) / RESULT_FILE
    data = {
        "metrics": {k: finite(v) for k, v in metrics.items()},
        "epochs": int(epochs),
        "wall_time_s": round(float(wall_time), 3),
    }
    atomic_write(path, json.dumps(data, indent=2) + "\n")
    return path


def read_result(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The ``result.json`` of a run dir, or None if the run did not finish."""
    path = Path(run_dir) / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


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
        f"max_side={metrics.get('max_side')})",
        f"acc (global masked pixel accuracy)   {pct(metrics['acc'])}",
        f"acc_per_image_mean (course metric)   {pct(metrics['acc_per_image_mean'])}",
        f"miou                                 {pct(metrics['miou'])}",
    ]
    return "\n".join(lines)
