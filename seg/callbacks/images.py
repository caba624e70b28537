"""Lightning callbacks that put predictions, the confusion matrix and per-class IoU in TensorBoard."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as nnf
from matplotlib.figure import Figure  # figures without pyplot: rendered off-screen for TensorBoard
from pytorch_lightning.loggers import TensorBoardLogger
from torchvision.utils import make_grid

from seg.data.labels import IMAGENET_MEAN, IMAGENET_STD
from seg.deploy.pictures import colorize
from seg.model.metrics import class_iou


def _tensorboard(trainer: pl.Trainer):
    """The SummaryWriter of the trainer's TensorBoard logger, if it has one."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def colour_tile(ids: torch.Tensor, palette: np.ndarray) -> torch.Tensor:
    """HxW class ids -> 3xHxW float image in the class colours, ignored pixels black (a tile of the grid)."""
    return torch.from_numpy(colorize(ids.cpu().numpy(), palette)).permute(2, 0, 1).float() / 255


def denormalize(x: torch.Tensor, normalized: bool) -> torch.Tensor:
    """Undo ImageNet normalisation for display."""
    if normalized:
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(-1, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(-1, 1, 1)
        x = x * std + mean
    return x.clamp(0, 1)


class PredictionImages(pl.Callback):
    """Every ``log_images_every_n_epochs`` epochs and at the end of fitting: a fixed set of validation
    images as rows of input | ground truth | prediction (tag ``val/predictions``)."""

    def __init__(self, log_images_every_n_epochs: int = 5, num_images: int = 6):
        self.every = log_images_every_n_epochs
        self.num_images = num_images

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writer = _tensorboard(trainer)
        dm = trainer.datamodule
        if writer is None or dm is None or "val" not in getattr(dm, "datasets", {}):
            return
        dataset = dm.datasets["val"]
        # the first images of the (deterministic) val split: the same ones every time
        samples = [dataset[i] for i in range(min(self.num_images, len(dataset)))]
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():  # one photo at a time: whole photos differ in size
            pred = [pl_module(x[None].to(pl_module.device)).argmax(1)[0].cpu() for x, _ in samples]
        pl_module.train(was_training)
        normalized = bool(getattr(dm, "hparams", {}).get("normalize", False))
        tiles, palette = [], pl_module.label_set.palette
        for (image, target), p in zip(samples, pred):
            tiles += [denormalize(image, normalized).cpu(), colour_tile(target, palette), colour_tile(p, palette)]
        h, w = max(t.shape[1] for t in tiles), max(t.shape[2] for t in tiles)  # tiles padded to the largest
        tiles = [nnf.pad(t, (0, w - t.shape[2], 0, h - t.shape[1])) for t in tiles]
        writer.add_image("val/predictions", make_grid(tiles, nrow=3, padding=2), trainer.global_step)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.every <= 0:
            return
        if (trainer.current_epoch + 1) % self.every == 0:
            self._log(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(trainer, pl_module)


def confusion_figure(confmat: np.ndarray, names: Sequence[str]) -> Figure:
    """Row-normalised confusion matrix (rows = ground truth) with class names."""
    rows = confmat.sum(1, keepdims=True)
    norm = np.divide(confmat, rows, out=np.zeros(confmat.shape, dtype=float), where=rows > 0)
    fig = Figure(figsize=(9, 8))
    ax = fig.subplots()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def iou_figure(iou: np.ndarray, names: Sequence[str]) -> Figure:
    """Per-class IoU bars; classes absent from ground truth and predictions are left empty."""
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    ax.bar(range(len(names)), np.nan_to_num(iou), color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU")
    fig.tight_layout()
    return fig


class TestReport(pl.Callback):
    """At test end: the confusion matrix and per-class IoU as images (``test/confusion_matrix``,
    ``test/per_class_iou``), from the module's ``test_confusion`` metric."""

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        confmat = pl_module.test_confusion.compute().cpu().numpy()  # synchronised across processes
        writer = _tensorboard(trainer)
        if writer is None or not trainer.is_global_zero:
            return
        names = pl_module.label_set.names
        writer.add_figure("test/confusion_matrix", confusion_figure(confmat, names), trainer.global_step)
        writer.add_figure("test/per_class_iou", iou_figure(class_iou(confmat), names), trainer.global_step)
