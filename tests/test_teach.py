"""Distillation end to end: seg.teach writes a trained model's TTA soft targets of the training photos, and
seg.train learns them beside the labels (data.soft_targets)."""

from __future__ import annotations

import pytest
import torch

from seg.core.errors import ConfigError
from seg.data import soft_targets
from seg.data.dataset import MSRCDataset
from seg.data.labels import MSRC, LabelSet
from seg.data.transforms import EvalPreset
from seg.model.checkpoint import load_model
from seg.model.inference import photo_logits
from seg.teach import refuse_leak, teach

from helpers import SIZES, compose_config, run_module, scalars, tiny_overrides

TTA = [0.75, 1.0]


@pytest.fixture(scope="module")
def taught(tiny_run, archive_url, data_dir, tmp_path_factory):
    """The tiny run's soft targets on the tiny training split, written by the command line."""
    out = tmp_path_factory.mktemp("teach")
    proc = run_module(
        "seg.teach",
        f"ckpt_path={tiny_run / 'checkpoints' / 'last.ckpt'}",
        f"tta=[{','.join(map(str, TTA))}]",
        f"data.url={archive_url}",
        "data.sha256=null",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={out}",
    )
    return out / "soft_targets.pt", proc


def test_teach_writes_the_teachers_tta_probabilities_of_every_training_photo(taught, tiny_run, data_dir):
    path, proc = taught
    data = soft_targets.read(path)
    train = MSRCDataset(data_dir / "segmentation_data", "train", EvalPreset(None))
    assert data["names"] == list(train.names) and data["stride"] == 4
    assert data["teacher"]["tta"] == TTA and LabelSet.from_dict(data["labels"]).names == MSRC.names
    for (w, h), soft in zip(SIZES, data["targets"]):
        assert soft.dtype == torch.uint8 and soft.shape == (23, -(-h // 4), -(-w // 4))
        assert (soft.sum(0).float() - 255).abs().max() <= 23 / 2  # probabilities, each rounded to 1/255
    # exactly the teacher's averaged TTA logits, softmaxed, as 4x4 block means
    model, _ = load_model(tiny_run / "checkpoints" / "last.ckpt")
    x = train[1][0][None]
    expected = soft_targets.shrink(photo_logits(model, x, TTA).softmax(1)[0], 4)
    assert (expected.int() - data["targets"][1].int()).abs().max() <= 1
    assert f"data.soft_targets={path}" in proc.stderr + proc.stdout  # says how to use them


def test_training_distils_the_soft_targets(taught, archive_url, data_dir, tmp_path):
    path, _ = taught
    run = tmp_path / "run"
    run_module(
        "seg.train",
        *tiny_overrides(archive_url, data_dir, tmp_path / "outputs"),
        f"data.soft_targets={path}",
        "trainer.max_epochs=1",
        "test=false",
        f"hydra.run.dir={run}",
    )
    logged = scalars(run)
    assert logged["train/distill"] and all(v > 0 for v in logged["train/distill"])
    # the file is named in the checkpoint's data settings: the run says what it learnt from
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["datamodule_hyper_parameters"]["soft_targets"] == str(path)


def test_a_teacher_that_trained_on_val_photos_is_refused(tiny_run):
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    trained = (tiny_run / "splits" / "train.txt").read_text().split()
    val = (tiny_run / "splits" / "val.txt").read_text().split()
    refuse_leak(ckpt, val)  # its own val split: fine
    with pytest.raises(ConfigError, match=r"trained on 1 of this data's 2 val photos.*data\.fold"):
        refuse_leak(ckpt, [trained[0], val[0]])


@pytest.mark.parametrize(("tta", "recorded"), [("true", [1.0]), ("false", [])])
def test_teach_takes_every_tta_setting(tiny_run, archive_url, data_dir, tmp_path, tta, recorded):
    """tta=true (the flip alone) and tta=false (one pass) as seg.eval takes them."""
    cfg = compose_config(
        "teach",
        f"ckpt_path={tiny_run / 'checkpoints' / 'last.ckpt'}",
        f"tta={tta}",
        f"data.url={archive_url}",
        "data.sha256=null",
        f"paths.data_dir={data_dir}",
        f"output={tmp_path / 'soft.pt'}",
        "progress=false",
    )
    data = soft_targets.read(teach(cfg))
    assert data["teacher"]["tta"] == recorded and len(data["names"]) == 6
