"""The notebooks run top to bottom (nbclient) on the synthetic data and a tiny run."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import ROOT


def execute(name: str) -> nbformat.NotebookNode:
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
    ).execute()
    return nb


def images_and_text(nb: nbformat.NotebookNode) -> tuple[int, str]:
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    n_images = sum("image/png" in o.get("data", {}) for o in outputs)
    text = "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in outputs)
    return n_images, text


@pytest.mark.slow
def test_data_notebook(monkeypatch, archive_url, data_dir):
    monkeypatch.setenv("SEG_DATA_URL", archive_url)
    monkeypatch.setenv("SEG_DATA_DIR", str(data_dir))
    n_images, text = images_and_text(execute("01_data.ipynb"))
    assert n_images == 3  # class frequencies, samples with legend, size histogram
    assert "'train': 6" in text and "80x56" in text


@pytest.mark.slow
def test_results_notebook(monkeypatch, archive_url, data_dir, tiny_run):
    monkeypatch.setenv("SEG_DATA_URL", archive_url)
    monkeypatch.setenv("SEG_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SEG_RUN_DIR", str(tiny_run))
    n_images, text = images_and_text(execute("02_results.ipynb"))
    assert n_images == 4  # curves, first test images, worst test images, per-class IoU
    assert "acc_per_image_mean" in text and "val/acc" in text
