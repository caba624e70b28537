"""A data set written out as a folder data set any tool reads: ``images/`` (the photos upright),
``masks/`` (palette PNGs whose indices are the class ids, 255 ignored, the class colours as palette),
``classes.txt`` (``name R G B`` per class) and ``train.txt`` / ``val.txt`` / ``test.txt``. What
``python -m seg.convert`` writes; ``data=folder data.root=OUT`` reads it back unchanged."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seg.core.errors import ConfigError
from seg.core.files import new_folder
from seg.data.labels import LabelSet
from seg.data.splits import SPLITS

IGNORED = 255  # the ignore index of the written masks (data=folder's default)


def _png(array: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    im = Image.fromarray(array)
    if palette is not None:
        im = im.convert("P") if im.mode != "L" else im
        im.putpalette(np.pad(palette.astype(np.uint8), ((0, 256 - len(palette)), (0, 0))).ravel().tolist())
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _photo(item: Any, image: np.ndarray) -> tuple[str, bytes]:
    """A photo's file: its own bytes when it is a file shown as stored (no EXIF turn), else upright PNG."""
    source = getattr(item, "image", None)
    if isinstance(source, Path) and source.is_file():
        with Image.open(source) as im:
            upright = im.getexif().get(0x0112, 1) in (None, 1) and im.size == (image.shape[1], image.shape[0])
        if upright:
            return source.suffix.lower(), source.read_bytes()
    return ".png", _png(image)


def mask_ids(ids: np.ndarray, labels: LabelSet) -> np.ndarray:
    """Class ids as 8-bit mask values: ids as they are, the data set's ignore index as 255."""
    out = ids.astype(np.int64).copy()
    out[ids == labels.ignore_index] = IGNORED
    return out.astype(np.uint8)


def write_folder(dm: Any, output: Path) -> dict[str, int]:
    """Every split of the datamodule ``dm`` (its items, folds applied) written to the new folder ``output``
    (see the module), built in a temporary folder beside it and renamed into place: never half-written.
    Returns the number of photos per split."""
    output = Path(output).expanduser()
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ConfigError(f"output={output} exists and is not empty: name a new folder (nothing is overwritten)")
    labels = dm.label_set()
    if labels.num_classes > IGNORED:
        raise ConfigError(f"{labels.num_classes} classes do not fit 8-bit masks with 255 ignored")
    counts, written = {}, set()
    with new_folder(output) as work:
        (work / "images").mkdir()
        (work / "masks").mkdir()
        for split in SPLITS:
            data = dm.split_dataset(split)
            for i, (item, name) in enumerate(zip(data.items, data.names)):
                if name not in written:
                    image, ids = data.raw(i)
                    suffix, photo = _photo(item, image)
                    (work / "images" / f"{name}{suffix}").write_bytes(photo)
                    (work / "masks" / f"{name}.png").write_bytes(_png(mask_ids(ids, labels), labels.palette))
                    written.add(name)
            (work / f"{split}.txt").write_text("".join(f"{n}\n" for n in data.names))
            counts[split] = len(data.names)
        rows = [f"{n} {r} {g} {b}\n" for n, (r, g, b) in zip(labels.names, labels.palette.tolist())]
        (work / "classes.txt").write_text("".join(rows))
    return counts
