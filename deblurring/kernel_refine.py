"""The last kernel step: the PSF re-fitted on its own support, without a Tikhonov pull.

The closed-form kernel step (:func:`models.psf_ops.least_squares_kernel`) needs a Tikhonov term over
the whole kernel frame, which widens thin camera-shake streaks. Once the support is known, the PSF is
re-fitted on it alone (grown by ``grow`` px): least squares on the gradients of the deconvolved image
against those of the blurry one, the PSF non-negative (entries that turn negative leave the support),
with a weak hyper-Laplacian weight ``gamma``·Σ|k|^p by iteratively reweighted least squares that
favours a few strong entries over many weak ones. The normal equations are solved by conjugate
gradients on a small grid: the gradients' auto- and cross-correlation are measured once, so the cost
grows with the kernel, not with the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.psf_ops import border_taper, gradient_spectra


def _correlations(sharp: torch.Tensor, blurry: torch.Tensor, size: int, weight: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Of the weighted gradients of sharp and blurry (H, W): the autocorrelation of the sharp ones at lags
    below ``size`` ((2·size − 1)², lag 0 at the centre) and their cross-correlation with the blurry ones
    on the kernel frame ((size, size), the PSF's centre at the centre)."""
    h, w = sharp.shape[-2:]
    num, den = gradient_spectra(sharp.float(), blurry.float(), weight)
    r, lag = size // 2, size - 1
    auto = torch.roll(torch.fft.irfft2(den, s=(h, w)), (lag, lag), (-2, -1))[: 2 * lag + 1, : 2 * lag + 1]
    cross = torch.roll(torch.fft.irfft2(num, s=(h, w)), (r, r), (-2, -1))[:size, :size]
    return auto, cross


def _conjugate_gradients(auto_f: torch.Tensor, reweight: torch.Tensor, support: torch.Tensor, rhs: torch.Tensor,
                         start: torch.Tensor, iterations: int) -> torch.Tensor:
    """``iterations`` conjugate-gradient steps on (A + diag(reweight)) v = rhs over the ``support`` (S, S),
    A v the correlation of v with the gradients' autocorrelation (symmetric, so a convolution: by FFT on a
    (3S − 2)² grid, which holds it without wrapping; ``auto_f`` its rfft2 there) → v (S, S)."""
    size = start.shape[-1]
    grid = (3 * size - 2,) * 2

    def normal(v: torch.Tensor) -> torch.Tensor:
        full = torch.fft.irfft2(torch.fft.rfft2(v, s=grid) * auto_f, s=grid)
        return (full[size - 1:2 * size - 1, size - 1:2 * size - 1] + reweight * v) * support

    v = start
    residual = rhs - normal(v)
    direction, rs = residual.clone(), float(residual.square().sum())
    first = rs
    for _ in range(iterations):
        if rs <= 1e-12 * first:
            break
        step = normal(direction)
        alpha = rs / max(float((direction * step).sum()), 1e-30)
        v = v + alpha * direction
        residual = residual - alpha * step
        rs, previous = float(residual.square().sum()), rs
        direction = residual + rs / previous * direction
    return v


def refine_on_support(
    sharp: torch.Tensor, blurry: torch.Tensor, kernel: torch.Tensor, weight: torch.Tensor | None = None, *,
    grow: int = 1, rounds: int = 4, p: float = 0.5, gamma: float = 0.1, iterations: int = 30,
) -> torch.Tensor:
    """The PSF (S, S) re-fitted on its support grown by ``grow`` px: sharp and blurry (H, W) (a
    deconvolution and the input), ``weight`` (H, W) on their gradients (None: a border taper) →
    (S, S), non-negative, summing to 1. ``rounds`` reweightings of ``gamma``·Σ|k|^p (relative to the
    gradients' energy per entry), each ``iterations`` conjugate-gradient steps."""
    size = kernel.shape[-1]
    if weight is None:
        weight = border_taper(sharp.shape[-2:], 2 * size, sharp.device)
    auto, cross = (c.double() for c in _correlations(sharp, blurry, size, weight))  # CG in float64: well-defined
    energy = float(auto[size - 1, size - 1]) / size**2  # the gradients' energy per kernel entry
    auto_f = torch.fft.rfft2(auto, s=(3 * size - 2,) * 2)  # once: every reweighting solves with it
    support = F.max_pool2d((kernel > 0).float()[None, None], 2 * grow + 1, 1, grow)[0, 0] > 0
    k = kernel.double().clone()
    for _ in range(rounds):
        reweight = gamma * energy * (k.abs() + 1e-3 * float(k.max())).pow(p - 2)
        k = _conjugate_gradients(auto_f, reweight, support, cross * support, k * support, iterations).clamp_min(0)
        support = support & (k > 0)
        if float(k.sum()) <= 0:
            return kernel
        k = k / k.sum()
    return k.to(kernel.dtype)
