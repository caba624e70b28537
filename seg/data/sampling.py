"""The order and the augmentation randomness of each training epoch, as a function of (seed, epoch) alone.

:class:`EpochSampler` shuffles the split anew every epoch from its own generator seeded by the run's
seed and the epoch (Lightning calls ``set_epoch``), and hands every index out with a per-sample seed
that the dataset uses for that sample's augmentation. Nothing depends on the global RNG state, the
number of data loader workers or what ran before: a run resumed from a checkpoint (even one written
mid-epoch, see :meth:`EpochSampler.resume`) sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[tuple[int, ...]]):
    """Yields ``(index, sample_seed)`` pairs: a fresh permutation of ``range(n)`` each epoch.

    With ``crop_sizes``, ``(index, sample_seed, crop)``: the training crop of epoch e is
    ``crop_sizes[min(e, len - 1)]`` (smaller, cheaper crops early, the full size at the end).
    """

    def __init__(self, n: int, seed: int = 0, crop_sizes: Sequence[int] | None = None) -> None:
        self.n, self.seed, self.epoch = n, int(seed), 0
        self.crop_sizes = tuple(int(c) for c in crop_sizes) if crop_sizes else ()
        self._skip: tuple[int, int] | None = None  # (epoch, samples already trained on in it)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume(self, epoch: int, samples_done: int) -> None:
        """Skip the first ``samples_done`` samples of ``epoch`` (trained on before a mid-epoch stop)."""
        self._skip = (int(epoch), int(samples_done))

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        seeds = torch.randint(0, 2**62, (self.n,), generator=g).tolist()
        start = 0
        if self._skip is not None and self._skip[0] == self.epoch:
            start = min(self._skip[1], self.n)
        self._skip = None  # only the interrupted epoch is shortened
        if self.crop_sizes:
            crop = self.crop_sizes[min(self.epoch, len(self.crop_sizes) - 1)]
            return iter([(i, s, crop) for i, s in zip(order, seeds)][start:])
        return iter(list(zip(order, seeds))[start:])
