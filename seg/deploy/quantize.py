"""int8 ONNX models: static quantization by ONNX Runtime's own tooling (QDQ format, per-channel int8
weights, uint8 activations with MinMax ranges), calibrated on photos of the training data, and the gate
that scores the int8 model beside the float one on labelled photos before it may be written.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seg.deploy.metadata import INPUT_NAME
from seg.deploy.segmenter import Segmenter

QUANTIZATION_KEY = "seg.quantization"  # the metadata key an int8 model says so under


def calibration_indices(available: int, photos: int, seed: int) -> list[int]:
    """``photos`` distinct indices of ``available`` drawn by ``seed`` (sorted): the same photos every time."""
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(available, size=min(photos, available), replace=False))


class _PhotoReader:
    """ONNX Runtime's calibration reader (``get_next`` protocol) over HxWx3 uint8 photos, fed as the
    deployed input: 1x3xHxW float32 in [0, 1]."""

    def __init__(self, photos: Iterable[np.ndarray]) -> None:
        self._photos = iter(photos)

    def get_next(self) -> dict[str, np.ndarray] | None:
        photo = next(self._photos, None)
        if photo is None:
            return None
        return {INPUT_NAME: np.ascontiguousarray(photo.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)}


def quantize_int8(
    float_model: Path, int8_model: Path, photos: Sequence[np.ndarray], calibration: dict[str, Any]
) -> None:
    """Write ``float_model`` (an ONNX file of seg.export) as a static int8 QDQ model calibrated on
    ``photos``; its metadata is the float model's plus :data:`QUANTIZATION_KEY` (``calibration`` and
    the quantization's settings)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not photos:
        raise ValueError("int8 calibration needs at least one photo")
    settings = {
        "dtype": "int8",
        "format": "QDQ",
        "weights": "int8, per channel, 7-bit range",
        "activations": "uint8, per tensor",
        "calibration_method": "MinMax",
        "tool": "onnxruntime.quantization.quantize_static",
    }
    with tempfile.TemporaryDirectory(dir=int8_model.parent) as tmp:
        # ONNX Runtime's recommended pre-processing: shape inference and graph optimisation (folds the
        # normalisation and BatchNorm), so that quantization sees the graph it will run
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_model), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(int8_model),
            _PhotoReader(photos),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            # 7-bit weights: CPUs without VNNI (AVX2, AVX512 without VNNI) multiply u8 x s8 pairs into a
            # saturating int16 (VPMADDUBSW); the full 8-bit range overflows it and loses accuracy there
            # (ONNX Runtime's quantization docs), the reduced one is exact on every x86 CPU
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"CalibTensorRangeSymmetric": False},
        )
    source = onnx.load(str(float_model), load_external_data=False)
    model = onnx.load(str(int8_model))
    props = {p.key: p.value for p in source.metadata_props}
    props[QUANTIZATION_KEY] = json.dumps({**settings, "calibration": calibration})
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name, model.doc_string = source.producer_name, source.doc_string
    onnx.save(model, str(int8_model))


def accuracy_gate(
    float_model: Segmenter, int8_model: Segmenter, labelled: Iterable[tuple[np.ndarray, np.ndarray]], ignore_index: int
) -> dict[str, Any]:
    """Pixel accuracy (``ignore_index`` left out) of both models on the same labelled photos, the drop in
    points and the share of pixels whose class agrees: what seg.export's int8 gate decides by."""
    right = {"float": 0, "int8": 0}
    labelled_pixels = agree = pixels = photos = 0
    for photo, target in labelled:
        a, b = float_model.predict(photo), int8_model.predict(photo)
        valid = target != ignore_index
        right["float"] += int((a[valid] == target[valid]).sum())
        right["int8"] += int((b[valid] == target[valid]).sum())
        labelled_pixels += int(valid.sum())
        agree += int((a == b).sum())
        pixels += a.size
        photos += 1
    float_acc, int8_acc = (right[k] / max(labelled_pixels, 1) for k in ("float", "int8"))
    return {
        "photos": photos,
        "float_pixel_accuracy": float_acc,
        "int8_pixel_accuracy": int8_acc,
        "drop_points": 100 * (float_acc - int8_acc),
        "argmax_agreement": agree / max(pixels, 1),
    }
