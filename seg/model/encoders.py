"""The encoders a net can be built on, in one table: a new encoder is one :class:`Encoder` entry here.

Each entry says how to build the encoder (torchvision's ImageNet classifier cut to a sequence of
blocks, weights through torchvision's weights API, so they are downloaded once into ``TORCH_HOME``),
at which block each output stride (4, 8, 16, 32) ends and with how many channels, how many
parameter tensors it has (the range of ``freeze_params``) and the input preprocessing its weights
were trained with. The table itself imports no torch: the settings check reads it before any work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from seg.core.errors import ConfigError
from seg.core.rules import integer, shown
from seg.data.labels import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Encoder:
    """One encoder: ``build(weights)`` gives an ``nn.Sequential`` of blocks whose ``stages[s]``-th
    output has stride ``s`` and ``channels[s]`` channels (the deepest block of that stride)."""

    title: str  # as the README and errors name it
    build: Callable[[str | None], nn.Sequential]
    stages: dict[int, int]  # output stride -> index of the block that ends it
    channels: dict[int, int]  # output stride -> channels of that block's output
    tensors: int  # parameter tensors of the built encoder: freeze_params is in [0, tensors]
    mean: tuple[float, float, float] = IMAGENET_MEAN  # the preprocessing its ImageNet weights expect
    std: tuple[float, float, float] = IMAGENET_STD


def _features(model: str, weights_enum: str) -> Callable[[str | None], nn.Sequential]:
    """torchvision's ``model(weights=...).features``: MobileNets and EfficientNets are blocks already."""

    def build(weights: str | None) -> nn.Sequential:
        import torchvision.models as tvm

        enum = getattr(tvm, weights_enum)
        return getattr(tvm, model)(weights=enum[weights] if weights else None).features

    return build


def _resnet(model: str, weights_enum: str) -> Callable[[str | None], nn.Sequential]:
    """A torchvision ResNet without its pooling and classifier: stem (stride 4), then its four layers."""

    def build(weights: str | None) -> nn.Sequential:
        import torchvision.models as tvm
        from torch import nn

        net = getattr(tvm, model)(weights=getattr(tvm, weights_enum)[weights] if weights else None)
        stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        return nn.Sequential(stem, net.layer1, net.layer2, net.layer3, net.layer4)

    return build


ENCODERS: dict[str, Encoder] = {
    # the default: its blocks are the checkpoints' encoder.N keys since the first release
    "mobilenet_v2": Encoder(
        "MobileNetV2",
        _features("mobilenet_v2", "MobileNet_V2_Weights"),
        stages={4: 3, 8: 6, 16: 13, 32: 18},
        channels={4: 24, 8: 32, 16: 96, 32: 1280},
        tensors=156,
    ),
    "mobilenet_v3_large": Encoder(
        "MobileNetV3-Large",
        _features("mobilenet_v3_large", "MobileNet_V3_Large_Weights"),
        stages={4: 3, 8: 6, 16: 12, 32: 16},
        channels={4: 24, 8: 40, 16: 112, 32: 960},
        tensors=170,
    ),
    "resnet18": Encoder(
        "ResNet-18",
        _resnet("resnet18", "ResNet18_Weights"),
        stages={4: 1, 8: 2, 16: 3, 32: 4},
        channels={4: 64, 8: 128, 16: 256, 32: 512},
        tensors=60,
    ),
    "efficientnet_b0": Encoder(
        "EfficientNet-B0",
        _features("efficientnet_b0", "EfficientNet_B0_Weights"),
        stages={4: 2, 8: 3, 16: 5, 32: 8},
        channels={4: 24, 8: 40, 16: 112, 32: 1280},
        tensors=211,
    ),
}


def _unknown(name: str) -> str:
    return f"model.net.encoder={name}: unknown encoder; choose one of {', '.join(ENCODERS)}"


def encoder_spec(name: str) -> Encoder:
    """The table's entry for ``name``; an unknown name is a clear error listing the choices."""
    if name not in ENCODERS:
        raise ConfigError(_unknown(name))
    return ENCODERS[name]


def encoder_problems(net: dict) -> list[str]:
    """What is wrong with a net config's encoder keys (``encoder``, ``freeze_params``), for the settings check."""
    name = net.get("encoder", "mobilenet_v2")
    if name not in ENCODERS:
        return [_unknown(name)]
    spec, freeze = ENCODERS[name], net.get("freeze_params", 0)
    why = integer(0, spec.tensors, why=f"{spec.title} has {spec.tensors}")(freeze)
    return [f"model.net.freeze_params={shown(freeze)}: {why}"] if why else []
