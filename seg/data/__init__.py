"""MSRC-v2 data: the archive on disk (:mod:`.archive`), the presets (:mod:`.transforms`), one split
as a Dataset (:mod:`.dataset`) and the LightningDataModule (:mod:`.datamodule`)."""

from seg.data.archive import ARCHIVE_DIR, DEFAULT_URL, SPLITS, DataSourceError, prepare_data, read_split
from seg.data.datamodule import MSRCDataModule
from seg.data.dataset import MSRCDataset, load_split
from seg.data.transforms import EvalPreset, TrainPreset

__all__ = [
    "ARCHIVE_DIR",
    "DEFAULT_URL",
    "SPLITS",
    "DataSourceError",
    "EvalPreset",
    "MSRCDataModule",
    "MSRCDataset",
    "TrainPreset",
    "load_split",
    "prepare_data",
    "read_split",
]
