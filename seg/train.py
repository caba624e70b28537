"""`python -m seg.train`: fit, then test, all composed by Hydra from conf/train.yaml.

``resume=RUN_DIR`` continues that run in its own folder; ``ckpt_path=`` continues training from a
checkpoint in a new folder; ``init_from=`` fine-tunes from a checkpoint's weights (a new classifier when
the data's classes differ); SIGTERM or Ctrl-C stop it with a checkpoint to resume from (see :mod:`seg.run.resume`,
:mod:`seg.callbacks.stops`).
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.utilities.exceptions import SIGTERMException

from seg.callbacks.budget import PLANNED_DECAY, Budget, budget_problem, cadence, revisions, with_planned_decay
from seg.callbacks.loggers import SETTINGS as LOGGERS
from seg.callbacks.loggers import close_loggers, log_config, log_run_end
from seg.callbacks.stops import GracefulStop
from seg.core.rules import Get, Settings, given, integer, is_int, is_number, number, one_of, shown, switch
from seg.data.labels import LabelSet
from seg.model.checkpoint import check_weights_fit, load_weights, read_checkpoint
from seg.model.inference import tta_problem
from seg.run.build import build, hparams_for_table
from seg.run.entry import hydra_main, run_job
from seg.run.results import write_result
from seg.run.resume import resume_args, run_dir_of
from seg.run.settings import tta_value

log = logging.getLogger(__name__)

HPARAM_METRICS = ("best/val/acc", "val/acc", "val/miou", "test/acc", "test/acc_per_image_mean", "test/miou")


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and test as configured; returns every logged metric plus ``best/<monitor>``."""
    started = time.perf_counter()
    budget_start = time.monotonic()
    ckpt_path = cfg.get("ckpt_path")
    purge_step = None
    ckpt = None
    if ckpt_path:
        ckpt = read_checkpoint(ckpt_path)  # refuses unsafe files before Lightning opens them
        if run_dir_of(Path(ckpt_path)) == Path(cfg.paths.output_dir).resolve():
            # continuing in the same folder: TensorBoard drops what the first part logged after this checkpoint
            purge_step = ckpt.get("global_step", 0)
            log.info(f"Resuming {cfg.paths.output_dir} from {ckpt_path} (epoch {ckpt.get('epoch')})")
    # fine-tuning's checkpoint read (and refused if missing or unsafe) before any work, as ckpt_path's
    source = read_checkpoint(cfg.init_from, key="init_from") if cfg.get("init_from") else None
    pl.seed_everything(cfg.seed, workers=True)
    budget_recipe(cfg)
    datamodule, model, trainer = build(cfg, purge_step)
    budget = next((c for c in trainer.callbacks if isinstance(c, Budget) and c.active), None)
    if budget is not None:
        budget.count_from(budget_start)  # the data's preparation counts
    ok = False
    try:
        metrics = fit_and_test(cfg, datamodule, model, trainer, ckpt, ckpt_path, source)
        ok = True
    finally:
        close_loggers(trainer.loggers, ok)
    if trainer.is_global_zero:  # result.json: what a sweep summary reads (seg.run.sweep.SweepSummary)
        write_result(
            cfg.paths.output_dir,
            metrics,
            epochs=trainer.current_epoch,
            wall_time=time.perf_counter() - started,
            budget=budget.report() if budget is not None else None,
        )
    return metrics


