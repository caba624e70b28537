"""Logits of a trained net for scoring and prediction: plain, or averaged with test-time augmentation."""

from __future__ import annotations

import torch


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Logits; with ``tta`` the mean of the image's and its horizontal flip's logits."""
    logits = model(x)
    if tta:
        logits = (logits + model(x.flip(-1)).flip(-1)) / 2
    return logits
