"""Checks made before any work starts: config values (named with key, value and what is allowed) and
folders that must be writable. Each failure is a :class:`seg.errors.ConfigError` (one line, exit 2)."""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from seg.cli import user_errors
from seg.errors import ConfigError
from seg.inference import TTA, tta_scales


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_bool(cfg: DictConfig, key: str, out: list[str]) -> None:
    """A switch must be true or false: any other value (e.g. a typo) would silently count as one."""
    v = _get(cfg, key)
    if v is not None and not isinstance(v, bool):
        out.append(f"{key}={v!r}: must be true or false")


def _problems_data(cfg: DictConfig) -> list[str]:
    out = []
    bs, crop, workers = _get(cfg, "data.batch_size"), _get(cfg, "data.crop_size"), _get(cfg, "data.num_workers")
    if not (_int(bs) and bs >= 1):
        out.append(f"data.batch_size={bs!r}: must be an integer >= 1")
    if not (_int(crop) and crop >= 32):
        out.append(f"data.crop_size={crop!r}: must be an integer >= 32 (the encoder downsamples by 32)")
    if workers is not None and not (_int(workers) and workers >= 0):
        out.append(f"data.num_workers={workers!r}: must be an integer >= 0")
    scale = _get(cfg, "data.augment_scale")
    if scale is not None and not (len(scale) == 2 and all(_number(v) for v in scale) and 0 < scale[0] <= scale[1]):
        out.append(f"data.augment_scale={list(scale)!r}: must be [low, high] with 0 < low <= high")
    sizes = _get(cfg, "data.train_crop_sizes")
    if sizes is not None and not (len(sizes) > 0 and all(_int(v) and v >= 32 for v in sizes)):
        out.append(f"data.train_crop_sizes={list(sizes)!r}: must be a list of integers >= 32 (one per epoch)")
    for key in ("data.augment", "data.normalize", "data.cache"):
        _check_bool(cfg, key, out)
    sha = _get(cfg, "data.sha256")
    if sha is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", str(sha)):
        out.append(f"data.sha256={sha!r}: must be 64 hex digits, or null to accept any archive")
    return out


def tta_setting(value: Any, key: str = "tta") -> TTA:
    """A TTA config value (``key``) as a bool or a list of scales, checked; Hydra's list becomes a list."""
    value = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
    try:
        tta_scales(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{key}={value!r}: use false, true (+ flip) or scales such as [0.75,1.0,1.25] ({e})") from e
    return value


def check_train_config(cfg: DictConfig) -> None:
    """Every value seg.train relies on, before the data set or the model is touched."""
    from seg.model import MOBILENET_V2_TENSORS  # imports inside: this module is a Hydra callback of seg.predict too,
    # which on ONNX Runtime must run without torch (seg.model, seg.data import it)

    out = _problems_data(cfg)
    lr = _get(cfg, "optimizer.lr")
    if cfg.get("optimizer") and not (_number(lr) and lr > 0):
        out.append(f"optimizer.lr={lr!r}: must be a number > 0")
    epochs, steps = _get(cfg, "trainer.max_epochs"), _get(cfg, "trainer.max_steps")
    if not ((_int(epochs) and epochs >= 1) or (epochs == -1 and _int(steps) and steps > 0)):
        out.append(f"trainer.max_epochs={epochs!r}: must be an integer >= 1 (or -1 with trainer.max_steps > 0)")
    freeze = _get(cfg, "model.net.freeze_params")
    if freeze is not None and not (_int(freeze) and 0 <= freeze <= MOBILENET_V2_TENSORS):
        out.append(
            f"model.net.freeze_params={freeze!r}: must be an integer in [0, {MOBILENET_V2_TENSORS}] "
            f"(MobileNetV2 has {MOBILENET_V2_TENSORS} parameter tensors)"
        )
    if cfg.get("test_ckpt") not in ("last", "best"):
        out.append(f"test_ckpt={cfg.get('test_ckpt')!r}: must be last or best")
    try:
        tta_setting(cfg.get("test_tta", False), "test_tta")
    except ConfigError as e:
        out.append(str(e))
    _check_bool(cfg, "model.low_res_loss", out)
    mult = _get(cfg, "model.encoder_lr_mult")
    if mult is not None and not (_number(mult) and mult > 0):
        out.append(f"model.encoder_lr_mult={mult!r}: must be a number > 0")
    for key in ("model.loss.class_weight_power", "model.loss.dice_weight"):
        v = _get(cfg, key)
        if v is not None and not (_number(v) and v >= 0):
            out.append(f"{key}={v!r}: must be a number >= 0")
    if out:
        raise ConfigError("; ".join(out))


def check_eval_config(cfg: DictConfig) -> None:
    """The values seg.eval relies on."""
    from seg.data.archive import SPLITS

    out = _problems_data(cfg)
    if cfg.get("split") not in SPLITS:
        out.append(f"split={cfg.get('split')!r}: must be one of {', '.join(SPLITS)}")
    if out:
        raise ConfigError("; ".join(out))


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
        if "data" not in config:  # seg.predict and seg.export read no data set
            return None
        data_dir = OmegaConf.select(config, "paths.data_dir", default=None)
        return Path(data_dir) if data_dir else None
