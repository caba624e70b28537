"""Errors caused by what the user gave (data, checkpoints, config values, files): their message names
the culprit and says what to do, and the entry points print it as one line (see :mod:`seg.cli`)."""

from __future__ import annotations


class SegError(Exception):
    """Base of the user-facing errors: the message alone must be enough to act on."""


class ConfigError(SegError, ValueError):
    """A config value is out of range or names something that does not exist."""
