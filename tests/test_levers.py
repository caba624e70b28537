"""The accuracy levers end to end: model=mobilenet_skip with data.augment=true trains through Hydra,
and seg.eval rebuilds the skip model from its checkpoint alone."""

from __future__ import annotations

import json

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
    assert best.scheduler._target_.endswith("CosineAnnealingLR") and best.scheduler.T_max == best.trainer.max_epochs == 20
    assert count_parameters(instantiate(best.model.net)) < 5_000_000
    assert isinstance(instantiate(best.model.net), MobileNetSkipSeg)
    # the faithful reference and the defaults keep the centre crop and the reference decoder
    for cfg in (seed, default):
        assert cfg.data.augment is False and cfg.model.net._target_ == "seg.model.MobileNetSeg"
