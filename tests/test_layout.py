"""The package's layering: rooms by role, each importing only the rooms below it; no import cycle;
entry points on top and imported by nothing; the deployment API and the label set import light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

# Rooms from the bottom up: a module may import its own room and the rooms listed before it.
ROOMS = ["seg.core", "seg.data", "seg.model", "seg.deploy", "seg.callbacks", "seg.run", "entry points"]
ENTRY_POINTS = {
    "seg.train",
    "seg.eval",
    "seg.teach",
    "seg.predict",
    "seg.export",
    "seg.check",
    "seg.convert",
    "seg.demo",
}
MODULES = sorted((ROOT / "seg").rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> int:
    if module in ENTRY_POINTS:
        return ROOMS.index("entry points")
    if module == "seg":
        return ROOMS.index("entry points")  # the package's lazy `from seg import Segmenter`
    return max(i for i, r in enumerate(ROOMS) if module == r or module.startswith(r + "."))


def seg_imports(path: Path) -> set[str]:
    """Every seg module a file imports, at its top or inside a function (lazy imports count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "seg":
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "seg"}
    return names


def test_every_module_sits_in_a_room():
    rooms = {module_name(p): room(module_name(p)) for p in MODULES}
    assert set(rooms.values()) == set(range(len(ROOMS)))
    top = {module_name(p) for p in MODULES if p.parent == ROOT / "seg"} - {"seg"}
    assert top == ENTRY_POINTS, "only entry points on top, and every entry point there"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_its_room_and_the_rooms_below(path):
    me = module_name(path)
    for other in seg_imports(path):
        assert room(other) <= room(me) or me == "seg", (
            f"{me} ({ROOMS[room(me)]}) imports {other} ({ROOMS[room(other)]})"
        )
        assert other not in ENTRY_POINTS or other == me, f"{me} imports the entry point {other}"


def test_no_import_cycle():
    graph = {module_name(p): {m for m in seg_imports(p) if m != module_name(p)} for p in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        if state.get(m) == 1:
            pytest.fail("import cycle: " + " -> ".join([*path[path.index(m) :], m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            visit(n, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        visit(m, [])


def _heavy_after(code: str, heavy: tuple[str, ...]) -> list[str]:
    probe = f"import sys; {code}; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return eval(proc.stdout.strip().splitlines()[-1])


def test_labels_and_splits_need_only_numpy():
    assert _heavy_after("import seg.data.labels, seg.data.splits", ("torch", "pytorch_lightning", "hydra")) == []


def test_metric_maths_losses_and_inference_import_neither_lightning_nor_hydra():
    code = "import seg.model.metrics, seg.model.losses, seg.model.inference"
    assert _heavy_after(code, ("pytorch_lightning", "lightning", "hydra")) == []


def test_the_python_api_imports_no_torch_until_a_torch_backend_is_used():
    # `from seg import Segmenter` and the photo/picture helpers: ONNX Runtime deployments need no torch
    code = "import seg.data.photos, seg.deploy.pictures, seg.deploy.metadata; from seg import Segmenter"
    assert _heavy_after(code, ("torch", "pytorch_lightning", "hydra")) == []
