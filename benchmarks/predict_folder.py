"""Photos per second of ``seg.predict input=DIR`` over a folder of photos, per model path and I/O threads:

    python -m benchmarks.predict_folder --photos DIR --ckpt CKPT [--onnx FILE] [--int8 FILE] [--count 500]

The first ``--count`` photos of ``DIR`` (repeated under new names when it holds fewer) are linked into a
temporary folder; each configuration (the checkpoint on eager PyTorch, the ONNX and int8 ONNX exports
on ONNX Runtime, each with ``workers=0`` and with ``--workers`` threads for reading and writing)
predicts all of them into a temporary output folder, in-process through ``seg.predict``'s own code, the
configurations alternating over ``--rounds`` rounds. The time is ``seg.predict``'s (reading, predicting
and writing the masks, overlays and CSV; the model already loaded). Writes ``predict_folder.json`` and
``predict_folder.md`` to ``--out`` (default ``outputs/benchmarks/<date>_<time>/``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks import ROOT, default_out, machine, now, write_report


def link_photos(source: Path, into: Path, count: int) -> int:
    """``count`` photos of ``source`` linked into ``into`` (repeated as ``r<k>_<name>`` when it has fewer)."""
    from seg.data.photos import find_photos

    photos = find_photos(str(source))
    for i in range(count):
        p = photos[i % len(photos)]
        name = p.name if i < len(photos) else f"r{i // len(photos)}_{p.name}"
        (into / name).symlink_to(p.resolve())
    return count


def predict_once(model: dict[str, str], photos: Path, workers: int, batch_size: int) -> dict:
    """One seg.predict run over ``photos`` into a temporary folder (removed after): its own report."""
    from hydra import compose, initialize_config_dir

    from seg.predict import predict

    out = Path(tempfile.mkdtemp(prefix="predict_folder_"))
    try:
        overrides = [f"{k}={v}" for k, v in model.items()]
        overrides += [f"input={photos}", f"output={out / 'out'}", f"workers={workers}", f"batch_size={batch_size}"]
        overrides += ["progress=false"]
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("predict", overrides=overrides)
        return predict(cfg)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def markdown(report: dict) -> str:
    r, m = report, report["machine"]
    lines = [
        f"`seg.predict input=DIR` on {r['count']} photos of {r['photos']} (batch_size={r['batch_size']}), "
        f"{r['rounds']} rounds, configurations alternating; {m['cpu']} ({m['cpu_kind']}), {m['logical_cpus']} "
        f"logical CPUs, torch {m['torch']}; {r['date']}.",
        "",
        "| model | workers (I/O threads) | photos/s (median) | per round | vs eager, workers=0 |",
        "|---|---|---|---|---|",
    ]
    base = next(row["photos_per_s"] for row in r["results"] if row["model"] == "eager" and row["workers"] == 0)
    for row in r["results"]:
        rounds = ", ".join(f"{v:.1f}" for v in row["rounds"])
        rate = row["photos_per_s"]
        lines.append(f"| {row['model']} | {row['workers']} | {rate:.1f} | {rounds} | {rate / base:.2f}x |")
    lines += ["", f"Command: `{r['command']}`."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.predict_folder", description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=Path, required=True, help="a folder of photos")
    p.add_argument("--ckpt", type=Path, required=True, help="a seg.train checkpoint (eager PyTorch)")
    p.add_argument("--onnx", type=Path, default=None, help="its ONNX export")
    p.add_argument("--int8", type=Path, default=None, help="its int8 ONNX export")
    p.add_argument("--count", type=int, default=500, help="photos to predict")
    p.add_argument("--workers", type=int, default=2, help="I/O threads of the threaded runs (beside workers=0)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="output dir (default outputs/benchmarks/<date>_<time>)")
    args = p.parse_args(argv)
    models = {"eager": {"ckpt_path": str(args.ckpt)}}
    if args.onnx:
        models["onnxruntime"] = {"model_file": str(args.onnx)}
    if args.int8:
        models["onnxruntime_int8"] = {"model_file": str(args.int8)}
    configs = [(name, w) for name in models for w in (0, args.workers)]
    started = now()
    times: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory(prefix="predict_folder_in_") as tmp:
        count = link_photos(args.photos, Path(tmp), args.count)
        for r in range(args.rounds):
            for name, workers in configs[r % len(configs) :] + configs[: r % len(configs)]:
                result = predict_once(models[name], Path(tmp), workers, args.batch_size)
                assert result["predicted"] == count, result
                times[(name, workers)].append(result["photos_per_s"])
                print(
                    f"[predict_folder] round {r}: {name} workers={workers}: {result['photos_per_s']:.1f} photos/s",
                    file=sys.stderr,
                )
    report = {
        "command": " ".join(["python -m benchmarks.predict_folder", *(argv if argv is not None else sys.argv[1:])]),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "photos": str(args.photos),
        "count": count,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "results": [
            {"model": n, "workers": w, "photos_per_s": statistics.median(times[(n, w)]), "rounds": times[(n, w)]}
            for n, w in configs
        ],
    }
    out = args.out or default_out(started)
    write_report(out, "predict_folder", report, markdown(report))
    return report


if __name__ == "__main__":
    main()
