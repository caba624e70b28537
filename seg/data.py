"""MSRC-v2 as packaged for I2DL exercise 10: archive download, label colours, dataset, datamodule."""

from __future__ import annotations

import functools
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.datasets.utils import download_url
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F
from tqdm import tqdm

DEFAULT_URL = "https://i2dl.vc.in.tum.de/static/data/segmentation_data.zip"
ARCHIVE_DIR = "segmentation_data"  # the one top-level folder inside the archive
SPLITS = ("train", "val", "test")
VOID = -1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LabelClass(NamedTuple):
    id: int
    name: str
    rgb: tuple[int, int, int]


# The 23 MSRC-v2 classes + void, identified in the targets by colour only (no table ships).
LABELS: tuple[LabelClass, ...] = (
    LabelClass(-1, "void", (0, 0, 0)),
    LabelClass(0, "building", (128, 0, 0)),
    LabelClass(1, "grass", (0, 128, 0)),
    LabelClass(2, "tree", (128, 128, 0)),
    LabelClass(3, "cow", (0, 0, 128)),
    LabelClass(4, "horse", (128, 0, 128)),
    LabelClass(5, "sheep", (0, 128, 128)),
    LabelClass(6, "sky", (128, 128, 128)),
    LabelClass(7, "mountain", (64, 0, 0)),
    LabelClass(8, "airplane", (192, 0, 0)),
    LabelClass(9, "water", (64, 128, 0)),
    LabelClass(10, "face", (192, 128, 0)),
    LabelClass(11, "car", (64, 0, 128)),
    LabelClass(12, "bicycle", (192, 0, 128)),
    LabelClass(13, "flower", (64, 128, 128)),
    LabelClass(14, "sign", (192, 128, 128)),
    LabelClass(15, "bird", (0, 64, 0)),
    LabelClass(16, "book", (128, 64, 0)),
    LabelClass(17, "chair", (0, 192, 0)),
    LabelClass(18, "road", (128, 64, 128)),
    LabelClass(19, "cat", (0, 192, 128)),
    LabelClass(20, "dog", (128, 192, 128)),
    LabelClass(21, "body", (64, 64, 0)),
    LabelClass(22, "boat", (192, 64, 0)),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in LABELS if c.id != VOID)
NUM_CLASSES = len(CLASS_NAMES)


class DataSourceError(RuntimeError):
    """The data set archive could not be fetched, opened or recognised."""


def _how_to_fix(url: str) -> str:
    return (
        f" (source: {url!r}). Point SEG_DATA_URL or the Hydra override data.url=... at the I2DL "
        f"segmentation_data.zip: an http(s) URL, a file:// URL or a local path."
    )


# ---------------------------------------------------------------- archive -----------------------


def _local_path(source: str) -> Path | None:
    """The file a ``file://`` URL or plain path names; None for http(s) URLs."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    return Path(source).expanduser()


def _copy_with_progress(src: Path, dst: Path) -> None:
    with open(src, "rb") as fi, open(dst, "wb") as fo, tqdm(
        total=src.stat().st_size, unit="B", unit_scale=True, desc=f"copy {src.name}"
    ) as bar:
        while chunk := fi.read(1 << 20):
            fo.write(chunk)
            bar.update(len(chunk))


def download_archive(url: str, data_dir: str | os.PathLike) -> Path:
    """Fetch the zip into ``data_dir`` once, with a progress bar; reuse it afterwards.

    http(s) goes through torchvision's ``download_url``; a ``file://`` URL or a path is copied
    (torchvision's downloader cannot read ``file://`` responses).
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / "segmentation_data.zip"
    if target.is_file():
        return target
    local = _local_path(url)
    if local is not None and not local.is_file():
        raise DataSourceError(f"Data archive not found: {local}" + _how_to_fix(url))
    # Fetch into a temp dir and rename: an interrupted download never looks complete.
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".download-") as tmp:
        part = Path(tmp) / target.name
        try:
            if local is not None:
                _copy_with_progress(local, part)
            else:
                download_url(url, tmp, filename=target.name)
        except (urllib.error.URLError, OSError, RuntimeError, ValueError) as e:
            raise DataSourceError(f"Could not download the data archive: {e}" + _how_to_fix(url)) from e
        os.replace(part, target)
    return target


