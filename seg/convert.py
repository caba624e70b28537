"""`python -m seg.convert data=folder data.root=DIR output=OUT`: a data set (any data option; a LabelMe,
COCO or CVAT export as it is) written out as a folder data set for other tools: ``OUT/images/``,
``OUT/masks/`` (index PNGs, 255 ignored, the class colours as palette), ``OUT/classes.txt`` and the
split lists (:mod:`seg.data.folder_writer`). The data is checked first, as seg.train checks it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from seg.core.rules import Get, Settings, given
from seg.data.folder_writer import write_folder
from seg.run.build import build_datamodule
from seg.run.entry import hydra_main, run_job

log = logging.getLogger(__name__)


def convert(cfg: DictConfig) -> dict[str, int]:
    """Write ``cfg.data`` to ``cfg.output`` (a data set with problems stops at its check, one line each,
    before anything is written); the photos per split."""
    dm = build_datamodule(cfg)
    counts = write_folder(dm, Path(cfg.output))
    shown = ", ".join(f"{s} {n}" for s, n in counts.items())
    log.info(f"wrote {cfg.output}: {shown} photos, {dm.label_set().num_classes} classes (classes.txt)")
    return counts


def _output_given(get: Get, at: str) -> list[str]:
    if given(get("output")):
        return []
    return ["output: pass the new folder to write, e.g. output=converted/"]


SETTINGS = Settings({}, checks=(_output_given,))


def run(cfg: DictConfig) -> Any:
    """What Hydra calls: convert, and hand the number of photos to a sweeper."""
    return run_job(cfg, lambda c: sum(convert(c).values()), SETTINGS)


main = hydra_main("convert", run)

if __name__ == "__main__":
    main()
