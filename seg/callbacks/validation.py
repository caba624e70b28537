"""The last epoch is always validated, so that its weights are scored, checkpointed and tested.

With ``trainer.check_val_every_n_epoch=N`` (e.g. ``experiment=fast``'s 2) Lightning validates only
epochs that are multiples of N: a run whose length is not one would end without validating its
final weights, so ``last.ckpt`` would hold an earlier epoch and a 1-epoch run would have no
``val/acc`` at all. This callback validates the final epoch too.
"""

from __future__ import annotations

import pytorch_lightning as pl


class ValidateLastEpoch(pl.Callback):
    """Validates the final epoch (``trainer.max_epochs - 1``) whatever ``check_val_every_n_epoch`` says."""

    def __init__(self) -> None:
        self._every: int | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        every = trainer.check_val_every_n_epoch
        last = trainer.max_epochs is not None and trainer.current_epoch == trainer.max_epochs - 1
        if last and every not in (None, 1):
            # Lightning reads the interval at each epoch's end: 1 for this epoch validates it
            self._every, trainer.check_val_every_n_epoch = every, 1

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._every is not None:
            trainer.check_val_every_n_epoch, self._every = self._every, None
