"""The split names, which Lightning stage serves each, split list files, seeded splits and k-fold
assignment of a pool (NumPy only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seg.core.errors import SegError

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
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        name = line.strip()
        if name:
            names.append(next((name[: -len(s)] for s in suffixes if name.lower().endswith(s)), name))
    return names


def seeded_split(names: Sequence[str], fractions: Sequence[float], seed: int = 0) -> dict[str, list[str]]:
    """``names`` cut into train/val/test by ``fractions`` after a seeded shuffle: the same names and seed
    give the same split on every machine (the order of ``names`` does not matter)."""
    pool = sorted(names)
    order = np.random.default_rng(seed).permutation(len(pool))
    shares = np.asarray(fractions, dtype=float) / sum(fractions)
    cuts = np.round(np.cumsum(shares) * len(pool)).astype(int)
    bounds = [0, *cuts[:-1].tolist(), len(pool)]
    return {s: sorted(pool[i] for i in order[bounds[k] : bounds[k + 1]]) for k, s in enumerate(SPLITS)}


def folds_problem(folds: Any, fold: Any) -> str | None:
    """What is wrong with ``data.folds`` / ``data.fold`` (null, or K >= 2 folds and fold I in 0..K-1), or
    None: the one rule the settings check and the datamodule apply."""

    def whole(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if folds is None:
        return None
    if not whole(folds) or folds < 2:
        why = "k-fold cross-validation of train+val; null: the data set's split"
        return f"data.folds={folds}: must be an integer >= 2 or null ({why})"
    if not whole(fold) or not 0 <= fold < folds:
        return f"data.fold={fold}: must be in 0..{folds - 1} (data.folds={folds})"
    return None


def fold_count_problem(folds: int | None, photos: int) -> str | None:
    """Why ``data.folds`` cannot cut ``photos`` train+val photos (every fold needs 2 or more to validate
    on), or None: said by the check and before training, not after an epoch."""
    if not folds or photos >= 2 * folds:
        return None
    fewer = f"use data.folds={photos // 2} or fewer" if photos >= 4 else "use data.folds=null"
    return f"data.folds={folds}: train+val hold {photos} photos, too few for {folds} folds of 2 photos or more; {fewer}"


def fold_of(names: Sequence[str], classes: Mapping[str, Sequence[int]], folds: int, seed: int = 0) -> dict[str, int]:
    """The fold (0..folds-1) of every name: stratified by each item's rarest class, then seeded.

    Items are grouped by the rarest class they show (counted over all items), the rarest group first,
    each group shuffled with ``seed``, and dealt round-robin over the folds, one counter throughout: every
    fold gets its share of each rare class and the folds differ in size by at most one. An item with no
    class (all ignored) counts as its own group.
    """
    counts: dict[int, int] = {}
    for name in names:
        for c in set(classes.get(name, ())):
            counts[c] = counts.get(c, 0) + 1

    def rarest(name: str) -> tuple[int, int]:
        present = set(classes.get(name, ()))
        return min(((counts[c], c) for c in present), default=(0, -1))

    groups: dict[tuple[int, int], list[str]] = {}
    for name in sorted(names):
        groups.setdefault(rarest(name), []).append(name)
    rng, assigned, turn = np.random.default_rng(seed), {}, 0
    labels = rng.permutation(folds)  # which fold the dealing starts with, and its order, vary with the seed too
    for key in sorted(groups):
        for i in rng.permutation(len(groups[key])):
            assigned[groups[key][i]] = int(labels[turn % folds])
            turn += 1
    return assigned
