"""The whole preprocessing of a sample, as two presets (like torchvision's segmentation references).

A preset takes the decoded photo (uint8 3xHxW) and target (int64 1xHxW) and returns what the net trains
or is scored on: float32 3xSxS (in [0, 1], or ImageNet-normalised) and int64 SxS. Padding is black for
the photo and the label set's ignore index for the target (MSRC's void, -1, by default), never a class.

- :class:`EvalPreset`: the course protocol, CenterCrop(crop_size) padding with black / void (or the
  whole photo with ``crop_size=None``); val, test, and training without augmentation.
- :class:`TrainPreset`: :class:`JointAugment` (random scale, random crop, flip, colour jitter).
- :func:`pad_collate`: a batch of whole photos of different sizes, padded to the largest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from seg.data.labels import IMAGENET_MEAN, IMAGENET_STD, VOID


def center_crop(
    image: torch.Tensor, target: torch.Tensor, size: int, ignore_index: int = VOID
) -> tuple[torch.Tensor, torch.Tensor]:
    """The course's CenterCrop: crop, padding sides under ``size`` with black image / ignored target.

    torchvision's CenterCrop pads with 0, which is a class id (building) for targets, so the
    padding is done here with per-tensor fill values before the crop.
    """
    h, w = image.shape[-2:]
    ph, pw = max(size - h, 0), max(size - w, 0)
    if ph or pw:
        padding = [pw // 2, ph // 2, pw - pw // 2, ph - ph // 2]  # same split as torchvision's
        image = F.pad(image, padding, fill=0)
        target = F.pad(target, padding, fill=ignore_index)
    return F.center_crop(image, [size, size]), F.center_crop(target, [size, size])


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
                v2.RandomCrop(size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: self.ignore_index}),
            ]
            if self.hflip:
                steps.append(v2.RandomHorizontalFlip())
            if self.jitter:
                j = self.jitter
                steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j, hue=min(j / 10, 0.5)))
            self._transforms[size] = v2.Compose(steps)
        return self._transforms[size]

    def __call__(
        self, image: torch.Tensor, target: torch.Tensor, size: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment to ``size`` (default: the size given at construction)."""
        image, target = tv_tensors.Image(image), tv_tensors.Mask(target)
        lo, hi = self.scale
        s = lo + (hi - lo) * torch.rand(()).item()
        h, w = image.shape[-2:]
        if s != 1.0:
            new = [max(round(h * s), 1), max(round(w * s), 1)]
            image = F.resize(image, new, antialias=True)  # bilinear
            target = F.resize(target, new)  # a Mask: nearest neighbour
        image, target = self.transform(size or self.size)(image, target)
        return image.as_subclass(torch.Tensor), target.as_subclass(torch.Tensor)


def to_input(image: torch.Tensor, normalize: bool) -> torch.Tensor:
    """uint8 3xHxW -> float32 in [0, 1], ImageNet-normalised if ``normalize``."""
    image = image.float().div_(255)
    return F.normalize(image, IMAGENET_MEAN, IMAGENET_STD) if normalize else image


class EvalPreset:
    """Centre crop to ``crop_size`` (None: the whole photo), then :func:`to_input`."""

    def __init__(self, crop_size: int | None = 240, normalize: bool = True, ignore_index: int = VOID) -> None:
        self.crop_size, self.normalize, self.ignore_index = crop_size, normalize, ignore_index

    def __call__(
        self, image: torch.Tensor, target: torch.Tensor, size: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` replaces ``crop_size`` for this sample (e.g. a smaller training crop early on)."""
        crop = size or self.crop_size
        if crop:
            image, target = center_crop(image, target, crop, self.ignore_index)
        return to_input(image, self.normalize), target[0]


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
        self, image: torch.Tensor, target: torch.Tensor, size: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` replaces ``crop_size`` for this sample (e.g. a smaller training crop early on)."""
        image, target = self.augment(image, target, size)
        return to_input(image, self.normalize), target[0]


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
