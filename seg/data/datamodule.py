"""What every data source's LightningDataModule shares, :class:`SegDataModule`: presets, batches, the epoch
sampler that makes a resumed run exact, k-fold splits of train+val, whole-photo evaluation batches and
the rules of the data group's keys. The sources, one file each: :mod:`seg.data.msrc_data` (the I2DL
archive) and :mod:`seg.data.folder_data` (any data set in folders)."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn
from torch.utils.data import DataLoader

from seg.core.errors import ConfigError, SegError
from seg.core.files import atomic_write
from seg.core.rules import ABSENT, Get, Settings, integer, is_int, is_number, number, switch
from seg.data import soft_targets
from seg.data.dataset import Reader, SegDataset, item_name
from seg.data.labels import LabelSet
from seg.data.loader import Loader
from seg.data.sampling import EpochSampler
from seg.data.splits import SPLITS, SPLITS_OF_STAGE, STAGE_OF_SPLIT, fold_count_problem, fold_of, folds_problem
from seg.data.survey import Read, Survey, tally
from seg.data.transforms import EvalPreset, TrainPreset, pad_collate

log = logging.getLogger(__name__)

SAME_AS_TRAINING = "crop_size"  # eval_crop_size's default for MSRC: the course scores CenterCrop(crop_size)


class DataCheckError(SegError):
    """The data set has problems (named one per line): training on it would go wrong."""


def _low_high(v: Any) -> str | None:
    ok = isinstance(v, list) and len(v) == 2 and all(is_number(x) for x in v) and 0 < v[0] <= v[1]
    return None if ok else "must be [low, high] with 0 < low <= high"


def _crop_sizes(v: Any) -> str | None:
    ok = v is None or (isinstance(v, list) and v and all(is_int(x) and x >= 32 for x in v))
    return None if ok else "must be a list of integers >= 32 (one per epoch), or null"


def _path_or_null(v: Any) -> str | None:
    ok = v is None or (isinstance(v, str) and v.strip() != "")
    return None if ok else "must be the path of a file written by python -m seg.teach, or null"


def _folds(get: Get, at: str) -> list[str]:
    folds, fold = get("folds"), get("fold")
    why = folds_problem(folds, 0 if fold is ABSENT else fold) if folds is not ABSENT else None
    return [why] if why else []


class SegDataModule(pl.LightningDataModule):
    """What every data set's datamodule shares; a subclass says where the items come from
    (:meth:`split_items`), how to read one (:attr:`reader`) and which classes there are (:meth:`label_set`).

    ``augment`` applies :class:`~seg.data.transforms.TrainPreset` (random scaled ``crop_size`` crops) to the
    training split only; val and test get :class:`~seg.data.transforms.EvalPreset`: a centre crop of
    ``eval_crop_size``, or whole photos (``None``, batches padded with the ignore index,
    ``eval_batch_size`` photos each). The training order and augmentation of every epoch follow from
    ``seed`` and the epoch alone (:mod:`seg.data.sampling`); the datamodule's state in a checkpoint says
    how far the interrupted epoch got, so a resumed run sees exactly the batches an uninterrupted one would.
    ``folds=K, fold=I``: train+val pooled and split into K stratified, seeded folds (``fold_seed``); fold I
    is the val split, the rest train; test never moves.
    """

    # the rules of the keys this class reads (data.KEY), applied by the settings check before any work
    SETTINGS: ClassVar[Settings] = Settings(
        {
            "batch_size": integer(1),
            "crop_size": integer(32, null=True, why="the encoder downsamples by 32; null: whole photos"),
            "num_workers": integer(0),
            "augment": switch,
            "augment_scale": _low_high,
            "train_crop_sizes": _crop_sizes,
            "normalize": switch,
            "cache": switch,
            "cache_max_gb": number(0, above=True),
            "eval_crop_size": integer(32, null=True, why="null: whole photos"),
            "eval_batch_size": integer(1, null=True),
            "fold_seed": integer(),
            "soft_targets": _path_or_null,
        },
        checks=(_folds,),
    )

    def __init__(self, **settings: Any) -> None:
        """``settings``: the :class:`~seg.data.loader.Loader` keys (their defaults are written there) and
        those of the subclass, which Lightning collects from its own signature."""
        super().__init__()
        loader = Loader.of(settings)
        if settings:
            raise TypeError(f"{type(self).__name__}: unknown settings {sorted(settings)}")
        # every argument, this class's and the data set's own, as plain values, defaults included
        self.save_hyperparameters()
        hp = self.hparams
        hp.pop("settings", None)
        hp.update(asdict(loader))
        if hp.eval_crop_size == SAME_AS_TRAINING:
            hp.eval_crop_size = hp.crop_size
        if why := folds_problem(hp.folds, hp.fold):
            raise ConfigError(why)
        self.datasets: dict[str, SegDataset] = {}
        self._resume: dict[str, int] = {}  # from a checkpoint: the interrupted epoch and its batches done

    # ------------------------------------------------------------------ what a data set provides ----

    def label_set(self) -> LabelSet:
        """The data set's classes (names, colours, ignore index); a folder data set's come from reading
        every mask once (the survey), hence a call."""
        raise NotImplementedError

    @property
    def reader(self) -> Reader:
        raise NotImplementedError

    def split_items(self, split: str) -> list[Hashable]:
        """The items a split lists, before any folds."""
        raise NotImplementedError

    @property
    def cached(self) -> bool:
        """Whether decoded photos and masks are kept in memory: ``cache``, unless the data set would not fit
        in ``cache_max_gb`` (then every access decodes from disk, with a log line once)."""
        if not self.hparams.cache:
            return False
        need = self.decoded_bytes() / 2**30
        limit = self.hparams.get("cache_max_gb")
        if limit is not None and need > limit:
            if not getattr(self, "_said_too_big", False):
                log.warning(
                    f"data.cache: the decoded data set needs {need:.1f} GB, over data.cache_max_gb={limit}: "
                    f"photos and masks are decoded at every access instead"
                )
                self._said_too_big = True
            return False
        return True

    def decoded_bytes(self) -> int:
        """What the decoded data set takes in memory (0 where unknown up front: small data sets)."""
        return 0

    # ------------------------------------------------------------------ splits and folds ------------

    def items(self, split: str) -> list[Hashable]:
        """The items of a split, with ``folds`` applied to train and val."""
        if not self.hparams.folds or split == "test":
            return self.split_items(split)
        pool = self._pool()
        if why := fold_count_problem(self.hparams.folds, len(pool)):
            raise ConfigError(why)
        folds = fold_of([n for n, _ in pool], self.classes_of(dict(pool)), self.hparams.folds, self.hparams.fold_seed)
        in_val = split == "val"
        return [item for name, item in pool if (folds[name] == self.hparams.fold) == in_val]

    def _pool(self) -> list[tuple[str, Hashable]]:
        return sorted({item_name(i): i for s in ("train", "val") for i in self.split_items(s)}.items())

    def item_names(self, split: str) -> list[str]:
        """The names of a split's items, with ``folds`` applied (what ``splits/<split>.txt`` lists)."""
        return [item_name(i) for i in self.items(split)]

    def fold_count_problem(self) -> str | None:
        """Why ``data.folds`` cannot cut this data set's train+val (:func:`seg.data.splits.fold_count_problem`)."""
        return fold_count_problem(self.hparams.folds, len(self._pool())) if self.hparams.folds else None

    def classes_of(self, items: Mapping[str, Hashable]) -> dict[str, list[int]]:
        """The classes each item shows (by name): read from the decoded masks."""
        dataset = SegDataset(list(items.values()), self.reader, cache=self.cached)
        return dataset.classes_of(self.label_set().num_classes)

    def survey(self) -> Survey:
        """Every split's pairs, sizes and class statistics, from the decoded data: what ``python -m
        seg.check`` prints (a folder data set also checks its files: :class:`FolderDataModule`)."""
        self.prepare_data()
        reads = {}
        for split in SPLITS:
            data = SegDataset(self.items(split), self.reader, cache=self.cached)
            masks = (data.raw(i)[1].astype("int64") for i in range(len(data)))
            reads[split] = [Read(n, ids, self.mask_mode, n) for n, ids in zip(data.names, masks)]
        return tally(reads, self.label_set(), True, [], self.how)

    mask_mode = "decoded"  # how the masks are stored, for the survey
    how = "the data set's own split"

    def write_splits(self, folder: str | Path) -> Path:
        """The item names of every split (after folds) as ``<folder>/{train,val,test}.txt`` and the classes as
        ``<folder>/classes.txt`` (``name R G B``): the run records exactly what it trained, validated and
        tested on, and with which classes."""
        folder = Path(folder)
        for split in SPLITS:
            names = self.item_names(split)
            atomic_write(folder / f"{split}.txt", "".join(f"{n}\n" for n in names))
        labels = self.label_set()  # and the classes in their order (those of an export's JSONs: found, sorted)
        rows = (f"{n} {r} {g} {b}\n" for n, (r, g, b) in zip(labels.names, labels.palette.tolist()))
        atomic_write(folder / "classes.txt", "".join(rows))
        return folder

    # ------------------------------------------------------------------ Lightning hooks -------------

    def transform(self, split: str) -> TrainPreset | EvalPreset:
        """The preset of a split: augmentation for training only, when asked for."""
        hp, ignore = self.hparams, self.label_set().ignore_index
        if hp.augment and split == "train":
            return TrainPreset(hp.crop_size, hp.normalize, hp.augment_scale, hp.augment_jitter, ignore)
        crop = hp.crop_size if split == "train" else hp.eval_crop_size
        return EvalPreset(crop, hp.normalize, ignore)

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS_OF_STAGE.get(stage, SPLITS):
            if split not in self.datasets:
                items = self.items(split)
                self.datasets[split] = SegDataset(items, self.reader, self.transform(split), cache=self.cached)
                if split == "train" and self.hparams.get("soft_targets"):
                    self._attach_soft_targets(self.datasets[split])

    def _attach_soft_targets(self, dataset: SegDataset) -> None:
        """The teacher's soft targets of every training item (``data.soft_targets``), read and checked."""
        path = self.hparams.soft_targets
        soft, stride = soft_targets.for_items(path, dataset.names, self.label_set())
        dataset.with_soft_targets(soft, stride)
        log.info(f"data.soft_targets={path}: a teacher's soft targets for all {len(soft)} training photos")

    def split_dataset(self, split: str) -> SegDataset:
        """The dataset of one split, set up on first use (the data set is fetched and checked first)."""
        if split not in self.datasets:
            self.prepare_data()
            self.setup(STAGE_OF_SPLIT[split])
        return self.datasets[split]

    def class_pixel_counts(self, split: str = "train") -> torch.Tensor:
        """Pixels per class over the split's full masks (for class-weighted losses); ignored pixels do not count."""
        counts = self.split_dataset(split).class_pixel_counts(self.label_set().num_classes)
        return torch.as_tensor(counts, dtype=torch.int64)

    def dataloader(self, split: str, sampler: EpochSampler | None = None) -> DataLoader:
        """A loader over one split (set up before), in order unless a sampler is given."""
        hp = self.hparams
        whole = split != "train" and hp.eval_crop_size is None  # whole photos of different sizes
        return DataLoader(
            self.datasets[split],
            batch_size=(hp.eval_batch_size or hp.batch_size) if whole else hp.batch_size,
            sampler=sampler,
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory,
            persistent_workers=hp.num_workers > 0,
            collate_fn=pad_collate(self.label_set().ignore_index) if whole else None,
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
