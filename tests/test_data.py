"""Archive download/extraction, label decoding, split parsing, dataset and datamodule."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CROP, SPLIT_COUNTS, write_dataset, zip_dir
from PIL import Image

from seg.data import (
    ARCHIVE_DIR,
    CLASS_NAMES,
    LABELS,
    NUM_CLASSES,
    PALETTE,
    DataSourceError,
    MSRCDataModule,
    MSRCDataset,
    decode_target,
    encode_target,
    load_split,
    prepare_data,
    read_split,
)


# ---------------------------------------------------------------- labels and splits -------------


def test_label_table_matches_the_msrc_legend():
    assert NUM_CLASSES == 23 and len(LABELS) == 24
    assert [c.id for c in LABELS] == list(range(-1, 23))
    assert LABELS[0].name == "void" and LABELS[0].rgb == (0, 0, 0)
    assert CLASS_NAMES[3] == "cow" and CLASS_NAMES[22] == "boat"
    assert len({c.rgb for c in LABELS}) == 24  # colours are unique


def test_decode_every_colour_to_its_id():
    rgb = np.array([[c.rgb for c in LABELS]], dtype=np.uint8)
    ids = decode_target(rgb)
    assert ids.dtype == np.int64
    assert ids.tolist() == [[c.id for c in LABELS]]
    np.testing.assert_array_equal(encode_target(ids), rgb)


def test_unknown_colour_becomes_void_with_one_warning_naming_the_file():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (0, 128, 0)  # grass
    rgb[1, :] = (1, 2, 3)  # not in the table
    with pytest.warns(UserWarning, match=r"odd_GT\.bmp: 3 pixels") as record:
        ids = decode_target(rgb, "odd_GT.bmp")
    assert len(record) == 1
    assert ids[0, 0] == 1 and (ids[1] == -1).all() and (ids[0, 1:] == -1).all()


def test_read_split_tolerates_crlf_blank_lines_and_missing_extension(tmp_path):
    f = tmp_path / "train.txt"
    f.write_bytes(b"1_1_s.bmp\r\n\r\n2_3_s\r\n  7_7_s.BMP  \r\n")
    assert read_split(f) == ["1_1_s", "2_3_s", "7_7_s"]


# ---------------------------------------------------------------- download and extraction -------


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


# ---------------------------------------------------------------- dataset -----------------------


def test_dataset_shapes_dtypes_and_void_padding(data_dir):
    ds = MSRCDataset(data_dir / ARCHIVE_DIR, "train", crop_size=CROP, normalize=False)
    assert len(ds) == SPLIT_COUNTS["train"]
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, CROP, CROP) and x.dtype == torch.float32
        assert y.shape == (CROP, CROP) and y.dtype == torch.int64
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert set(y.unique().tolist()) <= set(range(-1, 23))
    # Sample 3 is 48x40: all of the padding is void in the target and black in the image.
    x, y = ds[3]
    assert (y[:12] == -1).all() and (y[:, :8] == -1).all()
    assert (x[:, :12] == 0).all()
    assert (y[12:-12, 8:-8] >= 0).any()


def test_dataset_target_agrees_with_the_colour_file(data_dir):
    ds = MSRCDataset(data_dir / ARCHIVE_DIR, "val", crop_size=None, normalize=False)
    name = ds.names[0]
    rgb = np.asarray(Image.open(data_dir / ARCHIVE_DIR / "targets" / f"{name}_GT.bmp").convert("RGB"))
    _, y = ds[0]
    np.testing.assert_array_equal(encode_target(y.numpy()), rgb)


def test_normalize_uses_imagenet_statistics(data_dir):
    raw = MSRCDataset(data_dir / ARCHIVE_DIR, "test", crop_size=CROP, normalize=False)[0][0]
    norm = MSRCDataset(data_dir / ARCHIVE_DIR, "test", crop_size=CROP, normalize=True)[0][0]
    torch.testing.assert_close(norm[0], (raw[0] - 0.485) / 0.229)
    torch.testing.assert_close(norm[2], (raw[2] - 0.406) / 0.225)


def test_split_is_decoded_once_per_process(data_dir):
    root = str((data_dir / ARCHIVE_DIR).resolve())
    assert load_split(root, "train") is load_split(root, "train")
    a = MSRCDataset(data_dir / ARCHIVE_DIR, "train", crop_size=CROP)
    b = MSRCDataset(data_dir / ARCHIVE_DIR, "train", crop_size=CROP)
    assert a.images is b.images


def test_unknown_split_is_rejected(data_dir):
    with pytest.raises(ValueError, match="split must be one of"):
        MSRCDataset(data_dir / ARCHIVE_DIR, "training")


def test_datamodule_batches(archive_url, data_dir):
    dm = MSRCDataModule(data_dir=str(data_dir), url=archive_url, batch_size=4, crop_size=CROP)
    dm.prepare_data()
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, CROP, CROP) and y.shape == (4, CROP, CROP)
    assert len(dm.val_dataloader().dataset) == SPLIT_COUNTS["val"]
    dm.setup("test")
    # val/test are deterministic: two passes give identical batches
    a = [b[0] for b in dm.test_dataloader()]
    c = [b[0] for b in dm.test_dataloader()]
    assert all(torch.equal(p, q) for p, q in zip(a, c))
    assert PALETTE.shape == (23, 3)
