"""The benchmarks: a tiny --quick run of each writes well-formed JSON and Markdown reports (no timing asserts)."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pytest
from PIL import Image

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
    assert report["trainable_params"] == report["params"]  # the default model fine-tunes the whole encoder
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
    configs = ["cache", "no_cache", "cache+augment", "no_cache+augment"]
    assert [(r["source"], r["config"]) for r in report["results"]] == [
        (s, c) for c in configs for s in ("msrc", "folder")
    ]
    for r in report["results"]:
        assert r["images"] == 6 and r["first_epoch_ms_per_image"] > 0 and r["later_epochs_ms_per_image"] > 0
    assert (tmp_path / "data" / "segmentation_data" / "train.txt").is_file()  # fetched through seg.data
    assert (tmp_path / "data" / "msrc_folder" / "classes.txt").is_file()  # the same data as folders
    rows = [line for line in (out / "data.md").read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 9 and rows[1].startswith("| msrc | cache |") and rows[2].startswith("| folder | cache |")
    assert rows[0] in proc.stdout


def test_large_photos_are_a_folder_data_set_of_their_size(tmp_path):
    from benchmarks.large_photos import CLASSES, write_photos
    from seg.core.errors import SegError
    from seg.data.folder_data import FolderDataModule

    root = write_photos(tmp_path / "large", size=(300, 140), count=16)
    dm = FolderDataModule(str(root), crop_size=64, cache_dir=str(tmp_path / "checks"))
    dm.prepare_data()  # no problems: the check accepts it as it is
    assert dm.label_set().names == CLASSES and dm.label_set().ignore_index == 255
    assert {s: len(dm.split_dataset(s)) for s in ("train", "val", "test")} == {"train": 10, "val": 3, "test": 3}
    assert dm.survey().splits["val"].sizes == {"300x140": 3}
    with pytest.raises(SegError, match="large: exists and is not empty"):
        write_photos(root, size=(300, 140), count=16)
    with pytest.raises(SegError, match="--count 2: at least 3 photos"):
        write_photos(tmp_path / "few", size=(300, 140), count=2)
    assert not (tmp_path / "few").exists()


def test_quick_inference_benchmark_times_every_path(tmp_path, tiny_run, exported, data_dir):
    from seg.data.archive import ARCHIVE_DIR
    from seg.data.dataset import MSRCDataset
    from seg.deploy.quantize import quantize_int8

    out = tmp_path / "bench"
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    int8 = tmp_path / "model_int8.onnx"
    train = MSRCDataset(data_dir / ARCHIVE_DIR, "train")
    quantize_int8(exported["onnx"], int8, [train.raw(i)[0] for i in range(2)], {"split": "train", "photos": 2})
    proc = run_module(
        "benchmarks.infer",
        "--quick",
        "--ckpt",
        str(ckpt),
        "--onnx",
        str(exported["onnx"]),
        "--torchscript",
        str(exported["torchscript"]),
        "--int8",
        str(int8),
        "--threads",
        "1",
        "--out",
        str(out),
    )
    report = json.loads((out / "infer.json").read_text())
    paths = ["eager", "eager+tta", "torchscript", "onnxruntime", "onnxruntime_int8"]
    assert report["sizes"] == ["48x32", "96x64"] and report["rounds"] == 2 and report["threads"] == 1
    assert [(r["size"], r["path"]) for r in report["results"]] == [(s, p) for s in report["sizes"] for p in paths]
    for r in report["results"]:
        assert math.isfinite(r["ms_per_photo"]) and r["ms_per_photo"] > 0 and len(r["round_ms"]) == 2
        assert len(r["round_speedups"]) == 2
        assert r["speedup_vs_eager"] == statistics.median(r["round_speedups"])  # the median of the rounds
        if r["path"] == "eager":
            assert r["round_speedups"] == [1.0, 1.0]
    assert report["files"]["ckpt"] == str(ckpt) and report["machine"]["cpu_kind"] in ("AVX2", "AVX512-BF16", "other")
    # each path's memory in a process of its own; the ONNX Runtime one never imports torch
    assert set(report["isolated_rss"]) == set(paths)
    assert all(v["peak_rss_mb"] > 0 for v in report["isolated_rss"].values())
    assert report["isolated_rss"]["onnxruntime"]["torch"] is False and report["isolated_rss"]["eager"]["torch"]
    assert report["isolated_rss"]["onnxruntime_int8"]["torch"] is False
    rows = [line for line in (out / "infer.md").read_text().splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| photo | path | ms / photo") and len(rows) == 1 + 2 * len(paths)
    assert rows[0] in proc.stdout


def test_inference_benchmark_needs_the_eager_reference(tmp_path):
    proc = run_module("benchmarks.infer", "--paths", "onnxruntime", "--out", str(tmp_path), check=False)
    assert proc.returncode != 0 and "--paths must include eager" in proc.stderr
    proc = run_module("benchmarks.infer", "--paths", "eager,onnxruntime_int8", "--out", str(tmp_path), check=False)
    assert proc.returncode != 0 and "needs --int8 FILE" in proc.stderr


def test_folder_benchmark_counts_photos_per_second_for_each_model_and_thread_setting(tmp_path, tiny_run, exported):
    from benchmarks.predict_folder import main

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, hw in enumerate([(40, 60), (40, 60), (33, 47)]):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (*hw, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    args = ["--photos", str(photos), "--ckpt", str(ckpt), "--onnx", str(exported["onnx"]), "--count", "7"]
    report = main([*args, "--rounds", "2", "--out", str(tmp_path / "out")])
    configs = [(r["model"], r["workers"]) for r in report["results"]]
    assert configs == [("eager", 0), ("eager", 2), ("onnxruntime", 0), ("onnxruntime", 2)] and report["count"] == 7
    assert all(len(r["rounds"]) == 2 and r["photos_per_s"] > 0 for r in report["results"])
    table = (tmp_path / "out" / "predict_folder.md").read_text()
    assert "| eager | 0 |" in table and "1.00x" in table and report["machine"]["cpu_kind"] in table


def test_curves_report_minutes_to_accuracy_and_draw_them(tiny_run, tmp_path):
    from benchmarks.curves import minutes_to, val_curve

    curve = val_curve(tiny_run)
    assert len(curve) == 2 and all(m >= 0 for m, _ in curve) and curve[0][0] <= curve[1][0]
    assert minutes_to([(0.5, 0.6), (1.0, 0.9)], 0.85) == 1.0 and minutes_to([(0.5, 0.6)], 0.85) is None
    out = tmp_path / "curve.png"
    proc = run_module("benchmarks.curves", f"tiny={tiny_run}", "--out", str(out))
    table = json.loads(proc.stdout)
    assert set(table["tiny"]) == {"64%", "85%", "90%", "best"} and 0 <= table["tiny"]["best"] <= 1
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_exports_benchmark_reads_each_export_twice_and_as_the_masks(tmp_path, monkeypatch):
    """On a small data set with a classes.txt: LabelMe and COCO exports written from its masks read back as
    them (COCO's RLE exactly, LabelMe's traced polygons nearly), the second read from the cache."""
    import sys

    from PIL import Image

    from benchmarks import exports

    from helpers import write_folder_dataset

    root = write_folder_dataset(tmp_path / "own", per_split=None)
    for mask in (root / "masks").iterdir():  # class 0 is the exports' background: no ignored band here
        Image.fromarray(np.where(np.array(Image.open(mask)) == 255, 0, np.array(Image.open(mask)))).save(mask)
    (root / "classes.txt").write_text("sky\nroad\ncar\n")
    ids = exports.outlines(np.pad(np.ones((4, 5), bool), 2))
    assert len(ids) == 1 and min(x for x, _ in ids[0]) == 1.5  # the outline around pixels 2..6
    monkeypatch.setattr(sys, "argv", ["exports", "--data", str(root), "--out", str(tmp_path / "bench")])
    exports.main()
    rows = json.loads((tmp_path / "bench" / "exports.json").read_text())["rows"]
    assert set(rows) == {"masks", "labelme", "coco"} and all(r["photos"] == 10 for r in rows.values())
    assert rows["labelme"]["format"] == "labelme" and rows["coco"]["format"] == "coco"
    assert rows["coco"]["pixels_as_masks"] == 1.0 and rows["labelme"]["pixels_as_masks"] > 0.97
    assert "| labelme | 10 |" in (tmp_path / "bench" / "exports.md").read_text()


def test_fault_catalogue_data_and_the_line_it_keeps(tmp_path):
    """The catalogue's street data set reads as 11 classes with 11 unlabelled, and of a process's output it
    keeps the error line (Hydra's log prefix dropped), else the last line."""
    import subprocess

    from benchmarks import faults
    from seg.data.folder_data import FolderDataModule

    root = faults.write_street(tmp_path / "street")
    dm = FolderDataModule(str(root), ignore_index=11, cache_dir=str(tmp_path / "c"), allow_unseen_classes=True)
    dm.prepare_data()
    assert dm.label_set().names == faults.STREET and dm.survey().splits["train"].pairs > 0
    err = "[2026-12-03 10:00:00,000][seg][ERROR] - ConfigError: data.folds=8: too few\n"
    proc = subprocess.CompletedProcess([], 2, "", "noise\n" + err)
    assert faults.last_line(proc) == "ConfigError: data.folds=8: too few"
    assert faults.last_line(subprocess.CompletedProcess([], 0, "Summary\nbest val/acc 0.5\n", "")) == "best val/acc 0.5"
