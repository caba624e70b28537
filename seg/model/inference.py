"""Logits of a trained net for scoring and prediction: whole photos at their own size, flip and
multi-scale test-time augmentation (TTA).

Shared by ``seg.eval``, ``seg.predict``, ``seg.export``'s parity check and :class:`seg.deploy.segmenter.Segmenter`.
Every function takes a batch either as a torch tensor (a torch net) or as a NumPy array (an ONNX
Runtime session) and imports torch only for tensors, so that predicting through ONNX needs no torch.

The nets take any height and width (the encoder rounds odd sizes up, the logits are resized to the
input size), so photos are never padded. A photo whose long side exceeds ``max_side`` goes through
the net shrunk to it, and its logits are resized back: time and memory stay bounded for large photos.
With ``tile``, a photo larger than the tile goes through the net at its own size instead, in
overlapping windows of ``tile`` pixels whose logits are averaged where they overlap (mmsegmentation's
``mode='slide'``); the class ids are then made band by band, so that memory is bounded by a band of
the tile's height, not by the photo.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

Net = Callable[[Any], Any]  # an NCHW batch -> its N x classes x H x W logits at the input size
# test-time augmentation: False/None (none), True (+ the horizontal flip), or scales: the photo is also
# seen resized by each factor (each with its flip), and the logits, resized back, are averaged
TTA = bool | None | Sequence[float]
TILE_OVERLAP = 1 / 3  # the share of a tile its neighbour overlaps, by default (mmsegmentation's 769/513)


def tta_scales(tta: TTA) -> tuple[float, ...]:
    """The scales a TTA setting asks for: () for none, (1.0,) for flip only."""
    if tta is None or tta is False:
        return ()
    if tta is True:
        return (1.0,)
    scales = tuple(float(s) for s in tta)
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"tta scales must be positive factors, e.g. [0.75, 1.0, 1.25], got {list(tta)}")
    return scales


def tta_problem(tta: Any) -> str | None:
    """What is wrong with a TTA setting (false, true or a list of positive scales), or None: the one rule
    the settings check and :class:`~seg.deploy.segmenter.Segmenter` apply."""
    if isinstance(tta, str):  # a typo such as tta=maybe: not a list of characters
        return "use false, true (+ flip) or scales such as [0.75,1.0,1.25]"
    try:
        tta_scales(tta)
    except (TypeError, ValueError) as e:
        return f"use false, true (+ flip) or scales such as [0.75,1.0,1.25] ({e})"
    return None


def max_side_problem(max_side: Any) -> str | None:
    """What is wrong with a ``max_side`` (a whole number of pixels >= 1, or None), or None."""
    ok = max_side is None or (isinstance(max_side, int) and not isinstance(max_side, bool) and max_side >= 1)
    return None if ok else "must be an integer >= 1 or null"


def tile_problem(tile: Any) -> str | None:
    """What is wrong with a ``tile`` (a whole number of pixels >= 32, or None), or None."""
    ok = tile is None or (isinstance(tile, int) and not isinstance(tile, bool) and tile >= 32)
    return None if ok else "must be an integer >= 32 (the window's side in pixels) or null"


def tile_overlap_problem(overlap: Any) -> str | None:
    """What is wrong with a ``tile_overlap`` (the share of a window its neighbour overlaps, in [0, 0.75])."""
    ok = isinstance(overlap, (int, float)) and not isinstance(overlap, bool) and 0 <= overlap <= 0.75
    return None if ok else "must be a number in [0, 0.75] (the share of a tile its neighbour overlaps)"


def tile_spans(length: int, tile: int, overlap: float) -> list[tuple[int, int]]:
    """The windows along one side, as mmsegmentation's slide inference places them: a stride of
    ``tile`` less the overlap, the last window flush with the end (all of one size), one window when the
    side fits."""
    if length <= tile:
        return [(0, length)]
    stride = max(1, tile - round(tile * overlap))
    starts = sorted({min(i * stride, length - tile) for i in range(math.ceil((length - tile) / stride) + 1)})
    return [(s, s + tile) for s in starts]


def _zeros(like: Any, shape: tuple[int, ...]) -> Any:
    if _is_numpy(like):
        return np.zeros(shape, np.float32)
    import torch

    return torch.zeros(shape, dtype=like.dtype)


def _tiled_logits(model: Net, x: Any, tta: TTA, tile: int, overlap: float) -> Any:
    """Logits of the whole photos from overlapping windows, averaged where they overlap."""
    (height, width), total, count = x.shape[-2:], None, None
    for y0, y1 in tile_spans(height, tile, overlap):
        for x0, x1 in tile_spans(width, tile, overlap):
            out = predict_logits(model, x[..., y0:y1, x0:x1], tta)
            if total is None:
                total, count = _zeros(out, (*out.shape[:2], height, width)), _zeros(out, (height, width))
            total[..., y0:y1, x0:x1] += out
            count[y0:y1, x0:x1] += 1
    return total / count


def _tiled_ids(model: Net, x: Any, tta: TTA, tile: int, overlap: float) -> Any:
    """Class ids from overlapping windows, a band of rows at a time: the rows above the next row of
    windows are final once the windows over them are summed (the sum's argmax is the mean's)."""
    height, width = x.shape[-2:]
    rows, cols = tile_spans(height, tile, overlap), tile_spans(width, tile, overlap)
    ids = _ids(x, (x.shape[0], height, width))
    band, top = None, 0  # band: the summed logits of rows [top, top + band height)
    for i, (y0, y1) in enumerate(rows):
        for x0, x1 in cols:
            out = predict_logits(model, x[..., y0:y1, x0:x1], tta)
            grow = y1 - top - (0 if band is None else band.shape[-2])
            if grow > 0:  # the band reaches down to this row of windows' bottom
                more = _zeros(out, (*out.shape[:2], grow, width))
                band = more if band is None else _concat(band, more)
            band[..., y0 - top : y1 - top, x0:x1] += out
        done = rows[i + 1][0] if i + 1 < len(rows) else height
        ids[:, top:done] = class_ids(band[..., : done - top, :])
        band, top = band[..., done - top :, :], done
    return ids


def _ids(like: Any, shape: tuple[int, ...]) -> Any:
    """Zero class ids (int64, as :func:`class_ids` gives them) in ``like``'s kind of array."""
    if _is_numpy(like):
        return np.zeros(shape, np.int64)
    import torch

    return torch.zeros(shape, dtype=torch.int64)


