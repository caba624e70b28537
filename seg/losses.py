"""Training losses: cross-entropy (void ignored), optionally class-weighted, plus a soft Dice term."""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import nn

from seg.data import VOID


class SegLoss(nn.Module):
    """``CE(weight=w) + dice_weight * soft Dice``; void pixels (-1) count in neither term.

    ``class_weight_power`` p > 0 weights class c by ``(median_freq / freq_c) ** p`` (p = 1 is SegNet's
    median-frequency balancing, 0.5 a milder version), from the training split's pixel counts given
    to :meth:`set_class_counts`. The Dice term is 1 - mean Dice over the classes present in the batch
    (as segmentation_models_pytorch's multiclass DiceLoss), computed from the softmax.
    """

    def __init__(self, num_classes: int = 23, class_weight_power: float = 0.0, dice_weight: float = 0.0,
                 smooth: float = 1.0):
        super().__init__()
        if class_weight_power < 0 or dice_weight < 0:
            raise ValueError(f"model.loss: class_weight_power and dice_weight must be >= 0, got "
                             f"{class_weight_power} and {dice_weight}")
        self.num_classes, self.power, self.dice_weight, self.smooth = num_classes, class_weight_power, dice_weight, smooth
        # recomputed from the data at every fit; not in the state dict, so checkpoints of any loss load
        self.register_buffer("class_weights", torch.ones(num_classes), persistent=False)

    @property
    def needs_class_counts(self) -> bool:
        return self.power > 0

    def set_class_counts(self, counts: torch.Tensor) -> None:
        """Class weights from per-class pixel counts; classes with no pixels get weight 0."""
        counts = torch.as_tensor(counts, dtype=torch.float64)
        if counts.shape != (self.num_classes,):
            raise ValueError(f"expected {self.num_classes} class counts, got shape {tuple(counts.shape)}")
        freq = counts / counts.sum()
        present = freq > 0
        w = torch.zeros_like(freq)
        w[present] = (freq[present].median() / freq[present]) ** self.power
        self.class_weights.copy_(w.to(self.class_weights))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = self.class_weights if self.power > 0 else None
        loss = nnf.cross_entropy(logits, target, weight=weight, ignore_index=VOID)
        if self.dice_weight:
            loss = loss + self.dice_weight * self.dice(logits, target)
        return loss

    def dice(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """1 - mean soft Dice over the classes that occur in ``target`` (void masked out)."""
        valid = (target != VOID).unsqueeze(1)  # N1HW
        probs = logits.float().softmax(1) * valid
        onehot = nnf.one_hot(target.clamp(min=0), self.num_classes).permute(0, 3, 1, 2) * valid
        dims = (0, 2, 3)
        inter = (probs * onehot).sum(dims)
        total = probs.sum(dims) + onehot.sum(dims)
        present = onehot.sum(dims) > 0
        if not present.any():  # an all-void batch: no Dice signal
            return logits.sum() * 0.0
        score = (2 * inter + self.smooth) / (total + self.smooth)
        return 1 - score[present].mean()
