"""`python -m seg.predict` end to end on photos made here in every format and mode, odd sizes and an
unreadable file among them: outputs at the input sizes, palette PNGs that read back as ids, the CSV,
exit codes, inputs untouched, nothing overwritten, and the ONNX path without torch."""

from __future__ import annotations

import csv
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seg import Segmenter
from seg.core.errors import SegError
from seg.data.labels import CLASS_NAMES, PALETTE
from seg.data.photos import load_photo
from seg.predict import predict as predict_photos

from helpers import ROOT, check_entry, compose_config, entry_problems, run_module


def smooth(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([255 * yy / max(h - 1, 1), 255 * xx / max(w - 1, 1), 0 * xx + rng.integers(0, 256)], -1)
    return np.clip(base + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def write_photos(folder: Path) -> dict[str, tuple[int, int]]:
    """Photos in every format and mode, odd sizes, and two unreadable files; name -> upright (height, width)."""
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 30x50, shown turned by 90 degrees: 50 high, 30 wide
    made = {
        "rgb.jpg": (Image.fromarray(smooth(40, 60, 0)), {"quality": 90}),
        "photo.webp": (Image.fromarray(smooth(40, 60, 1)), {"lossless": True}),  # same size: one batch
        "grey.png": (Image.fromarray(smooth(33, 47, 2)[..., 0]), {}),
        "rgba.png": (Image.fromarray(np.dstack([smooth(25, 35, 3), smooth(25, 35, 4)[..., :1]])), {}),
        "palette.bmp": (Image.fromarray(smooth(31, 29, 5)).quantize(colors=12), {}),
        "cmyk.jpg": (Image.fromarray(smooth(26, 38, 6)).convert("CMYK"), {"quality": 90}),
        "deep.tif": (Image.fromarray(smooth(28, 36, 7)[..., 0].astype(np.uint16) * 257), {}),
        "turned.jpg": (Image.fromarray(smooth(30, 50, 8)), {"exif": exif, "quality": 90}),
        "dot.png": (Image.fromarray(smooth(1, 1, 9)), {}),
        "tall.png": (Image.fromarray(smooth(3001, 17, 10)), {}),
        "wide.tiff": (Image.fromarray(smooth(17, 3001, 11)), {}),
    }
    for name, (image, params) in made.items():
        image.save(folder / name, **params)
    (folder / "broken.jpg").write_bytes(b"this is not a photo")
    Image.fromarray(smooth(200, 300, 12)).save(folder / "cut.jpg", quality=90)
    (folder / "cut.jpg").write_bytes((folder / "cut.jpg").read_bytes()[:2000])  # header reads, pixels do not
    (folder / "notes.txt").write_text("not a photo, and not looked at")
    return {name: load_photo(folder / name).shape[:2] for name in made}


def fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in folder.iterdir()}


def predict(tmp_path: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    return run_module("seg.predict", *args, f"paths.log_dir={tmp_path / 'logs'}", check=check)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, dict[str, tuple[int, int]]]:
    folder = tmp_path_factory.mktemp("photos") / "in"
    return folder, write_photos(folder)


@pytest.fixture(scope="module")
def ckpt(tiny_run) -> Path:
    return tiny_run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def ckpt_run(photos, ckpt, tmp_path_factory):
    """One seg.predict run over the whole folder with the checkpoint: (output dir, process, inputs before)."""
    folder, _ = photos
    tmp = tmp_path_factory.mktemp("predict")
    before = fingerprint(folder)
    proc = predict(tmp, f"ckpt_path={ckpt}", f"input={folder}", f"output={tmp / 'out'}", "batch_size=4")
    return tmp / "out", proc, before


def read_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_readable_photo_is_predicted_at_its_size(ckpt_run, photos):
    out, _proc, _ = ckpt_run
    _folder, sizes = photos
    for name, (h, w) in sizes.items():
        stem = Path(name).stem
        with Image.open(out / f"{stem}.png") as im:
            assert im.mode == "P" and im.size == (w, h), name
            ids = np.array(im)
            palette = np.array(im.getpalette()[: 3 * len(PALETTE)], dtype=np.uint8).reshape(-1, 3)
        np.testing.assert_array_equal(palette, PALETTE)  # the MSRC colours are embedded
        assert ids.max() < len(CLASS_NAMES)
        with Image.open(out / f"{stem}_overlay.jpg") as im:
            assert im.format == "JPEG" and im.width > w and im.height >= h  # photo + legend panel
    assert not list(out.glob(".*"))  # no temporary files left
    assert not (out / "broken.png").exists() and not (out / "notes.png").exists()


def test_unreadable_photos_are_named_skipped_and_fail_the_run_at_the_end(ckpt_run, photos):
    _out, proc, _ = ckpt_run
    _, sizes = photos
    log = proc.stdout + proc.stderr
    assert proc.returncode == 2, log[-3000:]
    assert f"2 of {len(sizes) + 2} photos could not be read and were skipped" in log
    assert "broken.jpg: cannot be read as a photo" in log and "cut.jpg: cannot be read as a photo" in log
    assert f"the other {len(sizes)} were written" in log


def test_csv_rows_match_the_outputs(ckpt_run, photos):
    out, _, _ = ckpt_run
    _folder, sizes = photos
    rows = read_rows(out)
    assert [Path(r["file"]).name for r in rows] == sorted(sizes)  # input order, readable photos only
    for r in rows:
        name = Path(r["file"]).name
        assert (int(r["height"]), int(r["width"])) == sizes[name] and r["mask"] == f"{Path(name).stem}.png"
        assert float(r["ms_per_image"]) > 0
        ids = np.array(Image.open(out / r["mask"]))
        shares = dict(item.split(":") for item in r["classes"].split(";"))
        counts = np.bincount(ids.ravel(), minlength=len(CLASS_NAMES))
        assert set(shares) == {CLASS_NAMES[c] for c in np.flatnonzero(counts)}
        for cls, share in shares.items():
            assert float(share) == pytest.approx(counts[CLASS_NAMES.index(cls)] / ids.size, abs=1e-6)
        values = [float(s) for s in shares.values()]
        assert values == sorted(values, reverse=True) and sum(values) == pytest.approx(1, abs=1e-4)


def test_the_cli_predicts_what_the_api_predicts(ckpt_run, photos, ckpt):
    out, _, _ = ckpt_run
    folder, _sizes = photos
    segmenter = Segmenter.from_checkpoint(ckpt)
    for name in ("rgb.jpg", "photo.webp", "turned.jpg", "tall.png", "dot.png", "cmyk.jpg"):
        ids = np.array(Image.open(out / f"{Path(name).stem}.png"))
        assert (segmenter.predict(folder / name) == ids).mean() >= 0.999, name


def test_inputs_are_never_modified(ckpt_run, photos):
    folder, _ = photos
    assert fingerprint(folder) == ckpt_run[2]


def test_onnx_model_file_predicts_without_torch(exported, ckpt_run, photos, tmp_path):
    folder, sizes = photos
    out = tmp_path / "onnx_out"
    code = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print('torch imported:', 'torch' in sys.modules))\n"
        f"sys.argv = ['seg.predict', 'model_file={exported['onnx']}', 'input={folder}/*.png', "
        f"'output={out}', 'tta=true', 'paths.log_dir={tmp_path / 'logs'}']\n"
        "runpy.run_module('seg.predict', run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "torch imported: False" in proc.stdout
    pngs = sorted(n for n in sizes if n.endswith(".png"))
    assert [Path(r["file"]).name for r in read_rows(out)] == pngs
    onnx_tta = Segmenter.load(exported["onnx"], tta=True)
    for name in pngs:
        ids = np.array(Image.open(out / f"{Path(name).stem}.png"))
        assert ids.shape == sizes[name]
        np.testing.assert_array_equal(ids, onnx_tta.predict(folder / name))


