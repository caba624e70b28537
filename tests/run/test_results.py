"""Run output files: result.json, metrics.json and per_class.csv, written atomically; the finished runs
under a folder, as the demo page's picker lists them."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from seg.run.results import atomic_write, finished_runs, read_result, write_eval_report, write_result


def test_result_json_round_trip_with_non_finite_values(tmp_path):
    assert read_result(tmp_path) is None  # an unfinished run
    path = write_result(tmp_path, {"val/acc": 0.5, "val/loss": math.nan, "test/acc": "x"}, epochs=3, wall_time=1.23456)
    assert path == tmp_path / "result.json"
    data = read_result(tmp_path)
    assert data == {"metrics": {"val/acc": 0.5, "val/loss": None, "test/acc": None}, "epochs": 3, "wall_time_s": 1.235}


def test_atomic_write_replaces_whole_files_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write(target, "one")
    atomic_write(target, "two")
    assert target.read_text() == "two" and [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_eval_report_files(tmp_path):
    per_class = [{"id": 0, "name": "building", "iou": 0.5, "acc": None, "pixels": 10}]
    write_eval_report({"acc": 0.9, "per_class": per_class}, tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text())["acc"] == 0.9
    with open(tmp_path / "per_class.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"id": "0", "name": "building", "iou": "0.5", "acc": "", "pixels": "10"}]


def make_run(run: Path, overrides: list[str], test_acc: float | None, test_ckpt: str = "last", ckpts=("last",)) -> Path:
    """A seg.train run dir as far as the picker reads it: the Hydra record, checkpoints, result.json."""
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (run / ".hydra" / "config.yaml").write_text(f"test_ckpt: {test_ckpt}\n")
    (run / "checkpoints").mkdir()
    for name in ckpts:
        (run / "checkpoints" / f"{name}.ckpt").write_bytes(b"")
    write_result(run, {"test/acc": test_acc} if test_acc is not None else {}, epochs=1, wall_time=1)
    return run


def test_finished_runs_newest_first_with_date_recipe_and_test_accuracy(tmp_path):
    old = make_run(tmp_path / "2026-01-02" / "10-00-00", ["experiment=fast", "paths.data_dir=/x"], 0.9)
    new = make_run(
        tmp_path / "2026-02-03" / "04-05-06",
        ["model=mobilenet_tconv", "data.url=file:///a.zip"],
        0.8125,
        test_ckpt="best",
        ckpts=("last", "epoch_007"),
    )
    untested = make_run(tmp_path / "custom", [], None)  # a run dir of its own name: dated by its config
    make_run(tmp_path / "2026-03-01" / "00-00-00", [], 0.5, ckpts=())  # no checkpoint kept: not listed
    (tmp_path / "2026-04-01" / "00-00-00" / ".hydra").mkdir(parents=True)  # unfinished: not listed
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "result.json").write_text("{}")  # not a run dir: not listed
    runs = finished_runs(tmp_path)
    assert [r.run_dir for r in runs] == [untested, new, old]  # the custom one was made today
    assert runs[1].label() == "2026-02-03 04:05 · model=mobilenet_tconv · test/acc 81.2%"
    assert runs[1].checkpoint == new / "checkpoints" / "epoch_007.ckpt"  # test_ckpt=best: what was tested
    assert runs[2].label() == "2026-01-02 10:00 · experiment=fast · test/acc 90.0%"
    assert runs[2].checkpoint == old / "checkpoints" / "last.ckpt"
    assert runs[0].recipe == "defaults" and runs[0].label().endswith("defaults · not tested")
    assert finished_runs(tmp_path / "nowhere") == []
