"""Inference speed per photo at batch 1: ``python -m benchmarks.infer [--quick] [--ckpt PATH]``.

For each photo size (default 320x213, MSRC's common size, and 1024x768), in one process and on the
same photo, the milliseconds of ``Segmenter.predict`` (an HxWx3 uint8 photo in, its class ids out:
everything a user waits for) through each path:

- ``eager``: the checkpoint in PyTorch eager mode as shipped (channels_last, float32);
- ``eager+tta``: the same with flip test-time augmentation (two forward passes);
- ``torchscript``: the traced and frozen TorchScript export (``seg.export format=torchscript``);
- ``onnxruntime``: the ONNX export (``seg.export format=onnx``) on ONNX Runtime's CPU provider,
  with as many threads as torch uses;
- ``onnxruntime_int8``: the int8 export of the same checkpoint (``seg.export format=onnx quantize=int8``,
  given by ``--int8``; it needs the training photos to calibrate), the same provider and threads.

The paths alternate within each of ``--rounds`` rounds (the order rotating every round, one untimed
call before each path's timed ones), so a change in the machine's load favours none; the ratio to
eager is the median of the per-round ratios. Peak RSS: of this process (cumulative), and of each path
alone in a fresh process that loads it and predicts the largest photo (what a deployment needs).

The model is ``--ckpt`` or, by default, ``model=mobilenet_skip`` with random weights (speed does not
depend on them), exported to ``--out`` unless ``--onnx`` / ``--torchscript`` name exported files.
Writes ``infer.json`` and ``infer.md`` to ``--out`` (default ``outputs/benchmarks/<date>_<time>/``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import ROOT, default_out, machine, now, write_report

PATHS = ("eager", "eager+tta", "torchscript", "onnxruntime", "onnxruntime_int8")
DEFAULT_PATHS = PATHS[:4]  # int8 only when --int8 names its file


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far: Linux's VmHWM (ru_maxrss would include the memory
    of the parent that forked a child process), else ru_maxrss (KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 2**10
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def parse_size(text: str) -> tuple[int, int]:
    """'320x213' -> (width, height)."""
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth synthetic photo (speed does not depend on its content)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([255 * yy / max(height - 1, 1), 255 * xx / max(width - 1, 1), 0 * xx + 128], -1)
    return np.clip(base + rng.integers(-20, 20, (height, width, 3)), 0, 255).astype(np.uint8)


def open_path(path: str, files: dict[str, Path], threads: int | None):
    """The Segmenter of one path, with max_side off: every photo runs at its own size."""
    from seg.deploy.segmenter import Segmenter

    if path in ("onnxruntime", "onnxruntime_int8"):
        return Segmenter.from_onnx(files["onnx" if path == "onnxruntime" else "int8"], max_side=None, threads=threads)
    if path == "torchscript":
        return Segmenter.from_torchscript(files["torchscript"], max_side=None)
    return Segmenter.from_checkpoint(files["ckpt"], tta=path == "eager+tta", max_side=None)


def random_checkpoint(out: Path, model: str) -> Path:
    """A checkpoint of ``model=<model>`` with random weights, in the format seg.train writes."""
    import torch

    from benchmarks.speed import net_config
    from seg.model.module import SegModule

    torch.manual_seed(0)
    module = SegModule(net_config(model, None), channels_last=True)
    path = out / f"random_{model}.ckpt"
    torch.save(
        {
            "hyper_parameters": dict(module.hparams),
            "state_dict": module.state_dict(),
            "datamodule_hyper_parameters": {"normalize": True, "crop_size": 240},
        },
        path,
    )
    return path


def model_files(args: argparse.Namespace, out: Path) -> dict[str, Path]:
    """The checkpoint and its two exports: given, or made in ``out``."""
    from seg.deploy.formats import export_onnx, export_torchscript, load_deploy_net

    out.mkdir(parents=True, exist_ok=True)
    files = {"ckpt": args.ckpt or random_checkpoint(out, args.model)}
    if args.int8:
        files["int8"] = args.int8
    for fmt, given, write, suffix in (
        ("onnx", args.onnx, export_onnx, ".onnx"),
        ("torchscript", args.torchscript, export_torchscript, ".pt"),
    ):
        if given:
            files[fmt] = given
        else:
            net, metadata = load_deploy_net(files["ckpt"])
            files[fmt] = out / f"model{suffix}"
            print(f"[benchmarks.infer] exporting {fmt} ...", file=sys.stderr, flush=True)
            write(net, files[fmt], metadata)
    return files


def time_sizes(segmenters: dict, sizes: list[tuple[int, int]], rounds: int, reps: int) -> list[dict]:
    """Per size and path: median ms per photo, per-round medians and ratios to eager (paths alternating)."""
    results = []
    for w, h in sizes:
        p = photo(w, h)
        times: dict[str, list[list[float]]] = {name: [] for name in segmenters}
        names = list(segmenters)
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]  # rotate the order each round
            for name in order:
                segmenters[name].predict(p)  # untimed: caches, allocator, lazy initialisation
                calls = []
                for _ in range(reps):
                    t = time.perf_counter()
                    ids = segmenters[name].predict(p)
                    calls.append(1000 * (time.perf_counter() - t))
                assert ids.shape == (h, w)
                times[name].append(calls)
        per_round = {n: [statistics.median(c) for c in times[n]] for n in names}
        for n in names:
            ratios = [e / m for e, m in zip(per_round["eager"], per_round[n])] if "eager" in per_round else []
            results.append(
                {
                    "size": f"{w}x{h}",
                    "path": n,
                    "ms_per_photo": statistics.median([t for c in times[n] for t in c]),
                    "round_ms": per_round[n],
                    "speedup_vs_eager": statistics.median(ratios) if ratios else None,
                    "round_speedups": ratios,
                }
            )
    return results


def rss_child(args: argparse.Namespace) -> None:
    """In a fresh process: load one path and predict the largest photo thrice; print the peak RSS as JSON."""
    files = {"ckpt": args.ckpt, "onnx": args.onnx, "torchscript": args.torchscript, "int8": args.int8}
    segmenter = open_path(args.rss_child, files, args.threads)
    w, h = max(args.sizes, key=lambda s: s[0] * s[1])
    for _ in range(3):
        segmenter.predict(photo(w, h))
    print(json.dumps({"path": args.rss_child, "peak_rss_mb": peak_rss_mb(), "torch": "torch" in sys.modules}))


def isolated_rss(files: dict[str, Path], args: argparse.Namespace) -> dict[str, dict]:
    """Each path's peak RSS in a process of its own (``--rss-child``)."""
    out = {}
    for name in args.paths:
        cmd = [sys.executable, "-m", "benchmarks.infer", "--rss-child", name, "--threads", str(args.threads)]
        cmd += ["--ckpt", str(files["ckpt"]), "--onnx", str(files["onnx"]), "--torchscript", str(files["torchscript"])]
        cmd += ["--int8", str(files["int8"])] if "int8" in files else []
        cmd += ["--sizes", ",".join(f"{w}x{h}" for w, h in args.sizes)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
        out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def markdown(report: dict) -> str:
    r, m = report, report["machine"]
    lines = [
        f"Inference per photo at batch 1 (`Segmenter.predict`: uint8 photo in, class ids out), {r['model']}; "
        f"{r['rounds']} rounds x {r['reps']} timed calls per path, paths alternating; {m['cpu']} ({m['cpu_kind']}; "
        f"int8 instructions: {', '.join(m.get('cpu_int8', [])) or 'none'}), "
        f"{m['logical_cpus']} logical CPUs, {r['threads']} threads (torch and ONNX Runtime), torch {m['torch']}, "
        f"onnxruntime {r['onnxruntime']}; {r['date']}.",
        "",
        "| photo | path | ms / photo (median) | speed-up vs eager (median of rounds) | per-round speed-ups "
        "| peak RSS MB, path alone |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["results"]:
        rss = r["isolated_rss"].get(row["path"], {}).get("peak_rss_mb")
        speedup = f"{row['speedup_vs_eager']:.2f}x" if row["speedup_vs_eager"] is not None else "-"
        rounds = ", ".join(f"{v:.2f}" for v in row["round_speedups"])
        rss_text = f"{rss:.0f}" if rss else "-"
        lines.append(
            f"| {row['size']} | {row['path']} | {row['ms_per_photo']:.1f} | {speedup} | {rounds} | {rss_text} |"
        )
    lines += [
        "",
        f"Command: `{r['command']}`. Peak RSS of the whole benchmark process: {r['peak_rss_mb']:.0f} MB.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.infer", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small photos, 2 rounds of 2 calls (a structure check)")
    p.add_argument("--out", type=Path, default=None, help="output dir (default outputs/benchmarks/<date>_<time>)")
    p.add_argument("--ckpt", type=Path, default=None, help="a seg.train checkpoint (default: random weights)")
    p.add_argument("--model", default="mobilenet_skip", help="the conf/model option without --ckpt")
    p.add_argument("--onnx", type=Path, default=None, help="the checkpoint's ONNX export (default: export it)")
    p.add_argument("--torchscript", type=Path, default=None, help="its TorchScript export (default: export it)")
    p.add_argument("--sizes", default=None, help="photo sizes WxH, comma-separated (default 320x213,1024x768)")
    p.add_argument(
        "--int8", type=Path, default=None, help="the checkpoint's int8 ONNX export (seg.export quantize=int8)"
    )
    p.add_argument(
        "--paths",
        default=None,
        help=f"comma-separated, from {', '.join(PATHS)} (default: all but int8, all with --int8)",
    )
    p.add_argument("--rounds", type=int, default=None, help="alternations of the paths (default 5, quick 2)")
    p.add_argument("--reps", type=int, default=None, help="timed calls per path and round (default 5, quick 2)")
    p.add_argument("--threads", type=int, default=None, help="threads of torch and ONNX Runtime (default torch's)")
    p.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)  # internal: one path's peak RSS
    args = p.parse_args(argv)
    sizes = args.sizes or ("48x32,96x64" if args.quick else "320x213,1024x768")
    args.sizes = [parse_size(s) for s in sizes.split(",")]
    args.paths = [s for s in (args.paths or ",".join(PATHS if args.int8 else DEFAULT_PATHS)).split(",") if s]
    if "onnxruntime_int8" in args.paths and not args.int8:
        p.error(
            "--paths onnxruntime_int8 needs --int8 FILE (python -m seg.export ckpt_path=... format=onnx quantize=int8)"
        )
    unknown = [s for s in args.paths if s not in PATHS]
    if unknown or "eager" not in args.paths:
        p.error(f"--paths must include eager (the reference) and come from {list(PATHS)}; unknown: {unknown}")
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.reps = args.reps or (2 if args.quick else 5)
    return args


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.rss_child:
        rss_child(args)
        return None
    import onnxruntime
    import torch

    started = now()
    out = args.out or default_out(started)
    args.threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(args.threads)
    files = model_files(args, out)
    segmenters = {name: open_path(name, files, args.threads) for name in args.paths}
    report = {
        "command": " ".join(["python -m benchmarks.infer", *(argv if argv is not None else sys.argv[1:])]),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "onnxruntime": onnxruntime.__version__,
        "threads": args.threads,
        "model": f"checkpoint {files['ckpt'].name}" if args.ckpt else f"model={args.model}, random weights",
        "files": {k: str(v) for k, v in files.items()},
        "sizes": [f"{w}x{h}" for w, h in args.sizes],
        "rounds": args.rounds,
        "reps": args.reps,
        "results": time_sizes(segmenters, args.sizes, args.rounds, args.reps),
        "peak_rss_mb": peak_rss_mb(),
    }
    report["isolated_rss"] = isolated_rss(files, args)
    report["wall_s"] = (now() - started).total_seconds()
    write_report(out, "infer", report, markdown(report))
    return report


if __name__ == "__main__":
    main()
