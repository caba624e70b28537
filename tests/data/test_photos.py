"""The one photo reader: photos in every format and mode users have, upright by EXIF, read the same for
training (seg.data.masks.read_image, the folder data sets' reader) and prediction (load_photo);
unreadable files named. A photo turned by EXIF trains with the mask drawn on it upright."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seg.data.folder import FolderReader, Item
from seg.data.labels import LabelSet
from seg.data.masks import read_image
from seg.data.photos import PhotoError, find_photos, load_photo, photo_size

H, W = 21, 34  # odd, non-square: a transposed or cropped photo cannot pass


@pytest.fixture(params=["predict", "train"])
def read(request):
    """Each test of a file runs through both readers: prediction's and training's must agree."""
    return load_photo if request.param == "predict" else read_image


def rgb_photo(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    """A smooth colour photo (gradients, so lossy codecs keep it close) with some texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([255 * yy / max(h - 1, 1), 255 * xx / max(w - 1, 1), 128 + 0 * xx], -1)
    return np.clip(base + rng.integers(-10, 10, (h, w, 3)), 0, 255).astype(np.uint8)


def save(image: Image.Image, path, **params) -> None:
    image.save(path, **params)
    assert path.stat().st_size > 0


# (file suffix, save parameters): lossless ones compare exactly
LOSSLESS = {".png": {}, ".bmp": {}, ".tif": {}, ".webp": {"lossless": True}}


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".webp", ".jpg"])
def test_rgb_in_every_format(suffix, tmp_path, read):
    photo = rgb_photo()
    path = tmp_path / f"photo{suffix}"
    save(Image.fromarray(photo), path, **LOSSLESS.get(suffix, {"quality": 95}))
    out = read(path)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    if suffix in LOSSLESS:
        np.testing.assert_array_equal(out, photo)
    else:
        assert np.abs(out.astype(int) - photo).mean() < 6  # JPEG: close, not equal


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".jpg", ".webp"])
def test_grayscale_becomes_three_equal_channels(suffix, tmp_path, read):
    grey = rgb_photo()[..., 0]
    path = tmp_path / f"grey{suffix}"
    save(Image.fromarray(grey), path, **LOSSLESS.get(suffix, {"quality": 95}))
    out = read(path)
    assert out.shape == (H, W, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 1], out[..., 2])
    diff = np.abs(out[..., 0].astype(int) - grey)
    assert diff.max() == 0 if suffix in LOSSLESS else diff.mean() < 6


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp"])
def test_alpha_is_composited_over_black(suffix, tmp_path, read):
    photo = rgb_photo()
    alpha = np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))  # transparent left, opaque right
    path = tmp_path / f"alpha{suffix}"
    save(Image.fromarray(np.dstack([photo, alpha])), path, **LOSSLESS.get(suffix, {}))
    out = read(path).astype(int)
    expected = photo.astype(int) * alpha[..., None] / 255
    assert np.abs(out - expected).max() <= 1
    assert (out[:, 0] == 0).all() and np.array_equal(out[:, -1], photo[:, -1])


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_palette_photos_use_their_palette(suffix, tmp_path, read):
    paletted = Image.fromarray(rgb_photo()).quantize(colors=16)
    path = tmp_path / f"palette{suffix}"
    save(paletted, path)
    colours = np.array(paletted.getpalette(), dtype=np.uint8).reshape(-1, 3)
    np.testing.assert_array_equal(read(path), colours[np.array(paletted)])


def test_palette_with_a_transparent_entry(tmp_path, read):
    paletted = Image.fromarray(rgb_photo()).quantize(colors=8)
    index = np.array(paletted)
    path = tmp_path / "transparent.png"
    save(paletted, path, transparency=int(index[0, 0]))
    out = read(path)
    assert (out[index == index[0, 0]] == 0).all()  # the transparent entry is black
    colours = np.array(paletted.getpalette(), dtype=np.uint8).reshape(-1, 3)
    np.testing.assert_array_equal(out[index != index[0, 0]], colours[index[index != index[0, 0]]])


def test_grey_with_alpha_is_composited_over_black(tmp_path, read):
    grey = np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))
    alpha = np.full((H, W), 128, np.uint8)
    path = tmp_path / "la.png"
    save(Image.fromarray(np.dstack([grey, alpha]), mode="LA"), path)
    out = read(path).astype(int)
    assert out.shape == (H, W, 3) and np.abs(out[..., 1] - grey.astype(int) * 128 / 255).max() <= 1


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk(suffix, tmp_path, read):
    photo = rgb_photo()
    path = tmp_path / f"cmyk{suffix}"
    save(Image.fromarray(photo).convert("CMYK"), path, **({"quality": 95} if suffix == ".jpg" else {}))
    with Image.open(path) as im:
        assert im.mode == "CMYK"
    out = read(path)
    assert out.shape == (H, W, 3)
    assert np.abs(out.astype(int) - photo).mean() < (6 if suffix == ".jpg" else 1)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grayscale_keeps_its_top_8_bits(suffix, tmp_path, read):
    values = (np.arange(H * W).reshape(H, W) * 97 % 65536).astype(np.uint16)
    path = tmp_path / f"deep{suffix}"
    save(Image.fromarray(values), path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")
    out = read(path)
    np.testing.assert_array_equal(out[..., 0], values // 257)
    assert out.dtype == np.uint8 and (out[..., 0] == out[..., 2]).all()


@pytest.mark.parametrize(("orientation", "turn"), [(3, 2), (6, -1), (8, 1)])
@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".webp"])
def test_exif_orientation_is_applied(orientation, turn, suffix, tmp_path, read):
    photo = rgb_photo()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"turned{suffix}"
    save(Image.fromarray(photo), path, exif=exif, **LOSSLESS.get(suffix, {"quality": 95}))
    upright = np.rot90(photo, k=turn)  # orientation 6: turn 90 degrees clockwise to display
    out = read(path)
    assert out.shape == upright.shape
    assert np.abs(out.astype(int) - upright).mean() < (6 if suffix == ".jpg" else 0.5)
    assert photo_size(path) == (upright.shape[1], upright.shape[0])


