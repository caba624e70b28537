"""Callbacks that end a training run safely.

- :class:`GracefulStop`: SIGTERM (e.g. SLURM preemption) or Ctrl-C stops training after the current
  batch, writes ``last.ckpt`` with the progress so far (mid-epoch; a resume continues from there) and
  says in one line how to resume. Lightning's own SIGTERM handling (and its SLURM requeue) stays.
- :class:`DivergenceGuard`: a loss that becomes NaN or infinite, or explodes far above where it
  started, stops training before the step changes the weights, naming the epoch and the step; the
  checkpoints written so far stay as they are.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

from seg.core.errors import SegError

log = logging.getLogger(__name__)


class TrainingDiverged(SegError):
    """The training loss became NaN or infinite, or exploded."""


class GracefulStop(pl.Callback):
    """On SIGTERM or Ctrl-C: finish the batch, save ``dirpath/filename``, log how to resume."""

    def __init__(self, dirpath: str, filename: str = "last.ckpt") -> None:
        self.path = Path(dirpath) / filename
        self.received: int | None = None  # the signal that stopped the run
        self._previous_sigint: Any = None

    def _on_sigint(self, signum: int, frame: Any) -> None:
        # the first Ctrl-C becomes Lightning's SIGTERM stop at the end of the batch (an interrupted
        # optimizer step would leave the weights half-updated); a second one aborts at once
        self.received = signal.SIGINT
        log.warning("Ctrl-C: stopping after this batch and saving a checkpoint (press Ctrl-C again to abort)")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.kill(os.getpid(), signal.SIGTERM)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.received = None
        if trainer.is_global_zero:  # under DDP the other ranks are stopped by rank 0's SIGTERM
            try:
                self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)
            except ValueError:  # not the main thread: leave Ctrl-C alone
                self._previous_sigint = None

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        if self.received is None:
            self.received = signal.SIGTERM
        trainer.save_checkpoint(self.path)
        run_dir = self.path.parent.parent
        log.warning(
            f"Stopped by {signal.Signals(self.received).name} at epoch {trainer.current_epoch}, step "
            f"{trainer.global_step}: progress saved to {self.path}. Resume with: python -m seg.train resume={run_dir}"
        )


class DivergenceGuard(pl.Callback):
    """Stops training at the first loss that is not finite or exceeds ``max_ratio`` times the run's first
    loss (at least ``max_ratio``), before its backward pass and optimizer step.

    Under bf16 an exploding run keeps finite losses (8.9e10, say) and would train on at zero accuracy;
    the ratio catches it as Lightning's ``EarlyStopping(divergence_threshold=...)`` does for a monitored
    metric, but at the step. A run that learns slowly never gets near it: cross-entropy starts near
    ln(classes) and an untrained net's spikes stay within a few times that. The first loss travels in
    checkpoints, so a resumed run keeps its reference.
    """

    def __init__(self, max_ratio: float = 100.0) -> None:
        self.max_ratio = float(max_ratio)
        self.first_loss: float | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"first_loss": self.first_loss}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.first_loss = state_dict.get("first_loss")

    def limit(self) -> float:
        """The largest loss that does not stop the run."""
        return self.max_ratio * max(self.first_loss or 0.0, 1.0)

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        value = float(loss.detach())
        if math.isfinite(value) and self.first_loss is None:
            self.first_loss = abs(value)
        if not math.isfinite(value):
            what, why = f"became {value}", ""
        elif abs(value) > self.limit():
            what = f"exploded to {value:.3g}"
            why = f" (over {self.max_ratio:g}x its first value {self.first_loss:.3g}: "
            why += "callbacks.divergence_guard.max_ratio)"
        else:
            return
        lr = f"{trainer.optimizers[0].param_groups[0]['lr']:g}" if trainer.optimizers else "?"
        ckpt = trainer.checkpoint_callback
        kept = sorted(p.name for p in Path(ckpt.dirpath).glob("*.ckpt")) if ckpt and ckpt.dirpath else []
        where = f"{ckpt.dirpath}: {', '.join(kept)}" if kept else "none written yet"
        raise TrainingDiverged(
            f"the training loss {what} at epoch {trainer.current_epoch}, step {trainer.global_step}{why}; "
            f"training stopped before this step changed the weights. Checkpoints kept ({where}). "
            f"Lower optimizer.lr (now {lr}) or clip gradients, e.g. trainer.gradient_clip_val=1.0"
        )
