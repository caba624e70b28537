"""The nets: output shapes, parameter budget, frozen tensors, skip features, pretrained weights."""

from __future__ import annotations

import io

import pytest
import torch
from hydra.utils import instantiate

from seg.model.nets import MobileNetSeg, MobileNetSkipSeg, count_parameters

from helpers import compose_config

NETS = {"mobilenet": MobileNetSkipSeg, "mobilenet_tconv": MobileNetSeg}  # conf/model option -> net


@pytest.fixture(scope="module", params=list(NETS))
def net(request) -> torch.nn.Module:
    return NETS[request.param](weights=None).eval()


@pytest.mark.parametrize("hw", [(240, 240), (213, 320), (64, 64), (70, 50)])
def test_output_has_input_size_and_23_classes(net, hw):
    with torch.no_grad():
        y = net(torch.randn(2, 3, *hw))
    assert y.shape == (2, 23, *hw)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("option", list(NETS))
def test_every_model_option_is_within_the_budget(option):
    """Each conf/model option: < 5M parameters and < 50 MB of saved weights."""
    cfg = compose_config("train", f"model={option}", "model.net.weights=null").model
    net = instantiate(cfg.net)
    assert isinstance(net, NETS[option])
    n = count_parameters(net)
    assert 2_000_000 < n < 5_000_000, n
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    assert buf.tell() < 50 * 2**20
    assert cfg.compile is False  # compile stays an opt-in speed lever


def test_reference_net_has_the_course_size_and_decoder():
    net = MobileNetSeg(weights=None)
    assert count_parameters(net) == 3_539_959 and count_parameters(net, trainable_only=True) == 3_490_871
    assert [b[0].out_channels for b in net.decoder] == [256, 128, 64, 32, 32]
    assert all(b[0].stride == (2, 2) for b in net.decoder)


@pytest.mark.parametrize("cls", list(NETS.values()))
def test_first_50_encoder_tensors_frozen_rest_trainable(cls):
    net = cls(weights=None, freeze_params=50)
    params = list(net.encoder.parameters())
    assert all(not p.requires_grad for p in params[:50])
    assert all(p.requires_grad for p in params[50:])
    head = [m for name, m in net.named_children() if name != "encoder"]
    assert all(p.requires_grad for m in head for p in m.parameters())
    assert count_parameters(net, trainable_only=True) < count_parameters(net)
    assert all(p.requires_grad for p in cls(weights=None, freeze_params=0).parameters())


def test_skip_net_uses_the_stride_4_8_16_features():
    """Every decoder stage gets its skip (MobileNetV2's blocks 13, 6, 3: the checkpoints' layout)."""
    net = MobileNetSkipSeg(weights=None).eval()
    assert net.skip_blocks == (13, 6, 3)
    seen = {}
    hooks = [
        net.encoder[i].register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, out.shape))
        for i in net.skip_blocks
    ]
    with torch.no_grad():
        net(torch.randn(1, 3, 240, 240))
    for h in hooks:
        h.remove()
    assert seen == {13: (1, 96, 15, 15), 6: (1, 32, 30, 30), 3: (1, 24, 60, 60)}
    assert net.skip_channels == (96, 32, 24)
    assert [f[0].in_channels for f in net.fuse] == [256 + 96, 128 + 32, 64 + 24]


def test_imagenet_weights_load_through_torch_home(real_env):
    """torchvision's weights API finds the ImageNet file in TORCH_HOME (downloading it otherwise)."""
    from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

    pretrained = MobileNetSeg(weights="IMAGENET1K_V1")
    reference = mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V1).features
    for a, b in zip(pretrained.encoder.state_dict().values(), reference.state_dict().values()):
        torch.testing.assert_close(a, b)
    random = MobileNetSeg(weights=None)
    assert not torch.equal(random.encoder[0][0].weight, pretrained.encoder[0][0].weight)


@pytest.mark.parametrize("cls", [MobileNetSeg, MobileNetSkipSeg])
def test_a_traced_net_keeps_the_final_resize_for_every_size(cls):
    # traced at 64x64, where the reference decoder's output already has the input size (eager mode
    # then skips the resize): the trace must still resize other sizes back to the input
    net = cls(weights=None).eval()
    with torch.no_grad():
        traced = torch.jit.trace(net, torch.rand(1, 3, 64, 64))
        for hw in [(213, 320), (1, 1), (17, 301), (64, 64)]:
            x = torch.rand(2, 3, *hw)
            out = traced(x)
            assert out.shape == (2, 23, *hw)
            torch.testing.assert_close(out, net(x), rtol=1e-4, atol=1e-4)


def test_lraspp_context_gates_the_projection_by_the_global_average():
    """context=lraspp: within the budget, and the projection is scaled per channel by a sigmoid of the
    pooled stride-32 features: a photo's global content changes every pixel's decoder input."""
    cfg = compose_config("train", "model.net.weights=null", "model.net.context=lraspp").model
    net = instantiate(cfg.net).eval()
    plain = MobileNetSkipSeg(weights=None)
    extra = count_parameters(net) - count_parameters(plain)
    assert extra == 1280 * 256 and count_parameters(net) < 5_000_000
    seen = {}
    net.project.register_forward_hook(lambda m, a, out: seen.__setitem__("project", out))
    net.context_gate.register_forward_hook(lambda m, a, out: seen.__setitem__("gate", out))
    net.fuse[0].register_forward_pre_hook(lambda m, a: seen.__setitem__("decoder_in", a[0]))
    with torch.no_grad():
        y = net(torch.randn(2, 3, 96, 128))
    assert y.shape == (2, 23, 96, 128)
    gate = seen["gate"]
    assert gate.shape == (2, 256, 1, 1) and ((gate > 0) & (gate < 1)).all()
    gated = seen["project"] * gate  # the decoder's first fusion sees the gated projection, upsampled
    up = torch.nn.functional.interpolate(gated, size=seen["decoder_in"].shape[-2:], mode="bilinear")
    torch.testing.assert_close(seen["decoder_in"][:, :256], up)
    assert MobileNetSkipSeg(weights=None).context_gate is None
