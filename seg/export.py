"""`python -m seg.export ckpt_path=PATH format=onnx|torchscript [output=FILE]`: a checkpoint as one model file.

The file takes RGB float32 NCHW in [0, 1] of any batch, height and width, normalises inside and
returns logits at the input size; its metadata holds the class names, palette, normalisation and
input convention (:mod:`seg.deploy.metadata`). Before it is moved into place its logits are compared
with PyTorch's on every photo of ``verify_split`` at its own size (``export.json`` in the run dir).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from seg.core.errors import SegError
from seg.core.files import atomic_write, unwritable
from seg.core.rules import Get, Settings, given, integer, number, one_of, switch
from seg.data.labels import LabelSet
from seg.data.splits import SPLITS
from seg.deploy.formats import export_onnx, export_torchscript, load_deploy_net
from seg.deploy.quantize import accuracy_gate, calibration_indices, quantize_int8
from seg.deploy.segmenter import Segmenter, parity
from seg.run.build import build_datamodule
from seg.run.entry import hydra_main, run_job

log = logging.getLogger(__name__)

FORMATS = {"onnx": (".onnx", export_onnx), "torchscript": (".pt", export_torchscript)}


class ExportError(SegError, RuntimeError):
    """The exported model does not reproduce PyTorch's predictions."""


def verify_photos(cfg: DictConfig, datamodule: Any, class_names: tuple[str, ...]) -> Any:
    """The ``cfg.verify_split`` dataset of the parity check, refused (one line, before the export) when its
    data set has other classes than the model: the check would then not be of this model's data."""
    dataset = datamodule.split_dataset(cfg.verify_split)
    data = datamodule.label_set()
    advice = "pass the data=... it was trained with, or verify_split=null to export without the check"
    LabelSet.from_names(class_names).require(data, f"ckpt_path={cfg.ckpt_path}", advice)
    return dataset


def check(cfg: DictConfig, model_file: Path, reference: Segmenter, dataset: Any) -> dict[str, Any]:
    """Parity of ``model_file`` with the checkpoint's PyTorch model (``reference``) on ``dataset`` (of
    ``cfg.verify_split``) at native size."""
    candidate = Segmenter.load(model_file, max_side=None)
    photos = (dataset.raw(i)[0] for i in range(verified(cfg, dataset)))
    return {"split": cfg.verify_split, **parity(reference, candidate, photos)}


def verified(cfg: DictConfig, dataset: Any) -> int:
    """How many photos of the verify split are checked (the first ones)."""
    return len(dataset) if cfg.get("verify_photos") is None else min(cfg.verify_photos, len(dataset))


def calibration_photos(cfg: DictConfig, datamodule: Any) -> tuple[list[Any], dict[str, Any]]:
    """The photos ``cfg.calibration`` names (drawn by its seed from its split) and how they were drawn."""
    c = cfg.calibration
    source = datamodule.split_dataset(c.split)
    indices = calibration_indices(len(source), c.photos, c.seed)
    return [source.raw(i)[0] for i in indices], {
        "split": c.split,
        "photos": len(indices),
        "seed": c.seed,
        "indices": indices,
    }


def quantized(
    cfg: DictConfig, float_file: Path, int8_file: Path, datamodule: Any, dataset: Any
) -> tuple[dict[str, Any], Segmenter]:
    """``float_file`` quantized to int8 into ``int8_file``, calibrated on ``cfg.calibration``'s photos, and
    scored beside the float model on the verify split: the gate's report and the int8 model; refused
    (ExportError) when it loses more than ``cfg.max_accuracy_drop`` points of pixel accuracy, unless
    ``cfg.keep_anyway``."""
    photos, calibration = calibration_photos(cfg, datamodule)
    log.info(
        f"int8: calibrating on {len(photos)} photos of the {calibration['split']} split (seed {calibration['seed']})"
    )
    quantize_int8(float_file, int8_file, photos, calibration)
    labelled = [dataset.raw(i) for i in range(verified(cfg, dataset))]
    int8_model = Segmenter.load(int8_file, max_side=None)
    gate = accuracy_gate(
        Segmenter.load(float_file, max_side=None), int8_model, labelled, datamodule.label_set().ignore_index
    )
    gate.update(split=cfg.verify_split, max_accuracy_drop=cfg.max_accuracy_drop, calibration=calibration)
    line = (
        f"int8 pixel accuracy {100 * gate['int8_pixel_accuracy']:.2f}% against the float model's "
        f"{100 * gate['float_pixel_accuracy']:.2f}% on {gate['photos']} {cfg.verify_split} photos "
        f"({gate['drop_points']:+.2f} points lost; max_accuracy_drop={cfg.max_accuracy_drop})"
    )
    over = gate["drop_points"] > cfg.max_accuracy_drop
    gate["kept_anyway"] = over and bool(cfg.keep_anyway)
    if over and not cfg.keep_anyway:
        raise ExportError(
            f"{line}: the int8 model was not written; calibrate on more photos (calibration.photos=...), "
            f"export the float model (quantize=null), or pass keep_anyway=true to keep it"
        )
    log.info(line)
    return gate, int8_model


