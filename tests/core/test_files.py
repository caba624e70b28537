"""Files are written whole or not at all, with the mode the umask gives, in one CSV dialect."""

from __future__ import annotations

import os
import stat

import pytest

from seg.core.files import atomic_write, csv_text, write_csv

from helpers import read_csv


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_files_get_the_mode_of_the_umask(umask, mode, tmp_path):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "a.json", "{}\n")
        atomic_write(tmp_path / "b.png", b"\x89PNG")
        write_csv(tmp_path / "c.csv", [{"x": 1}], ["x"])
    finally:
        os.umask(old)
    for name in ("a.json", "b.png", "c.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    target.write_text("old\n")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, "new\n")
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_one_csv_dialect(tmp_path):
    text = csv_text([{"a": 1, "b": None}, {"a": "x,y", "b": 0.5}], ["a", "b"])
    assert text == 'a,b\n1,\n"x,y",0.5\n'
    write_csv(tmp_path / "t.csv", [{"a": 1, "b": 2}], ["a", "b"])
    assert b"\r\n" not in (tmp_path / "t.csv").read_bytes() and read_csv(tmp_path / "t.csv") == [{"a": "1", "b": "2"}]
