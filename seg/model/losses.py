"""Training losses: cross-entropy (ignored pixels left out), optionally class-weighted, label-smoothed,
focal or restricted to the hardest pixels (OHEM), plus a soft Dice term; and the distillation term
against a teacher's soft targets."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as nnf
from torch import nn

from seg.core.rules import Settings, number
from seg.data.labels import VOID


def nearest_targets(target: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Targets (N x H x W ids) resized to ``size`` by nearest neighbour: what a loss on
    logits below the input size compares against (``SegModule(low_res_loss=True)``)."""
    return nnf.interpolate(target[:, None].float(), size=tuple(size), mode="nearest")[:, 0].long()


def nearest_soft_targets(soft: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Soft targets (N x C x H x W uint8) resized to ``size`` by nearest neighbour, as :func:`nearest_targets`."""
    if tuple(soft.shape[-2:]) == tuple(size):
        return soft
    return nnf.interpolate(soft.float(), size=tuple(size), mode="nearest").to(soft.dtype)


def distillation_loss(logits: torch.Tensor, soft: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Hinton et al.'s distillation term per pixel: the cross-entropy of the net's softened distribution
    against a teacher's, times ``temperature**2`` (so its gradient keeps its scale), averaged over the
    pixels the teacher covers.

    ``soft``: the teacher's probabilities (N x C x H x W, uint8 with 255 = 1, as
    :mod:`seg.data.soft_targets` stores them; all 0 where there is no teacher, e.g. crop padding) at the
    logits' size. The temperature softens them as it would the teacher's logits: ``q ** (1/T)``, renormalised.
    """
    q = soft.float()
    covered = q.sum(1) > 0
    if not covered.any():
        return logits.sum() * 0.0
    if temperature != 1.0:
        q = q.pow(1.0 / temperature)
    q = q / q.sum(1, keepdim=True).clamp_min(1e-12)
    logp = (logits.float() / temperature).log_softmax(1)
    per_pixel = -(q * logp).sum(1)
    return per_pixel[covered].mean() * temperature**2


class SegLoss(nn.Module):
    """``CE(weight=w) + dice_weight * soft Dice``; pixels of ``ignore_index`` (the data set's: MSRC's void
    is -1) count in neither term.

    ``class_weight_power`` p > 0 weights class c by ``(median_freq / freq_c) ** p`` (p = 1 is SegNet's
    median-frequency balancing, 0.5 a milder version), from the training split's pixel counts given
    to :meth:`set_class_counts`. The Dice term is 1 - mean Dice over the classes present in the batch
    (as segmentation_models_pytorch's multiclass DiceLoss), computed from the softmax.
    ``label_smoothing`` eps > 0 is torch's: the target is (1 - eps) on the true class + eps spread
    evenly over all classes.

    ``focal_gamma`` g > 0 scales each pixel's cross-entropy by ``(1 - p_true) ** g`` (Lin et al.'s focal
    loss, softmax form); ``ohem_keep`` k < 1 averages only the hardest fraction k of the batch's labelled
    pixels, by their cross-entropy (online hard example mining, as the bootstrapped CE of Wu et al.).
    Both are written here on the per-pixel CE: torchvision's focal loss is the sigmoid, binary one, and
    the libraries that have these (segmentation_models_pytorch, mmsegmentation) bring a model zoo with them.
    With neither, the CE is torch's own mean, and the hot path is unchanged.
    """

    # the keys of model.loss this class reads, checked before any work
    SETTINGS: ClassVar[Settings] = Settings(
        {
            "class_weight_power": number(0),
            "dice_weight": number(0),
            "label_smoothing": number(0, 0.5),
            "focal_gamma": number(0, 5),
            "ohem_keep": number(0, 1, above=True, why="the share of labelled pixels kept; 1 keeps all"),
        }
    )

    def __init__(
        self,
        num_classes: int = 23,
        class_weight_power: float = 0.0,
        dice_weight: float = 0.0,
        label_smoothing: float = 0.0,
        focal_gamma: float = 0.0,
        ohem_keep: float = 1.0,
        smooth: float = 1.0,
        ignore_index: int = VOID,
    ):
        super().__init__()  # the values are checked with every setting (seg.run.settings)
        self.num_classes, self.power = num_classes, class_weight_power
        self.dice_weight, self.smooth, self.ignore_index = dice_weight, smooth, ignore_index
        self.label_smoothing, self.focal_gamma, self.ohem_keep = label_smoothing, focal_gamma, ohem_keep
        # recomputed from the data at every fit; not in the state dict, so checkpoints of any loss load
        self.register_buffer("class_weights", torch.ones(num_classes), persistent=False)
        self._counts_set = False

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
        self._counts_set = True

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.power > 0 and not self._counts_set:
            raise RuntimeError(
                "model.loss.class_weight_power > 0 needs the training split's class pixel counts: call "
                "set_class_counts(datamodule.class_pixel_counts('train')) before training (seg.train does)"
            )
        weight = self.class_weights if self.power > 0 else None
        ce_args = {"weight": weight, "ignore_index": self.ignore_index, "label_smoothing": self.label_smoothing}
        per_pixel = self.focal_gamma > 0 or self.ohem_keep < 1
        if not self.dice_weight and not per_pixel:
            return nnf.cross_entropy(logits, target, **ce_args)
        logp = logits.float().log_softmax(1)  # one softmax for every term
        if per_pixel:
            ce = self._hard_ce(logp, target, ce_args)
        elif self.label_smoothing:  # log_softmax of log-probabilities is the identity: the same CE
            ce = nnf.cross_entropy(logp, target, **ce_args)
        else:
            ce = nnf.nll_loss(logp, target, weight=weight, ignore_index=self.ignore_index)
        return ce + self.dice_weight * self._dice(logp.exp(), target) if self.dice_weight else ce

    def _hard_ce(self, logp: torch.Tensor, target: torch.Tensor, ce_args: dict) -> torch.Tensor:
        """The focal and/or OHEM cross-entropy: per-pixel CE, modulated, the hardest kept, then averaged as
        torch averages a weighted CE (divided by the kept pixels' class weights)."""
        valid = target != self.ignore_index
        if not valid.any():  # an all-void batch: no signal
            return logp.sum() * 0.0
        pixel = nnf.cross_entropy(logp, target, **ce_args, reduction="none")[valid]
        weight = ce_args["weight"]
        w = weight[target[valid]] if weight is not None else torch.ones_like(pixel)
        if self.focal_gamma:
            p_true = logp.gather(1, torch.where(valid, target, 0)[:, None])[:, 0][valid].exp()
            pixel = pixel * (1 - p_true).clamp_min(0) ** self.focal_gamma
        if self.ohem_keep < 1:
            hardest = pixel.topk(max(1, math.ceil(self.ohem_keep * pixel.numel()))).indices
            pixel, w = pixel[hardest], w[hardest]
        return pixel.sum() / w.sum().clamp_min(1e-12)

    def dice(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """1 - mean soft Dice over the classes that occur in ``target`` (void masked out)."""
        return self._dice(logits.float().softmax(1), target)

    def _dice(self, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # Per-class sums by gather / index_add / bincount rather than a one-hot NxCxHxW target:
        # the same value, ~3x faster forward + backward on 8x23x240x240 maps on the CPU.
        valid = target != self.ignore_index
        t = torch.where(valid, target, 0)
        labels = t[valid]
        if labels.numel() == 0:  # an all-void batch: no Dice signal
            return probs.sum() * 0.0
        p_true = probs.gather(1, t[:, None])[:, 0][valid]  # probability of the true class
        inter = torch.zeros(self.num_classes, dtype=probs.dtype, device=probs.device).index_add_(0, labels, p_true)
        pred_sum = (probs * valid[:, None]).sum((0, 2, 3))
        true_sum = torch.bincount(labels, minlength=self.num_classes).to(probs.dtype)
        present = true_sum > 0
        score = (2 * inter + self.smooth) / (pred_sum + true_sum + self.smooth)
        return 1 - score[present].mean()
