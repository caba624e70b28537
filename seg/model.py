"""Segmentation networks: a MobileNetV2 encoder with a transposed-convolution or a skip-connection decoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as nnf
from torch import nn
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2


def mobilenet_v2_encoder(weights: str | None = "IMAGENET1K_V1", freeze_params: int = 0) -> nn.Sequential:
    """torchvision's MobileNetV2 ``features`` (stride 32, 1280 channels).

    Weights go through torchvision's weights API, so they are downloaded once into ``TORCH_HOME``.
    The first ``freeze_params`` parameter tensors get ``requires_grad=False``.
    """
    encoder = mobilenet_v2(weights=MobileNet_V2_Weights[weights] if weights else None).features
    params = list(encoder.parameters())
    if not 0 <= freeze_params <= len(params):
        raise ValueError(f"model.freeze_params must be in [0, {len(params)}], got {freeze_params}")
    for p in params[:freeze_params]:
        p.requires_grad_(False)
    return encoder


def conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    """k x k convolution (same padding) + BatchNorm + ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def up_block(cin: int, cout: int) -> nn.Sequential:
    """Stride-2 3x3 transposed conv that exactly doubles H and W, + BatchNorm + ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class MobileNetSeg(nn.Module):
    """The I2DL reference encoder-decoder, within the 5M-parameter budget.

    Taken literally (a 3x3 transposed conv straight from 1280 to 256 channels) the reference has
    5.57M parameters; a 1x1 projection of the 1280 encoder channels to ``proj_channels`` first keeps
    the five-stage decoder and brings the total to about 3.5M.
    """

    def __init__(
        self,
        num_classes: int = 23,
        weights: str | None = "IMAGENET1K_V1",
        freeze_params: int = 50,
        proj_channels: int = 256,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 32),
    ):
        super().__init__()
        self.encoder = mobilenet_v2_encoder(weights, freeze_params)
        self.project = conv_bn_relu(1280, proj_channels, k=1)
        chans = [proj_channels, *decoder_channels]
        self.decoder = nn.Sequential(*(up_block(a, b) for a, b in zip(chans[:-1], chans[1:])))
        self.classifier = nn.Conv2d(chans[-1], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        y = self.classifier(self.decoder(self.project(self.encoder(x))))
        # The encoder rounds odd sizes up at each of its 5 stride-2 steps (240 -> 8 -> 256 after
        # the decoder; 213 -> 7 -> 224), so the logits are resized back to the input size.
        if y.shape[-2:] != size:
            y = nnf.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class MobileNetSkipSeg(nn.Module):
    """MobileNetV2 encoder with a U-Net-like decoder using skips from its stride-16/8/4 features.

    The stride-32 output (1280 channels) is projected by a 1x1 conv to ``proj_channels``; each decoder
    stage upsamples bilinearly to the size of the next skip feature (so odd input sizes work),
    concatenates it (stride 16: 96 channels after ``features[13]``, stride 8: 32 after
    ``features[6]``, stride 4: 24 after ``features[3]``) and fuses with a 3x3 conv + BN + ReLU. The
    stride-4 logits are resized to the input size. About 3.1M parameters with the defaults.
    """

    SKIPS = (13, 6, 3)  # indices into mobilenet_v2().features whose outputs feed the decoder
    SKIP_CHANNELS = (96, 32, 24)

    def __init__(
        self,
        num_classes: int = 23,
        weights: str | None = "IMAGENET1K_V1",
        freeze_params: int = 50,
        proj_channels: int = 256,
        decoder_channels: Sequence[int] = (128, 64, 48),
    ):
        super().__init__()
        if len(decoder_channels) != len(self.SKIPS):
            raise ValueError(f"decoder_channels needs {len(self.SKIPS)} entries, got {list(decoder_channels)}")
        self.encoder = mobilenet_v2_encoder(weights, freeze_params)
        self.project = conv_bn_relu(1280, proj_channels, k=1)
        chans = [proj_channels, *decoder_channels]
        self.fuse = nn.ModuleList(
            conv_bn_relu(cin + skip, cout) for cin, skip, cout in zip(chans[:-1], self.SKIP_CHANNELS, chans[1:])
        )
        self.classifier = nn.Conv2d(chans[-1], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        skips = {}
        y = x
        for i, block in enumerate(self.encoder):
            y = block(y)
            if i in self.SKIPS:
                skips[i] = y
        y = self.project(y)
        for i, fuse in zip(self.SKIPS, self.fuse):
            s = skips[i]
            y = nnf.interpolate(y, size=s.shape[-2:], mode="bilinear", align_corners=False)
            y = fuse(torch.cat([y, s], 1))
        return nnf.interpolate(self.classifier(y), size=size, mode="bilinear", align_corners=False)
