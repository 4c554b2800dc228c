"""Pixel losses: the Charbonnier (smooth L1) penalty used to train F and G."""

from __future__ import annotations

import torch
from torch import nn


def charbonnier(
    pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3, reduction: str = "mean"
) -> torch.Tensor:
    """Mean (``reduction="mean"``) or sum (``"sum"``) of ``sqrt((pred - target)² + eps²)`` over all
    elements.

    ``pred`` and ``target``: tensors of one shape (any, typically (B, C, H, W)). Returns a scalar.
    Note that two equal tensors give ``eps`` per element, not 0 (the published definition). The
    published training sums (see :func:`train.pixel_loss`).
    """
    if pred.shape != target.shape:
        raise ValueError(f"charbonnier: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"charbonnier: reduction must be 'mean' or 'sum', got {reduction!r}")
    diff = pred - target
    per_element = torch.sqrt(diff * diff + eps * eps)
    return per_element.sum() if reduction == "sum" else per_element.mean()


class CharbonnierLoss(nn.Module):
    """Module form of :func:`charbonnier` (``eps`` fixed at construction)."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) prediction and target → scalar loss."""
        return charbonnier(pred, target, self.eps)
