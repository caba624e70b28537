"""The MSRC-v2 label table: 23 classes + void, their colours, colour <-> id coding, ImageNet statistics.

NumPy only, so that anything that needs class names or colours (metrics, losses, pictures, an
exported model's metadata) can import it without the data pipeline or the training stack.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

VOID = -1  # the id of unlabelled pixels: ignored by the loss and by every metric

# the normalisation of torchvision's ImageNet weights (data.normalize=true)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LabelClass(NamedTuple):
    id: int
    name: str
    rgb: tuple[int, int, int]


# The 23 MSRC-v2 classes + void, identified in the targets by colour only (no table ships).
LABELS: tuple[LabelClass, ...] = (
    LabelClass(-1, "void", (0, 0, 0)),
    LabelClass(0, "building", (128, 0, 0)),
    LabelClass(1, "grass", (0, 128, 0)),
    LabelClass(2, "tree", (128, 128, 0)),
    LabelClass(3, "cow", (0, 0, 128)),
    LabelClass(4, "horse", (128, 0, 128)),
    LabelClass(5, "sheep", (0, 128, 128)),
    LabelClass(6, "sky", (128, 128, 128)),
    LabelClass(7, "mountain", (64, 0, 0)),
    LabelClass(8, "airplane", (192, 0, 0)),
    LabelClass(9, "water", (64, 128, 0)),
    LabelClass(10, "face", (192, 128, 0)),
    LabelClass(11, "car", (64, 0, 128)),
    LabelClass(12, "bicycle", (192, 0, 128)),
    LabelClass(13, "flower", (64, 128, 128)),
    LabelClass(14, "sign", (192, 128, 128)),
    LabelClass(15, "bird", (0, 64, 0)),
    LabelClass(16, "book", (128, 64, 0)),
    LabelClass(17, "chair", (0, 192, 0)),
    LabelClass(18, "road", (128, 64, 128)),
    LabelClass(19, "cat", (0, 192, 128)),
    LabelClass(20, "dog", (128, 192, 128)),
    LabelClass(21, "body", (64, 64, 0)),
    LabelClass(22, "boat", (192, 64, 0)),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in LABELS if c.id != VOID)
NUM_CLASSES = len(CLASS_NAMES)
PALETTE = np.array([c.rgb for c in LABELS if c.id != VOID], dtype=np.uint8)  # row = class id

# colour -> id lookup: 24-bit colour codes, sorted for np.searchsorted
_CODES = np.array([(r << 16) | (g << 8) | b for _, _, (r, g, b) in LABELS], dtype=np.int64)
_ORDER = np.argsort(_CODES)
_SORTED_CODES = _CODES[_ORDER]
_SORTED_IDS = np.array([c.id for c in LABELS], dtype=np.int64)[_ORDER]


def decode_target(rgb: np.ndarray, source: str = "target") -> np.ndarray:
    """Colour-coded HxWx3 uint8 map -> HxW int64 class ids, void = -1.

    Colours not in LABELS become void, with one warning naming ``source`` and the pixel count.
    """
    rgb = rgb.astype(np.int64)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    pos = np.clip(np.searchsorted(_SORTED_CODES, code), 0, len(_SORTED_CODES) - 1)
    known = _SORTED_CODES[pos] == code
    if not known.all():
        odd = {tuple(int(v) for v in c) for c in rgb[~known][:1000]}
        warnings.warn(
            f"{source}: {int((~known).sum())} pixels have colours outside the MSRC table "
            f"(e.g. {sorted(odd)[:3]}); they are treated as void.",
            stacklevel=2,
        )
    return np.where(known, _SORTED_IDS[pos], VOID)
