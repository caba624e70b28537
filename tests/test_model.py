"""The MobileNetV2 encoder-decoder: shapes, parameter budget, frozen tensors, pretrained weights."""

from __future__ import annotations

import io

import pytest
import torch

from seg.model import MobileNetSeg, count_parameters


@pytest.fixture(scope="module")
def net() -> MobileNetSeg:
    return MobileNetSeg(weights=None).eval()


@pytest.mark.parametrize("hw", [(240, 240), (213, 320), (64, 64), (70, 50)])
def test_output_has_input_size_and_23_classes(net, hw):
    with torch.no_grad():
        y = net(torch.randn(2, 3, *hw))
    assert y.shape == (2, 23, *hw)
    assert torch.isfinite(y).all()


def test_parameter_and_size_budget(net):
    n = count_parameters(net)
    assert 3_000_000 < n < 5_000_000
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    assert buf.tell() < 50 * 2**20


def test_first_50_encoder_tensors_frozen_rest_trainable(net):
    params = list(net.encoder.parameters())
    assert all(not p.requires_grad for p in params[:50])
    assert all(p.requires_grad for p in params[50:])
    assert all(p.requires_grad for m in (net.project, net.decoder, net.classifier) for p in m.parameters())
    assert count_parameters(net, trainable_only=True) < count_parameters(net)


def test_freeze_params_is_checked():
    with pytest.raises(ValueError, match="freeze_params must be in"):
        MobileNetSeg(weights=None, freeze_params=1000)
    assert all(p.requires_grad for p in MobileNetSeg(weights=None, freeze_params=0).parameters())


def test_imagenet_weights_load_through_torch_home(real_env):
    """torchvision's weights API finds the ImageNet file in TORCH_HOME (downloading it otherwise)."""
    from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

    pretrained = MobileNetSeg(weights="IMAGENET1K_V1")
    reference = mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V1).features
    for a, b in zip(pretrained.encoder.state_dict().values(), reference.state_dict().values()):
        torch.testing.assert_close(a, b)
    random = MobileNetSeg(weights=None)
    assert not torch.equal(random.encoder[0][0].weight, pretrained.encoder[0][0].weight)