def budget_recipe(cfg: DictConfig) -> None:
    """What a budget changes in the recipe, each logged and each undone by its ``callbacks.budget`` key: the
    planned decay replaces the scheduler (``decay``), no EMA of the weights (``keep_ema``), the loss at the
    decoder's stride 4 (``low_res_loss``), class weights in an unweighted loss (``class_weight_power``).
    Measured on MSRC at budget=5m and under 5-fold CV at budget=2m: docs/results.md."""
    if cfg.get("budget") is None:
        return
    keys = (cfg.get("callbacks") or {}).get("budget") or {}
    scheduler = cfg.get("scheduler") or {}
    changes = {}
    if with_planned_decay(cfg) and scheduler.get("_target_") != PLANNED_DECAY["_target_"]:
        changes["scheduler"] = ("the planned decay to the last step (scheduler=planned)", "decay=false")
        with open_dict(cfg):
            cfg.scheduler = OmegaConf.create(PLANNED_DECAY)
    if cfg.callbacks.get("ema") and not keys.get("keep_ema"):
        changes["callbacks.ema"] = ("none (the decay to the last step settles the weights)", "keep_ema=true")
        with open_dict(cfg):
            cfg.callbacks.ema = None
    if keys.get("low_res_loss", True) and not cfg.model.get("low_res_loss", True):
        changes["model.low_res_loss"] = ("true (1.5x the steps of a budget)", "low_res_loss=false")
        with open_dict(cfg):
            cfg.model.low_res_loss = True
    power, loss = keys.get("class_weight_power", 0.5), cfg.model.get("loss") or {}
    if power and "class_weight_power" in loss and not loss.class_weight_power:
        changes["model.loss.class_weight_power"] = (f"{power} (rare classes learnt sooner)", "class_weight_power=0")
        with open_dict(cfg):
            cfg.model.loss.class_weight_power = power
    for key, (what, undo) in changes.items():
        log.info(f"budget={cfg.budget}: {key} is {what}; callbacks.budget.{undo} keeps yours")


def fit_and_test(
    cfg: DictConfig,
    datamodule: pl.LightningDataModule,
    model: pl.LightningModule,
    trainer: pl.Trainer,
    ckpt: dict | None,
    ckpt_path: str | None,
    source: dict | None = None,
) -> dict[str, float]:
    """The run itself, logged to every logger: fit, test, then the summary in the log (``source``: the
    checkpoint ``init_from`` names)."""
    prepare(cfg, datamodule, model, trainer, ckpt, ckpt_path, source)
    metrics = fit(trainer, model, datamodule, ckpt_path)
    best_path, last_path = checkpoints(trainer)
    tested = run_test_stage(cfg, trainer, model, datamodule, best_path, last_path, metrics) if cfg.get("test") else None
    # this run's hyperparameters beside its final metrics (TensorBoard's HPARAMS tab), so that the runs
    # of a sweep can be compared in one table
    final = {f"hp/{k.replace('/', '_')}": metrics[k] for k in HPARAM_METRICS if k in metrics}
    log_run_end(trainer.loggers, hparams_for_table(cfg), final, trainer.global_step)
    budget = next((c for c in trainer.callbacks if isinstance(c, Budget) and c.active), None)
    log_summary(cfg, metrics, best_path, last_path, tested, budget.report() if budget else None)
    return metrics


def prepare(
    cfg: DictConfig,
    datamodule: pl.LightningDataModule,
    model: pl.LightningModule,
    trainer: pl.Trainer,
    ckpt: dict | None,
    ckpt_path: str | None,
    source: dict | None = None,
) -> None:
    """Before fitting: a checkpoint of other classes or another net refused, fine-tuning weights loaded,
    class counts for a weighted loss, the config to the loggers, the items of every split written."""
    if ckpt is not None:  # continuing training: the same classes and net, or one line before any training
        advice = f"to start from its weights on this data, pass init_from={ckpt_path} instead of ckpt_path"
        LabelSet.from_dict(ckpt["hyper_parameters"].get("labels")).require(model.label_set, ckpt_path, advice)
        check_weights_fit(ckpt, model, ckpt_path)
    if source is not None:
        fine_tune(model, source, cfg.init_from)
    if getattr(model.criterion, "needs_class_counts", False):  # class-weighted loss
        model.criterion.set_class_counts(datamodule.class_pixel_counts("train"))
    log_config(trainer.loggers, OmegaConf.to_container(cfg, resolve=True))
    if trainer.is_global_zero:  # the items of every split (a seeded split, folds): what this run used
        datamodule.write_splits(Path(cfg.paths.output_dir) / "splits")


