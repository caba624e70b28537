"""conf/: the composed recipes, every option of every group builds, every Trainer argument is a key."""

from __future__ import annotations

import inspect

import pytest
import pytorch_lightning as pl
from hydra.utils import instantiate

from seg.model.nets import MobileNetSkipSeg, count_parameters
from seg.run.build import build_module

from helpers import ROOT, compose_config


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("scheduler", ["plateau", "cosine", "none"])
def test_every_optimizer_and_scheduler_option_builds(optimizer, scheduler, tmp_path):
    cfg = compose_config(
        "train",
        f"optimizer={optimizer}",
        f"scheduler={scheduler}",
        "model.net.weights=null",
        f"paths.output_dir={tmp_path}",
    )
    conf = build_module(cfg).configure_optimizers()
    opt = conf["optimizer"] if isinstance(conf, dict) else conf
    assert type(opt).__name__.lower() == optimizer
    assert isinstance(conf, dict) == (scheduler != "none")


USER_COMMAND = ["model=mobilenet", "trainer.max_epochs=50"]  # the command the README tells users to run


def test_the_users_command_composes_the_strong_recipe():
    cfg = compose_config("train", *USER_COMMAND)
    assert cfg == compose_config("train")  # the defaults: the command adds nothing
    assert cfg.model.net._target_ == "seg.model.nets.MobileNetSkipSeg" and cfg.model.net.weights == "IMAGENET1K_V1"
    assert cfg.model.net.freeze_params == 0 and cfg.model.encoder_lr_mult == 0.1  # whole encoder, gently
    assert cfg.model.loss.dice_weight == 0.5 and cfg.model.loss.class_weight_power == 0
    assert cfg.data.augment is True and cfg.data.normalize is True and cfg.data.crop_size == 240
    assert cfg.data.batch_size == 8 and cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 1e-3
    assert cfg.model.channels_last is True and cfg.trainer.max_epochs == 50
    # torchmetrics' masked pixel accuracy on val drives the plateau scheduler and the best checkpoint
    assert cfg.scheduler._target_.endswith("ReduceLROnPlateau") and cfg.scheduler.mode == "max"
    assert cfg.model.monitor == "val/acc" and cfg.callbacks.model_checkpoint.monitor == "val/acc"
    assert cfg.callbacks.model_checkpoint.mode == "max" and cfg.optimized_metric == "val/acc"
    assert cfg.callbacks.ema._target_ == "seg.callbacks.ema.EMA" and cfg.test_ckpt == "last"
    module = build_module(compose_config("train", *USER_COMMAND, "model.net.weights=null"))
    assert isinstance(module.net, MobileNetSkipSeg) and count_parameters(module.net) == 3_089_351 < 5_000_000
    assert count_parameters(module.net, trainable_only=True) == count_parameters(module.net)
    decoder_group, encoder_group = module.configure_optimizers()["optimizer"].param_groups
    assert decoder_group["lr"] == 1e-3 and encoder_group["lr"] == pytest.approx(1e-4)
    conf = module.configure_optimizers()
    assert conf["lr_scheduler"]["monitor"] == "val/acc" and conf["lr_scheduler"]["scheduler"].mode == "max"


def test_experiment_seed_is_the_reference_recipe_exactly():
    cfg = compose_config("train", "experiment=seed")
    assert cfg.model.net._target_ == "seg.model.nets.MobileNetSeg" and cfg.model.net.freeze_params == 50
    assert list(cfg.model.net.decoder_channels) == [256, 128, 64, 32, 32] and cfg.model.net.proj_channels == 256
    assert (
        cfg.model.encoder_lr_mult == 1.0 and cfg.model.loss.dice_weight == 0 and cfg.model.loss.class_weight_power == 0
    )
    assert cfg.data.normalize is False and cfg.data.augment is False and cfg.data.batch_size == 8
    assert cfg.data.crop_size == 240 and cfg.optimizer.lr == 1e-3 and cfg.optimizer.weight_decay == 0
    assert cfg.scheduler._target_.endswith("ReduceLROnPlateau") and cfg.scheduler.mode == "max"
    assert cfg.scheduler.factor == 0.5 and cfg.scheduler.patience == 5
    assert cfg.trainer.max_epochs == 50 and cfg.seed == 0 and cfg.callbacks.ema is None and cfg.test_ckpt == "best"
    module = build_module(compose_config("train", "experiment=seed", "model.net.weights=null"))
    assert count_parameters(module.net) == 3_539_959 and count_parameters(module.net, trainable_only=True) == 3_490_871
    assert compose_config("train", "model=mobilenet_tconv").model == cfg.model
    assert compose_config("train", "model=mobilenet_skip").model == compose_config("train").model  # the old name


