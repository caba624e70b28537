"""MSRC-v2 written out as a folder data set, in each layout and mask kind that ``data=folder`` reads:

    python -m benchmarks.msrc_folders OUT [--layout flat|voc|per_split] [--masks index|index16|palette|rgb]

The photos are copied byte for byte (BMP); the masks are the archive's targets as an 8-bit index PNG
(``index``: void becomes 255), a 16-bit index PNG (``index16``), a palette PNG with the MSRC colours
(``palette``: index = class id, void 255 drawn black), or the archive's own colour BMPs with a
``classes.txt`` colour table (``rgb``). ``flat`` and ``voc`` keep the archive's split lists and their
order; ``per_split`` is one folder pair per split (CamVid's ``train/`` + ``trainannot/``). Trained with the
same settings, the folder form gives what ``data=msrc`` gives (tests/data/test_folder.py; docs/results.md).
``--scale N`` enlarges every photo N times (bilinear) and its mask with it (nearest): the same scenes as
photos far larger than the training scale (docs/speed.md, "Tiles for large photos"). ``--mosaic N``
instead lays each split's photos out N x N to a photo (each resized to a 320x224 cell, masks nearest):
large photos whose objects keep the training scale.
The archive comes from ``--url`` (default ``$SEG_DATA_URL``, else the public archive) into ``--data-dir``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from seg.core.errors import SegError
from seg.core.files import new_folder
from seg.data.archive import DEFAULT_SHA256, DEFAULT_URL, item_paths, load_item, prepare_data
from seg.data.labels import LABELS, MSRC, VOID
from seg.data.splits import SPLITS, read_split

LAYOUTS = {  # where photos, masks and split lists go: (photos, masks, lists) per layout, {split} filled in
    "flat": ("images", "masks", "."),
    "voc": ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"),
    "per_split": ("{split}", "{split}annot", None),
}
MASKS = ("index", "index16", "palette", "rgb")
IGNORE = 255  # MSRC's void in the index masks


def _mask(ids: np.ndarray, kind: str) -> Image.Image:
    ids = np.where(ids == VOID, IGNORE, ids)
    if kind == "index16":
        return Image.fromarray(ids.astype(np.uint16))
    image = Image.fromarray(ids.astype(np.uint8), mode="L")
    if kind == "palette":
        image = image.convert("P")
        palette = np.zeros((256, 3), np.uint8)
        palette[: MSRC.num_classes] = MSRC.palette
        image.putpalette(palette.ravel().tolist())
    return image


def write_folder(msrc_root: Path, out: Path, layout: str = "flat", masks: str = "palette", scale: int = 1) -> Path:
    """The extracted archive at ``msrc_root`` as a folder data set at ``out`` (photos and masks enlarged
    ``scale`` times), a new (or empty) folder written whole or not at all (:func:`seg.core.files.new_folder`);
    returns ``out``."""
    with new_folder(out) as tmp:
        _write(msrc_root, tmp, layout, masks, scale)
    return out


def _enlarged(path: Path, out: Path, scale: int, resample: Image.Resampling) -> None:
    with Image.open(path) as image:
        image.resize((image.width * scale, image.height * scale), resample).save(out)


CELL = (320, 224)  # width, height of one photo in a mosaic


def _write_mosaics(msrc_root: Path, out: Path, n: int) -> None:
    """Each split's photos n x n to a mosaic (flat layout, index masks), in the split's order; the
    photos left over after the last full mosaic are left out."""
    (out / "images").mkdir()
    (out / "masks").mkdir()
    for split in SPLITS:
        names, written = read_split(msrc_root / f"{split}.txt"), []
        for k in range(len(names) // (n * n)):
            photo = Image.new("RGB", (CELL[0] * n, CELL[1] * n))
            ids = np.full((CELL[1] * n, CELL[0] * n), IGNORE, np.uint8)
            for j, name in enumerate(names[k * n * n : (k + 1) * n * n]):
                x, y = CELL[0] * (j % n), CELL[1] * (j // n)
                with Image.open(item_paths(msrc_root, name)[0]) as image:
                    photo.paste(image.convert("RGB").resize(CELL, Image.Resampling.BILINEAR), (x, y))
                target = np.where((t := load_item(msrc_root, name)[1]) == VOID, IGNORE, t).astype(np.uint8)
                ids[y : y + CELL[1], x : x + CELL[0]] = np.asarray(
                    Image.fromarray(target).resize(CELL, Image.Resampling.NEAREST)
                )
            stem = f"{split}_mosaic_{k:03d}"
            photo.save(out / "images" / f"{stem}.png")
            Image.fromarray(ids, mode="L").save(out / "masks" / f"{stem}.png")
            written.append(stem)
        (out / f"{split}.txt").write_text("".join(f"{s}\n" for s in written))
    lines = [f"{c.name} {c.rgb[0]} {c.rgb[1]} {c.rgb[2]}" for c in LABELS]
    (out / "classes.txt").write_text("\n".join(lines) + "\n")


def write_mosaics(msrc_root: Path, out: Path, n: int) -> Path:
    """:func:`_write_mosaics` into a new (or empty) folder, written whole or not at all; returns ``out``."""
    with new_folder(out) as tmp:
        _write_mosaics(msrc_root, tmp, n)
    return out


def _write(msrc_root: Path, out: Path, layout: str, masks: str, scale: int = 1) -> None:
    photos_dir, masks_dir, lists_dir = LAYOUTS[layout]
    for split in SPLITS:
        names = read_split(msrc_root / f"{split}.txt")
        photos = out / photos_dir.format(split=split)
        labels = out / masks_dir.format(split=split)
        photos.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for name in names:
            image, target = item_paths(msrc_root, name)
            if scale == 1:
                shutil.copyfile(image, photos / image.name)
            else:
                _enlarged(image, photos / image.name, scale, Image.Resampling.BILINEAR)
            if masks == "rgb" and scale == 1:
                shutil.copyfile(target, labels / f"{name}.bmp")
            elif masks == "rgb":
                _enlarged(target, labels / f"{name}.bmp", scale, Image.Resampling.NEAREST)
            else:
                ids = load_item(msrc_root, name)[1].astype(np.int64).repeat(scale, 0).repeat(scale, 1)
                _mask(ids, masks).save(labels / f"{name}.png")
        if lists_dir is not None:
            (out / lists_dir).mkdir(parents=True, exist_ok=True)
            (out / lists_dir / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    lines = [f"{c.name} {c.rgb[0]} {c.rgb[1]} {c.rgb[2]}" for c in LABELS]  # void first: the ignored colour
    (out / "classes.txt").write_text("\n".join(lines) + "\n")


def overrides(root: Path, layout: str) -> list[str]:
    """The ``data=folder`` overrides that read what :func:`write_folder` wrote (MSRC's void ignored, its
    classes known: horse is in no training photo)."""
    photos, masks, lists = LAYOUTS[layout]
    common = ["data=folder", f"data.root={root}", f"data.ignore_index={IGNORE}", "data.allow_unseen_classes=true"]
    # MSRC's own crops and batch (data=msrc's), not the ones a folder data set's auto recipe would choose
    common += ["data.crop_size=240", "data.batch_size=8", "data.augment_scale=[0.75,1.25]"]
    if layout == "per_split":
        return common + [
            f"data.{s}.{k}={d.format(split=s)}" for s in SPLITS for k, d in (("images", photos), ("masks", masks))
        ]
    return [*common, f"data.images={photos}", f"data.masks={masks}", f"data.splits_dir={lists}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder to write (new or empty)")
    parser.add_argument("--layout", choices=list(LAYOUTS), default="flat")
    parser.add_argument("--masks", choices=MASKS, default="palette")
    parser.add_argument("--scale", type=int, default=1, help="enlarge photos (bilinear) and masks (nearest) N times")
    parser.add_argument("--mosaic", type=int, default=0, help="N: N x N photos to a photo (flat layout, index masks)")
    parser.add_argument("--url", default=os.environ.get("SEG_DATA_URL", DEFAULT_URL))
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args()
    msrc = prepare_data(args.url, args.data_dir, DEFAULT_SHA256 if args.url == DEFAULT_URL else None)
    try:
        if args.mosaic:
            out, args.layout = write_mosaics(msrc, args.out, args.mosaic), "flat"
        else:
            out = write_folder(msrc, args.out, args.layout, args.masks, args.scale)
    except SegError as e:
        sys.exit(f"error: {e}")
    print(f"wrote {out}; train on it with: python -m seg.train {' '.join(overrides(out, args.layout))}")


if __name__ == "__main__":
    main()
