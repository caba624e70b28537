"""`python -m seg.demo` in a real browser: one page served by an ONNX model, driven by headless Chromium
(the system's, through Playwright). Photos uploaded as a visitor does: the downloaded mask is
Segmenter.predict's, the legend names its classes; TTA and opacity; several photos; bad ones get a
message; the server imports no torch and reaches nothing beyond this machine. Then the run picker
(PyTorch checkpoints) and the command line's one-line errors."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.demo import DemoServer, chromium, clear, free_port, open_page, upload
from seg import Segmenter
from seg.core.errors import ConfigError
from seg.data.labels import CLASS_NAMES, PALETTE
from seg.deploy.metadata import ModelFileError
from seg.run.results import finished_runs

from helpers import check_entry, compose_config, run_module

MAX_MEGAPIXELS = 10  # the test page's limit (the default, 40, takes a 12 MP photo: see the test of segment_photo)

# Run as `python -m seg.demo`, with an audit hook that reports what the process imports and where it
# connects: torch must never be imported with an ONNX model, and nothing beyond this machine reached.
AUDITED = """
import runpy, sys
LOCAL = ("127.", "::1", "localhost", "0.0.0.0")
def audit(event, args):
    if event == "import" and args[0].split(".")[0] == "torch":
        print("AUDIT imported", args[0], file=sys.stderr, flush=True)
    elif event == "socket.connect" and isinstance(args[1], tuple) and not str(args[1][0]).startswith(LOCAL):
        print("AUDIT connect", args[1], file=sys.stderr, flush=True)
    elif event == "socket.getaddrinfo" and args[0] and not str(args[0]).startswith(LOCAL):
        print("AUDIT getaddrinfo", args[0], file=sys.stderr, flush=True)
sys.addaudithook(audit)
sys.argv[0] = "seg.demo"
runpy.run_module("seg.demo", run_name="__main__", alter_sys=True)
"""


def smooth(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([255 * yy / max(h - 1, 1), 255 * xx / max(w - 1, 1), 0 * xx + rng.integers(0, 256)], -1)
    return np.clip(base + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 64x48, shown turned: 48 wide, 64 high
    made = {
        "turned.jpg": (Image.fromarray(smooth(48, 64, 0)), {"exif": exif, "quality": 90}),
        "grey.png": (Image.fromarray(smooth(40, 56, 1)[..., 0]), {}),
        "dot.png": (Image.fromarray(smooth(1, 1, 2)), {}),
        # a 12 MP phone photo, cheap to make and to upload: one colour
        "phone.jpg": (Image.new("RGB", (4000, 3000), (90, 140, 60)), {"quality": 80}),
    }
    for name, (image, params) in made.items():
        image.save(folder / name, **params)
    (folder / "broken.jpg").write_bytes(b"this is not a photo")
    return {p.name: p for p in folder.iterdir()}


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    """One page for the module, served by the ONNX export (audited: see AUDITED)."""
    tmp = tmp_path_factory.mktemp("demo")
    srv = DemoServer(
        f"model_file={exported['onnx']}",
        f"max_megapixels={MAX_MEGAPIXELS}",
        f"hydra.run.dir={tmp / 'run'}",
        command=[sys.executable, "-c", AUDITED],
        env={"GRADIO_TEMP_DIR": str(tmp / "gradio")},
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def page(browser, server):
    """The page, with every address it requested."""
    requested: list[str] = []
    page = open_page(browser, server.url, requested)
    page.requested = requested
    return page


@pytest.fixture(scope="module")
def onnx(exported) -> Segmenter:
    return Segmenter.load(exported["onnx"])


def download(page, name: str, folder: Path) -> Path:
    """Click the download link of ``name`` as a visitor does; the saved file."""
    with page.expect_download() as info:
        page.click(f"#downloads a[download='{name}']")
    path = folder / name
    info.value.save_as(path)
    return path


def legend(page) -> list[str]:
    return [s.strip() for s in page.locator("#legend .seg-class").all_inner_texts()]


def table(page) -> list[list[str]]:
    """The class table's rows (class, id, pixels, share %)."""
    rows = page.locator("#table [role=row]").all()
    cells = [[c.strip() for c in r.locator("[role=gridcell]").all_inner_texts()] for r in rows]
    return [c for c in cells if c]  # the header row has none


