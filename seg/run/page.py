"""The demo page's work without Gradio (``python -m seg.demo`` wires it to the page): an uploaded
photo segmented into the files the page shows and offers (previews, palette PNG, overlay), its legend,
table and timing, the messages, the model picker over finished runs, and what a view shows."""

from __future__ import annotations

import contextlib
import html
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from PIL import Image

from seg.core.errors import ConfigError, SegError
from seg.data.photos import PhotoError, load_photo, photo_size
from seg.deploy.pictures import blend, class_shares, ids_png
from seg.deploy.segmenter import Segmenter
from seg.model.inference import forward_size, tile_spans
from seg.run.predictions import open_segmenter, save_image, sizing, write_mask, write_overlay
from seg.run.results import FinishedRun, finished_runs

log = logging.getLogger("seg.demo")  # the page's log lines, as seg.demo's

PREVIEW_SIDE = 1600  # the page shows larger pictures shrunk to this; the downloads keep the photo's size
NET_STRIDE = 32  # the encoder's output stride: a photo with a shorter side fills less than one of its cells
FORMATS = "JPEG, PNG, BMP, TIFF or WebP"


@dataclass
class Shown:
    """One photo's prediction as the page shows it; its files are in the page's work folder."""

    name: str  # the uploaded file's name
    photo: Path  # the uploaded file
    size: tuple[int, int]  # (width, height), upright
    mask: Path  # <stem>.png, the class ids (downloadable)
    overlay: Path  # <stem>_overlay.jpg with the legend painted in (downloadable)
    preview: Path  # the overlay the page shows (no legend: the page's own is beside it)
    mask_preview: Path  # the class colours the page shows
    classes: list[tuple[int, float]]  # (class id, pixel share), largest first
    ms: float  # the prediction: photo in, class ids out
    ms_total: float  # also reading the photo and making the pictures
    backend: str
    tta: bool
    notes: list[str] = field(default_factory=list)


def _preview_size(width: int, height: int) -> tuple[int, int]:
    h, w = forward_size(height, width, PREVIEW_SIDE)
    return w, h


def _previews(
    segmenter: Segmenter, photo: np.ndarray, ids: np.ndarray, mask: Path, folder: Path, alpha: float
) -> tuple[Path, Path]:
    """The overlay the page shows and its class-colour picture: the full-size files, shrunk to PREVIEW_SIDE."""
    height, width = ids.shape
    size = _preview_size(width, height)
    if size != (width, height):
        photo = np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
        ids = np.asarray(Image.fromarray(ids).resize(size, Image.Resampling.NEAREST))
        mask = folder / "preview_mask.png"
        save_image(ids_png(ids, segmenter.palette), mask)
    preview = folder / "preview.jpg"
    save_image(blend(photo, ids, segmenter.palette, alpha), preview, quality=90)
    return preview, mask


def _notes(name: str, width: int, height: int, segmenter: Segmenter) -> list[str]:
    notes = []
    if min(width, height) < NET_STRIDE:
        notes.append(
            f"{name} is {width}x{height} px: smaller than one {NET_STRIDE}-pixel cell of the net, so its "
            f"classes say little"
        )
    tile, max_side = segmenter.tile, segmenter.max_side
    if tile is not None and max(width, height) > tile:
        overlap = segmenter.tile_overlap
        windows = len(tile_spans(height, tile, overlap)) * len(tile_spans(width, tile, overlap))
        notes.append(f"{name} ({width}x{height} px) went through the net at its own size in {windows} {tile}-px tiles")
        return notes
    net_h, net_w = forward_size(height, width, None if tile is not None else max_side)
    if (net_w, net_h) != (width, height):
        notes.append(
            f"{name} ({width}x{height} px) went through the net at {net_w}x{net_h} (max_side={max_side}); "
            f"its classes were resized back to the photo's size"
        )
    return notes


