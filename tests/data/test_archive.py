"""The archive: download (file URL, path, http), extraction, verification, split files, bad sources."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seg.data.archive import ARCHIVE_DIR, DEFAULT_SHA256, DataSourceError, prepare_data, read_split, sha256_of

from helpers import SPLIT_COUNTS, run_module, write_dataset, zip_dir


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


def test_prepare_from_file_url_extracts_and_verifies(archive_url, archive_sha256, tmp_path, capsys):
    root = prepare_data(archive_url, tmp_path / "d", archive_sha256)
    assert root == tmp_path / "d" / ARCHIVE_DIR
    for split, n in SPLIT_COUNTS.items():
        assert len(read_split(root / f"{split}.txt")) == n
    assert "copy segmentation_data.zip" in capsys.readouterr().err  # the progress bar
    assert not [p for p in (tmp_path / "d").iterdir() if p.name.startswith(".")]


def test_prepare_from_plain_path_and_reuse_without_source(archive, tmp_path):
    d = tmp_path / "d"
    root = prepare_data(str(archive), d, sha256=None)
    assert (root / "images").is_dir()
    # Second run: neither downloads nor extracts again (the source may be gone).
    stamp = (root / "train.txt").stat().st_mtime_ns
    assert prepare_data(str(tmp_path / "gone.zip"), d, sha256=None) == root
    assert (root / "train.txt").stat().st_mtime_ns == stamp


def test_prepare_reuses_a_downloaded_zip(archive, archive_sha256, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "segmentation_data.zip").write_bytes(archive.read_bytes())
    assert (prepare_data(str(tmp_path / "gone.zip"), d, archive_sha256) / "test.txt").is_file()


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


def test_prepare_over_http(http_url, archive_sha256, tmp_path):
    root = prepare_data(http_url, tmp_path / "d", archive_sha256)
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
        prepare_data(source, d, sha256=None)
    assert "SEG_DATA_URL" in str(err.value)
    _assert_clean(d)
    # A bad archive is not kept: the next run fetches again instead of failing on the same file.
    assert not (d / "segmentation_data.zip").exists()


def test_errors_say_how_to_point_elsewhere(tmp_path):
    with pytest.raises(DataSourceError, match=r"SEG_DATA_URL or the Hydra override data\.url="):
        prepare_data(str(tmp_path / "nope.zip"), tmp_path / "d", sha256=None)


# ---------------------------------------------------------------- verification before use --------


def test_wrong_checksum_names_both_hashes_and_how_to_accept(archive, archive_sha256, tmp_path):
    d = tmp_path / "d"
    with pytest.raises(DataSourceError) as err:
        prepare_data(str(archive), d)  # the default: the I2DL archive's hash
    msg = str(err.value)
    assert archive_sha256 in msg and DEFAULT_SHA256 in msg and "data.sha256=null" in msg
    _assert_clean(d)
    assert not (d / "segmentation_data.zip").exists() and archive.is_file()  # the source is never touched
    # an archive already in the data folder is checked too, and a matching hash is accepted
    d.mkdir(exist_ok=True)
    (d / "segmentation_data.zip").write_bytes(archive.read_bytes())
    with pytest.raises(DataSourceError, match=r"expected 0{64}"):
        prepare_data(str(archive), d, sha256="0" * 64)
    assert (prepare_data(str(archive), d, sha256=archive_sha256.upper()) / "train.txt").is_file()
    assert sha256_of(archive) == archive_sha256


def _damaged_zip(tmp_path: Path, damage) -> Path:
    src = write_dataset(tmp_path / "src")
    damage(src)
    return zip_dir(src, tmp_path / "damaged.zip")


def _truncate_first_image(src: Path) -> str:
    name = sorted((src / "images").glob("*.bmp"))[0]
    name.write_bytes(name.read_bytes()[:200])
    return f"images/{name.name}"


def _shrink_first_target(src: Path) -> str:
    t = sorted((src / "targets").glob("*_GT.bmp"))[0]
    Image.open(t).crop((0, 0, 10, 10)).save(t)
    return f"targets/{t.name}"


def _not_an_image(src: Path) -> str:
    t = sorted((src / "targets").glob("*_GT.bmp"))[1]
    t.write_text("not a bitmap")
    return f"targets/{t.name}"


def _empty_split(src: Path) -> str:
    (src / "val.txt").write_text("\r\n")
    return "val.txt lists no images"


@pytest.mark.parametrize(
    "damage",
    [_truncate_first_image, _shrink_first_target, _not_an_image, _empty_split],
    ids=["truncated-bmp", "size-mismatch", "not-an-image", "empty-split"],
)
def test_a_damaged_file_is_named_at_extraction_and_nothing_is_left(damage, tmp_path):
    src = write_dataset(tmp_path / "src")
    culprit = damage(src)
    zipped = zip_dir(src, tmp_path / "damaged.zip")
    d = tmp_path / "data"
    with pytest.raises(DataSourceError) as err:
        prepare_data(str(zipped), d, sha256=None)
    msg = str(err.value)
    assert culprit in msg, msg
    assert "was deleted and nothing was extracted" in msg
    _assert_clean(d)
    assert not (d / "segmentation_data.zip").exists() and zipped.is_file()


def test_unknown_colours_are_a_warning_naming_the_file_at_extraction(tmp_path):
    src = write_dataset(tmp_path / "src")
    t = sorted((src / "targets").glob("*_GT.bmp"))[0]
    rgb = np.array(Image.open(t).convert("RGB"))
    rgb[:2, :3] = (1, 2, 3)
    Image.fromarray(rgb).save(t)
    with pytest.warns(UserWarning, match=rf"{t.name}: 6 pixels have colours outside the MSRC table"):
        root = prepare_data(str(zip_dir(src, tmp_path / "odd.zip")), tmp_path / "d", sha256=None)
    assert (root / "targets" / t.name).is_file()


def test_extraction_never_writes_outside_the_data_folder(tmp_path):
    src = write_dataset(tmp_path / "src")
    evil = zip_dir(src, tmp_path / "evil.zip")
    with zipfile.ZipFile(evil, "a") as zf:
        zf.writestr("segmentation_data/../../escaped.txt", "pwned")
    d = tmp_path / "deep" / "data"
    with pytest.raises(DataSourceError, match=r"would be written outside the data folder"):
        prepare_data(str(evil), d, sha256=None)
    assert not list(tmp_path.rglob("escaped.txt"))
    _assert_clean(d)


def test_seg_train_reports_a_data_fault_in_one_line_and_leaves_nothing(train_overrides, tmp_path):
    src = write_dataset(tmp_path / "src")
    culprit = _truncate_first_image(src)
    zipped = zip_dir(src, tmp_path / "damaged.zip")
    overrides = [o for o in train_overrides if not o.startswith(("data.url=", "paths.data_dir="))]
    data = tmp_path / "data"
    proc = run_module(
        "seg.train",
        *overrides,
        f"data.url={zipped}",
        f"paths.data_dir={data}",
        f"hydra.run.dir={tmp_path / 'run'}",
        check=False,
    )
    assert proc.returncode == 2
    lines = [s for s in proc.stderr.splitlines() if "DataSourceError" in s]
    assert len(lines) == 1 and culprit in lines[0] and "Traceback" not in proc.stderr
    _assert_clean(data)
    # and a wrong checksum, through the default data.sha256
    overrides = [o for o in overrides if o != "data.sha256=null"]
    proc = run_module(
        "seg.train",
        *overrides,
        f"data.url={zipped}",
        f"paths.data_dir={data}",
        f"hydra.run.dir={tmp_path / 'run2'}",
        check=False,
    )
    assert proc.returncode == 2 and DEFAULT_SHA256 in proc.stderr and "data.sha256=null" in proc.stderr


def test_a_non_zip_download_with_the_default_hash_says_it_is_not_a_zip(tmp_path):
    page = tmp_path / "segmentation_data.zip"
    page.write_text("<!DOCTYPE html><html><body>Please log in</body></html>")
    d = tmp_path / "d"
    with pytest.raises(DataSourceError) as err:
        prepare_data(str(page), d)  # the default sha256: the hash would never match a web page
    msg = str(err.value)
    assert "is not a zip archive (it looks like an HTML page" in msg and "next run fetches it again" in msg
    assert "data.sha256" not in msg  # not an invitation to accept a broken file
    _assert_clean(d)
    assert not (d / "segmentation_data.zip").exists() and page.is_file()
