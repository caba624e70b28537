"""The accuracy levers end to end: model=mobilenet_skip with data.augment=true trains through Hydra,
and seg.eval rebuilds the skip model from its checkpoint alone."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_module


def test_skip_model_with_augmentation_trains_and_evaluates(train_overrides, archive_url, data_dir, tmp_path):
    run = tmp_path / "run"
    run_module("seg.train", *train_overrides, "model=mobilenet_skip", "data.augment=true", "scheduler=cosine",
               "trainer.max_epochs=1", "++trainer.limit_val_batches=1", "++trainer.limit_test_batches=1",
               f"hydra.run.dir={run}")
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)  # plain types only
    assert ckpt["hyper_parameters"]["net"]["_target_"] == "seg.model.MobileNetSkipSeg"
    dm = ckpt["datamodule_hyper_parameters"]
    assert dm["augment"] is True and tuple(dm["augment_scale"]) == (0.75, 1.25)
    out = tmp_path / "eval"
    run_module("seg.eval", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"data.url={archive_url}",
               f"paths.data_dir={data_dir}", f"hydra.run.dir={out}")
    m = json.loads((out / "metrics.json").read_text())
    assert m["num_images"] == 3 and 0.0 <= m["acc"] <= 1.0 and 0.0 <= m["acc_per_image_mean"] <= 1.0


def test_best_recipe_composes_and_leaves_the_reference_alone():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    import seg.train  # noqa: F401  (sets PROJECT_ROOT, which conf/paths interpolates)
    from conftest import ROOT
    from seg.model import MobileNetSkipSeg, count_parameters

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        best = compose("train", overrides=["experiment=best", "model.net.weights=null"])
        seed = compose("train", overrides=["experiment=seed"])
        default = compose("train")
    assert best.model.net._target_ == "seg.model.MobileNetSkipSeg"
    assert best.data.normalize is True and best.data.crop_size == 240
    assert best.scheduler._target_.endswith("CosineAnnealingLR") and best.scheduler.T_max == best.trainer.max_epochs == 30
    assert best.data.augment is True and best.model.loss.dice_weight == 0.5
    module = instantiate(best.model, optimizer=best.optimizer, scheduler=best.scheduler)
    assert isinstance(module.net, MobileNetSkipSeg) and count_parameters(module.net) < 5_000_000
    # the whole encoder is fine-tuned, at a tenth of the decoder's lr
    assert count_parameters(module.net, trainable_only=True) == count_parameters(module.net)
    decoder_group, encoder_group = module.configure_optimizers()["optimizer"].param_groups
    assert decoder_group["lr"] == 1e-3 and encoder_group["lr"] == pytest.approx(1e-4)
    # the faithful reference and the defaults keep the centre crop, the reference decoder, the frozen
    # first 50 encoder tensors, one lr and plain cross-entropy
    for cfg in (seed, default):
        assert cfg.data.augment is False and cfg.model.net._target_ == "seg.model.MobileNetSeg"
        assert cfg.model.net.freeze_params == 50 and cfg.model.encoder_lr_mult == 1.0
        assert cfg.model.loss.class_weight_power == 0 and cfg.model.loss.dice_weight == 0
