"""The objects of a run, built from its Hydra config: datamodule, LightningModule, trainer with its
callbacks and logger. Shared by the entry points (``seg.train``, ``seg.eval``)."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor

from seg.callbacks.loggers import build_loggers
from seg.data.labels import LabelSet
from seg.run.hardware import auto_precision, runs_on_cuda

log = logging.getLogger(__name__)


def build_datamodule(cfg: DictConfig, **overrides: Any) -> pl.LightningDataModule:
    """``cfg.data`` instantiated, with ``overrides`` on top of its keys."""
    return instantiate(cfg.data, **overrides)


def build_module(cfg: DictConfig, labels: LabelSet | None = None) -> pl.LightningModule:
    """``cfg.model`` with the ``optimizer`` and ``scheduler`` groups and the data's ``labels`` handed in
    (all stored in checkpoints; no labels: MSRC's)."""
    labels = labels.to_dict() if labels is not None else None
    return instantiate(cfg.model, optimizer=cfg.get("optimizer"), scheduler=cfg.get("scheduler"), labels=labels)


def build_trainer(cfg: DictConfig, purge_step: int | None = None) -> pl.Trainer:
    """``cfg.trainer`` with every configured callback and logger (:func:`seg.callbacks.loggers.build_loggers`;
    ``purge_step``: a run continued in its own folder).

    ``trainer.precision=auto`` becomes bf16-mixed where the hardware has native bfloat16, else 32-true
    (:func:`seg.run.hardware.auto_precision`, logged). ``trainer.sync_batchnorm`` applies where torch supports
    it (CUDA); elsewhere it is turned off with a note, so ``trainer=ddp trainer.accelerator=cpu`` works as typed.
    """
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    loggers = build_loggers(cfg.get("logger"), purge_step)
    if not loggers:  # logger=null: nothing to log the learning rate to (Lightning would refuse the monitor)
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    overrides: dict[str, Any] = {}
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if str(cfg.trainer.get("precision")) == "auto":
        overrides["precision"], why = auto_precision(accelerator)
        log.info(f"trainer.precision=auto: {overrides['precision']}, as {why}")
    if cfg.trainer.get("sync_batchnorm") and not runs_on_cuda(accelerator):
        log.info("trainer.sync_batchnorm: torch's SyncBatchNorm needs CUDA, so each process keeps its own BatchNorm")
        overrides["sync_batchnorm"] = False
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **overrides)


def build(
    cfg: DictConfig, purge_step: int | None = None
) -> tuple[pl.LightningDataModule, pl.LightningModule, pl.Trainer]:
    """Datamodule, module and trainer of a training run; the module gets the datamodule's label set. The
    data set is fetched and checked first: a bad data set stops the run before anything else is built."""
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    return datamodule, build_module(cfg, datamodule.label_set()), build_trainer(cfg, purge_step)


def hparams_for_table(cfg: DictConfig) -> dict:
    """The knobs worth a column in TensorBoard's HPARAMS table (nested; the logger flattens them)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    keep = {"data": ("batch_size", "crop_size", "normalize"), "trainer": ("max_epochs", "precision")}
    table = {k: {n: c[k].get(n) for n in names} for k, names in keep.items() if c.get(k)}
    table.update({k: c.get(k) or "none" for k in ("model", "optimizer", "scheduler")})
    table["seed"] = c.get("seed")
    return table
