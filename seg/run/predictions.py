"""What ``seg.predict`` and ``seg.demo`` share: the model a config names (and how photos go through it,
which ``seg.eval`` reads too), and the two files of a
prediction, ``<stem>.png`` (the class ids as a palette PNG) and ``<stem>_overlay.jpg`` (the photo
blended with the class colours, with a legend). Imports no torch: an ONNX model runs without it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from PIL import Image

from seg.core.files import atomic_write
from seg.deploy.pictures import ids_png
from seg.deploy.segmenter import Segmenter
from seg.model.inference import TILE_OVERLAP
from seg.run.settings import tta_value

OVERLAY_QUALITY = 90  # JPEG quality of <stem>_overlay.jpg


def sizing(cfg: DictConfig) -> dict[str, Any]:
    """How photos go through the net (:class:`Segmenter`'s max_side, tile and tile_overlap) from a config."""
    return {"max_side": cfg.max_side, "tile": cfg.get("tile"), "tile_overlap": cfg.get("tile_overlap", TILE_OVERLAP)}


def open_segmenter(cfg: DictConfig) -> Segmenter:
    """The model of ``ckpt_path`` (torch) or of ``model_file`` (by its suffix: .onnx, .pt, .ckpt)."""
    ckpt, model_file, tta = cfg.get("ckpt_path"), cfg.get("model_file"), tta_value(cfg.tta)
    if ckpt:
        return Segmenter.from_checkpoint(ckpt, tta=tta, **sizing(cfg))
    return Segmenter.load(model_file, tta=tta, **sizing(cfg))


def save_image(image: Image.Image, path: Path, **params: Any) -> None:
    """A Pillow image written atomically (format from the suffix)."""
    buf = io.BytesIO()
    image.save(buf, format={".png": "PNG", ".jpg": "JPEG"}[path.suffix], **params)
    atomic_write(path, buf.getvalue())


def mask_file(stem: Path) -> Path:
    """``<stem>.png``: the class ids of a photo as a palette PNG."""
    return stem.with_name(f"{stem.name}.png")


def overlay_file(stem: Path) -> Path:
    """``<stem>_overlay.jpg``: the photo blended with the class colours, with a legend."""
    return stem.with_name(f"{stem.name}_overlay.jpg")


def write_mask(segmenter: Segmenter, ids: np.ndarray, stem: Path) -> Path:
    """``<stem>.png``, the ids in the model's palette (``np.array(Image.open(path))`` reads them back)."""
    path = mask_file(stem)
    save_image(ids_png(ids, segmenter.palette), path)
    return path


def write_overlay(segmenter: Segmenter, photo: np.ndarray, ids: np.ndarray, stem: Path, alpha: float) -> Path:
    """``<stem>_overlay.jpg`` with the colours at weight ``alpha``."""
    path = overlay_file(stem)
    save_image(segmenter.overlay(photo, ids, alpha), path, quality=OVERLAY_QUALITY)
    return path
