"""The training recipe a folder data set gets from its photo sizes: ``data.crop_size``, ``data.batch_size`` and
``data.augment_scale`` set to ``auto`` (``conf/data/folder.yaml``'s defaults) are chosen here, from the
training split's sizes in the survey, by one written rule; each stays overridable with a value.

The rule (MSRC keeps the course's 240-pixel crops in batches of 8, which it was measured with):

- crop: the median training photo's short side, so that a crop sees a photo's whole height (its context),
  in multiples of 32 (the encoder's stride), at least 128 and at most 384 (a step's cost on a CPU);
- batch: as many crops as keep a step at MSRC's pixels (8 x 240 x 240), at least 2 and at most 16;
- scale range: (0.75, 1.25) around the photos' own scale, which val and test see; (0.5, 1.5) where the
  photos' short side is at least twice the crop, so crops also see a photo whole.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

AUTO = "auto"
REFERENCE_PIXELS = 8 * 240 * 240  # MSRC's training batch: 8 crops of 240 x 240
CROP_RANGE = (128, 384)
BATCH_RANGE = (2, 16)


@dataclass(frozen=True)
class Recipe:
    crop_size: int
    batch_size: int
    augment_scale: tuple[float, float]
    why: str


def short_side(sizes: Mapping[str, int]) -> int:
    """The median short side of photos counted by size (``{"WxH": count}``, as the survey has them)."""
    sides = []
    for size, n in sizes.items():
        w, h = (int(v) for v in size.split("x"))
        sides += [min(w, h)] * int(n)
    return int(statistics.median(sides))


def recipe(sizes: Mapping[str, int]) -> Recipe:
    """The rule of this module's docstring for training photos of ``sizes``."""
    side = short_side(sizes)
    crop = min(CROP_RANGE[1], max(CROP_RANGE[0], side // 32 * 32))
    batch = min(BATCH_RANGE[1], max(BATCH_RANGE[0], round(REFERENCE_PIXELS / crop**2)))
    scale = (0.5, 1.5) if side >= 2 * crop else (0.75, 1.25)
    why = (
        f"the training photos' median short side is {side} px: crops of {crop} (that side in multiples of 32, "
        f"within {CROP_RANGE[0]}-{CROP_RANGE[1]}), {batch} a batch (MSRC's pixels a step, 8 x 240 x 240), scale "
        f"range {scale[0]}-{scale[1]}" + (" (photos at least twice the crop)" if scale[0] == 0.5 else "")
    )
    return Recipe(crop, batch, scale, why)


def auto_or(rule: Any) -> Any:
    """``rule``, with ``auto`` allowed as well."""

    def check(v: Any) -> str | None:
        if v == AUTO:
            return None
        why = rule(v)
        return f"{why}, or auto (chosen from the photo sizes)" if why else None

    return check
