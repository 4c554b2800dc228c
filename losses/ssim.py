"""Structural similarity (Wang et al. 2004) with an 11×11 Gaussian window (σ = 1.5).

Means and (co)variances are Gaussian-weighted local statistics computed over the *valid* part of
the image (no padding), as in Wang et al.'s reference code and scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``; the SSIM
map is averaged over pixels, channels and batch. Images smaller than the window use a window as
large as the image allows (odd size, same σ).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised 2-D Gaussian window (size, size), the outer product of two 1-D Gaussians."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2.0 * sigma * sigma))
    g = g / g.sum()
    return torch.outer(g, g).to(dtype)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    window_size: int = 11,
    sigma: float = 1.5,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Mean SSIM of two (B, C, H, W) images with values in [0, ``data_range``] → scalar in [-1, 1]."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(
            f"ssim: expected two (B, C, H, W) tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    channels = x.shape[1]
    size = min(window_size, x.shape[-2], x.shape[-1])
    size -= 1 - size % 2  # keep it odd
    window = gaussian_window(size, sigma, x.dtype).to(x.device).expand(channels, 1, size, size)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=channels)

    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return (num / den).mean()


class SSIMLoss(nn.Module):
    """``1 − SSIM(pred, target)`` as a loss (0 for identical images)."""

    def __init__(self, window_size: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> None:
        super().__init__()
        self.window_size, self.sigma, self.data_range = window_size, sigma, data_range

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) prediction and target in [0, data_range] → scalar loss."""
        return 1.0 - ssim(pred, target, self.window_size, self.sigma, self.data_range)
