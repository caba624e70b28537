"""`python -m seg.train` end to end through Hydra: runs, resume, fast_dev_run, DDP, the real data (multiruns:
tests/run/test_sweep.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from seg.model.losses import SegLoss
from seg.run.build import build
from seg.run.entry import null_groups
from seg.train import objective, run, train

from helpers import CROP, ROOT, best_score, compose_config, run_module, scalars


def run_train(*overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_module("seg.train", *overrides, env=env)


@pytest.mark.cpu_kinds
def test_train_writes_tensorboard_events_and_checkpoints_then_resumes(cpu_kind, train_overrides, tmp_path):
    run = tmp_path / "run"
    proc = run_train(*train_overrides, "trainer.max_epochs=2", f"hydra.run.dir={run}")
    expected = {"avx2": "32-true", "avx512_bf16": "bf16-mixed"}[cpu_kind]
    assert f"trainer.precision=auto: {expected}" in proc.stderr
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in ckpts and any(n.startswith("epoch_") for n in ckpts)
    tags = scalars(run)
    for tag in (
        "train/loss_step",
        "train/loss_epoch",
        "train/acc",
        "val/loss",
        "val/acc",
        "val/miou",
        "test/loss",
        "test/acc",
        "test/miou",
        "lr-Adam/pg1",  # the decoder's learning rate ...
        "lr-Adam/pg2",  # ... and the encoder's
    ):
        assert tag in tags, sorted(tags)
    assert tags["lr-Adam/pg2"][0] == pytest.approx(0.1 * tags["lr-Adam/pg1"][0])  # model.encoder_lr_mult
    assert len(tags["val/acc"]) == 2 and all(0.0 <= v <= 1.0 for v in tags["val/acc"])
    assert "Summary:" in proc.stdout + proc.stderr and "test/acc" in (run / "train.log").read_text()

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 1
    assert ckpt["hyper_parameters"]["net"]["_target_"] == "seg.model.nets.MobileNetSkipSeg"  # the default net

    if cpu_kind != "avx2":
        return  # the resume below does not depend on the precision: once is enough
    # resume= continues the run in its folder (its own overrides come back; the new max_epochs wins): one
    # TensorBoard curve, the first part's .hydra record kept
    config = (run / ".hydra" / "config.yaml").read_text()
    run_train(f"resume={run}", "trainer.max_epochs=4")
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 3
    assert len(scalars(run)["val/acc"]) == 4
    assert (run / ".hydra" / "config.yaml").read_text() == config
    assert "max_epochs: 4" in next((run / ".hydra").glob("resume-*/config.yaml")).read_text()


def test_fast_dev_run_shortcut(train_overrides, tmp_path):
    proc = run_train(*train_overrides, "debug=fdr", f"hydra.run.dir={tmp_path / 'fdr'}")
    out = proc.stdout + proc.stderr
    assert "fast_dev_run" in out and "`max_steps=1` reached" in out
    assert "test/acc" in (tmp_path / "fdr" / "train.log").read_text()  # the summary after testing


def test_any_trainer_argument_can_be_overridden(tmp_path):
    cfg = compose_config(
        "train",
        "model.net.weights=null",
        f"paths.output_dir={tmp_path}",
        "trainer.precision=bf16-mixed",
        "++trainer.limit_train_batches=2",
        "trainer.accelerator=cpu",
    )
    _, _, trainer = build(cfg)
    assert trainer.limit_train_batches == 2
    assert "bf16" in str(trainer.precision)
    assert trainer.logger.log_dir.startswith(str(tmp_path))


def test_main_returns_the_best_value_of_optimized_metric(train_overrides, tmp_path):
    cfg = compose_config("train", *train_overrides, "trainer.max_epochs=2", f"paths.output_dir={tmp_path}")
    value = run(cfg)
    assert value == pytest.approx(best_score(tmp_path))


def test_class_weighted_loss_gets_the_training_split_counts(train_overrides, tmp_path, monkeypatch, data_dir):
    """seg.train hands the datamodule's class pixel counts to the loss (without them the loss raises)."""
    from seg.data.msrc_data import MSRCDataModule

    seen = []
    original = SegLoss.set_class_counts
    monkeypatch.setattr(SegLoss, "set_class_counts", lambda self, c: (seen.append(c), original(self, c)))
    cfg = compose_config(
        "train",
        *train_overrides,
        "trainer.max_epochs=1",
        "model.loss.class_weight_power=1.0",
        f"paths.output_dir={tmp_path}",
        "test=false",
    )
    metrics = train(cfg)
    assert 0.0 <= metrics["best/val/acc"] <= 1.0
    expected = MSRCDataModule(str(data_dir), crop_size=CROP).class_pixel_counts("train")
    assert len(seen) == 1 and seen[0].tolist() == expected.tolist()


