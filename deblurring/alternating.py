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
   every channel, with the PSF (map) found (:mod:`deblurring.nonblind`); its data weight follows
   the noise level estimated from the input. On noisy inputs the PSF is first re-estimated from
   that deconvolution (``polish``). Registration: a blind estimate is defined up to a translation
   (k moved by −d, x by +d); the PSF's centre of mass is put at its centre to sub-pixel precision
   and the sharp image moved by the same offset (:func:`centre_subpixel`), so that it is registered
   with the input — the convention of the synthetic data, which matters for PSNR (σ = 0.01 photos
   +2.98 → +3.53 dB; mild 9-px blur −0.96 → +1.23 dB).

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
from functools import partial
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from deblurring.nonblind import (
    circular_gradients,
    deconvolve,
    deconvolve_cells,
    estimate_noise,
    extend_periodic,
    fft_size,
    gradient_otfs,
    psf_to_otf,
    shift_image,
)
from deblurring.result import DeblurResult
from models.psf_ops import CELL, blur_cells, convolve, least_squares_kernel


def l0_deblur(
    blurry: torch.Tensor,  # (B, C, h, w), values in [0, 1]
    psf: torch.Tensor,  # (S, S)
    weight: float,
    *,
    beta_max: float = 1e5,
    beta_rate: float = 2.0,
    margin: int | None = None,
) -> torch.Tensor:
    """Sparse-gradient image step: ``argmin_x ‖k ⊛ x − y‖² + weight · ‖∇x‖₀`` → (B, C, h, w).

    Half-quadratic splitting (Xu et al. 2011): gradients g with a penalty β‖g − ∇x‖², β from
    2·weight by ``beta_rate`` up to ``beta_max``; the g-step keeps ∇x where |∇x|² ≥ weight / β
    and zeroes it elsewhere, the x-step is one FFT division. Borders as in
    :func:`deblurring.nonblind.deconvolve` (periodic extension by ``margin``, default S).
    """
    s = psf.shape[-1]
    _, _, h, w = blurry.shape
    margin = s if margin is None else margin
    size = (fft_size(h + 2 * margin), fft_size(w + 2 * margin))
    y = extend_periodic(blurry.float(), margin, size)
    otf = psf_to_otf(psf.float(), size)
    gx, gy = gradient_otfs(size, y.device)
    grad_energy = gx.abs().square() + gy.abs().square()
    numerator = otf.conj() * torch.fft.rfft2(y)
    kernel_energy = otf.abs().square()
    x = y
    beta = 2 * weight
    while beta < beta_max:
        dx, dy = circular_gradients(x)
        keep = (dx.square() + dy.square()) >= weight / beta
        dx, dy = dx * keep, dy * keep
        rhs = numerator + beta * (gx.conj() * torch.fft.rfft2(dx) + gy.conj() * torch.fft.rfft2(dy))
        x = torch.fft.irfft2(rhs / (kernel_energy + beta * grad_energy), s=size)
        beta *= beta_rate
    return x[..., margin:margin + h, margin:margin + w]


def edge_usefulness(blurry: torch.Tensor, window: int, eps: float = 0.5 / 255) -> torch.Tensor:
    """Xu & Jia's (2010) r-map of a blurry gray image (1, 1, h, w) → (h, w) in [0, 1].

    ``r = |Σ_N ∇y| / (Σ_N |∇y| + eps)`` over a ``window`` × ``window`` neighbourhood N: close to 1
    where the gradients nearby point one way (an edge wider than the blur), close to 0 in texture
    and fine detail, whose gradients cancel and which mislead the kernel estimate.
    """
    gx = F.pad(blurry[..., :, 1:] - blurry[..., :, :-1], (0, 1))
    gy = F.pad(blurry[..., 1:, :] - blurry[..., :-1, :], (0, 0, 0, 1))
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


def _taper(shape: tuple[int, int], size: int) -> torch.Tensor:
    """(h, w) raised-cosine border taper over 2·size px, as the default weight of least_squares_kernel."""
    from models.psf_ops import _border_taper

    h, w = shape
    return _border_taper(h, 2 * size, torch.device("cpu"), torch.float32)[:, None] * \
        _border_taper(w, 2 * size, torch.device("cpu"), torch.float32)[None, :]


