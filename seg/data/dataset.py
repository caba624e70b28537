"""One split of a data set as a torch Dataset, the decoded photos and masks kept in memory once per process.

Any data set: a list of items and a reader that turns an item into (photo HxWx3 uint8, class ids HxW).
:class:`MSRCDataset` is one split of the I2DL archive.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from seg.data import soft_targets
from seg.data.archive import load_item
from seg.data.splits import SPLITS, read_split
from seg.data.transforms import EvalPreset

Transform = Callable[..., tuple[torch.Tensor, ...]]
Reader = Callable[[Hashable], tuple[np.ndarray, np.ndarray]]  # hashable too: the decode cache's key


def item_name(item: Hashable) -> str:
    """An item's name, as split files, soft targets and folds know it: its ``name`` (a folder data set's
    pairs) or the item itself (MSRC's names)."""
    return str(getattr(item, "name", item))


@functools.cache
def decode(items: tuple[Hashable, ...], read: Reader) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Every photo and mask of ``items`` decoded once per process (image and mask decoding is slow)."""
    decoded = [read(i) for i in items]
    return tuple(d[0] for d in decoded), tuple(d[1] for d in decoded)


@dataclass(frozen=True)
class MSRCReader:
    """Reads an MSRC item (its name) from the extracted archive at ``root``."""

    root: Path

    def __call__(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return load_item(self.root, name)


class SegDataset(Dataset):
    """``items`` read by ``read``, each through ``transform(image uint8 3xHxW, target int64 1xHxW)``; by
    default the course's centre crop to 240 with ImageNet normalisation (:class:`EvalPreset`)."""

    def __init__(
        self, items: Sequence[Hashable], read: Reader, transform: Transform | None = None, cache: bool = True
    ) -> None:
        self.items, self.read = tuple(items), read
        self.names = tuple(item_name(i) for i in self.items)
        self.transform = transform if transform is not None else EvalPreset()
        # decoded once per process and kept in memory (104 MB for all three MSRC splits), or at every access
        self.images, self.targets = decode(self.items, read) if cache else (None, None)
        # a teacher's soft targets, one per item (seg.data.soft_targets): then a sample is (x, y, soft)
        self.soft: Sequence[torch.Tensor] | None = None
        self.soft_stride = 1

    def with_soft_targets(self, soft: Sequence[torch.Tensor], stride: int) -> SegDataset:
        """Every sample from now on carries its item's soft targets (:func:`seg.data.soft_targets.shrink`'s
        blocks of ``stride`` pixels), moved with the photo by the transform."""
        if len(soft) != len(self.items):
            raise ValueError(f"{len(soft)} soft targets for {len(self.items)} items")
        self.soft, self.soft_stride = tuple(soft), int(stride)
        return self

    def __len__(self) -> int:
        return len(self.items)

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The decoded photo (HxWx3 uint8) and class ids (HxW) of item ``i``."""
        if self.images is not None:
            return self.images[i], self.targets[i]
        return self.read(self.items[i])

    def __getitem__(self, key: int | tuple[int, ...]) -> tuple[torch.Tensor, ...]:
        """Item ``key``, or ``(index, seed[, size])`` from :class:`seg.data.sampling.EpochSampler`: then
        the transform's randomness comes from ``seed`` alone (the global RNG is left untouched) and its
        crop is ``size``. With soft targets, (photo, target, soft targets)."""
        i, seed, size = (*key, None)[:3] if isinstance(key, tuple) else (key, None, None)
        img, tgt = self.raw(i)
        image = torch.from_numpy(img).permute(2, 0, 1)  # uint8 CHW, no copy
        target = torch.from_numpy(tgt).to(torch.int64)[None]
        args: tuple = (image, target, size) if size else (image, target)
        kwargs = {}
        if self.soft is not None:
            kwargs["soft"] = soft_targets.expand(self.soft[i], self.soft_stride, *target.shape[-2:])
        if seed is None:
            return self.transform(*args, **kwargs)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(*args, **kwargs)

    def class_pixel_counts(self, num_classes: int) -> np.ndarray:
        """Pixels per class over the split's full (uncropped) masks; ignored pixels do not count."""
        counts = np.zeros(num_classes, dtype=np.int64)
        for i in range(len(self)):
            t = self.raw(i)[1]
            counts += np.bincount(t[(t >= 0) & (t < num_classes)].ravel(), minlength=num_classes)
        return counts

    def classes_of(self, num_classes: int) -> dict[str, list[int]]:
        """The classes each item shows (what stratified folds go by)."""
        out = {}
        for name, i in zip(self.names, range(len(self))):
            t = self.raw(i)[1]
            out[name] = np.unique(t[(t >= 0) & (t < num_classes)]).tolist()
        return out


class MSRCDataset(SegDataset):
    """One split of the extracted I2DL archive at ``root``."""

    def __init__(
        self, root: str | os.PathLike, split: str, transform: Transform | None = None, cache: bool = True
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root, self.split = Path(root), split
        names = read_split(self.root / f"{split}.txt")
        super().__init__(names, MSRCReader(self.root.resolve()), transform, cache)


def load_split(root: str, split: str) -> tuple[tuple[str, ...], tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The names, decoded photos and targets of one MSRC split (cached: see :func:`decode`)."""
    root_p = Path(root).resolve()
    names = tuple(read_split(root_p / f"{split}.txt"))
    return (names, *decode(names, MSRCReader(root_p)))
