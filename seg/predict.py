"""`python -m seg.predict ckpt_path=PATH|model_file=FILE input=FILE|DIR|GLOB [output=DIR]`: class maps of photos.

For every photo, at its own width and height: ``<stem>.png`` (the class ids as a palette PNG, the MSRC
colours embedded) and ``<stem>_overlay.jpg`` (the photo blended with the colours, with a legend); and
one ``predictions.csv``. A thin loop over :class:`seg.deploy.segmenter.Segmenter`: with ``model_file=*.onnx``
it runs on ONNX Runtime and imports no torch. A photo that cannot be read is skipped and named; the
run then ends with an error once the others are written.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from seg.core.errors import ConfigError
from seg.core.files import unwritable, write_csv
from seg.core.rules import Get, Settings, given, integer, number, shown, switch
from seg.data.photos import PhotoError, find_photos, load_photo, photo_size
from seg.deploy.pictures import class_shares
from seg.deploy.segmenter import Segmenter
from seg.model.inference import max_side_problem, tile_overlap_problem, tile_problem, tta_problem
from seg.run.entry import hydra_main, run_job
from seg.run.predictions import mask_file, open_segmenter, overlay_file, write_mask, write_overlay

log = logging.getLogger(__name__)

CSV_FILE = "predictions.csv"
CSV_FIELDS = ["file", "width", "height", "classes", "ms_per_image", "mask"]


def output_stems(photos: list[Path]) -> list[str]:
    """The output name stem of each photo: its own; photos sharing one are an error (outputs would clash)."""
    counts = Counter(p.stem for p in photos)
    clashes = sorted(str(p) for p in photos if counts[p.stem] > 1)
    if clashes:
        raise ConfigError(
            f"these photos would write the same output files (same name stem): {', '.join(clashes[:6])}; "
            f"predict them in separate runs (another output=...) or rename them"
        )
    return [p.stem for p in photos]


def check_output(out: Path, photos: list[Path], stems: list[str], overwrite: bool) -> None:
    """Refuse the photos' own folder, and files of an earlier run unless ``overwrite``: before any work."""
    if out.resolve() in {p.parent.resolve() for p in photos}:
        raise ConfigError(
            f"output={out} is the folder of the input photos: pass another output=... (predictions never go "
            f"beside the photos)"
        )
    planned = [out / CSV_FILE] + [f(out / s) for s in stems for f in (mask_file, overlay_file)]
    existing = [p for p in planned if p.exists()]
    if existing and not overwrite:
        raise ConfigError(
            f"output={out} already has {len(existing)} of the files this run writes (e.g. {existing[0].name}): "
            f"pass overwrite=true to replace them, or another output=..."
        )


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Predict every photo of ``cfg.input`` into ``cfg.output``; unreadable photos are skipped, then an error."""
    photos = find_photos(str(cfg.input))
    out = Path(cfg.output).expanduser() if cfg.get("output") else Path(cfg.paths.output_dir)
    stems = dict(zip(photos, output_stems(photos)))
    check_output(out, photos, list(stems.values()), cfg.overwrite)
    segmenter = open_segmenter(cfg)
    out.mkdir(parents=True, exist_ok=True)
    how = f"{segmenter.backend}, tta={cfg.tta}, max_side={cfg.max_side}, tile={cfg.get('tile')}"
    log.info(f"{len(photos)} photos -> {out} ({how})")

    failed: dict[Path, str] = {}
    started = time.perf_counter()
    batches = plan_batches(photos, cfg.batch_size, failed)
    rows: dict[Path, dict[str, Any]] = {}
    with (
        Pipeline(cfg.workers) as pool,
        tqdm(total=len(photos), unit="photo", desc="predict", disable=not cfg.progress) as bar,
    ):
        bar.update(len(failed))
        # photos are decoded ahead and predictions written behind, in threads (Pillow and the PNG/JPEG
        # encoders release the GIL), while the net runs on every core: at most `ahead` batches each way
        ahead = 2
        reads = deque(pool.submit(read_batch, chunk) for chunk in batches[:ahead])
        writes: deque = deque()
        for i in range(len(batches)):
            arrays, unread = reads.popleft().result()
            failed.update(unread)
            if i + ahead < len(batches):
                reads.append(pool.submit(read_batch, batches[i + ahead]))
            # a header can disagree with the decoded photo: batch by the decoded size
            for shape in {a.shape for a in arrays.values()}:
                batch = [p for p, a in arrays.items() if a.shape == shape]
                t = time.perf_counter()
                ids = segmenter.predict_batch([arrays[p] for p in batch])
                ms = 1000 * (time.perf_counter() - t) / len(batch)
                for p, p_ids in zip(batch, ids):
                    args = (segmenter, p, arrays[p], p_ids, out / stems[p], ms, cfg.overlay_alpha)
                    writes.append((p, pool.submit(write_prediction, *args)))
            bar.update(len(batches[i]))
            while len(writes) > ahead * cfg.batch_size:
                p, done = writes.popleft()
                rows[p] = done.result()
        for p, done in writes:
            rows[p] = done.result()

    write_csv(out / CSV_FILE, [rows[p] for p in photos if p in rows], CSV_FIELDS)  # in input order
    seconds = time.perf_counter() - started
    log.info(
        f"wrote {len(rows)} predictions and {CSV_FILE} to {out} in {seconds:.1f} s ({len(rows) / seconds:.1f} photos/s)"
    )
    if failed:
        for why in failed.values():
            log.error(f"skipped: {why}")
        raise PhotoError(
            f"{len(failed)} of {len(photos)} photos could not be read and were skipped: "
            f"{', '.join(str(p) for p in failed)}; the other {len(rows)} were written to {out}"
        )
    return {
        "output": str(out),
        "predicted": len(rows),
        "failed": [str(p) for p in failed],
        "seconds": seconds,  # reading, predicting and writing, the model already loaded
        "photos_per_s": len(rows) / seconds,
    }


def plan_batches(photos: list[Path], batch_size: int, failed: dict[Path, str]) -> list[list[Path]]:
    """The photos in batches of one size (read from their headers), at most ``batch_size`` each; photos
    whose header cannot be read go to ``failed``."""
    by_size: dict[tuple[int, int], list[Path]] = {}
    for p in photos:
        try:
            by_size.setdefault(photo_size(p), []).append(p)
        except PhotoError as e:
            failed[p] = str(e)
    return [group[i : i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)]


def read_batch(paths: list[Path]) -> tuple[dict[Path, np.ndarray], dict[Path, str]]:
    """The decoded photos of a batch, and why the others could not be read."""
    arrays, failed = {}, {}
    for p in paths:
        try:
            arrays[p] = load_photo(p)
        except PhotoError as e:
            failed[p] = str(e)
    return arrays, failed


class Pipeline:
    """A pool of ``workers`` threads for reading and writing photos; with 0, every task runs at once in
    the calling thread (the same results, no overlap)."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="predict-io") if workers else None

    def submit(self, fn: Any, *args: Any) -> Future:
        if self._pool is not None:
            return self._pool.submit(fn, *args)
        done: Future = Future()
        try:
            done.set_result(fn(*args))
        except BaseException as e:  # handed to .result(), as a pool would
            done.set_exception(e)
        return done

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def write_prediction(
    segmenter: Segmenter, path: Path, photo: np.ndarray, ids: np.ndarray, stem: Path, ms: float, alpha: float
) -> dict[str, Any]:
    """``<stem>.png`` and ``<stem>_overlay.jpg`` of one photo; its CSV row."""
    mask = write_mask(segmenter, ids, stem)
    write_overlay(segmenter, photo, ids, stem, alpha)
    shares = class_shares(ids, len(segmenter.class_names))
    return {
        "file": str(path),
        "width": ids.shape[1],
        "height": ids.shape[0],
        "classes": ";".join(f"{segmenter.class_names[c]}:{s:.6f}" for c, s in shares),
        "ms_per_image": round(ms, 2),
        "mask": mask.name,
    }


