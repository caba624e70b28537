"""Logits with and without flip test-time augmentation."""

from __future__ import annotations

import torch

from seg.inference import predict_logits


class ColumnNet(torch.nn.Module):
    """Logits that depend on the column: flipping the input flips them, unless the net is symmetric."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.shape[-1]
        ramp = torch.linspace(-1, 1, w).expand(*x.shape[:1], 1, x.shape[-2], w)
        return torch.cat([ramp, -ramp, x[:, :1]], 1)


def test_flip_tta_averages_the_flipped_logits():
    x = torch.randn(2, 3, 4, 6)
    net = ColumnNet()
    plain = predict_logits(net, x)
    torch.testing.assert_close(plain, net(x))
    tta = predict_logits(net, x, tta=True)
    torch.testing.assert_close(tta, (net(x) + net(x.flip(-1)).flip(-1)) / 2)
    # the column ramp cancels out (it is antisymmetric), the per-pixel channel stays
    torch.testing.assert_close(tta[:, :2], torch.zeros_like(tta[:, :2]))
    torch.testing.assert_close(tta[:, 2], x[:, 0])
    assert not tta.requires_grad
