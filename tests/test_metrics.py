"""utils/metrics.py: PSNR (whole images and per image of a batch) and SSIM, the project's one copy of each."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils.metrics import psnr, psnr_per_image, ssim


def test_psnr_of_known_error_for_tensors_and_arrays():
    a = torch.zeros(1, 3, 8, 8)
    assert psnr(a, a + 0.1) == pytest.approx(20.0)
    assert psnr(a.numpy(), (a + 0.1).numpy()) == pytest.approx(20.0)
    assert psnr(a * 255, a * 255 + 25.5, data_range=255.0) == pytest.approx(20.0)
    assert psnr(a, a) == math.inf
    assert psnr(a, a, max_db=100.0) == 100.0
    with pytest.raises(ValueError, match="shapes"):
        psnr(a, a[..., :4])


def test_psnr_per_image_scores_each_image_of_a_batch():
    a = torch.zeros(3, 3, 8, 8)
    b = a + torch.tensor([0.1, 0.01, 0.0])[:, None, None, None]
    scores = psnr_per_image(a, b, max_db=100.0)
    assert scores.shape == (3,)
    assert scores.tolist() == pytest.approx([20.0, 40.0, 100.0])
    assert psnr_per_image(a[:1], b[:1]).item() == pytest.approx(psnr(a[0], b[0]))


def test_ssim_is_one_for_identical_images_and_lower_for_noise():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((1, 3, 32, 32), dtype=np.float32))
    assert ssim(x, x).item() == pytest.approx(1.0)
    assert ssim(x, (x + 0.2 * torch.randn_like(x)).clamp(0, 1)).item() < 0.9