def segment_photo(
    segmenter: Segmenter, path: Path, name: str, folder: Path, alpha: float, max_megapixels: float
) -> Shown:
    """Predict one uploaded photo and write its pictures to ``folder``; a :class:`PhotoError` names it
    by ``name`` (not by the upload's temporary path) when it cannot be read or is too large."""
    start = time.perf_counter()
    try:
        width, height = photo_size(path)
        if width * height > max_megapixels * 1e6:
            raise PhotoError(
                f"{name} is {width}x{height} px ({width * height / 1e6:.1f} megapixels), more than this page "
                f"takes (max_megapixels={max_megapixels:g}): shrink it and drop it again"
            )
        photo = load_photo(path)
    except PhotoError as e:
        raise PhotoError(str(e).replace(str(path), name)) from None
    t = time.perf_counter()
    ids = segmenter.predict(photo)
    ms = 1000 * (time.perf_counter() - t)
    folder.mkdir(parents=True)
    stem = folder / Path(name).stem
    mask = write_mask(segmenter, ids, stem)
    overlay = write_overlay(segmenter, photo, ids, stem, alpha)
    preview, mask_preview = _previews(segmenter, photo, ids, mask, folder, alpha)
    height, width = ids.shape
    return Shown(
        name=name,
        photo=path,
        size=(width, height),
        mask=mask,
        overlay=overlay,
        preview=preview,
        mask_preview=mask_preview,
        classes=class_shares(ids, len(segmenter.class_names)),
        ms=ms,
        ms_total=1000 * (time.perf_counter() - start),
        backend=segmenter.backend,
        tta=bool(segmenter.tta),
        notes=_notes(name, width, height, segmenter),
    )


def segment_files(
    segmenter: Segmenter, files: list[str], folder: Path, alpha: float, max_megapixels: float
) -> tuple[list[Shown], list[str]]:
    """Every uploaded photo predicted (each in its own subfolder of ``folder``), and a message for
    each one that could not be: one bad photo never stops the others."""
    shown, messages = [], []
    for i, file in enumerate(files):
        path = Path(file)
        try:
            shown.append(segment_photo(segmenter, path, path.name, folder / str(i), alpha, max_megapixels))
            log.info(f"{path.name}: {shown[-1].size[0]}x{shown[-1].size[1]} px in {shown[-1].ms:.0f} ms")
        except SegError as e:
            log.warning(f"{type(e).__name__}: {e}")
            messages.append(str(e))
        except Exception as e:  # a bug or no memory left: logged in full, the page goes on with the others
            log.exception(f"{path.name} could not be segmented")
            messages.append(f"{path.name} could not be segmented ({type(e).__name__}: {e})")
    return shown, messages


def reblend(segmenter: Segmenter, shown: Shown, alpha: float) -> Shown:
    """``shown`` with its overlays made again at opacity ``alpha`` (from its files: no prediction)."""
    photo = load_photo(shown.photo)
    with Image.open(shown.mask) as im:
        ids = np.array(im)
    overlay = write_overlay(segmenter, photo, ids, shown.overlay.with_name(shown.mask.stem), alpha)
    preview, _ = _previews(segmenter, photo, ids, shown.mask, shown.mask.parent, alpha)
    return replace(shown, overlay=overlay, preview=preview)


def forget(shown: list[Shown]) -> None:
    """Delete the files of results the page no longer shows (their downloads stay in Gradio's cache)."""
    for s in shown:
        shutil.rmtree(s.mask.parent, ignore_errors=True)
    if shown:
        with contextlib.suppress(OSError):  # the upload's folder, once empty
            shown[0].mask.parent.parent.rmdir()


def legend_html(shown: Shown, names: tuple[str, ...], palette: np.ndarray) -> str:
    """The classes present, largest share first, each with its colour swatch and name."""
    items = []
    for c, _ in shown.classes:
        r, g, b = (int(v) for v in palette[c])
        items.append(
            f'<span class="seg-class" data-class-id="{c}" style="display:inline-flex;align-items:center;'
            f'gap:0.35em;margin:0 1em 0.3em 0"><span style="width:1.1em;height:1.1em;border:1px solid #888;'
            f'background:rgb({r},{g},{b})"></span>{html.escape(names[c])}</span>'
        )
    return f'<div class="seg-legend">{"".join(items)}</div>'


