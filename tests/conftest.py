"""Fixtures: a tiny MSRC-format archive (BMP photos + colour targets + CRLF split files, zipped)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seg.data import PALETTE, prepare_data

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
    ids[-max(h // 8, 1):] = -1
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
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, p.relative_to(folder.parent))
    return zip_path


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    """The tiny data set zipped like the I2DL archive."""
    tmp = tmp_path_factory.mktemp("archive")
    return zip_dir(write_dataset(tmp / "src"), tmp / "segmentation_data.zip")


@pytest.fixture(scope="session")
def archive_url(archive) -> str:
    return archive.as_uri()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, archive_url) -> Path:
    """A data dir prepared once through the real download/extract code."""
    d = tmp_path_factory.mktemp("data")
    prepare_data(archive_url, d)
    return d


@pytest.fixture
def train_overrides(archive_url, data_dir, tmp_path) -> list[str]:
    """Hydra overrides for a tiny CPU run on the synthetic data with a random-init encoder."""
    return tiny_overrides(archive_url, data_dir, tmp_path / "outputs")


@pytest.fixture(scope="session")
def real_env() -> dict[str, str]:
    """SEG_DATA_URL and TORCH_HOME for the real archive and weights, or a skip saying why."""
    missing = [k for k in ("SEG_DATA_URL", "TORCH_HOME") if not os.environ.get(k)]
    if missing:
        pytest.skip(f"{' and '.join(missing)} unset: set them to run on the real archive and ImageNet weights")
    return {k: os.environ[k] for k in ("SEG_DATA_URL", "TORCH_HOME")}




def run_module(module: str, *overrides: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m MODULE OVERRIDES...`` from the project root, as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})},
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def tiny_overrides(archive_url: str, data_dir: Path, log_dir: Path) -> list[str]:
    return [
        f"data.url={archive_url}",
        f"paths.data_dir={data_dir}",
        f"paths.log_dir={log_dir}",
        f"data.crop_size={CROP}",
        "data.batch_size=3",
        "model.net.weights=null",
        "trainer.accelerator=cpu",
        "callbacks.progress_bar.refresh_rate=0",
    ]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, archive_url, data_dir) -> Path:
    """The run dir of a 2-epoch seg.train run on the synthetic data (images logged every epoch)."""
    tmp = tmp_path_factory.mktemp("tiny_run")
    run = tmp / "run"
    run_module("seg.train", *tiny_overrides(archive_url, data_dir, tmp / "outputs"), "trainer.max_epochs=2",
               "trainer.log_every_n_steps=1", "callbacks.prediction_images.log_images_every_n_epochs=1",
               f"hydra.run.dir={run}")
    return run
