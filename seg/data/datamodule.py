"""The LightningDataModule: MSRC-v2 train/val/test (276/59/56) under the course's CenterCrop(240) protocol."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn
from torch.utils.data import DataLoader

from seg.data.archive import ARCHIVE_DIR, DEFAULT_SHA256, DEFAULT_URL, prepare_data
from seg.data.dataset import MSRCDataset
from seg.data.labels import MSRC, LabelSet
from seg.data.sampling import EpochSampler
from seg.data.splits import SPLITS, SPLITS_OF_STAGE, STAGE_OF_SPLIT
from seg.data.transforms import EvalPreset, TrainPreset


class MSRCDataModule(pl.LightningDataModule):
    """Fetches the archive once (``url`` -> ``data_dir``, checked against ``sha256``) and serves the splits.

    ``augment`` applies :class:`~seg.data.transforms.TrainPreset` to the training split only; val and
    test always get the deterministic :class:`~seg.data.transforms.EvalPreset`. The training order and
    augmentation of every epoch follow from ``seed`` and the epoch alone (:mod:`seg.data.sampling`); the
    datamodule's state in a checkpoint says how far the interrupted epoch got, so a resumed run
    continues with exactly the batches an uninterrupted one would see.
    """

    def __init__(
        self,
        data_dir: str,
        url: str = DEFAULT_URL,
        batch_size: int = 8,
        num_workers: int = 0,
        crop_size: int = 240,
        normalize: bool = True,
        pin_memory: bool = False,
        augment: bool = False,
        augment_scale: Sequence[float] = (0.75, 1.25),
        augment_jitter: float = 0.3,
        cache: bool = True,
        seed: int = 0,
        sha256: str | None = DEFAULT_SHA256,
        train_crop_sizes: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        # plain tuples, not Hydra ListConfigs: checkpoints then load with torch.load(weights_only=True)
        augment_scale = tuple(float(v) for v in augment_scale)
        train_crop_sizes = tuple(int(v) for v in train_crop_sizes) if train_crop_sizes else None
        self.save_hyperparameters()
        self.datasets: dict[str, MSRCDataset] = {}
        self._resume: dict[str, int] = {}  # from a checkpoint: the interrupted epoch and its batches done

    @property
    def label_set(self) -> LabelSet:
        """The classes of the data set: MSRC-v2's 23, void (-1) ignored."""
        return MSRC

    @property
    def root(self) -> Path:
        return Path(self.hparams.data_dir) / ARCHIVE_DIR

    def prepare_data(self) -> None:
        prepare_data(self.hparams.url, self.hparams.data_dir, self.hparams.sha256)

    def transform(self, split: str) -> TrainPreset | EvalPreset:
        """The preset of a split: augmentation for training only, when asked for."""
        hp = self.hparams
        if hp.augment and split == "train":
            return TrainPreset(hp.crop_size, hp.normalize, hp.augment_scale, hp.augment_jitter)
        return EvalPreset(hp.crop_size, hp.normalize)

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS_OF_STAGE.get(stage, SPLITS):
            if split not in self.datasets:
                self.datasets[split] = MSRCDataset(self.root, split, self.transform(split), cache=self.hparams.cache)

    def split_dataset(self, split: str) -> MSRCDataset:
        """The dataset of one split, set up on first use (the data set is fetched first if need be)."""
        if split not in self.datasets:
            self.prepare_data()
            self.setup(STAGE_OF_SPLIT[split])
        return self.datasets[split]

    def class_pixel_counts(self, split: str = "train") -> torch.Tensor:
        """Non-void pixels per class over the split's full targets (for class-weighted losses)."""
        return torch.as_tensor(
            self.split_dataset(split).class_pixel_counts(self.label_set.num_classes), dtype=torch.int64
        )

    def dataloader(self, split: str, sampler: EpochSampler | None = None) -> DataLoader:
        """A loader over one split (set up before), in order unless a sampler is given."""
        return DataLoader(
            self.datasets[split],
            batch_size=self.hparams.batch_size,
            sampler=sampler,
            num_workers=self.hparams.num_workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSampler(len(self.datasets["train"]), self.hparams.seed, self.hparams.train_crop_sizes)
        if self._resume:  # a mid-epoch checkpoint: skip what every process already trained on
            world = self.trainer.world_size if self.trainer is not None else 1
            done = self._resume["batches_done"] * self.hparams.batch_size * world
            sampler.resume(self._resume["epoch"], done)
            self._resume = {}
        return self.dataloader("train", sampler)

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")

    def state_dict(self) -> dict[str, int]:
        """Saved in every checkpoint: the epoch under way and how many of its training batches are done."""
        trainer = self.trainer
        if trainer is None or trainer.state.fn != TrainerFn.FITTING:
            return {}
        epochs = trainer.fit_loop.epoch_progress.current
        if epochs.started == epochs.completed:  # between two epochs: the next one starts at its first batch
            return {}
        return {
            "epoch": epochs.started - 1,
            "batches_done": trainer.fit_loop.epoch_loop.batch_progress.current.completed,
        }

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume = dict(state_dict)
