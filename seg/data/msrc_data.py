"""MSRC-v2 from the I2DL archive, the course's data set: :class:`MSRCDataModule` (train/val/test =
276/59/56, colour-coded targets, the course's CenterCrop(240) protocol)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from seg.core.rules import Settings
from seg.data.archive import ARCHIVE_DIR, DEFAULT_SHA256, DEFAULT_URL, prepare_data
from seg.data.datamodule import SAME_AS_TRAINING, SegDataModule
from seg.data.dataset import MSRCReader, Reader
from seg.data.labels import MSRC, LabelSet
from seg.data.splits import read_split


def _sha256(v: Any) -> str | None:
    ok = v is None or re.fullmatch(r"[0-9a-fA-F]{64}", str(v))
    return None if ok else "must be 64 hex digits, or null to accept any archive"


class MSRCDataModule(SegDataModule):
    """MSRC-v2 train/val/test (276/59/56) under the course's CenterCrop(240) protocol: fetches the I2DL
    archive once (``url`` -> ``data_dir``, checked against ``sha256``) and serves its splits."""

    SETTINGS: ClassVar[Settings] = SegDataModule.SETTINGS | Settings({"sha256": _sha256})

    def __init__(
        self, data_dir: str, url: str = DEFAULT_URL, sha256: str | None = DEFAULT_SHA256, **settings: Any
    ) -> None:
        """``settings``: :class:`SegDataModule`'s; val and test are scored on the centre crop of ``crop_size``
        (the course protocol) unless ``eval_crop_size`` is given."""
        super().__init__(**{"eval_crop_size": SAME_AS_TRAINING, **settings})

    mask_mode = "RGB"  # colour-coded BMP targets, decoded by the MSRC table
    how = "the I2DL archive's train.txt / val.txt / test.txt"

    def label_set(self) -> LabelSet:
        """MSRC-v2's 23 classes, void (-1) ignored."""
        return MSRC

    @property
    def root(self) -> Path:
        return Path(self.hparams.data_dir) / ARCHIVE_DIR

    @property
    def reader(self) -> Reader:
        return MSRCReader(self.root.resolve())

    def prepare_data(self) -> None:
        prepare_data(self.hparams.url, self.hparams.data_dir, self.hparams.sha256)

    def split_items(self, split: str) -> list[str]:
        return read_split(self.root / f"{split}.txt")
