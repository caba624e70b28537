"""Every setting of every entry point, checked in one place and one way before any work starts.

:data:`RULES` maps each key an entry point reads to a rule: a function of the value that says what is
wrong with it ("must be an integer >= 1"), or None. :func:`check_settings` applies the rule of every
key the composed config has, then the entry point's own requirements (a model to load, an output it
can write, keys that only make sense together), and raises one :class:`~seg.core.errors.ConfigError` that
names each bad key with its value and what is allowed: one line, exit code 2. The run and data
folders are checked by the Hydra callback :class:`WritableFolders`, before Hydra creates the run folder.

Imports stay light (no torch): ``seg.predict`` on an ONNX model runs these checks without torch.
"""

from __future__ import annotations

import importlib.util
import math
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from seg.core.errors import ConfigError, user_errors
from seg.data.splits import SPLITS, folds_problem
from seg.model.encoders import encoder_problems
from seg.model.inference import TTA, max_side_problem, tta_problem
from seg.run.loggers import PACKAGES, class_name, logger_configs

Rule = Callable[[Any], "str | None"]  # what is wrong with a value, or None
_ABSENT = object()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def plain(value: Any) -> Any:
    """A config value as plain Python (Hydra's lists and dicts become lists and dicts)."""
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


def integer(low: int | None = None, high: int | None = None, null: bool = False, why: str = "") -> Rule:
    """An integer in [low, high] (or null, if allowed)."""
    if low is not None and high is not None:
        allowed = f"an integer in [{low}, {high}]"
    else:
        allowed = f"an integer >= {low}" if low is not None else "an integer"
    allowed += " or null" if null else ""

    def rule(v: Any) -> str | None:
        if v is None and null:
            return None
        ok = _is_int(v) and (low is None or v >= low) and (high is None or v <= high)
        return None if ok else f"must be {allowed}" + (f" ({why})" if why else "")

    return rule


def number(low: float | None = None, high: float | None = None, above: bool = False, why: str = "") -> Rule:
    """A finite number >= low (> low if ``above``) and <= high."""
    if low is not None and high is not None:
        allowed = f"a number in [{low}, {high}]"
    else:
        allowed = f"a number {'>' if above else '>='} {low}" if low is not None else "a number"

    def rule(v: Any) -> str | None:
        ok = _is_number(v) and (low is None or (v > low if above else v >= low)) and (high is None or v <= high)
        return None if ok else f"must be {allowed}" + (f" ({why})" if why else "")

    return rule


def switch(v: Any) -> str | None:
    """true or false: any other value (e.g. a typo) would silently count as one of them."""
    return None if isinstance(v, bool) else "must be true or false"


def one_of(*choices: str | None) -> Rule:
    """One of ``choices`` (None in them: null is allowed)."""
    names = ", ".join("null" if c is None else str(c) for c in choices)

    def rule(v: Any) -> str | None:
        return None if v in choices else f"must be one of {names}"

    return rule


def tta(v: Any) -> str | None:
    """A test-time augmentation: false, true (+ flip) or a list of scales (seg.model.inference's rule)."""
    return tta_problem(plain(v))


def low_high(v: Any) -> str | None:
    v = plain(v)
    ok = isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v) and 0 < v[0] <= v[1]
    return None if ok else "must be [low, high] with 0 < low <= high"


def crop_sizes(v: Any) -> str | None:
    v = plain(v)
    ok = v is None or (isinstance(v, list) and v and all(_is_int(x) and x >= 32 for x in v))
    return None if ok else "must be a list of integers >= 32 (one per epoch), or null"


def sha256(v: Any) -> str | None:
    ok = v is None or re.fullmatch(r"[0-9a-fA-F]{64}", str(v))
    return None if ok else "must be 64 hex digits, or null to accept any archive"


