"""Sweep bookkeeping: each job's ``result.json`` and a summary of a multirun at its sweep root.

``SweepSummary`` is a Hydra callback (``hydra.callbacks`` in conf/hydra/default.yaml). For every job
of a multirun it writes ``<job>/job.json`` (status, overrides, metrics from the job's
``result.json``, wall time, the error of a failed job), then rewrites ``summary.csv`` and
``summary.md`` at the sweep root from all the ``job.json`` files there, one row per job, best first,
and ``summary_groups.csv`` (also a second table in ``summary.md``): the jobs grouped by every
override but the seed and the fold, with the mean and spread of their metrics, best group first.

The summary is rewritten after every job, not only in ``on_multirun_end``: Hydra's basic sweeper
re-raises a failed job's exception once its batch has run, so ``on_multirun_end`` never comes
then, and with the joblib launcher ``on_job_end`` runs in the worker processes, which share
nothing with the parent but the file system. A file lock keeps concurrent rewrites consistent.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from seg.core.files import atomic_write, write_csv
from seg.run.results import finite, read_result

log = logging.getLogger(__name__)

JOB_FILE = "job.json"  # written by SweepSummary at the end of each job of a multirun
SWEEP_FILE = ".sweep.json"  # the multirun's shared override keys and sort order, written at its start
COLUMNS = (
    "job",
    "status",
    "overrides",
    "best val/acc",
    "test/acc",
    "test/acc_per_image_mean",
    "test/miou",
    "epochs",
    "wall_time_s",
    "objective",
    "output_dir",
    "error",
)
METRIC_KEYS = {
    "best val/acc": "best/val/acc",
    "test/acc": "test/acc",
    "test/acc_per_image_mean": "test/acc_per_image_mean",  # the course metric
    "test/miou": "test/miou",
}
# the overrides that repeat an experiment rather than change it: groups of jobs differ in the others
REPEAT_KEYS = ("seed", "data.fold")
# what each group of jobs gets the mean and sample standard deviation of
GROUP_VALUES = ("objective", *METRIC_KEYS, "minutes")
GROUP_COLUMNS = ("group", "n", "failed", *(f"{v} {stat}" for v in GROUP_VALUES for stat in ("mean", "std")))


def _torch_threads() -> int | None:
    import sys

    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def _parse(override: str) -> tuple[str, bool]:
    """(key, is a sweep) of one override; the key keeps its +/++/~ prefix."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        o = OverridesParser.create().parse_override(override)
    except Exception:
        return override, True
    return o.get_key_element(), o.is_sweep_override()


def fixed_keys(task_overrides: list[str]) -> list[str]:
    """Keys that every job of a multirun shares: set to one value on the command line, not swept there.

    Matched by key, since Hydra re-escapes values in the jobs' overrides (e.g. ``file\\://``). A
    command-line value also fixes a key of the Optuna sweeper's ``params``: the sweeper drops it
    from the search space.
    """
    parsed = [_parse(o) for o in task_overrides]
    return sorted({k for k, sweep in parsed if not sweep} - {k for k, sweep in parsed if sweep})


