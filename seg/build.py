"""The objects of a run, built from its Hydra config: datamodule, LightningModule, trainer with its
callbacks and logger. Shared by the entry points (``seg.train``, ``seg.eval``)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf


def build_datamodule(cfg: DictConfig, **overrides: Any) -> pl.LightningDataModule:
    """``cfg.data`` instantiated, with ``overrides`` on top of its keys."""
    return instantiate(cfg.data, **overrides)


def build_module(cfg: DictConfig) -> pl.LightningModule:
    """``cfg.model`` with the ``optimizer`` and ``scheduler`` groups handed in (they are stored in checkpoints)."""
    return instantiate(cfg.model, optimizer=cfg.get("optimizer"), scheduler=cfg.get("scheduler"))


def build_trainer(cfg: DictConfig) -> pl.Trainer:
    """``cfg.trainer`` with every configured callback and the logger."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    return instantiate(cfg.trainer, callbacks=callbacks, logger=logger)


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, pl.LightningModule, pl.Trainer]:
    """Datamodule, module and trainer of a training run."""
    return build_datamodule(cfg), build_module(cfg), build_trainer(cfg)


def hparams_for_table(cfg: DictConfig) -> dict:
    """The knobs worth a column in TensorBoard's HPARAMS table (nested; the logger flattens them)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    keep = {"data": ("batch_size", "crop_size", "normalize"), "trainer": ("max_epochs", "precision")}
    table = {k: {n: c[k].get(n) for n in names} for k, names in keep.items() if c.get(k)}
    table.update({k: c.get(k) or "none" for k in ("model", "optimizer", "scheduler")})
    table["seed"] = c.get("seed")
    return table
