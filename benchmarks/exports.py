"""The time to read a labelling tool's export, the first time (masks drawn from the JSON) and the second
(drawn masks from the cache): ``python -m benchmarks.exports --data DIR``.

``DIR`` is a flat folder data set with index masks and a ``classes.txt`` (e.g. Clothing Co-Parsing).
From its masks the benchmark writes the same data set as the tools would export it:

- ``labelme``: one JSON per photo, each class region's outlines as polygons (traced by contourpy, as
  matplotlib does; holes are left out, so a region's holes read as the region), the photo by its
  relative ``imagePath``, and ``labels.txt``;
- ``coco``: one ``annotations/instances_default.json`` with one compressed RLE per class and photo
  (pycocotools), the photos in ``images/`` (a link to DIR's).

Then, for the masks themselves and each export, it times ``FolderDataModule.prepare_data()`` (detect
the format, draw, survey every mask) with an empty cache, and again with the cache the first filled; and
how many pixels the drawn masks share with DIR's. Writes ``exports.json`` and ``exports.md`` to
``--out`` (default ``outputs/benchmarks/<date>_<time>/``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import default_out, machine, now, write_report
from seg.data.folder_data import FolderDataModule


def outlines(region: np.ndarray) -> list[list[list[float]]]:
    """The outer outlines of a boolean region as polygons [[x, y], ...] (contourpy at level 0.5)."""
    import contourpy

    padded = np.pad(region.astype(np.float32), 1)
    lines = contourpy.contour_generator(z=padded, line_type="Separate").lines(0.5)
    polygons = []
    for line in lines:
        if len(line) < 4:
            continue
        x, y = line[:, 0] - 1, line[:, 1] - 1
        if np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)) > 0:  # a hole (contourpy turns holes the other way)
            continue
        polygons.append(np.round(np.stack([x, y], 1), 2).tolist())
    return polygons


def write_exports(data: Path, work: Path, limit: int | None) -> tuple[Path, Path, list[str]]:
    """LabelMe and COCO exports of ``data``'s masks under ``work`` (see the module)."""
    from pycocotools import mask as coco_mask

    names = (data / "classes.txt").read_text().split("\n")
    names = [n.strip() for n in names if n.strip()]
    masks = sorted((data / "masks").glob("*.png"))[:limit]
    photos = {p.stem: p for p in (data / "images").iterdir()}
    lm, coco = work / "labelme", work / "coco"
    lm.mkdir(parents=True)
    (coco / "annotations").mkdir(parents=True)
    (coco / "images").symlink_to((data / "images").resolve())
    (lm / "labels.txt").write_text("__ignore__\n" + "".join(f"{n}\n" for n in names))
    images, annotations = [], []
    for k, path in enumerate(masks):
        ids = np.array(Image.open(path))
        h, w = ids.shape
        photo = photos[path.stem]
        shapes = []
        for c in np.unique(ids):
            if c == 0 or c >= len(names):
                continue
            region = ids == c
            for polygon in outlines(region):
                shapes.append(
                    {"label": names[c], "points": polygon, "group_id": None, "shape_type": "polygon", "flags": {}}
                )
            rle = coco_mask.encode(np.asfortranarray(region.astype(np.uint8)))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k + 1,
                    "category_id": int(c),
                    "segmentation": {"size": [h, w], "counts": rle["counts"].decode()},
                    "area": int(region.sum()),
                    "iscrowd": 0,
                }
            )
        doc = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imageData": None, "imageHeight": h, "imageWidth": w}
        doc["imagePath"] = os.path.relpath(photo, lm)
        (lm / f"{path.stem}.json").write_text(json.dumps(doc))
        images.append({"id": k + 1, "file_name": photo.name, "width": w, "height": h})
    categories = [{"id": c, "name": n, "supercategory": ""} for c, n in enumerate(names) if c > 0]
    categories.insert(0, {"id": 0, "name": "_background_", "supercategory": ""})
    doc = {"info": {}, "licenses": [], "images": images, "annotations": annotations, "categories": categories}
    (coco / "annotations" / "instances_default.json").write_text(json.dumps(doc))
    return lm, coco, [m.stem for m in masks]


def timed_read(root: Path, cache: Path) -> tuple[float, FolderDataModule]:
    dm = FolderDataModule(str(root), cache_dir=str(cache), allow_unseen_classes=True)
    start = time.perf_counter()
    dm.prepare_data()
    return time.perf_counter() - start, dm


def agreement(dm: FolderDataModule, data: Path) -> float:
    """The share of pixels whose drawn class is DIR's own (background included)."""
    same = total = 0
    for items in dm.catalogue.splits.values():
        for item in items:
            ours, theirs = np.array(Image.open(item.mask)), np.array(Image.open(data / "masks" / f"{item.name}.png"))
            same, total = same + int((ours == theirs).sum()), total + ours.size
    return same / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a flat folder data set with index masks")
    parser.add_argument("--limit", type=int, default=None, help="the first N masks only (a quick run)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = now()
    work = Path(tempfile.mkdtemp(prefix="seg-exports-"))
    try:
        begin = time.perf_counter()
        lm, coco, stems = write_exports(args.data, work / "exports", args.limit)
        written = time.perf_counter() - begin
        rows = {}
        sources = {"masks": args.data, "labelme": lm, "coco": coco}
        for kind, root in sources.items():
            if kind == "masks" and args.limit:
                continue  # the whole data set's masks: not comparable with a limited export
            cache = work / f"cache-{kind}"
            first, dm = timed_read(root, cache)
            second, dm2 = timed_read(root, cache)
            assert dm2.catalogue.format == dm.catalogue.format
            share = agreement(dm, args.data) if kind != "masks" else 1.0
            rows[kind] = {
                "photos": sum(s.pairs for s in dm.survey().splits.values()),
                "first_s": first,
                "second_s": second,
                "format": dm.catalogue.format,
                "pixels_as_masks": share,
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info = machine()
    lines = [
        f"Reading a labelling tool's export ({started:%Y-%m-%d}, {info['cpu']}, {info['cpu_kind']}); "
        f"exports of {len(stems)} masks of {args.data} written in {written:.0f} s",
        "",
        "| export | photos | first read (draw + survey) | second read (cache) | pixels as the masks |",
        "|---|---|---|---|---|",
    ]
    for kind, r in rows.items():
        share = f"{100 * r['pixels_as_masks']:.2f}%"
        lines.append(f"| {kind} | {r['photos']} | {r['first_s']:.1f} s | {r['second_s']:.2f} s | {share} |")
    report = {"started": started.isoformat(), "machine": info, "data": str(args.data), "rows": rows}
    write_report(args.out or default_out(started), "exports", report, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
