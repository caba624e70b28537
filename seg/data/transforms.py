"""The whole preprocessing of a sample, as two presets (like torchvision's segmentation references).

A preset takes the decoded photo (uint8 3xHxW) and target (int64 1xHxW) and returns what the net trains
or is scored on: float32 3xSxS (in [0, 1], or ImageNet-normalised) and int64 SxS. Padding is black for
the photo and the label set's ignore index for the target (MSRC's void, -1, by default), never a class.

- :class:`EvalPreset`: the course protocol, CenterCrop(crop_size) padding with black / void (or the
  whole photo with ``crop_size=None``); val, test, and training without augmentation.
- :class:`TrainPreset`: :class:`JointAugment` (random scale, random crop, flip, colour jitter).
- :func:`pad_collate`: a batch of whole photos of different sizes, padded to the largest.

A training sample may carry a teacher's soft targets (:class:`SoftTargets`, :mod:`seg.data.soft_targets`):
they get the target's geometry (scale, crop, flip) and come out as a third tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from seg.data.labels import IMAGENET_MEAN, IMAGENET_STD, VOID


class SoftTargets(tv_tensors.Mask):
    """A teacher's class probabilities of a photo (uint8 CxHxW, 255 = 1): moved with the photo as its mask
    is (nearest neighbour), padded with 0, which marks pixels without a teacher (no distillation there)."""


Sample = tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def center_crop(
    image: torch.Tensor, target: torch.Tensor, size: int, ignore_index: int = VOID, soft: torch.Tensor | None = None
) -> Sample:
    """The course's CenterCrop: crop, padding sides under ``size`` with black image / ignored target
    (and soft targets, when given, with 0: no teacher).

    torchvision's CenterCrop pads with 0, which is a class id (building) for targets, so the
    padding is done here with per-tensor fill values before the crop.
    """
    h, w = image.shape[-2:]
    ph, pw = max(size - h, 0), max(size - w, 0)
    if ph or pw:
        padding = [pw // 2, ph // 2, pw - pw // 2, ph - ph // 2]  # same split as torchvision's
        image = F.pad(image, padding, fill=0)
        target = F.pad(target, padding, fill=ignore_index)
        soft = F.pad(soft, padding, fill=0) if soft is not None else None
    crop = (F.center_crop(t, [size, size]) for t in (image, target, soft) if t is not None)
    return tuple(crop)


class JointAugment:
    """Random scale + random crop of the whole photo, horizontal flip, colour jitter (image only).

    Image (uint8 3xHxW) and target (int64 1xHxW, void = -1) go through ``torchvision.transforms.v2``
    together as ``tv_tensors.Image`` / ``tv_tensors.Mask``, so both get the same geometry (the mask
    resized with nearest neighbour). Sides under ``size`` after scaling are padded with black image /
    void target (never class 0). Colour jitter is the last step and touches the image only.
    """

    def __init__(
        self,
        size: int,
        scale: Sequence[float] = (0.75, 1.25),
        jitter: float = 0.3,
        hflip: bool = True,
        ignore_index: int = VOID,
    ) -> None:
        self.size, self.scale = size, (float(scale[0]), float(scale[1]))
        self.jitter, self.hflip, self.ignore_index = jitter, hflip, ignore_index
        self._transforms: dict[int, v2.Compose] = {}

    def transform(self, size: int) -> v2.Compose:
        """Random crop to ``size`` (+ flip, + colour jitter), built once per size."""
        if size not in self._transforms:
            steps: list = [
                v2.RandomCrop(
                    size,
                    pad_if_needed=True,
                    fill={tv_tensors.Image: 0, tv_tensors.Mask: self.ignore_index, SoftTargets: 0},
                ),
            ]
            if self.hflip:
                steps.append(v2.RandomHorizontalFlip())
            if self.jitter:
                j = self.jitter
                steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j, hue=min(j / 10, 0.5)))
            self._transforms[size] = v2.Compose(steps)
        return self._transforms[size]

    def __call__(
        self, image: torch.Tensor, target: torch.Tensor, size: int | None = None, soft: torch.Tensor | None = None
    ) -> Sample:
        """Augment to ``size`` (default: the size given at construction); ``soft`` (a teacher's uint8
        CxHxW probabilities) gets the target's geometry and is returned third."""
        inputs = [tv_tensors.Image(image), tv_tensors.Mask(target)]
        if soft is not None:
            inputs.append(SoftTargets(soft))
        lo, hi = self.scale
        s = lo + (hi - lo) * torch.rand(()).item()
        h, w = image.shape[-2:]
        if s != 1.0:
            new = [max(round(h * s), 1), max(round(w * s), 1)]
            # the photo bilinear (antialiased), masks and soft targets (Mask subclasses) nearest neighbour
            inputs = [F.resize(t, new, antialias=True) for t in inputs]
        out = self.transform(size or self.size)(*inputs)
        return tuple(t.as_subclass(torch.Tensor) for t in out)


