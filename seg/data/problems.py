"""Problems of a data set, one line each, with the same problem in many files said once: "the colour
(0, 0, 0) is outside the class table in 386 masks, e.g. a.png, b.png: add ..." instead of 386 lines,
so that the problem that matters is not drowned (most common first)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class FileProblem(str):
    """One file's problem, ``"<file>: <fact>; <advice>"``, that :func:`grouped` can merge with the same
    ``fact`` in other files (a plain ``str`` everywhere else)."""

    file: str
    fact: str
    advice: str
    noun: str
    detail: str

    def __new__(
        cls, file: str | Path, fact: str, advice: str = "", noun: str = "files", detail: str = ""
    ) -> FileProblem:
        """``detail``: what is particular to this file (shown with it, also as the example of a group)."""
        named = f"{file} ({detail})" if detail else str(file)
        self = super().__new__(
            cls, f"{file}: {fact}" + (f" ({detail})" if detail else "") + (f"; {advice}" if advice else "")
        )
        self.file, self.fact, self.advice, self.noun, self.detail = named, fact, advice, noun, detail
        return self


def grouped(problems: Iterable[str], examples: int = 2) -> list[str]:
    """``problems`` with each fact found in several files as one line naming how many and ``examples``
    of them; those lines first, most files first, then the others in their order."""
    problems = list(problems)
    groups: dict[tuple[str, str, str], list[str]] = {}
    for p in problems:
        if isinstance(p, FileProblem):
            groups.setdefault((p.fact, p.advice, p.noun), []).append(p.file)
    many = sorted(((k, files) for k, files in groups.items() if len(files) > 1), key=lambda kv: -len(kv[1]))
    merged = {k for k, _ in many}
    lines = []
    for (fact, advice, noun), files in many:
        shown = ", ".join(files[:examples]) + (", ..." if len(files) > examples else "")
        lines.append(f"{fact} in {len(files)} {noun}, e.g. {shown}" + (f": {advice}" if advice else ""))
    for p in problems:
        if not (isinstance(p, FileProblem) and (p.fact, p.advice, p.noun) in merged):
            lines.append(str(p))
    return lines
