"""model=mobilenet_skip (skip-connection decoder), the parameter budget of every model option, and
the model.compile option."""

from __future__ import annotations

import io

import pytest
import torch
from conftest import ROOT
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from seg.model import MobileNetSkipSeg, count_parameters
from seg.module import SegModule


@pytest.fixture(scope="module")
def net() -> MobileNetSkipSeg:
    return MobileNetSkipSeg(weights=None).eval()


@pytest.mark.parametrize("hw", [(240, 240), (213, 320), (70, 50)])
def test_skip_net_output_has_input_size_and_23_classes(net, hw):
    with torch.no_grad():
        y = net(torch.randn(2, 3, *hw))
    assert y.shape == (2, 23, *hw)
    assert torch.isfinite(y).all()


def test_skip_net_uses_the_stride_4_8_16_features(net):
    """Every decoder stage gets its skip: changing a stride-4 feature changes the logits."""
    seen = {}
    hooks = [net.encoder[i].register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, out.shape))
             for i in MobileNetSkipSeg.SKIPS]
    with torch.no_grad():
        net(torch.randn(1, 3, 240, 240))
    for h in hooks:
        h.remove()
    assert seen == {13: (1, 96, 15, 15), 6: (1, 32, 30, 30), 3: (1, 24, 60, 60)}
    assert [f[0].in_channels for f in net.fuse] == [256 + 96, 128 + 32, 64 + 24]


def test_skip_net_freezes_like_the_reference():
    net = MobileNetSkipSeg(weights=None, freeze_params=50)
    params = list(net.encoder.parameters())
    assert all(not p.requires_grad for p in params[:50]) and all(p.requires_grad for p in params[50:])
    with pytest.raises(ValueError, match="decoder_channels needs 3"):
        MobileNetSkipSeg(weights=None, decoder_channels=(64, 32))


@pytest.mark.parametrize("option", ["mobilenet", "mobilenet_skip"])
def test_every_model_option_is_within_the_budget(option):
    """Each conf/model option: < 5M parameters and < 50 MB of saved weights."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={option}", "model.net.weights=null"]).model
    net = instantiate(cfg.net)
    n = count_parameters(net)
    assert 2_000_000 < n < 5_000_000, n
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    assert buf.tell() < 50 * 2**20
    assert cfg.compile is False  # compile stays an opt-in speed lever


def test_compile_option_compiles_in_place_and_keeps_state_dict_keys():
    net_cfg = {"_target_": "seg.model.MobileNetSkipSeg", "weights": None}
    plain = SegModule(net_cfg, None, None)
    compiled = SegModule(net_cfg, None, None, compile=True)
    assert compiled.net._compiled_call_impl is not None and plain.net._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(plain.state_dict())
    assert "compile" not in compiled.hparams  # a runtime option: checkpoints load without it
