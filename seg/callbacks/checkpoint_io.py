"""Checkpoints written whole or not at all: Lightning's own writer stages a checkpoint in the system's
temporary folder and moves it into place, which across file systems is a copy (a full disk then leaves
a truncated ``epoch_*.ckpt`` beside the good ones). This one writes the temporary file beside its target
and renames it (:func:`seg.core.files.atomic_write`); a full disk is one line naming the checkpoint."""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from seg.core.errors import SegError
from seg.core.files import atomic_write


class DiskFull(SegError, OSError):
    """A checkpoint could not be written for lack of space; the files already there are intact."""


class WholeCheckpointIO(TorchCheckpointIO):
    """:class:`TorchCheckpointIO` whose local writes are atomic on the checkpoint's own file system."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:
            atomic_write(Path(path), buffer.getvalue())
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            kept = sorted(p.name for p in Path(path).parent.glob("*.ckpt"))
            raise DiskFull(
                f"the disk is full: {path} was not written ({len(buffer.getbuffer()) / 1e6:.1f} MB needed); the "
                f"checkpoints already there are whole ({', '.join(kept) or 'none yet'}): free space, then "
                f"continue with resume={Path(path).parent.parent}"
            ) from None