def fractions(v: Any) -> str | None:
    v = plain(v)
    ok = isinstance(v, list) and len(v) == 3 and all(_is_number(x) and x >= 0 for x in v) and v[0] > 0 and v[1] > 0
    return None if ok else "must be three shares [train, val, test] >= 0, train and val > 0, e.g. [0.8, 0.1, 0.1]"


def names(v: Any) -> str | None:
    v = plain(v)
    ok = v is None or (isinstance(v, list) and v and all(isinstance(x, str) and x for x in v))
    return None if ok else "must be a list of class names (index = class id), or null"


def text(v: Any) -> str | None:
    """A non-empty string (a host name, a folder)."""
    return None if isinstance(v, str) and v.strip() else "must be a non-empty string"


RULES: dict[str, Rule] = {
    # the data group (seg.train, seg.eval, seg.export)
    "data.batch_size": integer(1),
    "data.crop_size": integer(32, null=True, why="the encoder downsamples by 32; null: whole photos"),
    "data.num_workers": integer(0),
    "data.augment": switch,
    "data.augment_scale": low_high,
    "data.train_crop_sizes": crop_sizes,
    "data.normalize": switch,
    "data.cache": switch,
    "data.sha256": sha256,
    "data.eval_crop_size": integer(32, null=True, why="null: whole photos"),
    "data.eval_batch_size": integer(1, null=True),
    "data.fold_seed": integer(),
    "data.ignore_index": integer(),
    "data.classes": names,
    "data.split_fractions": fractions,
    "data.split_seed": integer(),
    "data.allow_unseen_classes": switch,
    "data.cache_max_gb": number(0, above=True),
    # the model and its optimisation (seg.train)
    "model.encoder_lr_mult": number(0, above=True),
    "model.low_res_loss": switch,
    "model.loss.class_weight_power": number(0),
    "model.loss.dice_weight": number(0),
    "optimizer.lr": number(0, above=True),
    "trainer.check_val_every_n_epoch": integer(1, null=True),
    "test": switch,
    "test_ckpt": one_of("last", "best"),
    "test_tta": tta,
    # W&B stays offline unless this is false (logger=wandb; logger=many names it logger.wandb)
    "logger.offline": switch,
    "logger.wandb.offline": switch,
    # evaluation, prediction and export (seg.eval, seg.predict, seg.export)
    "split": one_of(*SPLITS),
    "tta": tta,
    "max_side": max_side_problem,
    "batch_size": integer(1),
    "overlay_alpha": number(0, 1),
    "overwrite": switch,
    "progress": switch,
    "format": one_of("onnx", "torchscript"),
    "verify_split": one_of(*SPLITS, None),
    "verify_photos": integer(1, null=True),
    "min_agreement": number(0, 1, why="a share of the pixels: 0.999 is 99.9%"),
    # the demo page (seg.demo)
    "host": text,
    "port": integer(1, 65535, null=True, why="null: the first free port from 7860"),
    "share": switch,
    "runs": text,
    "max_megapixels": number(0, above=True),
}


def _value(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)


def _given(v: Any) -> bool:
    return v not in (None, "", "???", _ABSENT)


def _shown(v: Any) -> str:
    v = plain(v)
    return repr(v) if isinstance(v, str) else "null" if v is None else str(v)


