"""Labelling tools' exports written as the tools write them (LabelMe JSONs, COCO instances JSON, CVAT's
"Segmentation mask 1.1"), for small photos whose colours encode their classes, and the ids each should
read as."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("sky", "road", "car")
COLOURS = np.array([[40, 40, 200], [90, 90, 90], [200, 40, 40]], np.uint8)  # photo colour of each class
SIZES = ((64, 48), (48, 64), (56, 56), (64, 40), (40, 56), (72, 48))


def scene(i: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """A photo and its ids: background (0) above, road (2) below the middle, sky (1) in the top left
    quarter, a car (3) box on the road; the photo paints each class its colour plus noise."""
    ids = np.zeros((h, w), np.int64)
    ids[: h // 4, : w // 2] = 1
    ids[h // 2 :] = 2
    x0 = (4 + 3 * i) % (w // 2)
    ids[h // 2 + 2 : h - 4, x0 : x0 + w // 3] = 3
    colours = np.vstack([[120, 160, 120], COLOURS])
    rng = np.random.default_rng(i)
    photo = colours[ids].astype(np.int16) + rng.integers(-10, 10, (h, w, 3))
    return photo.clip(0, 255).astype(np.uint8), ids


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def labelme_shapes(i: int, w: int, h: int) -> list[dict]:
    """The scene's shapes as LabelMe saves them: sky as a rectangle, road as a polygon, the car as a
    polygon; a point (not an area) and an __ignore__ line at the bottom."""
    x0 = (4 + 3 * i) % (w // 2)

    def shape(label, points, kind="polygon"):
        return {"label": label, "points": points, "group_id": None, "description": "", "shape_type": kind, "flags": {}}

    return [
        shape("sky", [[0, 0], [w // 2 - 1, h // 4 - 1]], "rectangle"),
        shape("road", _rect(0, h // 2, w - 1, h - 1)),
        shape("car", _rect(x0, h // 2 + 2, x0 + w // 3 - 1, h - 5)),
        shape("car", [[1.0, 1.0]], "point"),
        shape("__ignore__", [[0, h - 1], [w - 1, h - 1]], "line"),
    ]


def write_labelme(root: Path, n: int = 6, labels_txt: bool = True, embed: tuple[int, ...] = ()) -> Path:
    """A LabelMe folder: photo_NNN.jpg + photo_NNN.json side by side (``embed``: those photos only in the
    JSON's imageData, as LabelMe saves with "Save image data"), and LabelMe's labels.txt."""
    root.mkdir(parents=True)
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        photo, _ = scene(i, w, h)
        name = f"photo_{i:03d}"
        buf = io.BytesIO()
        Image.fromarray(photo).save(buf, format="PNG")
        doc = {
            "version": "5.4.1",
            "flags": {},
            "shapes": labelme_shapes(i, w, h),
            "imagePath": f"{name}.png",
            "imageData": base64.b64encode(buf.getvalue()).decode() if i in embed else None,
            "imageHeight": h,
            "imageWidth": w,
        }
        if i not in embed:
            (root / f"{name}.png").write_bytes(buf.getvalue())
        (root / f"{name}.json").write_text(json.dumps(doc, indent=2))
    if labels_txt:
        (root / "labels.txt").write_text("__ignore__\n_background_\n" + "".join(f"{c}\n" for c in CLASSES))
    return root


def labelme_ids(i: int) -> np.ndarray:
    """What the LabelMe photo ``i`` reads as: the scene, with the __ignore__ line on its last row (10 px
    wide: the last 5 rows) as 255."""
    w, h = SIZES[i % len(SIZES)]
    ids = scene(i, w, h)[1]
    ids[h - 5 :] = 255
    return ids


def write_coco(root: Path, n: int = 6, rle: tuple[int, ...] = ()) -> Path:
    """A COCO instances export as CVAT writes it: ``annotations/instances_default.json`` + ``images/``;
    sky, road and car as polygons (``rle``: those photos' cars as compressed RLE)."""
    from pycocotools import mask as coco_mask

    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, annotations = [], []
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        photo, ids = scene(i, w, h)
        Image.fromarray(photo).save(root / "images" / f"photo_{i:03d}.png")
        images.append({"id": i + 1, "width": w, "height": h, "file_name": f"photo_{i:03d}.png", "license": 0})
        for cat in (1, 2, 3):
            ys, xs = np.nonzero(ids == cat)
            if cat == 3 and i in rle:
                seg = coco_mask.encode(np.asfortranarray((ids == cat).astype(np.uint8)))
                seg = {"size": seg["size"], "counts": seg["counts"].decode()}
            else:  # a box polygon around the region (pixel edges: x0..x1+1)
                seg = [[float(v) for v in np.ravel(_rect(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))]]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": cat,
                    "segmentation": seg,
                    "area": float(len(xs)),
                    "bbox": [float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)],
                    "iscrowd": 0,
                    "attributes": {"occluded": False},
                }
            )
    categories = [{"id": k + 1, "name": c, "supercategory": ""} for k, c in enumerate(CLASSES)]
    doc = {"licenses": [{"name": "", "id": 0, "url": ""}], "info": {}, "categories": categories}
    doc |= {"images": images, "annotations": annotations}
    (root / "annotations" / "instances_default.json").write_text(json.dumps(doc))
    return root


