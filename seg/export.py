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
from seg.deploy.segmenter import Segmenter, parity
from seg.run.build import build_datamodule
from seg.run.entry import hydra_main, run_job

log = logging.getLogger(__name__)

FORMATS = {"onnx": (".onnx", export_onnx), "torchscript": (".pt", export_torchscript)}


class ExportError(SegError, RuntimeError):
    """The exported model does not reproduce PyTorch's predictions."""


def verify_photos(cfg: DictConfig, class_names: tuple[str, ...]) -> Any:
    """The ``cfg.verify_split`` dataset of the parity check, refused (one line, before the export) when its
    data set has other classes than the model: the check would then not be of this model's data."""
    datamodule = build_datamodule(cfg)
    dataset = datamodule.split_dataset(cfg.verify_split)
    data = datamodule.label_set()
    advice = "pass the data=... it was trained with, or verify_split=null to export without the check"
    LabelSet.from_names(class_names).require(data, f"ckpt_path={cfg.ckpt_path}", advice)
    return dataset


def check(cfg: DictConfig, model_file: Path, reference: Segmenter, dataset: Any) -> dict[str, Any]:
    """Parity of ``model_file`` with the checkpoint's PyTorch model (``reference``) on ``dataset`` (of
    ``cfg.verify_split``) at native size."""
    candidate = Segmenter.load(model_file, max_side=None)
    limit = len(dataset) if cfg.get("verify_photos") is None else min(cfg.verify_photos, len(dataset))
    photos = (dataset.raw(i)[0] for i in range(limit))
    return {"split": cfg.verify_split, **parity(reference, candidate, photos)}


def export(cfg: DictConfig) -> dict[str, Any]:
    """Write ``cfg.ckpt_path``'s model as ``cfg.format`` to ``cfg.output`` and report it."""
    suffix, write = FORMATS[cfg.format]
    output = Path(cfg.output).expanduser() if cfg.get("output") else Path(cfg.paths.output_dir) / f"model{suffix}"
    net, metadata = load_deploy_net(cfg.ckpt_path)
    dataset = verify_photos(cfg, tuple(json.loads(metadata["seg.class_names"]))) if cfg.get("verify_split") else None
    output.parent.mkdir(parents=True, exist_ok=True)
    # written and checked beside the output under a temporary name (same suffix: Segmenter.load goes by
    # it), then renamed into place: an existing file is replaced only by a checked, complete one
    partial = output.with_name(f".{output.stem}.partial{suffix}")
    try:
        write(net, partial, metadata)
        report: dict[str, Any] = {
            "format": cfg.format,
            "output": str(output.resolve()),
            "ckpt_path": str(Path(cfg.ckpt_path).resolve()),
            "megabytes": round(partial.stat().st_size / 2**20, 2),
            "metadata": {k: json.loads(v) for k, v in metadata.items()},
        }
        if cfg.get("verify_split"):
            # the net just exported, in PyTorch: the checkpoint is loaded once
            reference = Segmenter.from_deploy_net(net, metadata, str(cfg.ckpt_path), max_side=None)
            report["parity"] = check(cfg, partial, reference, dataset)
            agreement = report["parity"]["argmax_agreement"]
            if agreement < cfg.min_agreement:
                raise ExportError(
                    f"the {cfg.format} model's classes agree with PyTorch's on only {100 * agreement:.3f}% of the "
                    f"{cfg.verify_split} pixels (min_agreement={cfg.min_agreement}); {output} was not written"
                )
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    atomic_write(Path(cfg.paths.output_dir) / "export.json", json.dumps(report, indent=1) + "\n")
    p = report.get("parity")
    checked = (
        f"; {p['split']} split ({p['photos']} photos): max |logit diff| {p['max_abs_logit_diff']:.2e}, "
        f"argmax agreement {100 * p['argmax_agreement']:.4f}%"
        if p
        else "; not checked (verify_split=null)"
    )
    log.info(f"wrote {output} ({report['megabytes']} MB){checked}")
    return report


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


# the keys seg.export reads itself; the data group's class (the verify split's photos) checks its own
SETTINGS = Settings(
    {
        "format": one_of("onnx", "torchscript"),
        "overwrite": switch,
        "verify_split": one_of(*SPLITS, None),
        "verify_photos": integer(1, null=True),
        "min_agreement": number(0, 1, why="a share of the pixels: 0.999 is 99.9%"),
    },
    checks=(_checkpoint_and_output,),
)


def run(cfg: DictConfig) -> float:
    """What Hydra calls: export, and hand the file's size in MB to a sweeper."""
    return run_job(cfg, lambda c: export(c)["megabytes"], SETTINGS)


main = hydra_main("export", run)

if __name__ == "__main__":
    main()
