"""`python -m seg.check [data=folder data.root=DIR]`: a data set looked at before training on it.

Per split the number of pairs, image sizes and mask modes; per class its pixel share and image count
(a table, and a bar chart ``classes.png``); and every problem with its file. Writes ``check.md``,
``check.json`` and ``classes.png`` to its run dir; problems exit 2, one line each. ``seg.train`` runs
the same survey before any work. Nothing imports it.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from matplotlib.figure import Figure  # figures without pyplot: rendered off-screen
from omegaconf import DictConfig

from seg.core.files import atomic_write
from seg.data.datamodule import DataCheckError
from seg.data.survey import Survey, report
from seg.run.build import build_datamodule
from seg.run.entry import hydra_main, run_job

log = logging.getLogger(__name__)


def class_chart(found: Survey) -> Figure:
    """Each class's share of the labelled pixels, one bar per split, with the images it occurs in."""
    names, splits = found.label_set.names, list(found.splits)
    fig = Figure(figsize=(max(6.0, 0.45 * len(names) + 2), 4.5))
    ax = fig.subplots()
    width = 0.8 / len(splits)
    for k, split in enumerate(splits):
        st = found.splits[split]
        total = max(sum(st.class_pixels), 1)
        xs = [i + (k - (len(splits) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, [100 * v / total for v in st.class_pixels], width, label=f"{split} ({st.pairs} pairs)")
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_ylabel("% of labelled pixels")
    ax.legend()
    fig.tight_layout()
    return fig


def check(cfg: DictConfig) -> Survey:
    """Survey ``cfg.data``, print and write the report; problems raise after the report is written."""
    datamodule = build_datamodule(cfg)
    found = datamodule.survey()
    if why := datamodule.fold_count_problem():  # the folds are cut from the splits the survey found
        found.problems.append(why)
    out = Path(cfg.paths.output_dir)
    text = report(found)
    atomic_write(out / "check.md", "```\n" + text + "\n```\n")
    atomic_write(out / "check.json", found.to_json())
    buf = io.BytesIO()
    class_chart(found).savefig(buf, format="png", dpi=100)
    atomic_write(out / "classes.png", buf.getvalue())
    log.info(f"\n{text}\n\nwritten to {out}/check.md, check.json, classes.png")
    if found.problems:
        raise DataCheckError(f"{len(found.problems)} problems in the data set:\n" + "\n".join(found.problems))
    return found


def run(cfg: DictConfig) -> int:
    """What Hydra calls: check, and hand the number of pairs to a sweeper."""
    return run_job(cfg, lambda c: sum(s.pairs for s in check(c).splits.values()))


main = hydra_main("check", run)

if __name__ == "__main__":
    main()
