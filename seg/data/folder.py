"""A data set in folders, in the layouts users have: images and masks paired by file stem, split lists or
a seeded split, and its classes. Files only (NumPy + Pillow); the torch side is :mod:`seg.data.folder_data`.

- **flat**: ``ROOT/<images>/*`` + ``ROOT/<masks>/*`` (``data.images`` / ``data.masks``, default ``images``
  / ``masks``), a mask named ``<stem><mask_suffix>.<ext>`` (``data.mask_suffix``: ``_GT``, ``_mask``,
  ``_labelIds``, ...); split lists ``<splits_dir>/{train,val,test}.txt`` (stems or file names) when there
  are any, else a seeded split of the pool (``data.split_fractions``);
- **Pascal VOC**: the same with ``images=JPEGImages masks=SegmentationClass
  splits_dir=ImageSets/Segmentation`` (no ``test.txt`` there: the test stage scores val);
- **one folder pair per split**: ``data.train.images`` / ``data.train.masks`` (and ``val``, ``test``), as
  CamVid's ``train/`` + ``trainannot/`` or mmsegmentation's ``img_dir/train`` + ``ann_dir/train``.

Classes: ``data.classes`` (names), else ``ROOT/classes.txt`` (one class per line, ``name`` or ``name R G
B``; a line named ``void`` or ``ignore`` gives the colour of ignored pixels in colour masks), else found
in the masks (``class_0`` ..., colours from a palette PNG or the default palette).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from seg.core.errors import ConfigError
from seg.data.labels import LabelSet, default_palette
from seg.data.masks import LOSSY_SUFFIXES, MASK_SUFFIXES, DataFileError, binarize, read_image, read_mask
from seg.data.photos import IMAGE_SUFFIXES
from seg.data.problems import FileProblem
from seg.data.splits import SPLITS, read_split, seeded_split

CLASSES_FILE = "classes.txt"
IGNORE_NAMES = ("void", "ignore")  # classes.txt lines that name the colour of ignored pixels, not a class


@dataclass(frozen=True, order=True)
class Item:
    """One photo and its mask."""

    name: str
    image: Path
    mask: Path


@dataclass
class Catalogue:
    """The items of each split, the files that could not be paired, and how the split was made; ``labels``:
    the classes the export itself names (a CVAT labelmap, LabelMe's labels, COCO's categories), if any."""

    splits: dict[str, list[Item]]
    problems: list[str]
    how: str
    labels: LabelSet | None = None
    format: str = "masks"
    notes: list[str] = field(default_factory=list)  # what the export holds that is worth a word, not a problem


def _under(root: Path, folder: str | Path) -> Path:
    return Path(folder).expanduser() if Path(folder).expanduser().is_absolute() else root / folder


def _files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def pair(images: Path, masks: Path, mask_suffix: str = "") -> tuple[dict[str, Item], list[Path], list[Path], list[str]]:
    """Photos and masks paired by stem (a mask's stem is the photo's + ``mask_suffix``): the pairs by name,
    photos without a mask, masks without a photo, and stems that two photos (or masks) share."""
    for what, folder in (("images", images), ("masks", masks)):
        if not folder.is_dir():
            raise ConfigError(f"data.{what}: {folder} is not a folder (set data.root, data.{what}=...)")
    problems, photos, labels = [], {}, {}
    for p in _files(images, IMAGE_SUFFIXES):
        if p.stem in photos:
            problems.append(f"two photos named {p.stem}: {photos[p.stem].name} and {p.name} in {images}")
        photos.setdefault(p.stem, p)
    for p in _files(masks, MASK_SUFFIXES):
        if mask_suffix and not p.stem.endswith(mask_suffix):
            continue
        stem = p.stem[: len(p.stem) - len(mask_suffix)] if mask_suffix else p.stem
        if stem in labels and (p.suffix.lower() in LOSSY_SUFFIXES) != (labels[stem].suffix.lower() in LOSSY_SUFFIXES):
            if p.suffix.lower() not in LOSSY_SUFFIXES:  # a lossless mask beside a JPEG one: the lossless one
                labels[stem] = p
            continue
        if stem in labels:
            problems.append(f"two masks for {stem}: {labels[stem].name} and {p.name} in {masks}")
        labels.setdefault(stem, p)
    pairs = {s: Item(s, photos[s], labels[s]) for s in sorted(photos.keys() & labels.keys())}
    lonely_photos = [photos[s] for s in sorted(photos.keys() - labels.keys())]
    lonely_masks = [labels[s] for s in sorted(labels.keys() - photos.keys())]
    return pairs, lonely_photos, lonely_masks, problems


@dataclass(frozen=True)
class Layout:
    """Where a folder data set keeps its photos, masks and split lists: the ``data.*`` keys of the same
    names (``train``/``val``/``test``: ``{images, masks}`` folders of one pair per split)."""

    images: str = "images"  # photos (a folder under root, or an absolute path)
    masks: str = "masks"  # masks, named <photo stem><mask_suffix>.png (or .bmp, .tif, .gif)
    mask_suffix: str = ""  # e.g. _GT, _mask, _labelIds
    splits_dir: str | None = None  # where train.txt / val.txt / test.txt live (None: root); stems or file names
    # without split lists: a seeded split of all pairs (train, val, test), written into the run's splits/
    split_fractions: tuple[float, ...] = (0.8, 0.1, 0.1)
    split_seed: int = 0
    # one folder pair per split instead of images/masks (folders under root)
    train: Mapping[str, str | None] | None = None
    val: Mapping[str, str | None] | None = None
    test: Mapping[str, str | None] | None = None
    # the export to read (seg.data.formats): auto (detected from the files), masks, voc, labelme, coco
    format: str = "auto"
    coco_crowd: str = "class"  # a COCO iscrowd region: pixels of its class, or ignore

    @classmethod
    def of(cls, settings: dict[str, Any]) -> Layout:
        """The layout keys taken out of ``settings`` (plain values: tuples and dicts, not Hydra's)."""
        found = {f.name: settings.pop(f.name) for f in fields(cls) if f.name in settings}
        if "split_fractions" in found:
            found["split_fractions"] = tuple(float(v) for v in found["split_fractions"])
        for split in SPLITS:
            found[split] = dict(found[split]) if found.get(split) else None
        return cls(**found)


def catalogue(root: str | Path, layout: Layout = Layout()) -> Catalogue:
    """The items of each split of a folder data set, in whichever layout ``layout`` describes."""
    images, masks, mask_suffix, splits_dir = layout.images, layout.masks, layout.mask_suffix, layout.splits_dir
    split_fractions, split_seed = layout.split_fractions, layout.split_seed
    per_split = {s: getattr(layout, s) for s in SPLITS}
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ConfigError(f"data.root={root}: not a folder; point it at the folder holding your images and masks")
    folders = {s: dict(per_split.get(s) or {}) for s in SPLITS} if per_split else {}
    if any(f.get("images") or f.get("masks") for f in folders.values()):
        return _per_split(root, folders, mask_suffix)
    pairs, lonely_photos, lonely_masks, problems = pair(_under(root, images), _under(root, masks), mask_suffix)
    lists_dir = _under(root, splits_dir) if splits_dir else root
    expected = f"(photos in {_under(root, images)}, masks in {_under(root, masks)} named <name>{mask_suffix}.png)"
    listed = split_pairs(pairs, lists_dir, split_fractions, split_seed, problems, expected)
    if not listed.how.startswith("split lists"):  # every pair is used: a file without its pair is a problem
        listed.problems += lonely(lonely_photos, lonely_masks, _under(root, masks), mask_suffix)
    return listed


def lonely(photos: Sequence[Path], masks: Sequence[Path], mask_dir: Path, mask_suffix: str) -> list[FileProblem]:
    """The problems of photos without a mask and masks without a photo (grouped when there are many)."""
    where = f"each photo's mask is {mask_dir}/<its name>{mask_suffix}.png"
    return [FileProblem(p, "a photo without a mask", where, "photos") for p in photos] + [
        FileProblem(p, "a mask without a photo", "a mask is used only with the photo of its name", "masks")
        for p in masks
    ]


POOL_LIST = "default.txt"  # CVAT's one list of every item (ImageSets/Segmentation/default.txt): a pool to split


def split_pairs(
    pairs: dict[str, Item],
    lists_dir: Path,
    split_fractions: Sequence[float],
    split_seed: int,
    problems: list[str],
    expected: str = "",
) -> Catalogue:
    """``pairs`` into splits: by the split lists ``lists_dir/{train,val,test}.txt`` where there are any
    (no test list: the test stage scores val), else a seeded split of the pool (of the names
    ``lists_dir/default.txt`` lists, if that is the only list, as CVAT writes it)."""
    lists = {s: lists_dir / f"{s}.txt" for s in SPLITS if (lists_dir / f"{s}.txt").is_file()}
    if lists:
        splits: dict[str, list[Item]] = {}
        for split, path in lists.items():
            names = read_split(path, IMAGE_SUFFIXES + MASK_SUFFIXES)
            missing = [n for n in names if n not in pairs]
            if missing:
                problems.append(
                    f"{path} lists {len(missing)} names without a photo and mask pair, e.g. {missing[:3]} {expected}"
                )
            splits[split] = [pairs[n] for n in names if n in pairs]
        how = f"split lists in {lists_dir}"
        if "test" not in splits and "val" in splits:
            splits["test"], how = splits["val"], how + " (no test.txt: the test stage scores val)"
        for split in SPLITS:
            splits.setdefault(split, [])
        return Catalogue(splits, problems, how)
    pool, where = pairs, f"no split lists in {lists_dir}"
    if (lists_dir / POOL_LIST).is_file():
        names = read_split(lists_dir / POOL_LIST, IMAGE_SUFFIXES + MASK_SUFFIXES)
        missing = [n for n in names if n not in pairs]
        if missing:
            problems.append(f"{lists_dir / POOL_LIST} lists {len(missing)} names without a pair, e.g. {missing[:3]}")
        pool, where = {n: pairs[n] for n in names if n in pairs}, f"the pool listed in {lists_dir / POOL_LIST}"
    names_of = seeded_split(list(pool), split_fractions, split_seed)
    shares = "/".join(f"{f:g}" for f in split_fractions)
    return Catalogue(
        {s: [pool[n] for n in names_of[s]] for s in SPLITS},
        problems,
        f"a seeded split of the {len(pool)} pairs ({shares}, data.split_seed={split_seed}); {where}",
    )


def _per_split(root: Path, folders: Mapping[str, Mapping[str, str | None]], mask_suffix: str) -> Catalogue:
    splits, problems = {}, []
    for split in SPLITS:
        f = folders.get(split) or {}
        if not (f.get("images") and f.get("masks")):
            problems.append(
                f"data.{split}.images and data.{split}.masks: both are needed for one folder pair per split"
            )
            splits[split] = []
            continue
        pairs, lonely_photos, lonely_masks, more = pair(
            _under(root, f["images"]), _under(root, f["masks"]), mask_suffix
        )
        problems += more + lonely(lonely_photos, lonely_masks, _under(root, f["masks"]), mask_suffix)
        splits[split] = list(pairs.values())
    return Catalogue(splits, problems, "one folder pair per split")


def _is_number(token: str) -> bool:
    return token.lstrip("+-").isdigit()


def read_classes(path: Path) -> tuple[list[str], list[list[int] | None], list[tuple[int, int, int]]]:
    """``classes.txt``: names, each one's colour (or None), and the colours of ignored pixels (``void``).

    Read strictly, as a wrong table trains the wrong classes: a line ending in one, two or out-of-range
    numbers, a name used twice or a line of numbers only is named with its line number. A UTF-8 BOM (as
    Windows editors write) is not part of the first name."""
    names, colours, ignore, seen = [], [], [], {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        where, shown = f"{path}:{number}", " ".join(parts)
        tail = len(parts) - next((i for i in range(len(parts), 0, -1) if not _is_number(parts[i - 1])), 0)
        if tail in (1, 2):
            raise ConfigError(f"{where}: {shown!r}: a colour is three values R G B; write 'name' or 'name R G B'")
        rgb = parts[-3:] if tail >= 3 else None
        name = " ".join(parts[:-3] if rgb else parts)
        if not name:
            raise ConfigError(f"{where}: {shown!r} has no class name; write 'name' or 'name R G B'")
        if rgb is not None and not all(0 <= int(v) <= 255 for v in rgb):
            raise ConfigError(f"{where}: colour values must be 0..255, got {' '.join(rgb)}")
        if name.lower() in IGNORE_NAMES:
            if rgb is not None:
                ignore.append(tuple(int(v) for v in rgb))
            continue
        if name in seen:
            raise ConfigError(f"{where}: the class {name!r} is named twice (line {seen[name]} too); names are unique")
        seen[name] = number
        names.append(name)
        colours.append([int(v) for v in rgb] if rgb else None)
    if not names:
        raise ConfigError(f"{path} names no classes: write one class per line, 'name' or 'name R G B'")
    return names, colours, ignore


LABELMAP_FILE = "labelmap.txt"  # CVAT's "Segmentation mask 1.1" colour table: name:r,g,b:parts:actions


def read_labelmap(path: Path) -> tuple[list[str], list[list[int]]]:
    """CVAT's ``labelmap.txt``: the class names in order and each one's colour (``background:0,0,0::`` is a
    class, class 0, as CVAT draws unlabelled pixels)."""
    names, colours = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields_ = line.split(":")
        rgb = fields_[1].split(",") if len(fields_) > 1 else []
        if len(rgb) != 3 or not all(v.strip().isdigit() and 0 <= int(v) <= 255 for v in rgb):
            raise ConfigError(f"{path}:{number}: expected 'name:r,g,b:parts:actions', got {line.strip()!r}")
        names.append(fields_[0].strip())
        colours.append([int(v) for v in rgb])
    if not names:
        raise ConfigError(f"{path} names no classes: one 'name:r,g,b::' line per class")
    return names, colours


def label_set(
    root: str | Path,
    classes: Sequence[str] | None,
    ignore_index: int,
    found_ids: Sequence[int] = (),
    palette: np.ndarray | None = None,
    table: LabelSet | None = None,
) -> LabelSet | None:
    """The classes of a folder data set: ``data.classes``, else ``ROOT/classes.txt``, else the export's own
    ``table`` (:attr:`Catalogue.labels`), else (``found_ids``, the ids seen in the masks) ``class_0`` ..
    ``class_N``; colours from classes.txt, the export, a palette PNG's palette, or the default palette.
    None: the classes are to be found in the masks first."""
    path = Path(root).expanduser() / CLASSES_FILE
    if classes:
        names = [str(c) for c in classes]
        known = table.palette.tolist() if table is not None and table.num_classes == len(names) else None
        return _coloured(names, known or [None] * len(names), [], ignore_index, palette)
    if table is not None and not path.is_file():
        return LabelSet(table.names, table.palette, ignore_index, table.ignore_colours)
    if path.is_file():
        return _coloured(*read_classes(path), ignore_index, palette)
    ids = [i for i in found_ids if i != ignore_index]
    if not ids:
        return None
    n = max(ids) + 1
    return _coloured([f"class_{i}" for i in range(n)], [None] * n, [], ignore_index, palette)


def _coloured(names, colours, ignore, ignore_index, palette) -> LabelSet:
    n = len(names)
    fallback = palette[:n] if palette is not None and len(palette) >= n else default_palette(n)
    rows = [c if c is not None else fallback[i] for i, c in enumerate(colours)]
    return LabelSet(tuple(names), np.array(rows), ignore_index, tuple(ignore))


def compact(ids: np.ndarray) -> np.ndarray:
    """Class ids in the smallest integer type that holds them (a decoded data set kept in memory)."""
    lo, hi = (int(ids.min()), int(ids.max())) if ids.size else (0, 0)
    for dtype in (np.uint8, np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return ids.astype(dtype)
    return ids


@dataclass(frozen=True)
class FolderReader:
    """Reads an :class:`Item` as (photo HxWx3 uint8, class ids HxW); hashable, so decoded splits can be cached."""

    labels: LabelSet
    binary: int | None = None  # masks read as binary: values at or above it are class 1 (the survey decides)

    def __call__(self, item: Item) -> tuple[np.ndarray, np.ndarray]:
        image = read_image(item.image)
        ids, _, _ = read_mask(item.mask, self.labels)
        if self.binary is not None:
            ids = binarize(ids, self.binary)
        if ids.shape != image.shape[:2]:
            raise DataFileError(
                f"{item.mask}: size {ids.shape[1]}x{ids.shape[0]} differs from its photo "
                f"{item.image.name} ({image.shape[1]}x{image.shape[0]})"
            )
        return image, compact(ids)
