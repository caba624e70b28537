"""`python -m seg.export`: ONNX and TorchScript files with dynamic batch/height/width and self-describing
metadata, whose logits match PyTorch's on the val split and at odd sizes; bad settings are clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from seg.data.archive import ARCHIVE_DIR
from seg.data.dataset import MSRCDataset
from seg.data.labels import CLASS_NAMES, IMAGENET_MEAN, IMAGENET_STD, PALETTE
from seg.data.transforms import to_input
from seg.deploy.segmenter import Segmenter
from seg.export import ExportError, export
from seg.model.checkpoint import load_model

from helpers import compose_config, entry_problems, run_module

ODD_SIZES = [(213, 320), (1, 1), (17, 3001), (3001, 17), (64, 64)]


def report(exported: dict[str, Path], fmt: str) -> dict:
    return json.loads((exported["onnx"].parent / fmt / "export.json").read_text())


def test_onnx_file_describes_itself(exported):
    model = onnx.load(str(exported["onnx"]))
    onnx.checker.check_model(model)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    props = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert props["seg.class_names"] == list(CLASS_NAMES)
    assert props["seg.palette"] == PALETTE.tolist()
    assert props["seg.normalization"] == {
        "applied_in_graph": True,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
    }
    assert props["seg.input"]["layout"] == "NCHW" and props["seg.input"]["range"] == [0.0, 1.0]
    assert props["seg.input"]["channels"] == "RGB" and props["seg.output"]["name"] == "logits"
    # every dimension but the channels is dynamic, by name
    (image,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert image.name == "image" and dims == ["batch", 3, "height", "width"]


def pytorch_logits(module, photo: np.ndarray, normalize: bool) -> np.ndarray:
    """The checkpoint's logits the way seg.eval computes them (to_input + SegModule), independent of the
    deployed net (seg.deploy.formats)."""
    x = to_input(torch.from_numpy(photo).permute(2, 0, 1), normalize)[None]
    with torch.no_grad():
        return module(x).numpy()


def exported_runner(exported: dict[str, Path], fmt: str):
    """The exported file run directly by ONNX Runtime / torch.jit on [0, 1] RGB NCHW."""
    if fmt == "onnx":
        session = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"image": x})[0]
    net = torch.jit.load(str(exported["torchscript"]))
    return lambda x: net(torch.from_numpy(x)).detach().numpy()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_logits_match_pytorch_on_the_val_split_and_at_odd_sizes(exported, tiny_run, data_dir, fmt):
    module, data = load_model(tiny_run / "checkpoints" / "last.ckpt")
    run = exported_runner(exported, fmt)
    val = MSRCDataset(data_dir / ARCHIVE_DIR, "val")
    rng = np.random.default_rng(0)
    photos = [val.raw(i)[0] for i in range(len(val))]
    photos += [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for hw in ODD_SIZES]
    worst, agree, pixels = 0.0, 0, 0
    for p in photos:
        ref = pytorch_logits(module, p, data["normalize"])
        got = run(np.ascontiguousarray(p.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255))
        assert got.shape == ref.shape == (1, 23, *p.shape[:2])
        worst = max(worst, float(np.abs(got - ref).max()))
        agree += int((got.argmax(1) == ref.argmax(1)).sum())
        pixels += p.shape[0] * p.shape[1]
    assert worst < 1e-3 and agree / pixels >= 0.999, (worst, agree / pixels)
    # seg.export checked the same on the val split before writing the file
    parity = report(exported, fmt)["parity"]
    assert parity["split"] == "val" and parity["photos"] == len(val)
    assert parity["argmax_agreement"] >= 0.999 and parity["max_abs_logit_diff"] < 1e-3


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_batch_dimension_is_dynamic(exported, fmt):
    run = exported_runner(exported, fmt)
    x = np.random.default_rng(1).random((3, 3, 40, 70), dtype=np.float32)
    batched = run(x)
    assert batched.shape == (3, 23, 40, 70)
    for i in range(3):
        np.testing.assert_allclose(batched[i], run(x[i : i + 1])[0], atol=1e-4)


def export_in_process(tmp_path: Path, *args: str) -> dict:
    """seg.export's work without a subprocess (the CLI's exit code is checked once, below)."""
    return export(compose_config("export", *args, f"paths.output_dir={tmp_path / 'run'}"))


def test_a_file_is_replaced_only_by_a_checked_one(tiny_run, archive_url, data_dir, tmp_path):
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    out = tmp_path / "m.pt"
    out.write_bytes(b"an earlier model")
    common = [f"ckpt_path={ckpt}", "format=torchscript", f"output={out}", f"data.url={archive_url}"]
    common.append(f"paths.data_dir={data_dir}")
    proc = run_module("seg.export", *common, f"hydra.run.dir={tmp_path / 'run'}", check=False)
    assert proc.returncode == 2 and "ConfigError: output=" in proc.stdout + proc.stderr
    assert "exists; pass overwrite=true" in proc.stdout + proc.stderr and "Traceback" not in proc.stdout + proc.stderr
    assert out.read_bytes() == b"an earlier model"
    # a check that cannot pass: the earlier file stays, no partial file is left behind
    with pytest.raises(ExportError, match="was not written"):
        export_in_process(tmp_path, *common, "overwrite=true", "min_agreement=1.01")
    assert out.read_bytes() == b"an earlier model" and sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "run"]
    report = export_in_process(tmp_path, *common, "overwrite=true", "verify_split=null")
    assert "parity" not in report and report["output"] == str(out.resolve())
    assert torch.jit.load(str(out))(torch.rand(1, 3, 9, 11)).shape == (1, 23, 9, 11)
    assert json.loads((tmp_path / "run" / "export.json").read_text())["format"] == "torchscript"


def test_the_checkpoint_is_loaded_once_for_export_and_its_check(tiny_run, archive_url, data_dir, tmp_path, monkeypatch):
    import seg.deploy.formats as formats

    loads = []
    real = formats.load_model
    monkeypatch.setattr(formats, "load_model", lambda path: loads.append(path) or real(path))
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    report = export_in_process(
        tmp_path,
        f"ckpt_path={ckpt}",
        "format=torchscript",
        f"output={tmp_path / 'm.pt'}",
        f"data.url={archive_url}",
        f"paths.data_dir={data_dir}",
        "verify_photos=2",
    )
    assert report["parity"]["photos"] == 2 and report["parity"]["argmax_agreement"] == 1.0
    assert [str(p) for p in loads] == [str(ckpt)]  # not once more for the parity check


def test_parity_on_the_real_val_split(real_onnx, real_run, tmp_path):
    run, data = real_run
    # ONNX: the command line once (the session's export), on every val photo at its own size
    onnx_parity = json.loads((real_onnx.parent / "run" / "export.json").read_text())["parity"]
    # TorchScript in process, on the first 15 val photos
    out = tmp_path / "model.pt"
    args = [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "format=torchscript", f"output={out}"]
    export_in_process(tmp_path, *args, f"paths.data_dir={data}", "verify_photos=15")
    ts_parity = json.loads((tmp_path / "run" / "export.json").read_text())["parity"]
    for parity, photos in ((onnx_parity, 59), (ts_parity, 15)):
        assert parity["split"] == "val" and parity["photos"] == photos
        assert parity["argmax_agreement"] >= 0.999 and parity["max_abs_logit_diff"] < 1e-3
    assert real_onnx.is_file() and out.is_file()


def int8_export(tmp_path: Path, monkeypatch, real_onnx, real_run, *args: str) -> dict:
    """seg.export quantize=int8 of the real run's checkpoint in process, its float ONNX file copied from
    the session's export (the torch exporter is tested above; here the quantization, its gate and its
    files are), scored on the first 20 val photos."""
    import shutil

    import seg.export as export_module

    run, data = real_run
    copy = lambda net, path, metadata: shutil.copyfile(real_onnx, path)  # noqa: E731
    monkeypatch.setitem(export_module.FORMATS, "onnx", (".onnx", copy))
    common = [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"paths.data_dir={data}", "verify_photos=20"]
    return export_in_process(tmp_path, *common, "quantize=int8", "calibration.photos=8", *args)


def test_int8_is_calibrated_on_training_photos_scored_beside_float_and_says_so(
    real_onnx, real_run, real_env, tmp_path, monkeypatch
):
    from seg.deploy.quantize import QUANTIZATION_KEY, calibration_indices

    out = tmp_path / "model_int8.onnx"
    report = int8_export(tmp_path, monkeypatch, real_onnx, real_run, f"output={out}")
    gate = report["int8"]
    assert gate["split"] == "val" and gate["photos"] == 20 and 0.05 < gate["float_pixel_accuracy"] < 1, gate
    assert gate["drop_points"] <= 0.5 and not gate["kept_anyway"] and gate["argmax_agreement"] > 0.9, gate
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(init.data_type == onnx.TensorProto.INT8 for init in model.graph.initializer)  # int8 weights
    props = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert props[QUANTIZATION_KEY]["dtype"] == "int8" and props[QUANTIZATION_KEY]["format"] == "QDQ"
    assert props[QUANTIZATION_KEY]["calibration"] == {
        "split": "train",
        "photos": 8,
        "seed": 0,
        "indices": calibration_indices(276, 8, 0),  # drawn by the seed from MSRC's 276: the same every time
    }
    assert props["seg.class_names"] == list(CLASS_NAMES)  # the float model's metadata travels
    assert report["megabytes"] < report["float_megabytes"] / 2
    seg = Segmenter.load(out)
    assert seg.backend == "onnxruntime" and seg.predict(np.zeros((17, 30, 3), np.uint8)).shape == (17, 30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_int8.onnx", "run"]  # no partial files left


def test_the_int8_gate_refuses_a_model_made_to_lose(real_onnx, real_run, real_env, tmp_path, monkeypatch):
    import seg.export as export_module

    # a bad calibration set: flat grey photos, whose narrow activation ranges clip every real photo
    real = export_module.calibration_photos

    def grey(cfg, datamodule):
        photos, how = real(cfg, datamodule)
        return [np.full_like(p, 128) for p in photos], how

    monkeypatch.setattr(export_module, "calibration_photos", grey)
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=r"points lost; max_accuracy_drop=0.5.*was not written.*keep_anyway=true"):
        int8_export(tmp_path, monkeypatch, real_onnx, real_run, f"output={out}")
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no report of a model not written
    report = int8_export(tmp_path, monkeypatch, real_onnx, real_run, f"output={out}", "keep_anyway=true")
    assert report["int8"]["kept_anyway"] and report["int8"]["drop_points"] > 0.5 and out.is_file()


@pytest.mark.parametrize(
    "args, says",
    [
        (["format=torchscript"], "quantize=int8: needs format=onnx"),
        (["verify_split=null"], "quantize=int8: needs verify_split"),
        (["calibration.photos=0"], "calibration.photos"),
        (["max_accuracy_drop=-1"], "max_accuracy_drop"),
    ],
)
def test_bad_int8_settings_are_one_line_each(args, says):
    problems = entry_problems(compose_config("export", "ckpt_path=x.ckpt", "quantize=int8", *args))
    assert len(problems) == 1 and says in problems[0], problems
