"""Errors caused by what the user gave (data, checkpoints, settings, files), and how an entry point shows
them: one line naming the culprit and what to do, exit code :data:`USER_ERROR`, no traceback."""

from __future__ import annotations

import errno
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


# conditions of the machine, not bugs: said in one line, as a user's mistake is
MACHINE_CONDITIONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def machine_condition(e: OSError) -> str | None:
    """One line for an OSError the machine caused (a full disk, a read-only folder), else None."""
    if e.errno not in MACHINE_CONDITIONS:
        return None
    files = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    where = f" ({files})" if files else ""
    return f"{MACHINE_CONDITIONS[e.errno]}{where}: free space or choose a folder you can write, then run again"


def first_cause(message: str) -> str:
    """The message itself of an error raised in a DataLoader worker (torch wraps it in the worker's
    traceback: ``Caught X in DataLoader worker process 0. Original Traceback ...``)."""
    if "Original Traceback" not in message:
        return message
    last = message.rstrip().splitlines()[-1]
    return last.split(": ", 1)[1] if ": " in last else last


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
        log.error(f"{type(e).__name__}: {first_cause(str(e))}")
        raise SystemExit(USER_ERROR) from None
    except OSError as e:
        if (line := machine_condition(e)) is None or os.environ.get("HYDRA_FULL_ERROR") == "1" or _in_multirun():
            raise
        log.error(f"{type(e).__name__}: {line}")
        raise SystemExit(USER_ERROR) from None
