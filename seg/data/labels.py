"""Label sets: the classes of a data set (names, one colour each, the id no loss or metric counts),
colour masks decoded to ids, the MSRC-v2 table, and ImageNet statistics.

A :class:`LabelSet` comes from the data (MSRC's table, a ``classes.txt``, ``data.classes``, a palette
PNG) and travels with what is trained on it: the LightningModule's hyperparameters (so every
checkpoint), the export metadata, the pictures. NumPy only, so that metrics, pictures and the
deployment API import it without the data pipeline or the training stack.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from seg.core.errors import ConfigError

VOID = -1  # MSRC's id of unlabelled pixels (its targets are decoded to -1): ignored by the loss and every metric

# the normalisation of torchvision's ImageNet weights (data.normalize=true)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_palette(n: int) -> np.ndarray:
    """``n`` distinct colours (n x 3 uint8) for classes whose data names none: PASCAL VOC's bit-interleaved
    colour map from its second entry on, so that no class is painted black (black is how every picture
    shows ignored pixels; VOC's entry 0 is black)."""
    ids = np.arange(1, n + 1)
    palette = np.zeros((n, 3), np.int64)
    for shift in range(7, -1, -1):
        for channel in range(3):
            palette[:, channel] |= ((ids >> (3 * (7 - shift) + channel)) & 1) << shift
    return palette.astype(np.uint8)


@dataclass(frozen=True, eq=False)
class LabelSet:
    """The classes of a data set: ``names[i]`` and ``palette[i]`` (RGB) are class ``i``'s; pixels whose id is
    ``ignore_index`` count in no loss or metric. ``ignore_colours``: colours of a colour mask that decode
    to ``ignore_index`` (MSRC's black void)."""

    names: tuple[str, ...]
    palette: np.ndarray = field(repr=False)
    ignore_index: int = 255
    ignore_colours: tuple[tuple[int, int, int], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        palette = np.asarray(self.palette, dtype=np.int64).reshape(-1, 3)
        if len(palette) != len(self.names) or (palette < 0).any() or (palette > 255).any():
            raise ValueError(f"a palette needs one RGB row in 0..255 per class: {len(self.names)} classes")
        object.__setattr__(self, "palette", palette.astype(np.uint8))
        object.__setattr__(self, "ignore_colours", tuple(tuple(int(v) for v in c) for c in self.ignore_colours))

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelSet) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.names, self.palette.tobytes(), self.ignore_index, self.ignore_colours))

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers: what checkpoints (``weights_only=True``) and JSON metadata hold."""
        return {
            "names": list(self.names),
            "palette": self.palette.tolist(),
            "ignore_index": int(self.ignore_index),
            "ignore_colours": [list(c) for c in self.ignore_colours],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> LabelSet:
        """The label set a checkpoint or export holds; None (written before label sets travelled) is MSRC."""
        if not d:
            return MSRC
        names = list(d["names"])
        palette = d.get("palette") or default_palette(len(names))
        return cls(names, palette, int(d.get("ignore_index", 255)), tuple(map(tuple, d.get("ignore_colours") or ())))

    @classmethod
    def from_names(
        cls, names: Sequence[str], colours: Sequence[Sequence[int] | None] | None = None, ignore_index: int = 255
    ) -> LabelSet:
        """Classes by name, each with its colour or (None, or no colours at all) the default palette's."""
        fallback = default_palette(len(names))
        rows = [fallback[i] if not colours or colours[i] is None else colours[i] for i in range(len(names))]
        return cls(tuple(names), np.array(rows), ignore_index)

    def differences(self, data: LabelSet) -> list[str]:
        """How ``data``'s classes differ from these (a model's) in number and names, a phrase each (empty:
        they agree). The ignore index is the data's own business: it is how its masks mark unlabelled pixels."""
        if self.names == data.names:
            return []
        out = []
        if self.num_classes != data.num_classes:
            out.append(f"{self.num_classes} classes in the model, {data.num_classes} in the data")
        odd = [i for i, (a, b) in enumerate(zip(self.names, data.names)) if a != b]
        out += [f"class {i} is {self.names[i]!r} in the model, {data.names[i]!r} in the data" for i in odd[:3]]
        if len(odd) > 3:
            out.append(f"{len(odd) - 3} more names differ")
        return out

    def require(self, data: LabelSet, model: str, advice: str) -> None:
        """Raise a ConfigError naming how ``data``'s classes differ from these, the classes of ``model`` (a
        checkpoint or exported file), and what to do; nothing when they agree."""
        if found := self.differences(data):
            raise ConfigError(f"{model} was trained on other classes than the data's ({'; '.join(found)}); {advice}")

    def by_name(self, data: LabelSet) -> tuple[np.ndarray, list[str]]:
        """A deliberate mapping from ``data``'s class ids to these (a model's) by name: a lookup table
        ``lut[data_id] = model_id`` (the data's classes the model lacks -> ``data.ignore_index``), and the
        names of those classes. ConfigError when no name is shared."""
        ids = {n: i for i, n in enumerate(self.names)}
        lut = np.array([ids.get(n, data.ignore_index) for n in data.names], np.int64)
        missing = [n for n in data.names if n not in ids]
        if len(missing) == data.num_classes:
            raise ConfigError(
                f"match_classes=by_name: the model's classes ({', '.join(self.names[:5])}, ...) and the data's "
                f"({', '.join(data.names[:5])}, ...) share no name"
            )
        return lut, missing

    def decode_colours(self, rgb: np.ndarray, source: str = "mask") -> tuple[np.ndarray, dict[tuple, int]]:
        """A colour-coded HxWx3 mask as HxW int64 ids (``ignore_colours`` -> ``ignore_index``), and the
        colours found in no table with their pixel counts (those pixels get ``ignore_index``)."""
        codes = [_code(c) for c in self.palette.tolist()] + [_code(c) for c in self.ignore_colours]
        ids = [*range(self.num_classes)] + [self.ignore_index] * len(self.ignore_colours)
        order = np.argsort(codes)
        sorted_codes, sorted_ids = np.array(codes, np.int64)[order], np.array(ids, np.int64)[order]
        rgb = rgb.astype(np.int64)
        code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        pos = np.clip(np.searchsorted(sorted_codes, code), 0, len(sorted_codes) - 1)
        known = sorted_codes[pos] == code
        unknown: dict[tuple, int] = {}
        if not known.all():
            values, counts = np.unique(code[~known], return_counts=True)
            unknown = {(int(v) >> 16, (int(v) >> 8) & 255, int(v) & 255): int(n) for v, n in zip(values, counts)}
        return np.where(known, sorted_ids[pos], self.ignore_index), unknown


