"""Segmentation nets: an encoder of the table in :mod:`seg.model.encoders`, a decoder, a 1x1
classifier, logits at the input size.

:class:`EncoderDecoder` holds the forward once (encoder -> projection -> decoder -> classifier ->
resize); the two nets differ only in their decoder: :class:`MobileNetSeg` (the course's
transposed-convolution reference) and :class:`MobileNetSkipSeg` (skip connections from the stride
16/8/4 features). Both take any encoder of the table (``encoder=``; MobileNetV2 by default, their
names kept for the checkpoints that name them). Attribute names are the checkpoints' state_dict keys:
keep them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as nnf
from torch import nn

from seg.core.rules import ABSENT, Get, Settings, one_of
from seg.model.encoders import encoder_problems, encoder_spec


def build_encoder(
    name: str = "mobilenet_v2", weights: str | None = "IMAGENET1K_V1", freeze_params: int = 0
) -> nn.Sequential:
    """The blocks of encoder ``name`` (:data:`~seg.model.encoders.ENCODERS`), ImageNet ``weights`` from
    torchvision's cache (None: random init); the first ``freeze_params`` parameter tensors frozen."""
    spec = encoder_spec(name)
    if not 0 <= freeze_params <= spec.tensors:
        raise ValueError(f"freeze_params={freeze_params}: {spec.title} has {spec.tensors} parameter tensors")
    blocks = spec.build(weights)
    for p in list(blocks.parameters())[:freeze_params]:
        p.requires_grad_(False)
    return blocks


def conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    """k x k convolution (same padding) + BatchNorm + ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def up_block(cin: int, cout: int) -> nn.Sequential:
    """Stride-2 3x3 transposed conv that exactly doubles H and W, + BatchNorm + ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _encoder_keys(get: Get, at: str) -> list[str]:
    """The encoder's name and freeze range, by the encoder table."""
    return encoder_problems({k: v for k in ("encoder", "freeze_params") if (v := get(k)) is not ABSENT})


def _three_skips(get: Get, at: str) -> list[str]:
    channels = get("decoder_channels")
    if channels in (None, ABSENT) or (isinstance(channels, list) and len(channels) == 3):
        return []
    return [f"{at}decoder_channels={channels}: the skip decoder needs 3 (stride 16, 8, 4)"]