def run_in_process(*args: str) -> dict:
    """seg.predict's settings check and work without a subprocess (exit codes are checked by the runs
    above and below)."""
    cfg = compose_config("predict", *args)
    check_entry(cfg)
    return predict_photos(cfg)


def test_existing_outputs_are_kept_unless_overwrite(photos, ckpt, tmp_path):
    folder, _ = photos
    out = tmp_path / "out"
    out.mkdir()
    (out / "grey.png").write_bytes(b"an earlier result")
    args = [f"ckpt_path={ckpt}", f"input={folder}/grey.png", f"output={out}"]
    with pytest.raises(SegError, match="pass overwrite=true"):
        run_in_process(*args)
    assert (out / "grey.png").read_bytes() == b"an earlier result" and [p.name for p in out.iterdir()] == ["grey.png"]
    assert run_in_process(*args, "overwrite=true")["predicted"] == 1
    assert Image.open(out / "grey.png").mode == "P" and len(read_rows(out)) == 1


def test_output_may_not_be_the_input_folder(photos, ckpt):
    folder, _ = photos
    before = fingerprint(folder)
    for out in (str(folder), f"{folder}/./"):
        with pytest.raises(SegError, match="is the folder of the input photos"):
            run_in_process(f"ckpt_path={ckpt}", f"input={folder}/rgb.jpg", f"output={out}")
    assert fingerprint(folder) == before


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("empty", "no photos there"),
        ("missing", "no such file or folder"),
        ("no-input", "input: pass the photos"),
        ("no-model", "pass one model"),
        ("two-models", "pass one model"),
        ("model-suffix", "unknown model file type '.bin'"),
        ("missing-model", "Model file not found"),
        ("clash", "would write the same output files"),
        ("batch", "batch_size=0: must be an integer >= 1"),
    ],
)
def test_bad_input_is_a_clear_error(kind, message, ckpt, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "clash").mkdir()
    for name in ("a.jpg", "a.png"):
        Image.fromarray(smooth(8, 8, 0)).save(tmp_path / "clash" / name)
    model, input = f"ckpt_path={ckpt}", f"input={tmp_path / 'clash' / 'a.png'}"
    args = {
        "empty": [model, f"input={tmp_path / 'empty'}"],
        "missing": [model, f"input={tmp_path / 'nowhere'}"],
        "no-input": [model],
        "no-model": [input],
        "two-models": [model, f"model_file={tmp_path / 'm.onnx'}", input],
        "model-suffix": [f"model_file={tmp_path / 'model.bin'}", input],
        "missing-model": [f"model_file={tmp_path / 'model.onnx'}", input],
        "clash": [model, f"input={tmp_path / 'clash'}"],
        "batch": [model, input, "batch_size=0"],
    }[kind]
    with pytest.raises(SegError, match=re.escape(message)):
        run_in_process(*args, f"output={tmp_path / 'out'}")
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_an_empty_input_exits_with_a_one_line_error(ckpt, tmp_path):
    (tmp_path / "empty").mkdir()
    proc = predict(tmp_path, f"ckpt_path={ckpt}", f"input={tmp_path / 'empty'}", f"output={tmp_path / 'out'}")
    assert proc.returncode == 2 and "PhotoError: input=" in proc.stdout + proc.stderr
    assert "no photos there" in proc.stdout + proc.stderr and "Traceback" not in proc.stdout + proc.stderr