def _gaussian(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of (1, 1, H, W) with standard deviation ``sigma`` px (reflect border)."""
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    g = torch.exp(-t.square() / (2 * sigma**2))
    g = g / g.sum()
    return convolve(image, (g[:, None] * g[None, :])[None, None])


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


def l0_energy(blurry: torch.Tensor, psf: torch.Tensor, weight: float = 1e-3, *, crop: int | None = None) -> float:
    """The sparse-prior MAP energy of a PSF for a gray blurry image (1, 1, H, W):
    ``‖k ⊛ x − y‖² + weight · #{∇x ≠ 0}`` at ``x = l0_deblur(y, k, weight)``, the squared error summed
    over the pixels at least ``crop`` (default S // 2) from the border → a number.

    Lower is a better explanation of y. Unlike a natural-image prior, this energy does not prefer
    the no-blur answer (a delta) to the true blur; it ranks the candidates of
    :func:`deblur_alternating`.
    """
    x = l0_deblur(blurry, psf, weight)
    c = psf.shape[-1] // 2 if crop is None else crop
    err = (convolve(x, psf[None, None].to(x)) - blurry.float())[..., c:x.shape[-2] - c, c:x.shape[-1] - c]
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    edges = (dx.abs() > 1e-3).sum() + (dy.abs() > 1e-3).sum()
    return float(err.square().sum() + weight * edges)


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
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> torch.Tensor:
    """One coarse-to-fine run of the L0 / least-squares alternation → the PSF (S, S).

    Knobs as in :func:`deblur_alternating`; ``min_kernel`` is the PSF side at the coarsest level
    (which fixes the pyramid's depth), ``project`` an extra projection of full-size kernels.
    """
    height, width = gray.shape[-2:]
    plan = _pyramid(height, width, psf_size, scale_ratio, min(min_kernel, psf_size))
    kernel = _start_kernel(plan[0][1])
    lam = l0_weight
    previous = plan[0][0]
    for level, (scale, size) in enumerate(plan):
        y = _resize_image(gray, scale)
        kernel = project_kernel(resize_kernel(kernel, size, scale / previous), kernel_threshold, kernel_min_mass)
        previous = scale
        weight = None
        if edge_select > 0:
            window = max(3, int(round(edge_window * size)) | 1)
            mask = (edge_usefulness(y, window) > edge_select).float()[None, None]
            smooth = 2 * size + 1  # slowly varying: weighting ∇x and ∇y alike then commutes with the blur
            mask = F.avg_pool2d(F.pad(mask, (smooth // 2,) * 4, mode="replicate"), smooth, 1)[0, 0]
            weight = mask * _taper(y.shape[-2:], size)
        for it in range(iterations):
            x = l0_deblur(y, kernel, lam, beta_max=l0_beta_max)
            estimate = least_squares_kernel(x, y, size, reg=kernel_reg, weight=weight, project=False)[0]
            kernel = project_kernel(estimate, kernel_threshold, kernel_min_mass)
            if project is not None and scale == 1.0:
                kernel = project(kernel)
            if report is not None:
                report({"level": level, "scale": scale, "kernel_size": size, "step": it, "l0_weight": lam,
                        "data": float((convolve(x, kernel[None, None]) - y).square().mean())})
            lam = max(lam / l0_decay, l0_min)
    return F.pad(kernel, ((psf_size - kernel.shape[-1]) // 2,) * 4)


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
    magnitude = F.pad((small[..., :, 1:] - small[..., :, :-1]).abs(), (0, 1)) + \
        F.pad((small[..., 1:, :] - small[..., :-1, :]).abs(), (0, 0, 0, 1))
    best = (-1.0, 0, 0)
    for top in torch.linspace(0, height - wh, 5).round().int().tolist():
        for left in torch.linspace(0, width - ww, 5).round().int().tolist():
            score = float(magnitude[..., top // 4:(top + wh) // 4, left // 4:(left + ww) // 4].mean())
            if score > best[0]:
                best = (score, top, left)
    _, top, left = best
    return slice(top, top + wh), slice(left, left + ww)


def _best_candidate(
    gray: torch.Tensor,
    candidates: Sequence[Sequence[float]],
    estimate: Callable[..., torch.Tensor],
    select_weight: float,
    report: Callable[[dict[str, Any]], None] | None = None,
    verbose: bool = False,
) -> tuple[float, torch.Tensor]:
    """One :func:`estimate_kernel` run per candidate on ``gray`` (1, 1, h, w) → (L0 energy, PSF (S, S)) of
    the run of least :func:`l0_energy`."""
    best: tuple[float, torch.Tensor] | None = None
    for index, candidate in enumerate(candidates):
        min_kernel, l0_weight = candidate[:2]
        extra = {"scale_ratio": float(candidate[2])} if len(candidate) > 2 else {}
        kernel = estimate(gray, min_kernel=int(min_kernel), l0_weight=float(l0_weight), **extra)
        energy = l0_energy(gray, kernel, select_weight)
        if report is not None:
            report({"candidate": index, "min_kernel": int(min_kernel), "l0_weight": float(l0_weight),
                    **extra, "energy": energy})
        if verbose:
            print(f"candidate {index} (min_kernel {min_kernel}, l0_weight {l0_weight}): energy {energy:.4f}",
                  flush=True)
        if best is None or energy < best[0]:
            best = (energy, kernel)
    assert best is not None
    return best


def _window_kernels(
    gray: torch.Tensor,
    whole: torch.Tensor,
    candidates: Sequence[Sequence[float]],
    estimate: Callable[..., torch.Tensor],
    select_weight: float,
) -> torch.Tensor:
    """One PSF per 128-px cell of gray (1, 1, H, W) → (gh · gw, S, S): a blind estimate on the cell and
    half a cell around it (cut by the image border), or the whole image's PSF ``whole`` where that
    explains this window better (lower :func:`l0_energy`; flat cells say little about their blur)."""
    height, width = gray.shape[-2:]
    gh, gw = math.ceil(height / CELL), math.ceil(width / CELL)
    out = []
    for i in range(gh):
        for j in range(gw):
            top, left = max(0, i * CELL - CELL // 2), max(0, j * CELL - CELL // 2)
            window = gray[..., top:(i + 1) * CELL + CELL // 2, left:(j + 1) * CELL + CELL // 2]
            energy, kernel = _best_candidate(window, candidates, estimate, select_weight)
            out.append(kernel if energy < l0_energy(window, whole, select_weight) else whole)
    return torch.stack(out)


def deblur_alternating(
    blurry: torch.Tensor,  # (1, C, H, W), C = 1 (gray) or 3, values in [0, 1]
    kernel_space: Any = None,  # optional PSF-type KernelSpace: code of the result, kernel projection
    *,
    psf_size: int = 31,
    candidates: Sequence[Sequence[float]] = ((9, 4e-3, 0.8), (9, 4e-3), (11, 4e-3), (13, 4e-3)),
    select_weight: float = 1e-3,
    scale_ratio: float = math.sqrt(0.5),
    iterations: int = 5,
    l0_decay: float = 1.1,
    l0_min: float = 1e-4,
    l0_beta_max: float = 1e5,
    kernel_reg: float = 1e-2,
    kernel_threshold: float | Sequence[float] | None = None,
    kernel_min_mass: float = 0.05,
    edge_select: float = 0.0,
    edge_window: float = 1.0,
    prefilter: float | None = None,
    cells: bool = False,
    space_projection: bool = False,
    final_weight: float | None = None,
    final_noise_scale: float = 46.0,
    final_alpha: float = 0.8,
    final_beta_rate: float = 2.0,
    final_beta_max: float = 1024.0,
    polish: int | None = None,
    polish_reg: float = 0.3,
    estimate_side: int | None = 1024,
    seed: int = 0,
    progress: bool | Callable[[dict[str, Any]], None] = False,
) -> DeblurResult:
    """Blind deblurring of one image by coarse-to-fine L0 / least-squares alternation (module docstring).

    Knobs: ``psf_size`` the (odd) side of the PSF found. ``candidates``: (min_kernel, l0_weight[,
    scale_ratio]) tuples, one full coarse-to-fine run each (:func:`estimate_kernel`: ``min_kernel``
    the PSF side at the coarsest level, i.e. the pyramid's depth, ``l0_weight`` the starting L0
    weight λ, ``scale_ratio`` the pyramid's step, default the knob ``scale_ratio``); the
    run of least :func:`l0_energy` (weight ``select_weight``) wins — single runs fail now and then
    (a wrong basin at the coarse levels), and the energy tells them apart. ``scale_ratio`` the
    pyramid's step; ``iterations`` alternations per level; λ is divided by ``l0_decay`` after every
    iteration down to ``l0_min``; ``l0_beta_max`` ends each L0 solve; ``kernel_reg`` the kernel
    step's Tikhonov weight (relative to the gradient energy); ``kernel_threshold`` /
    ``kernel_min_mass`` the projection (a list of thresholds: the whole estimate, polish included, is
    run with each and the PSF of least L0 energy wins; default 0.05 for σ < 0.003, else [0.1, 0.15]);
    ``edge_select`` > 0 restricts the kernel step to edges of r-map above it (window ``edge_window`` ×
    the PSF side); ``prefilter`` > 0 estimates the kernel on the image blurred by a Gaussian of that
    σ (px): the same kernel relates the filtered pair, with less noise (default: 0 for σ < 0.003, else
    min(1, 100 σ), σ the estimated noise); ``cells``: one PSF per 128-px cell (images
    larger than a cell), each from a blind estimate on it and half a cell around it, or the whole
    image's PSF where that has the lower L0 energy there (cost: one estimate per cell);
    ``estimate_side``: the (uniform) blur is measured on the window of at most that side with the
    most structure (:func:`estimation_window`; None: the whole image); ``space_projection`` projects the full-size
    kernels onto ``kernel_space`` (``ks.psf_of_code(ks.code_of_psf(k))``). The final non-blind step
    uses data weight ``final_weight`` (default ``final_noise_scale / σ^(2/3)`` with σ the estimated
    noise, clamped to [200, 5000]), prior exponent ``final_alpha`` and the β schedule. ``polish``
    times (default: 2 for σ ≥ 0.003, else 0) the kernel is re-estimated on the estimation window from
    that result (least squares, Tikhonov ``polish_reg``) before the final deconvolution: on noisy photos
    the L0 stage's kernel is the weak part (σ = 0.01 photos: +2.62 → +2.98 dB; on the clean Levin
    images it costs 0.3 dB, hence off there). Uniform PSFs only. The sharp image is registered with
    the input (:func:`centre_subpixel`), the PSFs returned centred. ``seed`` is
    accepted for a uniform interface: nothing is random, the output depends on the input only.
    ``progress``: True prints one line per candidate, a callable gets every history entry.

    Returns a :class:`DeblurResult`: ``sharp`` (1, C, H, W), ``psf`` (1, gh, gw, S, S) (the same PSF
    in every cell unless ``cells``), ``reblurred`` (the sharp image blurred by the PSF map), ``code``
    (the kernel space's code of the PSF map, or None without a kernel space), ``history`` (one
    entry per alternation, then one per candidate with its energy, then the final step's weight).
    """
    if blurry.dim() != 4 or blurry.shape[0] != 1 or blurry.shape[1] not in (1, 3):
        raise ValueError(f"blurry must be (1, 1 or 3, H, W), got {tuple(blurry.shape)}")
    if psf_size % 2 == 0 or psf_size < 3:
        raise ValueError(f"psf_size must be odd and >= 3, got {psf_size}")
    if not candidates:
        raise ValueError("candidates must hold at least one (min_kernel, l0_weight) pair")
    del seed  # deterministic: nothing is random
    y_full = blurry.detach().float().cpu().clamp(0, 1)
    height, width = y_full.shape[-2:]
    gray_full = y_full.mean(dim=1, keepdim=True)
    history: list[dict[str, Any]] = []
    sigma = max(estimate_noise(y_full), 1e-4)
    if prefilter is None:  # measured: σ = 1 px on the σ = 0.01 photos; nothing on the clean Levin images
        prefilter = 0.0 if sigma < 0.003 else min(1.0, 100 * sigma)
    if polish is None:
        polish = 0 if sigma < 0.003 else 2
    if kernel_threshold is None:  # measured: faint PSF values are mostly noise on the σ = 0.01 photos
        # (0.05 → 0.1: +0.7 dB there), but the long thin tails of the clean Levin kernels need 0.05 (0.1
        # there: 32.7 → 30.1 dB); 0.1 or 0.15 is a toss-up per image (23 noisy photos: 10 better at 0.1,
        # 13 at 0.15, by up to 3 dB either way) that the L0 energy mostly calls right: both are tried
        thresholds = [0.05] if sigma < 0.003 else [0.1, 0.15]
    else:
        thresholds = [float(t) for t in kernel_threshold] if isinstance(kernel_threshold, Sequence) \
            else [float(kernel_threshold)]
    if final_weight is None:
        final_weight = float(min(5000.0, max(200.0, final_noise_scale / sigma ** (2 / 3))))
    knobs = dict(weight=final_weight, alpha=final_alpha, beta_rate=final_beta_rate, beta_max=final_beta_max,
                 margin=psf_size)

    def prepare(image: torch.Tensor) -> torch.Tensor:  # g ⊛ y = k ⊛ (g ⊛ x) + g ⊛ n: the same kernel, less noise
        return _gaussian(image, prefilter) if prefilter > 0 else image

    rows, cols = estimation_window(gray_full, estimate_side)
    gray = prepare(gray_full[..., rows, cols])
    y_window = y_full[..., rows, cols].mean(dim=1, keepdim=True)

    def report(entry: dict[str, Any]) -> None:
        history.append(entry)
        if callable(progress):
            progress(entry)

    project = None
    if space_projection and kernel_space is not None:
        def project(k: torch.Tensor) -> torch.Tensor:
            return _project_to_space(k[None, None, None], kernel_space)[0, 0, 0]

    best: tuple[float, torch.Tensor, Callable[..., Any]] | None = None
    for threshold in thresholds:
        estimate = partial(
            estimate_kernel, psf_size=psf_size, scale_ratio=scale_ratio, iterations=iterations, l0_decay=l0_decay,
            l0_min=l0_min, l0_beta_max=l0_beta_max, kernel_reg=kernel_reg, kernel_threshold=threshold,
            kernel_min_mass=kernel_min_mass, edge_select=edge_select, edge_window=edge_window, project=project,
            report=report)
        _, kernel = _best_candidate(gray, candidates, estimate, select_weight, report, progress is True)
        for _ in range(polish):  # on the estimation window: its deconvolution, a new kernel from it
            restored = deconvolve(y_window, kernel[None, None], **knobs)
            k = least_squares_kernel(restored, y_window, psf_size, reg=polish_reg, project=False)[0]
            kernel = project_kernel(k, threshold, kernel_min_mass)
        energy = l0_energy(gray, kernel, select_weight)
        report({"kernel_threshold": threshold, "energy": energy})
        if best is None or energy < best[0]:
            best = (energy, kernel, estimate)
    assert best is not None
    _, kernel, estimate = best

    gh, gw = math.ceil(height / CELL), math.ceil(width / CELL)
    if cells and gh * gw > 1:
        psfs = _window_kernels(prepare(gray_full), kernel, candidates, estimate, select_weight)
        psfs = psfs.view(1, gh, gw, psf_size, psf_size)
    else:
        psfs = kernel[None, None, None].expand(1, gh, gw, psf_size, psf_size).contiguous()
    if project is not None:
        psfs = _project_to_space(psfs, kernel_space)

    if bool((psfs == psfs[:, :1, :1]).all()):  # one PSF: one deconvolution of the whole image, not one per cell
        sharp = deconvolve(y_full, psfs[:, 0, 0, None], **knobs)
        centred, offset = centre_subpixel(psfs[0, 0, 0])
        sharp = shift_image(sharp, offset).clamp(0, 1)  # registered with the input (centre_subpixel)
        psfs = centred[None, None, None].expand(1, gh, gw, psf_size, psf_size).contiguous()
        reblurred = convolve(sharp, psfs[:, 0, 0, None]).clamp(0, 1)
    else:
        moved = [centre_subpixel(k) for k in psfs[0].flatten(0, 1)]
        offsets = torch.tensor([offset for _, offset in moved]).view(gh, gw, 2)
        sharp = deconvolve_cells(y_full, psfs, offsets=offsets, **knobs)
        psfs = torch.stack([k for k, _ in moved]).view(1, gh, gw, psf_size, psf_size)
        reblurred = blur_cells(sharp, psfs).clamp(0, 1)
    code = None
    if kernel_space is not None:
        code = code_of_psfs(psfs, kernel_space)
    report({"final_weight": final_weight})
    return DeblurResult(sharp=sharp, code=code, reblurred=reblurred, history=history, psf=psfs)
