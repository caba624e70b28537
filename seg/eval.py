"""`python -m seg.eval ckpt_path=PATH`: per-class metrics and the confusion matrix of one split."""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassConfusionMatrix

from seg.data import CLASS_NAMES, NUM_CLASSES, VOID, MSRCDataset, prepare_data
from seg.module import SegModule

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """The checkpoint is missing or was not written by seg.train."""


def load_model(ckpt_path: str | os.PathLike) -> tuple[SegModule, dict[str, Any]]:
    """Rebuild a SegModule from a seg.train checkpoint alone; also return its datamodule hparams.

    The encoder is built without pretrained weights (no download): the checkpoint holds them all.
    """
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise CheckpointError(
            f"Checkpoint not found: {path}. Pass ckpt_path=... with a file written by seg.train, "
            f"e.g. outputs/runs/<date>/<time>/checkpoints/last.ckpt"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        hparams = dict(ckpt["hyper_parameters"])
        net = dict(hparams["net"])
    except Exception as e:  # unpickling errors vary: report them all the same way
        raise CheckpointError(
            f"{path} is not a seg.train checkpoint (it needs the model's hyper_parameters with a 'net' "
            f"config): {type(e).__name__}: {e}"
        ) from e
    hparams["net"] = {**net, "weights": None} if "weights" in net else net
    model = SegModule(**hparams)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), dict(ckpt.get("datamodule_hyper_parameters") or {})


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Logits; with ``tta`` the mean of the image's and its horizontal flip's logits."""
    logits = model(x)
    if tta:
        logits = (logits + model(x.flip(-1)).flip(-1)) / 2
    return logits


def per_image_accuracy(pred: torch.Tensor, target: torch.Tensor) -> list[float]:
    """Masked pixel accuracy of each image of a batch (NaN for an image that is all void)."""
    valid = target != VOID
    correct = ((pred == target) & valid).flatten(1).sum(1)
    total = valid.flatten(1).sum(1)
    return [c / t if t else float("nan") for c, t in zip(correct.tolist(), total.tolist())]


def class_iou(confmat: np.ndarray) -> np.ndarray:
    """IoU per class from a (ground truth x prediction) pixel count matrix; NaN where a class is
    neither in the ground truth nor predicted."""
    tp = np.diag(confmat)
    union = confmat.sum(0) + confmat.sum(1) - tp
    return np.divide(tp, union, out=np.full(len(tp), np.nan), where=union > 0)


def metrics_from_confusion(confmat: np.ndarray, per_image_acc: list[float]) -> dict[str, Any]:
    """Accuracy, IoUs and per-class figures from a (ground truth x prediction) pixel count matrix."""
    confmat = np.asarray(confmat, dtype=np.int64)
    tp, gt = np.diag(confmat), confmat.sum(1)
    iou = class_iou(confmat)
    acc = np.divide(tp, gt, out=np.full(len(tp), np.nan), where=gt > 0)
    images = np.array([a for a in per_image_acc if not np.isnan(a)])

    def num(v: float) -> float | None:
        return None if np.isnan(v) else float(v)

    return {
        "acc": float(tp.sum() / max(confmat.sum(), 1)),
        "acc_per_image_mean": float(images.mean()) if len(images) else None,
        # over classes in the split's ground truth or predictions (union > 0)
        "miou": float(np.nanmean(iou)) if not np.isnan(iou).all() else None,
        "per_class": [
            {"id": i, "name": CLASS_NAMES[i], "iou": num(iou[i]), "acc": num(acc[i]), "pixels": int(gt[i])}
            for i in range(len(tp))
        ],
        "confusion_matrix": confmat.tolist(),
        "num_pixels": int(confmat.sum()),
    }


def evaluate(model: torch.nn.Module, loader: DataLoader, tta: bool = False) -> dict[str, Any]:
    """Run ``model`` over ``loader``; void pixels never count."""
    confusion = MulticlassConfusionMatrix(NUM_CLASSES, ignore_index=VOID)
    per_image: list[float] = []
    for x, y in loader:
        pred = predict_logits(model, x, tta).argmax(1)
        confusion.update(pred, y)
        per_image += per_image_accuracy(pred, y)
    out = metrics_from_confusion(confusion.compute().numpy(), per_image)
    out["num_images"] = len(per_image)
    return out


def write_report(metrics: dict[str, Any], out_dir: Path) -> None:
    """metrics.json and per_class.csv, each written to a temp file and renamed into place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / ".metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=1))
    os.replace(tmp, out_dir / "metrics.json")
    tmp = out_dir / ".per_class.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "name", "iou", "acc", "pixels"])
        w.writeheader()
        w.writerows(metrics["per_class"])
    os.replace(tmp, out_dir / "per_class.csv")


def format_table(metrics: dict[str, Any]) -> str:
    def pct(v: float | None) -> str:
        return "   -  " if v is None else f"{100 * v:6.2f}"

    lines = [f"{'class':10s} {'IoU %':>6s} {'acc %':>6s} {'pixels':>9s}"]
    lines += [f"{c['name']:10s} {pct(c['iou'])} {pct(c['acc'])} {c['pixels']:9d}" for c in metrics["per_class"]]
    lines += [
        "",
        f"split {metrics['split']} ({metrics['num_images']} images, tta={metrics['tta']})",
        f"acc (global masked pixel accuracy)   {pct(metrics['acc'])}",
        f"acc_per_image_mean (course metric)   {pct(metrics['acc_per_image_mean'])}",
        f"miou                                 {pct(metrics['miou'])}",
    ]
    return "\n".join(lines)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split`` and write the report into ``cfg.paths.output_dir``."""
    if cfg.get("ckpt_path") in (None, "", "???"):
        raise CheckpointError("Pass the checkpoint to evaluate: python -m seg.eval ckpt_path=PATH")
    model, data_hparams = load_model(cfg.ckpt_path)
    root = prepare_data(cfg.data.url, cfg.data.data_dir)
    # Preprocessing as in training (normalisation), cropping as in the course protocol.
    normalize = cfg.data.normalize if cfg.data.get("normalize") is not None else data_hparams.get("normalize", True)
    dataset = MSRCDataset(root, cfg.split, crop_size=cfg.data.crop_size, normalize=normalize)
    loader = DataLoader(dataset, batch_size=cfg.data.batch_size, shuffle=False)
    metrics = evaluate(model, loader, tta=cfg.tta)
    metrics.update(split=cfg.split, ckpt_path=str(Path(cfg.ckpt_path).resolve()), tta=bool(cfg.tta))
    write_report(metrics, Path(cfg.paths.output_dir))
    log.info("\n" + format_table(metrics) + f"\n\nwritten to {cfg.paths.output_dir}/metrics.json")
    return metrics


@hydra.main(config_path="../conf", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> float:
    return run(cfg)["acc"]


if __name__ == "__main__":
    main()
