"""Images and masks as users have them, read into arrays: photos as HxWx3 uint8 RGB (by the one photo
reader, :mod:`seg.data.photos`), masks as HxW class ids (as stored: masks carry no EXIF orientation).

Masks come in three kinds: single-channel index images (8-bit ``L``, 16-bit ``I;16``), palette PNGs
whose indices are the class ids (``P``, the colours ride along as a palette), and RGB colour masks
decoded by a colour table (MSRC's targets are this kind). NumPy and Pillow only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from seg.core.errors import SegError
from seg.data.labels import LabelSet
from seg.data.photos import UNREADABLE, to_rgb

LOSSY_SUFFIXES = (".jpg", ".jpeg")  # masks saved as JPEG: paired and read, but the survey names them (blurred ids)
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".gif", *LOSSY_SUFFIXES)
INDEX_MODES = ("L", "P", "I;16", "I;16L", "I;16B", "I", "LA", "PA")  # one value per pixel: the class id
COLOUR_MODES = ("RGB", "RGBA")  # a colour per pixel, decoded by the label set's table


class DataFileError(SegError, ValueError):
    """An image or mask of the data set cannot be read, or does not fit the label set."""


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except UNREADABLE as e:
        raise DataFileError(f"{path} cannot be decoded ({type(e).__name__}: {e})") from e


def read_image(path: Path) -> np.ndarray:
    """A photo of the data set as HxWx3 uint8 RGB, read by the one photo reader (upright by its EXIF
    orientation: the labelling tools draw masks on the photo as they show it, upright)."""
    with _open(path) as im:
        return to_rgb(im)


def mask_mode(image: Image.Image) -> str:
    """``index`` (the pixel values are class ids), ``colour`` (an RGB colour per class) or ``other``."""
    if image.mode in INDEX_MODES:
        return "index"
    return "colour" if image.mode in COLOUR_MODES else "other"


def mask_palette(path: Path) -> np.ndarray | None:
    """The colours of a palette mask (256 x 3 uint8), or None for other kinds."""
    with _open(path) as im:
        if im.mode not in ("P", "PA") or im.getpalette() is None:
            return None
        palette = np.array(im.getpalette(), np.uint8)
    return np.pad(palette, (0, max(0, 768 - len(palette))))[:768].reshape(256, 3)


def read_mask(path: Path, labels: LabelSet | None) -> tuple[np.ndarray, str, dict[tuple, int]]:
    """A mask as HxW int64 class ids, its Pillow mode, and the colours outside ``labels``' table with their
    pixel counts (colour masks only: those pixels get the ignore index).

    Index masks keep their values (a palette PNG's indices are its ids). Colour masks need a colour table:
    ``labels`` with the colours of its classes (``classes.txt`` with ``name R G B`` lines, or MSRC's).
    """
    with _open(path) as im:
        mode = im.mode
        if mode in ("LA", "PA"):  # a transparency channel beside the index: keep the index
            im = im.getchannel(0)
        kind = mask_mode(im)
        if kind == "other":
            raise DataFileError(f"{path}: a mask in mode {mode} is neither an index image (L, P, I;16) nor RGB colours")
        values = np.array(im)
    if kind == "index":
        return values.astype(np.int64), mode, {}
    if labels is None:
        raise DataFileError(
            f"{path} is an RGB colour mask: its colours need a table. Write DIR/classes.txt with one "
            f"'name R G B' line per class (and 'void R G B' for the colour to ignore)"
        )
    ids, unknown = labels.decode_colours(values[..., :3], str(path))
    return ids, mode, unknown


def binarize(ids: np.ndarray, threshold: int) -> np.ndarray:
    """A binary mask's values as class ids: 1 at or above ``threshold``, else 0 (black-and-white masks,
    also when JPEG blurred their edges)."""
    return (ids >= threshold).astype(np.int64)
