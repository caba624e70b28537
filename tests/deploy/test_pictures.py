"""A prediction as pictures: palette PNG round trip, colour map, pixel shares, the overlay with its legend, the
legend beside any colour map."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from seg.data.labels import CLASS_NAMES, PALETTE, LabelSet
from seg.deploy.pictures import (
    blend,
    class_shares,
    classes_shown,
    colorize,
    colour_map_with_legend,
    ids_png,
    overlay,
    with_legend,
)


def ids_map(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, len(PALETTE), (h, w)).astype(np.uint8)


@pytest.mark.parametrize("hw", [(1, 1), (17, 301), (40, 60)])
def test_palette_png_reads_back_as_ids_and_shows_the_class_colours(hw, tmp_path):
    ids = ids_map(*hw)
    path = tmp_path / "ids.png"
    ids_png(ids, PALETTE).save(path)
    with Image.open(path) as im:
        assert im.mode == "P" and im.size == (hw[1], hw[0])
        np.testing.assert_array_equal(np.array(im), ids)  # the ids themselves
        np.testing.assert_array_equal(np.array(im.convert("RGB")), PALETTE[ids])  # shown in the MSRC colours


def test_palette_png_refuses_ids_outside_the_palette():
    with pytest.raises(ValueError, match="class ids must be in"):
        ids_png(np.full((2, 2), 23), PALETTE)
    with pytest.raises(ValueError, match="class ids must be in"):
        ids_png(np.full((2, 2), -1), PALETTE)


def test_colorize_and_class_shares():
    ids = np.array([[0, 0, 6], [6, 6, 6]], dtype=np.uint8)
    np.testing.assert_array_equal(colorize(ids, PALETTE)[0, 2], [128, 128, 128])  # sky
    assert class_shares(ids, len(PALETTE)) == [(6, pytest.approx(4 / 6)), (0, pytest.approx(2 / 6))]


@pytest.mark.parametrize("hw", [(1, 1), (3001, 17), (17, 3001), (60, 90)])
def test_overlay_blends_the_photo_and_adds_a_legend(hw):
    h, w = hw
    photo = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ids = ids_map(h, w)
    ids[: max(h // 2, 1)] = 1  # grass: the largest share
    picture = overlay(photo, ids, PALETTE, CLASS_NAMES, alpha=0.5)
    assert picture.mode == "RGB" and picture.width > w and picture.height >= h
    left = np.array(picture)[:h, :w].astype(int)
    expected = np.rint(0.5 * photo + 0.5 * PALETTE[ids].astype(float))
    assert np.abs(left - expected).max() <= 1
    # the legend panel lists the present classes: it holds their colours, the largest share first
    panel = np.array(picture)[:, w:]
    grass = (panel == PALETTE[1]).all(-1)
    assert grass.any()
    present = np.unique(ids)
    assert all((panel == PALETTE[c]).all(-1).any() for c in present)
    first_row = np.argmax(grass.any(1))
    others = [np.argmax((panel == PALETTE[c]).all(-1).any(1)) for c in present if c != 1]
    assert all(first_row < r for r in others)
    buf = io.BytesIO()
    picture.save(buf, format="JPEG")  # saves as the overlay JPEG
    assert buf.tell() > 0


def test_blend_is_the_overlay_without_its_legend():
    photo = np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    ids = ids_map(20, 30)
    for alpha in (0.0, 0.3, 1.0):
        picture = blend(photo, ids, PALETTE, alpha)
        assert picture.size == (30, 20)
        np.testing.assert_array_equal(
            np.array(picture), np.array(overlay(photo, ids, PALETTE, CLASS_NAMES, alpha))[:20, :30]
        )
    np.testing.assert_array_equal(np.array(blend(photo, ids, PALETTE, 1.0)), PALETTE[ids])


def test_overlay_alpha_zero_is_the_photo():
    photo = np.random.default_rng(2).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    picture = overlay(photo, ids_map(20, 30), PALETTE, CLASS_NAMES, alpha=0.0)
    np.testing.assert_array_equal(np.array(picture)[:20, :30], photo)


def test_classes_shown_are_the_ids_present_in_any_map_without_ignored_ones():
    a = np.array([[3, 3], [-1, 0]])
    b = np.array([[255, 5], [5, 3]])
    assert classes_shown(6, a, b) == [0, 3, 5]
    assert classes_shown(6) == [] and classes_shown(4, b) == [3]  # 5 is outside a 4-class palette


def test_a_colour_map_gets_a_legend_of_the_classes_it_shows_in_the_label_sets_colours():
    labels = LabelSet.from_names(["sea", "sand", "rock"], [(0, 0, 200), (230, 200, 120), (90, 90, 90)], 255)
    ids = np.zeros((30, 40), np.int64)
    ids[:, 20:] = 2
    ids[-3:] = 255  # ignored: black, not in the legend
    picture = np.array(colour_map_with_legend(ids, labels.palette, labels.names))
    assert picture.shape[0] >= 30 and picture.shape[1] > 40  # as tall as the map or its legend
    np.testing.assert_array_equal(picture[:30, :40], colorize(ids, labels.palette))
    panel = picture[:, 40:]
    assert [bool((panel == labels.palette[c]).all(-1).any()) for c in range(3)] == [True, False, True]
    plain = np.zeros((5, 5, 3), np.uint8)
    assert np.array_equal(np.array(with_legend(plain, [], labels.palette)), plain)  # nothing to list: no panel