def extract_archive(archive: Path, data_dir: str | os.PathLike, url: str = "") -> Path:
    """Extract to a temp dir, check the layout, then rename into place (atomic for readers).

    A bad archive is deleted, so that the next run fetches it again instead of failing on it.
    """
    data_dir = Path(data_dir)
    final = data_dir / ARCHIVE_DIR
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".extract-") as tmp:
        try:
            try:
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(tmp)
            except zipfile.BadZipFile as e:
                raise DataSourceError(f"{archive} is not a zip archive ({e})") from e
            extracted = Path(tmp) / ARCHIVE_DIR
            if not extracted.is_dir():
                top = sorted(p.name for p in Path(tmp).iterdir())
                raise DataSourceError(
                    f"{archive} has no top-level '{ARCHIVE_DIR}/' folder (found {top}); expected "
                    f"{ARCHIVE_DIR}/images, {ARCHIVE_DIR}/targets and train/val/test.txt"
                )
            verify_layout(extracted)
        except DataSourceError as e:
            archive.unlink(missing_ok=True)
            raise DataSourceError(str(e) + _how_to_fix(url)) from e
        os.replace(extracted, final)
    return final


def verify_layout(root: Path) -> None:
    """Every split file exists and every image and target it lists is present."""
    for split in SPLITS:
        names = read_split(root / f"{split}.txt")
        missing = [
            str(p.relative_to(root))
            for n in names
            for p in (root / "images" / f"{n}.bmp", root / "targets" / f"{n}_GT.bmp")
            if not p.is_file()
        ]
        if missing:
            raise DataSourceError(
                f"{split}.txt lists {len(missing)} files that {root.name}/ lacks, e.g. {missing[:3]}"
            )


def prepare_data(url: str, data_dir: str | os.PathLike) -> Path:
    """Return the extracted data set folder, downloading and extracting it on first use."""
    data_dir = Path(data_dir)
    final = data_dir / ARCHIVE_DIR
    if final.is_dir():
        return final
    return extract_archive(download_archive(url, data_dir), data_dir, url)


# ---------------------------------------------------------------- labels and splits -------------


def read_split(path: Path) -> list[str]:
    """Image stems listed in a split file; tolerates CRLF, blank lines, names with or without .bmp."""
    if not path.is_file():
        raise DataSourceError(f"Split file missing: {path}")
    names = []
    for line in path.read_text().splitlines():
        name = line.strip()
        if name:
            names.append(name[:-4] if name.lower().endswith(".bmp") else name)
    return names


_CODES = np.array([(r << 16) | (g << 8) | b for _, _, (r, g, b) in LABELS], dtype=np.int64)
_ORDER = np.argsort(_CODES)
_SORTED_CODES = _CODES[_ORDER]
_SORTED_IDS = np.array([c.id for c in LABELS], dtype=np.int64)[_ORDER]
PALETTE = np.array([c.rgb for c in LABELS if c.id != VOID], dtype=np.uint8)  # row = class id


def decode_target(rgb: np.ndarray, source: str = "target") -> np.ndarray:
    """Colour-coded HxWx3 uint8 map -> HxW int64 class ids, void = -1.

    Colours not in LABELS become void, with one warning naming ``source``.
    """
    rgb = rgb.astype(np.int64)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    pos = np.clip(np.searchsorted(_SORTED_CODES, code), 0, len(_SORTED_CODES) - 1)
    known = _SORTED_CODES[pos] == code
    if not known.all():
        odd = {tuple(int(v) for v in c) for c in rgb[~known][:1000]}
        warnings.warn(
            f"{source}: {int((~known).sum())} pixels have colours outside the MSRC table "
            f"(e.g. {sorted(odd)[:3]}); they are treated as void.",
            stacklevel=2,
        )
    return np.where(known, _SORTED_IDS[pos], VOID)


