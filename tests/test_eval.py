"""`seg.eval`: metrics against an independent NumPy computation, the report files, TensorBoard content."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from conftest import run_module
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from seg.data import ARCHIVE_DIR, NUM_CLASSES, MSRCDataset
from seg.eval import evaluate, load_model


class FixedPredictions(torch.nn.Module):
    """A 'net' whose prediction is channel 0 of its input: crafted predictions through evaluate()."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(x[:, 0].long(), NUM_CLASSES).permute(0, 3, 1, 2).float()


def numpy_reference(preds: list[np.ndarray], targets: list[np.ndarray]) -> dict:
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    per_image = []
    for p, t in zip(preds, targets):
        v = t != -1
        np.add.at(cm, (t[v], p[v]), 1)
        per_image.append((p[v] == t[v]).mean())
    iou = {}
    for c in range(NUM_CLASSES):
        inter = cm[c, c]
        union = cm[c, :].sum() + cm[:, c].sum() - inter
        if union:
            iou[c] = inter / union
    return {"cm": cm, "acc": np.trace(cm) / cm.sum(), "per_image": np.mean(per_image), "iou": iou}


def test_metrics_match_numpy_on_crafted_predictions():
    # image 0: 4 labelled pixels, all right; image 1: 7 labelled pixels, 2 right; void predicted anything
    t0 = np.array([[0, 0, 1, 1], [-1, -1, -1, -1]])
    p0 = np.array([[0, 0, 1, 1], [5, 5, 5, 5]])
    t1 = np.array([[2, 2, 2, 2], [3, 3, 3, -1]])
    p1 = np.array([[2, 2, 3, 3], [1, 1, 1, 9]])
    targets, preds = [t0, t1], [p0, p1]
    x = torch.from_numpy(np.stack(preds))[:, None].float().expand(-1, 3, -1, -1)
    y = torch.from_numpy(np.stack(targets))
    m = evaluate(FixedPredictions(), [(x, y)])
    ref = numpy_reference(preds, targets)

    assert m["acc"] == pytest.approx(ref["acc"]) == pytest.approx(6 / 11)
    assert m["acc_per_image_mean"] == pytest.approx(ref["per_image"]) == pytest.approx((1 + 2 / 7) / 2)
    assert m["acc"] != pytest.approx(m["acc_per_image_mean"])  # images weigh by their labelled pixels
    np.testing.assert_array_equal(np.array(m["confusion_matrix"]), ref["cm"])
    assert m["num_pixels"] == 11 and m["num_images"] == 2  # void pixels never count
    for c in m["per_class"]:
        assert c["pixels"] == int((np.concatenate([t.ravel() for t in targets]) == c["id"]).sum())
        if c["id"] in ref["iou"]:
            assert c["iou"] == pytest.approx(ref["iou"][c["id"]])
        else:
            assert c["iou"] is None
    assert m["miou"] == pytest.approx(np.mean(list(ref["iou"].values())))
    # class 9 is predicted only on void: not present, not counted
    assert m["per_class"][9]["iou"] is None
    assert m["per_class"][3]["acc"] == pytest.approx(0.0) and m["per_class"][0]["acc"] == 1.0
    # a per-pixel 'net' is flip-equivariant: flip TTA changes nothing
    assert evaluate(FixedPredictions(), [(x, y)], tta=True)["confusion_matrix"] == m["confusion_matrix"]


def test_eval_needs_only_the_checkpoint(tiny_run, archive_url, data_dir, tmp_path):
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    out = tmp_path / "eval"
    proc = run_module("seg.eval", f"ckpt_path={ckpt}", f"data.url={archive_url}", f"paths.data_dir={data_dir}",
                      f"hydra.run.dir={out}")
    assert "acc_per_image_mean (course metric)" in proc.stdout + proc.stderr
    m = json.loads((out / "metrics.json").read_text())
    for key in ("acc", "acc_per_image_mean", "miou", "per_class", "confusion_matrix", "split", "num_images",
                "ckpt_path", "tta"):
        assert key in m
    assert m["split"] == "test" and m["tta"] is False and m["num_images"] == 3
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (23, 23)
    assert m["acc"] == pytest.approx(np.trace(cm) / cm.sum())
    # the confusion matrix counts exactly the non-void pixels of the split under CenterCrop(240)
    ds = MSRCDataset(data_dir / ARCHIVE_DIR, "test", crop_size=240)
    assert cm.sum() == sum(int((ds[i][1] != -1).sum()) for i in range(len(ds)))
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    for c in m["per_class"]:
        expected = tp[c["id"]] / union[c["id"]] if union[c["id"]] else None
        assert c["iou"] == (pytest.approx(expected) if expected is not None else None)
    rows = list(csv.DictReader(open(out / "per_class.csv")))
    assert [r["name"] for r in rows][:3] == ["building", "grass", "tree"] and len(rows) == 23

    # the same split with flip TTA reports the same keys
    out_tta = tmp_path / "eval_tta"
    run_module("seg.eval", f"ckpt_path={ckpt}", f"data.url={archive_url}", f"paths.data_dir={data_dir}",
               "tta=true", "split=val", f"hydra.run.dir={out_tta}")
    m_tta = json.loads((out_tta / "metrics.json").read_text())
    assert m_tta["tta"] is True and m_tta["split"] == "val" and set(m_tta) == set(m)


def test_eval_rebuilds_the_trained_weights(tiny_run):
    model, data_hparams = load_model(tiny_run / "checkpoints" / "last.ckpt")
    state = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, state[k])
    assert data_hparams["crop_size"] == 64 and not model.training


@pytest.mark.parametrize("kind", ["missing", "not-a-checkpoint", "no-arg"])
def test_eval_bad_checkpoint_is_a_clear_error(kind, tmp_path):
    if kind == "missing":
        args, message = [f"ckpt_path={tmp_path / 'nope.ckpt'}"], "Checkpoint not found"
    elif kind == "not-a-checkpoint":
        bad = tmp_path / "bad.ckpt"
        bad.write_text("not a checkpoint")
        args, message = [f"ckpt_path={bad}"], "is not a seg.train checkpoint"
    else:
        args, message = [], "ckpt_path"
    proc = run_module("seg.eval", *args, f"hydra.run.dir={tmp_path / 'out'}", check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_tensorboard_has_prediction_images_figures_and_hparams(tiny_run):
    images, hparams, scalars = set(), [], set()
    for f in sorted((tiny_run / "tensorboard").glob("events.out.tfevents.*")):
        ea = EventAccumulator(str(f), size_guidance={"images": 0})
        ea.Reload()
        images |= set(ea.Tags()["images"])
        scalars |= set(ea.Tags()["scalars"])
        try:
            plugin = ea.PluginTagToContent("hparams")
        except KeyError:  # an event file without an hparams entry
            plugin = {}
        for tag, content in plugin.items():
            if tag.endswith("session_start_info"):
                hparams.append(plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info)
        if "val/predictions" in ea.Tags()["images"]:
            grids = ea.Images("val/predictions")
    assert {"val/predictions", "test/confusion_matrix", "test/per_class_iou"} <= images
    assert len(grids) == 3  # every epoch (log_images_every_n_epochs=1) and at the end of fitting
    assert grids[0].width == 3 * 64 + 4 * 2  # input | ground truth | prediction, 64-pixel crops
    assert len(hparams) == 1
    names = set(hparams[0].hparams)
    assert {"optimizer/lr", "data/batch_size", "model/net/freeze_params"} <= names
    assert {"hp/test_acc", "hp/best_val_acc", "hp/test_miou"} <= scalars
