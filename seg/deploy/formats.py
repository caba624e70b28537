"""The net as deployed, and the file formats it is written in (ONNX, TorchScript).

:class:`DeployNet` takes RGB float32 NCHW in [0, 1] of any batch, height and width, applies the
checkpoint's input normalisation itself and returns logits at the input size. The checkpoint backend
of :class:`seg.deploy.segmenter.Segmenter` and both export formats run this one module, so they
compute the same function. The exported files carry the metadata of :mod:`seg.deploy.metadata`.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from seg.data.labels import IMAGENET_MEAN, IMAGENET_STD
from seg.deploy.metadata import INPUT_NAME, OUTPUT_NAME, TORCHSCRIPT_FILE, describe
from seg.model.checkpoint import load_model

ONNX_OPSET = 20  # run by onnxruntime >= 1.17 (the export extra asks for >= 1.20)
# the example the exporters trace: batch 2 and a non-square size, so that no dimension is specialised
EXAMPLE_SHAPE = (2, 3, 64, 96)


class DeployNet(nn.Module):
    """``net`` behind the deployed input convention: [0, 1] RGB in, normalised inside if ``normalize``."""

    def __init__(self, net: nn.Module, normalize: bool = True, channels_last: bool = False) -> None:
        super().__init__()
        self.net, self.normalize, self.channels_last = net, normalize, channels_last
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # the same operations as seg.data.transforms.to_input and SegModule.forward, so that the
        # logits equal seg.eval's bit for bit
        x = (image - self.mean) / self.std if self.normalize else image
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)


def load_deploy_net(ckpt_path: str | os.PathLike) -> tuple[DeployNet, dict[str, str]]:
    """The :class:`DeployNet` of a seg.train checkpoint (eval mode) and the metadata its exports carry."""
    module, data = load_model(ckpt_path)
    normalize = bool(data.get("normalize", True))
    net = DeployNet(module.net, normalize, bool(module.hparams.get("channels_last", False))).eval()
    return net, describe(module.label_set, normalize, data.get("crop_size"), Path(ckpt_path).name)


@contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Only warnings and errors from these loggers (and no Python warnings) for the duration."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def export_onnx(net: DeployNet, path: Path, metadata: Mapping[str, str]) -> None:
    """``net`` as an ONNX model (torch.onnx's torch.export-based exporter) with dynamic batch, height
    and width, and ``metadata`` in its ``metadata_props``; one self-contained file."""
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    # the exporter's graph optimiser logs every rewrite at INFO (Hydra's log config would show them all)
    # and warns about decompositions and dynamic dimensions
    with _quiet("onnxscript", "onnx_ir"):
        program = torch.onnx.export(
            net.eval(),
            (torch.rand(EXAMPLE_SHAPE),),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"image": dims},
            opset_version=ONNX_OPSET,
            verbose=False,
        )
    program.model.metadata_props.update(metadata)
    program.model.producer_name = "seg"
    program.model.doc_string = "Semantic segmentation; class names, palette, ignore index: the seg.* metadata_props."
    program.save(str(path), external_data=False)


def export_torchscript(net: DeployNet, path: Path, metadata: Mapping[str, str]) -> None:
    """``net`` traced and frozen (BatchNorm folded into the convolutions) as TorchScript, ``metadata``
    as the JSON extra file :data:`seg.deploy.metadata.TORCHSCRIPT_FILE`."""
    with torch.no_grad(), _quiet():  # TorchScript's deprecation notices
        traced = torch.jit.freeze(torch.jit.trace(net.eval(), torch.rand(EXAMPLE_SHAPE)))
        torch.jit.save(traced, str(path), _extra_files={TORCHSCRIPT_FILE: json.dumps(dict(metadata))})
