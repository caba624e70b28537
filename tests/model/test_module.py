"""The LightningModule: overfitting a batch, masked metrics, optimizer and scheduler wiring, hyperparameters."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from seg.data.archive import ARCHIVE_DIR
from seg.data.dataset import MSRCDataset
from seg.data.labels import MSRC, LabelSet
from seg.data.transforms import EvalPreset
from seg.model.losses import SegLoss
from seg.model.module import SegModule

from helpers import CROP

NET = {"_target_": "seg.model.nets.MobileNetSeg", "weights": None, "freeze_params": 50}
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}
PLATEAU = {
    "_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau",
    "_partial_": True,
    "mode": "max",
    "factor": 0.5,
    "patience": 5,
}


def test_overfits_one_tiny_batch(data_dir):
    torch.manual_seed(0)
    ds = MSRCDataset(data_dir / ARCHIVE_DIR, "train", EvalPreset(CROP))
    x, y = next(iter(DataLoader(ds, batch_size=4)))
    module = SegModule(NET, {**ADAM, "lr": 1e-2}, None, channels_last=True)
    opt = module.configure_optimizers()
    module.train()
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = module.criterion(module(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.4 * losses[0], losses
    with torch.no_grad():  # still in train mode: BatchNorm running stats lag behind 60 steps
        pred = module(x).argmax(1)
    valid = y != -1
    assert (pred[valid] == y[valid]).float().mean() > 0.8


def test_masked_accuracy_ignores_void_and_is_micro():
    module = SegModule(NET, ADAM, None)
    target = torch.tensor([[[0, 0, 1, -1]], [[2, 2, 2, 2]]])  # 7 labelled pixels
    pred = torch.tensor([[[0, 1, 1, 5]], [[2, 2, 0, 2]]])  # 5 of them right; void wrong
    module.val_metrics.update(pred, target)
    out = module.val_metrics.compute()
    assert out["val/acc"].item() == pytest.approx(5 / 7)
    # mIoU over classes 0, 1, 2 (present); class 5 is predicted only on void, so it does not count.
    ious = [1 / 3, 1 / 2, 3 / 4]
    assert out["val/miou"].item() == pytest.approx(sum(ious) / 3, abs=1e-6)


def test_only_trainable_parameters_go_to_the_optimizer_and_plateau_watches_val_acc():
    module = SegModule(NET, ADAM, PLATEAU)
    conf = module.configure_optimizers()
    opt_params = {id(p) for g in conf["optimizer"].param_groups for p in g["params"]}
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    assert opt_params == trainable and len(trainable) < len(list(module.parameters()))
    assert conf["lr_scheduler"]["monitor"] == "val/acc"
    assert isinstance(conf["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert conf["lr_scheduler"]["scheduler"].mode == "max"


def test_hyperparameters_rebuild_the_module():
    module = SegModule(NET, ADAM, PLATEAU)
    clone = SegModule(**module.hparams)
    clone.load_state_dict(module.state_dict())
    x = torch.randn(1, 3, CROP, CROP)
    module.eval(), clone.eval()
    torch.testing.assert_close(module(x), clone(x))


def test_hyperparameters_are_plain_and_complete_and_compile_is_not_stored():
    cfg = OmegaConf.create({"net": NET, "optimizer": ADAM, "scheduler": PLATEAU})
    module = SegModule(cfg.net, cfg.optimizer, cfg.scheduler, encoder_lr_mult=0.5, compile=False)
    hp = dict(module.hparams)
    assert set(hp) == {
        "net",
        "optimizer",
        "scheduler",
        "num_classes",
        "monitor",
        "channels_last",
        "loss",
        "encoder_lr_mult",
        "low_res_loss",
        "labels",
        "distill_weight",
        "distill_temperature",
    }
    # plain containers, not Hydra's DictConfig: a checkpoint loads with torch.load(weights_only=True)
    assert type(hp["net"]) is dict and type(hp["optimizer"]) is dict and hp["encoder_lr_mult"] == 0.5
    # no label set given: MSRC's, stored so that it travels with the checkpoint
    assert hp["labels"] == MSRC.to_dict() and hp["num_classes"] == 23 and hp["loss"]["ignore_index"] == -1


def test_the_net_loss_and_metrics_follow_the_label_set():
    labels = LabelSet.from_names(["sky", "road", "car"], ignore_index=255)
    module = SegModule(NET, ADAM, None, labels=labels.to_dict())
    assert module.label_set == labels and module.hparams["labels"] == labels.to_dict()
    x = torch.rand(2, 3, 64, 64)
    assert module(x).shape == (2, 3, 64, 64)  # three classes, whatever the net config said
    y = torch.randint(0, 3, (2, 64, 64))
    y[:, :8] = 255  # ignored by the loss and the metrics
    loss = module.criterion(module(x), y)
    assert torch.isfinite(loss)
    module.val_metrics.update(y.clone(), y)
    assert module.val_metrics.compute()["val/acc"].item() == pytest.approx(1.0)


def test_encoder_lr_multiplier_makes_two_param_groups():
    net = {**NET, "_target_": "seg.model.nets.MobileNetSkipSeg", "freeze_params": 0}
    module = SegModule(net, ADAM, None, encoder_lr_mult=0.1)
    opt = module.configure_optimizers()
    decoder_group, encoder_group = opt.param_groups
    assert decoder_group["lr"] == pytest.approx(1e-3) and encoder_group["lr"] == pytest.approx(1e-4)
    enc = {id(p) for p in module.net.encoder.parameters()}
    assert {id(p) for p in encoder_group["params"]} == enc  # freeze_params=0: the whole encoder
    assert not enc & {id(p) for p in decoder_group["params"]}
    assert len(decoder_group["params"]) + len(encoder_group["params"]) == len(list(module.parameters()))
    assert len(SegModule(net, ADAM, None).configure_optimizers().param_groups) == 1


def test_compile_option_compiles_in_place_and_keeps_state_dict_keys():
    net_cfg = {"_target_": "seg.model.nets.MobileNetSkipSeg", "weights": None}
    plain = SegModule(net_cfg, None, None)
    compiled = SegModule(net_cfg, None, None, compile=True)
    assert compiled.net._compiled_call_impl is not None and plain.net._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(plain.state_dict())
    assert "compile" not in compiled.hparams  # a runtime option: checkpoints load without it


def test_low_res_loss_trains_on_the_decoders_logits_and_scores_at_full_size(monkeypatch):
    """low_res_loss: training loss on stride-4 logits vs nearest-downsampled targets; val at input size."""
    skip = {"_target_": "seg.model.nets.MobileNetSkipSeg", "weights": None}
    module = SegModule(skip, ADAM, None, low_res_loss=True)
    seen = []
    forward = SegLoss.forward

    def recording(self, logits, y):
        seen.append((logits, y))
        return forward(self, logits, y)

    monkeypatch.setattr(SegLoss, "forward", recording)
    monkeypatch.setattr(module, "log", lambda *a, **k: None)
    monkeypatch.setattr(module, "log_dict", lambda *a, **k: None)
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, 64, 64), torch.randint(-1, 23, (2, 64, 64))
    loss = module.training_step((x, y), 0)
    ((logits, target),) = seen
    assert logits.shape == (2, 23, 16, 16) and torch.equal(target, y[:, ::4, ::4])  # stride 4, nearest
    assert loss.requires_grad and torch.isfinite(loss)
    module.eval()
    with torch.no_grad():
        module.validation_step((x, y), 0)
    assert seen[1][0].shape == (2, 23, 64, 64) and torch.equal(seen[1][1], y)
    plain = SegModule(skip, ADAM, None)
    plain.load_state_dict(module.state_dict())  # the option adds no weights


def test_the_module_adds_the_weighted_distillation_term_to_training_only(monkeypatch):
    net, adam = {"_target_": "seg.model.nets.MobileNetSkipSeg", "weights": None}, ADAM
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, CROP, CROP), torch.randint(-1, 23, (2, CROP, CROP))
    soft = torch.randint(0, 20, (2, 23, CROP, CROP), dtype=torch.uint8)
    losses = {}
    for weight in (0.0, 0.5):
        module = SegModule(net, adam, None, low_res_loss=True, distill_weight=weight)
        torch.manual_seed(1)
        module.load_state_dict(SegModule(net, adam, None).state_dict())
        logged: dict = {}
        monkeypatch.setattr(module, "log", lambda name, value, _into=logged, **k: _into.__setitem__(name, value))
        monkeypatch.setattr(module, "log_dict", lambda *a, **k: None)
        module.eval()  # BatchNorm in eval: the two modules see the same forward
        losses[weight] = (module.training_step((x, y, soft), 0).item(), logged)
    (plain, plain_logged), (mixed, logged) = losses[0.0], losses[0.5]
    assert "train/distill" not in plain_logged and logged["train/distill"] > 0
    assert mixed == pytest.approx(plain + 0.5 * logged["train/distill"].item(), rel=1e-5)
