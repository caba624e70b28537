"""The one settings check of every entry point, before any work: each piece of code declares the keys it
reads beside itself (:class:`seg.core.rules.Settings`: an entry point's in its module, a datamodule's, a
net's or a loss's on its class, the loggers' in :mod:`seg.callbacks.loggers`), and :func:`check_settings` applies
the entry point's and those of every ``seg`` class the composed config names (``_target_``), then raises
one :class:`~seg.core.errors.ConfigError` that names each bad key with its value and what is allowed: one
line, exit code 2. The run and data folders are checked by the Hydra callback :class:`WritableFolders`,
before Hydra creates the run folder.

Imports stay light (no torch): ``seg.predict`` on an ONNX model runs these checks without torch (its
config names no ``seg`` class; a config that does, imports it, as the job will).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from seg.core.errors import ConfigError, user_errors
from seg.core.files import unwritable
from seg.core.rules import ABSENT, Settings
from seg.model.inference import TTA


def plain(value: Any) -> Any:
    """A config value as plain Python (Hydra's lists and dicts become lists and dicts; interpolations
    inside them are left as written)."""
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


def _getter(cfg: DictConfig):
    def get(key: str) -> Any:
        try:
            v = OmegaConf.select(cfg, key, default=ABSENT, throw_on_missing=True)
        except MissingMandatoryValue:  # a key the config has, without a value yet (e.g. data.root: ???)
            return MISSING
        return v if v is ABSENT else plain(v)

    return get


def _targets(node: Any, at: str = "") -> Iterator[tuple[str, str]]:
    """(prefix, class path) of every node below ``node`` that names a ``seg`` class with ``_target_``."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if isinstance(target, str) and target.startswith("seg."):
            yield at, target
        for key, value in node.items():
            yield from _targets(value, f"{at}{key}.")


def problems(cfg: DictConfig, entry: Settings | None = None) -> list[str]:
    """Every problem of a composed config, one ``key=value: what is allowed`` each: the entry point's
    settings, then those of each ``seg`` class the config names (by its ``_target_``)."""
    from hydra.utils import get_class

    get = _getter(cfg)
    out = entry.problems(get) if entry is not None else []
    structure = OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)
    for at, target in _targets(structure):
        try:
            declared = getattr(get_class(target), "SETTINGS", None)
        except ImportError as e:
            out.append(f"{at}_target_={target}: no such class ({e})")
            continue
        if declared is not None:
            out += declared.problems(get, at)
    return out


def check_settings(cfg: DictConfig, entry: Settings | None = None) -> None:
    """Raise one :class:`ConfigError` naming every bad setting of ``cfg``; nothing has run yet."""
    if found := problems(cfg, entry):
        raise ConfigError("; ".join(found))


def tta_value(value: Any) -> TTA:
    """A checked TTA setting as seg.model.inference takes it (a bool or a list of scales)."""
    return plain(value)


def check_folders(run_dir: Path, data_dir: Path | None, output_dir: Path | None = None) -> None:
    """The run (or sweep) folder must be writable, and ``paths.output_dir`` if set to a folder of its own;
    the download folder too unless the data set is there."""
    out = []
    if reason := unwritable(run_dir):
        out.append(
            f"cannot write the run folder {run_dir} ({reason}): choose another with paths.log_dir=... "
            f"(or hydra.run.dir=...)"
        )
    if output_dir is not None and output_dir != run_dir and (reason := unwritable(output_dir)):
        out.append(f"cannot write paths.output_dir={output_dir} ({reason}): choose a folder you can write")
    if data_dir is not None:
        from seg.data.archive import ARCHIVE_DIR

        if not (data_dir / ARCHIVE_DIR).is_dir() and (reason := unwritable(data_dir)):
            out.append(f"cannot write the data folder {data_dir} ({reason}): choose another with paths.data_dir=...")
    if out:
        raise ConfigError("; ".join(out))


class WritableFolders(Callback):
    """A Hydra callback: checks the output and download folders before Hydra creates the run folder."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with user_errors():
            check_folders(Path(config.hydra.run.dir), self._data_dir(config), self._output_dir(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with user_errors():
            check_folders(Path(config.hydra.sweep.dir), self._data_dir(config))

    @staticmethod
    def _data_dir(config: DictConfig) -> Path | None:
        """Where the data set is downloaded (``data.data_dir``); None for data read where it lies (a
        folder data set, whose survey cache is skipped when it cannot be written) and for seg.predict."""
        data_dir = OmegaConf.select(config, "data.data_dir", default=None)
        return Path(data_dir) if data_dir else None

    @staticmethod
    def _output_dir(config: DictConfig) -> Path | None:
        """``paths.output_dir`` when the user set it to a folder (by default it is Hydra's run folder)."""
        raw = OmegaConf.to_container(config, resolve=False).get("paths", {}).get("output_dir")
        return Path(raw) if isinstance(raw, str) and "${" not in raw else None
