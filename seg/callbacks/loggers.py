"""Everything the project knows about loggers, in one place: the loggers of ``logger=...`` (one,
``conf/logger/<name>.yaml`` with its ``_target_`` on top, or several at once, ``logger=many``: a dict of
them by name), the package each needs and their settings, what each takes (scalars and hyperparameters:
every logger; pictures: TensorBoard, MLflow and W&B, each in its own way; the final numbers beside the
hyperparameters: TensorBoard's HPARAMS tab), W&B kept on this machine unless asked otherwise, and each
closed at the end of a run, so that the next job of a multirun starts runs of its own.

Lightning and the loggers' packages are imported only when loggers are used: the settings check
(:data:`SETTINGS`) runs without them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seg.core.rules import ABSENT, Get, Settings, shown, switch

if TYPE_CHECKING:
    import numpy as np
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import Logger

# logger class (the last part of a _target_) -> (the package it needs, the extra that installs it)
PACKAGES = {"MLFlowLogger": ("mlflow", "mlflow"), "WandbLogger": ("wandb", "wandb")}
SQLITE = "sqlite:///"


def _logger_problems(get: Get, at: str) -> list[str]:
    """Each configured logger names its class, the package it needs is installed (an extra), and W&B's
    ``offline`` is true or false (it stays offline unless this is false)."""
    out = []
    for name, logger in logger_configs(None if (group := get("logger")) is ABSENT else group).items():
        key = "logger" if name == "logger" else f"logger.{name}"
        if not isinstance(logger, Mapping) or not logger.get("_target_"):
            out.append(f"{key}: names no logger class (_target_); choose one of conf/logger/, e.g. logger=csv")
            continue
        if "offline" in logger and (why := switch(logger["offline"])):
            out.append(f"{key}.offline={shown(logger['offline'])}: {why}")
        package, extra = PACKAGES.get(class_name(logger), (None, None))
        if package and importlib.util.find_spec(package) is None:
            out.append(
                f"{key}: {class_name(logger)} needs the {package} package, which is not installed: "
                f"pip install -e '.[{extra}]' (or choose another logger, e.g. logger=tensorboard)"
            )
    return out


# the logger group's keys (logger=NAME, or logger=many's dict of them), checked before any work by the
# entry points that build loggers
SETTINGS = Settings(checks=(_logger_problems,))


def logger_configs(logger_cfg: Any) -> dict[str, Any]:
    """Each configured logger's config by name: none for ``logger=null``; ``{"logger": cfg}`` for one
    logger; the non-null entries of a dict of them (``logger.NAME=null`` leaves one out)."""
    if not logger_cfg:
        return {}
    if "_target_" in logger_cfg:
        return {"logger": logger_cfg}
    return {name: c for name, c in logger_cfg.items() if c}


def class_name(logger_cfg: Mapping) -> str:
    """The logger class a config names (``pytorch_lightning.loggers.CSVLogger`` -> ``CSVLogger``)."""
    return str(logger_cfg.get("_target_", "")).rsplit(".", 1)[-1]


def stay_offline() -> None:
    """W&B offline and without crash reports (its wandb-core service sends them unless told not to): with
    this, W&B touches no network; it writes the run to its ``save_dir`` only."""
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_ERROR_REPORTING"] = "false"


def build_loggers(logger_cfg: Any, purge_step: int | None = None) -> list[Logger]:
    """The configured loggers, instantiated. ``purge_step`` (a run continued in its folder): TensorBoard
    and the CSV logger drop what the first part logged after the checkpoint and keep the rest."""
    from hydra.utils import instantiate

    loggers = []
    for cfg in logger_configs(logger_cfg).values():
        kind, kwargs = class_name(cfg), {}
        if kind == "TensorBoardLogger" and purge_step is not None:
            kwargs["purge_step"] = purge_step
        if kind == "WandbLogger" and cfg.get("offline", False):
            stay_offline()
        uri = str(cfg.get("tracking_uri") or "")
        if kind == "MLFlowLogger" and uri.startswith(SQLITE):  # SQLite makes the database file, not its folder
            Path(uri[len(SQLITE) :]).parent.mkdir(parents=True, exist_ok=True)
        logger = instantiate(cfg, **kwargs)
        if kind == "CSVLogger" and purge_step is not None:
            continue_csv(logger, purge_step)
        loggers.append(logger)
    return loggers


def continue_csv(logger: Logger, purge_step: int) -> None:
    """A run continued in its folder keeps the rows of its ``metrics.csv`` logged before ``purge_step``
    (as TensorBoard keeps its events); Lightning's CSV writer would delete the file."""
    import csv
    import warnings

    path = Path(logger.log_dir) / "metrics.csv"
    kept = []
    if path.is_file():
        with open(path, newline="") as f:
            kept = [r for r in csv.DictReader(f) if r.get("step") and int(float(r["step"])) < purge_step]
    with warnings.catch_warnings():  # Lightning's "previous log files ... will be deleted": not these rows
        warnings.filterwarnings("ignore", message="Experiment logs directory")
        writer = logger.experiment
    writer.metrics[:0] = kept  # written back, before the new rows, at the writer's first save


def image_loggers(trainer: pl.Trainer) -> list[Logger]:
    """The trainer's loggers that take pictures: TensorBoard (IMAGES tab), MLflow (run artifacts) and W&B
    (media); the CSV logger takes none."""
    from pytorch_lightning.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

    return [lg for lg in trainer.loggers if isinstance(lg, (TensorBoardLogger, MLFlowLogger, WandbLogger))]


def log_picture(loggers: Sequence[Logger], tag: str, picture: np.ndarray, step: int) -> None:
    """Hand one HxWx3 uint8 picture to each logger in its own way, under ``tag`` at ``step``."""
    from pytorch_lightning.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger

    for lg in loggers:
        if isinstance(lg, TensorBoardLogger):
            lg.experiment.add_image(tag, picture, step, dataformats="HWC")
        elif isinstance(lg, MLFlowLogger):  # an artifact of the run: <tag>/step_NNNNNN.png
            lg.experiment.log_image(lg.run_id, picture, artifact_file=f"{tag}/step_{step:06d}.png")
        elif isinstance(lg, WandbLogger):
            lg.log_image(tag, [picture], step=step)


def log_config(loggers: Sequence[Logger], config: dict) -> None:
    """The run's whole config as every logger's hyperparameters."""
    for lg in loggers:
        lg.log_hyperparams(config)


def log_run_end(loggers: Sequence[Logger], table: dict, final: dict[str, float], step: int) -> None:
    """A run's final numbers beside its hyperparameters: TensorBoard's HPARAMS tab takes both at once
    (``table``, the knobs worth a column); the other loggers have every hyperparameter already and
    get the numbers as metrics."""
    from pytorch_lightning.loggers import TensorBoardLogger

    for lg in loggers:
        if isinstance(lg, TensorBoardLogger):
            lg.log_hyperparams(table, final)
        elif final:
            lg.log_metrics(final, step=step)


def close_loggers(loggers: Sequence[Logger], ok: bool = True) -> None:
    """Flush and close every logger, marking the run finished (``ok``) or failed (Lightning closes them
    after fit and test, before the run's last numbers); end the W&B run, which would otherwise take the
    next job's logs in the same process."""
    from pytorch_lightning.loggers import WandbLogger

    for lg in loggers:
        lg.finalize("success" if ok else "failed")
        # the run W&B started, if any (the ``experiment`` property would start one)
        if isinstance(lg, WandbLogger) and lg._experiment is not None:
            lg._experiment.finish(exit_code=0 if ok else 1)
