"""Metric maths against an independent NumPy computation on crafted predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seg.data.labels import NUM_CLASSES
from seg.model.metrics import SplitScore, class_iou, per_image_accuracy


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
    scored = SplitScore()
    scored.update(torch.from_numpy(np.stack(preds)), torch.from_numpy(np.stack(targets)))
    m = scored.compute()
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


def test_split_score_accumulates_batches_like_one_batch():
    torch.manual_seed(0)
    pred, target = torch.randint(0, 4, (6, 5, 5)), torch.randint(-1, 4, (6, 5, 5))
    whole, parts = SplitScore(), SplitScore()
    whole.update(pred, target)
    for p, t in zip(pred.split(4), target.split(4)):
        parts.update(p, t)
    a, b = whole.compute(), parts.compute()
    assert a["confusion_matrix"] == b["confusion_matrix"] and a["num_images"] == b["num_images"] == 6
    assert a["acc_per_image_mean"] == pytest.approx(b["acc_per_image_mean"])
    assert per_image_accuracy(torch.zeros(1, 2, 2), torch.full((1, 2, 2), -1)) != per_image_accuracy(
        torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long)
    )  # all void: NaN, not 1.0
    iou = class_iou(np.array([[2, 1, 0], [0, 3, 0], [0, 0, 0]]))
    assert iou[0] == pytest.approx(2 / 3) and iou[1] == pytest.approx(3 / 4) and np.isnan(iou[2])
