"""Image and kernel quality metrics."""

from __future__ import annotations

import numpy as np
import torch


def kernel_similarity(estimate: torch.Tensor | np.ndarray, truth: torch.Tensor | np.ndarray) -> float:
    """Best-shift normalised cross-correlation of two kernels (h, w) and (h', w') → a number in [0, 1].

    ``max_shift Σ a(p) b(p + shift) / (‖a‖ ‖b‖)`` over every shift at which the kernels overlap
    (the similarity of Hu & Yang, 2012, used by blind-deblurring papers): 1 for the same kernel up
    to a translation; a delta scores ``max(b) / ‖b‖`` against b. Kernels need not have one size.
    """
    a = torch.as_tensor(np.asarray(estimate, dtype=np.float64) if isinstance(estimate, np.ndarray)
                        else estimate.detach().double().cpu())
    b = torch.as_tensor(np.asarray(truth, dtype=np.float64) if isinstance(truth, np.ndarray)
                        else truth.detach().double().cpu())
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"kernels must be 2-D, got {tuple(a.shape)} and {tuple(b.shape)}")
    norm = float(a.norm() * b.norm())
    if norm == 0:
        return 0.0
    size = (a.shape[0] + b.shape[0] - 1, a.shape[1] + b.shape[1] - 1)
    corr = torch.fft.irfft2(torch.fft.rfft2(a.flip(0, 1), s=size) * torch.fft.rfft2(b, s=size), s=size)
    return float(corr.max() / norm)
