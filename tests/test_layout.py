"""The package's layering: light modules stay light, callbacks and entry points import no entry point."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from helpers import ROOT

ENTRY_POINTS = {"seg.train", "seg.eval", "seg.predict", "seg.export"}


def test_labels_metrics_losses_import_neither_lightning_nor_hydra():
    code = (
        "import sys, seg.labels, seg.metrics, seg.losses, seg.inference; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('pytorch_lightning', 'lightning', 'hydra')); "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # and seg.labels needs no torch at all
    code = "import sys, seg.labels; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_the_python_api_imports_no_torch_until_a_torch_backend_is_used():
    # `from seg import Segmenter` and the photo/picture helpers: ONNX Runtime deployments need no torch
    code = (
        "import sys, seg.photos, seg.pictures, seg.metadata; from seg import Segmenter; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pytorch_lightning', 'hydra')); "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def seg_imports(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("seg"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("seg")}
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "seg").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_an_entry_point(path):
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    assert not (seg_imports(path) & (ENTRY_POINTS - {module})), f"{module} imports an entry point"
