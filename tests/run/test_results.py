"""Run output files: result.json, metrics.json and per_class.csv, written atomically."""

from __future__ import annotations

import csv
import json
import math

from seg.run.results import atomic_write, read_result, write_eval_report, write_result


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
