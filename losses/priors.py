"""Priors used by blind deblurring: the hyper-Laplacian prior on image gradients and the code norm."""

from __future__ import annotations

import torch
from torch import nn


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward finite differences of (B, C, H, W): horizontal (B, C, H, W-1) and vertical (B, C, H-1, W)."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def hyper_laplacian(x: torch.Tensor, alpha: float = 2.0 / 3.0, eps: float = 1e-3) -> torch.Tensor:
    """Hyper-Laplacian prior (Krishnan & Fergus 2009) on the gradients of an image.

    ``x``: (B, C, H, W). Returns ``mean(|d_h|^α) + mean(|d_v|^α)`` over the horizontal and vertical
    forward differences, where ``|d|^α`` is computed as ``(d² + eps²)^(α/2)`` so that the value and
    its gradient stay finite at ``d = 0`` (``eps = 0`` gives the exact, non-smooth penalty).
    """
    dh, dv = image_gradients(x)
    half = alpha / 2.0
    e2 = eps * eps
    return (dh * dh + e2).pow(half).mean() + (dv * dv + e2).pow(half).mean()


class HyperLaplacianPrior(nn.Module):
    """Module form of :func:`hyper_laplacian` with a configurable exponent ``alpha`` (default 2/3)."""

    def __init__(self, alpha: float = 2.0 / 3.0, eps: float = 1e-3) -> None:
        super().__init__()
        self.alpha = alpha
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) image → scalar penalty."""
        return hyper_laplacian(x, self.alpha, self.eps)


def kernel_norm(code: torch.Tensor) -> torch.Tensor:
    """L2 norm of a kernel code (B, kernel_dim, gh, gw): ``sqrt(sum k²)`` per sample, averaged over B.

    For a single code (B = 1) this is ``torch.norm(code)``, the paper's ``||k||_2``.
    """
    return code.flatten(1).norm(dim=1).mean()
