"""LabelMe's export as it is: one JSON per photo, its shapes drawn into a class-id mask the way LabelMe's
own conversion (``labelme2voc``) draws them, so that the masks equal LabelMe's pixel for pixel.

- shapes are drawn in file order, a later one over an earlier one (as LabelMe shows them); polygons,
  rectangles, circles, lines and line strips (10 pixels wide, LabelMe's width) are areas; points are
  not (a point marks a spot, it covers no pixels), and neither are shapes with too few points;
- the photo is ``imagePath`` relative to the JSON, else the embedded ``imageData``;
- classes: ``labels.txt`` (LabelMe's own list: ``__ignore__`` is the ignore index, ``_background_``
  class 0, then one class per line), else ``_background_`` and the JSONs' labels in sorted order.

Pillow's ``ImageDraw`` draws the shapes, as in LabelMe. NumPy and Pillow only.
"""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from seg.core.errors import ConfigError
from seg.data.photos import UNREADABLE, to_rgb

LABELS_FILE = "labels.txt"
IGNORE_LABEL = "__ignore__"  # LabelMe's name for pixels no loss counts
BACKGROUND_LABEL = "_background_"  # LabelMe's class 0: every pixel no shape covers
LINE_WIDTH = 10  # LabelMe's shape_to_mask(line_width=10)
AREAS = ("polygon", "rectangle", "circle", "line", "linestrip")  # shape types that cover pixels


def is_labelme(doc: Any) -> bool:
    """Whether a parsed JSON is a LabelMe annotation (a list of shapes and the photo it belongs to)."""
    return isinstance(doc, dict) and isinstance(doc.get("shapes"), list) and ("imagePath" in doc or "imageData" in doc)


def read_labels(path: Path) -> list[str]:
    """``labels.txt``: the class names in order (``__ignore__`` dropped: it is the ignore index, not a class)."""
    names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    names = [n for n in names if n != IGNORE_LABEL]
    if not names:
        raise ConfigError(f"{path} names no classes: one label per line, _background_ first")
    return names


@dataclass(frozen=True)
class Annotation:
    """One LabelMe JSON: where its photo is (a file, or the embedded bytes), its size and its shapes."""

    json: Path
    photo: Path | None
    embedded: bytes | None
    size: tuple[int, int] | None  # (width, height) as the JSON states it
    shapes: list[dict[str, Any]]


def read_annotation(path: Path) -> Annotation:
    """A LabelMe JSON; a file that is not one raises ConfigError naming it."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a readable LabelMe JSON ({e})") from e
    if not is_labelme(doc):
        raise ConfigError(f"{path}: not a LabelMe JSON (no 'shapes' and 'imagePath')")
    photo = (path.parent / doc["imagePath"]) if doc.get("imagePath") else None
    embedded = base64.b64decode(doc["imageData"]) if doc.get("imageData") else None
    w, h = doc.get("imageWidth"), doc.get("imageHeight")
    size = (int(w), int(h)) if isinstance(w, int) and isinstance(h, int) else None
    return Annotation(path, photo, embedded, size, doc["shapes"])


def read_photo(ann: Annotation) -> np.ndarray:
    """The annotation's photo as HxWx3 uint8: the file ``imagePath`` names, else the embedded ``imageData``."""
    source: Any = ann.photo if ann.photo is not None and ann.photo.is_file() else None
    if source is None and ann.embedded is not None:
        source = io.BytesIO(ann.embedded)
    if source is None:
        raise ConfigError(f"{ann.json}: its photo {ann.photo} is missing and the JSON embeds none (imageData)")
    try:
        with Image.open(source) as im:
            return to_rgb(im)
    except UNREADABLE as e:
        raise ConfigError(f"{ann.json}: its photo cannot be decoded ({type(e).__name__}: {e})") from e


def shape_problem(shape: Any, size: tuple[int, int]) -> str | None:
    """Why a shape covers no pixels or cannot be drawn (None: it is fine)."""
    if not isinstance(shape, dict) or not isinstance(shape.get("label"), str):
        return "has no label"
    kind, points = shape.get("shape_type") or "polygon", shape.get("points")
    if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 for p in points):
        return "has no points [[x, y], ...]"
    need = {"polygon": 3, "rectangle": 2, "circle": 2, "line": 2, "linestrip": 2}.get(kind)
    if need is None:
        return None if kind == "point" else f"has an unknown shape_type {kind!r}"
    if len(points) < need:
        return f"is a {kind} of {len(points)} points (needs {need}): it covers no pixels"
    w, h = size
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if max(xs) < 0 or max(ys) < 0 or min(xs) >= w or min(ys) >= h:
        return f"lies outside the {w}x{h} photo"
    return None


def shape_mask(shape: dict[str, Any], size: tuple[int, int]) -> np.ndarray | None:
    """The pixels a shape covers (HxW bool), drawn as LabelMe's ``shape_to_mask`` draws them; None for a point."""
    kind = shape.get("shape_type") or "polygon"
    xy = [tuple(p) for p in shape["points"]]
    if kind == "point":
        return None
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    if kind == "circle":
        (cx, cy), (px, py) = xy[:2]
        d = math.hypot(cx - px, cy - py)
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = xy[:2]
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=1, fill=1)
    elif kind in ("line", "linestrip"):
        draw.line(xy=xy, fill=1, width=LINE_WIDTH)
    else:
        draw.polygon(xy=xy, outline=1, fill=1)
    return np.array(mask, dtype=bool)


def draw(ann: Annotation, size: tuple[int, int], ids_of: dict[str, int], ignore_index: int) -> np.ndarray:
    """The annotation's class-id mask (HxW int64, ``size`` = (w, h)): background 0, each shape in file order
    over the earlier ones, ``__ignore__`` shapes as ``ignore_index``. Shapes with a problem are skipped
    (:func:`shape_problem` reports them)."""
    ids = np.zeros((size[1], size[0]), np.int64)
    for shape in ann.shapes:
        if shape_problem(shape, size) is not None:
            continue
        label = shape["label"]
        value = ignore_index if label == IGNORE_LABEL else ids_of.get(label)
        covered = shape_mask(shape, size)
        if value is not None and covered is not None:
            ids[covered] = value
    return ids
