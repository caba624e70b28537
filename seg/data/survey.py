"""A folder data set looked at before training on it: per split the pairs, image sizes, mask modes, each
class's pixel share and image count, and every problem with its file.

``python -m seg.check`` prints it; ``seg.train`` (through the datamodule's ``prepare_data``) runs
the same survey before any work and stops on a problem. A survey is cached by the files' names, sizes
and times and the settings that read them, so a second run does not read the masks again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seg.core.files import atomic_write
from seg.data.folder import CLASSES_FILE, Catalogue, Item, label_set
from seg.data.labels import LabelSet, default_palette
from seg.data.masks import LOSSY_SUFFIXES, DataFileError, binarize, mask_palette, read_mask
from seg.data.photos import PhotoError, photo_sizes
from seg.data.problems import FileProblem, grouped
from seg.data.splits import SPLITS


@dataclass
class SplitStats:
    """What one split holds."""

    pairs: int = 0
    sizes: dict[str, int] = field(default_factory=dict)  # "WxH" -> photos of that size
    mask_modes: dict[str, int] = field(default_factory=dict)  # Pillow mode -> masks
    class_pixels: list[int] = field(default_factory=list)
    class_images: list[int] = field(default_factory=list)
    ignored_pixels: int = 0


@dataclass
class Survey:
    """Every split's statistics, the problems found (one line each), the label set read, and the classes
    each item shows (what stratified folds go by)."""

    labels: dict[str, Any]
    splits: dict[str, SplitStats]
    problems: list[str]
    notes: list[str]
    classes_of: dict[str, list[int]]
    how: str
    binary: int | None = None  # masks read as binary: values at or above this are class 1
    format: str = "masks"  # the export read (seg.data.formats)

    @property
    def label_set(self) -> LabelSet:
        return LabelSet.from_dict(self.labels)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Survey:
        d = json.loads(text)
        d["splits"] = {k: SplitStats(**v) for k, v in d["splits"].items()}
        return cls(**d)


def _fingerprint(cat: Catalogue, settings: dict[str, Any]) -> str:
    files = sorted({p for items in cat.splits.values() for i in items for p in (i.image, i.mask)})
    h = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(b"photos upright, decoded\n")  # surveys cached before photos were read upright and whole: again
    h.update(json.dumps({s: [i.name for i in items] for s, items in cat.splits.items()}).encode())
    for p in files:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    table = Path(settings["root"]) / CLASSES_FILE
    h.update(table.read_bytes() if table.is_file() else b"")  # the classes the masks are read with
    return h.hexdigest()[:20]


def survey(
    cat: Catalogue,
    root: str | Path,
    classes: list[str] | None = None,
    ignore_index: int | None = None,
    allow_unseen_classes: bool = False,
    cache_dir: str | Path | None = None,
    binary_threshold: int | None = None,
) -> Survey:
    """Read every mask of ``cat`` once (and each photo's header) and report; cached in ``cache_dir``.
    ``ignore_index`` None: 255, unless the masks are binary 0/255 (then 255 is the foreground class);
    ``binary_threshold``: mask values at or above it are class 1, below it class 0 (lossy binary masks)."""
    settings = {
        "root": str(root),
        "classes": classes,
        "ignore_index": ignore_index,
        "allow": allow_unseen_classes,
        "binary": binary_threshold,
        "table": cat.labels.to_dict() if cat.labels is not None else None,
    }
    cached = Path(cache_dir) / f"survey-{_fingerprint(cat, settings)}.json" if cache_dir else None
    if cached is not None and cached.is_file():
        return Survey.from_json(cached.read_text())
    result = _survey(cat, root, classes, ignore_index, allow_unseen_classes, binary_threshold)
    if cached is not None and not result.problems:  # a data set with problems is read again once fixed
        with contextlib.suppress(OSError):  # a read-only cache folder: the survey is simply not kept
            atomic_write(cached, result.to_json())
    return result


BINARY = {0, 255}  # the values of a binary mask saved as 8-bit black and white
DEFAULT_IGNORE = 255


def _lossy(path: Path, ids: np.ndarray, threshold: int | None, problems: list[str], notes: list[str]) -> None:
    """A mask saved as JPEG: its ids are blurred at every edge. Named with how far from two values it is."""
    values = np.unique(ids)
    off = float(np.isin(ids, list(BINARY), invert=True).mean())
    detail = f"{len(values)} distinct values, {100 * off:.1f}% of its pixels neither 0 nor 255"
    if threshold is not None:
        notes.append(
            f"{path}: a mask saved as lossy JPEG ({detail}): read as binary, values >= "
            f"data.binary_threshold={threshold} are class 1"
        )
    else:
        advice = (
            "JPEG blurs class ids at every edge: save the masks as PNG, or, for a binary (black and white) mask, "
            "set data.binary_threshold=128"
        )
        problems.append(FileProblem(path, "a mask saved as lossy JPEG", advice, "masks", detail))


def _size_problem(item: Item, ids: np.ndarray, size: tuple[int, int], stored: tuple[int, int]) -> str:
    h, w = ids.shape
    line = f"{item.mask}: size {w}x{h} differs from its photo {item.image} ({size[0]}x{size[1]})"
    if stored == (w, h):
        return line + (
            f"; the mask fits the photo as stored ({stored[0]}x{stored[1]}), but its EXIF orientation turns "
            f"it upright, as the labelling tools (LabelMe, CVAT) and training show it: draw the mask on the "
            f"upright photo, or save the photo without its EXIF orientation"
        )
    scale = size[0] / w
    if scale != 1 and size[1] == round(h * scale) and (scale.is_integer() or (1 / scale).is_integer()):
        ratio = f"{scale:g}x" if scale > 1 else f"1/{1 / scale:g}"
        return line + f": the photo is {ratio} its mask (same aspect); resize the photos to their masks' size"
    return line


def _survey(cat: Catalogue, root, classes, ignore_index, allow_unseen, binary_threshold=None) -> Survey:
    problems, notes = list(cat.problems), list(cat.notes)
    items = [i for s in SPLITS for i in cat.splits[s]]
    ignore = DEFAULT_IGNORE if ignore_index is None else ignore_index
    labels = label_set(root, classes, ignore, table=cat.labels)
    first = next((i.mask for i in items), None)
    palette = mask_palette(first) if first is not None else None
    read: dict[Item, Read] = {}
    found: set[int] = set()
    for item in dict.fromkeys(items):  # an item in two splits (test = val) is read once
        try:
            ids, mode, unknown = read_mask(item.mask, labels)
        except DataFileError as e:
            problems.append(str(e))
            read[item] = Read(item.name, None, "unreadable", str(item.mask))
            continue
        if item.mask.suffix.lower() in LOSSY_SUFFIXES:
            _lossy(item.mask, ids, binary_threshold, problems, notes)
        if binary_threshold is not None:
            ids = binarize(ids, binary_threshold)
        for colour, _ in sorted(unknown.items(), key=lambda kv: -kv[1]):
            rgb = " ".join(str(v) for v in colour)
            fact = f"the colour {colour} is outside the class table"
            problems.append(FileProblem(item.mask, fact, f"add it to classes.txt: a class, or 'void {rgb}'", "masks"))
        found |= set(np.unique(ids).tolist())
        read[item] = Read(item.name, ids, mode, str(item.mask))
        try:
            # decoded whole: a truncated photo is named here; training reads it upright (seg.data.photos)
            size, stored = photo_sizes(item.image, decode=True)
        except PhotoError as e:
            problems.append(str(e))
            continue
        if size != (ids.shape[1], ids.shape[0]):
            problems.append(_size_problem(item, ids, size, stored))
    binary = binary_threshold
    two = (labels is None or labels.num_classes <= 2) and cat.format in ("masks", "voc")
    if binary is None and ignore_index is None and two and DEFAULT_IGNORE in found and found <= BINARY:
        binary = 128  # black-and-white masks: background and foreground, 255 is not "ignored"
        notes.append("binary masks (0 and 255): two classes, 255 is the foreground (data.ignore_index=255 ignores it)")
        for r in read.values():
            if r.ids is not None:
                r.ids = binarize(r.ids, binary)
    if labels is None and (binary is not None or found == {0, 1}):  # black and white, or 0/1
        labels = LabelSet(("background", "foreground"), default_palette(2), ignore)
    if labels is None:
        labels = label_set(root, None, ignore, sorted(found), palette)
        labels = labels or LabelSet(("class_0",), [[0, 0, 0]], ignore)  # masks all ignored: one class
    found_survey = tally({s: [read[i] for i in cat.splits[s]] for s in SPLITS}, labels, allow_unseen, problems, cat.how)
    found_survey.notes[:0] = notes
    found_survey.binary = binary
    found_survey.format = cat.format
    return found_survey


@dataclass
class Read:
    """One decoded mask: its item's name, the class ids (None: unreadable), the file's mode and path."""

    name: str
    ids: np.ndarray | None
    mode: str
    path: str


def tally(splits: dict[str, list[Read]], labels: LabelSet, allow_unseen: bool, problems: list[str], how: str) -> Survey:
    """Every split's statistics from its decoded masks, with the problems of their values: ids that are
    neither a class nor the ignore index, empty splits, classes that never occur in train."""
    n, ignore = labels.num_classes, labels.ignore_index
    stats_of, classes_of, notes = {}, {}, []
    for split, reads in splits.items():
        stats = SplitStats(class_pixels=[0] * n, class_images=[0] * n)
        sizes, modes = Counter(), Counter()
        pixels, images = np.zeros(n, np.int64), np.zeros(n, np.int64)
        for r in reads:
            stats.pairs += 1
            modes[r.mode] += 1
            if r.ids is None:
                continue
            sizes[f"{r.ids.shape[1]}x{r.ids.shape[0]}"] += 1
            counts = np.bincount(r.ids[(r.ids >= 0) & (r.ids < n)].ravel(), minlength=n)
            pixels, images = pixels + counts, images + (counts > 0)
            stats.ignored_pixels += int((r.ids == ignore).sum())
            for value in np.unique(r.ids[((r.ids < 0) | (r.ids >= n)) & (r.ids != ignore)]).tolist():
                fact = f"the value {value} is neither a class id (0..{n - 1}) nor the ignore index {ignore}"
                advice = "fix the masks, or set data.classes / classes.txt / data.ignore_index"
                problems.append(FileProblem(r.path, fact, advice, "masks"))
            classes_of[r.name] = np.flatnonzero(counts).tolist()
        stats.class_pixels, stats.class_images = pixels.tolist(), images.tolist()
        stats.sizes, stats.mask_modes = dict(sizes.most_common()), dict(modes.most_common())
        stats_of[split] = stats
        if stats.pairs == 0:
            problems.append(f"the {split} split is empty ({how})")
    if 0 <= ignore < n:  # its pixels would count for nothing: a class never learned, never scored
        problems.append(
            f"data.ignore_index={ignore} is also class {ignore} ({labels.names[ignore]}) of the {n} classes "
            f"0..{n - 1}: its pixels would be ignored and the class never learned; set data.ignore_index to the "
            f"masks' value for unlabelled pixels, one that is no class id (e.g. 255)"
        )
    unseen = [labels.names[c] for c in range(n) if stats_of["train"].class_pixels[c] == 0 and c != ignore]
    if unseen and stats_of["train"].pairs:
        line = f"classes that never occur in the train split: {', '.join(unseen)} (the net cannot learn them; "
        if allow_unseen:
            notes.append(line + "trained anyway, as data.allow_unseen_classes=true)")
        else:
            problems.append(line + "set data.allow_unseen_classes=true to train anyway)")
    return Survey(labels.to_dict(), stats_of, grouped(problems), notes, classes_of, how)


def report(result: Survey) -> str:
    """The survey as text: a line per split, a table of classes (pixel share and images per split), the problems."""
    labels = result.label_set
    lines = [f"format: {result.format}", f"splits: {result.how}"]
    for split, s in result.splits.items():
        sizes = ", ".join(f"{k} ({v})" for k, v in list(s.sizes.items())[:4]) + (" ..." if len(s.sizes) > 4 else "")
        modes = ", ".join(f"{k} ({v})" for k, v in s.mask_modes.items())
        lines.append(f"  {split:5s} {s.pairs:5d} pairs; sizes {sizes or '-'}; masks {modes or '-'}")
    header = f"{'class':16s}" + "".join(f" {s + ' px %':>11s} {s + ' img':>9s}" for s in result.splits)
    lines += ["", header]
    totals = {s: max(sum(st.class_pixels), 1) for s, st in result.splits.items()}
    for c, name in enumerate(labels.names):
        row = f"{name[:16]:16s}"
        for s, st in result.splits.items():
            row += f" {100 * st.class_pixels[c] / totals[s]:11.2f} {st.class_images[c]:9d}"
        lines.append(row)
    ignored = ", ".join(f"{s} {st.ignored_pixels}" for s, st in result.splits.items())
    lines.append(f"{'(ignored px)':16s} {ignored}")
    lines += [f"note: {n}" for n in result.notes]
    lines += ["", f"{len(result.problems)} problems" + (":" if result.problems else "")]
    lines += [f"  {p}" for p in result.problems]
    return "\n".join(lines)
