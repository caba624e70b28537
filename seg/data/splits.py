"""The split names, which Lightning stage serves each, and split list files (NumPy-free, torch-free)."""

from __future__ import annotations

from pathlib import Path

from seg.errors import SegError

SPLITS = ("train", "val", "test")
# the Lightning stage whose setup() builds a split's dataset
STAGE_OF_SPLIT = {"train": "fit", "val": "validate", "test": "test"}
# the splits a stage needs
SPLITS_OF_STAGE = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}


class SplitFileError(SegError, ValueError):
    """A split list is missing."""


def read_split(path: Path, suffixes: tuple[str, ...] = (".bmp",)) -> list[str]:
    """Item names listed in a split file, one per line; tolerates CRLF and blank lines, and drops a
    trailing image suffix (``11_16_s.bmp`` and ``11_16_s`` name the same item)."""
    if not path.is_file():
        raise SplitFileError(f"Split file missing: {path}")
    names = []
    for line in path.read_text().splitlines():
        name = line.strip()
        if name:
            names.append(next((name[: -len(s)] for s in suffixes if name.lower().endswith(s)), name))
    return names