def test_default_output_is_the_run_dir_under_outputs_predict(photos, ckpt, tmp_path):
    cfg = compose_config("predict", "input=x", hydra_config=True)
    assert Path(cfg.hydra.run.dir).parents[1] == Path(cfg.paths.log_dir) / "predict"  # predict/<date>/<time>
    assert cfg.max_side == 1024 and cfg.tta is False and cfg.overwrite is False
    folder, _ = photos
    run = tmp_path / "run"
    predict(tmp_path, f"ckpt_path={ckpt}", f"input={folder}/dot.png", f"hydra.run.dir={run}", check=True)
    assert (run / "dot.png").is_file() and (run / "dot_overlay.jpg").is_file() and len(read_rows(run)) == 1


def test_reading_and_writing_in_threads_writes_what_one_thread_writes(photos, ckpt, tmp_path):
    # the same folder (unreadable photos included) with the I/O threads and without: the same files,
    # the same bytes, the CSV in input order; the unreadable ones named in both
    folder, made = photos
    written = {}
    for workers in (0, 3):
        out = tmp_path / f"w{workers}"
        with pytest.raises(SegError, match=r"broken.jpg.*cut.jpg|cut.jpg.*broken.jpg"):
            run_in_process(
                f"ckpt_path={ckpt}", f"input={folder}", f"output={out}", f"workers={workers}", "batch_size=1"
            )
        rows = read_rows(out)
        written[workers] = {p.name: p.read_bytes() for p in out.iterdir()}, [r["file"] for r in rows]
    (files0, order0), (files3, order3) = written[0], written[3]
    assert files0.keys() == files3.keys() and len(order0) == len(made)
    assert all(files0[k] == files3[k] for k in files0 if k.endswith(".png") or k.endswith(".jpg"))
    assert order0 == order3 == sorted(order0, key=lambda f: sorted(str(folder / n) for n in made).index(f))


def test_tiles_predict_a_folder(photos, ckpt, tmp_path):
    folder, _ = photos
    out = tmp_path / "tiled"
    report = run_in_process(f"ckpt_path={ckpt}", f"input={folder}/wide.tiff", f"output={out}", "tile=256")
    assert report["predicted"] == 1 and np.asarray(Image.open(out / "wide.png")).shape == (17, 3001)
    assert entry_problems(compose_config("predict", f"ckpt_path={ckpt}", "input=x", "tile=16")) == [
        "tile=16: must be an integer >= 32 (the window's side in pixels) or null"
    ]
