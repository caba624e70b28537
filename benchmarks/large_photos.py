"""A synthetic folder data set of large photos, to measure what training and whole-photo evaluation of such
photos cost in memory and time (docs/speed.md, "Large photos"):

    python -m benchmarks.large_photos OUT [--size 2048x1024] [--count 16]

Flat layout (``OUT/images/*.jpg``, ``OUT/masks/*.png`` 8-bit index masks, 255 ignored, ``OUT/classes.txt``,
split lists ``OUT/{train,val,test}.txt`` with 10/3/3 of 16 photos). The photos are random blocks of five
class colours with noise: nothing to learn from, only sizes that are real. ``OUT`` must be new or empty.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from seg.core.errors import SegError
from seg.core.files import new_folder

CLASSES = ("sky", "road", "building", "tree", "car")
COLOURS = np.array([[70, 130, 180], [128, 64, 128], [70, 70, 70], [107, 142, 35], [0, 0, 142]], np.uint8)
IGNORE = 255
BLOCK = 128  # side of the blocks that carry one class each


def write_photos(out: Path, size: tuple[int, int] = (2048, 1024), count: int = 16, seed: int = 0) -> Path:
    """``count`` photos of ``size`` (width, height) with their masks and split lists at ``out``, a new (or
    empty) folder written whole or not at all (:func:`seg.core.files.new_folder`); returns ``out``."""
    if count < 3:
        raise SegError(f"--count {count}: at least 3 photos, one for each of train, val and test")
    with new_folder(out) as tmp:
        _write(tmp, size, count, seed)
    return out


def _write(out: Path, size: tuple[int, int], count: int, seed: int) -> None:
    width, height = size
    rng = np.random.default_rng(seed)
    (out / "images").mkdir()
    (out / "masks").mkdir()
    names = [f"large_{i:03d}" for i in range(count)]
    for name in names:
        blocks = rng.integers(0, len(CLASSES), (-(-height // BLOCK), -(-width // BLOCK)))
        ids = blocks.repeat(BLOCK, 0).repeat(BLOCK, 1)[:height, :width].astype(np.uint8)
        ids[: max(height // 50, 1)] = IGNORE  # a band of ignored pixels at the top
        photo = COLOURS[np.where(ids == IGNORE, 0, ids)].astype(np.int16) + rng.integers(-20, 20, (height, width, 3))
        Image.fromarray(photo.clip(0, 255).astype(np.uint8)).save(out / "images" / f"{name}.jpg", quality=90)
        Image.fromarray(ids, mode="L").save(out / "masks" / f"{name}.png")
    n_eval = max(count * 3 // 16, 1)
    splits = {"train": names[: count - 2 * n_eval], "val": names[count - 2 * n_eval : count - n_eval]}
    splits["test"] = names[count - n_eval :]
    for split, members in splits.items():
        (out / f"{split}.txt").write_text("".join(f"{n}\n" for n in members))
    (out / "classes.txt").write_text("".join(f"{c}\n" for c in CLASSES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder to write (new or empty)")
    parser.add_argument("--size", default="2048x1024", help="WIDTHxHEIGHT of every photo")
    parser.add_argument("--count", type=int, default=16, help="photos in all (train 10/16, val and test 3/16 each)")
    args = parser.parse_args()
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        sys.exit(f"error: --size {args.size}: give WIDTHxHEIGHT, e.g. 2048x1024")
    try:
        out = write_photos(args.out, (width, height), args.count)
    except SegError as e:
        sys.exit(f"error: {e}")
    print(f"wrote {out}; train on it with: python -m seg.train data=folder data.root={out}")


if __name__ == "__main__":
    main()
