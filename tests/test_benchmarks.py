"""The benchmarks: a tiny --quick run of each writes well-formed JSON and Markdown reports (no timing asserts)."""

from __future__ import annotations

import json
import math

from helpers import run_module


def test_quick_benchmark_writes_json_and_markdown(tmp_path):
    out = tmp_path / "bench"
    proc = run_module(
        "benchmarks.speed",
        "--quick",
        "--size",
        "64",
        "--batch-size",
        "2",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--infer-reps",
        "1",
        "--rounds",
        "2",
        "--configs",
        "fp32,channels_last",
        "--out",
        str(out),
    )
    report = json.loads((out / "speed.json").read_text())
    assert report["model"] == "mobilenet" and report["size"] == 64 and report["batch_size"] == 2
    assert 3_000_000 < report["params"] < 5_000_000 and 0 < report["weights_mb"] < 50
    assert report["trainable_params"] < report["params"]
    assert report["peak_rss_mb"] > 0 and report["machine"]["logical_cpus"] >= 1
    assert [r["config"] for r in report["results"]] == ["fp32", "channels_last"]
    for r in report["results"]:
        for path in ("lightning", "plain"):
            stats = r[path]
            assert stats["steps"] == 4  # 2 timed steps x 2 rounds
            assert math.isfinite(stats["images_per_s"]) and stats["images_per_s"] > 0
        assert len(r["round_ratios"]) == 2 and stats["rounds"] == 2
        assert math.isclose(r["lightning_over_plain"], sum(r["round_ratios"]) / 2)  # the median of two
        assert set(r["inference_ms_per_image"]) == {"batch_1", "batch_8"}
        assert all(v > 0 for v in r["inference_ms_per_image"].values())
    assert report["results"][0]["channels_last"] is False and report["results"][1]["channels_last"] is True
    table = (out / "speed.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| config | Lightning img/s | plain img/s | Lightning / plain")
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["fp32", "channels_last"]
    assert all(len(r.split("|")) == len(rows[0].split("|")) for r in rows)
    assert table in proc.stdout  # the table is printed too


def test_unknown_config_is_an_error(tmp_path):
    proc = run_module("benchmarks.speed", "--configs", "nope", "--out", str(tmp_path), check=False)
    assert proc.returncode != 0 and "unknown configs ['nope']" in proc.stderr


def test_data_benchmark_reports_cache_and_no_cache(tmp_path, archive_url, archive_sha256):
    out = tmp_path / "bench"
    proc = run_module(
        "benchmarks.data",
        "--quick",
        "--size",
        "64",
        "--batch-size",
        "2",
        "--url",
        archive_url,
        "--sha256",
        archive_sha256,
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(out),
    )
    report = json.loads((out / "data.json").read_text())
    assert [r["config"] for r in report["results"]] == ["cache", "no_cache", "cache+augment", "no_cache+augment"]
    for r in report["results"]:
        assert r["images"] == 6 and r["first_epoch_ms_per_image"] > 0 and r["later_epochs_ms_per_image"] > 0
    assert (tmp_path / "data" / "segmentation_data" / "train.txt").is_file()  # fetched through seg.data
    rows = [line for line in (out / "data.md").read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 5 and rows[1].startswith("| cache |") and rows[0] in proc.stdout
