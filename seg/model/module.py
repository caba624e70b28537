"""The LightningModule: loss, masked metrics, optimizer and scheduler around a segmentation net."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassJaccardIndex

from seg.core.errors import ConfigError
from seg.core.rules import Settings, number, switch
from seg.data.labels import LabelSet
from seg.model.inference import TTA, predict_logits
from seg.model.losses import distillation_loss, nearest_soft_targets, nearest_targets
from seg.model.metrics import per_image_accuracy


def _plain(cfg: Any) -> Any:
    """DictConfig -> plain dict, so that hyperparameters pickle and log cleanly."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


class SegModule(pl.LightningModule):
    """Trains ``net`` with cross-entropy (ignored pixels left out); logs masked pixel accuracy and mIoU.

    ``net``, ``optimizer`` and ``scheduler`` are Hydra configs (``_target_``; the latter two with
    ``_partial_: true``). They are stored as hyperparameters, so a checkpoint alone rebuilds the model.
    ``net`` may also be a ready ``nn.Module`` (then it is not stored). ``loss`` is a
    :class:`seg.model.losses.SegLoss` config (default: plain cross-entropy); ``encoder_lr_mult`` scales the
    learning rate of ``net.encoder``'s trainable tensors (fine-tune the pretrained encoder gently).
    ``low_res_loss``: the training loss is taken on the decoder's own logits (stride 4 for the skip
    net) against nearest-downsampled targets, as DeepLab trains; validation and test stay at full size.
    ``distill_weight``, ``distill_temperature``: when a training batch carries a teacher's soft targets
    (``data.soft_targets``, written by ``seg.teach``), the loss adds ``distill_weight`` x
    :func:`~seg.model.losses.distillation_loss` at that temperature.
    ``labels``: the data set's :class:`~seg.data.labels.LabelSet` as a dict (None: MSRC, as checkpoints
    written before label sets travelled mean). The number of classes of the net and the loss and the
    ignore index of the loss and metrics follow it; it is stored, so it travels in every checkpoint.
    """

    # the keys of the model group this class reads (model.loss and model.net: their classes' own)
    SETTINGS: ClassVar[Settings] = Settings(
        {
            "encoder_lr_mult": number(0, above=True),
            "low_res_loss": switch,
            "channels_last": switch,
            "compile": switch,
            "distill_weight": number(0),
            "distill_temperature": number(0, above=True),
        }
    )

    def __init__(
        self,
        net: Mapping | nn.Module,
        optimizer: Mapping | None = None,
        scheduler: Mapping | None = None,
        num_classes: int | None = None,
        monitor: str = "val/acc",
        channels_last: bool = False,
        compile: bool = False,
        loss: Mapping | None = None,
        encoder_lr_mult: float = 1.0,
        low_res_loss: bool = False,
        labels: Mapping | None = None,
        distill_weight: float = 1.0,
        distill_temperature: float = 1.0,
    ):
        super().__init__()
        # plain dicts, not Hydra DictConfigs: checkpoints then load with torch.load(weights_only=True)
        net, optimizer, scheduler, loss, labels = (_plain(c) for c in (net, optimizer, scheduler, loss, labels))
        self.label_set = LabelSet.from_dict(labels)
        labels, num_classes = self.label_set.to_dict(), self.label_set.num_classes  # stored as they are now
        ignore = self.label_set.ignore_index
        if isinstance(net, Mapping) and str(net.get("_target_", "")).startswith("seg.model.nets."):
            net = {**net, "num_classes": num_classes}  # the classifier follows the data
        loss = {
            **(loss or {"_target_": "seg.model.losses.SegLoss"}),
            "num_classes": num_classes,
            "ignore_index": ignore,
        }
        is_module = isinstance(net, nn.Module)
        # every argument is stored (the checkpoint alone rebuilds the module) but a ready-made net, and
        # compile, a runtime speed option; seg.train logs the whole run config itself (logger=False)
        self.save_hyperparameters(ignore=["net", "compile"] if is_module else ["compile"], logger=False)
        self.net = self._build_net(net, channels_last, compile)
        # plain cross-entropy (ignored pixels left out) unless the SegLoss config asks for more
        self.criterion = instantiate(loss)
        self._build_metrics(num_classes, ignore)
        # test-time augmentation of the test stage (seg.model.inference's TTA; seg.train sets it from test_tta):
        # not a hyperparameter of the weights, so not saved in checkpoints
        self.test_tta: TTA = False

    @staticmethod
    def _build_net(net: Mapping | nn.Module, channels_last: bool, compile: bool) -> nn.Module:
        """The net from its config (or as given), in channels_last layout and compiled if asked."""
        net = net if isinstance(net, nn.Module) else instantiate(net)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        if compile:
            # torch.compile in place (nn.Module.compile): state_dict keys stay unchanged. A runtime
            # speed option, not part of the model, so it is not stored in the checkpoint.
            net.compile()
        return net

    def _build_metrics(self, num_classes: int, ignore: int) -> None:
        """The torchmetrics of each stage, ignoring the label set's ignore index."""
        # average="micro": the masked pixel accuracy (the torchmetrics default, macro, is another metric).
        acc = MulticlassAccuracy(num_classes, average="micro", ignore_index=ignore)
        metrics = MetricCollection({"acc": acc, "miou": MulticlassJaccardIndex(num_classes, ignore_index=ignore)})
        # Separate metric state per stage, so validation never mixes into training numbers. mIoU
        # over a shuffled epoch of a changing net says little, so training tracks accuracy only.
        # Input checks cost ~2.5x the update itself on 8x240x240 maps; the training step is the hot
        # path and its targets are the same as val/test's, which keep the checks.
        train_acc = MulticlassAccuracy(num_classes, average="micro", ignore_index=ignore, validate_args=False)
        self.train_metrics = MetricCollection({"acc": train_acc}, prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        # pixel counts (ground truth x prediction) of the test split, drawn by seg.callbacks.images.Pictures
        self.test_confusion = MulticlassConfusionMatrix(num_classes, ignore_index=ignore)
        # the course's metric: the mean over test images of each image's masked pixel accuracy (seg.eval's
        # acc_per_image_mean); a metric state, so that DDP sums it over the processes
        self.test_image_acc = MeanMetric()

    def forward(self, x: torch.Tensor, full_size: bool = True) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # the keyword only when asked: a ready-made net given as ``net`` may not take it
        return self.net(x) if full_size else self.net(x, full_size=False)

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str, metrics: MetricCollection) -> torch.Tensor:
        x, y, *teacher = batch  # a training batch may carry a teacher's soft targets (data.soft_targets)
        if stage == "train" and self.hparams.get("low_res_loss"):
            # upsampling 23 logit maps to the input size and the loss over every pixel took about a third
            # of a training step on the CPU; at the decoder's stride 4 they cost a sixteenth of that
            logits = self(x, full_size=False)
            y = nearest_targets(y, logits.shape[-2:])
        elif stage == "test" and self.test_tta:
            logits = predict_logits(self, x, self.test_tta)
        else:
            logits = self(x)
        loss = self.criterion(logits, y)
        if teacher and stage == "train" and (weight := self.hparams.get("distill_weight", 1.0)):
            soft = nearest_soft_targets(teacher[0], logits.shape[-2:])
            distill = distillation_loss(logits, soft, self.hparams.get("distill_temperature", 1.0))
            self.log("train/distill", distill, on_step=False, on_epoch=True, batch_size=x.shape[0], sync_dist=True)
            loss = loss + weight * distill
        # max().indices equals argmax() (first maximum on ties) but is ~3x faster over the class
        # dimension of an NCHW CPU tensor: argmax was ~10% of a training step
        pred = logits.detach().max(1).indices
        metrics.update(pred, y)
        if stage == "test":
            self.test_confusion.update(pred, y)
            per_image = torch.tensor(per_image_accuracy(pred, y, self.label_set.ignore_index), device=pred.device)
            if (scored := per_image[~per_image.isnan()]).numel():  # an image all ignored has no accuracy
                self.test_image_acc.update(scored)
            self.log("test/acc_per_image_mean", self.test_image_acc, on_step=False, on_epoch=True)
        self.log(
            f"{stage}/loss",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=True,
            batch_size=x.shape[0],
            sync_dist=True,
        )  # averaged over processes under DDP (a no-op in one process)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train", self.train_metrics)

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val", self.val_metrics)

    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()

    def test_step(self, batch, batch_idx):
        self._step(batch, "test", self.test_metrics)

    def predict_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).argmax(1)

    def configure_optimizers(self):
        # Frozen encoder tensors (requires_grad=False) are left out of the optimizer.
        params = [p for p in self.parameters() if p.requires_grad]
        mult = self.hparams.get("encoder_lr_mult", 1.0)
        if mult != 1.0:
            if not hasattr(self.net, "encoder"):
                raise ConfigError(f"model.encoder_lr_mult={mult}: the net has no .encoder; use 1.0")
            enc = {id(p) for p in self.net.encoder.parameters()}
            lr = self.hparams.optimizer["lr"]
            params = [
                {"params": [p for p in params if id(p) not in enc]},
                {"params": [p for p in params if id(p) in enc], "lr": lr * mult},
            ]
        optimizer = instantiate(self.hparams.optimizer)(params=params)
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler)(optimizer=optimizer)
        # torch's schedulers step per epoch; a planned one (seg.model.schedules) says it steps per batch
        interval = getattr(scheduler, "interval", "epoch")
        return {
            "optimizer": optimizer,
            # strict=False: an epoch without validation (check_val_every_n_epoch > 1, a budget's cadence) leaves
            # ReduceLROnPlateau as it is instead of stopping the run
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": self.hparams.monitor,
                "interval": interval,
                "strict": False,
            },
        }
