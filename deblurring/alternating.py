"""Fast blind deblurring: coarse-to-fine alternation of a sparse-gradient image step and a
closed-form kernel step, then hyper-Laplacian non-blind deconvolution.

The classical MAP scheme of the fast blind methods (Cho & Lee 2009; Xu, Zheng & Jia 2013; Pan et al.
2014), written for the explicit-PSF kernel space:

0. Window. The blur is measured on the gray image (the channel mean), or on its window of at most
   ``estimate_side``² px with the most structure (:func:`estimation_window`): a 12-megapixel photo
   costs one 1024² estimate plus one full-size deconvolution.
1. Pyramid. The blurry image y is shrunk by ``scale_ratio`` per level until
   the PSF is ~3 px; the PSF starts as a small blob at the coarsest level and is upsampled (and
   re-projected) from level to level.
2. At each level, ``iterations`` times:
   x-step — ``x = argmin ‖k ⊛ x − y‖² + λ ‖∇x‖₀`` by half-quadratic splitting (FFT solves, hard
   thresholding of the gradients). The L0 prior keeps only the strong edges of x and flattens the
   rest; that "unnatural" sparse image is what the kernel step needs.
   k-step — ``k = argmin ‖∇x ⊛ k − ∇y‖² + γ ‖k‖²`` in closed form
   (:func:`models.psf_ops.least_squares_kernel`), then projected onto PSFs: non-negative, values
   under ``kernel_threshold`` × the peak removed, isolated specks removed, normalised, recentred
   on its centre of mass; optionally onto a learned kernel space.
   λ decays by ``l0_decay`` per iteration down to ``l0_min``.
3. Optionally (``cells``, spatially varying blur), the same estimate is run on every 128-px code
   cell with half a cell around it; a cell keeps its own PSF where it explains its window better
   (lower L0 energy) than the whole image's PSF.
4. The sharp image is the non-blind hyper-Laplacian deconvolution of the full-resolution input,
   every channel, with the PSF (map) found (:mod:`deblurring.nonblind`; an L1 term on the second
   differences keeps shading smooth); its data weight follows the noise level estimated from the input.
   The PSF is first re-estimated from that deconvolution
   (``polish``). It is kept only where it explains the input better than no blur at
   all (a delta: a sharp or barely blurred photo is denoised, not sharpened by a wrong kernel).
   Registration: a blind estimate is defined up to a translation (k moved by −d, x by +d); the PSF's
   centre of mass is put at its centre to sub-pixel precision and the sharp image moved by the same
   offset (:func:`centre_subpixel`), so that it is registered with the input — the convention of the
   synthetic data, which matters for PSNR (σ = 0.01 photos +2.98 → +3.53 dB; mild 9-px blur −0.96 →
   +1.23 dB).

Why not the no-blur solution. Under a natural-image prior, MAP over (x, k) jointly prefers the
blurry image and a delta kernel (Levin et al. 2009), because a blurry image has *smaller* gradients
than the sharp one. Three things steer away from it here: the L0 x-step (its cost counts edges,
not their size, and a blurry image has many small non-zero gradients, so the flattened edge map
is cheaper than the blurry one; the delta is not a fixed point), a large λ at the start (only the
strongest edges survive, which is where the blur is best measured), and the coarse-to-fine
pyramid. Measured on Levin (bench/levin.py): see the module's README entry in the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from deblurring.kernel_refine import refine_on_support
from deblurring.nonblind import (
    adjoint_gradients,
    circular_gradients,
    clipped_mask,
    deconvolve,
    deconvolve_cells,
    deconvolve_tiled,
    estimate_noise,
    extend_periodic,
    fft_size,
    fill_saturated,
    gradient_otfs,
    psf_to_otf,
    saturated_frame,
    shift_image,
)
from deblurring.options import AlternatingOptions
from deblurring.result import DeblurResult
from models.psf_ops import CELL, blur_cells, border_taper, convolve, forward_differences, least_squares_kernel
from utils.threads import parallel_map, torch_threads


def l0_deblur(
    blurry: torch.Tensor,  # (B, C, h, w), values in [0, 1]
    psf: torch.Tensor,  # (S, S)
    weight: float,
    *,
    beta_max: float = 1e5,
    beta_rate: float = 2.0,
    margin: int | None = None,
    clipped: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sparse-gradient image step: ``argmin_x ‖k ⊛ x − y‖² + weight · ‖∇x‖₀`` → (B, C, h, w).

    Half-quadratic splitting (Xu et al. 2011): gradients g with a penalty β‖g − ∇x‖², β from
    2·weight by ``beta_rate`` up to ``beta_max``; the g-step keeps ∇x where |∇x|² ≥ weight / β
    and zeroes it elsewhere, the x-step is one FFT division. Borders as in
    :func:`deblurring.nonblind.deconvolve` (periodic extension by ``margin``, default S).
    ``clipped`` (B, 1, h, w) bool: saturated pixels, whose true value is at least the recorded one;
    there the data term only pulls ``k ⊛ x`` up to y (the data replaced by ``max(k ⊛ x, y)`` before
    each x-step), so x is not clamped and a light keeps the brightness its blur says it has.
    """
    s = psf.shape[-1]
    b, _, h, w = blurry.shape
    margin = s if margin is None else margin
    size = (fft_size(h + 2 * margin), fft_size(w + 2 * margin))
    y = extend_periodic(blurry.float(), margin, size)
    otf = psf_to_otf(psf.float(), size)
    gx, gy = gradient_otfs(size, y.device)
    grad_energy = gx.abs().square() + gy.abs().square()
    spectrum = torch.fft.rfft2(y)  # of the current estimate x
    numerator = otf.conj() * spectrum
    kernel_energy = otf.abs().square()
    saturated = saturated_frame(clipped, b, size, margin, y.device)
    x = y
    beta = 2 * weight
    while beta < beta_max:
        if saturated is not None and beta > 2 * weight:
            reblurred = torch.fft.irfft2(otf * spectrum, s=size)
            numerator = otf.conj() * torch.fft.rfft2(fill_saturated(y, reblurred, saturated))
        dx, dy = circular_gradients(x)
        keep = (dx.square() + dy.square()) >= weight / beta
        rhs = numerator + beta * torch.fft.rfft2(adjoint_gradients(dx * keep, dy * keep))
        # × a real reciprocal: the same bits as dividing the complex spectrum by the real denominator
        # (torch divides by scaling with 1/c), without promoting it to complex: 4× faster
        spectrum = rhs * (kernel_energy + beta * grad_energy).reciprocal()
        x = torch.fft.irfft2(spectrum, s=size)
        beta *= beta_rate
    return x[..., margin:margin + h, margin:margin + w]


def saturated_at(clipped: torch.Tensor | None, shape: Sequence[int], reach: int = 1) -> torch.Tensor | None:
    """Full-size saturated pixels clipped (1, 1, H, W) bool → those of an image resized to ``shape``
    (h, w): a pixel is saturated where any full-size pixel under it is, grown by ``reach`` px (the
    resize's and a prefilter's spread); None when nothing is clipped."""
    if clipped is None or not bool(clipped.any()):
        return None
    bad = clipped.float()
    if tuple(shape) != tuple(clipped.shape[-2:]):
        bad = F.interpolate(bad, size=tuple(shape), mode="area")
    if reach > 0:
        bad = F.max_pool2d(bad, 2 * reach + 1, 1, reach)
    return bad > 0