def _train_requirements(cfg: DictConfig) -> list[str]:
    out = []
    epochs, steps = _value(cfg, "trainer.max_epochs"), _value(cfg, "trainer.max_steps")
    if not ((_is_int(epochs) and epochs >= 1) or (epochs == -1 and _is_int(steps) and steps > 0)):
        out.append(f"trainer.max_epochs={_shown(epochs)}: must be an integer >= 1 (or -1 with trainer.max_steps > 0)")
    crop, batch = _value(cfg, "data.crop_size"), _value(cfg, "data.batch_size")
    if crop is None and _value(cfg, "data.augment") is True:
        out.append("data.crop_size=null: data.augment=true needs a crop size (the random crop's)")
    elif crop is None and batch != 1:
        out.append(f"data.crop_size=null: training batches of whole photos need data.batch_size=1 (got {batch})")
    if not _given(_value(cfg, "optimizer")):
        out.append("optimizer: training needs one, e.g. optimizer=adam (it was left out)")
    if isinstance(net_cfg := plain(_value(cfg, "model.net")), dict):
        out += encoder_problems(net_cfg)  # the encoder's name and freeze range, from the encoder table
    channels, net = plain(_value(cfg, "model.net.decoder_channels")), str(_value(cfg, "model.net._target_"))
    if net.endswith("MobileNetSkipSeg") and not (isinstance(channels, list) and len(channels) == 3):
        out.append(f"model.net.decoder_channels={_shown(channels)}: the skip decoder needs 3 (stride 16, 8, 4)")
    out += _logger_requirements(cfg)
    limit = _value(cfg, "trainer.limit_val_batches")
    if _is_number(limit) and limit == 0:
        out.append(
            f"trainer.limit_val_batches={limit}: validation is what picks the best checkpoint and drives the "
            f"scheduler (val/acc); keep at least one batch, e.g. trainer.limit_val_batches=1"
        )
    return out


def _logger_requirements(cfg: DictConfig) -> list[str]:
    """Each configured logger names its class, and the package it needs is installed (an extra)."""
    out = []
    configured = _value(cfg, "logger")
    for name, logger in logger_configs(None if configured is _ABSENT else configured).items():
        key = "logger" if name == "logger" else f"logger.{name}"
        if not isinstance(logger, DictConfig) or not _given(logger.get("_target_")):
            out.append(f"{key}: names no logger class (_target_); choose one of conf/logger/, e.g. logger=csv")
            continue
        package, extra = PACKAGES.get(class_name(logger), (None, None))
        if package and importlib.util.find_spec(package) is None:
            out.append(
                f"{key}: {class_name(logger)} needs the {package} package, which is not installed: "
                f"pip install -e '.[{extra}]' (or choose another logger, e.g. logger=tensorboard)"
            )
    return out


def _eval_requirements(cfg: DictConfig) -> list[str]:
    if not _given(_value(cfg, "ckpt_path")):
        return [
            "ckpt_path: pass the checkpoint to evaluate, e.g. ckpt_path=outputs/runs/DATE/TIME/checkpoints/last.ckpt"
        ]
    return []


def _predict_requirements(cfg: DictConfig) -> list[str]:
    out = []
    ckpt, model_file = _value(cfg, "ckpt_path"), _value(cfg, "model_file")
    if _given(ckpt) == _given(model_file):
        out.append(
            "ckpt_path / model_file: pass one model, ckpt_path=... (a checkpoint written by seg.train) or "
            f"model_file=... (a .onnx or .pt file written by seg.export); got ckpt_path={_shown(ckpt)} "
            f"model_file={_shown(model_file)}"
        )
    if not _given(_value(cfg, "input")):
        out.append("input: pass the photos, input=FILE, input=FOLDER or input='GLOB' (e.g. 'photos/**/*.jpg')")
    output = _value(cfg, "output")
    if _given(output):
        folder = Path(str(output)).expanduser()
        if folder.exists() and not folder.is_dir():
            out.append(f"output={output}: is a file; pass a folder for the predictions")
        elif reason := unwritable(folder):
            out.append(f"output={output}: cannot be written ({reason}); pass another output=...")
    return out


def _export_requirements(cfg: DictConfig) -> list[str]:
    out = []
    if not _given(_value(cfg, "ckpt_path")):
        out.append("ckpt_path: pass the checkpoint to export, e.g. python -m seg.export ckpt_path=PATH format=onnx")
    fmt, output = _value(cfg, "format"), _value(cfg, "output")
    suffix = {"onnx": ".onnx", "torchscript": ".pt"}.get(fmt)
    if _given(output) and suffix:
        path = Path(str(output)).expanduser()
        if path.suffix.lower() != suffix:
            out.append(f"output={output}: a format={fmt} file must end in {suffix} (seg.predict goes by it)")
        elif path.exists() and _value(cfg, "overwrite") is not True:
            out.append(f"output={output}: exists; pass overwrite=true to replace it, or another output=...")
        elif reason := unwritable(path.parent):
            out.append(f"output={output}: its folder cannot be written ({reason}); pass another output=...")
    return out