def to_input(image: torch.Tensor, normalize: bool) -> torch.Tensor:
    """uint8 3xHxW -> float32 in [0, 1], ImageNet-normalised if ``normalize``."""
    image = image.float().div_(255)
    return F.normalize(image, IMAGENET_MEAN, IMAGENET_STD) if normalize else image


class EvalPreset:
    """Centre crop to ``crop_size`` (None: the whole photo), then :func:`to_input`."""

    def __init__(self, crop_size: int | None = 240, normalize: bool = True, ignore_index: int = VOID) -> None:
        self.crop_size, self.normalize, self.ignore_index = crop_size, normalize, ignore_index

    def __call__(
        self, image: torch.Tensor, target: torch.Tensor, size: int | None = None, soft: torch.Tensor | None = None
    ) -> Sample:
        """``size`` replaces ``crop_size`` for this sample (e.g. a smaller training crop early on); ``soft``:
        a teacher's probabilities, cropped alike and returned third."""
        crop = size or self.crop_size
        if crop:
            image, target, *rest = center_crop(image, target, crop, self.ignore_index, soft)
            soft = rest[0] if rest else None
        out = (to_input(image, self.normalize), target[0])
        return out if soft is None else (*out, soft)


class TrainPreset:
    """:class:`JointAugment` to ``crop_size``, then :func:`to_input`."""

    def __init__(
        self,
        crop_size: int,
        normalize: bool = True,
        scale: Sequence[float] = (0.75, 1.25),
        jitter: float = 0.3,
        ignore_index: int = VOID,
    ) -> None:
        self.normalize = normalize
        self.augment = JointAugment(crop_size, scale, jitter, ignore_index=ignore_index)

    def __call__(
        self, image: torch.Tensor, target: torch.Tensor, size: int | None = None, soft: torch.Tensor | None = None
    ) -> Sample:
        """``size`` replaces ``crop_size`` for this sample (e.g. a smaller training crop early on); ``soft``:
        a teacher's probabilities, augmented alike and returned third."""
        image, target, *rest = self.augment(image, target, size, soft)
        return (to_input(image, self.normalize), target[0], *rest)


def pad_collate(ignore_index: int) -> Callable[[list], tuple[torch.Tensor, torch.Tensor]]:
    """A collate function for whole photos of different sizes: each padded at its bottom and right to the
    batch's largest height and width (photo 0, target ``ignore_index``: padding counts in no metric)."""

    def collate(samples: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        h = max(x.shape[-2] for x, _ in samples)
        w = max(x.shape[-1] for x, _ in samples)
        images = torch.zeros(len(samples), samples[0][0].shape[0], h, w, dtype=samples[0][0].dtype)
        targets = torch.full((len(samples), h, w), ignore_index, dtype=samples[0][1].dtype)
        for i, (x, y) in enumerate(samples):
            images[i, :, : x.shape[-2], : x.shape[-1]] = x
            targets[i, : y.shape[-2], : y.shape[-1]] = y
        return images, targets

    return collate
