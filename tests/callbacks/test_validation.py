"""With validation every second epoch (experiment=fast), the final epoch is still validated: its
weights are scored, land in last.ckpt, and a 1-epoch run has a val/acc."""

from __future__ import annotations

import pytest
import torch

from seg.train import run

from helpers import compose_config, scalars


@pytest.mark.parametrize("epochs, validated", [(1, 1), (3, 2)])
def test_the_last_epoch_is_validated_and_saved(epochs, validated, train_overrides, tmp_path):
    cfg = compose_config(
        "train",
        *train_overrides,
        "experiment=fast",
        f"trainer.max_epochs={epochs}",
        "++trainer.limit_train_batches=2",
        "test=false",
        f"paths.output_dir={tmp_path}",
    )
    assert cfg.trainer.check_val_every_n_epoch == 2
    assert 0.0 <= run(cfg) <= 1.0  # the objective: best val/acc exists
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == epochs - 1
    assert len(scalars(tmp_path)["val/acc"]) == validated  # epochs 2 and 3 of 3; the only one of 1
