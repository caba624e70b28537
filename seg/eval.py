"""`python -m seg.eval ckpt_path=PATH`: per-class metrics and the confusion matrix of one split."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from seg.core.rules import Get, Settings, given, one_of
from seg.data.labels import LabelSet
from seg.data.splits import SPLITS
from seg.model.checkpoint import load_model
from seg.model.inference import (
    TILE_OVERLAP,
    TTA,
    max_side_problem,
    photo_ids,
    tile_overlap_problem,
    tile_problem,
    tta_problem,
)
from seg.model.metrics import SplitScore
from seg.run.build import build_datamodule
from seg.run.entry import hydra_main, run_job
from seg.run.predictions import sizing
from seg.run.results import format_table, write_eval_report
from seg.run.settings import tta_value

log = logging.getLogger(__name__)


def score(
    model: torch.nn.Module,
    loader: Any,
    tta: TTA = False,
    max_side: int | None = None,
    labels: LabelSet | None = None,
    tile: int | None = None,
    tile_overlap: float = TILE_OVERLAP,
) -> dict[str, Any]:
    """Every metric of ``model`` over ``loader`` (batches of images and targets); void never counts.

    Images with a side over ``max_side`` go through the net shrunk to it, as ``seg.predict`` does; with
    ``tile``, images larger than it go through in overlapping windows at their own size.
    ``labels``: the model's classes with the data's ignore index (default: the model's own label set).
    """
    scored = SplitScore(labels or model.label_set)
    for x, y in loader:
        scored.update(photo_ids(model, x, tta, max_side, tile, tile_overlap), y)
    return scored.compute()


def by_name(loader: Any, model: LabelSet, data: LabelSet) -> tuple[Iterator, int]:
    """``loader``'s targets as the model's class ids, matched by name (``match_classes=by_name``), and the
    ignore index they then carry: the data's classes the model lacks, and its unlabelled pixels, ignored."""
    lut, missing = model.by_name(data)
    ignore = data.ignore_index if not 0 <= data.ignore_index < model.num_classes else -1
    if missing:
        log.info(f"match_classes=by_name: the data's {', '.join(missing)} (no class of the model) are not scored")
    table = torch.as_tensor(np.where(lut == data.ignore_index, ignore, lut))
    batches = ((x, torch.where(y == data.ignore_index, ignore, table[y.clamp(0, len(table) - 1)])) for x, y in loader)
    return batches, ignore


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score ``cfg.ckpt_path`` on ``cfg.split`` and write the report into ``cfg.paths.output_dir``."""
    model, trained_data = load_model(cfg.ckpt_path)
    # the data group of training (source, crop, batch size, ...) with the checkpoint's own input
    # normalisation; no augmentation: a split is scored as the data group evaluates it (data=msrc: the
    # course's centre crop; data=folder: whole photos unless data.eval_crop_size is set)
    datamodule = build_datamodule(cfg, normalize=trained_data.get("normalize", True), augment=False)
    datamodule.split_dataset(cfg.split)
    loader = datamodule.dataloader(cfg.split)
    theirs, ours = model.label_set, datamodule.label_set()
    ignore = ours.ignore_index  # how the data's masks mark unlabelled pixels
    if cfg.get("match_classes", "exact") == "by_name":
        loader, ignore = by_name(loader, theirs, ours)
    else:
        advice = (
            "its scores on this data would be silently wrong: score it on the data it was trained for, or set "
            "match_classes=by_name to score the classes both name"
        )
        theirs.require(ours, f"ckpt_path={cfg.ckpt_path}", advice)
    labels = LabelSet(theirs.names, theirs.palette, ignore, theirs.ignore_colours)
    tta, how = tta_value(cfg.tta), sizing(cfg)  # max_side, tile, tile_overlap, as seg.predict reads them
    started = time.perf_counter()
    metrics = score(model, loader, tta=tta, labels=labels, **how)
    metrics.update(split=cfg.split, ckpt_path=str(Path(cfg.ckpt_path).resolve()), tta=tta, **how)
    metrics["seconds"] = time.perf_counter() - started  # reading and scoring the split, the model loaded
    write_eval_report(metrics, Path(cfg.paths.output_dir))
    log.info("\n" + format_table(metrics) + f"\n\nwritten to {cfg.paths.output_dir}/metrics.json")
    return metrics


def _checkpoint_given(get: Get, at: str) -> list[str]:
    if given(get("ckpt_path")):
        return []
    return ["ckpt_path: pass the checkpoint to evaluate, e.g. ckpt_path=outputs/runs/DATE/TIME/checkpoints/last.ckpt"]


# the keys seg.eval reads itself; the data group's class checks its own
SETTINGS = Settings(
    {
        "split": one_of(*SPLITS),
        "tta": tta_problem,
        "max_side": max_side_problem,
        "tile": tile_problem,
        "tile_overlap": tile_overlap_problem,
        "match_classes": one_of("exact", "by_name"),
    },
    checks=(_checkpoint_given,),
)


def run(cfg: DictConfig) -> float:
    """What Hydra calls: evaluate, and hand the global accuracy to a sweeper."""
    return run_job(cfg, lambda c: evaluate(c)["acc"], SETTINGS)


main = hydra_main("eval", run)

if __name__ == "__main__":
    main()
