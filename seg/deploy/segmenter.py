"""``Segmenter``: a trained model applied to photos, from a checkpoint (torch) or an exported model
file (ONNX Runtime, which needs no torch; or TorchScript).

Every backend runs the deployed input convention of :mod:`seg.deploy.formats` (RGB in [0, 1], normalisation
inside the net) through the shared whole-photo logic of :mod:`seg.model.inference`. torch is imported only
by the checkpoint and TorchScript backends.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seg.data.photos import PhotoError, PhotoSource, load_photo
from seg.deploy.metadata import TORCHSCRIPT_FILE, ModelFileError, ModelInfo, parse
from seg.deploy.pictures import colorize, overlay
from seg.model.inference import (
    TILE_OVERLAP,
    TTA,
    max_side_problem,
    photo_ids,
    photo_logits,
    tile_overlap_problem,
    tile_problem,
    tta_problem,
)

DEFAULT_MAX_SIDE = 1024  # photos with a longer side go through the net shrunk to it (time and memory)


class _TorchBackend:
    """A torch module (eager or TorchScript) on CPU tensors."""

    def __init__(self, net: Any, name: str) -> None:
        self.net, self.name = net, name

    def input(self, batch: np.ndarray) -> Any:
        import torch

        # NHWC uint8 -> NCHW float in [0, 1], as seg.data.transforms.to_input does (the permuted
        # view is channels_last in memory, which the nets run in)
        return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255)

    def __call__(self, x: Any) -> Any:
        return self.net(x)

    def numpy(self, a: Any) -> np.ndarray:
        return a.numpy()


class _OnnxBackend:
    """An ONNX Runtime session on NumPy arrays."""

    name = "onnxruntime"

    def __init__(self, session: Any) -> None:
        self.session, self.input_name = session, session.get_inputs()[0].name

    def input(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        x /= 255
        return x

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[0]

    def numpy(self, a: np.ndarray) -> np.ndarray:
        return a


def _model_file(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelFileError(f"Model file not found: {p}. Pass a file written by python -m seg.export")
    return p


def _check(tta: TTA, max_side: int | None, tile: int | None = None, tile_overlap: float = TILE_OVERLAP) -> None:
    """A bad setting fails when the Segmenter is made, not at the first photo (the settings check's rules)."""
    for key, value, why in (
        ("max_side", max_side, max_side_problem(max_side)),
        ("tta", tta, tta_problem(tta)),
        ("tile", tile, tile_problem(tile)),
        ("tile_overlap", tile_overlap, tile_overlap_problem(tile_overlap)),
    ):
        if why:
            raise ValueError(f"{key}={value}: {why}")


class Segmenter:
    """The class of every pixel of a photo, at the photo's own size, and pictures of it::

        seg = Segmenter.from_checkpoint("checkpoints/last.ckpt")  # or Segmenter.load("model.onnx")
        ids = seg.predict("photo.jpg")  # HxW uint8 class ids; also a PIL image or an HxWx3 uint8 array
        seg.class_names[ids[0, 0]], seg.colorize(ids), seg.overlay("photo.jpg", ids).save("overlay.jpg")

    ``tta``: True averages with the horizontally flipped photo's logits (twice the time); a list of
    scales, e.g. ``[0.75, 1.0, 1.25]``, also sees the photo resized by each (each with its flip). ``max_side``:
    photos with a longer side go through the net shrunk to it, their logits resized back (None: never).
    ``tile``: photos larger than it go through the net at their own size in overlapping windows of this
    side (``tile_overlap`` of a window shared with its neighbour), their logits averaged where they
    overlap; ``max_side`` then does not apply (None: no tiles).
    """

    def __init__(
        self,
        backend: Any,
        info: ModelInfo,
        tta: TTA = False,
        max_side: int | None = DEFAULT_MAX_SIDE,
        tile: int | None = None,
        tile_overlap: float = TILE_OVERLAP,
    ) -> None:
        _check(tta, max_side, tile, tile_overlap)
        self._backend = backend
        self.backend: str = backend.name  # "torch", "torchscript" or "onnxruntime"
        self.class_names: tuple[str, ...] = info.class_names
        self.palette: np.ndarray = info.palette  # row i = RGB (uint8) of class i
        self.metadata = info.raw  # everything the model (file) says about itself, see seg.deploy.metadata
        self.tta, self.max_side, self.tile, self.tile_overlap = tta, max_side, tile, tile_overlap

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, tta: TTA = False, max_side: int | None = DEFAULT_MAX_SIDE, **tiles: Any
    ) -> Segmenter:
        """The model of a seg.train checkpoint, run by torch (eager); ``tiles``: tile, tile_overlap."""
        from seg.deploy.formats import load_deploy_net

        net, metadata = load_deploy_net(path)
        return cls.from_deploy_net(net, metadata, str(path), tta, max_side, **tiles)

    @classmethod
    def from_deploy_net(
        cls,
        net: Any,
        metadata: dict[str, str],
        source: str,
        tta: TTA = False,
        max_side: int | None = DEFAULT_MAX_SIDE,
        **tiles: Any,
    ) -> Segmenter:
        """An already loaded :class:`~seg.deploy.formats.DeployNet` and its metadata, run by torch (eager):
        seg.export scores the net it exports without loading the checkpoint again."""
        return cls(_TorchBackend(net, "torch"), parse(metadata, source), tta, max_side, **tiles)

    @classmethod
    def from_onnx(
        cls,
        path: str | os.PathLike,
        tta: TTA = False,
        max_side: int | None = DEFAULT_MAX_SIDE,
        threads: int | None = None,
        **tiles: Any,
    ) -> Segmenter:
        """An ONNX model written by seg.export, run by ONNX Runtime on the CPU (torch is not imported).

        ``threads``: ONNX Runtime's intra-op threads; None: ``OMP_NUM_THREADS`` if set, else its default.
        """
        import onnxruntime as ort

        path = _model_file(path)
        options = ort.SessionOptions()
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = threads or (int(env) if env.isdigit() else 0)
        if threads:
            options.intra_op_num_threads = threads
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own exception types for unreadable models
            raise ModelFileError(f"{path} is not an ONNX model ONNX Runtime can run: {e}") from e
        info = parse(session.get_modelmeta().custom_metadata_map, str(path))
        return cls(_OnnxBackend(session), info, tta, max_side, **tiles)

    @classmethod
    def from_torchscript(
        cls, path: str | os.PathLike, tta: TTA = False, max_side: int | None = DEFAULT_MAX_SIDE, **tiles: Any
    ) -> Segmenter:
        """A TorchScript model written by seg.export, run by torch.jit."""
        import torch

        path = _model_file(path)
        extra = {TORCHSCRIPT_FILE: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
                net = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        except Exception as e:  # torch.jit raises RuntimeError or pickle errors for foreign files
            raise ModelFileError(f"{path} is not a TorchScript model: {type(e).__name__}: {e}") from e
        raw = extra[TORCHSCRIPT_FILE]
        metadata = json.loads((raw.decode() if isinstance(raw, bytes) else raw) or "{}")
        return cls(_TorchBackend(net, "torchscript"), parse(metadata, str(path)), tta, max_side, **tiles)

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> Segmenter:
        """By the file's suffix: ``.onnx`` (ONNX Runtime), ``.pt`` (TorchScript), ``.ckpt`` (a checkpoint)."""
        suffix = Path(path).suffix.lower()
        if suffix == ".onnx":
            return cls.from_onnx(path, **kwargs)
        if suffix == ".pt":
            return cls.from_torchscript(path, **kwargs)
        if suffix == ".ckpt":
            return cls.from_checkpoint(path, **kwargs)
        raise ModelFileError(
            f"{path}: unknown model file type {suffix!r}; pass a .onnx or .pt file written by seg.export, "
            f"or a .ckpt checkpoint written by seg.train"
        )

    def with_tta(self, tta: TTA) -> Segmenter:
        """The same loaded model with another ``tta`` setting (nothing is loaded again; ``self`` is unchanged)."""
        _check(tta, self.max_side, self.tile, self.tile_overlap)
        other = copy.copy(self)
        other.tta = tta
        return other

    def _input(self, photos: Sequence[PhotoSource]) -> Any:
        arrays = [load_photo(p) for p in photos]
        if not arrays:
            raise PhotoError("no photos given")
        if len({a.shape for a in arrays}) > 1:
            raise PhotoError(f"a batch needs photos of one size, got {sorted({a.shape[:2] for a in arrays})}")
        return self._backend.input(np.stack(arrays))

    @property
    def _tiling(self) -> tuple[int | None, float]:
        return self.tile, self.tile_overlap

    def logits(self, photos: Sequence[PhotoSource]) -> np.ndarray:
        """N x classes x H x W float32 logits of photos of one size (with ``tta`` and ``max_side`` applied)."""
        x = self._input(photos)
        return self._backend.numpy(photo_logits(self._backend, x, self.tta, self.max_side, *self._tiling))

    def predict_batch(self, photos: Sequence[PhotoSource]) -> np.ndarray:
        """N x H x W uint8 class ids of photos of one size, in one forward pass."""
        ids = photo_ids(self._backend, self._input(photos), self.tta, self.max_side, *self._tiling)
        return self._backend.numpy(ids).astype(np.uint8)

    def predict(self, image: PhotoSource) -> np.ndarray:
        """HxW uint8 class ids of a photo (a file, a PIL image or an HxWx3 uint8 array) at its own size."""
        return self.predict_batch([image])[0]

    def colorize(self, ids: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 picture of class ids in the class colours."""
        return colorize(ids, self.palette)

    def overlay(self, image: PhotoSource, ids: np.ndarray, alpha: float = 0.5) -> Image.Image:
        """The photo blended with the colours of ``ids`` (``alpha``: their weight), with a legend of the classes."""
        photo = load_photo(image)
        if photo.shape[:2] != ids.shape:
            raise PhotoError(f"the ids ({ids.shape}) are not the photo's size ({photo.shape[:2]})")
        return overlay(photo, ids, self.palette, self.class_names, alpha)


def parity(reference: Segmenter, candidate: Segmenter, photos: Iterable[PhotoSource]) -> dict[str, Any]:
    """How closely ``candidate`` reproduces ``reference``'s logits, photo by photo at their own size:
    the largest absolute logit difference and the share of pixels whose class (argmax) agrees."""
    max_abs, agree, pixels, n = 0.0, 0, 0, 0
    for photo in photos:
        a, b = reference.logits([photo])[0], candidate.logits([photo])[0]
        max_abs = max(max_abs, float(np.abs(a - b).max()))
        agree += int((a.argmax(0) == b.argmax(0)).sum())
        pixels += a.shape[1] * a.shape[2]
        n += 1
    return {"photos": n, "pixels": pixels, "max_abs_logit_diff": max_abs, "argmax_agreement": agree / max(pixels, 1)}
