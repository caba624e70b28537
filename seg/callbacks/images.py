"""The pictures of a training run, each drawn once and handed to every logger that takes images
(:func:`seg.callbacks.loggers.log_picture` knows which do, and how)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as nnf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure  # figures without pyplot: rendered off-screen
from torchvision.utils import make_grid

from seg.callbacks.loggers import image_loggers, log_picture
from seg.data.labels import IMAGENET_MEAN, IMAGENET_STD
from seg.deploy.pictures import classes_shown, colorize, with_legend
from seg.model.metrics import class_iou


def figure_picture(fig: Figure) -> np.ndarray:
    """A matplotlib figure rendered off-screen as HxWx3 uint8."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


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


def prediction_grid(
    images: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    preds: Sequence[torch.Tensor],
    palette: np.ndarray,
    names: Sequence[str],
) -> np.ndarray:
    """Rows of input | ground truth | prediction (images in [0, 1]), with a legend of the classes the
    targets and predictions show, as HxWx3 uint8."""
    tiles = []
    for image, target, pred in zip(images, targets, preds):
        tiles += [image.cpu(), colour_tile(target, palette), colour_tile(pred, palette)]
    h, w = max(t.shape[1] for t in tiles), max(t.shape[2] for t in tiles)  # whole photos: padded to the largest
    tiles = [nnf.pad(t, (0, w - t.shape[2], 0, h - t.shape[1])) for t in tiles]
    grid = make_grid(tiles, nrow=3, padding=2)
    grid = (grid.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    shown = classes_shown(len(palette), *(t.cpu().numpy() for t in [*targets, *preds]))
    tile_side = max(int(images[0].shape[-2]), int(images[0].shape[-1])) if images else 0
    font_size = int(np.clip(tile_side / 12, 12, 24))  # legend text in proportion to one tile
    return np.asarray(with_legend(grid, [(c, names[c]) for c in shown], palette, font_size))


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


class Pictures(pl.Callback):
    """The run's pictures, each drawn once for every logger that takes images (tags as named):

    - ``val/predictions``: every ``log_images_every_n_epochs`` epochs and at the end of fitting, the
      first ``num_images`` validation images (the same ones every time) as rows of input | ground
      truth | prediction, with a legend of the classes they show;
    - ``test/confusion_matrix`` and ``test/per_class_iou`` at test end, from the module's ``test_confusion``.

    Names and colours come from the module's label set, so the pictures follow the data set.
    """

    def __init__(self, log_images_every_n_epochs: int = 5, num_images: int = 6):
        self.every = log_images_every_n_epochs
        self.num_images = num_images

    def _log_predictions(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loggers = image_loggers(trainer)
        dm = trainer.datamodule
        if not loggers or not trainer.is_global_zero or dm is None or "val" not in getattr(dm, "datasets", {}):
            return
        dataset = dm.datasets["val"]
        samples = [dataset[i] for i in range(min(self.num_images, len(dataset)))]
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            # one photo at a time: whole photos (data.eval_crop_size=null) differ in size
            pred = [pl_module(x[None].to(pl_module.device)).argmax(1)[0].cpu() for x, _ in samples]
        pl_module.train(was_training)
        normalized = bool(getattr(dm, "hparams", {}).get("normalize", False))
        images = [denormalize(s[0], normalized) for s in samples]
        labels = pl_module.label_set
        grid = prediction_grid(images, [s[1] for s in samples], pred, labels.palette, labels.names)
        log_picture(loggers, "val/predictions", grid, trainer.global_step)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.every <= 0:
            return
        if (trainer.current_epoch + 1) % self.every == 0:
            self._log_predictions(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log_predictions(trainer, pl_module)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        confmat = pl_module.test_confusion.compute().cpu().numpy()  # every process: the sync is collective
        loggers = image_loggers(trainer)
        if not loggers or not trainer.is_global_zero:
            return
        names, step = pl_module.label_set.names, trainer.global_step
        log_picture(loggers, "test/confusion_matrix", figure_picture(confusion_figure(confmat, names)), step)
        log_picture(loggers, "test/per_class_iou", figure_picture(iou_figure(class_iou(confmat), names)), step)
