"""Which labelling tool's export a folder holds, and its items as photo + mask pairs: masks as they are
(index, palette, colour, binary), Pascal VOC / CVAT "Segmentation mask 1.1", and the JSON exports
(LabelMe, COCO) drawn into masks once, cached by the annotation files.

Detection (``data.format=auto``) looks at ``data.root`` only:

- ``labelmap.txt`` or a ``SegmentationClass/`` folder: ``voc`` (CVAT's labelmap is the colour table;
  ``JPEGImages/``, ``SegmentationClass/``, ``ImageSets/Segmentation/*.txt`` the photos, masks and splits);
- a JSON (in the root, ``annotations/`` or one folder down) with ``shapes``: ``labelme``; with
  ``images``, ``annotations`` and ``categories``: ``coco``;
- otherwise ``masks`` (:mod:`seg.data.folder`'s layouts). Two of these at once is an error asking for
  ``data.format=``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from seg.core.errors import ConfigError
from seg.core.files import atomic_write, unwritable
from seg.data import coco, labelme
from seg.data.folder import (
    CLASSES_FILE,
    LABELMAP_FILE,
    Catalogue,
    Item,
    Layout,
    catalogue,
    read_labelmap,
    split_pairs,
)
from seg.data.labels import LabelSet, default_palette
from seg.data.photos import IMAGE_SUFFIXES, PhotoError, photo_sizes
from seg.data.splits import SPLITS

FORMATS = ("auto", "masks", "voc", "labelme", "coco")
VOC = Layout(images="JPEGImages", masks="SegmentationClass", splits_dir="ImageSets/Segmentation")
DRAWN_VERSION = b"drawn masks 1\n"  # part of every cache key: a change in how shapes are drawn redraws them


def _jsons(root: Path) -> list[Path]:
    """The JSON files detection and reading look at: the root, ``annotations/`` and one folder down."""
    found = [*root.glob("*.json"), *root.glob("*/*.json")]
    return sorted({p for p in found if p.is_file()})


SNIFF = 1 << 14  # bytes of a JSON read to tell its kind (parsed if whole; else told by the keys in them)


def _kind(path: Path) -> str | None:
    """``labelme``, ``coco`` or None, by the JSON's keys (a larger file by the keys in its first 16 KiB, so
    that a second run does not parse every annotation: LabelMe writes ``shapes`` first, before the photo
    it may embed; COCO writers put ``images`` / ``categories`` early)."""
    try:
        with path.open("rb") as f:
            head = f.read(SNIFF)
    except OSError:
        return None
    if len(head) < SNIFF:
        try:
            doc = json.loads(head.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        return "labelme" if labelme.is_labelme(doc) else "coco" if coco.is_coco(doc) else None
    text = head.decode("utf-8", errors="ignore")
    return "labelme" if '"shapes"' in text else "coco" if '"images"' in text or '"categories"' in text else None


def json_kinds(root: Path) -> dict[str, list[Path]]:
    """The LabelMe and COCO JSON files detection looks at, by kind (each file read once)."""
    kinds: dict[str, list[Path]] = {}
    for path in _jsons(root):
        kind = _kind(path)
        if kind is not None:
            kinds.setdefault(kind, []).append(path)
    return kinds


def detect(root: Path, kinds: dict[str, list[Path]] | None = None) -> tuple[str, str]:
    """The export ``root`` holds and what showed it (see the module); ConfigError when it holds two.
    ``kinds``: :func:`json_kinds` of ``root``, if already read."""
    seen: dict[str, str] = {}
    if (root / LABELMAP_FILE).is_file() or (root / VOC.masks).is_dir():
        seen["voc"] = f"{LABELMAP_FILE} / {VOC.masks}/"
    kinds = json_kinds(root) if kinds is None else kinds
    for kind, paths in kinds.items():
        seen[kind] = f"{paths[0].relative_to(root)}" + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")
    if (root / Layout().images).is_dir() and (root / Layout().masks).is_dir():
        seen["masks"] = f"{Layout().images}/ and {Layout().masks}/"
    if len(seen) > 1:
        found = "; ".join(f"{k} ({v})" for k, v in seen.items())
        raise ConfigError(
            f"data.root={root} holds more than one kind of export: {found}; "
            f"name the one to read with data.format={'|'.join(seen)}"
        )
    return next(iter(seen.items()), ("masks", "no export found: masks in folders"))


def read_catalogue(
    root: str | Path, layout: Layout | None = None, cache_dir: str | Path | None = None, ignore_index: int = 255
) -> Catalogue:
    """The items of every split of the export at ``root`` (``layout.format``, or detected), as photo + mask
    pairs (JSON exports drawn into masks in ``cache_dir``, once per version of their files)."""
    root, layout = Path(root).expanduser(), layout or Layout()
    if not root.is_dir():
        raise ConfigError(f"data.root={root}: not a folder; point it at the folder holding your images and masks")
    kinds = json_kinds(root) if layout.format in ("auto", "labelme", "coco") else {}
    found = layout.format if layout.format != "auto" else detect(root, kinds)[0]
    if found == "voc":
        plain = Layout()
        if (layout.images, layout.masks, layout.splits_dir) == (plain.images, plain.masks, plain.splits_dir):
            layout = replace(layout, images=VOC.images, masks=VOC.masks, splits_dir=VOC.splits_dir)
        cat = catalogue(root, layout)
        labelmap = root / LABELMAP_FILE
        if labelmap.is_file():
            names, colours = read_labelmap(labelmap)
            cat.labels = LabelSet(tuple(names), np.array(colours), ignore_index)
        cat.format = "voc"
        return cat
    if found == "masks":
        return catalogue(root, layout)
    drawn = _drawn(root, found, kinds.get(found, []), cache_dir, ignore_index, layout.coco_crowd)
    return _split(root, drawn, layout)


def _split(root: Path, drawn: dict, layout: Layout) -> Catalogue:
    pairs = {n: Item(n, Path(i), Path(m)) for n, (i, m) in drawn["pairs"].items()}
    problems = list(drawn["problems"])
    groups = drawn.get("splits")
    if groups:  # COCO files named for their split (instances_train.json, ...)
        splits = {s: [pairs[n] for n in groups.get(s, []) if n in pairs] for s in SPLITS}
        how = "the COCO files named for each split"
        if not splits["test"] and splits["val"]:
            splits["test"], how = splits["val"], how + " (no test file: the test stage scores val)"
        cat = Catalogue(splits, problems, how)
    else:
        lists_dir = (root / layout.splits_dir) if layout.splits_dir else root
        cat = split_pairs(pairs, lists_dir, layout.split_fractions, layout.split_seed, problems)
    cat.labels = LabelSet.from_dict(drawn["labels"])
    cat.notes = list(drawn.get("notes", []))
    cat.format = drawn["format"]
    return cat


def _fingerprint(files: list[Path], settings: dict) -> str:
    h = hashlib.sha1(DRAWN_VERSION + json.dumps(settings, sort_keys=True).encode())
    for p in sorted(files):
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _drawn(
    root: Path, kind: str, jsons: list[Path], cache_dir: str | Path | None, ignore_index: int, crowd: str
) -> dict:
    """The export's pairs, classes and problems (its ``jsons``), its masks drawn into the cache (read back
    when the annotation files, photos and settings are unchanged)."""
    if not jsons:
        raise ConfigError(f"data.format={kind}: no {kind} JSON in {root} (looked in it, annotations/, one folder down)")
    tables = [root / n for n in (labelme.LABELS_FILE, CLASSES_FILE) if (root / n).is_file()]
    photos = [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    settings = {"format": kind, "ignore_index": ignore_index, "crowd": crowd, "root": str(root)}
    if cache_dir is None:
        raise ConfigError(f"data.format={kind}: set data.cache_dir, the folder its masks are drawn into")
    folder = Path(cache_dir) / f"drawn-{kind}-{_fingerprint(jsons + tables + photos, settings)}"
    index = folder / "drawn.json"
    if index.is_file():
        return json.loads(index.read_text())
    if reason := unwritable(folder):  # a read-only cache folder: the masks would have nowhere to go
        raise ConfigError(
            f"data.cache_dir={cache_dir}: cannot write the masks drawn from the {kind} export there "
            f"({reason}); set data.cache_dir to a folder you can write (nothing is written into {root})"
        )
    if kind == "labelme":
        drawn = _draw_labelme(root, jsons, folder, ignore_index)
    else:
        drawn = _draw_coco(root, jsons, folder, ignore_index, crowd)
    drawn["format"] = kind
    if not drawn["problems"]:  # an export with problems is read again once fixed
        with contextlib.suppress(OSError):
            atomic_write(index, json.dumps(drawn, indent=1) + "\n")
    return drawn


def _save(ids: np.ndarray, path: Path) -> None:
    """A drawn mask as an index PNG (8-bit, or 16-bit for ids above 255), written atomically."""
    import io

    buf = io.BytesIO()
    im = Image.fromarray(ids.astype(np.uint8)) if ids.max(initial=0) < 256 else Image.fromarray(ids.astype(np.uint16))
    im.save(buf, format="PNG")
    atomic_write(path, buf.getvalue())


def _draw_labelme(root: Path, jsons: list[Path], folder: Path, ignore_index: int) -> dict:
    table = root / labelme.LABELS_FILE
    anns, problems, empty = [], [], []
    for path in jsons:
        try:
            anns.append(labelme.read_annotation(path))
        except ConfigError as e:
            problems.append(str(e))
    if table.is_file():
        names, how = labelme.read_labels(table), f"{table}"
    else:
        labels = {s.get("label") for a in anns for s in a.shapes if isinstance(s, dict)}
        labels -= {labelme.IGNORE_LABEL, labelme.BACKGROUND_LABEL, None}
        names, how = [labelme.BACKGROUND_LABEL, *sorted(labels)], "the JSONs' labels, sorted"
    ids_of = {n: i for i, n in enumerate(names)}
    pairs: dict[str, list[str]] = {}
    for ann in anns:
        name = ann.json.stem
        if name in pairs:
            problems.append(f"{ann.json}: a second JSON named {name} (names must be unique)")
            continue
        try:
            photo, size = _photo_of(ann, folder)
        except (ConfigError, PhotoError) as e:
            problems.append(str(e))
            continue
        if ann.size is not None and ann.size != size:
            problems.append(
                f"{ann.json}: imageWidth x imageHeight {ann.size[0]}x{ann.size[1]} differs from its photo "
                f"{photo} ({size[0]}x{size[1]})"
            )
        for k, shape in enumerate(ann.shapes):
            if why := labelme.shape_problem(shape, size):
                label = shape.get("label") if isinstance(shape, dict) else "?"
                problems.append(f"{ann.json}: shape {k} ({label}) {why}")
            elif shape["label"] not in ids_of and shape["label"] != labelme.IGNORE_LABEL:
                problems.append(
                    f"{ann.json}: shape {k} has the label {shape['label']!r}, not in {how}; add it to {table.name}"
                )
        if not any(isinstance(s, dict) and (s.get("shape_type") or "polygon") != "point" for s in ann.shapes):
            empty.append(ann.json)  # a photo of background only is real data (LabelMe's own conversion agrees)
        mask = folder / "masks" / f"{name}.png"
        _save(labelme.draw(ann, size, ids_of, ignore_index), mask)
        pairs[name] = [str(photo), str(mask)]
    notes = []
    if empty:
        notes.append(f"{len(empty)} JSON(s) without shapes that cover pixels, drawn as all {names[0]}, e.g. {empty[0]}")
    palette = default_palette(len(names))
    labels = LabelSet(tuple(names), palette, ignore_index).to_dict()
    return {"pairs": pairs, "problems": problems, "notes": notes, "labels": labels}


def _photo_of(ann: labelme.Annotation, folder: Path) -> tuple[Path, tuple[int, int]]:
    """The photo of a LabelMe JSON and its upright size: the file, or the embedded one written to the cache."""
    if ann.photo is not None and ann.photo.is_file():
        return ann.photo, photo_sizes(ann.photo)[0]
    image = labelme.read_photo(ann)  # raises naming the JSON when there is no photo at all
    path = folder / "photos" / f"{ann.json.stem}.png"
    import io

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    atomic_write(path, buf.getvalue())
    return path, (image.shape[1], image.shape[0])


def _split_of(path: Path) -> str | None:
    stem = path.stem.lower()
    return next((s for s in SPLITS if s in stem), None)


def _draw_coco(root: Path, jsons: list[Path], folder: Path, ignore_index: int, crowd: str) -> dict:
    pairs: dict[str, list[str]] = {}
    problems: list[str] = []
    groups: dict[str, list[str]] = {}
    notes: list[str] = []
    names: list[str] | None = None
    for path in jsons:
        photos = _photo_folder(root, path)
        parsed = coco.read(path, photos)
        problems += parsed.problems
        notes += parsed.notes
        if names is not None and parsed.names != names:
            problems.append(f"{path}: its categories differ from those of {jsons[0]} (one set of classes for all)")
        names = names or parsed.names
        split = _split_of(path) if len(jsons) > 1 else None
        for image in parsed.images:
            name = image.file.stem
            if name in pairs:
                problems.append(f"{path}: a second photo named {name} ({image.file})")
                continue
            if not image.file.is_file():
                continue  # reported by coco.read
            mask = folder / "masks" / f"{name}.png"
            _save(coco.draw(parsed, image, ignore_index, crowd), mask)
            pairs[name] = [str(image.file), str(mask)]
            if split:
                groups.setdefault(split, []).append(name)
    names = names or ["background"]
    drawn = {"pairs": pairs, "problems": problems, "notes": notes}
    drawn["labels"] = LabelSet(tuple(names), default_palette(len(names)), ignore_index).to_dict()
    if groups:
        drawn["splits"] = groups
    return drawn


def _photo_folder(root: Path, path: Path) -> Path:
    """Where a COCO file's ``file_name``s are relative to: for ``annotations/instances_<name>.json`` the
    folder ``<name>/`` (COCO's own ``val2017/``), ``images/<name>/`` or ``images/`` (CVAT) beside
    ``annotations/``; else the JSON's own folder (LabelMe's COCO export)."""
    if path.parent.name != "annotations":
        return path.parent
    base, tail = path.parent.parent, path.stem.split("_", 1)[-1]
    return next((c for c in (base / tail, base / "images" / tail, base / "images") if c.is_dir()), base)
