"""COCO's JSON as it is (instances, or panoptic-style ``segments_info`` with their PNGs), drawn into
class-id masks with pycocotools (polygons, compressed and uncompressed RLE).

- classes: the categories in id order, mapped to contiguous ids with their names kept; class 0 is a
  category named ``_background_`` / ``background`` if there is one (LabelMe's COCO export has it), else
  an added ``background`` class: every pixel no annotation covers;
- overlaps: annotations are drawn largest first (by the pixels they cover), so a smaller object over a
  larger one stays visible (a cup on a table), ties in file order;
- ``iscrowd``: a crowd region is pixels of its category (``crowd=class``, the default: semantic
  segmentation does not separate instances, and a crowd is of one class), or ignored (``crowd=ignore``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seg.core.errors import ConfigError

BACKGROUND_NAMES = ("_background_", "background")
CROWD = ("class", "ignore")  # data.coco_crowd: what an iscrowd annotation is drawn as


def is_coco(doc: Any) -> bool:
    """Whether a parsed JSON is a COCO annotation file (images, annotations, categories)."""
    return isinstance(doc, dict) and all(isinstance(doc.get(k), list) for k in ("images", "annotations", "categories"))


@dataclass
class Image:
    """One photo of a COCO file: its file, size and annotations (with their index in the file)."""

    id: Any
    file: Path
    size: tuple[int, int]  # (width, height)
    annotations: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Coco:
    """A parsed COCO file: class names (index = class id), category id -> class id, its photos, problems."""

    json: Path
    names: list[str]
    class_of: dict[Any, int]
    images: list[Image]
    problems: list[str]
    notes: list[str]
    panoptic: Path | None  # the folder of the panoptic PNGs, for a panoptic-style file


def read(path: Path, photos: Path) -> Coco:
    """A COCO file; photos are ``photos / file_name``. Problems (a missing photo, an annotation of an
    unknown photo or category, an empty one, a category never used) name the file and annotation index."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a readable COCO JSON ({e})") from e
    if not is_coco(doc):
        raise ConfigError(f"{path}: not a COCO JSON (needs 'images', 'annotations' and 'categories' lists)")
    cats = sorted(doc["categories"], key=lambda c: c["id"])
    background = next((c for c in cats if str(c.get("name")).lower() in BACKGROUND_NAMES), None)
    names = ["background" if background is None else str(background["name"])]
    class_of = {} if background is None else {background["id"]: 0}
    for c in cats:
        if c is not background:
            class_of[c["id"]] = len(names)
            names.append(str(c["name"]))
    problems: list[str] = []
    images: dict[Any, Image] = {}
    for im in doc["images"]:
        images[im["id"]] = Image(im["id"], photos / im["file_name"], (int(im["width"]), int(im["height"])))
    panoptic = any("segments_info" in a for a in doc["annotations"])
    used: set[Any] = set()
    for k, ann in enumerate(doc["annotations"]):
        image = images.get(ann.get("image_id"))
        if image is None:
            problems.append(f"{path}: annotation {k} belongs to image_id {ann.get('image_id')!r}, not in 'images'")
            continue
        if panoptic:
            for j, s in enumerate(ann.get("segments_info", [])):
                if s.get("category_id") not in class_of:
                    problems.append(
                        f"{path}: annotation {k} segment {j} has category_id {s.get('category_id')!r}, "
                        f"not in 'categories'"
                    )
                used.add(s.get("category_id"))
            image.annotations.append((k, ann))
            continue
        if ann.get("category_id") not in class_of:
            problems.append(f"{path}: annotation {k} has category_id {ann.get('category_id')!r}, not in 'categories'")
            continue
        if not ann.get("segmentation"):
            problems.append(f"{path}: annotation {k} ({image.file.name}) has an empty segmentation")
            continue
        if why := outside(ann["segmentation"], image.size):
            problems.append(f"{path}: annotation {k} ({image.file.name}) {why}")
        used.add(ann["category_id"])
        image.annotations.append((k, ann))
    for image in images.values():
        if not image.file.is_file():
            problems.append(f"{path}: the photo of image {image.id!r}, {image.file}, is missing")
    never = [names[class_of[c["id"]]] for c in cats if c["id"] not in used and c is not background]
    notes = [f"{path}: categories never used by an annotation: {', '.join(never)}"] if never else []
    folder = path.with_suffix("") if panoptic else None
    if folder is not None:
        for image in images.values():
            for k, ann in image.annotations:
                if not (folder / str(ann.get("file_name"))).is_file():
                    problems.append(
                        f"{path}: annotation {k}'s panoptic PNG {folder / str(ann.get('file_name'))} is missing"
                    )
    return Coco(path, names, class_of, list(images.values()), problems, notes, folder)


