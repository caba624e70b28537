"""Checkpoints written by an earlier release still load, with the same keys, logits and metrics.

tests/fixtures/legacy_<net>.json holds the structure of a real checkpoint of that release (see
tests/model/legacy_checkpoint.py), the logits its code gave on a fixed input and the metrics its
``seg.eval`` reported on the synthetic test split, with weights rebuilt deterministically.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seg.model.checkpoint import CheckpointError, load_model

from helpers import ROOT, compose_config, run_module
from legacy_checkpoint import TENSOR, materialise

LEGACY = {"mobilenet": "seg.model.MobileNetSeg", "mobilenet_skip": "seg.model.MobileNetSkipSeg"}


def legacy(net: str) -> dict:
    return json.loads((ROOT / "tests" / "fixtures" / f"legacy_{net}.json").read_text())


@pytest.fixture(params=list(LEGACY))
def legacy_ckpt(request, tmp_path) -> tuple[str, dict, Path]:
    frozen = legacy(request.param)
    path = tmp_path / f"legacy_{request.param}.ckpt"
    torch.save(materialise(frozen["checkpoint"]), path)
    return request.param, frozen, path


def test_state_dict_keys_and_shapes_are_unchanged(legacy_ckpt):
    net, frozen, path = legacy_ckpt
    model, _ = load_model(path)
    expected = {k: v[TENSOR] for k, v in frozen["checkpoint"]["state_dict"].items()}
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == expected  # same keys, same order-independent shapes
    assert list(model.state_dict()) == list(expected)  # and the same order
    assert frozen["checkpoint"]["hyper_parameters"]["net"]["_target_"] == LEGACY[net]


def test_legacy_checkpoint_gives_the_same_logits(legacy_ckpt):
    _, frozen, path = legacy_ckpt
    model, _ = load_model(path)
    ref = frozen["logits_before"]
    x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x)
    assert list(y.shape) == ref["shape"]
    assert y.mean().item() == pytest.approx(ref["mean"], rel=1e-4, abs=1e-6)
    assert y.abs().mean().item() == pytest.approx(ref["abs_mean"], rel=1e-4)
    assert y.std().item() == pytest.approx(ref["std"], rel=1e-4)
    torch.testing.assert_close(y.flatten()[:8], torch.tensor(ref["first"]), rtol=1e-4, atol=1e-5)


def test_legacy_checkpoint_scores_the_same_in_seg_eval(legacy_ckpt, archive_url, data_dir, tmp_path):
    from seg.eval import evaluate

    _, frozen, path = legacy_ckpt
    out = tmp_path / "eval"
    evaluate(
        compose_config(
            "eval",
            f"ckpt_path={path}",
            f"data.url={archive_url}",
            f"paths.data_dir={data_dir}",
            f"paths.output_dir={out}",
        )
    )
    m = json.loads((out / "metrics.json").read_text())
    before = frozen["metrics_before"]
    assert m["num_images"] == before["num_images"]
    assert m["acc"] == pytest.approx(before["acc"], abs=1e-3)
    assert m["acc_per_image_mean"] == pytest.approx(before["acc_per_image_mean"], abs=1e-3)
    assert m["miou"] == pytest.approx(before["miou"], abs=1e-3)


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"Checkpoint not found: .*nope\.ckpt"):
        load_model(tmp_path / "nope.ckpt")


class RunsCode:
    """What a malicious checkpoint carries: unpickling it would call os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_carrying_a_callable_is_refused_without_running_it(tiny_run, train_overrides, tmp_path):
    marker = tmp_path / "pwned"
    ckpt = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["payload"] = RunsCode(marker)
    bad = tmp_path / "evil.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match=r"\(posix\.system\), so it was refused without running any of it"):
        load_model(bad)
    for module, args in (
        ("seg.eval", [f"ckpt_path={bad}", f"hydra.run.dir={tmp_path / 'eval'}"]),
        ("seg.train", [*train_overrides, f"ckpt_path={bad}", f"hydra.run.dir={tmp_path / 'train'}"]),
    ):
        proc = run_module(module, *args, check=False)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "CheckpointError" in proc.stderr and "refused without running any of it" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not marker.exists()


def test_a_checkpoint_naming_foreign_code_in_its_configs_is_refused(tiny_run, tmp_path):
    ckpt = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["hyper_parameters"]["loss"] = {"_target_": "os.system", "command": "touch /tmp/never"}
    bad = tmp_path / "foreign.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match=r"names code outside this project .*'os.system'"):
        load_model(bad)