def test_best_recipe_composes():
    best = compose_config("train", "experiment=best", "model.net.weights=null")
    assert best.model.net._target_ == "seg.model.nets.MobileNetSkipSeg"
    assert best.data.normalize is True and best.data.crop_size == 240
    assert best.scheduler._target_.endswith("CosineAnnealingLR")
    assert best.scheduler.T_max == best.trainer.max_epochs == 30
    assert best.data.augment is True and best.model.loss.dice_weight == 0.5
    module = build_module(best)
    assert isinstance(module.net, MobileNetSkipSeg) and count_parameters(module.net) < 5_000_000


def test_fast_recipe_composes():
    """experiment=fast: the default net and loss on a short cosine schedule with the cheap training loss."""
    fast = compose_config("train", "experiment=fast", "model.net.weights=null")
    default = compose_config("train", "model.net.weights=null")
    assert fast.model.net == default.model.net and fast.model.loss == default.model.loss
    assert fast.model.low_res_loss is True and default.model.low_res_loss is False
    assert fast.scheduler._target_.endswith("CosineAnnealingLR")
    assert fast.scheduler.T_max == fast.trainer.max_epochs == 10
    assert fast.trainer.check_val_every_n_epoch == 2 and fast.callbacks.ema is None
    assert fast.test_ckpt == "last" and list(fast.test_tta) == [0.5, 0.75, 1.0, 1.25, 1.5]
    assert fast.data == default.data  # the same data, crops and augmentation
    module = build_module(fast)
    assert isinstance(module.net, MobileNetSkipSeg) and module.hparams.low_res_loss is True
    assert count_parameters(module.net) < 5_000_000


def test_optuna_search_space_and_ddp_configs_compose():
    cfg = compose_config("train", "hparams_search=optuna", hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert sweeper.sampler._target_ == "seg.run.search.ContinuingTPESampler" and sweeper.sampler.seed == 1234
    assert sweeper.storage is None and sweeper.n_trials == 20 and cfg.optimized_metric == "val/acc"
    assert dict(sweeper.params) == {
        "optimizer": "choice(adam, adamw, sgd)",
        "optimizer.lr": "tag(log, interval(1e-4, 3e-2))",
        "optimizer.weight_decay": "tag(log, interval(1e-6, 1e-2))",
        "data.batch_size": "choice(4, 8, 16)",
        "model.net.freeze_params": "choice(0, 50, 100, 156)",
    }
    assert cfg.hydra.callbacks.sweep_summary._target_ == "seg.run.sweep.SweepSummary"
    ddp = compose_config("train", "trainer=ddp").trainer
    assert ddp.strategy == "ddp" and ddp.sync_batchnorm is True and ddp.devices == "auto"
    assert ddp._target_ == "pytorch_lightning.Trainer" and ddp.max_epochs == 50  # on top of trainer/default


def test_every_trainer_argument_is_overridable_without_plus():
    names = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self", "logger", "callbacks"}
    cfg = compose_config(
        "train",
        "trainer.limit_train_batches=2",
        "trainer.gradient_clip_val=0.5",
        "trainer.accelerator=cpu",
        "trainer.default_root_dir=/tmp/x",
    )
    assert names <= set(cfg.trainer), sorted(names - set(cfg.trainer))
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False, precision="32-true")
    assert trainer.limit_train_batches == 2 and trainer.gradient_clip_val == 0.5
    assert trainer.max_epochs == 50 and trainer.num_sanity_val_steps == 2  # Lightning's default kept


def test_a_data_config_of_your_own_composes_on_top_of_folder(tmp_path):
    """The README's conf/data/camvid.yaml pattern: the folder option's keys with your own values."""
    import shutil

    from hydra import compose, initialize_config_dir

    from seg.data.loader import register_configs

    register_configs()
    conf = shutil.copytree(ROOT / "conf", tmp_path / "conf")
    (conf / "data" / "camvid.yaml").write_text(
        "defaults:\n  - folder\n  - _self_\nroot: /data/CamVid\n"
        "train: {images: train, masks: trainannot}\nval: {images: val, masks: valannot}\n"
        "test: {images: test, masks: testannot}\nclasses: [sky, building]\nignore_index: 11\n"
    )
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("train", overrides=["data=camvid"])
    assert cfg.data._target_ == "seg.data.folder_data.FolderDataModule" and cfg.data.root == "/data/CamVid"
    assert cfg.data.train.masks == "trainannot" and cfg.data.ignore_index == 11
    assert cfg.data.crop_size == "auto" and cfg.data.batch_size == "auto"  # the folder recipe, chosen from the photos


def test_experiment_cv_is_a_5_fold_multirun_of_the_default_recipe():
    cfg = compose_config("train", "experiment=cv", hydra_config=True)
    default = compose_config("train")
    assert cfg.data.folds == 5 and str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.hydra.sweeper.params["data.fold"] == "range(5)"
    assert cfg.model == default.model and cfg.optimizer == default.optimizer and cfg.trainer == default.trainer
