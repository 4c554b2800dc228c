"""The PSF loss of the psf kernel space: decoded PSFs against known kernels."""

from __future__ import annotations

import torch


def psf_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``Σ_n S² · ‖pred_n − target_n‖²`` for PSFs (N, S, S) of one size: a scalar, summed over the
    batch like the pixel loss. The factor S² puts it on the scale of PSFs whose pixels are ~1/S²:
    a per-pixel error relative to a flat S×S kernel."""
    if pred.shape != target.shape:
        raise ValueError(f"psf_loss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    size = pred.shape[-1] * pred.shape[-2]
    return (pred.float() - target.float()).pow(2).sum() * size
