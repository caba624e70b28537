"""How a piece of code declares the settings it reads: :class:`Settings`, a rule per key and checks across
keys, kept beside that code (a datamodule's on its class, a net's on its class, an entry point's in its
module) and applied by :mod:`seg.run.settings` before any work, one line per bad setting.

A rule is a function of a key's plain value (lists and dicts, not Hydra's) that says what is wrong with
it ("must be an integer >= 1"), or None. Plain Python only: neither torch nor Hydra.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Rule = Callable[[Any], "str | None"]  # what is wrong with a value, or None
ABSENT = object()  # a key the composed config does not have
Get = Callable[[str], Any]  # a key's plain value (relative to where the code is configured), or ABSENT
Check = Callable[[Get, str], "list[str]"]  # (get, the keys' prefix such as "data.") -> the problems


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def given(v: Any) -> bool:
    """A value was set: not absent, null, empty or Hydra's ``???``."""
    return v is not ABSENT and v not in (None, "", "???")


def shown(v: Any) -> str:
    """A value as the one-line error shows it: strings quoted, None as null."""
    return repr(v) if isinstance(v, str) else "null" if v is None else str(v)


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
        ok = is_int(v) and (low is None or v >= low) and (high is None or v <= high)
        return None if ok else f"must be {allowed}" + (f" ({why})" if why else "")

    return rule


def number(low: float | None = None, high: float | None = None, above: bool = False, why: str = "") -> Rule:
    """A finite number >= low (> low if ``above``) and <= high."""
    if low is not None and high is not None:
        allowed = f"a number in {'(' if above else '['}{low}, {high}]"
    else:
        allowed = f"a number {'>' if above else '>='} {low}" if low is not None else "a number"

    def rule(v: Any) -> str | None:
        ok = is_number(v) and (low is None or (v > low if above else v >= low)) and (high is None or v <= high)
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


def text(v: Any) -> str | None:
    """A non-empty string (a host name, a folder)."""
    return None if isinstance(v, str) and v.strip() else "must be a non-empty string"


@dataclass(frozen=True)
class Settings:
    """The rules of the keys one piece of code reads, relative to where it is configured (``batch_size``
    of the data group), and its checks across keys. ``a | b``: both."""

    rules: Mapping[str, Rule] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()

    def __or__(self, other: Settings) -> Settings:
        return Settings({**self.rules, **other.rules}, self.checks + other.checks)

    def problems(self, get: Get, prefix: str = "") -> list[str]:
        """Every problem of the keys below ``prefix``, one ``key=value: what is allowed`` each."""
        out = []
        for key, rule in self.rules.items():
            v = get(prefix + key)
            if v is not ABSENT and v != "???" and (why := rule(v)):  # ???: a value still to pass, not a bad one
                out.append(f"{prefix}{key}={shown(v)}: {why}")
        for check in self.checks:
            out += check(lambda key: get(prefix + key), prefix)
        return out
