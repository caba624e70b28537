"""What every entry point shares around its Hydra main: user errors as one line and an exit code.

An error caused by the user's input (:class:`seg.errors.SegError`: data source and contents,
checkpoints, config values) prints one short message naming the culprit and what to do, and exits
with :data:`USER_ERROR`; ``HYDRA_FULL_ERROR=1`` shows the traceback instead. In a multirun the error
is re-raised, so that Hydra records the job as failed and the sweep goes on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from seg.errors import SegError

USER_ERROR = 2  # exit code of an error in the user's input (1 stays an unexpected failure)

log = logging.getLogger("seg")


def _in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # outside Hydra: a plain run
        return False


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a :class:`SegError` into one logged line ``<ErrorType>: <message>`` and exit code :data:`USER_ERROR`."""
    try:
        yield
    except SegError as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or _in_multirun():
            raise
        # one line on the console (Hydra's log handler writes to stderr) and in the run's log file
        log.error(f"{type(e).__name__}: {e}")
        raise SystemExit(USER_ERROR) from None
