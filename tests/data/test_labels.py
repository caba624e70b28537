"""The label table, colour decoding and encoding."""

from __future__ import annotations

import numpy as np
import pytest

from seg.data.labels import CLASS_NAMES, LABELS, NUM_CLASSES, PALETTE, decode_target
from seg.deploy.pictures import colorize


def test_label_table_matches_the_msrc_legend():
    assert NUM_CLASSES == 23 and len(LABELS) == 24
    assert [c.id for c in LABELS] == list(range(-1, 23))
    assert LABELS[0].name == "void" and LABELS[0].rgb == (0, 0, 0)
    assert CLASS_NAMES[3] == "cow" and CLASS_NAMES[22] == "boat"
    assert len({c.rgb for c in LABELS}) == 24  # colours are unique
    assert PALETTE.shape == (23, 3) and tuple(PALETTE[6]) == (128, 128, 128)  # sky


def test_decode_every_colour_to_its_id():
    rgb = np.array([[c.rgb for c in LABELS]], dtype=np.uint8)
    ids = decode_target(rgb)
    assert ids.dtype == np.int64
    assert ids.tolist() == [[c.id for c in LABELS]]
    np.testing.assert_array_equal(colorize(ids, PALETTE), rgb)


def test_unknown_colour_becomes_void_with_one_warning_naming_the_file():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (0, 128, 0)  # grass
    rgb[1, :] = (1, 2, 3)  # not in the table
    with pytest.warns(UserWarning, match=r"odd_GT\.bmp: 3 pixels") as record:
        ids = decode_target(rgb, "odd_GT.bmp")
    assert len(record) == 1
    assert ids[0, 0] == 1 and (ids[1] == -1).all() and (ids[0, 1:] == -1).all()
