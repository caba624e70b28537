"""`python -m seg.train` end to end through Hydra: runs, multiruns, resume, configs, the real data."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_module
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seg.train import build, main, objective

TINY = ["trainer.max_epochs=2", "++trainer.limit_val_batches=1", "++trainer.limit_test_batches=1",
        "trainer.log_every_n_steps=1"]


def run_train(*overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_module("seg.train", *overrides, env=env)


def scalars(run_dir: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for f in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        ea = EventAccumulator(str(f))
        ea.Reload()
        for tag in ea.Tags()["scalars"]:
            out.setdefault(tag, []).extend(e.value for e in ea.Scalars(tag))
    return out


def test_train_writes_tensorboard_events_and_checkpoints_then_resumes(train_overrides, tmp_path):
    run = tmp_path / "run"
    proc = run_train(*train_overrides, *TINY, f"hydra.run.dir={run}")
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in ckpts and any(n.startswith("epoch_") for n in ckpts)
    tags = scalars(run)
    for tag in ("train/loss_step", "train/loss_epoch", "train/acc", "val/loss", "val/acc", "val/miou",
                "test/loss", "test/acc", "test/miou", "lr-Adam"):
        assert tag in tags, sorted(tags)
    assert len(tags["val/acc"]) == 2 and all(0.0 <= v <= 1.0 for v in tags["val/acc"])
    assert "Summary:" in proc.stdout + proc.stderr and "test/acc" in (run / "train.log").read_text()

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["epoch"] == 1
    assert ckpt["hyper_parameters"]["net"]["_target_"] == "seg.model.MobileNetSeg"

    # ckpt_path resumes: two more epochs on top of the two done. last.ckpt is rewritten every epoch,
    # also in epochs that save no new best checkpoint (monitoring the epoch number, mode min, the first
    # resumed epoch stays the best one).
    resumed = tmp_path / "resumed"
    run_train(*train_overrides, *TINY, "trainer.max_epochs=4", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
              "callbacks.model_checkpoint.monitor=epoch", "callbacks.model_checkpoint.mode=min",
              f"hydra.run.dir={resumed}")
    assert sorted(p.name for p in (resumed / "checkpoints").glob("epoch_*.ckpt")) == ["epoch_002.ckpt"]
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 3
    assert len(scalars(resumed)["val/acc"]) == 2


def test_fast_dev_run_shortcut(train_overrides, tmp_path):
    proc = run_train(*train_overrides, "debug=fdr", f"hydra.run.dir={tmp_path / 'fdr'}")
    out = proc.stdout + proc.stderr
    assert "fast_dev_run" in out and "`max_steps=1` reached" in out
    assert "test/acc" in (tmp_path / "fdr" / "train.log").read_text()  # the summary after testing


def test_multirun_runs_every_job(train_overrides, tmp_path):
    sweep = tmp_path / "sweep"
    run_train("-m", *train_overrides, *TINY, "trainer.max_epochs=1", "optimizer.lr=1e-3,3e-4",
              f"hydra.sweep.dir={sweep}")
    for job, lr in (("0", 1e-3), ("1", 3e-4)):
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert "val/acc" in scalars(sweep / job)
        assert "- optimizer.lr=" in (sweep / job / ".hydra" / "overrides.yaml").read_text()
        cfg = torch.load(sweep / job / "checkpoints" / "last.ckpt", weights_only=False)["hyper_parameters"]
        assert cfg["optimizer"]["lr"] == pytest.approx(lr)
    assert (sweep / "multirun.yaml").is_file()


# ---------------------------------------------------------------- configs (in process) ----------


def compose_train(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("scheduler", ["plateau", "cosine", "none"])
def test_every_optimizer_and_scheduler_option_builds(optimizer, scheduler, tmp_path):
    cfg = compose_train(f"optimizer={optimizer}", f"scheduler={scheduler}", "model.net.weights=null",
                        f"paths.output_dir={tmp_path}")
    model = instantiate(cfg.model, optimizer=cfg.optimizer, scheduler=cfg.scheduler)
    conf = model.configure_optimizers()
    opt = conf["optimizer"] if isinstance(conf, dict) else conf
    assert type(opt).__name__.lower() == optimizer
    assert isinstance(conf, dict) == (scheduler != "none")


def test_defaults_and_reference_recipe():
    cfg = compose_train()
    assert cfg.data.batch_size == 8 and cfg.data.normalize is True and cfg.data.crop_size == 240
    assert cfg.optimizer.lr == 1e-3 and cfg.scheduler.mode == "max" and cfg.scheduler.patience == 5
    assert cfg.model.net.freeze_params == 50 and cfg.model.net.weights == "IMAGENET1K_V1"
    assert cfg.callbacks.model_checkpoint.monitor == "val/acc" and cfg.optimized_metric == "val/acc"
    seed = compose_train("experiment=seed")
    assert seed.data.normalize is False and seed.trainer.max_epochs == 50 and seed.seed == 0


def test_any_trainer_argument_can_be_overridden(tmp_path):
    cfg = compose_train("model.net.weights=null", f"paths.output_dir={tmp_path}", "trainer.precision=bf16-mixed",
                        "++trainer.limit_train_batches=2", "trainer.accelerator=cpu")
    _, _, trainer = build(cfg)
    assert trainer.limit_train_batches == 2
    assert "bf16" in str(trainer.precision)
    assert trainer.logger.log_dir.startswith(str(tmp_path))


def test_main_returns_the_best_value_of_optimized_metric(train_overrides, tmp_path):
    cfg = compose_train(*train_overrides, *TINY, f"paths.output_dir={tmp_path}")
    value = main.__wrapped__(cfg)
    best = torch.load(next((tmp_path / "checkpoints").glob("epoch_*.ckpt")), weights_only=False)
    score = next(v for k, v in best["callbacks"].items() if k.startswith("ModelCheckpoint") and "val/acc" in k)["best_model_score"]
    assert value == pytest.approx(float(score))


def test_objective_prefers_the_best_value_and_names_a_missing_metric():
    metrics = {"val/acc": 0.5, "best/val/acc": 0.7, "test/acc": 0.6}
    assert objective(metrics, "val/acc") == 0.7
    assert objective(metrics, "test/acc") == 0.6
    assert objective(metrics, None) is None
    with pytest.raises(KeyError, match="optimized_metric='nope' was not logged"):
        objective(metrics, "nope")


# ---------------------------------------------------------------- the real archive --------------


def test_smoke_on_the_real_archive_with_pretrained_encoder(real_env, tmp_path_factory):
    """The real download path (SEG_DATA_URL) and ImageNet weights (TORCH_HOME), a few batches."""
    run = tmp_path_factory.mktemp("real_run")
    data = tmp_path_factory.mktemp("real_data")
    run_train(f"paths.data_dir={data}", f"hydra.run.dir={run}", "trainer.max_epochs=1", "trainer.accelerator=cpu",
              "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=1", "++trainer.limit_test_batches=1",
              "callbacks.progress_bar.refresh_rate=0", env=real_env)
    root = data / "segmentation_data"
    assert sum(1 for _ in (root / "images").glob("*.bmp")) == 391
    tags = scalars(run)
    assert 0.0 < tags["test/acc"][-1] <= 1.0
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_every_trainer_argument_is_overridable_without_plus():
    import inspect

    import pytorch_lightning as pl

    names = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self", "logger", "callbacks"}
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["trainer.limit_train_batches=2", "trainer.gradient_clip_val=0.5",
                                          "trainer.accelerator=cpu", "trainer.default_root_dir=/tmp/x"])
    assert names <= set(cfg.trainer), sorted(names - set(cfg.trainer))
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.limit_train_batches == 2 and trainer.gradient_clip_val == 0.5
    assert trainer.max_epochs == 50 and trainer.num_sanity_val_steps == 2  # Lightning's default kept