def _code(rgb: Iterable[int]) -> int:
    r, g, b = (int(v) for v in rgb)
    return (r << 16) | (g << 8) | b


class LabelClass(NamedTuple):
    id: int
    name: str
    rgb: tuple[int, int, int]


# The 23 MSRC-v2 classes + void, identified in the targets by colour only (no table ships).
LABELS: tuple[LabelClass, ...] = (
    LabelClass(-1, "void", (0, 0, 0)),
    LabelClass(0, "building", (128, 0, 0)),
    LabelClass(1, "grass", (0, 128, 0)),
    LabelClass(2, "tree", (128, 128, 0)),
    LabelClass(3, "cow", (0, 0, 128)),
    LabelClass(4, "horse", (128, 0, 128)),
    LabelClass(5, "sheep", (0, 128, 128)),
    LabelClass(6, "sky", (128, 128, 128)),
    LabelClass(7, "mountain", (64, 0, 0)),
    LabelClass(8, "airplane", (192, 0, 0)),
    LabelClass(9, "water", (64, 128, 0)),
    LabelClass(10, "face", (192, 128, 0)),
    LabelClass(11, "car", (64, 0, 128)),
    LabelClass(12, "bicycle", (192, 0, 128)),
    LabelClass(13, "flower", (64, 128, 128)),
    LabelClass(14, "sign", (192, 128, 128)),
    LabelClass(15, "bird", (0, 64, 0)),
    LabelClass(16, "book", (128, 64, 0)),
    LabelClass(17, "chair", (0, 192, 0)),
    LabelClass(18, "road", (128, 64, 128)),
    LabelClass(19, "cat", (0, 192, 128)),
    LabelClass(20, "dog", (128, 192, 128)),
    LabelClass(21, "body", (64, 64, 0)),
    LabelClass(22, "boat", (192, 64, 0)),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in LABELS if c.id != VOID)
NUM_CLASSES = len(CLASS_NAMES)
PALETTE = np.array([c.rgb for c in LABELS if c.id != VOID], dtype=np.uint8)  # row = class id
# MSRC-v2 as a label set: its targets decode to ids 0..22 and void (black) to -1
MSRC = LabelSet(CLASS_NAMES, PALETTE, VOID, tuple(c.rgb for c in LABELS if c.id == VOID))


def decode_target(rgb: np.ndarray, source: str = "target", labels: LabelSet = MSRC) -> np.ndarray:
    """Colour-coded HxWx3 uint8 map -> HxW int64 class ids (``labels``' table; MSRC's: void = -1).

    Colours not in the table become the ignore index, with one warning naming ``source`` and the pixel count.
    """
    ids, unknown = labels.decode_colours(rgb, source)
    if unknown:
        warnings.warn(
            f"{source}: {sum(unknown.values())} pixels have colours outside the "
            f"{'MSRC' if labels == MSRC else 'class'} table (e.g. {sorted(unknown)[:3]}); they are treated as void.",
            stacklevel=2,
        )
    return ids
