"""The one photo reader, and finding photos on disk: any file Pillow reads, in any common mode, as the
HxWx3 uint8 RGB array the nets take, for training, evaluation and prediction alike. NumPy and Pillow only.

Photos are turned upright by their EXIF orientation, as LabelMe and CVAT show them while their masks
are drawn (so the mask fits the upright photo); 16-bit grayscale keeps its top 8 bits; transparent
pixels are composited over black, the colour training pads photos with; every other mode (L, P,
CMYK, ...) goes through Pillow's RGB conversion.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from seg.core.errors import SegError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")  # what a folder of photos holds
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # 16-bit grayscale (PNG, TIFF) opens as one of these
_SWAPS_SIDES = (5, 6, 7, 8)  # EXIF orientations that turn the photo by 90 degrees
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)  # what Pillow raises on a bad file

PhotoSource = str | os.PathLike | Image.Image | np.ndarray


class PhotoError(SegError, ValueError):
    """A photo could not be read, or an input names no photos."""


def to_rgb(image: Image.Image) -> np.ndarray:
    """A Pillow image upright (EXIF orientation) as HxWx3 uint8 RGB (writable: torch.from_numpy shares it)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in _SIXTEEN_BIT:
        grey = np.clip(np.asarray(image, dtype=np.int64), 0, 65535) // 257
        return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
    if image.has_transparency_data:
        black = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, image.convert("RGBA"))
    return np.array(image.convert("RGB"))


def load_photo(source: PhotoSource) -> np.ndarray:
    """A photo file, a Pillow image or an HxWx3 uint8 array as an HxWx3 uint8 RGB array (upright)."""
    if isinstance(source, np.ndarray):
        if source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8 or 0 in source.shape:
            raise PhotoError(
                f"an array photo must be HxWx3 uint8 RGB, got shape {source.shape} dtype {source.dtype}; "
                f"convert it first or pass a Pillow image"
            )
        return source
    if isinstance(source, Image.Image):
        return to_rgb(source)
    path = Path(source).expanduser()
    try:
        with Image.open(path) as im:
            return to_rgb(im)
    except UNREADABLE as e:
        raise PhotoError(f"{path}: cannot be read as a photo ({type(e).__name__}: {e})") from e


def photo_sizes(path: Path, decode: bool = False) -> tuple[tuple[int, int], tuple[int, int]]:
    """(width, height) of a photo file upright and as stored, from its header without decoding it
    (``decode``: decoded whole, so that a truncated or corrupt file is found now, not in training)."""
    try:
        with Image.open(path) as im:
            if decode:
                im.load()
            w, h = im.size
            # Pillow's TIFF reader reports (and decodes to) the upright size itself
            turned = im.format != "TIFF" and im.getexif().get(0x0112) in _SWAPS_SIDES
            return ((h, w) if turned else (w, h)), (w, h)
    except UNREADABLE as e:
        raise PhotoError(f"{path}: cannot be read as a photo ({type(e).__name__}: {e})") from e


def photo_size(path: Path) -> tuple[int, int]:
    """(width, height) of a photo file once upright, read from its header without decoding it."""
    return photo_sizes(path)[0]


def find_photos(input: str) -> list[Path]:
    """The photo files an ``input`` names: a file (of any suffix), the photos directly in a folder,
    or the photos a glob matches (``**`` descends into subfolders); sorted. None is an error."""
    path = Path(input).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    elif any(c in input for c in "*?["):
        matches = (Path(p) for p in glob.glob(os.path.expanduser(input), recursive=True))
        found = [p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    else:
        raise PhotoError(f"input={input}: no such file or folder. Pass a photo, a folder of photos or a quoted glob")
    if not found:
        raise PhotoError(
            f"input={input}: no photos there (looked for {' '.join(IMAGE_SUFFIXES)} files, not in subfolders). "
            f"Pass a photo, a folder of photos or a glob such as 'photos/**/*.jpg'"
        )
    return sorted(found)
