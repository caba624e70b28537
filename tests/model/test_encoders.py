"""The encoder table: every entry builds, its strides and channels are what the table says, it trains
under both decoders with `model.net.encoder=NAME`, and its ImageNet weights load through TORCH_HOME.

The weights are tested offline: a randomly initialised torchvision model's state_dict is written
into a temporary TORCH_HOME under the file name torchvision downloads, and must come back unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision.models as tvm
from hydra.utils import instantiate

from seg.data.labels import IMAGENET_MEAN, IMAGENET_STD
from seg.model.encoders import ENCODERS, encoder_problems
from seg.model.module import SegModule
from seg.model.nets import MobileNetSeg, MobileNetSkipSeg, build_encoder, count_parameters

from helpers import ROOT, compose_config

# name -> (torchvision builder, its weights enum): the classifiers each entry is cut from
TORCHVISION = {
    "mobilenet_v2": (tvm.mobilenet_v2, tvm.MobileNet_V2_Weights),
    "mobilenet_v3_large": (tvm.mobilenet_v3_large, tvm.MobileNet_V3_Large_Weights),
    "resnet18": (tvm.resnet18, tvm.ResNet18_Weights),
    "efficientnet_b0": (tvm.efficientnet_b0, tvm.EfficientNet_B0_Weights),
}


def test_the_table_has_the_laptop_encoders():
    assert set(ENCODERS) == set(TORCHVISION)


@pytest.mark.parametrize("name", list(ENCODERS))
def test_strides_channels_and_tensors_are_the_tables(name):
    spec, blocks = ENCODERS[name], build_encoder(name, weights=None).eval()
    assert len(list(blocks.parameters())) == spec.tensors
    seen, y = {}, torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for i, block in enumerate(blocks):
            y = block(y)
            seen[i] = (64 // y.shape[-1], y.shape[1])
    assert {s: seen[i] for s, i in spec.stages.items()} == {s: (s, c) for s, c in spec.channels.items()}
    assert spec.stages[32] == len(blocks) - 1  # the projection reads the last block
    for s, i in spec.stages.items():  # each stage ends its stride: the next block halves the size
        assert i + 1 == len(blocks) or seen[i + 1][0] > s
    # the preprocessing its weights were trained with, which data.normalize applies
    meta = TORCHVISION[name][1].IMAGENET1K_V1.transforms()
    assert spec.mean == tuple(meta.mean) == IMAGENET_MEAN and spec.std == tuple(meta.std) == IMAGENET_STD


@pytest.mark.parametrize("name", list(ENCODERS))
@pytest.mark.parametrize("option", ["mobilenet", "mobilenet_tconv"])
def test_every_encoder_trains_under_both_decoders(name, option):
    """model.net.encoder=NAME composes, builds and takes a training step; logits have the input size."""
    cfg = compose_config("train", f"model={option}", f"model.net.encoder={name}", "model.net.weights=null").model
    module = SegModule(**{k: v for k, v in cfg.items() if k != "_target_" and k != "_recursive_"})
    assert module.net.spec is ENCODERS[name]
    x, y = torch.randn(2, 3, 64, 48), torch.randint(0, 23, (2, 64, 48))
    logits = module(x)
    assert logits.shape == (2, 23, 64, 48)
    loss = module.criterion(logits, y)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in module.net.classifier.parameters())


@pytest.mark.parametrize("name", list(ENCODERS))
def test_imagenet_weights_load_through_torch_home(name, tmp_path, monkeypatch):
    builder, weights = TORCHVISION[name]
    reference = builder(weights=None).state_dict()  # random init, standing in for the download
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference, cache / Path(weights.IMAGENET1K_V1.url).name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    loaded = build_encoder(name, weights="IMAGENET1K_V1").state_dict()
    fresh = build_encoder(name, weights=None).state_dict()
    some = next(k for k in loaded if k.endswith("weight"))
    assert not torch.equal(loaded[some], fresh[some])  # the file was read, not a new random init
    # every encoder tensor is the file's, under the classifier's own key
    values = {tuple(v.shape): [] for v in reference.values()}
    for v in reference.values():
        values[tuple(v.shape)].append(v)
    assert all(any(torch.equal(t, v) for v in values[tuple(t.shape)]) for t in loaded.values())


def test_a_bad_encoder_or_freeze_range_is_named():
    assert encoder_problems({"encoder": "vgg16"})[0].startswith("model.net.encoder=vgg16: unknown encoder; choose")
    assert encoder_problems({"encoder": "resnet18", "freeze_params": 61}) == [
        "model.net.freeze_params=61: must be an integer in [0, 60] (ResNet-18 has 60)"
    ]
    assert encoder_problems({"encoder": "resnet18", "freeze_params": 60}) == []


def _readme_sizes() -> dict[tuple[str, str], int]:
    """The README's encoder table: (encoder, model option) -> parameters."""
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| ([\d,]+) \| ([\d,]+) \|", (ROOT / "README.md").read_text(), re.M)
    assert len(rows) == len(ENCODERS), "the README lists every encoder"
    sizes = {}
    for name, skip, tconv in rows:
        sizes[name, "mobilenet"] = int(skip.replace(",", ""))
        sizes[name, "mobilenet_tconv"] = int(tconv.replace(",", ""))
    return sizes


@pytest.mark.parametrize("name", list(ENCODERS))
def test_the_parameter_budget_is_reported_per_encoder(name):
    """The README's table holds each encoder's parameter count with each decoder; the course's < 5M
    bar is met by exactly the ones it says."""
    sizes = _readme_sizes()
    for option, cls in [("mobilenet", MobileNetSkipSeg), ("mobilenet_tconv", MobileNetSeg)]:
        net = instantiate(
            compose_config("train", f"model={option}", f"model.net.encoder={name}", "model.net.weights=null").model.net
        )
        assert isinstance(net, cls) and count_parameters(net) == sizes[name, option], (name, option)
    within = {n for (n, o), c in sizes.items() if o == "mobilenet" and c < 5_000_000}
    assert within == {"mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0"}
