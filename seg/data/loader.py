"""The loader settings every data source shares, :class:`Loader`, with their defaults: the one place they
are written. Hydra reads them from here too (:func:`register_configs` stores them as the config
``data/shared/loader``, which ``conf/data/*.yaml`` compose with ``shared/loader@_here_``; a folder data
set's layout keys likewise as ``data/shared/layout``), so
``data.batch_size=4`` and ``MSRCDataModule(root, batch_size=4)`` start from the same values. No torch:
the deployment API's entry points compose configs without it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Loader:
    """How a data set is batched, cropped, augmented and split (the ``data.*`` keys of the same names)."""

    batch_size: int = 8
    num_workers: int = 0  # decoded images are cached in memory: worker processes rarely help on a small CPU
    cache: bool = True  # decode every photo and mask once per process and keep them (false: at every access)
    cache_max_gb: float | None = 4.0  # ... unless the decoded data set would take more than this
    crop_size: int | None = 240  # training: the crop of each photo (data=msrc: the course's CenterCrop(240))
    # the training crop of each epoch, e.g. (176, 176, 176, 240): cheaper crops early, the last entry for the
    # rest of the run (None: crop_size throughout)
    train_crop_sizes: tuple[int, ...] | None = None
    eval_crop_size: int | str | None = None  # val/test: a centre crop of this size, or None: whole photos
    eval_batch_size: int | None = None  # photos per val/test batch when scoring whole photos (None: batch_size)
    normalize: bool = True  # the encoder's ImageNet mean/std on the inputs (the reference recipe omits it)
    pin_memory: bool = False
    # training-split augmentation (val/test never): random scale of the whole photo, random crop_size crop
    # (padding with black / ignored), horizontal flip, colour jitter on the photo only
    augment: bool = True
    augment_scale: tuple[float, float] = (0.75, 1.25)  # resize factor range, drawn per photo
    augment_jitter: float = 0.3  # ColorJitter brightness/contrast/saturation (hue: a tenth of it); 0 = off
    # a teacher's soft targets for the training photos (a file written by seg.teach): the net learns them
    # beside the labels (model.distill_weight); None: the labels alone
    soft_targets: str | None = None
    seed: int = 0  # the training order and augmentation of each epoch follow from it and the epoch alone
    # k-fold cross-validation: train+val pooled into `folds` stratified, seeded folds; fold `fold` is val,
    # the rest train, test untouched (None: the data set's own split)
    folds: int | None = None
    fold: int = 0
    fold_seed: int = 0  # the folds themselves: the same for every training seed

    @classmethod
    def of(cls, settings: dict[str, Any]) -> Loader:
        """The loader keys taken out of ``settings``, as plain values (tuples, not Hydra's ListConfigs, so
        that checkpoints load with ``weights_only=True``)."""
        found = {f.name: settings.pop(f.name) for f in fields(cls) if f.name in settings}
        if "augment_scale" in found and found["augment_scale"] != "auto":  # auto: seg.data.recipe chooses
            found["augment_scale"] = tuple(float(v) for v in found["augment_scale"])
        if "train_crop_sizes" in found:
            sizes: Sequence[int] | None = found["train_crop_sizes"]
            found["train_crop_sizes"] = tuple(int(v) for v in sizes) if sizes else None
        return cls(**found)


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def register_configs() -> None:
    """Store the shared data keys as Hydra's ``data/shared/loader`` (the seed follows the run's ``seed``)
    and a folder data set's layout keys (:class:`seg.data.folder.Layout`) as ``data/shared/layout``."""
    from hydra.core.config_store import ConfigStore

    from seg.data.folder import Layout

    store = ConfigStore.instance()
    store.store(group="data/shared", name="loader", node=_plain({**asdict(Loader()), "seed": "${oc.select:seed,0}"}))
    # one folder pair per split: {images, masks} present (null), so that data.train.images=DIR needs no '+'
    pairs = {split: {"images": None, "masks": None} for split in ("train", "val", "test")}
    store.store(group="data/shared", name="layout", node=_plain({**asdict(Layout()), **pairs}))
