"""Data-loading speed with and without the decoded-data cache: ``python -m benchmarks.data [--quick]``.

Iterates the real training DataLoader (batch size 8, one process) for a few epochs per configuration and
reports ms per image, for each ``--sources``: ``msrc`` (``data=msrc``, the archive) and ``folder`` (the same
photos and masks written out as a flat folder data set with palette PNG masks by
:mod:`benchmarks.msrc_folders`, read by ``data=folder`` at the same crop size): the two should cost the
same per image.

- ``cache``: ``data.cache=true`` (the default): the first epoch decodes every BMP and colour target,
  later epochs read the decoded arrays from memory; both are reported.
- ``no_cache``: ``data.cache=false``: every epoch decodes from disk.

each with the course's centre crop and with ``data.augment=true``. The data come from ``--url``
(default ``$SEG_DATA_URL``, else the public archive) into ``--data-dir`` (default ``data/``), the same
code path as training. Writes ``data.json`` and ``data.md`` to ``--out`` (default
``outputs/benchmarks/<date>_<time>/``) and prints the table. Compare the ms per image with a training
step's (``python -m benchmarks.speed``) to see what the cache saves per epoch.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from pathlib import Path

import torch

from benchmarks import ROOT, default_out, machine, now, write_report
from benchmarks.msrc_folders import write_folder
from seg.data.archive import DEFAULT_SHA256, DEFAULT_URL, prepare_data
from seg.data.datamodule import SegDataModule
from seg.data.dataset import decode
from seg.data.folder_data import FolderDataModule
from seg.data.msrc_data import MSRCDataModule


def epoch_ms_per_image(loader) -> float:
    """Wall time of one pass over ``loader`` (decode, crop/augment, normalise, collate) per image."""
    start, n = time.perf_counter(), 0
    for x, _ in loader:
        n += x.shape[0]
    return (time.perf_counter() - start) * 1000 / n


def datamodule(source: str, args: argparse.Namespace, **kwargs) -> SegDataModule:
    """The datamodule of ``source`` at the benchmark's batch and crop size."""
    common = {"batch_size": args.batch_size, "crop_size": args.size, **kwargs}
    if source == "msrc":
        return MSRCDataModule(str(args.data_dir), url=args.url, sha256=args.sha256, **common)
    msrc = prepare_data(args.url, args.data_dir, args.sha256)
    folder = args.data_dir / "msrc_folder"
    if not (folder / "classes.txt").is_file():
        write_folder(msrc, folder, "flat", "palette")
    return FolderDataModule(
        str(folder), ignore_index=255, allow_unseen_classes=True, cache_dir=str(args.data_dir / "checks"), **common
    )


def run(args: argparse.Namespace, started) -> dict:
    torch.manual_seed(0)
    rows = []
    for augment, cache, source in itertools.product((False, True), (True, False), args.sources):
        decode.cache_clear()  # the cache is per process: start every configuration cold
        dm = datamodule(source, args, augment=augment, cache=cache)
        dm.prepare_data()
        start = time.perf_counter()
        dm.setup("fit")  # with the cache: decodes the train and val splits here
        setup_s = time.perf_counter() - start
        loader = dm.train_dataloader()
        first = epoch_ms_per_image(loader)
        n_train = len(dm.datasets["train"])
        if cache:  # setup decoded train + val: add the decoding time per image to the first epoch
            first += setup_s * 1000 / (n_train + len(dm.datasets["val"]))
        later = [epoch_ms_per_image(loader) for _ in range(args.epochs - 1)]
        rows.append(
            {
                "source": source,
                "config": ("cache" if cache else "no_cache") + ("+augment" if augment else ""),
                "cache": cache,
                "augment": augment,
                "images": n_train,
                "first_epoch_ms_per_image": first,
                "later_epochs_ms_per_image": statistics.median(later) if later else None,
            }
        )
    return {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "batch_size": args.batch_size,
        "size": args.size,
        "epochs": args.epochs,
        "results": rows,
    }


def markdown(report: dict) -> str:
    lines = ["| source | config | first epoch ms/img | later epochs ms/img (median) |", "|---|---|---:|---:|"]
    for r in report["results"]:
        later = "-" if r["later_epochs_ms_per_image"] is None else f"{r['later_epochs_ms_per_image']:.2f}"
        lines.append(f"| {r['source']} | {r['config']} | {r['first_epoch_ms_per_image']:.2f} | {later} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.data", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 epochs per configuration (default 4)")
    p.add_argument("--data-dir", type=Path, default=ROOT / "data", help="where the archive is (or goes)")
    p.add_argument("--url", default=os.environ.get("SEG_DATA_URL", DEFAULT_URL), help="data archive source")
    p.add_argument("--sha256", default=DEFAULT_SHA256, help="the archive's SHA-256 ('none': do not check)")
    p.add_argument("--out", type=Path, default=None, help="output dir (default outputs/benchmarks/<date>_<time>)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--size", type=int, default=240, help="crop side")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--sources", default="msrc,folder", help="comma-separated: msrc (the archive), folder (as folders)")
    args = p.parse_args(argv)
    args.epochs = args.epochs or (2 if args.quick else 4)
    args.sha256 = None if str(args.sha256).lower() in ("none", "null", "") else args.sha256
    args.sources = [x.strip() for x in args.sources.split(",") if x.strip()]
    if set(args.sources) - {"msrc", "folder"} or not args.sources:
        p.error(f"--sources: msrc and/or folder, got {args.sources}")
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (the first epoch is reported apart)")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started = now()
    report = run(args, started)
    write_report(args.out or default_out(started), "data", report, markdown(report))
    return report


if __name__ == "__main__":
    main()
