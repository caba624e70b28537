"""Errors caused by what the user gave (data, checkpoints, settings, files), and how an entry point shows
them: one line naming the culprit and what to do, exit code :data:`USER_ERROR`, no traceback."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

USER_ERROR = 2  # exit code of an error in the user's input (1 stays an unexpected failure)

log = logging.getLogger("seg")


class SegError(Exception):
    """Base of the user-facing errors: the message alone must be enough to act on."""


class ConfigError(SegError, ValueError):
    """A setting is out of range or names something that does not exist."""


def _in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # outside Hydra (or without it: the deployment API): a plain run
        return False


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a :class:`SegError` into one logged line ``<ErrorType>: <message>`` and exit code :data:`USER_ERROR`.

    ``HYDRA_FULL_ERROR=1`` re-raises (the traceback); so does a multirun, so that Hydra records the job
    as failed and the sweep goes on.
    """
    try:
        yield
    except SegError as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or _in_multirun():
            raise
        # one line on the console (Hydra's log handler writes to stderr) and in the run's log file
        log.error(f"{type(e).__name__}: {e}")
        raise SystemExit(USER_ERROR) from None
