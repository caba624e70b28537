"""Benchmarks: ``python -m benchmarks.speed`` (training/inference speed), ``python -m benchmarks.data`` (data loading)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def default_out() -> Path:
    """outputs/benchmarks/<date>_<time>/ under the project root."""
    return ROOT / "outputs" / "benchmarks" / dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def write_report(out: Path, stem: str, report: dict, table: str) -> None:
    """Write ``<stem>.json`` and the Markdown ``<stem>.md`` to ``out`` and print the table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    (out / f"{stem}.md").write_text(table)
    print(table)
    print(f"written: {out / f'{stem}.json'}, {out / f'{stem}.md'}")