def test_an_uploaded_photo_gets_the_mask_of_segmenter_predict_and_a_legend_of_its_classes(page, photos, onnx, tmp_path):
    seconds = upload(page, [photos["turned.jpg"]])
    assert seconds < 60
    mask = download(page, "turned.png", tmp_path)
    with Image.open(mask) as im:
        assert im.mode == "P" and im.size == (48, 64)  # upright: EXIF orientation applied
        ids = np.array(im)
    np.testing.assert_array_equal(ids, onnx.predict(photos["turned.jpg"]))
    present = [CLASS_NAMES[c] for c in np.unique(ids)]
    assert sorted(legend(page)) == sorted(present)
    rows = table(page)
    assert sorted(r[0] for r in rows) == sorted(present)
    counts = np.bincount(ids.ravel(), minlength=len(CLASS_NAMES))
    for name, cid, pixels, share in rows:
        assert CLASS_NAMES[int(cid)] == name and int(pixels) == counts[int(cid)]
        assert float(share) == pytest.approx(100 * counts[int(cid)] / ids.size, abs=0.01)
    assert [float(r[3]) for r in rows] == sorted((float(r[3]) for r in rows), reverse=True)
    timing = page.inner_text("#timing")
    assert re.search(r"turned\.jpg, 48x64 px: segmented in \d+ ms \(onnxruntime, TTA off\)", timing), timing
    overlay = download(page, "turned_overlay.jpg", tmp_path)
    with Image.open(overlay) as im:
        assert im.format == "JPEG" and im.width > 48 and im.height >= 64  # the photo and its legend panel
    assert page.inner_text("#messages").strip() == ""


def test_tta_and_opacity_are_controls(page, photos, exported, tmp_path):
    upload(page, [photos["grey.png"]])
    page.click("#tta input[type=checkbox]")
    page.wait_for_function("() => /TTA on/.test(document.querySelector('#timing')?.innerText)")
    ids = np.array(Image.open(download(page, "grey.png", tmp_path)))
    np.testing.assert_array_equal(ids, Segmenter.load(exported["onnx"], tta=True).predict(photos["grey.png"]))

    # opacity 1: the overlay's photo part is the class colours alone
    before = page.get_attribute("#overlay img", "src")
    page.locator("#opacity input[type=range]").fill("1")
    page.locator("#opacity input[type=range]").dispatch_event("pointerup")
    page.wait_for_function(f"() => document.querySelector('#overlay img')?.src !== {before!r}")
    page.wait_for_function("() => { const i = document.querySelector('#overlay img'); return i.complete }")
    with Image.open(download(page, "grey_overlay.jpg", tmp_path)) as im:
        colours = np.asarray(im.convert("RGB"))[: ids.shape[0], : ids.shape[1]].astype(int)
    assert np.abs(colours - PALETTE[ids]).mean() < 8  # JPEG's error only
    page.click("#tta input[type=checkbox]")  # back to the start for the next tests
    page.locator("#opacity input[type=range]").fill("0.5")
    page.locator("#opacity input[type=range]").dispatch_event("pointerup")


def test_several_photos_at_once_and_a_bad_one_among_them(page, photos, onnx, tmp_path):
    upload(page, [photos["turned.jpg"], photos["broken.jpg"], photos["dot.png"]])
    messages = page.inner_text("#messages")
    assert "broken.jpg: cannot be read as a photo" in messages and str(photos["broken.jpg"].parent) not in messages
    assert "dot.png is 1x1 px: smaller than one 32-pixel cell of the net" in messages
    assert "turned.jpg" in page.inner_text("#timing")
    # the second photo segmented, picked from the photo list
    page.click("#which input")
    page.get_by_role("option", name="2. dot.png").click()
    page.wait_for_function("() => /dot\\.png, 1x1 px/.test(document.querySelector('#timing').innerText)")
    ids = np.array(Image.open(download(page, "dot.png", tmp_path)))
    assert ids.shape == (1, 1) and legend(page) == [CLASS_NAMES[ids[0, 0]]]
    np.testing.assert_array_equal(ids, onnx.predict(photos["dot.png"]))