def _model_input_output(get: Get, at: str) -> list[str]:
    out = []
    ckpt, model_file = get("ckpt_path"), get("model_file")
    if given(ckpt) == given(model_file):
        out.append(
            "ckpt_path / model_file: pass one model, ckpt_path=... (a checkpoint written by seg.train) or "
            f"model_file=... (a .onnx or .pt file written by seg.export); got ckpt_path={shown(ckpt)} "
            f"model_file={shown(model_file)}"
        )
    if not given(get("input")):
        out.append("input: pass the photos, input=FILE, input=FOLDER or input='GLOB' (e.g. 'photos/**/*.jpg')")
    output = get("output")
    if given(output):
        folder = Path(str(output)).expanduser()
        if folder.exists() and not folder.is_dir():
            out.append(f"output={output}: is a file; pass a folder for the predictions")
        elif reason := unwritable(folder):
            out.append(f"output={output}: cannot be written ({reason}); pass another output=...")
    return out


# the keys seg.predict reads (it builds no data set: the check imports no torch)
SETTINGS = Settings(
    {
        "tta": tta_problem,
        "max_side": max_side_problem,
        "tile": tile_problem,
        "tile_overlap": tile_overlap_problem,
        "batch_size": integer(1),
        "workers": integer(0),
        "overlay_alpha": number(0, 1),
        "overwrite": switch,
        "progress": switch,
    },
    checks=(_model_input_output,),
)


def run(cfg: DictConfig) -> int:
    """What Hydra calls: predict, and hand the number of photos predicted to a sweeper."""
    return run_job(cfg, lambda c: predict(c)["predicted"], SETTINGS)


main = hydra_main("predict", run)


if __name__ == "__main__":
    main()