def _concat(a: Any, b: Any) -> Any:
    """``a`` and ``b`` one below the other (along the rows)."""
    if _is_numpy(a):
        return np.concatenate([a, b], -2)
    import torch

    return torch.cat([a, b], -2)


def _is_numpy(x: Any) -> bool:
    return isinstance(x, np.ndarray)


def _hflip(x: Any) -> Any:
    return x[..., ::-1] if _is_numpy(x) else x.flip(-1)


def _flipped_mean(model: Net, x: Any) -> Any:
    return (model(x) + _hflip(model(_hflip(x)))) / 2


def _logits(model: Net, x: Any, tta: TTA) -> Any:
    scales = tta_scales(tta)
    if not scales:
        return model(x)
    size = tuple(x.shape[-2:])
    total = None
    for s in scales:
        if s == 1.0:
            out = _flipped_mean(model, x)
        else:
            scaled = (max(round(size[0] * s), 1), max(round(size[1] * s), 1))
            out = resize(_flipped_mean(model, resize(x, scaled, antialias=s < 1)), size)
        total = out if total is None else total + out
    return total if len(scales) == 1 else total / len(scales)


def predict_logits(model: Net, x: Any, tta: TTA = False) -> Any:
    """Logits; with ``tta`` the mean over the TTA views (see :data:`TTA`) of the image's and its
    horizontal flip's logits."""
    if _is_numpy(x):
        return _logits(model, x, tta)
    import torch

    with torch.no_grad():
        return _logits(model, x, tta)


def forward_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """The size a photo goes through the net at: its own, or scaled (aspect kept) to a long side of ``max_side``."""
    long = max(height, width)
    if not max_side or long <= max_side:
        return height, width
    scale = max_side / long
    return max(round(height * scale), 1), max(round(width * scale), 1)


