"""Time-to-accuracy curves: ``python -m benchmarks.curves LABEL=RUN_DIR ... [--out FILE.png]``.

Reads each run's TensorBoard events (``val/acc`` and the wall time it was logged at) and draws val/acc
against wall minutes since the run's first event, one line per run, with the accuracy levels marked;
prints the minutes each run needed to reach them. Compare runs made on the same machine under the
same load (e.g. one after another on an idle machine).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LEVELS = (0.64, 0.85, 0.90)


def val_curve(run_dir: Path) -> list[tuple[float, float]]:
    """(minutes since the run's first event, val/acc) for every validation of the run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    start, points = None, []
    for f in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        ea = EventAccumulator(str(f))
        ea.Reload()
        first = min((e.wall_time for tag in ea.Tags()["scalars"] for e in ea.Scalars(tag)), default=None)
        if first is not None:
            start = first if start is None else min(start, first)
        if "val/acc" in ea.Tags()["scalars"]:
            points += [(e.wall_time, e.value) for e in ea.Scalars("val/acc")]
    if not points or start is None:
        raise SystemExit(f"{run_dir}: no val/acc in its tensorboard/ events")
    return [((t - start) / 60, v) for t, v in sorted(points)]


def minutes_to(curve: list[tuple[float, float]], level: float) -> float | None:
    return next((m for m, v in curve if v >= level), None)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.curves", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    p.add_argument("--out", type=Path, default=None, help="the picture (PNG); default: none, only the table")
    p.add_argument("--title", default="val/acc against wall time")
    args = p.parse_args(argv)
    curves = {}
    for spec in args.runs:
        label, _, path = spec.partition("=")
        curves[label] = val_curve(Path(path))
    table = {
        label: {f"{level:.0%}": minutes_to(c, level) for level in LEVELS} | {"best": max(v for _, v in c)}
        for label, c in curves.items()
    }
    print(json.dumps(table, indent=1))
    if args.out:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 4.5))
        ax = fig.subplots()
        for label, c in curves.items():
            ax.plot([m for m, _ in c], [100 * v for _, v in c], marker=".", label=label)
        for level in LEVELS:
            ax.axhline(100 * level, color="grey", lw=0.6, ls="--")
        ax.set_xlabel("wall minutes since the run started")
        ax.set_ylabel("val/acc (%)")
        lowest = min(100 * v for c in curves.values() for _, v in c)
        ax.set_ylim(max(0, min(50, 10 * (lowest // 10))), 100)  # down to the slowest run's first point
        ax.set_title(args.title)
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=110)
        print(f"written: {args.out}", file=sys.stderr)
    return table


if __name__ == "__main__":
    main()
