"""Training throughput and inference latency on the CPU: ``python -m benchmarks.speed [--quick]``.

For each speed configuration (memory layout, precision, torch.compile, threads), in one process and
on the same synthetic batches:

- (a) training images/s of this project's ``SegModule`` driven by ``pl.Trainer`` (training_step with
  its loss, metrics and logging, the optimizer step through Lightning's loop);
- (b) training images/s of a minimal plain-PyTorch loop over the same network and optimizer (the
  reference loop: zero_grad, forward, loss, backward, step);
- their ratio (a)/(b): the median over ``--rounds`` alternations of the two (the first path flips
  each round, so a drift in machine load favours neither); inference latency in ms per image at
  batch 1 and 8; peak resident memory; parameter count and weight size.

Inputs are synthetic tensors of the real size (3x240x240 by default, random labels with void) and the
encoder is randomly initialised (``--weights IMAGENET1K_V1`` to load the ImageNet one): speed does
not depend on the values. Throughput is the batch size over the median wall time between the starts
of consecutive training steps after ``--warmup`` steps (the mean is in the JSON too).

Writes ``speed.json`` and ``speed.md`` (a Markdown table) to ``--out`` (default
``outputs/benchmarks/<date>_<time>/``) and prints the table. ``--quick``: only the project's default
configuration, few steps (about a minute on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from benchmarks import ROOT, default_out, machine, now, write_report

# name -> speed settings; "channels_last" is the project's default (conf/model/*.yaml)
CONFIGS: dict[str, dict] = {
    "fp32": {"channels_last": False, "precision": "32", "compile": False, "threads": None},
    "channels_last": {"channels_last": True, "precision": "32", "compile": False, "threads": None},
    "channels_last+bf16": {"channels_last": True, "precision": "bf16-mixed", "compile": False, "threads": None},
    "channels_last+compile": {"channels_last": True, "precision": "32", "compile": True, "threads": None},
    "channels_last+1thread": {"channels_last": True, "precision": "32", "compile": False, "threads": 1},
    # the loss on the decoder's logits against nearest-downsampled targets (model.low_res_loss)
    "channels_last+low_res_loss": {
        "channels_last": True,
        "precision": "32",
        "compile": False,
        "threads": None,
        "low_res_loss": True,
    },
    # the same at bf16-mixed: what trainer.precision=auto picks where the CPU has native bfloat16
    "channels_last+bf16+low_res_loss": {
        "channels_last": True,
        "precision": "bf16-mixed",
        "compile": False,
        "threads": None,
        "low_res_loss": True,
    },
    # the same with the encoder's stride-2 and stride-4 blocks frozen (model.net.freeze_params=27 on
    # MobileNetV2): no backward pass through the largest feature maps
    "channels_last+bf16+low_res_loss+freeze27": {
        "channels_last": True,
        "precision": "bf16-mixed",
        "compile": False,
        "threads": None,
        "low_res_loss": True,
        "freeze_params": 27,
    },
}
DEFAULT_CONFIG = "channels_last"


def net_config(model: str, weights: str | None) -> dict:
    """The ``net`` config of ``model=<model>`` as Hydra composes it (with ``weights`` replaced)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from seg.data.loader import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}"])
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    net["weights"] = weights
    return net