def test_an_unreadable_file_alone_gets_a_message_and_the_page_goes_on(page, photos):
    upload(page, [photos["broken.jpg"]], message="broken.jpg: cannot be read as a photo")
    assert page.locator("#overlay img").count() == 0
    assert upload(page, [photos["dot.png"]]) > 0  # the page still works


def test_a_photo_over_the_pages_limit_gets_a_message(page, photos):
    upload(page, [photos["phone.jpg"]], message="phone.jpg is 4000x3000 px (12.0 megapixels), more than this page")
    assert f"(max_megapixels={MAX_MEGAPIXELS:g}): shrink it" in page.inner_text("#messages")
    assert page.locator("#overlay img").count() == 0
    clear(page)


def test_the_benchmark_times_upload_to_overlay_per_size_and_path(page, photos):
    from benchmarks.demo import markdown, measure

    results = measure({"pytorch": page, "onnxruntime": page}, {"48x64": photos["turned.jpg"]}, rounds=2)
    assert [(r["size"], r["path"]) for r in results] == [("48x64", "pytorch"), ("48x64", "onnxruntime")]
    for r in results:
        assert len(r["round_ms"]) == 2 and 0 <= r["predict_ms"] <= r["server_ms"] < r["upload_to_overlay_ms"]
    assert results[0]["round_speedups"] == [1.0, 1.0]
    machine = {"cpu": "cpu", "cpu_kind": "AVX2", "logical_cpus": 2, "torch": "2"}
    report = {"rounds": 2, "chromium": "1", "onnxruntime": "1", "gradio": "6", "date": "today", "command": "c"}
    table = markdown({**report, "load_before": 1.0, "load_after": 2.0, "machine": machine, "results": results})
    assert table.count("| 48x64 |") == 2 and "Load average (1 min) before and after: 1.0, 2.0" in table


def test_the_server_imports_no_torch_and_reaches_nothing_beyond_this_machine(page, server):
    port = server.url.split(":")[2].rstrip("/")
    assert page.requested and all(u.startswith(f"http://127.0.0.1:{port}/") for u in page.requested), {
        u for u in page.requested if not u.startswith(f"http://127.0.0.1:{port}/")
    }
    assert server.proc.poll() is None, server.output[-3000:]  # alive after every bad photo
    assert "AUDIT" not in server.output, [line for line in server.output.splitlines() if "AUDIT" in line]
    assert "Traceback" not in server.output
    assert server.stop() == 0 and "Demo page stopped" in server.output


def test_a_large_photo_is_segmented_at_its_size_and_shown_shrunk(onnx, tmp_path):
    from seg.run.page import PREVIEW_SIDE, segment_photo

    path = tmp_path / "large.jpg"
    Image.fromarray(smooth(1200, 1800, 4)).save(path, quality=90)
    shown = segment_photo(onnx, path, "large.jpg", tmp_path / "work", 0.5, max_megapixels=40)
    assert shown.size == (1800, 1200) and shown.notes == [
        "large.jpg (1800x1200 px) went through the net at 1024x683 (max_side=1024); its classes were resized "
        "back to the photo's size"
    ]
    ids = np.array(Image.open(shown.mask))
    np.testing.assert_array_equal(ids, onnx.predict(path))
    assert Image.open(shown.overlay).width > 1800  # downloads at the photo's size, with the legend beside it
    assert Image.open(shown.preview).size == Image.open(shown.mask_preview).size == (PREVIEW_SIDE, 1067)


def fake_run(root: Path, tiny_run: Path, when: str, test_acc: float | None) -> Path:
    """A copy of the tiny run's files as a run dir ``root/<date>/<time>`` with another test/acc."""
    import json

    run = root / when
    shutil.copytree(tiny_run / ".hydra", run / ".hydra")
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").symlink_to(tiny_run / "checkpoints" / "last.ckpt")
    (run / "result.json").write_text(json.dumps({"metrics": {"test/acc": test_acc}, "epochs": 2}))
    return run