def _data_requirements(cfg: DictConfig) -> list[str]:
    out = []
    folds, fold = _value(cfg, "data.folds"), _value(cfg, "data.fold")
    if folds is not _ABSENT and (why := folds_problem(folds, 0 if fold is _ABSENT else fold)):
        out.append(why)
    data = cfg.get("data")
    if data is not None and "root" in data and (OmegaConf.is_missing(data, "root") or not data.root):
        out.append("data.root: pass the folder of your data set, e.g. python -m seg.train data=folder data.root=DIR")
    return out


def _demo_requirements(cfg: DictConfig) -> list[str]:
    ckpt, model_file = _value(cfg, "ckpt_path"), _value(cfg, "model_file")
    if _given(ckpt) and _given(model_file):
        return [
            f"ckpt_path / model_file: pass at most one model (none: pick a run on the page); got "
            f"ckpt_path={_shown(ckpt)} model_file={_shown(model_file)}"
        ]
    return []


REQUIREMENTS: dict[str, Callable[[DictConfig], list[str]]] = {
    "train": _train_requirements,
    "eval": _eval_requirements,
    "predict": _predict_requirements,
    "export": _export_requirements,
    "demo": _demo_requirements,
}


def problems(cfg: DictConfig) -> list[str]:
    """Every problem of a composed entry-point config, one ``key=value: what is allowed`` each."""
    out = []
    for key, rule in RULES.items():
        v = _value(cfg, key)
        if v is not _ABSENT and (why := rule(v)):
            out.append(f"{key}={_shown(v)}: {why}")
    out += _data_requirements(cfg) if "data" in cfg else []
    return out + REQUIREMENTS.get(str(cfg.get("task_name")), lambda _: [])(cfg)


def check_settings(cfg: DictConfig) -> None:
    """Raise one :class:`ConfigError` naming every bad setting of ``cfg``; nothing has run yet."""
    if found := problems(cfg):
        raise ConfigError("; ".join(found))


def tta_value(value: Any) -> TTA:
    """A checked TTA setting as seg.model.inference takes it (a bool or a list of scales)."""
    return plain(value)


def unwritable(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (made if missing), or None if they can."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        return f"{probe}: {e.strerror or e}"
    return None


def check_folders(run_dir: Path, data_dir: Path | None) -> None:
    """The run (or sweep) folder must be writable; the data folder too unless the data set is there."""
    out = []
    if reason := unwritable(run_dir):
        out.append(
            f"cannot write the run folder {run_dir} ({reason}): choose another with paths.log_dir=... "
            f"(or hydra.run.dir=...)"
        )
    if data_dir is not None:
        from seg.data.archive import ARCHIVE_DIR

        if not (data_dir / ARCHIVE_DIR).is_dir() and (reason := unwritable(data_dir)):
            out.append(f"cannot write the data folder {data_dir} ({reason}): choose another with paths.data_dir=...")
    if out:
        raise ConfigError("; ".join(out))


class WritableFolders(Callback):
    """A Hydra callback: checks the output and data folders before Hydra creates the run folder."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with user_errors():
            check_folders(Path(config.hydra.run.dir), self._data_dir(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with user_errors():
            check_folders(Path(config.hydra.sweep.dir), self._data_dir(config))

    @staticmethod
    def _data_dir(config: DictConfig) -> Path | None:
        if "data" not in config:  # seg.predict reads no data set
            return None
        data_dir = OmegaConf.select(config, "paths.data_dir", default=None)
        return Path(data_dir) if data_dir else None