LABELMAP = {"background": (0, 0, 0), "sky": (51, 221, 255), "road": (250, 50, 83), "car": (61, 245, 61)}


def write_cvat_masks(root: Path, n: int = 6) -> Path:
    """CVAT's "Segmentation mask 1.1" export: labelmap.txt, JPEGImages/, SegmentationClass/ (RGB colour
    PNGs), SegmentationObject/, ImageSets/Segmentation/default.txt (one list of everything)."""
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    colours = np.array(list(LABELMAP.values()), np.uint8)
    rows = "".join(f"{k}:{','.join(map(str, v))}::\n" for k, v in LABELMAP.items())
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n" + rows)
    names = []
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        photo, ids = scene(i, w, h)
        name = f"frame_{i:06d}"
        Image.fromarray(photo).save(root / "JPEGImages" / f"{name}.jpg", quality=95)
        Image.fromarray(colours[ids]).save(root / "SegmentationClass" / f"{name}.png")
        Image.fromarray(colours[(ids > 0).astype(int)]).save(root / "SegmentationObject" / f"{name}.png")
        names.append(name)
    (root / "ImageSets" / "Segmentation" / "default.txt").write_text("".join(f"{n}\n" for n in names))
    return root


def write_binary(root: Path, n: int = 6, values: tuple[int, int] = (0, 255), suffix: str = ".png") -> Path:
    """Black-and-white masks (``values``: background, foreground) under masks/, photos under images/."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        photo, ids = scene(i, w, h)
        Image.fromarray(photo).save(root / "images" / f"photo_{i:03d}.png")
        mask = np.where(ids == 3, values[1], values[0]).astype(np.uint8)
        Image.fromarray(mask).save(
            root / "masks" / f"photo_{i:03d}{suffix}", **({"quality": 75} if suffix == ".jpg" else {})
        )
    return root


def write_coco_panoptic(root: Path, n: int = 4) -> Path:
    """A COCO panoptic export: ``annotations/panoptic_default.json`` (segments_info per photo) and its PNGs
    in ``annotations/panoptic_default/`` (segment id = R + 256 G + 256^2 B), photos in ``images/``."""
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "panoptic_default").mkdir(parents=True)
    images, annotations = [], []
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        photo, ids = scene(i, w, h)
        Image.fromarray(photo).save(root / "images" / f"photo_{i:03d}.jpg", quality=95)
        segment = np.where(ids > 0, ids * 1000 + 7, 0)  # ids 1007, 2007, 3007; 0 = unlabelled
        rgb = np.stack([segment % 256, segment // 256 % 256, segment // 65536], -1).astype(np.uint8)
        Image.fromarray(rgb).save(root / "annotations" / "panoptic_default" / f"photo_{i:03d}.png")
        images.append({"id": i, "width": w, "height": h, "file_name": f"photo_{i:03d}.jpg"})
        infos = [{"id": int(c) * 1000 + 7, "category_id": int(c), "iscrowd": 0} for c in np.unique(ids) if c > 0]
        annotations.append({"image_id": i, "file_name": f"photo_{i:03d}.png", "segments_info": infos})
    categories = [{"id": k + 1, "name": c, "isthing": int(c == "car")} for k, c in enumerate(CLASSES)]
    doc = {"info": {}, "images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / "panoptic_default.json").write_text(json.dumps(doc))
    return root