def synthetic_loader(n_batches: int, batch_size: int, size: int, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    n = n_batches * batch_size
    x = torch.randn(n, 3, size, size, generator=g)
    y = torch.randint(-1, 23, (n, size, size), generator=g)  # -1 = void, ignored by the loss
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision.startswith("bf16") else nullcontext()


def interval_stats(intervals: list[float], batch_size: int) -> dict:
    """images/s from wall times between consecutive step starts (median; the mean beside it)."""
    return {
        "images_per_s": batch_size / statistics.median(intervals),
        "images_per_s_mean": batch_size * len(intervals) / sum(intervals),
        "step_s_median": statistics.median(intervals),
        "steps": len(intervals),
    }


def step_stats(starts: list[float], batch_size: int, warmup: int) -> dict:
    """Stats of one run from its step start times (the last entry is the end), after ``warmup`` steps."""
    intervals = [b - a for a, b in zip(starts[warmup:-1], starts[warmup + 1 :])]
    return {**interval_stats(intervals, batch_size), "warmup_s": starts[warmup] - starts[0], "intervals": intervals}


def pooled(stats: list[dict], batch_size: int) -> dict:
    """Stats over the timed steps of several rounds together."""
    return {**interval_stats([t for s in stats for t in s["intervals"]], batch_size), "rounds": len(stats)}


def plain_loop(net_cfg: dict, spec: dict, loader: DataLoader, warmup: int, seed: int) -> tuple[dict, nn.Module]:
    """The reference loop: zero_grad, forward, loss, backward, step."""
    from hydra.utils import instantiate

    from seg.model.losses import nearest_targets

    torch.manual_seed(seed)
    net = instantiate(net_cfg)
    if spec["channels_last"]:
        net = net.to(memory_format=torch.channels_last)
    if spec["compile"]:
        net.compile()
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    criterion = nn.CrossEntropyLoss(ignore_index=-1)
    net.train()
    starts = []
    for x, y in loader:
        starts.append(time.perf_counter())
        if spec["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad()
        with autocast(spec["precision"]):
            if spec.get("low_res_loss"):
                out = net(x, full_size=False)
                loss = criterion(out, nearest_targets(y, out.shape[-2:]))
            else:
                loss = criterion(net(x), y)
        loss.backward()
        optimizer.step()
    starts.append(time.perf_counter())
    return step_stats(starts, loader.batch_size, warmup), net


def lightning_loop(net_cfg: dict, spec: dict, loader: DataLoader, warmup: int, seed: int) -> dict:
    """The project's SegModule through pl.Trainer (no validation, logger or checkpoints)."""
    import pytorch_lightning as pl

    from seg.model.module import SegModule

    class StepTimes(pl.Callback):
        def __init__(self) -> None:
            self.starts: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.starts.append(time.perf_counter())

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.end = time.perf_counter()

    torch.manual_seed(seed)
    module = SegModule(
        net_cfg,
        {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
        None,
        channels_last=spec["channels_last"],
        compile=spec["compile"],
        low_res_loss=spec.get("low_res_loss", False),
    )
    timer = StepTimes()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        precision=spec["precision"],
        max_epochs=1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "the dataloader does not have many workers"
        trainer.fit(module, train_dataloaders=loader)
    return step_stats([*timer.starts, timer.end], loader.batch_size, warmup)


@torch.no_grad()
def latency_ms(net: nn.Module, spec: dict, batch: int, size: int, reps: int) -> float:
    """Median ms per image of an eval-mode forward pass at this batch size."""
    net.eval()
    x = torch.randn(batch, 3, size, size)
    if spec["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(reps + 1):  # one warm-up call
        t = time.perf_counter()
        with autocast(spec["precision"]):
            net(x)
        if i:
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times) / batch


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def run_config(name: str, net_cfg: dict, args: argparse.Namespace) -> dict:
    spec = CONFIGS[name]
    if "freeze_params" in spec:
        net_cfg = {**net_cfg, "freeze_params": spec["freeze_params"]}
    threads_before = torch.get_num_threads()
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    try:
        loader = synthetic_loader(args.warmup + args.steps, args.batch_size, args.size)
        rounds = []
        for i in range(args.rounds):
            # alternate which path goes first, so a drift in machine load does not favour one of them
            if i % 2 == 0:
                plain, net = plain_loop(net_cfg, spec, loader, args.warmup, args.seed)
                lightning = lightning_loop(net_cfg, spec, loader, args.warmup, args.seed)
            else:
                lightning = lightning_loop(net_cfg, spec, loader, args.warmup, args.seed)
                plain, net = plain_loop(net_cfg, spec, loader, args.warmup, args.seed)
            rounds.append({"plain": plain, "lightning": lightning})
        plain = pooled([r["plain"] for r in rounds], args.batch_size)
        lightning = pooled([r["lightning"] for r in rounds], args.batch_size)
        ratios = [r["lightning"]["images_per_s"] / r["plain"]["images_per_s"] for r in rounds]
        latency = {f"batch_{b}": latency_ms(net, spec, b, args.size, args.infer_reps) for b in (1, 8)}
    finally:
        torch.set_num_threads(threads_before)
    return {
        "config": name,
        **spec,
        "lightning": lightning,
        "plain": plain,
        "lightning_over_plain": statistics.median(ratios),  # median over rounds of the per-round ratio
        "round_ratios": ratios,
        "inference_ms_per_image": latency,
        "peak_rss_mb_so_far": peak_rss_mb(),
    }


def markdown(report: dict) -> str:
    r = report
    lines = [
        f"Speed of `model={r['model']}` ({r['params']:,} parameters, {r['weights_mb']:.1f} MB float32), "
        f"batch {r['batch_size']}, {r['size']}x{r['size']} inputs ({r['data']}), {r['steps']} timed steps after "
        f"{r['warmup']} warm-up, {r['rounds']} round(s) per path; {r['machine']['cpu']} ({r['machine']['cpu_kind']}), "
        f"{r['machine']['logical_cpus']} logical CPUs, "
        f"torch {r['machine']['torch']}; {r['date']}.",
        "",
        "| config | Lightning img/s | plain img/s | Lightning / plain | plain vs first row "
        "| infer ms/img b1 | b8 | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = r["results"][0]["plain"]["images_per_s"]
    for c in r["results"]:
        lat = c["inference_ms_per_image"]
        lines.append(
            f"| {c['config']} | {c['lightning']['images_per_s']:.2f} | {c['plain']['images_per_s']:.2f} | "
            f"{c['lightning_over_plain']:.3f} | {c['plain']['images_per_s'] / base:.2f}x | "
            f"{lat['batch_1']:.1f} | {lat['batch_8']:.1f} | {c['peak_rss_mb_so_far']:.0f} |"
        )
    lines += ["", f"Command: `{r['command']}`. Peak RSS is the process's peak so far (cumulative over rows)."]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="default config only, 1 warm-up + 3 timed steps")
    p.add_argument("--out", type=Path, default=None, help="output dir (default outputs/benchmarks/<date>_<time>)")
    p.add_argument("--configs", default=None, help=f"comma-separated, from {', '.join(CONFIGS)} (default: all)")
    p.add_argument("--model", default="mobilenet", help="a conf/model option (mobilenet, mobilenet_skip)")
    p.add_argument("--weights", default=None, help="encoder weights, e.g. IMAGENET1K_V1 (default: random init)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--size", type=int, default=240, help="square input side")
    p.add_argument("--steps", type=int, default=None, help="timed training steps (default 8, quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 2, quick 1)")
    p.add_argument("--infer-reps", type=int, default=None, help="timed inference calls (default 5, quick 3)")
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="plain/Lightning alternations per config; the ratio is the median over rounds (default 3, quick 1)",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    quick = args.quick
    args.configs = [c for c in (args.configs or (DEFAULT_CONFIG if quick else ",".join(CONFIGS))).split(",") if c]
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        p.error(f"unknown configs {unknown}; choose from {list(CONFIGS)}")
    args.steps = args.steps or (3 if quick else 8)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 2)
    args.infer_reps = args.infer_reps or (3 if quick else 5)
    args.rounds = args.rounds or (1 if quick else 3)
    if args.steps < 2:
        p.error("--steps must be at least 2")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from hydra.utils import instantiate

    from seg.model.nets import count_parameters

    started = now()
    out = args.out or default_out(started)
    net_cfg = net_config(args.model, args.weights)
    net = instantiate(net_cfg)
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    report = {
        "command": " ".join(["python -m benchmarks.speed", *(argv if argv is not None else sys.argv[1:])]),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "model": args.model,
        "net": net_cfg,
        "params": count_parameters(net),
        "trainable_params": count_parameters(net, trainable_only=True),
        "weights_mb": buf.tell() / 2**20,
        "data": "synthetic tensors, random labels"
        + (", pretrained encoder" if args.weights else ", random-init encoder"),
        "batch_size": args.batch_size,
        "size": args.size,
        "steps": args.steps,
        "warmup": args.warmup,
        "infer_reps": args.infer_reps,
        "rounds": args.rounds,
        "results": [],
    }
    del net
    for name in args.configs:
        print(f"[benchmarks.speed] {name} ...", file=sys.stderr, flush=True)
        report["results"].append(run_config(name, net_cfg, args))
    report["peak_rss_mb"] = peak_rss_mb()
    report["wall_s"] = (now() - started).total_seconds()
    write_report(out, "speed", report, markdown(report))
    return report


if __name__ == "__main__":
    main()
