"""Pixel losses: the Charbonnier (smooth L1) penalty used to train F and G."""

from __future__ import annotations

import torch
from torch import nn


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean of ``sqrt((pred - target)² + eps²)`` over all elements.

    ``pred`` and ``target``: tensors of one shape (any, typically (B, C, H, W)). Returns a scalar.
    Note that two equal tensors give ``eps``, not 0 (the published definition).
    """
    if pred.shape != target.shape:
        raise ValueError(f"charbonnier: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
    diff = pred - target
    return torch.sqrt(diff * diff + eps * eps).mean()


class CharbonnierLoss(nn.Module):
    """Module form of :func:`charbonnier` (``eps`` fixed at construction)."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) prediction and target → scalar loss."""
        return charbonnier(pred, target, self.eps)
