"""Explicit point-spread functions: FFT convolution, spatially varying blur, closed-form kernel estimate.

Conventions (the same as the synthetic data, :mod:`data.synthetic`):

* A PSF is an odd ``S × S`` array, non-negative, summing to 1; its centre is the pixel
  ``(S // 2, S // 2)``: a PSF that is 1 there and 0 elsewhere (a centred delta) leaves an image
  unchanged.
* Blurring is a true convolution, ``y[n] = Σ_m x[n − m] · k[m + S // 2]``, which is
  ``torch.nn.functional.conv2d`` with the *flipped* PSF (conv2d is a cross-correlation).
* Border: outside the image, x is extended by reflection (edge replication for images smaller
  than the PSF's radius), so the output has the input's size. The synthetic pairs instead keep
  only the pixels whose whole footprint lies inside a larger sharp image (no border at all); the
  two agree everywhere but within ``S // 2`` pixels of the border.
* A spatially varying blur holds one PSF per ``cell × cell`` block (:data:`CELL`, 128 px, the code
  grid): pixel p is blurred as ``Σ_c w_c(p) · (x ⊛ k_c)(p)`` where the weights ``w_c`` are the
  bilinear interpolation weights of the cell grid (``align_corners=False``, clamped at the border):
  non-negative, continuous, summing to 1 everywhere. A uniform PSF map is therefore exactly one
  convolution, and the blur varies smoothly from cell to cell, with no seam.

All work is done with FFTs, so the cost does not depend on the PSF size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.blocks import safe_reflect_pad
from utils.windows import raised_cosine

CELL = 128  # pixels per code cell (the kernel-code grid of KernelSpace)


def _check_psf(psf: torch.Tensor) -> int:
    s = psf.shape[-1]
    if psf.shape[-2] != s or s % 2 == 0:
        raise ValueError(f"PSF must be square with an odd side, got {tuple(psf.shape[-2:])}")
    return s // 2


def _fft_valid(patches: torch.Tensor, psf: torch.Tensor) -> torch.Tensor:
    """Valid true convolution of patches (..., L, L') with PSFs (..., S, S) → (..., L−S+1, L'−S+1)."""
    size = patches.shape[-2:]
    s = psf.shape[-1]
    spectrum = torch.fft.rfft2(patches, s=size) * torch.fft.rfft2(psf, s=size)
    return torch.fft.irfft2(spectrum, s=size)[..., s - 1:, s - 1:]


def convolve(image: torch.Tensor, psf: torch.Tensor) -> torch.Tensor:
    """Blur ``image`` (B, C, H, W) with one PSF per image: ``psf`` (B or 1, 1 or C, S, S) → (B, C, H, W).

    True convolution with the reflect border of the module docstring, by FFT.
    """
    r = _check_psf(psf)
    if psf.dim() != 4:
        raise ValueError(f"psf must have shape (B, 1 or C, S, S), got {tuple(psf.shape)}")
    padded = safe_reflect_pad(image, r)
    return _fft_valid(padded, psf.to(image.dtype))


def cell_weights(cells: int, length: int, cell: int = CELL) -> torch.Tensor:
    """1-D partition of unity: (cells, length) bilinear weights of ``cells`` cell centres at every pixel.

    Cells are ``cell`` pixels wide from pixel 0 (the last one may be cut by ``length``).
    Cell i is centred at ``(i + 0.5) · cell − 0.5``; the weights fall linearly to 0 one cell away and
    are clamped to 1 beyond the first and last centres. Columns sum to 1.
    """
    if length > cells * cell:
        raise ValueError(f"{cells} cells of {cell} px cannot cover {length} px")
    eye = torch.eye(cells)[None]  # (1, cells, cells): channel i is the indicator of cell i
    return F.interpolate(eye, size=cells * cell, mode="linear", align_corners=False)[0, :, :length]


def blur_cells(image: torch.Tensor, psfs: torch.Tensor, cell: int = CELL) -> torch.Tensor:
    """Spatially varying blur: ``image`` (B, C, H, W), ``psfs`` (B or 1, gh, gw, S, S) → (B, C, H, W).

    One PSF per ``cell × cell`` block, blended by the partition of unity of the module docstring;
    ``(gh, gw)`` must be ``(ceil(H / cell), ceil(W / cell))``. A 1×1 map is one :func:`convolve`.
    The work is done per cell on a window of two cells plus the PSF's radius, so memory and time
    grow with the number of pixels, not with its square.
    """
    b, c, h, w = image.shape
    gh, gw = psfs.shape[1:3]
    if (gh, gw) != (math.ceil(h / cell), math.ceil(w / cell)):
        raise ValueError(f"PSF map {gh}×{gw} does not match a {h}×{w} image with {cell}-px cells")
    r = _check_psf(psfs)
    psfs = psfs.to(image.dtype)
    if gh == 1 and gw == 1:
        return convolve(image, psfs[:, 0, 0, None])
    half = cell // 2
    ph, pw = gh * cell - h, gw * cell - w
    # windows of 2 cells (+ PSF radius) starting half a cell before each cell
    padded = safe_reflect_pad(image, (half + r, half + r + pw, half + r, half + r + ph))
    window = 2 * cell + 2 * r
    patches = padded.unfold(2, window, cell).unfold(3, window, cell)  # (B, C, gh, gw, L, L)
    blurred = _fft_valid(patches, psfs[:, None])  # (B, C, gh, gw, 2cell, 2cell)
    wy = F.pad(cell_weights(gh, gh * cell, cell), (half, half)).to(image)  # (gh, gh·cell + cell)
    wx = F.pad(cell_weights(gw, gw * cell, cell), (half, half)).to(image)
    wy = wy.unfold(1, 2 * cell, cell).diagonal(dim1=0, dim2=1).T  # (gh, 2cell): cell i's window
    wx = wx.unfold(1, 2 * cell, cell).diagonal(dim1=0, dim2=1).T
    blurred = blurred * wy[:, None, :, None] * wx[None, :, None, :]
    cols = blurred.permute(0, 1, 4, 5, 2, 3).reshape(b, c * 4 * cell * cell, gh * gw)
    out = F.fold(cols, output_size=((gh + 1) * cell, (gw + 1) * cell), kernel_size=2 * cell, stride=cell)
    return out.view(b, c, (gh + 1) * cell, (gw + 1) * cell)[..., half:half + h, half:half + w]


def forward_differences(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences of (..., H, W), zero in the last row/column: two (..., H, W) maps."""
    dx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1))
    dy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    return dx, dy


