"""TensorBoard content of a run: prediction images, confusion matrix and IoU figures, the HPARAMS entry."""

from __future__ import annotations

import numpy as np
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from seg.callbacks.images import colour_tile, confusion_figure, denormalize, iou_figure
from seg.data.labels import CLASS_NAMES, IMAGENET_MEAN, IMAGENET_STD, PALETTE


def test_tensorboard_has_prediction_images_figures_and_hparams(tiny_run):
    images, hparams, scalars = set(), [], set()
    for f in sorted((tiny_run / "tensorboard").glob("events.out.tfevents.*")):
        ea = EventAccumulator(str(f), size_guidance={"images": 0})
        ea.Reload()
        images |= set(ea.Tags()["images"])
        scalars |= set(ea.Tags()["scalars"])
        try:
            plugin = ea.PluginTagToContent("hparams")
        except KeyError:  # an event file without an hparams entry
            plugin = {}
        for tag, content in plugin.items():
            if tag.endswith("session_start_info"):
                hparams.append(plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info)
        if "val/predictions" in ea.Tags()["images"]:
            grids = ea.Images("val/predictions")
    assert {"val/predictions", "test/confusion_matrix", "test/per_class_iou"} <= images
    assert len(grids) == 3  # every epoch (log_images_every_n_epochs=1) and at the end of fitting
    assert grids[0].width == 3 * 64 + 4 * 2  # input | ground truth | prediction, 64-pixel crops
    assert len(hparams) == 1
    names = set(hparams[0].hparams)
    assert {"optimizer/lr", "data/batch_size", "model/net/freeze_params"} <= names
    assert {"hp/test_acc", "hp/best_val_acc", "hp/test_miou"} <= scalars


def test_colorize_and_denormalize():
    ids = torch.tensor([[0, -1], [6, 22]])
    rgb = colour_tile(ids, PALETTE)
    assert rgb.shape == (3, 2, 2)
    assert torch.allclose(rgb[:, 0, 0] * 255, torch.tensor(PALETTE[0], dtype=torch.float32))
    assert (rgb[:, 0, 1] == 0).all()  # void is black
    x = torch.rand(3, 4, 4)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(denormalize((x - mean) / std, normalized=True), x)
    assert torch.equal(denormalize(x, normalized=False), x)


def test_figures_have_the_class_names():
    cm = np.diag(np.arange(1, 24))
    fig = confusion_figure(cm, CLASS_NAMES)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][:2] == ["building", "grass"]
    bars = iou_figure(np.full(23, np.nan), CLASS_NAMES)  # classes absent everywhere are drawn empty, not as errors
    assert len(bars.axes[0].patches) == 23
