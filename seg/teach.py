"""`python -m seg.teach ckpt_path=PATH`: a trained model's soft targets on every training photo, with
multi-scale test-time augmentation, for another run to distil (``python -m seg.train
data.soft_targets=FILE``): ten scaled passes of the teacher become targets the single-pass net learns."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig
from tqdm import tqdm

from seg.core.errors import ConfigError
from seg.core.rules import Get, Settings, given, integer
from seg.data import soft_targets
from seg.data.dataset import SegDataset
from seg.data.splits import read_split
from seg.data.transforms import EvalPreset
from seg.model.checkpoint import load_model
from seg.model.inference import max_side_problem, photo_logits, tta_problem, tta_scales
from seg.run.build import build_datamodule
from seg.run.entry import hydra_main, run_job
from seg.run.resume import run_dir_of
from seg.run.settings import tta_value

log = logging.getLogger(__name__)


def teach(cfg: DictConfig) -> Path:
    """Write the soft targets of ``cfg.ckpt_path`` on the training split of ``cfg.data`` (folds applied)."""
    model, trained_data = load_model(cfg.ckpt_path)
    normalize = trained_data.get("normalize", True)  # the input normalisation the teacher was trained with
    datamodule = build_datamodule(cfg, normalize=normalize, augment=False)
    datamodule.prepare_data()
    labels = datamodule.label_set()
    advice = "soft targets must name the data's classes: use a teacher trained on this data"
    model.label_set.require(labels, f"ckpt_path={cfg.ckpt_path}", advice)
    items = datamodule.items("train")
    refuse_leak(Path(cfg.ckpt_path), datamodule.item_names("val"))
    photos = SegDataset(items, datamodule.reader, EvalPreset(None, normalize, labels.ignore_index), datamodule.cached)
    tta, stride = tta_value(cfg.tta), int(cfg.stride)
    started, targets = time.perf_counter(), []
    for i in tqdm(range(len(photos)), unit="photo", desc="teach", disable=not cfg.progress):
        x = photos[i][0][None]
        probs = photo_logits(model, x, tta, cfg.get("max_side")).float().softmax(1)[0]
        targets.append(soft_targets.shrink(probs, stride))
    seconds = time.perf_counter() - started
    out = Path(cfg.output) if cfg.get("output") else Path(cfg.paths.output_dir) / "soft_targets.pt"
    scales = list(tta_scales(tta))  # [] for no TTA, [1.0] for the flip alone (tta=true)
    teacher = {"ckpt_path": str(Path(cfg.ckpt_path).resolve()), "tta": scales, "seconds": seconds}
    soft_targets.write(out, photos.names, targets, stride, labels, teacher)
    log.info(
        f"soft targets of {len(targets)} training photos ({len(scales) or 1} scales, flipped: "
        f"{bool(scales)}) in {seconds:.0f} s, written to {out}\n"
        f"distil them: python -m seg.train data.soft_targets={out} (with this command's data settings)"
    )
    return out


def refuse_leak(ckpt_path: Path, val_names: list[str]) -> None:
    """Refuse a teacher that trained on validation photos of this data (another fold, another split):
    its soft targets would carry them into training and the validation score would lie."""
    run = run_dir_of(ckpt_path)
    listed = run / "splits" / "train.txt" if run else None
    if listed is None or not listed.is_file():
        log.info(f"ckpt_path={ckpt_path}: its run lists no training split; not checked against this data's val split")
        return
    seen = set(read_split(listed)) & set(val_names)
    if seen:
        raise ConfigError(
            f"ckpt_path={ckpt_path} trained on {len(seen)} of this data's {len(val_names)} val photos (e.g. "
            f"{', '.join(sorted(seen)[:3])}): distilling it would leak them into training. Teach with a model "
            f"trained on this split (the same data.folds, data.fold and data.fold_seed)"
        )


def _checkpoint_given(get: Get, at: str) -> list[str]:
    if given(get("ckpt_path")):
        return []
    return ["ckpt_path: pass the teacher's checkpoint, e.g. ckpt_path=outputs/runs/DATE/TIME/checkpoints/last.ckpt"]


# the keys seg.teach reads itself; the data group's class checks its own
SETTINGS = Settings(
    {
        "tta": tta_problem,
        "max_side": max_side_problem,
        "stride": integer(1, why="soft targets are kept as the mean of stride x stride blocks"),
    },
    checks=(_checkpoint_given,),
)


def run(cfg: DictConfig) -> str:
    """What Hydra calls: write the soft targets; their path."""
    return str(run_job(cfg, teach, SETTINGS))


main = hydra_main("teach", run)

if __name__ == "__main__":
    main()