def border_taper(
    shape: tuple[int, int], ramp: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(H, W) window that rises from 0 to 1 over ``ramp`` pixels at every border (raised cosine), 1 inside."""

    def taper(length: int) -> torch.Tensor:
        t = torch.ones(length, device=device, dtype=dtype)
        n = min(ramp, length // 2)
        if n > 0:
            up = raised_cosine(n, device=device, dtype=dtype)
            t[:n] = up
            t[length - n:] = up.flip(0)
        return t

    return taper(shape[0])[:, None] * taper(shape[1])[None, :]


def project_psf(kernel: torch.Tensor, threshold: float = 0.05) -> torch.Tensor:
    """Project kernels (..., S, S) onto PSFs: negatives and values below ``threshold`` × the maximum
    set to 0, then normalised to sum 1 (an all-zero kernel becomes a centred delta)."""
    k = kernel.clamp_min(0)
    peak = k.amax(dim=(-2, -1), keepdim=True)
    k = torch.where(k >= threshold * peak, k, torch.zeros_like(k))
    total = k.sum(dim=(-2, -1), keepdim=True)
    delta = torch.zeros_like(k)
    delta[..., k.shape[-2] // 2, k.shape[-1] // 2] = 1
    return torch.where(total > 0, k / total.clamp_min(1e-12), delta)


def gradient_spectra(sharp: torch.Tensor, blur: torch.Tensor, weight: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Of the forward differences of sharp and blur (..., H, W), each times ``weight`` (H, W): the summed
    cross-spectrum ``Σ_d conj(∂_d X) ∂_d Y`` and power spectrum ``Σ_d |∂_d X|²`` (rfft2, (..., H, W//2 + 1))."""
    num = 0
    den = 0
    for gx, gy in zip(forward_differences(sharp), forward_differences(blur)):
        fx = torch.fft.rfft2(gx * weight)
        fy = torch.fft.rfft2(gy * weight)
        num = num + fx.conj() * fy
        den = den + fx.real.square() + fx.imag.square()
    return num, den


def least_squares_kernel(
    sharp: torch.Tensor,
    blur: torch.Tensor,
    size: int,
    reg: float = 1e-2,
    weight: torch.Tensor | None = None,
    project: bool = True,
    prior: torch.Tensor | None = None,
    prior_energy: torch.Tensor | None = None,
) -> torch.Tensor:
    """Closed-form kernel between a sharp and a blurry image: (B, C, H, W) each → (B, S, S).

    The Tikhonov-regularised least-squares kernel in the gradient domain,
    ``K = (Σ_d conj(∂_d X) ∂_d Y + λ P) / (Σ_d |∂_d X|² + λ)`` with ``λ = reg · E``, computed by FFT on
    the gray images after both gradient maps are multiplied by ``weight`` (H, W) (default: a
    raised-cosine taper over 2·S pixels at the border, which keeps the FFT's wrap-around out of the
    estimate). ``P`` is the spectrum of ``prior`` (B, S, S), the kernel that the estimate falls back
    to where the image has no texture (default 0: plain Tikhonov); ``E`` is ``prior_energy`` (B,)
    or, by default, the mean of ``Σ_d |∂_d X|²``. The kernel is cut to ``size × size`` around its
    centre and, with ``project``, projected onto PSFs (:func:`project_psf`).
    """
    if size % 2 == 0:
        raise ValueError(f"kernel size must be odd, got {size}")
    if sharp.shape != blur.shape:
        raise ValueError(f"sharp {tuple(sharp.shape)} and blur {tuple(blur.shape)} must have one shape")
    h, w = sharp.shape[-2:]
    if weight is None:
        weight = border_taper((h, w), 2 * size, sharp.device, sharp.dtype)
    num, den = gradient_spectra(sharp.float().mean(dim=1), blur.float().mean(dim=1), weight)
    energy = den.mean(dim=(-2, -1), keepdim=True) if prior_energy is None else prior_energy.view(-1, 1, 1)
    r = size // 2
    if prior is not None:
        frame = F.pad(prior.float(), (0, max(0, w - size), 0, max(0, h - size)))[..., :h, :w]
        num = num + reg * energy * torch.fft.rfft2(torch.roll(frame, shifts=(-r, -r), dims=(-2, -1)))
    kernel = torch.fft.irfft2(num * (den + reg * energy + 1e-12).reciprocal(), s=(h, w))
    kernel = torch.roll(kernel, shifts=(r, r), dims=(-2, -1))
    if h < size or w < size:  # tiny images: the kernel is cut to what the image holds
        kernel = F.pad(kernel, (0, max(0, size - w), 0, max(0, size - h)))
    kernel = kernel[..., :size, :size]
    return project_psf(kernel) if project else kernel


def least_squares_kernel_cells(
    sharp: torch.Tensor, blur: torch.Tensor, size: int, reg: float = 1e-2, cell: int = CELL
) -> torch.Tensor:
    """Closed-form kernel per code cell: (B, C, H, W) pair → (B, gh, gw, S, S) PSFs.

    First the kernel of the whole image; then each cell's kernel on the image weighted by that
    cell's partition-of-unity weight (:func:`cell_weights`, support two cells wide) times the border
    taper of :func:`least_squares_kernel`, regularised towards the whole image's kernel with the
    strength the image's average texture would give the cell: a cell without texture (sky, a wall)
    falls back to the global blur instead of to noise. A 1×1 grid is one :func:`least_squares_kernel`.
    """
    b, _, h, w = sharp.shape
    gh, gw = math.ceil(h / cell), math.ceil(w / cell)
    taper = border_taper((h, w), 2 * size, sharp.device)
    whole = least_squares_kernel(sharp, blur, size, reg, taper)
    if gh == 1 and gw == 1:
        return whole[:, None, None]
    gray = sharp.float().mean(dim=1)
    density = sum(g.mul(taper).square().sum(dim=(-2, -1)) for g in forward_differences(gray)) / taper.square().sum()
    wy = cell_weights(gh, h, cell).to(taper)
    wx = cell_weights(gw, w, cell).to(taper)
    out = torch.empty(b, gh, gw, size, size, device=sharp.device)
    for i in range(gh):
        rows = torch.nonzero(wy[i] > 0)[:, 0]
        top, bottom = int(rows[0]), int(rows[-1]) + 1
        for j in range(gw):
            cols = torch.nonzero(wx[j] > 0)[:, 0]
            left, right = int(cols[0]), int(cols[-1]) + 1
            weight = (wy[i, top:bottom, None] * wx[j, None, left:right]) * taper[top:bottom, left:right]
            out[:, i, j] = least_squares_kernel(sharp[..., top:bottom, left:right],
                                                blur[..., top:bottom, left:right], size, reg, weight,
                                                prior=whole, prior_energy=density * weight.square().sum())
    return out