def outside(segmentation: Any, size: tuple[int, int]) -> str | None:
    """Why a polygon segmentation lies outside its photo, or an RLE does not fit it (None: it fits)."""
    w, h = size
    if isinstance(segmentation, dict):
        rle = segmentation.get("size")
        return None if list(rle or []) == [h, w] else f"has an RLE of size {rle} for a {w}x{h} photo (size is [h, w])"
    xs = [v for poly in segmentation for v in poly[0::2]]
    ys = [v for poly in segmentation for v in poly[1::2]]
    if any(len(p) < 6 for p in segmentation):
        return "has a polygon of fewer than 3 points"
    if min(xs) < -1 or min(ys) < -1 or max(xs) > w + 1 or max(ys) > h + 1:
        span = f"x {min(xs):.0f}..{max(xs):.0f}, y {min(ys):.0f}..{max(ys):.0f}"
        return f"has a polygon outside the {w}x{h} photo ({span})"
    return None


def _covered(segmentation: Any, size: tuple[int, int]) -> np.ndarray:
    """The pixels a segmentation covers (HxW bool), by pycocotools: polygons, RLE compressed or not."""
    from pycocotools import mask as coco_mask

    w, h = size
    if isinstance(segmentation, list):
        rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, h, w))
    elif isinstance(segmentation.get("counts"), list):
        rle = coco_mask.frPyObjects(segmentation, h, w)  # uncompressed RLE
    else:
        rle = {"size": segmentation["size"], "counts": segmentation["counts"]}
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode()
    return coco_mask.decode(rle).astype(bool)


def draw(coco: Coco, image: Image, ignore_index: int, crowd: str = "class") -> np.ndarray:
    """The photo's class-id mask (HxW int64): background 0, annotations largest first (see the module)."""
    w, h = image.size
    ids = np.zeros((h, w), np.int64)
    if coco.panoptic is not None:
        return _panoptic(coco, image, ids, ignore_index, crowd)
    drawn = []
    for k, ann in image.annotations:
        if outside(ann["segmentation"], image.size) and isinstance(ann["segmentation"], dict):
            continue  # an RLE of another size: reported, not drawn
        covered = _covered(ann["segmentation"], image.size)
        value = ignore_index if crowd == "ignore" and ann.get("iscrowd") else coco.class_of[ann["category_id"]]
        drawn.append((-int(covered.sum()), k, covered, value))
    for _, _, covered, value in sorted(drawn, key=lambda d: d[:2]):
        ids[covered] = value
    return ids


def _panoptic(coco: Coco, image: Image, ids: np.ndarray, ignore_index: int, crowd: str) -> np.ndarray:
    from PIL import Image as PILImage

    for _, ann in image.annotations:
        png = coco.panoptic / str(ann.get("file_name"))
        if not png.is_file():
            continue  # reported by read()
        with PILImage.open(png) as im:
            rgb = np.asarray(im.convert("RGB"), np.int64)
        segment = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
        for s in ann.get("segments_info", []):
            value = ignore_index if crowd == "ignore" and s.get("iscrowd") else coco.class_of.get(s["category_id"])
            if value is not None:
                ids[segment == s["id"]] = value
    return ids
