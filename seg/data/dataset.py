"""One split of MSRC-v2 as a torch Dataset, with the decoded images kept in memory once per process."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from seg.data.archive import load_item
from seg.data.splits import SPLITS, read_split
from seg.data.transforms import EvalPreset

Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@functools.cache
def load_split(root: str, split: str) -> tuple[tuple[str, ...], tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Decode every image and target of a split once per process (BMP + colour decoding is slow)."""
    root_p = Path(root)
    names = tuple(read_split(root_p / f"{split}.txt"))
    items = [load_item(root_p, n) for n in names]
    return names, tuple(i[0] for i in items), tuple(i[1] for i in items)


class MSRCDataset(Dataset):
    """One split: ``transform(image uint8 3xHxW, target int64 1xHxW)``, by default the course's
    centre crop to 240 with ImageNet normalisation (:class:`seg.data.transforms.EvalPreset`)."""

    def __init__(
        self, root: str | os.PathLike, split: str, transform: Transform | None = None, cache: bool = True
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root, self.split = Path(root), split
        self.transform = transform if transform is not None else EvalPreset()
        if cache:  # decoded once per process and kept in memory (104 MB for all three MSRC splits)
            self.names, self.images, self.targets = load_split(str(self.root.resolve()), split)
        else:  # decoded from the BMPs at every access
            self.names, self.images, self.targets = tuple(read_split(self.root / f"{split}.txt")), None, None

    def __len__(self) -> int:
        return len(self.names)

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The decoded photo (HxWx3 uint8) and target (HxW int8, void = -1) of item ``i``."""
        if self.images is not None:
            return self.images[i], self.targets[i]
        return load_item(self.root, self.names[i])

    def __getitem__(self, key: int | tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Item ``key``, or ``(index, seed[, size])`` from :class:`seg.data.sampling.EpochSampler`: then
        the transform's randomness comes from ``seed`` alone (the global RNG is left untouched) and its
        crop is ``size``."""
        i, seed, size = (*key, None)[:3] if isinstance(key, tuple) else (key, None, None)
        img, tgt = self.raw(i)
        image = torch.from_numpy(img).permute(2, 0, 1)  # uint8 CHW, no copy
        target = torch.from_numpy(tgt).to(torch.int64)[None]
        if seed is None:
            return self.transform(image, target, size) if size else self.transform(image, target)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image, target, size) if size else self.transform(image, target)

    def class_pixel_counts(self, num_classes: int) -> np.ndarray:
        """Non-void pixels per class over the split's full (uncropped) targets."""
        counts = np.zeros(num_classes, dtype=np.int64)
        for i in range(len(self)):
            t = self.raw(i)[1]
            counts += np.bincount(t[t >= 0].ravel(), minlength=num_classes)
        return counts