def edge_usefulness(blurry: torch.Tensor, window: int, eps: float = 0.5 / 255) -> torch.Tensor:
    """Xu & Jia's (2010) r-map of a blurry gray image (1, 1, h, w) → (h, w) in [0, 1].

    ``r = |Σ_N ∇y| / (Σ_N |∇y| + eps)`` over a ``window`` × ``window`` neighbourhood N: close to 1
    where the gradients nearby point one way (an edge wider than the blur), close to 0 in texture
    and fine detail, whose gradients cancel and which mislead the kernel estimate.
    """
    gx, gy = forward_differences(blurry)
    pad = window // 2

    def box(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(t, (pad,) * 4, mode="replicate"), window, 1)

    net = torch.sqrt(box(gx).square() + box(gy).square())
    total = box(torch.sqrt(gx.square() + gy.square()))
    return (net / (total + eps / window**2))[0, 0]


def _remove_specks(kernel: torch.Tensor, min_mass: float) -> torch.Tensor:
    """Zero the 8-connected components of the support of (S, S) that carry < ``min_mass`` of its sum."""
    support = kernel > 0
    if not bool(support.any()):
        return kernel
    s = kernel.shape[-1]
    labels = torch.where(support, torch.arange(1, s * s + 1, dtype=torch.float32).view(s, s), torch.zeros(()))
    while True:  # propagate the largest label through each component (max-pooling, masked)
        grown = F.max_pool2d(labels[None, None], 3, 1, 1)[0, 0] * support
        if torch.equal(grown, labels):
            break
        labels = grown
    total = kernel.sum()
    out = kernel.clone()
    for label in torch.unique(labels[support]):
        part = labels == label
        if float(kernel[part].sum()) < min_mass * float(total):
            out[part] = 0
    return out


def _centre(kernel: torch.Tensor) -> torch.Tensor:
    """Shift an (S, S) PSF by whole pixels so that its centre of mass is nearest to the centre."""
    s = kernel.shape[-1]
    if float(kernel.sum()) <= 0:
        return kernel
    cy, cx = _centre_of_mass(kernel)
    dy, dx = int(round(-cy)), int(round(-cx))
    if dy == 0 and dx == 0:
        return kernel
    padded = F.pad(kernel, (s, s, s, s))
    return torch.roll(padded, (dy, dx), (0, 1))[s:2 * s, s:2 * s]


def _centre_of_mass(kernel: torch.Tensor) -> tuple[float, float]:
    """(dy, dx) of an (S, S) PSF's centre of mass from pixel (S // 2, S // 2)."""
    s = kernel.shape[-1]
    k64 = kernel.double()
    total = k64.sum()
    idx = torch.arange(s, dtype=torch.float64)
    return float((k64.sum(dim=1) * idx).sum() / total) - s // 2, float((k64.sum(dim=0) * idx).sum() / total) - s // 2


