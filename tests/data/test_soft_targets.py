"""A teacher's soft targets on disk: kept as uint8 block means, expanded back to the photo, refused with a
clear error when they do not fit the data."""

from __future__ import annotations

import pytest
import torch

from seg.core.errors import ConfigError
from seg.data import soft_targets
from seg.data.labels import MSRC, LabelSet


def test_shrink_and_expand_keep_block_means_and_refuse_other_photos():
    probs = torch.rand(3, 10, 13).softmax(0)
    small = soft_targets.shrink(probs, 4)
    assert small.shape == (3, 3, 4)
    assert abs(small[0, 0, 0].item() - round(probs[0, :4, :4].mean().item() * 255)) <= 1
    assert abs(small[0, 2, 3].item() - round(probs[0, 8:, 12:].mean().item() * 255)) <= 1  # ragged edge
    big = soft_targets.expand(small, 4, 10, 13)
    assert big.shape == (3, 10, 13) and torch.equal(big[:, 9, 12], small[:, 2, 3])
    with pytest.raises(ValueError, match="write them again"):
        soft_targets.expand(small, 4, 20, 13)


def test_bad_soft_target_files_are_clear_errors(tmp_path):
    path = soft_targets.write(
        tmp_path / "soft.pt",
        ["a", "b"],
        [torch.zeros(23, 2, 2, dtype=torch.uint8), torch.ones(23, 2, 2, dtype=torch.uint8)],
        4,
        MSRC,
        {"ckpt_path": "x.ckpt", "tta": [1.0]},
    )
    with pytest.raises(ConfigError, match=r"no such file.*seg\.teach"):
        soft_targets.for_items(tmp_path / "none.pt", ["a"], MSRC)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match=r"junk\.pt: not a soft-targets file"):
        soft_targets.for_items(tmp_path / "junk.pt", ["a"], MSRC)
    names = soft_targets.read(path)["names"]
    with pytest.raises(ConfigError, match=r"no soft targets for 1 of the 2 training photos \(e.g. elsewhere\)"):
        soft_targets.for_items(path, [names[0], "elsewhere"], MSRC)
    other = LabelSet(["a", "b"], [[0, 0, 0], [1, 1, 1]])
    with pytest.raises(ConfigError, match=r"its teacher knows 23 classes.*this data 2"):
        soft_targets.for_items(path, names, other)
    got, stride = soft_targets.for_items(path, names[::-1], MSRC)  # in the items' order
    assert stride == 4 and torch.equal(got[0], soft_targets.read(path)["targets"][-1])
