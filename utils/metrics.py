"""Image and kernel quality metrics: PSNR, SSIM (every score in the project comes from here) and the
kernel similarity of blind-deblurring papers.

Images are numpy arrays or torch tensors with values in [0, ``data_range``] (1 by default).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _as_float64(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(image, np.ndarray):
        return torch.from_numpy(np.asarray(image, dtype=np.float64))
    return image.detach().double()


def _db(mse: torch.Tensor, data_range: float, max_db: float) -> torch.Tensor:
    out = 10.0 * torch.log10(data_range**2 / mse)  # inf where mse == 0
    return out.clamp_max(max_db) if math.isfinite(max_db) else out


def psnr(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, data_range: float = 1.0,
         max_db: float = math.inf) -> float:
    """PSNR in dB of two images of one shape, ``10 log10(data_range² / MSE)`` over all their elements
    (computed in float64); inf for identical images unless capped at ``max_db``."""
    x, y = _as_float64(a), _as_float64(b)
    if x.shape != y.shape:
        raise ValueError(f"psnr: images of different shapes {tuple(x.shape)} and {tuple(y.shape)}")
    return float(_db(torch.mean((x - y.to(x.device)) ** 2), data_range, max_db))


def psnr_per_image(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, max_db: float = math.inf) -> torch.Tensor:
    """PSNR in dB of each image of two (B, ...) batches → (B,) float64 tensor (see :func:`psnr`)."""
    if a.shape != b.shape:
        raise ValueError(f"psnr_per_image: batches of different shapes {tuple(a.shape)} and {tuple(b.shape)}")
    mse = (a.detach().double() - b.detach().double()).pow(2).flatten(1).mean(1)
    return _db(mse, data_range, max_db)


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
    """Mean SSIM (Wang et al. 2004) of two (B, C, H, W) images in [0, ``data_range``] → scalar tensor
    in [-1, 1], differentiable (:class:`losses.SSIMLoss` is ``1 − ssim``).

    An 11×11 Gaussian window (σ = 1.5); means and (co)variances are Gaussian-weighted local
    statistics over the *valid* part of the image (no padding), as in Wang et al.'s reference code
    and scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``; the SSIM map is averaged over pixels, channels and batch. Images
    smaller than the window use a window as large as the image allows (odd size, same σ).
    """
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
