"""The I2DL MSRC-v2 archive on disk: fetch it once, extract and verify it, read its split files and items.

Layout inside the zip: ``segmentation_data/{images/NAME.bmp, targets/NAME_GT.bmp, train.txt, val.txt,
test.txt}``. Everything here works on files; the torch side is in :mod:`seg.data.dataset`.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.datasets.utils import download_url
from tqdm import tqdm

from seg.errors import SegError
from seg.labels import decode_target

DEFAULT_URL = "https://i2dl.vc.in.tum.de/static/data/segmentation_data.zip"
ARCHIVE_NAME = "segmentation_data.zip"
ARCHIVE_DIR = "segmentation_data"  # the one top-level folder inside the archive
SPLITS = ("train", "val", "test")


class DataSourceError(SegError, RuntimeError):
    """The data set archive could not be fetched, opened or recognised."""


def _how_to_fix(url: str) -> str:
    return (
        f" (source: {url!r}). Point SEG_DATA_URL or the Hydra override data.url=... at the I2DL "
        f"segmentation_data.zip: an http(s) URL, a file:// URL or a local path."
    )


def _local_path(source: str) -> Path | None:
    """The file a ``file://`` URL or plain path names; None for http(s) URLs."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    return Path(source).expanduser()


def _copy_with_progress(src: Path, dst: Path) -> None:
    with (
        open(src, "rb") as fi,
        open(dst, "wb") as fo,
        tqdm(total=src.stat().st_size, unit="B", unit_scale=True, desc=f"copy {src.name}") as bar,
    ):
        while chunk := fi.read(1 << 20):
            fo.write(chunk)
            bar.update(len(chunk))


def download_archive(url: str, data_dir: str | os.PathLike) -> Path:
    """Fetch the zip into ``data_dir`` once, with a progress bar; reuse it afterwards.

    http(s) goes through torchvision's ``download_url``; a ``file://`` URL or a path is copied
    (torchvision's downloader cannot read ``file://`` responses).
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / ARCHIVE_NAME
    if target.is_file():
        return target
    local = _local_path(url)
    if local is not None and not local.is_file():
        raise DataSourceError(f"Data archive not found: {local}" + _how_to_fix(url))
    # Fetch into a temp dir and rename: an interrupted download never looks complete.
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".download-") as tmp:
        part = Path(tmp) / target.name
        try:
            if local is not None:
                _copy_with_progress(local, part)
            else:
                download_url(url, tmp, filename=target.name)
        except (urllib.error.URLError, OSError, RuntimeError, ValueError) as e:
            raise DataSourceError(f"Could not download the data archive: {e}" + _how_to_fix(url)) from e
        os.replace(part, target)
    return target


def extract_archive(archive: Path, data_dir: str | os.PathLike, url: str = "") -> Path:
    """Extract to a temp dir, check the layout, then rename into place (atomic for readers).

    A bad archive is deleted, so that the next run fetches it again instead of failing on it.
    """
    data_dir = Path(data_dir)
    final = data_dir / ARCHIVE_DIR
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".extract-") as tmp:
        try:
            try:
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(tmp)
            except zipfile.BadZipFile as e:
                raise DataSourceError(f"{archive} is not a zip archive ({e})") from e
            extracted = Path(tmp) / ARCHIVE_DIR
            if not extracted.is_dir():
                top = sorted(p.name for p in Path(tmp).iterdir())
                raise DataSourceError(
                    f"{archive} has no top-level '{ARCHIVE_DIR}/' folder (found {top}); expected "
                    f"{ARCHIVE_DIR}/images, {ARCHIVE_DIR}/targets and train/val/test.txt"
                )
            verify_layout(extracted)
        except DataSourceError as e:
            archive.unlink(missing_ok=True)
            raise DataSourceError(str(e) + _how_to_fix(url)) from e
        os.replace(extracted, final)
    return final


def verify_layout(root: Path) -> None:
    """Every split file exists and every image and target it lists is present."""
    for split in SPLITS:
        names = read_split(root / f"{split}.txt")
        missing = [str(p.relative_to(root)) for n in names for p in item_paths(root, n) if not p.is_file()]
        if missing:
            raise DataSourceError(f"{split}.txt lists {len(missing)} files that {root.name}/ lacks, e.g. {missing[:3]}")


def prepare_data(url: str, data_dir: str | os.PathLike) -> Path:
    """Return the extracted data set folder, downloading and extracting it on first use."""
    data_dir = Path(data_dir)
    final = data_dir / ARCHIVE_DIR
    if final.is_dir():
        return final
    return extract_archive(download_archive(url, data_dir), data_dir, url)


def read_split(path: Path) -> list[str]:
    """Image stems listed in a split file; tolerates CRLF, blank lines, names with or without .bmp."""
    if not path.is_file():
        raise DataSourceError(f"Split file missing: {path}")
    names = []
    for line in path.read_text().splitlines():
        name = line.strip()
        if name:
            names.append(name[:-4] if name.lower().endswith(".bmp") else name)
    return names


def item_paths(root: Path, name: str) -> tuple[Path, Path]:
    """The photo and the colour target of one item."""
    return root / "images" / f"{name}.bmp", root / "targets" / f"{name}_GT.bmp"


def load_item(root: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one photo (HxWx3 uint8) and its colour target (HxW int8 class ids, void = -1)."""
    img_path, tgt_path = item_paths(root, name)
    with Image.open(img_path) as im:
        img = np.array(im.convert("RGB"))  # writable, so torch.from_numpy can share it
    with Image.open(tgt_path) as im:
        tgt = decode_target(np.asarray(im.convert("RGB")), str(tgt_path)).astype(np.int8)
    if img.shape[:2] != tgt.shape:
        raise DataSourceError(f"{tgt_path}: size {tgt.shape} differs from its image {img.shape[:2]}")
    return img, tgt
