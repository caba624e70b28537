"""Resuming a training run in its own folder: ``resume=RUN_DIR`` (optionally with ``ckpt_path=`` one of
its checkpoints) becomes the run's own overrides + the user's + ``hydra.run.dir=RUN_DIR``, before Hydra
composes the config, so the run goes on in its folder (one TensorBoard curve) with the config it was
started with. What makes the resumed run exact is in :mod:`seg.data.sampling` (data order) and
:mod:`seg.callbacks.random_state` (random states).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from seg.core.errors import ConfigError

RESUME_KEYS = ("resume", "ckpt_path")
# overrides of the original run that a resume never repeats (it sets them itself)
NOT_REPEATED = ("resume", "ckpt_path", "hydra.run.dir", "hydra.output_subdir")


def _key(override: str) -> str:
    """The key of a Hydra override, without its +/++/~ prefix."""
    return override.split("=", 1)[0].lstrip("+~")


def run_dir_of(ckpt_path: Path) -> Path | None:
    """The seg.train run dir that holds ``ckpt_path`` (``RUN/checkpoints/x.ckpt`` with ``RUN/.hydra/``)."""
    run = ckpt_path.expanduser().resolve().parent.parent
    return run if (run / ".hydra" / "overrides.yaml").is_file() else None


def _last_overrides(run_dir: Path) -> list[str]:
    """The overrides the run was last (re)started with."""
    import yaml

    records = sorted((run_dir / ".hydra").glob("resume-*/overrides.yaml")) or [run_dir / ".hydra" / "overrides.yaml"]
    return [str(o) for o in (yaml.safe_load(records[-1].read_text()) or [])]


def resume_args(args: list[str]) -> list[str]:
    """Command-line overrides that continue a run in its own folder, or ``args`` unchanged.

    ``resume=RUN_DIR`` resumes from ``RUN_DIR/checkpoints/last.ckpt`` (or ``ckpt_path=``). Only the folder
    the user names is written into: ``ckpt_path=`` alone, even of a run's checkpoint, continues training in
    a new run folder. The run's own overrides come first, the user's after them (the user's win); its
    ``.hydra/`` record is kept, the resumed part writes ``.hydra/resume-<time>/``.
    """
    if any(a in ("-m", "--multirun") or a.startswith("hydra.mode=") for a in args):
        return args  # sweeps start jobs in their own folders
    given = {_key(a): a.split("=", 1)[1] for a in args if "=" in a and _key(a) in RESUME_KEYS}
    if "resume" in given:
        run_dir = Path(given["resume"]).expanduser().resolve()
        if not (run_dir / ".hydra" / "overrides.yaml").is_file():
            raise ConfigError(
                f"resume={given['resume']}: not a seg.train run folder (no .hydra/overrides.yaml there); pass the "
                f"folder of a run, e.g. resume=outputs/runs/<date>/<time>"
            )
        ckpt = Path(given.get("ckpt_path") or run_dir / "checkpoints" / "last.ckpt").expanduser().resolve()
        if not ckpt.is_file():
            raise ConfigError(f"resume={given['resume']}: {ckpt} does not exist; the run saved no checkpoint to resume")
    else:
        return args
    user = [a for a in args if _key(a) not in RESUME_KEYS]
    user_keys = {_key(a) for a in user}
    original = [o for o in _last_overrides(run_dir) if _key(o) not in user_keys and _key(o) not in NOT_REPEATED]
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return [
        *original,
        *user,
        f"ckpt_path={ckpt}",
        f"hydra.run.dir={run_dir}",
        f"hydra.output_subdir=.hydra/resume-{stamp}",
    ]