def test_test_tta_scores_the_test_split_as_seg_eval_does(train_overrides, tmp_path):
    """test_tta=[scales]: seg.train's own test numbers, the course metric among them, are seg.eval's with the
    same TTA on the tested weights."""
    from seg.eval import score
    from seg.model.checkpoint import load_model
    from seg.model.inference import predict_logits
    from seg.run.build import build_datamodule

    tta = [0.75, 1.0]
    cfg = compose_config(
        "train",
        *train_overrides,
        "trainer.max_epochs=1",
        "test_tta=[0.75,1.0]",
        # the trained weights, not an average still near the random start: some pixels right, so that
        # the course metric (a mean over images) and the pixel accuracy differ
        "callbacks.ema=null",
        "optimizer.lr=0.01",
        f"paths.output_dir={tmp_path}",
    )
    metrics = train(cfg)
    model, data_hparams = load_model(tmp_path / "checkpoints" / "last.ckpt")
    datamodule = build_datamodule(cfg, normalize=data_hparams.get("normalize", True), augment=False)
    datamodule.prepare_data()
    datamodule.setup("test")
    scored = score(model, datamodule.test_dataloader(), tta=tta)
    assert metrics["test/acc"] == pytest.approx(scored["acc"], abs=1e-6)
    assert metrics["test/acc_per_image_mean"] == pytest.approx(scored["acc_per_image_mean"], abs=1e-6)
    assert scored["acc"] > 0 and abs(scored["acc_per_image_mean"] - scored["acc"]) > 1e-3  # two metrics, told apart
    # the loss of the test stage is the loss of the TTA logits (the tiny split is one batch)
    x, y = next(iter(datamodule.test_dataloader()))
    with torch.no_grad():
        with_tta, plain = (float(model.criterion(predict_logits(model, x, t), y)) for t in (tta, False))
    assert with_tta != pytest.approx(plain)  # else this test could not tell the TTA from none
    assert metrics["test/loss"] == pytest.approx(with_tta, rel=1e-5)


def test_objective_prefers_the_best_value_and_names_a_missing_metric():
    metrics = {"val/acc": 0.5, "best/val/acc": 0.7, "test/acc": 0.6}
    assert objective(metrics, "val/acc") == 0.7
    assert objective(metrics, "test/acc") == 0.6
    assert objective(metrics, None) is None
    with pytest.raises(KeyError, match="optimized_metric='nope' was not logged"):
        objective(metrics, "nope")