def table_rows(shown: Shown, names: tuple[str, ...]) -> list[list[Any]]:
    """The class table: name, id, pixels, share in percent; largest first."""
    pixels = shown.size[0] * shown.size[1]
    return [[names[c], c, round(s * pixels), round(100 * s, 2)] for c, s in shown.classes]


def timing_text(shown: Shown) -> str:
    """The photo, its size and how long its prediction took."""
    tta = "TTA on" if shown.tta else "TTA off"
    return (
        f"**{shown.name}**, {shown.size[0]}x{shown.size[1]} px: segmented in **{shown.ms:.0f} ms** "
        f"({shown.backend}, {tta}); {shown.ms_total:.0f} ms with reading it and making the pictures"
    )


def messages_text(messages: list[str], shown: list[Shown]) -> str:
    """Every problem and note of the last upload, one line each."""
    lines = [f"- ⚠️ {m}" for m in messages] + [f"- {n}" for s in shown for n in s.notes]
    return "\n".join(lines)


def heading_classes(fixed: Segmenter | None) -> str:
    """The heading's words for the classes: the model's own, or the picked run's."""
    if fixed is None:
        return "the classes of the run you pick (its legend names them)"
    names = fixed.class_names
    return f"the model's {len(names)} classes ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})"


class Models:
    """The model the page predicts with: the one named on the command line, or the run picked on
    the page (loaded on first use, the last one kept)."""

    def __init__(self, fixed: Segmenter | None, runs: list[FinishedRun], sizing: dict[str, Any]) -> None:
        self.fixed, self.runs, self.sizing = fixed, {str(r.run_dir): r for r in runs}, sizing
        self._loaded: tuple[str, Segmenter] | None = None
        self._lock = threading.Lock()

    def choices(self) -> list[tuple[str, str]]:
        return [(r.label(), key) for key, r in self.runs.items()]

    def get(self, choice: str | None) -> Segmenter:
        if self.fixed is not None:
            return self.fixed
        if choice not in self.runs:
            raise ConfigError(f"no such run on this page: {choice}; pick one of the list")
        with self._lock:
            if self._loaded is None or self._loaded[0] != choice:
                self._loaded = None  # free the previous model before loading the next
                run = self.runs[choice]
                log.info(f"loading {run.checkpoint}")
                self._loaded = (choice, Segmenter.from_checkpoint(run.checkpoint, **self.sizing))
            return self._loaded[1]


def open_models(cfg: DictConfig) -> Models:
    """The command line's model, or the finished runs under ``runs`` to pick from (none: an error)."""
    if cfg.get("ckpt_path") or cfg.get("model_file"):
        return Models(open_segmenter(_without_tta(cfg)), [], sizing(cfg))
    runs = finished_runs(cfg.runs)
    if not runs:
        raise ConfigError(
            f"runs={cfg.runs}: no finished training runs there (a result.json and a checkpoint); train one "
            f"(python -m seg.train), pass another runs=..., or name a model: ckpt_path=... or model_file=..."
        )
    models = Models(None, runs, sizing(cfg))
    models.get(str(runs[0].run_dir))  # the newest run, loaded before serving: the first upload does not wait for it
    return models


def _without_tta(cfg: DictConfig) -> DictConfig:
    out = cfg.copy()
    out.tta = False  # the page's switch chooses per request
    return out


def view(shown: list[Shown], index: int | None, segmenter: Segmenter | None) -> tuple:
    """What the page's panels show for photo ``index``: overlay, legend, class mask, table, downloads, timing."""
    if not shown or index is None or segmenter is None:
        return None, "", None, [], None, ""
    s = shown[index]
    names, palette = segmenter.class_names, segmenter.palette
    return (
        str(s.preview),
        legend_html(s, names, palette),
        str(s.mask_preview),
        table_rows(s, names),
        [str(s.mask), str(s.overlay)],
        timing_text(s),
    )
