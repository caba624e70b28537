"""The I2DL MSRC-v2 archive on disk: fetch it once, check its hash, extract and verify it, read its
split files and items.

Layout inside the zip: ``segmentation_data/{images/NAME.bmp, targets/NAME_GT.bmp, train.txt, val.txt,
test.txt}``. Everything here works on files; the torch side is in :mod:`seg.data.dataset`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from torchvision.datasets.utils import download_url
from tqdm import tqdm

from seg.core.errors import SegError
from seg.data.labels import decode_target
from seg.data.photos import to_rgb
from seg.data.splits import SPLITS, read_split

DEFAULT_URL = "https://i2dl.vc.in.tum.de/static/data/segmentation_data.zip"
# SHA-256 of the I2DL archive (76 MB): checked before extraction; data.sha256=null accepts any archive
DEFAULT_SHA256 = "637397c32c5a76bc290f0e2c49f6c9d130a23f8405fffc3db8c39612050ac4de"
ARCHIVE_NAME = "segmentation_data.zip"
ARCHIVE_DIR = "segmentation_data"  # the one top-level folder inside the archive


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


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify_hash(archive: Path, sha256: str | None, url: str, name: str | None = None) -> None:
    """Refuse an archive whose SHA-256 is not ``sha256`` (None: accept any); the bad file is deleted.

    ``name`` says what the file is in the message (default: its path).
    """
    if not sha256:
        return
    if not zipfile.is_zipfile(archive):  # e.g. an HTML error page: no hash could make it the data set
        head = archive.read_bytes()[:64]
        archive.unlink(missing_ok=True)
        looks = " (it looks like an HTML page, e.g. a login or error page)" if b"<" in head[:16] else ""
        raise DataSourceError(
            f"{name or archive} is not a zip archive{looks}; it was deleted and nothing was extracted: the "
            f"next run fetches it again" + _how_to_fix(url)
        )
    actual = sha256_of(archive)
    if actual != sha256.lower():
        archive.unlink(missing_ok=True)
        raise DataSourceError(
            f"{name or archive} has SHA-256 {actual}, expected {sha256.lower()}; it was deleted, nothing was "
            f"extracted. "
            f"If this is the archive you want (e.g. your own copy of the data set), accept it on purpose with "
            f"data.sha256=null or data.sha256={actual}" + _how_to_fix(url)
        )


def download_archive(url: str, data_dir: str | os.PathLike, sha256: str | None = DEFAULT_SHA256) -> Path:
    """Fetch the zip into ``data_dir`` once, with a progress bar; reuse it afterwards.

    http(s) goes through torchvision's ``download_url``; a ``file://`` URL or a path is copied
    (torchvision's downloader cannot read ``file://`` responses). The archive's SHA-256 is checked
    before it is used (``sha256=None``: not checked).
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / ARCHIVE_NAME
    if target.is_file():
        verify_hash(target, sha256, url)
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
        verify_hash(part, sha256, url, name="the downloaded archive")
        os.replace(part, target)
    return target


def _safe_extract(zf: zipfile.ZipFile, dest: Path) -> None:
    """Extract every member below ``dest``; a member that would land outside it is refused."""
    root = dest.resolve()
    for member in zf.infolist():
        target = (dest / member.filename).resolve()
        if target != root and root not in target.parents:
            raise DataSourceError(f"{zf.filename}: member {member.filename!r} would be written outside the data folder")
    zf.extractall(dest)


def extract_archive(archive: Path, data_dir: str | os.PathLike, url: str = "") -> Path:
    """Extract to a temp dir, check the layout and decode every listed image and target, then rename
    into place (atomic for readers): a broken extraction is never left in ``data_dir``.

    A bad archive is deleted, so that the next run fetches it again instead of failing on it.
    """
    data_dir = Path(data_dir)
    final = data_dir / ARCHIVE_DIR
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".extract-") as tmp:
        try:
            try:
                with zipfile.ZipFile(archive) as zf:
                    _safe_extract(zf, Path(tmp))
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
            verify_items(extracted)
        except DataSourceError as e:
            archive.unlink(missing_ok=True)
            what = str(e).replace(f"{Path(tmp)}/", f"{archive.name}: ")  # the temp folder is gone: name the member
            raise DataSourceError(
                f"{what}. The archive {archive} was deleted and nothing was extracted: the next run fetches it again"
                + _how_to_fix(url)
            ) from e
        try:
            os.replace(extracted, final)
        except OSError:
            if not final.is_dir():  # another process (e.g. a second DDP rank) may have extracted it first
                raise
    return final


def verify_layout(root: Path) -> None:
    """Every split file exists, lists images, and every image and target it lists is present."""
    for split in SPLITS:
        if not (root / f"{split}.txt").is_file():
            raise DataSourceError(f"Split file missing: {root.name}/{split}.txt")
        names = read_split(root / f"{split}.txt")
        if not names:
            raise DataSourceError(f"{root.name}/{split}.txt lists no images")
        missing = [str(p.relative_to(root)) for n in names for p in item_paths(root, n) if not p.is_file()]
        if missing:
            raise DataSourceError(f"{split}.txt lists {len(missing)} files that {root.name}/ lacks, e.g. {missing[:3]}")


def verify_items(root: Path) -> None:
    """Decode every image and target that a split lists: a corrupt or mismatched file is named now,
    not at first use. Unknown target colours stay a warning (naming the file and the pixel count)."""
    for split in SPLITS:
        for name in read_split(root / f"{split}.txt"):
            load_item(root, name)


def prepare_data(url: str, data_dir: str | os.PathLike, sha256: str | None = DEFAULT_SHA256) -> Path:
    """Return the extracted data set folder, downloading, checking and extracting it on first use."""
    data_dir = Path(data_dir)
    final = data_dir / ARCHIVE_DIR
    if final.is_dir():
        return final
    return extract_archive(download_archive(url, data_dir, sha256), data_dir, url)


def item_paths(root: Path, name: str) -> tuple[Path, Path]:
    """The photo and the colour target of one item."""
    return root / "images" / f"{name}.bmp", root / "targets" / f"{name}_GT.bmp"


def _read_rgb(path: Path, photo: bool = False) -> np.ndarray:
    """An image file as HxWx3 uint8 (a photo by the one photo reader, a colour target as stored); a file
    PIL cannot decode is a DataSourceError naming it."""
    try:
        with Image.open(path) as im:
            return to_rgb(im) if photo else np.array(im.convert("RGB"))  # writable: torch.from_numpy shares it
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise DataSourceError(f"{path} cannot be decoded ({type(e).__name__}: {e})") from e


def load_item(root: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one photo (HxWx3 uint8) and its colour target (HxW int8 class ids, void = -1)."""
    img_path, tgt_path = item_paths(root, name)
    img = _read_rgb(img_path, photo=True)
    tgt = decode_target(_read_rgb(tgt_path), str(tgt_path)).astype(np.int8)
    if img.shape[:2] != tgt.shape:
        raise DataSourceError(f"{tgt_path}: size {tgt.shape} differs from its image {img.shape[:2]}")
    return img, tgt