def encode_target(ids: np.ndarray) -> np.ndarray:
    """Class ids (void = -1) -> colour map in the MSRC palette, void black."""
    out = np.zeros((*ids.shape, 3), dtype=np.uint8)
    valid = ids != VOID
    out[valid] = PALETTE[ids[valid]]
    return out


def load_item(root: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one photo (HxWx3 uint8) and its colour target (HxW int8 class ids, void = -1)."""
    img_path, tgt_path = root / "images" / f"{name}.bmp", root / "targets" / f"{name}_GT.bmp"
    with Image.open(img_path) as im:
        img = np.array(im.convert("RGB"))  # writable, so torch.from_numpy can share it
    with Image.open(tgt_path) as im:
        tgt = decode_target(np.asarray(im.convert("RGB")), str(tgt_path)).astype(np.int8)
    if img.shape[:2] != tgt.shape:
        raise DataSourceError(f"{tgt_path}: size {tgt.shape} differs from its image {img.shape[:2]}")
    return img, tgt


@functools.lru_cache(maxsize=None)
def load_split(root: str, split: str) -> tuple[tuple[str, ...], tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Decode every image and target of a split once per process (BMP + colour decoding is slow)."""
    root_p = Path(root)
    names = tuple(read_split(root_p / f"{split}.txt"))
    items = [load_item(root_p, n) for n in names]
    return names, tuple(i[0] for i in items), tuple(i[1] for i in items)


# ---------------------------------------------------------------- dataset -----------------------


def center_crop(image: torch.Tensor, target: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The course's CenterCrop: crop, padding sides under ``size`` with black image / void target.

    torchvision's CenterCrop pads with 0, which is a class id (building) for targets, so the
    padding is done here with per-tensor fill values before the crop.
    """
    h, w = image.shape[-2:]
    ph, pw = max(size - h, 0), max(size - w, 0)
    if ph or pw:
        padding = [pw // 2, ph // 2, pw - pw // 2, ph - ph // 2]  # same split as torchvision's
        image = F.pad(image, padding, fill=0)
        target = F.pad(target, padding, fill=VOID)
    return F.center_crop(image, [size, size]), F.center_crop(target, [size, size])


class JointAugment:
    """Random scale + random crop of the whole photo, horizontal flip, colour jitter (image only).

    Image (uint8 3xHxW) and target (int64 1xHxW, void = -1) go through ``torchvision.transforms.v2``
    together as ``tv_tensors.Image`` / ``tv_tensors.Mask``, so both get the same geometry (the mask
    resized with nearest neighbour). Sides under ``size`` after scaling are padded with black image /
    void target (never class 0). Colour jitter is the last step and touches the image only.
    """

    def __init__(self, size: int, scale: tuple[float, float] = (0.75, 1.25), jitter: float = 0.3, hflip: bool = True):
        self.size, self.scale = size, (float(scale[0]), float(scale[1]))
        steps: list = [
            v2.RandomCrop(size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: VOID}),
        ]
        if hflip:
            steps.append(v2.RandomHorizontalFlip())
        if jitter:
            steps.append(v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter, hue=min(jitter / 10, 0.5)))
        self.transform = v2.Compose(steps)

    def __call__(self, image: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = tv_tensors.Image(image), tv_tensors.Mask(target)
        lo, hi = self.scale
        s = lo + (hi - lo) * torch.rand(()).item()
        h, w = image.shape[-2:]
        if s != 1.0:
            new = [max(round(h * s), 1), max(round(w * s), 1)]
            image = F.resize(image, new, antialias=True)  # bilinear
            target = F.resize(target, new)  # a Mask: nearest neighbour
        image, target = self.transform(image, target)
        return image.as_subclass(torch.Tensor), target.as_subclass(torch.Tensor)


class MSRCDataset(Dataset):
    """One split: ``(image float32 3xSxS in [0,1] or normalised, target int64 SxS with void=-1)``.

    ``augment=True`` (training only) replaces the centre crop by :class:`JointAugment`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        crop_size: int | None = 240,
        normalize: bool = True,
        augment: bool = False,
        augment_scale: tuple[float, float] = (0.75, 1.25),
        augment_jitter: float = 0.3,
        cache: bool = True,
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root, self.split, self.crop_size, self.normalize = Path(root), split, crop_size, normalize
        if cache:  # decoded once per process and kept in memory (104 MB for all three MSRC splits)
            self.names, self.images, self.targets = load_split(str(self.root.resolve()), split)
        else:  # decoded from the BMPs at every access
            self.names, self.images, self.targets = tuple(read_split(self.root / f"{split}.txt")), None, None
        if augment and not crop_size:
            raise ValueError("augment=True needs a crop_size (the random crop's size)")
        self.augment = JointAugment(crop_size, tuple(augment_scale), augment_jitter) if augment else None

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.images is not None:
            img, tgt = self.images[i], self.targets[i]
        else:
            img, tgt = load_item(self.root, self.names[i])
        image = torch.from_numpy(img).permute(2, 0, 1)  # uint8 CHW, no copy
        target = torch.from_numpy(tgt).to(torch.int64)[None]
        if self.augment is not None:
            image, target = self.augment(image, target)
        elif self.crop_size:
            image, target = center_crop(image, target, self.crop_size)
        image = image.float().div_(255)
        if self.normalize:
            image = F.normalize(image, IMAGENET_MEAN, IMAGENET_STD)
        return image, target[0]


class MSRCDataModule(pl.LightningDataModule):
    """MSRC-v2 train/val/test (276/59/56) with the course's CenterCrop(240) protocol."""

    def __init__(
        self,
        data_dir: str,
        url: str = DEFAULT_URL,
        batch_size: int = 8,
        num_workers: int = 0,
        crop_size: int = 240,
        normalize: bool = True,
        pin_memory: bool = False,
        augment: bool = False,
        augment_scale: tuple[float, float] = (0.75, 1.25),
        augment_jitter: float = 0.3,
        cache: bool = True,
    ):
        super().__init__()
        # a plain tuple, not a Hydra ListConfig: checkpoints then load with torch.load(weights_only=True)
        augment_scale = tuple(float(v) for v in augment_scale)
        self.save_hyperparameters()
        self.datasets: dict[str, MSRCDataset] = {}

    @property
    def root(self) -> Path:
        return Path(self.hparams.data_dir) / ARCHIVE_DIR

    def prepare_data(self) -> None:
        prepare_data(self.hparams.url, self.hparams.data_dir)

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in wanted.get(stage, SPLITS):
            if split not in self.datasets:
                augment = self.hparams.augment and split == "train"  # val/test stay deterministic
                self.datasets[split] = MSRCDataset(
                    self.root, split, crop_size=self.hparams.crop_size, normalize=self.hparams.normalize,
                    augment=augment, augment_scale=tuple(self.hparams.augment_scale),
                    augment_jitter=self.hparams.augment_jitter, cache=self.hparams.cache,
                )

    def class_pixel_counts(self, split: str = "train") -> torch.Tensor:
        """Non-void pixels per class over the split's full targets (for class-weighted losses)."""
        self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        ds = self.datasets[split]
        targets = ds.targets if ds.targets is not None else [load_item(ds.root, n)[1] for n in ds.names]
        counts = sum(np.bincount(t[t >= 0].ravel(), minlength=len(PALETTE)) for t in targets)
        return torch.as_tensor(counts, dtype=torch.int64)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
