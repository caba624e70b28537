"""The LightningModule: loss, masked metrics, optimizer and scheduler around a segmentation net."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassJaccardIndex

from seg.data import VOID


def _plain(cfg: Any) -> Any:
    """DictConfig -> plain dict, so that hyperparameters pickle and log cleanly."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


class SegModule(pl.LightningModule):
    """Trains ``net`` with cross-entropy (void ignored); logs masked pixel accuracy and mIoU.

    ``net``, ``optimizer`` and ``scheduler`` are Hydra configs (``_target_``; the latter two with
    ``_partial_: true``). They are stored as hyperparameters, so a checkpoint alone rebuilds the model.
    ``net`` may also be a ready ``nn.Module`` (then it is not stored).
    """

    def __init__(
        self,
        net: Mapping | nn.Module,
        optimizer: Mapping | None = None,
        scheduler: Mapping | None = None,
        num_classes: int = 23,
        monitor: str = "val/acc",
        channels_last: bool = False,
        compile: bool = False,
    ):
        super().__init__()
        is_module = isinstance(net, nn.Module)
        self.save_hyperparameters(
            {"net": None if is_module else _plain(net), "optimizer": _plain(optimizer), "scheduler": _plain(scheduler),
             "num_classes": num_classes, "monitor": monitor, "channels_last": channels_last}
        )
        self.net = net if is_module else instantiate(net)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if compile:
            # torch.compile in place (nn.Module.compile): state_dict keys stay unchanged. A runtime
            # speed option, not part of the model, so it is not stored in the checkpoint.
            self.net.compile()
        self.criterion = nn.CrossEntropyLoss(ignore_index=VOID)
        # average="micro": the masked pixel accuracy (the torchmetrics default, macro, is another metric).
        acc = MulticlassAccuracy(num_classes, average="micro", ignore_index=VOID)
        metrics = MetricCollection({"acc": acc, "miou": MulticlassJaccardIndex(num_classes, ignore_index=VOID)})
        # Separate metric state per stage, so validation never mixes into training numbers. mIoU
        # over a shuffled epoch of a changing net says little, so training tracks accuracy only.
        self.train_metrics = MetricCollection({"acc": acc.clone()}, prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        # pixel counts (ground truth x prediction) of the test split, drawn by seg.callbacks.TestReport
        self.test_confusion = MulticlassConfusionMatrix(num_classes, ignore_index=VOID)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, metrics: MetricCollection) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.criterion(logits, y)
        pred = logits.argmax(1)
        metrics.update(pred, y)
        if stage == "test":
            self.test_confusion.update(pred, y)
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True, batch_size=x.shape[0],
                 sync_dist=True)  # averaged over processes under DDP (a no-op in one process)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train", self.train_metrics)

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val", self.val_metrics)

    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()

    def test_step(self, batch, batch_idx):
        self._step(batch, "test", self.test_metrics)

    def predict_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).argmax(1)

    def configure_optimizers(self):
        if not self.hparams.optimizer:
            raise ValueError("No optimizer configured: choose one, e.g. optimizer=adam")
        # Frozen encoder tensors (requires_grad=False) are left out of the optimizer.
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = instantiate(self.hparams.optimizer)(params=params)
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler)(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.hparams.monitor, "interval": "epoch"},
        }
