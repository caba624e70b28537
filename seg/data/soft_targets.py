"""A teacher's soft targets: its class probabilities on every training photo, written once by ``python -m
seg.teach`` and read by the training split (``data.soft_targets=FILE``) to distil the teacher into the net.

Stored at a fraction of the photo's size (``stride``: the mean probability of each ``stride x stride``
block, as uint8 with 255 = 1), so that MSRC's 276 photos take about 30 MB; a sample expands its own
back to the photo's pixels before the augmentation moves it with the photo. The file holds tensors,
strings and numbers only: it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as nnf

from seg.core.errors import ConfigError
from seg.core.files import atomic_write
from seg.data.labels import LabelSet

FORMAT = "seg.soft_targets/1"


def shrink(probs: torch.Tensor, stride: int) -> torch.Tensor:
    """Probabilities (float CxHxW) -> uint8 C x ceil(H/stride) x ceil(W/stride), each the block's mean."""
    pooled = nnf.avg_pool2d(probs[None].float(), stride, ceil_mode=True, count_include_pad=False)[0]
    return pooled.mul(255).round_().clamp_(0, 255).to(torch.uint8)


def expand(small: torch.Tensor, stride: int, height: int, width: int) -> torch.Tensor:
    """:func:`shrink`'s blocks back at the photo's pixels (uint8 C x height x width)."""
    if -(-height // stride) != small.shape[-2] or -(-width // stride) != small.shape[-1]:
        raise ValueError(
            f"soft targets of {small.shape[-2]}x{small.shape[-1]} blocks of {stride} px do not cover a photo of "
            f"{height}x{width}: they were written for other photos; write them again with python -m seg.teach"
        )
    return small.repeat_interleave(stride, -2).repeat_interleave(stride, -1)[:, :height, :width]


def write(
    path: str | os.PathLike,
    names: Sequence[str],
    targets: Sequence[torch.Tensor],
    stride: int,
    labels: LabelSet,
    teacher: Mapping[str, Any],
) -> Path:
    """Write the soft targets of ``names`` (in order) with what made them (``teacher``: checkpoint, TTA)."""
    data = {
        "format": FORMAT,
        "names": list(names),
        "targets": list(targets),
        "stride": int(stride),
        "labels": labels.to_dict(),
        "teacher": dict(teacher),
    }
    buffer = io.BytesIO()
    torch.save(data, buffer)
    atomic_write(Path(path), buffer.getvalue())  # never a half-written file where one was
    return Path(path)


def read(path: str | os.PathLike) -> dict[str, Any]:
    """A soft-targets file, checked to be one (a clear error naming the file otherwise)."""
    path = Path(path)
    advice = "write one with python -m seg.teach ckpt_path=<a trained run's checkpoint>"
    if not path.is_file():
        raise ConfigError(f"data.soft_targets={path}: no such file; {advice}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated file, another format, pickled code: refused the same way
        raise ConfigError(f"data.soft_targets={path}: not a soft-targets file ({type(e).__name__}); {advice}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"data.soft_targets={path}: not a soft-targets file (format {FORMAT}); {advice}")
    return data


def for_items(path: str | os.PathLike, names: Sequence[str], labels: LabelSet) -> tuple[list[torch.Tensor], int]:
    """The soft targets of ``names`` (a training split's items) from the file at ``path``, and their stride.
    Refused when the file's classes are not the data's or it lacks some of the items."""
    data = read(path)
    theirs = LabelSet.from_dict(data["labels"])
    if theirs.names != labels.names:
        raise ConfigError(
            f"data.soft_targets={path}: its teacher knows {theirs.num_classes} classes ({', '.join(theirs.names[:4])}"
            f", ...), this data {labels.num_classes} ({', '.join(labels.names[:4])}, ...): write them with a "
            f"teacher trained on this data"
        )
    index = {n: i for i, n in enumerate(data["names"])}
    missing = [n for n in names if n not in index]
    if missing:
        raise ConfigError(
            f"data.soft_targets={path}: no soft targets for {len(missing)} of the {len(names)} training photos "
            f"(e.g. {', '.join(missing[:3])}): write them with python -m seg.teach and the same data settings "
            f"(data.folds/data.fold included)"
        )
    return [data["targets"][index[n]] for n in names], int(data["stride"])