def _move_psf(kernel: torch.Tensor, dy: float, dx: float) -> torch.Tensor:
    """(S, S) PSF moved by (dy, dx) px by a Fourier phase ramp (band-limited: not widened), negatives
    clipped (and, for a move under a pixel, the ringing farther than 1 px from the support), normalised."""
    s = kernel.shape[-1]
    pad = s // 2  # zero border: the move's ringing does not wrap around onto the PSF
    size = s + 2 * pad
    fy = torch.fft.fftfreq(size, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(size, dtype=torch.float64)[None, :]
    ramp = torch.exp(-2j * math.pi * (fy * dy + fx * dx))
    moved = torch.fft.irfft2(torch.fft.rfft2(F.pad(kernel.double(), (pad,) * 4)) * ramp, s=(size, size))
    out = moved[pad:pad + s, pad:pad + s].clamp_min(0)
    if max(abs(dy), abs(dx)) <= 1:  # the ringing away from the support: a move under a pixel stays within 1 px of it
        near = F.max_pool2d((kernel > 0).double()[None, None], 3, 1, 1)[0, 0] > 0
        out = torch.where(near, out, torch.zeros_like(out))
    return (out / out.sum().clamp_min(1e-12)).to(kernel.dtype)


def centre_subpixel(kernel: torch.Tensor, rounds: int = 4) -> tuple[torch.Tensor, tuple[float, float]]:
    """An (S, S) PSF whose centre of mass is within a pixel of S // 2 → (the PSF moved so that its
    centre of mass is there, the offset (dy, dx) it had).

    Blind deconvolution cannot tell a sharp image from its translate: ``k ⊛ x`` = ``k' ⊛ x'`` for
    k moved by −d and x by +d. The convention here (the synthetic data's too) is the PSF with its
    centre of mass at the centre, so the sharp image is registered with the blurry one; an image
    deconvolved with ``kernel`` is moved by the offset (:func:`deblurring.nonblind.shift_image`).
    The PSF is moved by a phase ramp, which keeps it sharp; clipping the ramp's small negative
    lobes moves the centre again a little, hence a few ``rounds`` (residual < 0.01 px).
    """
    if float(kernel.sum()) <= 0:
        return kernel, (0.0, 0.0)
    offset = _centre_of_mass(kernel)
    out = kernel
    for _ in range(rounds):
        dy, dx = _centre_of_mass(out)
        out = _move_psf(out, -dy, -dx)
    return out, offset


def project_kernel(kernel: torch.Tensor, threshold: float = 0.05, min_mass: float = 0.05) -> torch.Tensor:
    """Project an estimate (S, S) onto PSFs: negatives and values < ``threshold`` × peak removed,
    connected pieces carrying < ``min_mass`` of the sum removed, recentred, normalised → (S, S)."""
    k = kernel.clamp_min(0)
    k = torch.where(k >= threshold * k.max(), k, torch.zeros_like(k))
    if min_mass > 0:
        k = _remove_specks(k, min_mass)
    k = _centre(k)
    total = k.sum()
    if float(total) <= 0:
        k = torch.zeros_like(k)
        k[k.shape[0] // 2, k.shape[1] // 2] = 1
        return k
    return k / total


def resize_kernel(kernel: torch.Tensor, size: int, factor: float) -> torch.Tensor:
    """Resample an (S, S) PSF for an image magnified by ``factor`` → (size, size) PSF.

    The new PSF at offset u from its centre is the old one at u / ``factor`` (bilinear; zero outside),
    clamped at 0 and normalised: the blur's extent scales exactly with the image.
    """
    s = kernel.shape[-1]
    offsets = (torch.arange(size, dtype=torch.float32) - size // 2) / factor
    coords = (offsets + s // 2) / (s - 1) * 2 - 1 if s > 1 else offsets * 0
    grid = torch.stack(torch.meshgrid(coords, coords, indexing="ij")[::-1], dim=-1)[None]  # (x, y) order
    k = F.grid_sample(kernel[None, None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    k = k[0, 0].clamp_min(0)
    return k / k.sum().clamp_min(1e-12)


def _gaussian_psf(sigma: float) -> torch.Tensor:
    """An isotropic Gaussian PSF of standard deviation ``sigma`` px, (2r + 1)² with r = ⌈3σ⌉, summing to 1."""
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    g = torch.exp(-t.square() / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def _gaussian(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of (1, 1, H, W) with standard deviation ``sigma`` px (reflect border)."""
    return convolve(image, _gaussian_psf(sigma)[None, None])


MIN_PREFILTER = 0.2  # px: a narrower Gaussian is a no-op at 8 bits


def unfiltered(psf: torch.Tensor, sigma: float, threshold: float = 0.05, min_mass: float = 0.05,
               steps: int = 30) -> torch.Tensor:
    """The PSF k with ``k ⊛ G_σ ≈ psf`` (S, S) → (S, S), projected (:func:`project_kernel`): a kernel
    estimated on an image prefiltered by the Gaussian G_σ is the true one blurred by G_σ (the L0
    x-step's edges stay sharp), which turned a 5-px blur into a 13-px blob. Richardson–Lucy
    iterations on the PSF (non-negative, sum 1); the PSF itself for σ < MIN_PREFILTER."""
    if sigma < MIN_PREFILTER:
        return psf
    g = _gaussian_psf(sigma)[None, None]  # symmetric: its own adjoint
    r = g.shape[-1] // 2
    target = psf.float()[None, None].clamp_min(0)
    k = target.clone() + 1e-6
    for _ in range(steps):
        ratio = target / F.conv2d(k, g, padding=r).clamp_min(1e-8)
        k = k * F.conv2d(ratio, g, padding=r)
    return project_kernel(k[0, 0] / k.sum(), threshold, min_mass)


def prefiltered(psf: torch.Tensor, sigma: float) -> torch.Tensor:
    """The PSF (S, S) that relates a sharp image to the blurry one filtered by a Gaussian of ``sigma``
    px: ``psf ⊛ G_σ``, (S + 2r)² → the PSF itself for σ < MIN_PREFILTER.

    The kernel estimate runs on the prefiltered image (less noise), and the sharp-edged L0 image
    makes the kernel found there absorb the filter (:func:`unfiltered` takes it out again); the
    energies of such PSFs on the prefiltered image are those of ``psf ⊛ G_σ``."""
    if sigma < MIN_PREFILTER:
        return psf
    g = _gaussian_psf(sigma)
    r = g.shape[-1] // 2
    return F.conv2d(F.pad(psf[None, None].float(), (2 * r,) * 4), g.flip((0, 1))[None, None])[0, 0]


def _start_kernel(size: int) -> torch.Tensor:
    """The coarsest level's start: a small isotropic blob (not a delta, which is a fixed point)."""
    r = torch.arange(size, dtype=torch.float32) - size // 2
    blob = torch.exp(-(r[:, None].square() + r[None, :].square()) / 2.0)
    return blob / blob.sum()


def _pyramid(height: int, width: int, psf_size: int, ratio: float, min_kernel: int) -> list[tuple[float, int]]:
    """(scale, kernel size) per level, coarse to fine; the last is (1.0, psf_size)."""
    levels = 1 + max(0, math.ceil(math.log(min_kernel / psf_size) / math.log(ratio)))
    plan = []
    for i in range(levels):
        scale = ratio ** (levels - 1 - i)
        k = max(min_kernel, int(round(psf_size * scale)))
        k += 1 - k % 2
        if min(height, width) * scale < 2 * k:  # too small to say anything about this kernel
            continue
        plan.append((scale, min(k, psf_size)))
    if not plan or plan[-1][0] != 1.0:
        plan.append((1.0, psf_size))
    return plan


def _resize_image(image: torch.Tensor, scale: float) -> torch.Tensor:
    if scale == 1.0:
        return image
    h, w = image.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


def resize_support(psfs: torch.Tensor, size: int) -> torch.Tensor:
    """PSFs (..., S, S) zero-padded or cut about their centre to (..., size, size) (both odd)."""
    s = psfs.shape[-1]
    if size >= s:
        return F.pad(psfs, ((size - s) // 2,) * 4)
    lo = (s - size) // 2
    return psfs[..., lo:lo + size, lo:lo + size]


def _space_device(kernel_space: Any) -> torch.device:
    """Where a kernel space's weights are (the CPU for one without parameters)."""
    try:
        return next(iter(kernel_space.parameters())).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def code_of_psfs(psfs: torch.Tensor, kernel_space: Any) -> torch.Tensor:
    """PSFs (1, gh, gw, S, S) → the PSF-type kernel space's code (1, kernel_dim, gh, gw) on the CPU
    (the PSFs zero-padded or cut about their centre to the model's PSF size first)."""
    with torch.no_grad():
        k = resize_support(psfs, int(kernel_space.psf_size)).to(_space_device(kernel_space))
        return kernel_space.code_of_psf(k).float().cpu()


def _project_to_space(psfs: torch.Tensor, kernel_space: Any) -> torch.Tensor:
    """PSFs (1, gh, gw, S, S) → their projection ``ks.psf_of_code(ks.code_of_psf(·))`` at the same size."""
    with torch.no_grad():
        code = code_of_psfs(psfs, kernel_space).to(_space_device(kernel_space))
        out = resize_support(kernel_space.psf_of_code(code).float().cpu(), psfs.shape[-1])
    out = out.clamp_min(0)
    return out / out.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)


def l0_energy(
    blurry: torch.Tensor, psf: torch.Tensor, weight: float = 1e-3, *, crop: int | None = None,
    clipped: torch.Tensor | None = None, prefilter: float = 0.0, reach: int | None = None,
) -> float:
    """The sparse-prior MAP energy of a PSF for a gray blurry image (1, 1, H, W):
    ``‖k ⊛ x − y‖² + weight · #{∇x ≠ 0}`` at ``x = l0_deblur(y, k, weight)``, the squared error summed
    over the pixels at least ``crop`` (default S // 2) from the border → a number. With ``clipped``
    (1, 1, H, W) bool: where the pixels within ``reach`` (default: the PSF's side) of a clipped one are few
    (:func:`trusted_pixels`), neither their error nor the edges of x there count; elsewhere a clipped
    pixel is a lower bound (in the x-step too: only a shortfall of ``k ⊛ x`` is an error).

    Lower is a better explanation of y. Unlike a natural-image prior, this energy does not prefer
    the no-blur answer (a delta) to the true blur; it ranks the candidates of
    :func:`deblur_alternating`. ``prefilter``: ``blurry`` is the blurry image filtered by a Gaussian
    of that σ (px), so the forward model is :func:`prefiltered` ``(psf, prefilter)``.
    """
    psf = prefiltered(psf, prefilter)
    c = psf.shape[-1] // 2 if crop is None else crop
    keep = None if clipped is None else trusted_pixels(clipped, 1.0, reach or psf.shape[-1])
    grow = SATURATION_REACH if prefilter > 0 else 0
    sat = None if keep is not None else saturated_at(clipped, blurry.shape[-2:], grow)
    x = l0_deblur(blurry, psf, weight, clipped=sat)
    err = convolve(x, psf[None, None].to(x)) - blurry.float()
    if sat is not None:  # a clipped pixel is a lower bound: only a shortfall is an error
        err = torch.where(sat, err.clamp_max(0), err)
    dx, dy = forward_differences(x)
    edges = (dx.abs() > 1e-3).float() + (dy.abs() > 1e-3).float()
    if keep is not None:  # few lights: neither the error nor the edges of x where they reach (trusted_pixels)
        err, edges = err * keep, edges * keep
    err = err[..., c:x.shape[-2] - c, c:x.shape[-1] - c]
    return float(err.square().sum() + weight * edges.sum())


def support_radius(kernel: torch.Tensor) -> int:
    """Half-side of the smallest centred square holding the support (values > 0) of an (S, S) PSF."""
    s = kernel.shape[-1]
    rows, cols = torch.nonzero(kernel > 0, as_tuple=True)
    if rows.numel() == 0:
        return 0
    return int(max((rows - s // 2).abs().max(), (cols - s // 2).abs().max()))


def support_side(kernel: torch.Tensor, floor: float = 0.05) -> int:
    """Side of the smallest centred square holding the values of an (S, S) PSF above ``floor`` × its peak."""
    return 2 * support_radius(kernel * (kernel > floor * kernel.max())) + 1


def no_blur_margin(kernel: torch.Tensor, gain: float, large_gain: float, large_support: Sequence[int],
                   floor: float = 0.05) -> float:
    """The share by which a found PSF (S, S) must explain the image better than no blur (lower L0
    energy) to be kept → a number: ``gain`` where the PSF's support (the centred square holding its
    values above ``floor`` × its peak) is at most ``large_support[0]`` px on a side, ``large_gain`` from
    ``large_support[1]`` px, linear between. The sparse energy favours the blurry answer more the
    longer the blur (a long blur removes more of the image's edges), while the spurious PSFs the search
    finds on sharp photos are small (≤ 11 px on six 640² photos); so a small PSF needs a clear win over no
    blur and a long one does not."""
    side = support_side(kernel, floor)
    low, high = large_support
    t = min(1.0, max(0.0, (side - low) / max(high - low, 1)))
    return float(gain + t * (large_gain - gain))


def follow_support(kernel: torch.Tensor, factor: float, limit: int, growth: float = 1.25, slack: int = 2) -> int:
    """The kernel window of the next pyramid level: the support of ``kernel`` (S, S) magnified by
    ``factor``, grown by ``growth`` and ``slack`` px so the PSF can still extend, as an odd side
    ≤ ``limit``. A small blur is then estimated in a small window (fewer unknowns, less noise in the
    PSF), a large one in a window that keeps up with it: the support is found, not configured."""
    radius = int(math.ceil(support_radius(kernel) * factor * growth)) + slack
    return min(limit, 2 * radius + 1)


def trusted_pixels(clipped: torch.Tensor, scale: float, size: int) -> torch.Tensor | None:
    """Where the kernel step may look, at a pyramid level: clipped (1, 1, H, W) bool at full size →
    (h, w) float, 0 on the pixels within the blur's reach (``size`` px) of a clipped one, 1 elsewhere;
    None when nothing is clipped or less than :data:`TRUSTED_SHARE` would be left.

    Two ways to keep clipped lights out of the kernel step, each where it works: a few small lights
    are left out with the pixels their blur reaches (this mask); where that would leave out much of
    the image (large or many lights, large blur, coarse levels), the clipped pixels are kept as lower
    bounds instead (:func:`fill_saturated`, the x-step's lights brighter than white). Measured: the
    mask alone found the 51–75 px blur of one of six 640² photos with up to 4 % of their pixels clipped
    (kernel NCC 0.26–0.53 on the other five); the lower bounds alone lost the kernel of the lit 256²
    test case on 4 seeds of 6, where a light's whole streak clips and the bound says little."""
    if not bool(clipped.any()):
        return None
    h, w = clipped.shape[-2:]
    level = (max(1, round(h * scale)), max(1, round(w * scale)))
    bad = F.interpolate(clipped.float(), size=level, mode="area") > 0 if scale != 1.0 else clipped.float() > 0
    bad = F.max_pool2d(bad.float(), (size, 1), 1, (size // 2, 0))  # a square max, as two 1-D passes
    near = F.max_pool2d(bad, (1, size), 1, (0, size // 2))[0, 0] > 0
    keep = (~near).float()
    return keep if float(keep.mean()) >= TRUSTED_SHARE else None


def gradual(keep: torch.Tensor, size: int) -> torch.Tensor:
    """The mask of :func:`trusted_pixels` (h, w), 0/1, made to vary slowly for the closed-form kernel
    step → (h, w) in [0, 1]: still 0 wherever it was, then rising over ``size`` px to 1.

    :func:`models.psf_ops.least_squares_kernel` multiplies the sharp and the blurry gradients by its
    weight, which commutes with the blur only where the weight is constant over a kernel's reach. A
    hard mask breaks that in a band round every hole — the kernel is fitted to blur that the masked
    sharp gradients cannot explain; a ramp as wide as the kernel keeps the error small. Measured on the
    lit case of ``test_clipped_lights_do_not_move_the_kernel``, 8 seeds: the lit kernel's NCC with the
    true one 0.818 → 0.844 on average, with the unlit estimate ≥ 0.9 on 6 seeds instead of 4."""
    pad = size // 2
    holes = F.pad(-keep[None, None], (pad,) * 4, value=-1.0)
    eroded = -F.max_pool2d(F.max_pool2d(holes, (size, 1), 1), (1, size), 1)  # holes grown by size / 2
    # then a ramp of size: the square's mean of a 0/1 map, as two 1-D passes of exact integer sums
    # (the same bits as one square average pool, ~20× faster at 101 px)
    ramp = F.pad(eroded, (pad,) * 4, mode="replicate")
    sums = F.avg_pool2d(F.avg_pool2d(ramp, (1, size), 1, divisor_override=1), (size, 1), 1, divisor_override=1)
    return (sums / (size * size))[0, 0]


def estimate_kernel(
    gray: torch.Tensor,  # (1, 1, H, W) in [0, 1]
    psf_size: int,
    *,
    min_kernel: int = 9,
    l0_weight: float = 4e-3,
    scale_ratio: float = math.sqrt(0.5),
    iterations: int = 5,
    l0_decay: float = 1.1,
    l0_min: float = 1e-4,
    l0_beta_max: float = 1e5,
    kernel_reg: float = 1e-2,
    kernel_threshold: float = 0.05,
    kernel_min_mass: float = 0.05,
    edge_select: float = 0.0,
    edge_window: float = 1.0,
    clipped: torch.Tensor | None = None,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> torch.Tensor:
    """One coarse-to-fine run of the L0 / least-squares alternation → the PSF (S', S'), S' ≤ ``psf_size``
    the window its support grew into (:func:`follow_support`).

    Knobs as in :func:`deblur_alternating`; ``min_kernel`` is the PSF side at the coarsest level
    (which fixes the pyramid's depth), ``clipped`` (1, 1, H, W) bool the saturated pixels, kept out of
    the kernel step with every pixel their blur reaches (:func:`trusted_pixels`), ``project`` an
    extra projection of full-size kernels.
    """
    height, width = gray.shape[-2:]
    plan = _pyramid(height, width, psf_size, scale_ratio, min(min_kernel, psf_size))
    kernel = _start_kernel(plan[0][1])
    lam = l0_weight
    # λ falls by l0_decay per alternation, slower where the pyramid is deeper: it reaches l0_min at the last
    decay = min(l0_decay, max(1.0, l0_weight / l0_min) ** (1 / max(1, len(plan) * iterations - 1)))
    previous = plan[0][0]
    for level, (scale, size) in enumerate(plan):
        y = _resize_image(gray, scale)
        if level > 0:
            size = max(plan[0][1], follow_support(kernel, scale / previous, size))  # plan sizes grow from plan[0]
        kernel = project_kernel(resize_kernel(kernel, size, scale / previous), kernel_threshold, kernel_min_mass)
        previous = scale
        weight = border_taper(y.shape[-2:], 2 * size, y.device)
        if edge_select > 0:
            window = max(3, int(round(edge_window * size)) | 1)
            mask = (edge_usefulness(y, window) > edge_select).float()[None, None]
            smooth = 2 * size + 1  # slowly varying: weighting ∇x and ∇y alike then commutes with the blur
            weight = weight * F.avg_pool2d(F.pad(mask, (smooth // 2,) * 4, mode="replicate"), smooth, 1)[0, 0]
        sat = saturated_at(clipped, y.shape[-2:], SATURATION_REACH)
        keep = None if sat is None else trusted_pixels(clipped, scale, size)
        if keep is not None:
            weight = weight * gradual(keep, size)
        for it in range(iterations):
            x = l0_deblur(y, kernel, lam, beta_max=l0_beta_max, clipped=sat)
            target = y if keep is not None or sat is None else fill_saturated(y, convolve(x, kernel[None, None]), sat)
            estimate = least_squares_kernel(x, target, size, reg=kernel_reg, weight=weight, project=False)[0]
            kernel = project_kernel(estimate, kernel_threshold, kernel_min_mass)
            if project is not None and scale == 1.0:
                kernel = project(kernel)
            if report is not None:
                report({"level": level, "scale": scale, "kernel_size": size, "step": it, "l0_weight": lam,
                        "data": float((convolve(x, kernel[None, None]) - y).square().mean())})
            lam = max(lam / decay, l0_min)
    return kernel


FINAL_WEIGHTS = (200.0, 10000.0)  # the range of the final step's data weight when it follows the noise


def final_weight_for(sigma: float, final_weight: float | None = None, final_noise_scale: float = 12.5,
                     final_noise_power: float = 1.0) -> float:
    """Data weight of the final non-blind step for noise σ: ``final_weight`` if given, else
    ``final_noise_scale / σ^final_noise_power`` clamped to :data:`FINAL_WEIGHTS`."""
    if final_weight is not None:
        return float(final_weight)
    low, high = FINAL_WEIGHTS
    return float(min(high, max(low, final_noise_scale / max(sigma, 1e-4) ** final_noise_power)))


def final_deconvolution(
    blurry: torch.Tensor,  # (1, C, H, W) in [0, 1]
    psf: torch.Tensor,  # (S, S)
    *,
    final_weight: float | None = None,
    final_noise_scale: float = 12.5,
    final_noise_power: float = 1.0,
    final_alpha: float = 0.8,
    final_beta_rate: float = 1.19,
    final_beta_max: float = 1024.0,
    final_second_order: float = 0.25,
    final_tile: int | None = 1024,
) -> torch.Tensor:
    """The final step of :func:`deblur_alternating` given a PSF → sharp (1, C, H, W) in [0, 1], not
    registered: hyper-Laplacian deconvolution (:func:`deblurring.nonblind.deconvolve`) with the data
    weight of :func:`final_weight_for` at the noise estimated from ``blurry``, an L1 prior of weight
    ``final_second_order`` on the second differences, clipped pixels trusted only as lower bounds
    (:func:`deblurring.nonblind.clipped_mask`); a photo larger than ``final_tile`` px on a side in
    overlapping tiles of that side (:func:`deblurring.nonblind.deconvolve_tiled`)."""
    y = blurry.detach().float().cpu().clamp(0, 1)
    sigma = estimate_noise(y) if final_weight is None else 0.0  # (a whole 12-MP photo's noise costs GBs)
    weight = final_weight_for(sigma, final_weight, final_noise_scale, final_noise_power)
    return deconvolve_tiled(y, psf.float()[None, None], final_tile, weight=weight, alpha=final_alpha,
                            beta_rate=final_beta_rate, beta_max=final_beta_max, margin=psf.shape[-1],
                            clipped=clipped_mask(y), second_order=final_second_order)


def estimation_window(gray: torch.Tensor, side: int | None) -> tuple[slice, slice]:
    """Where to estimate a uniform blur in gray (1, 1, H, W) → (rows, cols) slices of a window of at
    most ``side`` × ``side`` px (the whole image when it fits or ``side`` is None).

    Among 5 × 5 evenly spaced positions, the window with the largest mean gradient magnitude (most
    structure to measure the blur on). Bounds the cost of the kernel estimate on large photos: the
    blur of a 12-megapixel photo is measured on a 1024² window, the deconvolution is of the whole.
    """
    height, width = gray.shape[-2:]
    if side is None or (height <= side and width <= side):
        return slice(0, height), slice(0, width)
    wh, ww = min(side, height), min(side, width)
    small = F.avg_pool2d(gray.float(), 4, ceil_mode=True)  # positions to 4 px are plenty
    dx, dy = forward_differences(small)
    magnitude = dx.abs() + dy.abs()
    best = (-1.0, 0, 0)
    for top in torch.linspace(0, height - wh, 5).round().int().tolist():
        for left in torch.linspace(0, width - ww, 5).round().int().tolist():
            score = float(magnitude[..., top // 4:(top + wh) // 4, left // 4:(left + ww) // 4].mean())
            if score > best[0]:
                best = (score, top, left)
    _, top, left = best
    return slice(top, top + wh), slice(left, left + ww)


def _best_candidates(
    gray: torch.Tensor,
    candidates: Sequence[Sequence[float]],
    estimates: Sequence[Callable[..., torch.Tensor]],
    select_weight: float,
    report: Callable[[dict[str, Any]], None] | None = None,
    verbose: bool = False,
    clipped: torch.Tensor | None = None,
    reach: int | None = None,
) -> list[tuple[float, torch.Tensor, Sequence[float]]]:
    """One :func:`estimate_kernel` run per candidate and per estimate (one estimate per kernel
    threshold) on ``gray`` (1, 1, h, w), every run on the thread pool (:func:`utils.threads.parallel_map`)
    → for each estimate the (L0 energy, PSF (S, S), candidate) of the run of least :func:`l0_energy`.
    The runs' history entries are reported in order (estimate by estimate, candidate by candidate),
    so the history does not depend on the thread count either."""
    jobs = [(e, index, candidate) for e in range(len(estimates)) for index, candidate in enumerate(candidates)]

    def run(job: tuple[int, int, Sequence[float]]) -> tuple[float, torch.Tensor, Sequence[float], list[dict]]:
        e, index, candidate = job
        entries: list[dict[str, Any]] = []
        min_kernel, l0_weight = candidate[:2]
        extra = {"scale_ratio": float(candidate[2])} if len(candidate) > 2 else {}
        kernel = estimates[e](gray, min_kernel=int(min_kernel), l0_weight=float(l0_weight), clipped=clipped,
                              report=entries.append, **extra)
        energy = l0_energy(gray, kernel, select_weight, clipped=clipped, reach=reach)
        entries.append({"candidate": index, "min_kernel": int(min_kernel), "l0_weight": float(l0_weight),
                        **extra, "energy": energy})
        return energy, kernel, candidate, entries

    results = parallel_map(run, jobs)
    best = []
    for e in range(len(estimates)):
        runs = results[e * len(candidates):(e + 1) * len(candidates)]
        for energy, _, candidate, entries in runs:
            for entry in entries:
                if report is not None:
                    report(entry)
            if verbose:
                print(f"candidate {entries[-1]['candidate']} (min_kernel {candidate[0]}, l0_weight {candidate[1]}): "
                      f"energy {energy:.4f}", flush=True)
        best.append(min(runs, key=lambda r: r[0])[:3])  # the first of equal energies
    return best


def _window_kernels(
    gray: torch.Tensor,
    whole: torch.Tensor,
    candidates: Sequence[Sequence[float]],
    estimate: Callable[..., torch.Tensor],
    select_weight: float,
    prefilter: float = 0.0,
    clipped: torch.Tensor | None = None,
) -> torch.Tensor:
    """One PSF per 128-px cell of gray (1, 1, H, W) → (gh · gw, S, S): a blind estimate on the cell and
    half a cell around it (cut by the image border), or the whole image's PSF ``whole`` where that
    explains this window better (lower :func:`l0_energy`; flat cells say little about their blur).
    ``clipped`` (1, 1, H, W) bool: saturated pixels, kept out of each window's estimate and energy as
    in the whole image's (:func:`trusted_pixels`)."""
    height, width = gray.shape[-2:]
    gh, gw = math.ceil(height / CELL), math.ceil(width / CELL)
    out = []
    for i in range(gh):
        for j in range(gw):
            top, left = max(0, i * CELL - CELL // 2), max(0, j * CELL - CELL // 2)
            rows, cols = slice(top, (i + 1) * CELL + CELL // 2), slice(left, (j + 1) * CELL + CELL // 2)
            window = gray[..., rows, cols]
            lights = None if clipped is None else clipped[..., rows, cols]
            _, kernel, _ = _best_candidates(window, candidates, [estimate], select_weight, clipped=lights)[0]
            kernel = unfiltered(kernel, prefilter)
            better = l0_energy(window, kernel, select_weight, prefilter=prefilter, clipped=lights) < \
                l0_energy(window, whole, select_weight, prefilter=prefilter, clipped=lights)
            out.append(kernel if better else whole)
    size = max(k.shape[-1] for k in out)
    return torch.stack([resize_support(k, size) for k in out])


@dataclass(frozen=True)
class Window:
    """Where :func:`deblur_alternating` measures a uniform blur: ``gray`` (1, 1, h, w), the channel
    mean of the estimation window; ``clipped`` its saturated pixels (bool, same shape); ``sigma`` the
    noise σ measured there; ``limit`` the largest PSF side searched on it (:func:`largest_psf`)."""

    gray: torch.Tensor
    clipped: torch.Tensor
    sigma: float
    limit: int


def measure(y: torch.Tensor, estimate_side: int | None, psf_size: int,
            report: Callable[[dict[str, Any]], None]) -> Window:
    """Step 1 of :func:`deblur_alternating`: y (1, C, H, W) in [0, 1] → its :class:`Window`
    (:func:`estimation_window` of at most ``estimate_side``); a ``psf_size`` cut to the window is reported."""
    gray_full = y.mean(dim=1, keepdim=True)
    rows, cols = estimation_window(gray_full, estimate_side)
    sigma = max(estimate_noise(y[..., rows, cols]), 1e-4)
    gray = gray_full[..., rows, cols]
    limit = largest_psf(gray.shape[-2:], psf_size)
    if limit != psf_size:
        report({"psf_size": psf_size, "clipped_to": limit})
    return Window(gray, clipped_mask(y[..., rows, cols]).any(dim=1, keepdim=True), sigma, limit)


def psf_map(kernel: torch.Tensor, y: torch.Tensor, prefilter: float, cells: bool,
            candidates: Sequence[Sequence[float]], estimate: Callable[..., torch.Tensor],
            select_weight: float) -> torch.Tensor:
    """Step 3 of :func:`deblur_alternating`: the PSF map (1, gh, gw, S, S) of y (1, C, H, W) — ``kernel``
    (S, S) in every 128-px cell or, with ``cells``, each cell's own where it explains the cell better
    (:func:`_window_kernels`, on the gray image prefiltered by ``prefilter``)."""
    gh, gw = math.ceil(y.shape[-2] / CELL), math.ceil(y.shape[-1] / CELL)
    if not cells or gh * gw == 1:
        return kernel[None, None, None].expand(1, gh, gw, *kernel.shape).contiguous()
    gray = y.mean(dim=1, keepdim=True)
    smooth = _gaussian(gray, prefilter) if prefilter > 0 else gray
    psfs = _window_kernels(smooth, kernel, candidates, estimate, select_weight, prefilter,
                           clipped_mask(y).any(dim=1, keepdim=True))
    return psfs.view(1, gh, gw, *psfs.shape[-2:])


@dataclass(frozen=True)
class Polish:
    """How :func:`search_kernel` finishes a kernel found on the prefiltered image: the prefilter
    (σ ``prefilter`` px) taken out (:func:`unfiltered`), then ``rounds`` × :func:`polish_kernel`
    (Tikhonov ``reg``, ``denoise`` on noisy inputs, projection ``min_mass``, deconvolution ``knobs``)."""

    rounds: int
    reg: float
    denoise: bool
    min_mass: float
    prefilter: float
    knobs: dict[str, float]

    def __call__(self, image: torch.Tensor, kernel: torch.Tensor, threshold: float, clipped: torch.Tensor,
                 limit: int) -> torch.Tensor:
        kernel = unfiltered(kernel, self.prefilter, threshold, self.min_mass)
        for _ in range(self.rounds):
            kernel = polish_kernel(image, kernel, clipped, limit, self.reg, threshold, self.min_mass, self.knobs,
                                   self.denoise)
        return kernel


def search_kernel(
    gray: torch.Tensor,
    image: torch.Tensor,
    clipped: torch.Tensor,
    size: int,
    candidates: Sequence[Sequence[float]],
    thresholds: Sequence[float],
    estimate_for: Callable[..., torch.Tensor],
    polish: Polish,
    select_weight: float,
    margin_of: Callable[[torch.Tensor], float],
    report: Callable[[dict[str, Any]], None],
    verbose: bool = False,
) -> tuple[torch.Tensor, Callable[..., torch.Tensor]]:
    """The kernel step of :func:`deblur_alternating` → (PSF (S, S), the estimate that found it).

    ``gray`` (1, 1, h, w): the (prefiltered) estimation window, ``image`` the same unfiltered (the
    polish works on it), ``clipped`` its saturated pixels, ``size`` the largest PSF side searched
    (:func:`size_limit`; the support grows into it only as far as the blur needs, :func:`follow_support`).
    Every candidate runs under every kernel threshold (:func:`_best_candidates`), each threshold's
    winner is polished, and the PSF of least :func:`l0_energy` wins. Last, the no-blur check: where a
    delta's L0 energy is within ``margin_of(PSF)`` (a share, :func:`no_blur_margin`) of that PSF's on
    ``gray`` and (if it is prefiltered) on ``image`` as well, the delta (3, 3) is returned."""
    prefilter = polish.prefilter
    best: tuple[float, torch.Tensor, Callable[..., Any]] | None = None
    estimates = [partial(estimate_for, psf_size=size, kernel_threshold=t) for t in thresholds]
    winners = _best_candidates(gray, candidates, estimates, select_weight, report, verbose, clipped, size)
    kernels = parallel_map(lambda job: polish(image, job[1], job[0], clipped, size),
                           [(t, w[1]) for t, w in zip(thresholds, winners)])
    for threshold, kernel, estimate in zip(thresholds, kernels, estimates):
        energy = l0_energy(gray, kernel, select_weight, clipped=clipped, prefilter=prefilter, reach=size)
        report({"kernel_threshold": threshold, "energy": energy, "psf_size": kernel.shape[-1]})
        if best is None or energy < best[0]:
            best = (energy, kernel, estimate)
    assert best is not None
    _, kernel, estimate = best
    found = l0_energy(gray, kernel, select_weight, clipped=clipped, crop=size // 2, prefilter=prefilter, reach=size)
    report({"size_limit": size, "energy": found, "psf_size": kernel.shape[-1]})
    delta = resize_support(torch.ones(1, 1), kernel.shape[-1])  # the same pixels counted as for the PSF
    margin = margin_of(kernel)

    def no_blur_explains(window: torch.Tensor, sigma: float, energy: float) -> bool:
        plain = l0_energy(window, delta, select_weight, clipped=clipped, crop=size // 2, prefilter=sigma, reach=size)
        report({"no_blur_energy": plain, "energy": energy, "prefilter": sigma, "margin": margin})
        return plain <= energy * (1 + margin)

    # the no-blur check: on the window as the PSF was chosen and, if that was prefiltered, without the prefilter
    if no_blur_explains(gray, prefilter, found) and (prefilter == 0 or no_blur_explains(
            image, 0.0, l0_energy(image, kernel, select_weight, clipped=clipped, crop=size // 2, reach=size))):
        return resize_support(delta, 3), estimate
    return kernel, estimate


@torch_threads(1)
def deblur_alternating(
    blurry: torch.Tensor,  # (1, C, H, W), C = 1 (gray) or 3, values in [0, 1]
    kernel_space: Any = None,  # optional PSF-type KernelSpace: code of the result, kernel projection
    *,
    seed: int = 0,
    progress: bool | Callable[[dict[str, Any]], None] = False,
    **knobs: Any,
) -> DeblurResult:
    """Blind deblurring of one image (the module docstring) → :class:`DeblurResult`.

    ``blurry`` (1, 1 or 3, H, W) in [0, 1]; ``kernel_space`` an optional PSF-type KernelSpace (the code
    of the result; ``space_projection``). ``knobs``: any of :class:`AlternatingOptions`, the ``alternating``
    section of configs/defaults/deblur.yml, where each is described with its default. The steps:
    1. the estimation window and its noise σ (:func:`measure`; the σ-dependent defaults: :func:`_noise_adaptive`);
    2. the kernel (:func:`search_kernel`: :func:`estimate_kernel` runs per candidate, threshold and size
       at the limit of :func:`size_limit`, polished, chosen by :func:`l0_energy`);
    3. one PSF, or one per 128-px cell with ``cells`` (:func:`psf_map`);
    4. the final non-blind step, registered with the input (:func:`register_and_deconvolve`).
    Clipped pixels are lower bounds in every step; in the kernel step, where few, they are left out with
    every pixel their blur reaches instead (:func:`trusted_pixels`).
    Nothing is random (``seed`` is accepted for a uniform interface). ``progress``: True prints one line
    per candidate, a callable gets every history entry.

    The result: ``sharp`` (1, C, H, W), ``psf`` (1, gh, gw, S, S) (the same PSF in every cell unless
    ``cells``), ``reblurred`` (the sharp image blurred by the PSF map), ``code`` (the kernel space's code
    of the PSF map, or None), ``history`` (one entry per alternation, per candidate run with its energy,
    per threshold and size limit, then the final step's weight).
    """
    if blurry.dim() != 4 or blurry.shape[0] != 1 or blurry.shape[1] not in (1, 3):
        raise ValueError(f"blurry must be (1, 1 or 3, H, W), got {tuple(blurry.shape)}")
    o = AlternatingOptions.from_knobs(knobs)
    project = space_projector(kernel_space) if o.space_projection else None
    del seed  # deterministic: nothing is random
    history: list[dict[str, Any]] = []

    def report(entry: dict[str, Any]) -> None:
        history.append(entry)
        if callable(progress):
            progress(entry)

    y_full = blurry.detach().float().cpu().clamp(0, 1)
    # 1. where to measure the blur (and the noise), and what to keep out of it (clipped lights and their blur)
    window = measure(y_full, o.estimate_side, o.psf_size, report)
    y_window, clipped, sigma = window.gray, window.clipped, window.sigma
    prefilter, thresholds, denoise = _noise_adaptive(sigma, o.prefilter, o.kernel_threshold)
    weight = final_weight_for(sigma, o.final_weight, o.final_noise_scale, o.final_noise_power)
    final = dict(weight=weight, alpha=o.final_alpha,
                 beta_rate=o.final_beta_rate, beta_max=o.final_beta_max, second_order=o.final_second_order)
    polish_knobs = {**final, "beta_rate": o.polish_beta_rate}  # the polish's deconvolutions: a coarser continuation

    # 2. the kernel: every candidate under every threshold, polished, at the size limit (search_kernel)
    gray = _gaussian(y_window, prefilter) if prefilter > 0 else y_window  # the same kernel, less noise
    estimate_for = partial(
        estimate_kernel, scale_ratio=o.scale_ratio, iterations=o.iterations, l0_decay=o.l0_decay,
        l0_min=o.l0_min, l0_beta_max=o.l0_beta_max, kernel_reg=o.kernel_reg, kernel_min_mass=o.kernel_min_mass,
        edge_select=o.edge_select, edge_window=o.edge_window, project=project, report=report)
    polishing = Polish(o.polish, o.polish_reg, denoise, o.kernel_min_mass, prefilter, polish_knobs)
    margin = partial(no_blur_margin, gain=o.support_gain, large_gain=o.large_support_gain,
                     large_support=o.large_support)
    size = size_limit(window.limit, o.support_start, o.support_step, min(y_window.shape[-2:]) // SUPPORT_REACH)
    kernel, estimate = search_kernel(gray, y_window, clipped, size, o.candidates, thresholds, estimate_for,
                                     polishing, o.select_weight, margin, report, progress is True)

    if o.refine_rounds and not denoise:  # the PSF re-fitted on its support alone (thinner streaks); not on
        # noisy inputs, where the fit without a Tikhonov pull follows the noise (σ = 0.01 photos: −0.1 dB)
        kernel = refine_kernel(y_window, kernel, clipped, final, o.refine_rounds, o.refine_gamma)

    # 3. one PSF, or one per cell where that explains the cell better
    psfs = psf_map(kernel, y_full, prefilter, o.cells, o.candidates, estimate, o.select_weight)
    if project is not None:
        psfs = _project_to_space(psfs, kernel_space)

    # 4. the final deconvolution, registered with the input
    knobs = {**{f"final_{key}": value for key, value in final.items()}, "final_tile": o.final_tile}
    sharp, psfs, reblurred = register_and_deconvolve(y_full, psfs, knobs)
    code = None if kernel_space is None else code_of_psfs(psfs, kernel_space)
    report({"final_weight": final["weight"]})
    return DeblurResult(sharp=sharp, code=code, reblurred=reblurred, history=history, psf=psfs)


def space_projector(kernel_space: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """``space_projection``: a PSF (S, S) → its projection onto the PSF-type kernel space
    (:func:`_project_to_space`); ValueError without a kernel space (never silently unprojected)."""
    if kernel_space is None:
        raise ValueError("space_projection needs a psf-type kernel space to project onto; none was given")

    def project(k: torch.Tensor) -> torch.Tensor:
        return _project_to_space(k[None, None, None], kernel_space)[0, 0, 0]

    return project


def _noise_adaptive(
    sigma: float, prefilter: float | None, kernel_threshold: float | Sequence[float] | None
) -> tuple[float, list[float], bool]:
    """The knobs whose default follows the noise σ of the input → (prefilter, thresholds, denoise):
    an input is noisy where σ ≥ :data:`NOISY`; there the polish also pulls towards zero (``denoise``,
    :func:`polish_kernel`).

    Measured: a Gaussian prefilter of σ = 1 px helps on σ = 0.01 photos and nothing on the clean
    Levin images (the polish there: without the pull towards zero 32.66 → 32.79 dB, with it
    32.54 dB); faint PSF values are mostly noise on noisy photos (threshold 0.1 or 0.15, a toss-up
    per image that the L0 energy mostly calls right: both are tried), while the long thin tails of
    the clean Levin kernels need 0.05.
    """
    noisy = sigma >= NOISY
    if prefilter is None:
        prefilter = min(1.0, 100 * sigma) if noisy else 0.0
    if kernel_threshold is None:
        thresholds = [0.1, 0.15] if noisy else [0.05]
    elif isinstance(kernel_threshold, Sequence):
        thresholds = [float(t) for t in kernel_threshold]
    else:
        thresholds = [float(kernel_threshold)]
    return float(prefilter), thresholds, noisy


TRUSTED_SHARE = 0.8  # trusted_pixels: the least share of the pixels a mask of clipped lights may leave
SATURATION_REACH = 2  # px: saturated_at grows the clipped pixels of a prefiltered or resized image by this
NOISY = 3e-3  # an input whose estimated noise σ is at least this is treated as noisy (_noise_adaptive)
SUPPORT_REACH = 6  # a size limit above 1/6 of the window's shorter side is not searched (but support_start is)


def size_limit(limit: int, start: int = 31, step: float = 1.8, reach: int | None = None) -> int:
    """The largest PSF side searched: of the sides ``start``, × ``step`` (odd) ... up to ``limit``, the
    largest ≤ ``reach`` (px; ``start`` where none is, ``limit`` where ``reach`` is None).

    Measured (bench/large_blur.py and 1024×700 photos, σ = 0.01): blind estimates of kernels wider
    than about a sixth of the image mostly fail and, on 256² photos, a 101-px limit won the energy
    with a wrong kernel (rocket: 31.5 → 25.2 dB); so a limit above ``start`` is used only where the
    image is at least 6× as large (``reach`` = shorter side / :data:`SUPPORT_REACH`): Levin's and
    other 256² images search 31 px. One run at that limit, not a ladder of limits each run on its own:
    a run's pyramid starts from its limit, so a run at 31 or 57 px started too fine to find a
    51-px blur that the 101-px run found (640² photos with clipped lights, kernel NCC 0.34 → 0.91)."""
    sizes = [min(start, limit)]
    while sizes[-1] < limit:
        sizes.append(min(limit, int(round(sizes[-1] * step)) | 1))
    if reach is None:
        return sizes[-1]
    return max([sizes[0]] + [size for size in sizes[1:] if size <= reach])


def largest_psf(shape: Sequence[int], psf_size: int) -> int:
    """The largest PSF side searched on an image of ``shape`` (h, w): ``psf_size``, cut to the largest
    odd side ≤ half the shorter image side (a blur wider than that cannot be told from the image)."""
    half = max(3, min(int(shape[0]), int(shape[1])) // 2)
    return min(psf_size, half - 1 + half % 2)


def polish_kernel(
    gray: torch.Tensor, kernel: torch.Tensor, clipped: torch.Tensor, limit: int, reg: float, threshold: float,
    min_mass: float, knobs: dict[str, float], denoise: bool = True,
) -> torch.Tensor:
    """One polish round: the kernel (S, S) re-estimated by least squares from the non-blind
    deconvolution of ``gray`` (1, 1, H, W) with it, in a window that follows its support
    (:func:`follow_support`, at most ``limit``), away from clipped pixels → the projected PSF.

    A Tikhonov term of weight ``reg`` towards the kernel being polished and, with ``denoise`` (noisy
    inputs), a second one towards zero (it cleans the kernel's noise). Where the image has little
    energy (the high frequencies of a photo) the kernel keeps (half of) what it had instead of being
    low-passed; towards zero alone widened small kernels (5-px blur on σ = 0.01 photos,
    bench/deblur_bench.py --kernel-size 5)."""
    size = max(kernel.shape[-1], follow_support(kernel, 1.0, limit))
    keep = trusted_pixels(clipped, 1.0, size)
    sat = None if keep is not None else saturated_at(clipped, gray.shape[-2:], 0)
    restored = deconvolve(gray, kernel[None, None], **knobs, margin=kernel.shape[-1], clipped=clipped,
                          clamp=sat is None)  # lights brighter than white where their blur is fitted
    weight = border_taper(gray.shape[-2:], 2 * size, gray.device) * (1.0 if keep is None else keep)
    target = gray if sat is None else fill_saturated(gray, convolve(restored, kernel[None, None]), sat)
    # reg towards the kernel (plus reg towards zero): (X*Y + reg K) / (|X|² + reg (+ reg))
    share = 2 if denoise else 1
    k = least_squares_kernel(restored, target, size, reg=share * reg, weight=weight, project=False,
                             prior=resize_support(kernel, size)[None] / share)[0]
    return project_kernel(k, threshold, min_mass)


def refine_kernel(gray: torch.Tensor, kernel: torch.Tensor, clipped: torch.Tensor, knobs: dict[str, float],
                  rounds: int, gamma: float) -> torch.Tensor:
    """The PSF (S, S) re-fitted on its support (:func:`deblurring.kernel_refine.refine_on_support`) from
    the deconvolution of ``gray`` (1, 1, H, W) with it (``knobs``: the final step's weight and alpha),
    away from clipped lights (:func:`trusted_pixels`) → (S, S). Where so many pixels clip that the
    mask would leave out too much, the PSF is returned as it is."""
    size = kernel.shape[-1]
    keep = trusted_pixels(clipped, 1.0, size)
    if keep is None and bool(clipped.any()):
        return kernel
    kernel, _ = centre_subpixel(kernel)
    restored = deconvolve(gray, kernel[None, None], weight=knobs["weight"], alpha=knobs["alpha"], margin=size)
    weight = border_taper(gray.shape[-2:], 2 * size, gray.device) * (1.0 if keep is None else keep)
    return refine_on_support(restored[0, 0], gray[0, 0], kernel, weight, rounds=rounds, gamma=gamma)


def register_and_deconvolve(
    blurry: torch.Tensor, psfs: torch.Tensor, knobs: dict[str, float]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The final step: blurry (1, C, H, W) deconvolved with the PSF map (1, gh, gw, S, S)
    (:func:`final_deconvolution`; a map of distinct PSFs: per cell, blended) and moved so that it is
    registered with the input (:func:`centre_subpixel`) → (sharp (1, C, H, W), the PSFs centred,
    the sharp image re-blurred by them). ``knobs``: the ``final_*`` keywords, ``final_weight`` resolved."""
    gh, gw, s = psfs.shape[1], psfs.shape[2], psfs.shape[-1]
    if bool((psfs == psfs[:, :1, :1]).all()):  # one PSF: one deconvolution of the whole image
        sharp = final_deconvolution(blurry, psfs[0, 0, 0], **knobs)
        centred, offset = centre_subpixel(psfs[0, 0, 0])
        sharp = shift_image(sharp, offset).clamp(0, 1)
        reblurred = convolve(sharp, centred[None, None]).clamp(0, 1)
        return sharp, centred[None, None, None].expand(1, gh, gw, s, s).contiguous(), reblurred
    moved = [centre_subpixel(k) for k in psfs[0].flatten(0, 1)]
    offsets = torch.tensor([offset for _, offset in moved]).view(gh, gw, 2)
    sharp = deconvolve_cells(blurry, psfs, offsets=offsets, weight=knobs["final_weight"], alpha=knobs["final_alpha"],
                             beta_rate=knobs["final_beta_rate"], beta_max=knobs["final_beta_max"], margin=s,
                             second_order=knobs["final_second_order"])
    psfs = torch.stack([k for k, _ in moved]).view(1, gh, gw, s, s)
    return sharp, psfs, blur_cells(sharp, psfs).clamp(0, 1)