def export(cfg: DictConfig) -> dict[str, Any]:
    """Write ``cfg.ckpt_path``'s model as ``cfg.format`` (int8 with ``quantize=int8``) to ``cfg.output``
    and report it."""
    suffix, write = FORMATS[cfg.format]
    int8 = cfg.get("quantize") == "int8"
    output = Path(cfg.output).expanduser() if cfg.get("output") else Path(cfg.paths.output_dir) / default_name(cfg)
    net, metadata = load_deploy_net(cfg.ckpt_path)
    datamodule = build_datamodule(cfg) if cfg.get("verify_split") else None
    names = tuple(json.loads(metadata["seg.class_names"]))
    dataset = verify_photos(cfg, datamodule, names) if datamodule is not None else None
    output.parent.mkdir(parents=True, exist_ok=True)
    # written and checked beside the output under a temporary name (same suffix: Segmenter.load goes by
    # it), then renamed into place: an existing file is replaced only by a checked, complete one
    partial = output.with_name(f".{output.stem}.partial{suffix}")
    exported = output.with_name(f".{output.stem}.float.partial{suffix}") if int8 else partial
    try:
        write(net, exported, metadata)
        report: dict[str, Any] = {
            "format": cfg.format,
            "quantize": cfg.get("quantize"),
            "output": str(output.resolve()),
            "ckpt_path": str(Path(cfg.ckpt_path).resolve()),
            "megabytes": round(exported.stat().st_size / 2**20, 2),
            "metadata": {k: json.loads(v) for k, v in metadata.items()},
        }
        if dataset is not None:
            # the net just exported, in PyTorch: the checkpoint is loaded once
            reference = Segmenter.from_deploy_net(net, metadata, str(cfg.ckpt_path), max_side=None)
            report["parity"] = check(cfg, exported, reference, dataset)
            agreement = report["parity"]["argmax_agreement"]
            if agreement < cfg.min_agreement:
                raise ExportError(
                    f"the {cfg.format} model's classes agree with PyTorch's on only {100 * agreement:.3f}% of the "
                    f"{cfg.verify_split} pixels (min_agreement={cfg.min_agreement}); {output} was not written"
                )
        if int8:
            report["int8"], int8_model = quantized(cfg, exported, partial, datamodule, dataset)
            report["float_megabytes"] = report["megabytes"]
            report["megabytes"] = round(partial.stat().st_size / 2**20, 2)
            report["metadata"] = int8_model.metadata  # seg.quantization included
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
        exported.unlink(missing_ok=True)
    atomic_write(Path(cfg.paths.output_dir) / "export.json", json.dumps(report, indent=1) + "\n")
    p = report.get("parity")
    checked = (
        f"; {p['split']} split ({p['photos']} photos): max |logit diff| {p['max_abs_logit_diff']:.2e}, "
        f"argmax agreement {100 * p['argmax_agreement']:.4f}%"
        if p
        else "; not checked (verify_split=null)"
    )
    if int8:
        checked = f" (int8, {report['float_megabytes']} MB as float32){checked} before quantization"
    log.info(f"wrote {output} ({report['megabytes']} MB){checked}")
    return report


def default_name(cfg: DictConfig) -> str:
    """model.onnx, model.pt, or model_int8.onnx."""
    suffix = FORMATS[cfg.format][0]
    return f"model_int8{suffix}" if cfg.get("quantize") == "int8" else f"model{suffix}"


def _checkpoint_and_output(get: Get, at: str) -> list[str]:
    out = []
    if not given(get("ckpt_path")):
        out.append("ckpt_path: pass the checkpoint to export, e.g. python -m seg.export ckpt_path=PATH format=onnx")
    fmt, output = get("format"), get("output")
    suffix = {"onnx": ".onnx", "torchscript": ".pt"}.get(fmt)
    if given(output) and suffix:
        path = Path(str(output)).expanduser()
        if path.suffix.lower() != suffix:
            out.append(f"output={output}: a format={fmt} file must end in {suffix} (seg.predict goes by it)")
        elif path.exists() and get("overwrite") is not True:
            out.append(f"output={output}: exists; pass overwrite=true to replace it, or another output=...")
        elif reason := unwritable(path.parent):
            out.append(f"output={output}: its folder cannot be written ({reason}); pass another output=...")
    return out


def _int8(get: Get, at: str) -> list[str]:
    if get("quantize") != "int8":
        return []
    out = []
    if get("format") != "onnx":
        out.append(f"quantize=int8: needs format=onnx (ONNX Runtime runs the int8 model), got format={get('format')}")
    if not given(get("verify_split")):
        out.append(
            "quantize=int8: needs verify_split (the int8 model is scored there beside the float one before it "
            "is written), e.g. verify_split=val"
        )
    return out


# the keys seg.export reads itself; the data group's class (the verify split's photos) checks its own
SETTINGS = Settings(
    {
        "format": one_of("onnx", "torchscript"),
        "overwrite": switch,
        "verify_split": one_of(*SPLITS, None),
        "verify_photos": integer(1, null=True),
        "min_agreement": number(0, 1, why="a share of the pixels: 0.999 is 99.9%"),
        "quantize": one_of(None, "int8"),
        "calibration.split": one_of(*SPLITS),
        "calibration.photos": integer(1),
        "calibration.seed": integer(0),
        "max_accuracy_drop": number(0, 100, why="points of pixel accuracy: 0.5 is half a point"),
        "keep_anyway": switch,
    },
    checks=(_checkpoint_and_output, _int8),
)


def run(cfg: DictConfig) -> float:
    """What Hydra calls: export, and hand the file's size in MB to a sweeper."""
    return run_job(cfg, lambda c: export(c)["megabytes"], SETTINGS)


main = hydra_main("export", run)

if __name__ == "__main__":
    main()
