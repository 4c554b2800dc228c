"""bench/bottleneck_bound.py: the linear estimate of how much of the residual F's bottleneck can carry."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SPEC = importlib.util.spec_from_file_location("bottleneck_bound",
                                              Path(__file__).resolve().parent.parent / "bench" / "bottleneck_bound.py")
bound = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bound)


def test_patches_are_non_overlapping_8x8_blocks():
    image = np.arange(16 * 24 * 3, dtype=np.float64).reshape(16, 24, 3)
    rows = bound.patches(image)
    assert rows.shape == (6, 192)
    np.testing.assert_array_equal(rows[1].reshape(8, 8, 3), image[:8, 8:16])


def test_more_components_never_hurt_and_all_of_them_reproduce_y():
    train = bound.synthetic_pairs(4, 64, 0, "train")  # 256 patches: a full basis of 192
    test = bound.synthetic_pairs(2, 64, 0, "test")
    scores = bound.reblur_psnr_with_components(train, test, [4, 24, 96, 192])
    assert scores[4] <= scores[24] + 1e-6 <= scores[96] + 2e-6
    assert scores[192] > 100  # the full basis is exact
    identity = np.mean([10 * np.log10(1 / np.mean((b - s) ** 2)) for s, b in test])
    assert scores[24] > identity
    with pytest.raises(ValueError, match="fewer than"):
        bound.reblur_psnr_with_components(train[:1], test, [192])
