"""How the project writes files: whole or not at all, with the permissions the user's umask gives, and
one CSV dialect. Every file a run leaves (results, reports, predictions, summaries) goes through here."""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from seg.core.errors import ConfigError


def current_umask() -> int:
    """The process umask (the bits a new file does not get)."""
    mask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` (text or bytes) to a temp file beside ``path`` and rename it into place: never
    half-written. The file gets the mode a plain ``open()`` would give (0666 less the umask): temp
    files are created 0600, which would hide results from the rest of a group."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    f = tempfile.NamedTemporaryFile(mode, dir=path.parent, prefix=f".{path.name}.", delete=False)  # noqa: SIM115
    try:
        with f:
            f.write(data)  # a full disk fails here (or at the close): the old file stays, the temp goes
        os.chmod(f.name, 0o666 & ~current_umask())
        os.replace(f.name, path)
    except BaseException:
        Path(f.name).unlink(missing_ok=True)
        raise


def csv_text(rows: Iterable[Mapping[str, Any]], fields: Sequence[str]) -> str:
    """Rows as CSV text: a header of ``fields``, ``\\n`` line ends, None as an empty cell."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if r.get(k) is None else r.get(k) for k in fields} for r in rows)
    return buf.getvalue()


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], fields: Sequence[str]) -> None:
    """:func:`csv_text` written atomically to ``path``."""
    atomic_write(path, csv_text(rows, fields))


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


@contextmanager
def new_folder(out: Path) -> Iterator[Path]:
    """A folder to fill, beside ``out``, renamed to ``out`` when the block ends without error (else deleted):
    an interrupted write leaves no half folder. ``out`` must be new or empty: nothing of the user's is replaced."""
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: exists and is not empty; name a new folder (nothing was changed)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it 0700
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
