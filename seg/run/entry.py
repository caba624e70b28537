"""What every entry point (``python -m seg.train``, ``seg.eval``, ``seg.predict``, ``seg.export``) shares:
Hydra composes ``conf/<name>.yaml``, every setting is checked (:mod:`seg.run.settings`) before the job
does any work, and a user error is one line with exit code 2 (:func:`seg.core.errors.user_errors`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig

from seg.core.errors import user_errors
from seg.core.rules import Settings
from seg.run.settings import check_settings

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # the project's Hydra configs

T = TypeVar("T")


def run_job(cfg: DictConfig, job: Callable[[DictConfig], T], settings: Settings | None = None) -> T:
    """``job(cfg)`` after the settings check (the entry point's ``settings`` and those of every class the
    config names), with user errors as one line and exit code 2."""
    with user_errors():
        check_settings(cfg, settings)
        return job(cfg)


def null_groups(args: list[str]) -> list[str]:
    """``GROUP=null`` on the command line (e.g. ``logger=null``, as lightning-hydra-template users type it)
    as Hydra 1.3 spells it, ``~GROUP``: the group is left out. Other overrides pass unchanged."""
    groups = {d.name for d in CONF_DIR.iterdir() if d.is_dir()}
    return [
        f"~{a.split('=', 1)[0]}" if a.split("=", 1)[0] in groups and a.split("=", 1)[1:] == ["null"] else a
        for a in args
    ]


def hydra_main(
    config_name: str, task: Callable[[DictConfig], Any], argv: Callable[[list[str]], list[str]] | None = None
) -> Callable[[], None]:
    """The ``main()`` of an entry point: Hydra on ``conf/<config_name>.yaml`` calling ``task``; ``argv``
    may rewrite the command-line overrides first (seg.train's ``resume=``), after :func:`null_groups`."""

    def main() -> None:
        import hydra

        from seg.data.loader import register_configs

        register_configs()  # the data keys' defaults, written once in Python, as configs the YAML composes
        sys.argv[1:] = null_groups(sys.argv[1:])
        if argv is not None:
            with user_errors():
                sys.argv[1:] = argv(sys.argv[1:])
        hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")(task)()

    return main
