"""What an exported model says about itself, so that it can be used without this project.

Class names, palette, input convention and normalisation, as JSON strings: an ONNX model's
``metadata_props``, a TorchScript file's extra file :data:`TORCHSCRIPT_FILE`. No torch needed to read them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from seg.core.errors import SegError
from seg.data.labels import IMAGENET_MEAN, IMAGENET_STD, LabelSet

FORMAT = "seg-semantic-segmentation/1"  # bumped if the convention below changes
TORCHSCRIPT_FILE = "seg_metadata.json"  # the extra file of a TorchScript export holding the same keys
INPUT_NAME, OUTPUT_NAME = "image", "logits"


class ModelFileError(SegError, ValueError):
    """A model file is missing, unreadable, or was not written by seg.export."""


def describe(labels: LabelSet, normalize: bool, crop_size: int | None, checkpoint: str) -> dict[str, str]:
    """The metadata of a model trained on ``labels``, exported from ``checkpoint`` (its file name is kept,
    not its folder)."""
    return {
        "seg.format": json.dumps(FORMAT),
        "seg.class_names": json.dumps(list(labels.names)),
        "seg.palette": json.dumps(labels.palette.tolist()),  # row i = RGB of class i
        # the id of the training data's unlabelled pixels (never predicted: the output has no channel for it)
        "seg.ignore_index": json.dumps(labels.ignore_index),
        "seg.input": json.dumps(
            {
                "name": INPUT_NAME,
                "dtype": "float32",
                "layout": "NCHW",
                "shape": ["batch", 3, "height", "width"],  # every dimension dynamic; any height and width
                "channels": "RGB",
                "range": [0.0, 1.0],  # uint8 pixel / 255
            }
        ),
        "seg.normalization": json.dumps(
            {
                "applied_in_graph": True,  # callers pass [0, 1] RGB and must not normalise themselves
                "mean": list(IMAGENET_MEAN) if normalize else None,
                "std": list(IMAGENET_STD) if normalize else None,
            }
        ),
        "seg.output": json.dumps(
            {
                "name": OUTPUT_NAME,
                "dtype": "float32",
                "layout": "NCHW",
                "shape": ["batch", labels.num_classes, "height", "width"],  # at the input's size
                "class_ids": "argmax over dimension 1",
            }
        ),
        "seg.trained_crop_size": json.dumps(crop_size),
        "seg.model.checkpoint": json.dumps(checkpoint),
    }


@dataclass(frozen=True)
class ModelInfo:
    """The parsed metadata that predicting needs."""

    class_names: tuple[str, ...]
    palette: np.ndarray  # classes x 3 uint8
    raw: Mapping[str, Any]  # every key, JSON values decoded


def parse(props: Mapping[str, str], source: str) -> ModelInfo:
    """The :class:`ModelInfo` of a model file's metadata; ``source`` names the file in errors."""
    if props.get("seg.format") != json.dumps(FORMAT):
        raise ModelFileError(
            f"{source} has no seg metadata (seg.format={props.get('seg.format')!r}, expected {json.dumps(FORMAT)!r}): "
            f"export the model with python -m seg.export ckpt_path=PATH format=onnx|torchscript"
        )
    raw = {k: json.loads(v) for k, v in props.items() if k.startswith("seg.")}
    names, palette = tuple(raw["seg.class_names"]), np.array(raw["seg.palette"], dtype=np.uint8)
    if palette.shape != (len(names), 3):
        raise ModelFileError(f"{source}: its palette has shape {palette.shape}, expected ({len(names)}, 3)")
    return ModelInfo(names, palette, raw)
