"""Fixtures: a tiny MSRC-format archive (BMP photos + colour targets + CRLF split files, zipped), a
data dir prepared from it through the real download code, and a tiny training run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seg.data import prepare_data
from seg.data.archive import sha256_of

from helpers import run_module, tiny_overrides, write_dataset, zip_dir


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    """The tiny data set zipped like the I2DL archive."""
    tmp = tmp_path_factory.mktemp("archive")
    return zip_dir(write_dataset(tmp / "src"), tmp / "segmentation_data.zip")


@pytest.fixture(scope="session")
def archive_url(archive) -> str:
    return archive.as_uri()


@pytest.fixture(scope="session")
def archive_sha256(archive) -> str:
    """The tiny archive's SHA-256 (zip entries carry file times: it differs from session to session)."""
    return sha256_of(archive)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, archive_url, archive_sha256) -> Path:
    """A data dir prepared once through the real download/check/extract code."""
    d = tmp_path_factory.mktemp("data")
    prepare_data(archive_url, d, archive_sha256)
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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, archive_url, data_dir) -> Path:
    """The run dir of a 2-epoch seg.train run on the synthetic data (images logged every epoch)."""
    tmp = tmp_path_factory.mktemp("tiny_run")
    run = tmp / "run"
    run_module(
        "seg.train",
        *tiny_overrides(archive_url, data_dir, tmp / "outputs"),
        "trainer.max_epochs=2",
        "callbacks.prediction_images.log_images_every_n_epochs=1",
        f"hydra.run.dir={run}",
    )
    return run