@pytest.mark.slow
@pytest.mark.cpu_kinds
def test_ddp_on_two_cpu_processes_as_typed_rank_zero_writes_and_val_acc_is_synced(
    cpu_kind, train_overrides, tmp_path, data_dir
):
    import json

    import pytorch_lightning as pl

    from seg.data.msrc_data import MSRCDataModule
    from seg.model.module import SegModule
    from seg.run.hardware import auto_precision

    base = [o for o in train_overrides if not o.startswith("data.batch_size=")]
    run = tmp_path / "ddp"
    # batch 1, 1 val batch per process: rank 0 validates image 0, rank 1 image 1 (DistributedSampler
    # deals indices round-robin); a few steps, so that the net predicts some classes right
    cmd = [
        sys.executable,
        "-m",
        "seg.train",
        "trainer=ddp",
        *base,
        "trainer.devices=2",
        "trainer.max_epochs=4",
        "++trainer.limit_train_batches=3",
        "++trainer.limit_val_batches=1",
        "data.batch_size=1",
        "optimizer.lr=0.01",
        "callbacks.ema=null",  # validate the trained weights: 12 steps barely move an average of them
        "data.augment=false",
        "test=false",
        f"hydra.run.dir={run}",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:] + err[-5000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in out + err

    # Only rank 0 (the launched process) writes: one config, the checkpoints, TensorBoard, result.json.
    # Rank 1 is re-launched by Lightning with hydra.output_subdir=null into the same run dir and
    # leaves only its own text log.
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [".hydra", "checkpoints", "result.json", "splits", "tensorboard", "train.log", "train_ddp_process_1.log"]
    )
    assert sorted(p.name for p in (run / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and all(f".{proc.pid}." in e.name for e in events)
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and len(ckpts) == 2
    result = json.loads((run / "result.json").read_text())
    assert result["epochs"] == 4

    # The logged val/acc is over both processes' images (torchmetrics syncs its state): it equals a
    # single process validating the same weights on images 0 and 1, not rank 0's image 0 alone.
    logged = result["metrics"]["best/val/acc"]
    best_ckpt = next((run / "checkpoints").glob("epoch_*.ckpt"))

    def validate(batch_size: int) -> float:
        model = SegModule.load_from_checkpoint(best_ckpt, map_location="cpu", weights_only=True)
        dm = MSRCDataModule(str(data_dir), batch_size=batch_size, crop_size=CROP)
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            precision=auto_precision("cpu")[0],  # what the run validated in: numbers compared at one precision
            limit_val_batches=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        return trainer.validate(model, datamodule=dm, verbose=False)[0]["val/acc"]

    both, first = validate(2), validate(1)
    assert logged > 0 and logged == pytest.approx(both, abs=1e-6)
    assert abs(both - first) > 1e-6  # the comparison can tell a synced value from rank 0's own


def test_smoke_on_the_real_archive_with_pretrained_encoder(real_run):
    """The real download path (SEG_DATA_URL) and ImageNet weights (TORCH_HOME), a few batches."""
    run, data = real_run
    root = data / "segmentation_data"
    assert sum(1 for _ in (root / "images").glob("*.bmp")) == 391
    tags = scalars(run)
    assert 0.0 < tags["test/acc"][-1] <= 1.0
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_a_checkpoint_of_another_net_or_project_or_a_run_folder_is_refused_before_training(
    tiny_run, train_overrides, tmp_path, caplog
):
    foreign = tmp_path / "other_project.ckpt"
    torch.save({"state_dict": {"layer.weight": torch.zeros(2, 2)}, "hyper_parameters": {"hidden": 3}}, foreign)
    cases = [
        (
            ["model=mobilenet_tconv", f"ckpt_path={tiny_run / 'checkpoints' / 'last.ckpt'}"],
            "holds a MobileNetSkipSeg net",
        ),
        ([f"ckpt_path={foreign}"], "is not a seg.train checkpoint"),
        ([f"ckpt_path={tiny_run}"], f"is a folder, not a checkpoint: to continue the run in it pass resume={tiny_run}"),
    ]
    for i, (overrides, message) in enumerate(cases):
        caplog.clear()
        out = tmp_path / f"run{i}"
        with pytest.raises(SystemExit) as exit_:
            run(compose_config("train", *train_overrides, *overrides, f"paths.output_dir={out}"))
        assert exit_.value.code == 2 and message in caplog.text, caplog.text
        assert "weights do not fit" in caplog.text or "folder" in caplog.text
        assert not (out / "checkpoints").exists()  # refused before any training


def test_logger_null_trains_and_a_run_without_test_says_so(train_overrides, tmp_path, caplog):
    import logging

    cfg = compose_config(
        "train",
        *train_overrides,
        *null_groups(["logger=null"]),  # as typed on the command line
        "test=false",
        "trainer.max_epochs=1",
        "++trainer.limit_train_batches=2",
        f"paths.output_dir={tmp_path}",
    )
    with caplog.at_level(logging.INFO, logger="seg.train"):
        assert 0.0 <= run(cfg) <= 1.0
    assert not (tmp_path / "tensorboard").exists() and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert "no (test=false)" in caplog.text and "tested (last)" not in caplog.text
