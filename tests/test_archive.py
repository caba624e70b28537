"""The archive: download (file URL, path, http), extraction, verification, split files, bad sources."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from seg.data.archive import ARCHIVE_DIR, DataSourceError, prepare_data, read_split

from helpers import SPLIT_COUNTS, write_dataset, zip_dir


def test_read_split_tolerates_crlf_blank_lines_and_missing_extension(tmp_path):
    f = tmp_path / "train.txt"
    f.write_bytes(b"1_1_s.bmp\r\n\r\n2_3_s\r\n  7_7_s.BMP  \r\n")
    assert read_split(f) == ["1_1_s", "2_3_s", "7_7_s"]


def _assert_clean(data_dir: Path) -> None:
    """Nothing half-extracted or half-downloaded left behind."""
    if data_dir.exists():
        leftovers = [p.name for p in data_dir.iterdir()]
        assert ARCHIVE_DIR not in leftovers
        assert not [n for n in leftovers if n.startswith(".")], leftovers


def test_prepare_from_file_url_extracts_and_verifies(archive_url, tmp_path, capsys):
    root = prepare_data(archive_url, tmp_path / "d")
    assert root == tmp_path / "d" / ARCHIVE_DIR
    for split, n in SPLIT_COUNTS.items():
        assert len(read_split(root / f"{split}.txt")) == n
    assert "copy segmentation_data.zip" in capsys.readouterr().err  # the progress bar
    assert not [p for p in (tmp_path / "d").iterdir() if p.name.startswith(".")]


def test_prepare_from_plain_path_and_reuse_without_source(archive, tmp_path):
    d = tmp_path / "d"
    root = prepare_data(str(archive), d)
    assert (root / "images").is_dir()
    # Second run: neither downloads nor extracts again (the source may be gone).
    stamp = (root / "train.txt").stat().st_mtime_ns
    assert prepare_data(str(tmp_path / "gone.zip"), d) == root
    assert (root / "train.txt").stat().st_mtime_ns == stamp


def test_prepare_reuses_a_downloaded_zip(archive, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "segmentation_data.zip").write_bytes(archive.read_bytes())
    assert (prepare_data(str(tmp_path / "gone.zip"), d) / "test.txt").is_file()


@pytest.fixture
def http_url(archive):
    """The archive served over http on loopback, through torchvision's downloader."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(archive.parent))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{archive.name}"
    server.shutdown()
    server.server_close()


def test_prepare_over_http(http_url, tmp_path):
    root = prepare_data(http_url, tmp_path / "d")
    assert len(read_split(root / "val.txt")) == SPLIT_COUNTS["val"]
    assert (tmp_path / "d" / "segmentation_data.zip").is_file()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _no_top_folder_zip(tmp_path: Path) -> Path:
    src = write_dataset(tmp_path / "src")
    z = tmp_path / "flat.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in src.rglob("*"):
            zf.write(p, p.relative_to(src))  # no segmentation_data/ prefix
    return z


def _incomplete_zip(tmp_path: Path) -> Path:
    src = write_dataset(tmp_path / "src")
    next((src / "targets").glob("*_GT.bmp")).unlink()
    return zip_dir(src, tmp_path / "incomplete.zip")


@pytest.mark.parametrize(
    "make_source, message",
    [
        (lambda t: str(t / "missing.zip"), r"Data archive not found: .*missing\.zip"),
        (lambda t: (t / "missing.zip").as_uri(), r"Data archive not found: .*missing\.zip"),
        (lambda t: f"http://127.0.0.1:{_closed_port()}/segmentation_data.zip", r"Could not download"),
        (lambda t: (t / "notzip.zip").write_text("<html>404</html>") and str(t / "notzip.zip"), r"is not a zip"),
        (lambda t: str(_no_top_folder_zip(t)), r"has no top-level 'segmentation_data/' folder"),
        (lambda t: str(_incomplete_zip(t)), r"\w+\.txt lists 1 files that segmentation_data/ lacks, e.g. \['targets/"),
    ],
    ids=["missing-path", "missing-file-url", "unreachable-url", "not-a-zip", "no-top-folder", "incomplete"],
)
def test_bad_sources_give_one_clear_error_and_leave_nothing(make_source, message, tmp_path):
    source = make_source(tmp_path)
    d = tmp_path / "data"
    with pytest.raises(DataSourceError, match=message) as err:
        prepare_data(source, d)
    assert "SEG_DATA_URL" in str(err.value)
    _assert_clean(d)
    # A bad archive is not kept: the next run fetches again instead of failing on the same file.
    assert not (d / "segmentation_data.zip").exists()


def test_errors_say_how_to_point_elsewhere(tmp_path):
    with pytest.raises(DataSourceError, match=r"SEG_DATA_URL or the Hydra override data\.url="):
        prepare_data(str(tmp_path / "nope.zip"), tmp_path / "d")