class EncoderDecoder(nn.Module):
    """Encoder blocks -> 1x1 projection of the stride-32 features -> :meth:`decode` -> 1x1 classifier -> input size.

    Subclasses set ``SKIPS`` (output strides whose encoder features the decoder also gets, deepest first) and
    ``DECODER_CHANNELS`` (the default of ``decoder_channels``), and build their decoder in
    :meth:`build_decoder` from the channels of its stages and :attr:`skip_channels`.
    """

    SKIPS: tuple[int, ...] = ()
    DECODER_CHANNELS: tuple[int, ...] = ()
    # model.net's keys, checked before any work
    SETTINGS: ClassVar[Settings] = Settings({"context": one_of(None, "lraspp")}, checks=(_encoder_keys,))

    def __init__(
        self,
        num_classes: int = 23,
        weights: str | None = "IMAGENET1K_V1",
        freeze_params: int = 50,
        proj_channels: int = 256,
        decoder_channels: Sequence[int] | None = None,
        encoder: str = "mobilenet_v2",
        context: str | None = None,
    ) -> None:
        super().__init__()
        self.spec = encoder_spec(encoder)
        self.encoder = build_encoder(encoder, weights, freeze_params)
        # the decoder reads the encoder's output at these block indices (the SKIPS strides, deepest first)
        self.skip_blocks = tuple(self.spec.stages[s] for s in self.SKIPS)
        self.project = conv_bn_relu(self.spec.channels[32], proj_channels, k=1)
        # context="lraspp": the projection gated per channel by the photo's global average (the head of
        # LR-ASPP, MobileNetV3's segmentation head, as torchvision's LRASPPHead without its own low-level
        # branch: the skip decoder is that); about 0.33M parameters more for MobileNetV2
        self.context_gate = (
            nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Conv2d(self.spec.channels[32], proj_channels, 1, bias=False), nn.Sigmoid()
            )
            if context == "lraspp"
            else None
        )
        chans = [proj_channels, *(decoder_channels or self.DECODER_CHANNELS)]
        self.build_decoder(chans)
        self.classifier = nn.Conv2d(chans[-1], num_classes, 1)

    @property
    def skip_channels(self) -> tuple[int, ...]:
        """Channels of the ``SKIPS`` features, from the encoder's table entry."""
        return tuple(self.spec.channels[s] for s in self.SKIPS)

    def build_decoder(self, chans: list[int]) -> None:
        """The decoder's modules, from the channels of its input (the projection) and of each stage's output."""
        raise NotImplementedError

    def decode(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, full_size: bool = True) -> torch.Tensor:
        """Logits at the input size; ``full_size=False``: at the decoder's own resolution (for a cheaper loss)."""
        size = x.shape[-2:]
        skips: dict[int, torch.Tensor] = {}
        y = x
        for i, block in enumerate(self.encoder):
            y = block(y)
            if i in self.skip_blocks:
                skips[i] = y
        z = self.project(y)
        if self.context_gate is not None:
            z = z * self.context_gate(y)
        y = self.classifier(self.decode(z, [skips[i] for i in self.skip_blocks]))
        if not full_size:
            return y
        # The encoder rounds odd sizes up at each of its 5 stride-2 steps (240 -> 8 -> 256 after the
        # reference decoder; 213 -> 7 -> 224), and the skip decoder ends at stride 4: the logits are
        # resized back to the input size, so any H, W works. A traced or exported graph always keeps
        # the resize (a no-op when the sizes match): the size check would be frozen at the example's.
        if torch.jit.is_tracing() or torch.compiler.is_exporting() or y.shape[-2:] != size:
            y = nnf.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y


class MobileNetSeg(EncoderDecoder):
    """The I2DL reference encoder-decoder, within the 5M-parameter budget.

    Taken literally (a 3x3 transposed conv straight from 1280 to 256 channels) the reference has
    5.57M parameters; a 1x1 projection of the 1280 encoder channels to ``proj_channels`` first keeps
    the five-stage decoder and brings the total to about 3.5M.
    """

    DECODER_CHANNELS = (256, 128, 64, 32, 32)  # one stride-2 transposed-conv stage each

    def build_decoder(self, chans: list[int]) -> None:
        self.decoder = nn.Sequential(*(up_block(a, b) for a, b in itertools.pairwise(chans)))

    def decode(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        return self.decoder(x)


class MobileNetSkipSeg(EncoderDecoder):
    """An encoder with a U-Net-like decoder using skips from its stride-16/8/4 features.

    Each decoder stage upsamples bilinearly to the size of the next skip feature (so odd input sizes
    work), concatenates it (MobileNetV2: stride 16, 96 channels after ``features[13]``; stride 8, 32
    after ``features[6]``; stride 4, 24 after ``features[3]``) and fuses with a 3x3 conv + BN + ReLU.
    The stride-4 logits are resized to the input size. About 3.1M parameters with the defaults.
    """

    SKIPS = (16, 8, 4)  # output strides whose encoder features feed the decoder
    SETTINGS: ClassVar[Settings] = EncoderDecoder.SETTINGS | Settings(checks=(_three_skips,))
    DECODER_CHANNELS = (128, 64, 48)  # the fusion conv after each skip

    def build_decoder(self, chans: list[int]) -> None:
        self.fuse = nn.ModuleList(
            conv_bn_relu(cin + skip, cout) for cin, skip, cout in zip(chans[:-1], self.skip_channels, chans[1:])
        )

    def decode(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for s, fuse in zip(skips, self.fuse):
            x = nnf.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False)
            x = fuse(torch.cat([x, s], 1))
        return x