def resize(x: Any, size: tuple[int, int], antialias: bool = False) -> Any:
    """Bilinear resize of an NCHW batch to ``size`` (H, W), pixel centres aligned (``align_corners=False``).

    Tensors go through ``torch.nn.functional.interpolate`` (``antialias`` for shrinking photos);
    arrays through Pillow's bilinear filter plane by plane, the filter torch's antialiased mode
    reproduces (antialiased when shrinking, plain bilinear when enlarging).
    """
    if not _is_numpy(x):
        import torch.nn.functional as nnf

        return nnf.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    out = np.empty((*x.shape[:2], *size), np.float32)
    for idx in np.ndindex(*x.shape[:2]):
        plane = Image.fromarray(np.ascontiguousarray(x[idx], dtype=np.float32))
        out[idx] = np.asarray(plane.resize((size[1], size[0]), Image.Resampling.BILINEAR))
    return out


def _tiles(x: Any, tile: int | None) -> bool:
    return tile is not None and (x.shape[-2] > tile or x.shape[-1] > tile)


def photo_logits(
    model: Net,
    x: Any,
    tta: TTA = False,
    max_side: int | None = None,
    tile: int | None = None,
    tile_overlap: float = TILE_OVERLAP,
) -> Any:
    """Logits at the photos' own size of a batch of equal-size photos (NCHW), through the net at
    :func:`forward_size` (shrunk when the long side exceeds ``max_side``), or with ``tile`` in
    overlapping windows at their own size (``max_side`` then does not apply); with optional TTA."""
    if _tiles(x, tile):
        return _tiled_logits(model, x, tta, tile, tile_overlap)
    if tile is not None:
        return predict_logits(model, x, tta)
    size = tuple(x.shape[-2:])
    net_size = forward_size(*size, max_side)
    if net_size == size:
        return predict_logits(model, x, tta)
    return resize(predict_logits(model, resize(x, net_size, antialias=True), tta), size)


def photo_ids(
    model: Net,
    x: Any,
    tta: TTA = False,
    max_side: int | None = None,
    tile: int | None = None,
    tile_overlap: float = TILE_OVERLAP,
) -> Any:
    """Class ids (N x H x W) of :func:`photo_logits`, without holding every class's logits at full size.

    A shrunk photo's logits are enlarged one class at a time while keeping the running maximum: the
    same ids as the argmax of the enlarged logits, in the memory of one class (a 12 MP photo's 23
    float32 logit maps alone are 1.1 GB); tiled photos are decided a band of rows at a time.
    """
    if _tiles(x, tile):
        return _tiled_ids(model, x, tta, tile, tile_overlap)
    if tile is not None:
        return class_ids(predict_logits(model, x, tta))
    size = tuple(x.shape[-2:])
    net_size = forward_size(*size, max_side)
    if net_size == size:
        return class_ids(predict_logits(model, x, tta))
    logits = predict_logits(model, resize(x, net_size, antialias=True), tta)
    best = resize(logits[:, :1], size)[:, 0]
    # uint8 running ids (fewer than 256 classes): a quarter of the memory traffic of int64
    if _is_numpy(best):
        ids = np.zeros(best.shape, np.uint8)
    else:
        import torch

        ids = torch.zeros(best.shape, dtype=torch.uint8)
    for c in range(1, logits.shape[1]):
        plane = resize(logits[:, c : c + 1], size)[:, 0]
        better = plane > best  # strictly: ties keep the first class, as argmax does
        if _is_numpy(ids):
            np.putmask(ids, better, c)
            np.maximum(best, plane, out=best)
        else:
            ids.masked_fill_(better, c)
            torch.maximum(best, plane, out=best)
    return ids.astype(np.int64) if _is_numpy(ids) else ids.long()


def class_ids(logits: Any) -> Any:
    """Class ids (N x H x W) of N x classes x H x W logits: the first maximum over the classes."""
    if _is_numpy(logits):
        return logits.argmax(1)
    # max().indices equals argmax() (first maximum on ties) but is ~3x faster over the class
    # dimension of an NCHW CPU tensor
    return logits.max(1).indices
