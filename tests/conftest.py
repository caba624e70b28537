"""Fixtures: a tiny MSRC-format archive (BMP photos + colour targets + CRLF split files, zipped), a
data dir prepared from it through the real download code, a tiny training run and its exported
models; a short run on the real archive when SEG_DATA_URL and TORCH_HOME are set.

No test depends on the host's CPU flags: the whole suite believes in an AVX2-only CPU (SEG_CPU_FLAGS,
so ``trainer.precision=auto`` is fp32 everywhere, subprocesses included), and the tests marked
``cpu_kinds`` run once per kind of CPU, faked: AVX2 (fp32) and AVX512-BF16 (bf16-mixed).
"""

from __future__ import annotations

import os
from pathlib import Path

# The suite runs in 2 processes on 2 cores (pytest-xdist): one torch thread per process, and per
# process it starts (they inherit it), or their thread pools fight over the cores and every step
# runs several times slower. Set before torch is imported; a serial run (-n 0) keeps torch's default.
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest

from seg.data.archive import prepare_data, sha256_of
from seg.run.hardware import FLAGS_ENV

from helpers import run_module, tiny_overrides, write_dataset, zip_dir

CPU_KINDS = {"avx2": "fpu sse4_2 avx avx2 fma", "avx512_bf16": "fpu sse4_2 avx avx2 fma avx512f avx512_bf16"}
os.environ[FLAGS_ENV] = CPU_KINDS["avx2"]  # before any fixture: session fixtures train under it too


def pytest_generate_tests(metafunc) -> None:
    if metafunc.definition.get_closest_marker("cpu_kinds"):
        if "cpu_kind" not in metafunc.fixturenames:
            metafunc.fixturenames.append("cpu_kind")
        metafunc.parametrize("cpu_kind", list(CPU_KINDS), indirect=True)


@pytest.fixture
def cpu_kind(request, monkeypatch) -> str:
    """The CPU kind a ``cpu_kinds`` test runs as: its flags in SEG_CPU_FLAGS (precision=auto follows)."""
    monkeypatch.setenv(FLAGS_ENV, CPU_KINDS[request.param])
    return request.param


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
        "callbacks.pictures.log_images_every_n_epochs=1",
        f"hydra.run.dir={run}",
    )
    return run


@pytest.fixture(scope="session")
def exported(tiny_run, archive_url, data_dir, tmp_path_factory) -> dict[str, Path]:
    """The tiny run's last checkpoint exported once by seg.export (checked on the tiny val split):
    {"onnx": model.onnx, "torchscript": model.pt}; each run dir ``<format>/`` beside them has export.json."""
    out = tmp_path_factory.mktemp("exported")
    files = {"onnx": out / "model.onnx", "torchscript": out / "model.pt"}
    for fmt, path in files.items():
        run_module(
            "seg.export",
            f"ckpt_path={tiny_run / 'checkpoints' / 'last.ckpt'}",
            f"format={fmt}",
            f"output={path}",
            f"data.url={archive_url}",
            f"paths.data_dir={data_dir}",
            f"hydra.run.dir={out / fmt}",
        )
    return files


@pytest.fixture(scope="session")
def real_run(real_env, tmp_path_factory) -> tuple[Path, Path]:
    """(run dir, data dir) of a short seg.train run on the real archive with the ImageNet encoder
    (2 training batches): the real download path, and a checkpoint whose logits are those of a real model."""
    run = tmp_path_factory.mktemp("real_run")
    data = tmp_path_factory.mktemp("real_data")
    run_module(
        "seg.train",
        f"paths.data_dir={data}",
        f"hydra.run.dir={run}",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "++trainer.limit_train_batches=2",
        "++trainer.limit_val_batches=1",
        "++trainer.limit_test_batches=1",
        "callbacks.progress_bar.refresh_rate=0",
        env=real_env,
    )
    return run, data


@pytest.fixture(scope="session")
def real_onnx(real_run, real_env, tmp_path_factory) -> Path:
    """The real run's last checkpoint exported by the command line, ``python -m seg.export format=onnx``,
    checked on every val photo (its run dir, ``export.json``, beside the file): a model whose classes vary
    with the photo, for what the tiny run's near-constant net cannot show (int8's accuracy gate)."""
    run, data = real_run
    out = tmp_path_factory.mktemp("real_onnx")
    path = out / "model.onnx"
    run_module(
        "seg.export",
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        "format=onnx",
        f"output={path}",
        f"paths.data_dir={data}",
        f"hydra.run.dir={out / 'run'}",
        env=real_env,
    )
    return path
