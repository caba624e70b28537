"""`python -m seg.check`: the report of any data set (table, chart, JSON), and problems as one line
each with exit code 2."""

from __future__ import annotations

import json

from seg.check import check

from helpers import compose_config, run_module, write_folder_dataset


def test_the_report_of_a_folder_data_set(tmp_path):
    root = write_folder_dataset(tmp_path / "own", per_split={"train": 4, "val": 2, "test": 2})
    (root / "classes.txt").write_text("sky\nroad\ncar\n")
    out = tmp_path / "out"
    found = check(compose_config("check", "data=folder", f"data.root={root}", f"paths.output_dir={out}"))
    assert [found.splits[s].pairs for s in ("train", "val", "test")] == [4, 2, 2]
    assert found.splits["train"].mask_modes == {"L": 4} and sum(found.splits["train"].class_images) >= 4
    text = (out / "check.md").read_text()
    assert "sky" in text and "road" in text and "0 problems" in text and "split lists in" in text
    assert json.loads((out / "check.json").read_text())["labels"]["names"] == ["sky", "road", "car"]
    assert (out / "classes.png").read_bytes()[:4] == b"\x89PNG"


def test_the_msrc_archive_is_reported_too(archive_url, data_dir, tmp_path):
    out = tmp_path / "out"
    found = check(
        compose_config("check", f"data.url={archive_url}", f"paths.data_dir={data_dir}", f"paths.output_dir={out}")
    )
    assert found.label_set.names[0] == "building" and found.splits["val"].pairs == 3
    assert found.problems == [] and "I2DL archive" in (out / "check.md").read_text()


def test_problems_exit_2_with_one_line_each(tmp_path):
    root = write_folder_dataset(tmp_path / "own")  # no split lists: every photo needs its mask
    (root / "masks" / "photo_002.png").unlink()
    (root / "images" / "photo_005.png").unlink()
    proc = run_module("seg.check", "data=folder", f"data.root={root}", f"hydra.run.dir={tmp_path / 'out'}", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert any(
        line.endswith(
            f"{root / 'images' / 'photo_002.png'}: a photo without a mask; each photo's mask is "
            f"{root / 'masks'}/<its name>.png"
        )
        for line in lines
    )
    assert any(
        line.endswith(
            f"{root / 'masks' / 'photo_005.png'}: a mask without a photo; a mask is used only with "
            "the photo of its name"
        )
        for line in lines
    )
    assert "DataCheckError: 2 problems in the data set" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "out" / "check.md").is_file()  # the report is written before the exit
