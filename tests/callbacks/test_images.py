"""The pictures of a run (prediction grid with its legend, confusion matrix and IoU figures) and TensorBoard's
content: the pictures and the HPARAMS entry. Every logger's share of them: tests/run/test_loggers.py."""

from __future__ import annotations

import numpy as np
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from seg.callbacks.images import (
    colour_tile,
    confusion_figure,
    denormalize,
    figure_picture,
    iou_figure,
    prediction_grid,
)
from seg.data.labels import CLASS_NAMES, IMAGENET_MEAN, IMAGENET_STD, PALETTE, LabelSet


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
    # input | ground truth | prediction of 64-pixel crops (3 x 64 + 4 x 2 pixels), then the legend
    assert grids[0].width > 3 * 64 + 4 * 2
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


def test_figures_have_the_class_names_of_the_label_set():
    cm = np.diag(np.arange(1, 24))
    fig = confusion_figure(cm, CLASS_NAMES)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][:2] == ["building", "grass"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][-2:] == ["body", "boat"]
    bars = iou_figure(np.full(23, np.nan), CLASS_NAMES)  # classes absent everywhere are drawn empty, not as errors
    assert len(bars.axes[0].patches) == 23
    names = ("road", "car", "person")  # another data set's classes
    assert [t.get_text() for t in confusion_figure(np.eye(3), names).axes[0].get_yticklabels()] == list(names)
    picture = figure_picture(iou_figure(np.array([0.5, np.nan, 1.0]), names))
    assert picture.shape == (400, 900, 3) and picture.dtype == np.uint8  # 9 x 4 inches at 100 dpi


def test_the_prediction_grid_has_a_legend_of_the_classes_it_shows():
    colours = [(0, 0, 255), (255, 0, 0), (0, 255, 0), (255, 255, 0)]  # none black, the colour of ignored pixels
    labels = LabelSet.from_names(["sky", "cow", "horse", "road"], colours, ignore_index=255)
    image = torch.rand(3, 32, 32)
    target = torch.zeros(32, 32, dtype=torch.long)
    target[:, 16:] = 1
    target[-4:] = 255  # ignored: black, in no legend row
    pred = torch.full((32, 32), 2)
    grid = prediction_grid([image, image], [target, target], [pred, target], labels.palette, labels.names)
    width = 3 * 32 + 4 * 2
    assert grid.shape[0] == 2 * 32 + 3 * 2 and grid.shape[1] > width
    assert (grid[2:34, 2 + 32 + 2 : 2 + 2 * 32 + 2][-1] == 0).all()  # the ground truth's ignored rows are black
    panel = grid[:, width:]

    def rows_of(c: int) -> np.ndarray:
        return np.flatnonzero((panel == labels.palette[c]).all(-1).any(1))

    shown = [rows_of(c) for c in (0, 1, 2)]
    assert all(len(r) for r in shown) and not len(rows_of(3))  # road is in no tile: not in the legend
    assert shown[0].max() < shown[1].min() and shown[1].max() < shown[2].min()  # one row per class, by id
