"""An exponential moving average (EMA) of the weights: what is validated, checkpointed and tested.

Lightning's :class:`~pytorch_lightning.callbacks.EMAWeightAveraging` keeps the average, swaps it in for
validation, saves it as the checkpoint's ``state_dict`` (the raw weights go to ``current_model_state``,
so training resumes from them) and leaves it in the model at the end of fitting. With 59 validation
images a single epoch's weights can spike on val; their average over the last epochs cannot, so the
best-``val/acc`` checkpoint is chosen from a smooth curve.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EMAWeightAveraging
from pytorch_lightning.trainer.states import TrainerFn


class EMA(EMAWeightAveraging):
    """EMA weights (``decay`` per optimizer step), also under ``trainer.test(ckpt_path=...)``.

    Lightning's callback, when a checkpoint is loaded after fitting (e.g. testing the best one), would
    restore the raw ``current_model_state`` into the model: the test would then score other weights
    than the validated average. Outside fitting this keeps the checkpoint's ``state_dict``, the average.
    """

    def __init__(self, decay: float = 0.998, update_starting_at_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(decay=decay, update_starting_at_step=update_starting_at_step, **kwargs)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