def test_pil_images_and_arrays(tmp_path):
    photo = rgb_photo()
    np.testing.assert_array_equal(load_photo(Image.fromarray(photo)), photo)
    grey = Image.fromarray(photo).convert("L")
    np.testing.assert_array_equal(load_photo(grey), np.repeat(np.array(grey)[..., None], 3, 2))
    assert load_photo(photo) is photo
    for bad in (photo[..., 0], photo.astype(np.float32), np.dstack([photo, photo[..., :1]]), photo[:0]):
        with pytest.raises(PhotoError, match="HxWx3 uint8"):
            load_photo(bad)


@pytest.mark.parametrize("content", [b"not a photo at all", b"\xff\xd8\xff\xe0 truncated"])
def test_unreadable_file_is_named(content, tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(content)
    with pytest.raises(PhotoError, match=r"broken\.jpg: cannot be read as a photo"):
        load_photo(path)


def test_truncated_photo_is_named(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(rgb_photo(200, 300)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:2000])  # the header survives: the size reads, the pixels do not
    assert photo_size(path) == (300, 200)
    with pytest.raises(PhotoError, match=r"cut\.jpg"):
        load_photo(path)


def _item(tmp_path, photo: Image.Image, mask: np.ndarray, **save) -> Item:
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "masks").mkdir(exist_ok=True)
    photo.save(tmp_path / "images" / "turned.jpg", quality=95, **save)
    Image.fromarray(mask).save(tmp_path / "masks" / "turned.png")
    return Item("turned", tmp_path / "images" / "turned.jpg", tmp_path / "masks" / "turned.png")


def test_a_photo_turned_by_exif_trains_upright_with_its_mask(tmp_path):
    """A phone photo stored sideways with EXIF orientation 6, its mask drawn on it upright (as LabelMe and
    CVAT show it): training reads photo and mask in register, as prediction reads the photo."""
    upright = rgb_photo()
    ids = (np.arange(W)[None].repeat(H, 0) >= W // 2).astype(np.uint8)  # left half class 0, right half 1
    upright[ids == 1] = (250, 10, 10)  # the right half red: where the mask says 1
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90 degrees clockwise to display
    item = _item(tmp_path, Image.fromarray(np.rot90(upright, k=1).copy()), ids, exif=exif)
    with Image.open(item.image) as im:
        assert im.size == (H, W)  # stored sideways
    image, read_ids = FolderReader(LabelSet(("left", "right"), [[0, 0, 0], [255, 0, 0]], 255))(item)
    assert image.shape == (H, W, 3) and np.array_equal(read_ids, ids)
    assert image[ids == 1, 0].mean() > 200 and image[ids == 0, 0].mean() < 200  # red where the mask says 1
    np.testing.assert_array_equal(image, load_photo(item.image))


def test_a_mask_drawn_on_the_stored_photo_is_named_with_both_sizes(tmp_path):
    from seg.data.folder import Catalogue
    from seg.data.survey import survey

    exif = Image.Exif()
    exif[0x0112] = 6
    item = _item(tmp_path, Image.fromarray(rgb_photo(W, H)), np.zeros((W, H), np.uint8), exif=exif)
    cat = Catalogue({"train": [item], "val": [item], "test": []}, [], "listed")
    found = survey(cat, tmp_path, classes=["a"], allow_unseen_classes=True)
    assert any(
        f"turned.png: size {H}x{W} differs from its photo" in p and f"the mask fits the photo as stored ({H}x{W})" in p
        for p in found.problems
    ), found.problems


def test_find_photos_in_a_file_a_folder_and_a_glob(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.jpg", "a.PNG", "c.webp", "notes.txt", "sub/d.tif"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in find_photos(str(tmp_path))] == ["a.PNG", "b.jpg", "c.webp"]  # not sub/, not .txt
    assert [p.name for p in find_photos(str(tmp_path / "**" / "*"))] == ["a.PNG", "b.jpg", "c.webp", "d.tif"]
    assert [p.name for p in find_photos(str(tmp_path / "*.jpg"))] == ["b.jpg"]
    assert find_photos(str(tmp_path / "notes.txt")) == [tmp_path / "notes.txt"]  # a named file is tried as it is
    with pytest.raises(PhotoError, match="no such file or folder"):
        find_photos(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PhotoError, match="no photos there"):
        find_photos(str(tmp_path / "empty"))
    with pytest.raises(PhotoError, match="no photos there"):
        find_photos(str(tmp_path / "*.gif"))
