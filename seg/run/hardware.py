"""What this machine offers for training: native bfloat16 on its CPU or GPU, and the precision
``trainer.precision=auto`` picks from it.

bf16 autocast pays only with native support: on CPUs with AVX512-BF16 or AMX-BF16 it trains faster
than fp32, on AVX2-only CPUs it is emulated and several times slower. So ``auto`` picks
``bf16-mixed`` where the hardware has it and ``32-true`` everywhere else.
"""

from __future__ import annotations

import os
from pathlib import Path

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic
# the CPU flags to believe instead of /proc/cpuinfo's (space- or comma-separated): makes precision=auto
# choose as on another kind of CPU, e.g. to reproduce a run, and lets the tests run both choices anywhere
FLAGS_ENV = "SEG_CPU_FLAGS"


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (Linux; an empty set where /proc/cpuinfo is missing), or those that
    ``SEG_CPU_FLAGS`` names when it is set."""
    if (given := os.environ.get(FLAGS_ENV)) is not None:
        return set(given.replace(",", " ").split())
    try:
        with open(cpuinfo) as f:
            line = next(line for line in f if line.startswith("flags"))
    except (OSError, StopIteration):
        return set()
    return set(line.split(":", 1)[1].split())


def cpu_kind(flags: set[str] | None = None) -> str:
    """``AVX512-BF16`` (native bf16), ``AVX2`` or ``other``: the name to put next to a CPU speed figure."""
    flags = cpu_flags() if flags is None else flags
    if flags & set(BF16_CPU_FLAGS):
        return "AVX512-BF16"
    return "AVX2" if "avx2" in flags else "other"


def runs_on_cuda(accelerator: str) -> bool:
    """Whether ``trainer.accelerator`` puts the run on a CUDA GPU (``auto``: if there is one)."""
    import torch

    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def auto_precision(accelerator: str, flags: set[str] | None = None) -> tuple[str, str]:
    """The precision for ``trainer.precision=auto`` on ``accelerator``, and why."""
    import torch

    if runs_on_cuda(accelerator):
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", f"the GPU ({torch.cuda.get_device_name()}) supports bfloat16"
        return "32-true", "the GPU has no bfloat16 support"
    flags = cpu_flags() if flags is None else flags
    native = sorted(flags & set(BF16_CPU_FLAGS))
    if native:
        return "bf16-mixed", f"the CPU has native bfloat16 ({', '.join(native)})"
    return "32-true", "the CPU has no native bfloat16 (no avx512_bf16 / amx_bf16): bf16 would be emulated and slow"
