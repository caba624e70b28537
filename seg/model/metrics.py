"""Metric maths of a scored split: the confusion matrix and what follows from it, per-image accuracy.

Void pixels (-1) never count. ``acc`` is the global masked pixel accuracy (trace / sum of the
confusion matrix, what ``val/acc`` and ``test/acc`` log); ``acc_per_image_mean`` is the course's
metric (the mean over images of each image's masked accuracy); ``miou`` is the mean IoU over the
classes present in the ground truth or the predictions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from seg.data.labels import MSRC, LabelSet


def per_image_accuracy(pred: torch.Tensor, target: torch.Tensor, ignore_index: int = MSRC.ignore_index) -> list[float]:
    """Masked pixel accuracy of each image of a batch (NaN for an image that is all ignored)."""
    valid = target != ignore_index
    correct = ((pred == target) & valid).flatten(1).sum(1)
    total = valid.flatten(1).sum(1)
    return [c / t if t else float("nan") for c, t in zip(correct.tolist(), total.tolist())]


def class_iou(confmat: np.ndarray) -> np.ndarray:
    """IoU per class from a (ground truth x prediction) pixel count matrix; NaN where a class is
    neither in the ground truth nor predicted."""
    tp = np.diag(confmat)
    union = confmat.sum(0) + confmat.sum(1) - tp
    return np.divide(tp, union, out=np.full(len(tp), np.nan), where=union > 0)


def metrics_from_confusion(
    confmat: np.ndarray, per_image_acc: list[float], names: tuple[str, ...] = MSRC.names
) -> dict[str, Any]:
    """Accuracy, IoUs and per-class figures from a (ground truth x prediction) pixel count matrix."""
    confmat = np.asarray(confmat, dtype=np.int64)
    tp, gt = np.diag(confmat), confmat.sum(1)
    iou = class_iou(confmat)
    acc = np.divide(tp, gt, out=np.full(len(tp), np.nan), where=gt > 0)
    images = np.array([a for a in per_image_acc if not np.isnan(a)])

    def num(v: float) -> float | None:
        return None if np.isnan(v) else float(v)

    return {
        "acc": float(tp.sum() / max(confmat.sum(), 1)),
        "acc_per_image_mean": float(images.mean()) if len(images) else None,
        # over classes in the split's ground truth or predictions (union > 0)
        "miou": float(np.nanmean(iou)) if not np.isnan(iou).all() else None,
        "per_class": [
            {"id": i, "name": names[i], "iou": num(iou[i]), "acc": num(acc[i]), "pixels": int(gt[i])}
            for i in range(len(tp))
        ],
        "confusion_matrix": confmat.tolist(),
        "num_pixels": int(confmat.sum()),
    }


class SplitScore:
    """Accumulates predictions of a split batch by batch; :meth:`compute` gives every metric above."""

    def __init__(self, labels: LabelSet = MSRC) -> None:
        self.labels = labels
        self.confusion = MulticlassConfusionMatrix(labels.num_classes, ignore_index=labels.ignore_index)
        self.per_image: list[float] = []

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.confusion.update(pred, target)
        self.per_image += per_image_accuracy(pred, target, self.labels.ignore_index)

    def compute(self) -> dict[str, Any]:
        out = metrics_from_confusion(self.confusion.compute().numpy(), self.per_image, self.labels.names)
        out["num_images"] = len(self.per_image)
        return out