class SweepSummary(Callback):
    """Writes ``summary.csv`` and ``summary.md`` at the root of a multirun, one row per job.

    Rows are sorted by ``objective`` (the value the job returned to the sweeper: the best value of
    ``optimized_metric``, ``val/acc`` by default), best first (lowest first if the sweeper's
    ``direction`` is ``minimize``); failed jobs come last with ``status=failed`` and their error.
    ``overrides`` lists a job's own overrides, without those that every job of the sweep shares
    (the non-sweep command-line overrides). ``summary_groups.csv`` (and a second table in
    ``summary.md`` when some jobs differ only in ``seed`` or ``data.fold``) has one row per group of
    such jobs: how many, and the mean ± sample standard deviation of their metrics (:func:`group_rows`).
    """

    def __init__(self, filename: str = "summary") -> None:
        self.filename = filename
        self._started: dict[str, float] = {}

    # ------------------------------------------------------------------ Hydra callback hooks ----

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False) or []
        direction = OmegaConf.select(config, "hydra.sweeper.direction", default=None)
        info = {
            "fixed_keys": fixed_keys(task),
            "direction": str(getattr(direction, "name", direction) or "maximize").lower(),
            "optimized_metric": config.get("optimized_metric"),
            "pid": os.getpid(),
        }
        atomic_write(sweep_dir / SWEEP_FILE, json.dumps(info, indent=2) + "\n")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._started[str(config.hydra.runtime.output_dir)] = time.perf_counter()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        job_dir = Path(config.hydra.runtime.output_dir)
        started = self._started.pop(str(job_dir), None)
        record: dict[str, Any] = {
            "job": int(config.hydra.job.num),
            "status": "completed" if job_return.status == JobStatus.COMPLETED else "failed",
            "overrides": list(job_return.overrides or []),
            "wall_time_s": round(time.perf_counter() - started, 3) if started is not None else None,
            "output_dir": str(job_dir),
            # torch's intra-op threads in the process that ran the job (joblib workers: see README)
            "torch_threads": _torch_threads(),
            "pid": os.getpid(),
            "started_at": round(time.time() - (time.perf_counter() - started), 3) if started is not None else None,
            "ended_at": round(time.time(), 3),
            "objective": None,
            "error": None,
        }
        if job_return.status == JobStatus.COMPLETED:
            record["objective"] = finite(job_return.return_value)
        else:
            # job_return.return_value would re-raise; the exception itself is kept in _return_value
            err = job_return._return_value
            record["error"] = f"{type(err).__name__}: {err}"[:500]
        data = read_result(job_dir)  # written by seg.train at the end of the job
        if data is not None:
            record["metrics"] = data.get("metrics", {})
            record["epochs"] = data.get("epochs")
        job_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(job_dir / JOB_FILE, json.dumps(record, indent=2) + "\n")
        self.write(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        csv_path, _ = self.write(Path(config.hydra.sweep.dir))
        log.info(f"Sweep summary: {csv_path} (and {csv_path.with_suffix('.md').name})")

    # ------------------------------------------------------------------ the summary -------------

    def write(self, sweep_dir: Path) -> tuple[Path, Path]:
        """(Re)write ``summary.csv``, ``summary_groups.csv`` and ``summary.md`` from every ``*/job.json``
        below ``sweep_dir``."""
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with open(sweep_dir / ".summary.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            rows, info = summary_rows(sweep_dir)
            groups = group_rows(rows, minimize=info.get("direction") == "minimize")
            csv_path = sweep_dir / f"{self.filename}.csv"
            md_path = sweep_dir / f"{self.filename}.md"
            write_csv(csv_path, rows, COLUMNS)
            write_csv(sweep_dir / f"{self.filename}_groups.csv", groups, GROUP_COLUMNS)
            atomic_write(md_path, to_markdown(rows, info, sweep_dir, groups))
        return csv_path, md_path


def summary_rows(sweep_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row (COLUMNS) per job below ``sweep_dir``, sorted best first, failed jobs last."""
    info_file = sweep_dir / SWEEP_FILE
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    fixed = set(info.get("fixed_keys", []))
    minimize = info.get("direction") == "minimize"
    rows = []
    for f in sweep_dir.glob(f"*/{JOB_FILE}"):
        rec = json.loads(f.read_text())
        metrics = rec.get("metrics") or {}
        row = {c: rec.get(c) for c in COLUMNS}
        own = [o for o in rec.get("overrides", []) if _parse(o)[0] not in fixed]
        row["overrides"] = " ".join(own)
        # not a column: the group of the job (its overrides but the seed and the fold), for group_rows
        row["group"] = " ".join(o for o in own if _parse(o)[0].lstrip("+~") not in REPEAT_KEYS)
        row.update({col: metrics.get(key) for col, key in METRIC_KEYS.items()})
        rows.append(row)
    rows.sort(key=lambda r: (r["status"] != "completed", *_best_first(r["objective"], minimize), r["job"]))
    return rows, info


def _best_first(objective: float | None, minimize: bool) -> tuple[bool, float]:
    """A sort key: the best objective first (the lowest if ``minimize``), none last."""
    return objective is None, (objective if minimize else -objective) if objective is not None else 0.0


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1; None for fewer than 2 values) of the values given."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _group_value(row: dict[str, Any], name: str) -> float | None:
    if name == "minutes":
        return row["wall_time_s"] / 60 if row["wall_time_s"] is not None else None
    return row[name]


def group_rows(rows: list[dict[str, Any]], minimize: bool = False) -> list[dict[str, Any]]:
    """One row (GROUP_COLUMNS) per group of jobs that differ only in ``seed`` and ``data.fold``: ``n``
    completed jobs, ``failed`` jobs, and the mean and sample standard deviation over the completed
    jobs of each of GROUP_VALUES (``minutes``: the job's wall time); best mean objective first."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    out = []
    for name, members in groups.items():
        done = [r for r in members if r["status"] == "completed"]
        row: dict[str, Any] = {"group": name, "n": len(done), "failed": len(members) - len(done)}
        for v in GROUP_VALUES:
            row[f"{v} mean"], row[f"{v} std"] = _mean_std([x for r in done if (x := _group_value(r, v)) is not None])
        out.append(row)
    out.sort(key=lambda g: (*_best_first(g["objective mean"], minimize), g["group"]))
    return out


def _cell(v: Any, column: str = "") -> str:
    if v is None:
        return ""
    if isinstance(v, float) and column == "wall_time_s":
        return f"{v:.1f}"
    if isinstance(v, float) and column == "minutes":
        return f"{v:.2f}"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.1f}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def _pm(mean: float | None, std: float | None, column: str) -> str:
    """``mean ± std`` as the per-job table shows numbers; the mean alone without a std."""
    return _cell(mean, column) + (f" ± {_cell(std, column)}" if std is not None else "")


def to_markdown(
    rows: list[dict[str, Any]], info: Mapping[str, Any], sweep_dir: Path, groups: Sequence[dict[str, Any]] = ()
) -> str:
    """The per-job table and, when some jobs differ only in their seed or fold, the table of their groups."""
    failed = sum(r["status"] != "completed" for r in rows)
    metric = info.get("optimized_metric") or "val/acc"
    order = "lowest" if info.get("direction") == "minimize" else "highest"
    cols = [c for c in COLUMNS if c != "output_dir"]
    lines = [
        f"# Sweep summary: {sweep_dir}",
        "",
        f"{len(rows)} jobs, {failed} failed. objective = best `{metric}` (what the job returned to the sweeper); "
        f"{order} first. Each job's files are in `<job>/` below this folder.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    lines += ["| " + " | ".join(_cell(r[c], c) for c in cols) + " |" for r in rows]
    if any(g["n"] + g["failed"] > 1 for g in groups):
        repeat = " and ".join(f"`{k}`" for k in REPEAT_KEYS)
        lines += [
            "",
            "## Groups",
            "",
            f"The jobs grouped by every override but {repeat} (also in `summary_groups.csv`): n completed "
            f"jobs, mean ± sample standard deviation (ddof=1; the mean alone for n=1) over them; {order} "
            f"mean objective first. minutes: each job's wall time.",
            "",
            "| group | n | failed | " + " | ".join(GROUP_VALUES) + " |",
            "|" + "|".join("---" for _ in range(3 + len(GROUP_VALUES))) + "|",
        ]
        lines += [
            f"| {_cell(g['group']) or '(no other override)'} | {g['n']} | {g['failed']} | "
            + " | ".join(_pm(g[f"{v} mean"], g[f"{v} std"], v) for v in GROUP_VALUES)
            + " |"
            for g in groups
        ]
    return "\n".join(lines) + "\n"
