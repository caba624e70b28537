"""Rebuild a trained model from a ``seg.train`` checkpoint alone (no config, no download)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from seg.errors import SegError
from seg.module import SegModule


class CheckpointError(SegError, ValueError):
    """The checkpoint is missing or was not written by seg.train."""


def load_model(ckpt_path: str | os.PathLike) -> tuple[SegModule, dict[str, Any]]:
    """The SegModule of a seg.train checkpoint in eval mode, and the datamodule settings it was trained with.

    The encoder is built without pretrained weights (no download): the checkpoint holds them all.
    """
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise CheckpointError(
            f"Checkpoint not found: {path}. Pass ckpt_path=... with a file written by seg.train, "
            f"e.g. outputs/runs/<date>/<time>/checkpoints/last.ckpt"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        hparams = dict(ckpt["hyper_parameters"])
        net = dict(hparams["net"])
    except Exception as e:  # unpickling errors vary: report them all the same way
        raise CheckpointError(
            f"{path} is not a seg.train checkpoint (it needs the model's hyper_parameters with a 'net' "
            f"config): {type(e).__name__}: {e}"
        ) from e
    hparams["net"] = {**net, "weights": None} if "weights" in net else net
    model = SegModule(**hparams)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), dict(ckpt.get("datamodule_hyper_parameters") or {})
