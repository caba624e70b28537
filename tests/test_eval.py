"""`python -m seg.eval` end to end: the report files, TTA, the data group of training, bad checkpoints."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from seg.data.archive import ARCHIVE_DIR
from seg.data.dataset import MSRCDataset
from seg.eval import evaluate
from seg.model.checkpoint import load_model

from helpers import compose_config, run_module


def test_eval_needs_only_the_checkpoint(tiny_run, archive_url, data_dir, tmp_path):
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    out = tmp_path / "eval"
    proc = run_module(
        "seg.eval", f"ckpt_path={ckpt}", f"data.url={archive_url}", f"paths.data_dir={data_dir}", f"hydra.run.dir={out}"
    )
    assert "acc_per_image_mean (course metric)" in proc.stdout + proc.stderr
    m = json.loads((out / "metrics.json").read_text())
    for key in (
        "acc",
        "acc_per_image_mean",
        "miou",
        "per_class",
        "confusion_matrix",
        "split",
        "num_images",
        "ckpt_path",
        "tta",
    ):
        assert key in m
    assert m["split"] == "test" and m["tta"] is False and m["num_images"] == 3
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (23, 23)
    assert m["acc"] == pytest.approx(np.trace(cm) / cm.sum())
    # the confusion matrix counts exactly the non-void pixels of the split under CenterCrop(240)
    ds = MSRCDataset(data_dir / ARCHIVE_DIR, "test")
    assert cm.sum() == sum(int((ds[i][1] != -1).sum()) for i in range(len(ds)))
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    for c in m["per_class"]:
        expected = tp[c["id"]] / union[c["id"]] if union[c["id"]] else None
        assert c["iou"] == (pytest.approx(expected) if expected is not None else None)
    with open(out / "per_class.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows][:3] == ["building", "grass", "tree"] and len(rows) == 23

    # the same split with flip TTA reports the same keys; data keys of the training data group apply
    # (in process: the command line's form is checked once, above)
    common = [f"ckpt_path={ckpt}", f"data.url={archive_url}", f"paths.data_dir={data_dir}"]
    m_tta = evaluate(
        compose_config(
            "eval",
            *common,
            "tta=true",
            "split=val",
            "data.cache=false",
            "data.batch_size=2",
            f"paths.output_dir={tmp_path / 't'}",
        )
    )
    assert m_tta["tta"] is True and m_tta["split"] == "val" and set(m_tta) == set(m)
    assert m_tta["num_images"] == 3
    # multi-scale TTA: the scales are recorded (a bad scale is a one-line error: tests/run/test_settings.py)
    m_ms = evaluate(compose_config("eval", *common, "tta=[0.75,1.0,1.25]", f"paths.output_dir={tmp_path / 'ms'}"))
    assert m_ms["tta"] == [0.75, 1.0, 1.25]


def test_eval_composes_the_training_data_group_and_writes_under_eval():
    train, ev = compose_config("train").data, compose_config("eval").data
    assert ev == train  # one source of the URL and of every data key
    cfg = compose_config("eval", "ckpt_path=x", hydra_config=True)
    assert Path(cfg.hydra.run.dir).parents[1] == Path(cfg.paths.log_dir) / "eval"  # eval/<date>/<time>


def test_eval_rebuilds_the_trained_weights(tiny_run):
    model, data_hparams = load_model(tiny_run / "checkpoints" / "last.ckpt")
    state = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k])
    assert data_hparams["crop_size"] == 64 and not model.training


def test_a_reference_net_checkpoint_trains_and_evaluates(train_overrides, archive_url, data_dir, tmp_path):
    """experiment=seed's net (the transposed-conv decoder, inputs without normalisation) through seg.eval."""
    run = tmp_path / "run"
    run_module(
        "seg.train",
        *train_overrides,
        "model=mobilenet_tconv",
        "data.normalize=false",
        "data.augment=false",
        "callbacks.ema=null",
        "trainer.max_epochs=1",
        f"hydra.run.dir={run}",
    )
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)  # plain types only
    assert ckpt["hyper_parameters"]["net"]["_target_"] == "seg.model.nets.MobileNetSeg"
    assert ckpt["datamodule_hyper_parameters"]["normalize"] is False
    out = tmp_path / "eval"
    run_module(
        "seg.eval",
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        f"data.url={archive_url}",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={out}",
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["num_images"] == 3 and 0.0 <= m["acc"] <= 1.0 and 0.0 <= m["acc_per_image_mean"] <= 1.0


@pytest.mark.parametrize("kind", ["missing", "not-a-checkpoint", "no-arg"])
def test_eval_bad_checkpoint_is_a_clear_error(kind, tmp_path, caplog):
    """In process (the command line's one-line form is covered in tests/run/test_settings.py and
    tests/model/test_checkpoint.py)."""
    from seg.eval import run

    if kind == "missing":
        args, message = [f"ckpt_path={tmp_path / 'nope.ckpt'}"], "Checkpoint not found"
    elif kind == "not-a-checkpoint":
        bad = tmp_path / "bad.ckpt"
        bad.write_text("not a checkpoint")
        args, message = [f"ckpt_path={bad}"], "is not a seg.train checkpoint"
    else:
        args, message = [], "ConfigError: ckpt_path: pass the checkpoint to evaluate"
    cfg = compose_config("eval", *args, f"paths.output_dir={tmp_path / 'out'}")
    with pytest.raises(SystemExit) as exit_:
        run(cfg)
    assert exit_.value.code == 2
    assert message in caplog.text and ("CheckpointError" in caplog.text or kind == "no-arg")
    assert not (tmp_path / "out" / "metrics.json").exists()
