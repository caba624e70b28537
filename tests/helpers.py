"""Test helpers: a tiny data set in the real MSRC on-disk format, running entry points as a user
does, composing configs, reading TensorBoard events."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from seg.data.labels import PALETTE

ROOT = Path(__file__).resolve().parents[1]
# (width, height): some over the 64-pixel test crop, some under it (padded with void)
SIZES = [(80, 56), (56, 80), (72, 72), (48, 40), (96, 64), (64, 96)]
SPLIT_COUNTS = {"train": 6, "val": 3, "test": 3}
CROP = 64  # tests use 64x64 crops: 2x2 encoder features, fast on a CPU


def make_sample(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """A photo whose colour encodes its label (so a net can learn it) and its colour target.

    Four vertical bands of random classes, the last rows void.
    """
    classes = rng.choice(len(PALETTE), size=4, replace=False)
    ids = np.repeat(classes, -(-w // 4))[:w][None].repeat(h, 0)
    ids[-max(h // 8, 1) :] = -1
    target = np.zeros((h, w, 3), np.uint8)
    target[ids >= 0] = PALETTE[ids[ids >= 0]]
    image = (target.astype(np.int16) // 2 + 60 + rng.integers(-20, 20, (h, w, 3))).clip(0, 255).astype(np.uint8)
    return image, target


def write_dataset(root: Path, seed: int = 0) -> Path:
    """Write segmentation_data/ in the real on-disk layout below ``root``; return that folder."""
    rng = np.random.default_rng(seed)
    data = root / "segmentation_data"
    (data / "images").mkdir(parents=True)
    (data / "targets").mkdir()
    i = 0
    for split, n in SPLIT_COUNTS.items():
        names = []
        for _ in range(n):
            w, h = SIZES[i % len(SIZES)]
            name = f"{i + 1}_{i % 5}_s"
            image, target = make_sample(rng, w, h)
            Image.fromarray(image).save(data / "images" / f"{name}.bmp")
            Image.fromarray(target).save(data / "targets" / f"{name}_GT.bmp")
            # the real files list names with .bmp; also test a bare name
            names.append(f"{name}.bmp" if i % 3 else name)
            i += 1
        # CRLF line ends and a trailing blank line, as Windows-made split files have
        (data / f"{split}.txt").write_bytes(("\r\n".join(names) + "\r\n\r\n").encode())
    for sub in ("images", "targets"):
        (data / sub / "Thumbs.db").write_bytes(b"\x00junk")
    (data / "info.html").write_text("<html>MSRC-v2</html>")
    return data


def zip_dir(folder: Path, zip_path: Path) -> Path:
    """Zip ``folder`` with its name as the top-level folder, as the I2DL archive is."""
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, p.relative_to(folder.parent))
    return zip_path


def tiny_overrides(archive_url: str, data_dir: Path, log_dir: Path) -> list[str]:
    """Hydra overrides for a tiny CPU run: the synthetic archive, 64-pixel crops, batch 3, a
    random-init encoder, one val and test batch, a log line every step."""
    return [
        f"data.url={archive_url}",
        "data.sha256=null",  # the tests' archive is not the I2DL one (tests/data/test_archive.py checks hashes)
        f"paths.data_dir={data_dir}",
        f"paths.log_dir={log_dir}",
        f"data.crop_size={CROP}",
        "data.batch_size=3",
        "model.net.weights=null",
        "trainer.accelerator=cpu",
        "++trainer.limit_val_batches=1",
        "++trainer.limit_test_batches=1",
        "trainer.log_every_n_steps=1",
        "callbacks.progress_bar.refresh_rate=0",
    ]


def run_module(
    module: str, *args: str, env: dict | None = None, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS...`` from the project root, as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def compose_config(name: str, *overrides: str, hydra_config: bool = False):
    """``conf/<name>.yaml`` composed with ``overrides``, as the entry point would see it."""
    from hydra import compose, initialize_config_dir

    from seg.data.loader import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(name, overrides=list(overrides), return_hydra_config=hydra_config)


def scalars(run_dir: Path) -> dict[str, list[float]]:
    """Every scalar series in a run's TensorBoard event files, by tag, as TensorBoard shows them: the files
    read in order as one run, so that a resumed part's purge step drops what the first part logged later."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run_dir / "tensorboard"))
    ea.Reload()
    return {tag: [e.value for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def best_score(run_dir: Path, monitor: str = "val/acc") -> float:
    """The best monitored value that the run's ModelCheckpoint recorded in its checkpoint."""
    import torch

    ckpt = torch.load(next((run_dir / "checkpoints").glob("epoch_*.ckpt")), weights_only=True)
    state = next(v for k, v in ckpt["callbacks"].items() if k.startswith("ModelCheckpoint") and monitor in k)
    return float(state["best_model_score"])


def write_folder_dataset(
    root: Path,
    classes: tuple[str, ...] = ("sky", "road", "car"),
    sizes: tuple[tuple[int, int], ...] = ((96, 64), (64, 80), (72, 72), (80, 56)),
    per_split: dict[str, int] | None = None,
    seed: int = 0,
) -> Path:
    """A small data set of your own in the flat layout: ``root/images/*.jpg`` (lossless PNG for exactness
    where asked), ``root/masks/*.png`` 8-bit index masks with 255 as ignored, ``root/{train,val,test}.txt``
    when ``per_split`` is given (else no lists: a seeded split). Each photo's colour encodes its classes."""
    rng = np.random.default_rng(seed)
    palette = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]], np.uint8)[: len(classes)]
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    counts = per_split or {"pool": 10}
    i = 0
    for split, n in counts.items():
        names = []
        for _ in range(n):
            w, h = sizes[i % len(sizes)]
            ids = np.repeat(rng.integers(0, len(classes), 3), -(-w // 3))[:w][None].repeat(h, 0)
            ids[: max(h // 10, 1)] = 255  # a band of ignored pixels
            image = palette[np.where(ids == 255, 0, ids)].astype(np.int16) + rng.integers(-15, 15, (h, w, 3))
            name = f"photo_{i:03d}"
            Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(root / "images" / f"{name}.png")
            Image.fromarray(ids.astype(np.uint8), mode="L").save(root / "masks" / f"{name}.png")
            names.append(name)
            i += 1
        if per_split:
            (root / f"{split}.txt").write_text("".join(f"{n}.png\n" for n in names))
    return root


def entry_settings(cfg):
    """The settings an entry point declares (seg.<task_name>.SETTINGS), as its run_job hands them in."""
    import importlib

    return getattr(importlib.import_module(f"seg.{cfg.task_name}"), "SETTINGS", None)


def entry_problems(cfg) -> list[str]:
    """What the settings check of ``cfg``'s entry point finds, as ``python -m seg.<task>`` would."""
    from seg.run.settings import problems

    return problems(cfg, entry_settings(cfg))


def check_entry(cfg) -> None:
    """The settings check of ``cfg``'s entry point: raises its ConfigError."""
    from seg.run.settings import check_settings

    check_settings(cfg, entry_settings(cfg))


def start_train(run: Path, overrides: list[str]) -> subprocess.Popen:
    """``python -m seg.train OVERRIDES`` into ``run``, in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "seg.train", *overrides, f"hydra.run.dir={run}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def wait_for_epoch(proc: subprocess.Popen, ckpt: Path, epoch: int, timeout: float = 300) -> None:
    """Until ``ckpt`` holds ``epoch`` (it is rewritten atomically at every epoch end)."""
    import torch

    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if torch.load(ckpt, weights_only=True)["epoch"] >= epoch:
                return
        except (FileNotFoundError, RuntimeError, EOFError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{ckpt} never reached epoch {epoch}")