def fine_tune(model: pl.LightningModule, source: dict, init_from: str) -> None:
    """``source``'s weights (the checkpoint ``init_from`` names) into ``model``, the classifier kept fresh
    where the classes differ; logged."""
    theirs = LabelSet.from_dict(source["hyper_parameters"].get("labels"))
    fresh = load_weights(model, source, init_from)
    why = "; ".join(theirs.differences(model.label_set))
    log.info(
        f"init_from={init_from}: its weights loaded"
        + (f", except {', '.join(fresh)}, started fresh for the data's classes ({why})" if fresh else "")
    )


def fit(
    trainer: pl.Trainer, model: pl.LightningModule, datamodule: pl.LightningDataModule, ckpt_path: str | None
) -> dict[str, float]:
    """Lightning's fit; the metrics it logged last, with ``best/<monitor>``. A stop (SIGTERM, Ctrl-C) exits."""
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException:  # SIGTERM or Ctrl-C: GracefulStop saved the progress and said how to resume
        stop = next((c for c in trainer.callbacks if isinstance(c, GracefulStop)), None)
        raise SystemExit(128 + int(stop.received if stop and stop.received else signal.SIGTERM)) from None
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    ckpt_cb = trainer.checkpoint_callback  # the best val/acc checkpoint
    if ckpt_cb is not None and ckpt_cb.best_model_score is not None:
        metrics[f"best/{ckpt_cb.monitor}"] = float(ckpt_cb.best_model_score)
    return metrics


def checkpoints(trainer: pl.Trainer) -> tuple[str, str]:
    """The best val/acc checkpoint and last.ckpt ("" where there is none, e.g. fast_dev_run)."""
    ckpt_cb = trainer.checkpoint_callback
    best_path = ckpt_cb.best_model_path if ckpt_cb is not None else ""
    last_path = next((cb.best_model_path for cb in trainer.checkpoint_callbacks if cb.monitor is None), "")
    return best_path, last_path


def run_test_stage(
    cfg: DictConfig,
    trainer: pl.Trainer,
    model: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    best_path: str,
    last_path: str,
    metrics: dict[str, float],
) -> str:
    """The test stage on the weights ``test_ckpt`` names (its ``test/*`` metrics added); what was tested."""
    # best: reload the best val/acc checkpoint; last: the weights in memory, which are last.ckpt's
    # (with EMA, the average); without a checkpoint (fast_dev_run) the weights in memory either way
    ckpt_to_test = best_path if cfg.get("test_ckpt") == "best" and best_path else None
    tested = (best_path if cfg.get("test_ckpt") == "best" else last_path) or "the weights in memory"
    model.test_tta = tta_value(cfg.get("test_tta", False))
    trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_to_test, weights_only=True)
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
    return tested


def log_summary(
    cfg: DictConfig,
    metrics: dict[str, float],
    best_path: str,
    last_path: str,
    tested: str | None,
    budget: dict | None = None,
) -> None:
    """The run's summary at the end of its log: the headline numbers, the checkpoints, the budget planned
    against the time used, where it all is."""
    summary = {
        "best val/acc": metrics.get("best/val/acc"),
        "test/acc": metrics.get("test/acc"),
        "test/acc_per_image_mean": metrics.get("test/acc_per_image_mean"),
        "test/miou": metrics.get("test/miou"),
        "best checkpoint": best_path or None,
        "last checkpoint": last_path or None,
        f"tested ({cfg.get('test_ckpt')})" if tested else "tested": tested or "no (test=false)",
        "test_tta": cfg.get("test_tta", False),
        "output_dir": cfg.paths.output_dir,
    }
    if budget:
        summary["budget"] = budget_line(budget)
    log.info(
        "Summary:\n"
        + "\n".join(f"  {k:23s} {v:.4f}" if isinstance(v, float) else f"  {k:23s} {v}" for k, v in summary.items())
    )


