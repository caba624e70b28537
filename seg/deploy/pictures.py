"""A prediction as pictures: the colour map, the palette PNG of class ids, the photo blended with the
colours and that blend with a legend, and the legend itself beside any picture that shows class colours
(the training run's prediction grid, the notebooks' colour maps).

The palette PNG stores the ids themselves (mode P) with the class colours embedded: viewers show it
in colour, ``np.array(Image.open(path))`` reads the ids back. NumPy and Pillow only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def colorize(ids: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """HxW class ids -> HxWx3 uint8 colours (row ``i`` of ``palette`` is class ``i``'s colour); ignored
    pixels (an id outside the palette, such as void -1 or 255) are black."""
    valid = (ids >= 0) & (ids < len(palette))
    if valid.all():
        return palette[ids]
    out = np.zeros((*ids.shape, 3), np.uint8)
    out[valid] = palette[ids[valid]]
    return out


def ids_png(ids: np.ndarray, palette: np.ndarray) -> Image.Image:
    """HxW class ids as a palette image: pixel values are the ids, the palette holds the class colours."""
    if ids.size and (ids.min() < 0 or ids.max() >= len(palette)):
        raise ValueError(f"class ids must be in [0, {len(palette)}), got {ids.min()}..{ids.max()}")
    h, w = ids.shape
    image = Image.frombytes("P", (w, h), np.ascontiguousarray(ids, dtype=np.uint8).tobytes())
    image.putpalette(palette.astype(np.uint8).ravel().tolist())
    return image


def class_shares(ids: np.ndarray, num_classes: int) -> list[tuple[int, float]]:
    """(class id, share of the pixels) of every class present, largest share first."""
    counts = np.bincount(ids.ravel(), minlength=num_classes)
    present = np.flatnonzero(counts)
    order = present[np.argsort(-counts[present], kind="stable")]
    return [(int(c), counts[c] / ids.size) for c in order]


def classes_shown(num_classes: int, *ids: np.ndarray) -> list[int]:
    """The class ids that occur in any of the id maps ``ids``, in id order (ignored ids, outside
    [0, num_classes), left out): what a legend of those maps lists."""
    present = np.zeros(num_classes, bool)
    for m in ids:
        m = np.asarray(m).ravel()
        present[m[(m >= 0) & (m < num_classes)].astype(np.int64)] = True
    return np.flatnonzero(present).tolist()


def legend_font_size(height: int, width: int) -> int:
    """A legend text size that scales with the picture, within readable bounds (12 to 40 pixels)."""
    return int(np.clip(max(height, width) / 40, 12, 40))


def with_legend(
    picture: np.ndarray | Image.Image,
    rows: Sequence[tuple[int, str]],
    palette: np.ndarray,
    font_size: int | None = None,
) -> Image.Image:
    """``picture`` (HxWx3 uint8 or RGB image) with a legend panel to its right: one row per ``(class id,
    text)``, a swatch of the class colour beside the text. No rows: the picture as it is."""
    picture = Image.fromarray(picture) if isinstance(picture, np.ndarray) else picture.convert("RGB")
    if not rows:
        return picture
    w, h = picture.size
    font = ImageFont.load_default(size=font_size or legend_font_size(h, w))
    line = round(font.size * 1.5)
    measure = ImageDraw.Draw(picture)
    text_w = max(measure.textlength(t, font=font) for _, t in rows)
    panel_w = int(text_w) + 2 * line
    canvas = Image.new("RGB", (w + panel_w, max(h, line * len(rows) + line // 2)), (32, 32, 32))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, (c, text) in enumerate(rows):
        y = line // 4 + i * line
        swatch = (w + line // 4, y + line // 8, w + line // 4 + line * 3 // 4, y + line * 7 // 8)
        draw.rectangle(swatch, fill=tuple(int(v) for v in palette[c]), outline=(255, 255, 255))
        draw.text((w + line * 5 // 4, y + line // 2), text, fill=(255, 255, 255), font=font, anchor="lm")
    return canvas


def colour_map_with_legend(ids: np.ndarray, palette: np.ndarray, names: Sequence[str]) -> Image.Image:
    """The colour map of HxW class ids (ignored pixels black) with a legend of the classes it shows."""
    rows = [(c, names[c]) for c in classes_shown(len(palette), ids)]
    return with_legend(colorize(ids, palette), rows, palette)


def blend(photo: np.ndarray, ids: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The photo blended with the colours of its class ids, ``alpha`` the weight of the colours (0: the
    photo alone, 1: the colour map alone)."""
    mixed = (1 - alpha) * photo.astype(np.float32) + alpha * colorize(ids, palette).astype(np.float32)
    return Image.fromarray(np.rint(mixed).astype(np.uint8))


def overlay(
    photo: np.ndarray, ids: np.ndarray, palette: np.ndarray, names: Sequence[str], alpha: float = 0.5
) -> Image.Image:
    """The photo blended with its class colours (``alpha`` = weight of the colours), with a legend of
    the classes present and their pixel shares in a panel to its right."""
    rows = [(c, f"{names[c]} {100 * s:.1f}%") for c, s in class_shares(ids, len(palette))]
    return with_legend(blend(photo, ids, palette, alpha), rows, palette)
