"""Read ``seg.train`` checkpoints safely and rebuild a trained model from one alone (no config, no download).

Checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain Python data only. A file
that carries anything else (e.g. a pickled callable, which a plain ``torch.load`` would run) is refused
before any of it is executed.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from seg.core.errors import SegError
from seg.model.module import SegModule


class CheckpointError(SegError, ValueError):
    """The checkpoint is missing, unsafe, or was not written by seg.train."""


# what a checkpoint's configs may name as _target_: rebuilding the model instantiates them
SAFE_TARGETS = ("seg.", "torch.optim.")
# classes that moved since a checkpoint named them: old _target_ -> where the class lives now
MOVED_TARGETS = {
    "seg.model.MobileNetSeg": "seg.model.nets.MobileNetSeg",
    "seg.model.MobileNetSkipSeg": "seg.model.nets.MobileNetSkipSeg",
    "seg.losses.SegLoss": "seg.model.losses.SegLoss",
}


def current_targets(obj: Any) -> Any:
    """A checkpoint's configs with every moved ``_target_`` (:data:`MOVED_TARGETS`) renamed to its class's home now."""
    if isinstance(obj, dict):
        return {
            k: MOVED_TARGETS.get(v, v) if k == "_target_" and isinstance(v, str) else current_targets(v)
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return type(obj)(current_targets(v) for v in obj)
    return obj


def _targets(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        own = [str(obj["_target_"])] if "_target_" in obj else []
        return own + [t for v in obj.values() for t in _targets(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _targets(v)]
    return []


def read_checkpoint(ckpt_path: str | os.PathLike, key: str = "ckpt_path") -> dict[str, Any]:
    """The checkpoint's contents, loaded with ``weights_only=True`` on the CPU; ``key``: the setting that
    named it, for the messages."""
    path = Path(ckpt_path).expanduser()
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a folder, not a checkpoint: to continue the run in it pass resume={path}; to use its "
            f"weights pass ckpt_path={path}/checkpoints/last.ckpt (or one of its epoch_*.ckpt files)"
        )
    if not path.is_file():
        raise CheckpointError(
            f"Checkpoint not found: {path}. Pass {key}=... with a file written by seg.train, "
            f"e.g. outputs/runs/<date>/<time>/checkpoints/last.ckpt"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:  # what it would have imported and run, read without unpickling anything
            culprits = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # not a torch zip file at all
            culprits = []
        if not culprits:
            raise CheckpointError(f"{path} is not a seg.train checkpoint (not a torch checkpoint file)") from None
        raise CheckpointError(
            f"{path} holds Python objects other than tensors and plain data ({', '.join(culprits)}), so it was "
            f"refused without running any of it. seg.train checkpoints never do: only use checkpoints you trust"
        ) from None
    except Exception as e:  # not a torch file at all: zip, pickle or format errors vary
        first_line = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise CheckpointError(f"{path} is not a seg.train checkpoint ({type(e).__name__}: {first_line})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("hyper_parameters"), dict):
        raise CheckpointError(
            f"{path} is not a seg.train checkpoint (it needs the model's hyper_parameters with a 'net' config)"
        )
    return ckpt


def load_model(ckpt_path: str | os.PathLike) -> tuple[SegModule, dict[str, Any]]:
    """The SegModule of a seg.train checkpoint in eval mode, and the datamodule settings it was trained with.

    The encoder is built without pretrained weights (no download): the checkpoint holds them all.
    """
    ckpt = read_checkpoint(ckpt_path)
    hparams = current_targets(dict(ckpt["hyper_parameters"]))
    net = hparams.get("net")
    if not isinstance(net, dict) or "_target_" not in net or not str(net["_target_"]).startswith("seg."):
        raise CheckpointError(
            f"{ckpt_path} is not a seg.train checkpoint: its 'net' hyperparameter must be a seg.* net config, "
            f"got {net!r:.200}"
        )
    unsafe = [t for t in _targets(hparams) if not t.startswith(SAFE_TARGETS)]
    if unsafe:
        raise CheckpointError(
            f"{ckpt_path} names code outside this project in its configs ({unsafe[:3]}), so it was refused "
            f"without building anything: only {', '.join(SAFE_TARGETS)}* targets are allowed"
        )
    hparams["net"] = {**net, "weights": None} if "weights" in net else net
    model = SegModule(**hparams)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{ckpt_path}: its weights do not fit its own net config ({e})"[:600]) from None
    return model.eval(), dict(ckpt.get("datamodule_hyper_parameters") or {})


def check_weights_fit(ckpt: dict[str, Any], model: torch.nn.Module, ckpt_path: str | os.PathLike) -> None:
    """Refuse a checkpoint whose weights do not fit ``model`` (another net, another number of classes, or
    another project's checkpoint), naming the net it holds: before training starts from it."""
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state = ckpt.get("state_dict")
    theirs = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    if theirs == own:
        return
    net = current_targets(ckpt.get("hyper_parameters") or {}).get("net")
    held = net.get("_target_") if isinstance(net, dict) else None
    built = type(getattr(model, "net", model)).__name__
    if held is None:
        what = "is not a seg.train checkpoint (no seg net config in it)"
    else:
        odd = sorted(k for k in own.keys() & theirs.keys() if own[k] != theirs[k])
        what = f"holds a {held.rsplit('.', 1)[-1]} net" + (f" with other shapes (e.g. {odd[0]})" if odd else "")
    raise CheckpointError(
        f"{ckpt_path} {what}, and this run builds a {built}: its weights do not fit. Pass the model=... it was "
        f"trained with (its .hydra/config.yaml says), or resume=RUN_DIR to continue its run with its own config"
    )


def load_weights(model: torch.nn.Module, ckpt: dict[str, Any], ckpt_path: str | os.PathLike) -> list[str]:
    """Fine-tuning: ``ckpt``'s weights into ``model``, except the classifier's where the number of classes
    differs (those keep their initial values); returns the names of the tensors started fresh. Anything
    else that does not fit is refused as :func:`check_weights_fit` refuses it."""
    own = model.state_dict()
    state = ckpt.get("state_dict") if isinstance(ckpt.get("state_dict"), dict) else {}
    fresh = [
        k for k in own if ".classifier." in f".{k}" and k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    check_weights_fit({**ckpt, "state_dict": {**state, **{k: own[k] for k in fresh}}}, model, ckpt_path)
    model.load_state_dict({k: v for k, v in state.items() if k not in fresh}, strict=False)
    return fresh
