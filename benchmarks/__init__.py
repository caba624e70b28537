"""Benchmarks: ``python -m benchmarks.speed`` (training/inference speed), ``python -m benchmarks.data``
(data loading). Shared here: the machine description, the run's clock and output folder, the report writer,
and (from seg.core.files) the writing of a folder whole or not at all."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def now() -> dt.datetime:
    """The benchmarks' one clock: UTC, for the report's date and its default folder name."""
    return dt.datetime.now(dt.timezone.utc)


def default_out(started: dt.datetime) -> Path:
    """outputs/benchmarks/<date>_<time>/ (UTC) under the project root."""
    return ROOT / "outputs" / "benchmarks" / started.strftime("%Y-%m-%d_%H-%M-%S")


def machine() -> dict:
    """What the numbers were measured on: CPU model and kind (native bf16 or not), threads, versions."""
    import torch

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from seg.run.hardware import BF16_CPU_FLAGS, cpu_flags, cpu_kind

    flags = cpu_flags()
    return {
        "cpu": cpu,
        # AVX512-BF16 / AMX: bf16 autocast is fast there; without them it is emulated and slow
        "cpu_bf16": sorted(flags & set(BF16_CPU_FLAGS)),
        "cpu_kind": cpu_kind(flags),
        # int8 dot products in one instruction (ONNX Runtime's int8 kernels use them where present)
        "cpu_int8": sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8"}),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_report(out: Path, stem: str, report: dict, table: str) -> None:
    """Write ``<stem>.json`` and the Markdown ``<stem>.md`` to ``out`` and print the table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    (out / f"{stem}.md").write_text(table)
    print(table)
    print(f"written: {out / f'{stem}.json'}, {out / f'{stem}.md'}")