def test_the_run_picker_lists_runs_newest_first_and_segments_with_the_picked_one(tiny_run, tmp_path):
    from seg.demo import build_page
    from seg.run.page import open_models, segment_files

    runs = tmp_path / "runs"
    older = fake_run(runs, tiny_run, "2026-01-02/10-00-00", 0.5)
    newer = fake_run(runs, tiny_run, "2026-03-04/11-22-33", 0.875)
    (runs / "2026-05-06" / "unfinished" / ".hydra").mkdir(parents=True)  # no result.json: not listed
    cfg = compose_config("demo", f"runs={runs}")
    check_entry(cfg)
    models = open_models(cfg)
    labels = [label for label, _ in models.choices()]
    assert [key for _, key in models.choices()] == [str(newer), str(older)]
    assert labels[0].startswith("2026-03-04 11:22 · ") and labels[0].endswith("test/acc 87.5%")
    assert "data.crop_size=64" in labels[0] and "paths." not in labels[0]  # the recipe, not where it ran
    segmenter = models.get(str(newer))  # loaded before serving
    assert segmenter.backend == "torch" and models.get(str(newer)) is segmenter
    photo = tmp_path / "p.png"
    Image.fromarray(smooth(30, 40, 3)).save(photo)
    shown, messages = segment_files(segmenter, [str(photo)], tmp_path / "work", 0.5, 40)
    assert messages == [] and shown[0].size == (40, 30)
    expected = Segmenter.from_checkpoint(tiny_run / "checkpoints" / "last.ckpt").predict(photo)
    np.testing.assert_array_equal(np.array(Image.open(shown[0].mask)), expected)
    page = build_page(models, cfg, tmp_path / "work")
    picker = next(b for b in page.blocks.values() if getattr(b, "elem_id", None) == "run")
    assert [c[1] for c in picker.choices] == [str(newer), str(older)] and picker.value == str(newer)
    assert len(finished_runs(runs)) == 2


def test_by_default_the_page_is_for_this_machine_only_and_lists_the_projects_runs():
    cfg = compose_config("demo", hydra_config=True)
    assert cfg.host == "127.0.0.1" and cfg.share is False and cfg.port == 7860
    assert Path(cfg.runs) == Path(cfg.paths.log_dir) / "runs" and cfg.ckpt_path is None and cfg.model_file is None
    assert Path(cfg.hydra.run.dir).parents[1] == Path(cfg.paths.log_dir) / "demo"  # demo/<date>/<time>


def test_without_runs_or_with_a_bad_model_it_stops_before_serving(tmp_path, exported):
    from seg.run.page import open_models

    with pytest.raises(ConfigError, match="no finished training runs there"):
        open_models(compose_config("demo", f"runs={tmp_path}"))
    with pytest.raises(ModelFileError, match="Model file not found"):
        open_models(compose_config("demo", f"model_file={tmp_path / 'nope.onnx'}"))
    with pytest.raises(ConfigError, match="pass at most one model"):
        check_entry(compose_config("demo", "ckpt_path=a.ckpt", f"model_file={exported['onnx']}"))


def test_a_port_in_use_is_a_one_line_error(exported, tmp_path):
    import socket

    from seg.demo import build_page, serve
    from seg.run.page import open_models

    cfg = compose_config("demo", f"model_file={exported['onnx']}")
    page = build_page(open_models(cfg), cfg, tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        cfg.port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot serve on host=127.0.0.1 with port={cfg.port}"):
            serve(page, cfg, tmp_path)


def test_a_bad_setting_is_one_line_and_exit_2(tmp_path):
    proc = run_module("seg.demo", "port=70000", "share=yes", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    lines = [s for s in proc.stderr.splitlines() if "ConfigError" in s]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "port=70000: must be an integer in [1, 65535] or null" in lines[0] and "share='yes'" in lines[0]
    assert "Traceback" not in proc.stderr and "gradio" not in proc.stderr


def test_the_heading_names_the_models_classes_not_msrcs():
    from types import SimpleNamespace

    from seg.run.page import heading_classes as _classes

    camvid = SimpleNamespace(class_names=("sky", "building", "pole", "road", "sidewalk"))
    assert _classes(camvid) == "the model's 5 classes (sky, building, pole, road, ...)"
    assert _classes(SimpleNamespace(class_names=("bg", "cat"))) == "the model's 2 classes (bg, cat)"
    assert "MSRC" not in _classes(None) and "run you pick" in _classes(None)
