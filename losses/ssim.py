"""SSIM as a loss: ``1 − SSIM`` (the metric itself, :func:`utils.metrics.ssim`, is re-exported here)."""

from __future__ import annotations

import torch
from torch import nn

from utils.metrics import gaussian_window, ssim

__all__ = ["SSIMLoss", "gaussian_window", "ssim"]


class SSIMLoss(nn.Module):
    """``1 − SSIM(pred, target)`` as a loss (0 for identical images)."""

    def __init__(self, window_size: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> None:
        super().__init__()
        self.window_size, self.sigma, self.data_range = window_size, sigma, data_range

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) prediction and target in [0, data_range] → scalar loss."""
        return 1.0 - ssim(pred, target, self.window_size, self.sigma, self.data_range)