def budget_line(b: dict) -> str:
    """``budget 300 s, used 291 s (fit 276 s of which 9 validations 21 s, test 15 s); plan: ...``."""
    parts = [f"{b['budget_s']:.0f} s, used {b['used_s']:.0f} s"]
    inner = []
    if "fit_s" in b:
        inner.append(f"fit {b['fit_s']:.0f} s of which {b['validations']} validations {b['validation_s']:.0f} s")
    if "test_s" in b:
        inner.append(f"test {b['test_s']:.0f} s")
    text = parts[0] + (f" ({', '.join(inner)})" if inner else "")
    if p := b.get("plan"):
        history = revisions(p)
        revised = f" (first {history[0]['steps_before']}, revised {len(history)}x)" if history else ""
        text += f"; plan: {p['steps']} steps{revised}, decay from step {p['decay_from']}"
        text += f", validation {cadence(p['val_every'])}"
    if b.get("stopped_early"):
        text += f"; {b['stopped_early']}"
    return text


def objective(metrics: dict[str, float], name: str | None) -> float | None:
    """The value handed to sweepers: the best value of a monitored metric, else its last value."""
    if not name:
        return None
    value = metrics.get(f"best/{name}", metrics.get(name))
    if value is None:
        raise KeyError(f"optimized_metric={name!r} was not logged; logged: {sorted(metrics)}")
    return value


def _run_length(get: Get, at: str) -> list[str]:
    epochs, steps = get("trainer.max_epochs"), get("trainer.max_steps")
    if (is_int(epochs) and epochs >= 1) or (epochs == -1 and is_int(steps) and steps > 0):
        return []
    return [f"trainer.max_epochs={shown(epochs)}: must be an integer >= 1 (or -1 with trainer.max_steps > 0)"]


def _training_crops(get: Get, at: str) -> list[str]:
    crop, batch = get("data.crop_size"), get("data.batch_size")
    if crop is None and get("data.augment") is True:
        return ["data.crop_size=null: data.augment=true needs a crop size (the random crop's)"]
    if crop is None and batch != 1:
        return [f"data.crop_size=null: training batches of whole photos need data.batch_size=1 (got {batch})"]
    return []


def _optimizer_and_validation(get: Get, at: str) -> list[str]:
    out = []
    scheduler = get("scheduler")
    planned = isinstance(scheduler, dict) and scheduler.get("_target_") == PLANNED_DECAY["_target_"]
    if planned and get("budget") is None:
        out.append("scheduler=planned: its decay is planned to a budget; give one, e.g. budget=15m")
    if not given(get("optimizer")):
        out.append("optimizer: training needs one, e.g. optimizer=adam (it was left out)")
    limit = get("trainer.limit_val_batches")
    if is_number(limit) and limit == 0:
        out.append(
            f"trainer.limit_val_batches={limit}: validation is what picks the best checkpoint and drives the "
            f"scheduler (val/acc); keep at least one batch, e.g. trainer.limit_val_batches=1"
        )
    return out


# the keys seg.train reads itself; the data, model, net, loss and callbacks classes check their own
SETTINGS = (
    Settings(
        {
            "optimizer.lr": number(0, above=True),
            "trainer.check_val_every_n_epoch": integer(1, null=True),
            "test": switch,
            "test_ckpt": one_of("last", "best"),
            "test_tta": tta_problem,
            "budget": budget_problem,
        },
        checks=(_run_length, _training_crops, _optimizer_and_validation),
    )
    | LOGGERS
)


def run(cfg: DictConfig) -> float | None:
    """What Hydra calls for each job: train, then hand the objective to the sweeper."""
    return run_job(cfg, lambda c: objective(train(c), c.get("optimized_metric")), SETTINGS)


# a resume that cannot work is said before Hydra starts
main = hydra_main("train", run, argv=resume_args)

if __name__ == "__main__":
    main()
