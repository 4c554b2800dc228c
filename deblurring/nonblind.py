"""Non-blind deconvolution under a hyper-Laplacian gradient prior (Krishnan & Fergus, NIPS 2009).

Given a blurry image y and its PSF k, find

    x = argmin_x  λ/2 ‖k ⊛ x − y‖² + Σ_p |∂_h x(p)|^α + |∂_v x(p)|^α

by half-quadratic splitting: auxiliary gradients w are introduced with a penalty β/2 ‖w − ∇x‖²
whose weight β grows geometrically; for a fixed β the x-step is one division in the Fourier domain
and the w-step is a per-pixel 1-D problem (solved here by a guarded Newton iteration, valid for any
0 < α ≤ 1). PSFs follow :mod:`models.psf_ops` (odd S × S, centred at S // 2, true convolution).

Borders: the FFT makes every convolution circular, so the image is first extended by a margin
(reflection, then a raised-cosine fade to the image mean, :func:`extend_periodic`): the extended
image is smooth across the wrap-around seam, and the deconvolution's border artefacts fall in the
margin, which is cut off afterwards.

A PSF map (one PSF per 128-px code cell, :func:`models.psf_ops.blur_cells`) is handled by
deconvolving a window around each cell with its own PSF and blending the results with the same
partition of unity (:func:`models.psf_ops.cell_weights`) that blends the blur.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from models.psf_ops import CELL, cell_weights, convolve
from utils.threads import parallel_map
from utils.windows import raised_cosine


def fft_size(n: int) -> int:
    """The smallest integer ≥ n whose prime factors are 2, 3, 5 and 7 (fast FFT lengths)."""
    m = max(1, n)
    while True:
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def extend_periodic(image: torch.Tensor, margin: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Extend (B, C, H, W) by ``margin`` pixels on each side (more at the bottom/right up to ``size``)
    so that its periodic continuation has no seam → (B, C, H', W').

    The margin holds the reflected image, faded to the per-channel image mean by a raised cosine
    that reaches the mean at the outer edge; so the wrap-around of an FFT joins two flat regions.
    """
    b, c, h, w = image.shape
    hh, ww = size if size is not None else (h + 2 * margin, w + 2 * margin)
    if hh < h + 2 * margin or ww < w + 2 * margin:
        raise ValueError(f"size {(hh, ww)} cannot hold a {h}×{w} image with a {margin}-px margin")
    bottom, right = hh - h - margin, ww - w - margin
    mean = image.mean(dim=(-2, -1), keepdim=True)
    out = image - mean
    # reflect repeatedly: a margin larger than the image needs several reflections
    top_left = [margin, margin]
    rest = [bottom, right]
    while max(top_left + rest) > 0:
        ch, cw = out.shape[-2:]
        pt, pl = min(top_left[0], ch - 1), min(top_left[1], cw - 1)
        pb, pr = min(rest[0], ch - 1), min(rest[1], cw - 1)
        out = F.pad(out, (pl, pr, pt, pb), mode="reflect")
        top_left = [top_left[0] - pt, top_left[1] - pl]
        rest = [rest[0] - pb, rest[1] - pr]

    def fade(length: int, lo: int, hi: int) -> torch.Tensor:
        t = torch.ones(length, dtype=image.dtype, device=image.device)
        if lo > 0:
            t[:lo] = raised_cosine(lo, 0.0, image.device, image.dtype)
        if hi > 0:
            t[length - hi:] = raised_cosine(hi, 0.0, image.device, image.dtype).flip(0)
        return t

    window = fade(hh, margin, bottom)[:, None] * fade(ww, margin, right)[None, :]
    return out * window + mean


def psf_to_otf(psf: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Real FFT of PSFs (..., S, S) placed with their centre at pixel (0, 0) of an H × W grid
    → complex (..., H, W // 2 + 1)."""
    s = psf.shape[-1]
    h, w = shape
    if h < s or w < s:
        raise ValueError(f"a {s}×{s} PSF does not fit a {h}×{w} grid")
    grid = F.pad(psf, (0, w - s, 0, h - s))
    grid = torch.roll(grid, shifts=(-(s // 2), -(s // 2)), dims=(-2, -1))
    return torch.fft.rfft2(grid)


def gradient_otfs(shape: tuple[int, int], device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Real FFTs (H, W // 2 + 1) of the circular forward differences x[n + 1] − x[n] along W and H."""
    h, w = shape
    dx = torch.zeros(h, w, device=device)
    dx[0, 0], dx[0, -1] = -1.0, 1.0  # (D x)[n] = x[n + 1] − x[n] as a convolution
    dy = torch.zeros(h, w, device=device)
    dy[0, 0], dy[-1, 0] = -1.0, 1.0
    return torch.fft.rfft2(dx), torch.fft.rfft2(dy)


def circular_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Circular forward differences of (..., H, W) along W and along H (the adjoint pair of the OTFs)."""
    dx = torch.empty_like(x)
    torch.sub(x[..., :, 1:], x[..., :, :-1], out=dx[..., :, :-1])
    torch.sub(x[..., :, :1], x[..., :, -1:], out=dx[..., :, -1:])
    dy = torch.empty_like(x)
    torch.sub(x[..., 1:, :], x[..., :-1, :], out=dy[..., :-1, :])
    torch.sub(x[..., :1, :], x[..., -1:, :], out=dy[..., -1:, :])
    return dx, dy


def _second_difference(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Circular central second difference x[n − 1] − 2x[n] + x[n + 1] along ``dim`` (symmetric: its own adjoint)."""
    return torch.roll(x, 1, dim) - 2 * x + torch.roll(x, -1, dim)


def second_differences(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Circular second differences of (..., H, W): (∂xx, ∂yy, ∂xy) → three tensors shaped like ``x``;
    ∂xy is the forward difference along W of the forward difference along H."""
    return _second_difference(x, -1), _second_difference(x, -2), circular_gradients(circular_gradients(x)[1])[0]


def adjoint_second_differences(xx: torch.Tensor, yy: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`second_differences` applied to (∂xx, ∂yy, ∂xy) fields → one tensor."""
    zero = torch.zeros_like(xy)
    cross = adjoint_gradients(zero, adjoint_gradients(xy, zero))  # ∂xyᵀ = Dyᵀ Dxᵀ
    return _second_difference(xx, -1) + _second_difference(yy, -2) + cross


def _shrink_newton(v: torch.Tensor, beta: float, alpha: float, newton_steps: int = 8) -> torch.Tensor:
    """Per-element ``argmin_w |w|^α + β/2 (w − v)²`` for 0 < α < 1 by Newton's method from w = |v|
    (monotone: the stationarity condition is convex in w), compared with w = 0 → shaped like ``v``."""
    a = v.abs()
    w = a.clone()
    eps = 1e-12
    for _ in range(newton_steps):
        wc = w.clamp_min(eps)
        g = alpha * wc.pow(alpha - 1) + beta * (wc - a)
        dg = alpha * (alpha - 1) * wc.pow(alpha - 2) + beta
        step = torch.where(dg > 0, g / dg.clamp_min(eps), wc)
        w = (wc - step).clamp(0, None)
        w = torch.minimum(w, a)
    energy = w.pow(alpha) + 0.5 * beta * (w - a).square()
    keep = energy < 0.5 * beta * a.square()
    return torch.where(keep, w * torch.sign(v), torch.zeros_like(v))


UNIT_TABLE_TOP = 256.0  # the β-free lookup table of hyper_laplacian_shrink covers |v| / s in [0, this]
UNIT_TABLE_POINTS = 65536


@functools.lru_cache(maxsize=16)
def _unit_shrink_table(alpha: float, dtype: torch.dtype, device: torch.device
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The minimiser of ``|u|^α + ½ (u − t)²`` on :data:`UNIT_TABLE_POINTS` values of t from 0 to
    :data:`UNIT_TABLE_TOP` (computed once per α) → (low, high, jump), each (points − 1,): the two ends
    of every interval, and whether the minimiser jumps from 0 inside it (bool). Three 1-D tables, not
    one (points − 1, 2): gathering from each is faster than gathering rows."""
    grid = torch.linspace(0.0, UNIT_TABLE_TOP, UNIT_TABLE_POINTS, dtype=torch.float64, device=device)
    table = _shrink_newton(grid, 1.0, alpha).to(dtype)
    low, high = table[:-1].contiguous(), table[1:].contiguous()
    return low, high, (low == 0) & (high > 0)


def hyper_laplacian_shrink(v: torch.Tensor, beta: float, alpha: float, points: int = 16384) -> torch.Tensor:
    """Per-element ``argmin_w |w|^α + β/2 (w − v)²`` for 0 < α ≤ 1 → a tensor shaped like ``v``.

    α = 1 is soft thresholding. For α < 1 the minimiser depends on |v| only, and on β only through a
    scale: with ``s = β^(−1/(2−α))``, ``w(v) = s · u(v / s)`` where u is the minimiser at β = 1. So u
    is solved exactly once per α (Newton, :func:`_shrink_newton`) on a table of t = |v| / s in
    [0, :data:`UNIT_TABLE_TOP`] and read off by linear interpolation (Krishnan & Fergus 2009's lookup
    table, without a new table per β: within 1e-5 of the exact solve). Tensors of at most ``points``
    elements, the elements beyond the table, and those in the interval where the minimiser jumps from 0
    are solved exactly.
    """
    if alpha >= 1:
        return torch.sign(v) * (v.abs() - 1.0 / beta).clamp_min(0)
    if v.numel() <= points:
        return _shrink_newton(v, beta, alpha)
    scale = beta ** (-1.0 / (2.0 - alpha))
    a = v.abs()
    lows, highs, jumps = _unit_shrink_table(float(alpha), v.dtype, v.device)
    last = lows.shape[0] - 1  # the last interval's index
    position = a.flatten() * ((last + 1) / (UNIT_TABLE_TOP * scale))
    index = position.long().clamp_(max=last)
    low, high = torch.index_select(lows, 0, index), torch.index_select(highs, 0, index)
    w = torch.lerp(low, high, position - index).mul_(scale)
    exact = torch.index_select(jumps, 0, index) | (position > last + 1)  # the jump from 0, and beyond the table
    if bool(exact.any()):
        w[exact] = _shrink_newton(a.flatten()[exact], beta, alpha)
    return w.view_as(v).copysign(v)


def adjoint_gradients(dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`circular_gradients` applied to (dx, dy) of (..., H, W) → (..., H, W):
    ``Dxᵀ dx + Dyᵀ dy`` (its FFT is ``conj(gx)·F(dx) + conj(gy)·F(dy)`` with one transform, not two)."""
    out = torch.empty_like(dx)
    torch.sub(dx[..., :, :-1], dx[..., :, 1:], out=out[..., :, 1:])  # (Dxᵀ u)[n] = u[n − 1] − u[n]
    torch.sub(dx[..., :, -1:], dx[..., :, :1], out=out[..., :, :1])
    out[..., 1:, :] += dy[..., :-1, :] - dy[..., 1:, :]
    out[..., :1, :] += dy[..., -1:, :] - dy[..., :1, :]
    return out


def shift_image(image: torch.Tensor, offset: tuple[float, float]) -> torch.Tensor:
    """Translate (B, C, H, W) by a (sub-pixel) ``offset`` = (dy, dx) pixels → (B, C, H, W): the content
    at p moves to p + offset.

    Band-limited (a phase ramp in the Fourier domain, no interpolation blur) on the image extended by
    :func:`extend_periodic`, so nothing wraps around from the opposite border.
    """
    dy, dx = (float(v) for v in offset)
    if dy == 0 and dx == 0:
        return image
    _, _, h, w = image.shape
    margin = int(math.ceil(max(abs(dy), abs(dx)))) + 8
    size = (fft_size(h + 2 * margin), fft_size(w + 2 * margin))
    extended = extend_periodic(image.float(), margin, size)
    fy = torch.fft.fftfreq(size[0], device=image.device)[:, None]
    fx = torch.fft.rfftfreq(size[1], device=image.device)[None, :]
    ramp = torch.exp(-2j * math.pi * (fy * dy + fx * dx))
    moved = torch.fft.irfft2(torch.fft.rfft2(extended) * ramp, s=size)
    return moved[..., margin:margin + h, margin:margin + w]


def saturated_frame(
    clipped: torch.Tensor | None, batch: int, size: tuple[int, int], margin: int, device: torch.device
) -> torch.Tensor | None:
    """Saturated pixels (B, 1, h, w) bool of an image placed at ``margin`` in a frame of ``size``
    (:func:`extend_periodic`) → (batch, 1, *size) bool on ``device``, False in the margin; None when
    none is saturated."""
    if clipped is None or not bool(clipped.any()):
        return None
    h, w = clipped.shape[-2:]
    frame = torch.zeros((batch, 1, *size), dtype=torch.bool, device=device)
    frame[..., margin:margin + h, margin:margin + w] = clipped.to(device)
    return frame


def fill_saturated(data: torch.Tensor, reblurred: torch.Tensor, saturated: torch.Tensor | None) -> torch.Tensor:
    """The data an image or kernel step fits: ``data`` where it is not saturated, ``max(reblurred,
    data)`` where it is (a clipped value is a lower bound) — all of one shape; ``data`` when None."""
    if saturated is None:
        return data
    return torch.where(saturated, torch.maximum(reblurred, data), data)


def _channel_psf(psf: torch.Tensor, c: int) -> torch.Tensor:
    """The PSF of channel ``c`` of a :func:`deconvolve` problem: ``psf`` (S, S) or (B or 1, 1 or C, S, S)
    → its channel ``c`` where it has one per channel, else ``psf`` as it is."""
    return psf[:, c:c + 1] if psf.dim() == 4 and psf.shape[1] > 1 else psf


def deconvolve(
    blurry: torch.Tensor,  # (B, C, H, W), values in [0, 1]
    psf: torch.Tensor,  # (S, S), or (B or 1, 1 or C, S, S)
    *,
    weight: float = 3000.0,
    alpha: float = 0.8,
    beta_start: float = 1.0,
    beta_rate: float = 2 * math.sqrt(2),
    beta_max: float = 256.0,
    margin: int | None = None,
    fill_border: bool = True,
    clipped: torch.Tensor | None = None,
    clamp: bool = True,
    second_order: float = 0.0,
) -> torch.Tensor:
    """Non-blind hyper-Laplacian deconvolution with one PSF per image → (B, C, H, W), clipped to [0, 1]
    (unless not ``clamp``: a light brighter than white then keeps the brightness its blur says it has).

    ``weight`` is the data weight λ (higher: less regularisation; ~1/σ² scale for noise σ), ``alpha``
    the prior's exponent, β runs from ``beta_start`` by ``beta_rate`` while below ``beta_max``.
    ``margin`` (default 2·S) is the border extension of :func:`extend_periodic`. With
    ``fill_border`` the margin's data are not trusted: before every x-step they are replaced by the
    current estimate blurred (k ⊛ x), so only the image's own pixels constrain x (the unknown-border
    model; the reflected margin is not the blur of anything for a non-symmetric PSF).
    ``clipped`` (B, C, H, W) bool marks saturated pixels (:func:`clipped_mask`): their true value is
    at least the recorded one, so there the data term only pulls ``k ⊛ x`` up to ``y``, never down
    (a one-sided data term, after Whyte et al. 2014): a light that clipped does not ring.
    ``second_order`` > 0 adds ``second_order · Σ |∂²x|`` over the second differences ∂xx, ∂yy, ∂xy
    (:func:`second_differences`; an L1 prior, soft-thresholded in the same splitting): smooth ramps and
    shading keep their shape where first differences alone make them staircases.
    """
    if psf.dim() == 2:
        psf = psf[None, None]
    s = psf.shape[-1]
    if psf.shape[-2] != s or s % 2 == 0:
        raise ValueError(f"PSF must be square with an odd side, got {tuple(psf.shape)}")
    b, c, h, w = blurry.shape
    if c > 1:  # independent problems, one per channel: spread over the thread pool (utils.threads)
        knobs = dict(weight=weight, alpha=alpha, beta_start=beta_start, beta_rate=beta_rate, beta_max=beta_max,
                     margin=margin, fill_border=fill_border, clamp=clamp, second_order=second_order)

        def channel(i: int) -> torch.Tensor:
            return deconvolve(blurry[:, i:i + 1], _channel_psf(psf, i), **knobs,
                              clipped=None if clipped is None else clipped[:, i:i + 1])

        return torch.cat(parallel_map(channel, range(c)), dim=1)
    margin = 2 * s if margin is None else margin
    size = (fft_size(h + 2 * margin), fft_size(w + 2 * margin))
    y = extend_periodic(blurry.float(), margin, size)
    otf = psf_to_otf(psf.float().to(y.device), size)
    gx, gy = gradient_otfs(size, y.device)
    grad_energy = gx.abs().square() + gy.abs().square()
    if second_order > 0:  # |OTF|² of ∂xx, ∂yy, ∂xy: |gx|⁴, |gy|⁴, |gx|²|gy|²
        ex, ey = gx.abs().square(), gy.abs().square()
        grad_energy = grad_energy + second_order * (ex.square() + ey.square() + ex * ey)
    spectrum = torch.fft.rfft2(y)  # of the current estimate x
    numerator = weight * otf.conj() * spectrum
    kernel_energy = weight * otf.abs().square()
    inside = torch.zeros(size, dtype=torch.bool, device=y.device)
    inside[margin:margin + h, margin:margin + w] = True
    saturated = saturated_frame(clipped, b, size, margin, y.device)
    x = y
    beta = beta_start
    while beta < beta_max:
        if (fill_border or saturated is not None) and beta > beta_start:
            reblurred = torch.fft.irfft2(otf * spectrum, s=size)
            data = torch.where(inside, y, reblurred) if fill_border else y
            data = fill_saturated(data, reblurred, saturated)  # saturated pixels are inside: data is y there
            numerator = weight * otf.conj() * torch.fft.rfft2(data)
        dx, dy = circular_gradients(x)
        shrunk = adjoint_gradients(hyper_laplacian_shrink(dx, beta, alpha), hyper_laplacian_shrink(dy, beta, alpha))
        if second_order > 0:
            soft = [hyper_laplacian_shrink(d, beta, 1.0) for d in second_differences(x)]
            shrunk = shrunk + second_order * adjoint_second_differences(*soft)
        spectrum = (numerator + beta * torch.fft.rfft2(shrunk)) * (kernel_energy + beta * grad_energy).reciprocal()
        x = torch.fft.irfft2(spectrum, s=size)
        beta *= beta_rate
    x = x[..., margin:margin + h, margin:margin + w]
    return x.clamp(0, 1) if clamp else x


TILE_REACH = 4  # deconvolve_tiled: windows reach this many PSF sides past their tile


def tile_spans(length: int, tile: int, reach: int) -> list[tuple[int, int, torch.Tensor]]:
    """Overlapping tiles of one axis of ``length`` px: cores of at most ``tile`` px, each window grown
    by ``reach`` px on both sides (cut to the axis) → [(start, stop, weight)], ``weight`` (stop − start,)
    the tile's share of each pixel of its window: linear ramps ``reach`` px wide centred on the core
    boundaries, 1 in between (and out to the axis' ends), 0 on the outer ``reach`` / 2 px of the window;
    the shares sum to 1."""
    n = max(1, math.ceil(length / tile))
    bounds = [round(i * length / n) for i in range(n + 1)]
    half = reach / 2
    spans = []
    for i in range(n):
        start, stop = max(0, bounds[i] - reach), min(length, bounds[i + 1] + reach)
        p = torch.arange(start, stop, dtype=torch.float32) + 0.5
        weight = torch.ones_like(p)
        if i > 0:
            weight = weight * ((p - (bounds[i] - half)) / reach).clamp(0, 1)
        if i < n - 1:
            weight = weight * (((bounds[i + 1] + half) - p) / reach).clamp(0, 1)
        spans.append((start, stop, weight))
    return spans


def deconvolve_tiled(blurry: torch.Tensor, psf: torch.Tensor, tile: int | None, **knobs: object) -> torch.Tensor:
    """:func:`deconvolve` of (B, C, H, W) with one PSF (S, S) in overlapping tiles of at most ``tile``² px
    (None, or an image within one tile: one whole deconvolution) → (B, C, H, W) in [0, 1].

    Each tile is deconvolved on its own with the unknown-border model of :func:`deconvolve` on a window
    :data:`TILE_REACH`·S px wider than its core on every side, and the tiles are blended by linear ramps
    as wide, centred on the core boundaries (:func:`tile_spans`): the outer half of that band, where the
    artefacts of the window's edge are, is not used. Measured (1400×1100 RGB, a 31-px PSF, 512-px
    tiles): a reach of 2·S costs 0.1 dB against the whole image, 4·S nothing (±0.001 dB). The work per pixel
    stays that of a photo of one tile: on a 12-megapixel photo the whole-image FFTs and the full-size
    temporaries of every splitting step cost more per pixel and several GB. ``knobs``: those of
    :func:`deconvolve` (``clipped`` (B, C, H, W) bool is cut per tile)."""
    h, w = blurry.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return deconvolve(blurry, psf, **knobs)
    s = psf.shape[-1]
    clipped = knobs.pop("clipped", None)
    out = torch.zeros_like(blurry, dtype=torch.float32)
    reach = TILE_REACH * s
    tiles = [((..., slice(top, bottom), slice(left, right)), wy[:, None] * wx[None, :])
             for top, bottom, wy in tile_spans(h, tile, reach) for left, right, wx in tile_spans(w, tile, reach)]
    jobs = [(window, c) for window, _ in tiles for c in range(blurry.shape[1])]

    def channel_of_tile(job: tuple[tuple, int]) -> torch.Tensor:  # what deconvolve does per channel
        window, c = job
        return deconvolve(blurry[window][:, c:c + 1], _channel_psf(psf, c), **knobs,
                          clipped=None if clipped is None else clipped[window][:, c:c + 1])

    # every (tile, channel) on the pool at once: 3 channels of one tile at a time kept one of 2 threads idle
    parts = iter(parallel_map(channel_of_tile, jobs))
    for window, weight in tiles:
        part = torch.cat([next(parts) for _ in range(blurry.shape[1])], dim=1)
        out[window] += weight.to(out) * part.float()
    return out.clamp(0, 1)


def deconvolve_cells(
    blurry: torch.Tensor,  # (B, C, H, W), values in [0, 1]
    psfs: torch.Tensor,  # (B or 1, gh, gw, S, S): one PSF per CELL × CELL block
    cell: int = CELL,
    offsets: torch.Tensor | None = None,  # (gh, gw, 2): (dy, dx) each cell's result is moved by
    **knobs: float,
) -> torch.Tensor:
    """Non-blind deconvolution with a PSF map → (B, C, H, W) in [0, 1].

    Each cell's PSF deconvolves a window covering the support of that cell's blending weight plus
    a margin of 2·S (so window-edge artefacts are cut off), and the results are blended with the
    partition of unity of :func:`models.psf_ops.blur_cells`. A 1×1 map is one :func:`deconvolve`.
    With ``offsets``, each cell's deconvolution is moved by its offset (:func:`shift_image`) before
    the blend (sub-pixel registration, :func:`deblurring.alternating.centre_subpixel`).
    ``knobs`` are those of :func:`deconvolve`.
    """
    b, c, h, w = blurry.shape
    gh, gw = psfs.shape[1:3]
    if (gh, gw) != (math.ceil(h / cell), math.ceil(w / cell)):
        raise ValueError(f"PSF map {gh}×{gw} does not match a {h}×{w} image with {cell}-px cells")
    if gh == 1 and gw == 1:
        x = deconvolve(blurry, psfs[:, 0, 0, None], **knobs)
        return x if offsets is None else shift_image(x, offsets[0, 0].tolist()).clamp(0, 1)
    s = psfs.shape[-1]
    extra = 2 * s
    wy = cell_weights(gh, h, cell).to(blurry)
    wx = cell_weights(gw, w, cell).to(blurry)
    out = torch.zeros_like(blurry, dtype=torch.float32)
    for i in range(gh):
        rows = torch.nonzero(wy[i] > 0)[:, 0]
        top, bottom = int(rows[0]), int(rows[-1]) + 1
        t0, b0 = max(0, top - extra), min(h, bottom + extra)
        for j in range(gw):
            cols = torch.nonzero(wx[j] > 0)[:, 0]
            left, right = int(cols[0]), int(cols[-1]) + 1
            l0, r0 = max(0, left - extra), min(w, right + extra)
            x = deconvolve(blurry[..., t0:b0, l0:r0], psfs[:, i, j, None], **knobs)
            if offsets is not None:
                x = shift_image(x, offsets[i, j].tolist())
            blend = wy[i, top:bottom, None] * wx[j, None, left:right]
            out[..., top:bottom, left:right] += blend * x[..., top - t0:bottom - t0, left - l0:right - l0]
    return out.clamp(0, 1)


def clipped_mask(image: torch.Tensor, level: float = 254.5 / 255) -> torch.Tensor:
    """Saturated pixels of (B, C, H, W) images in [0, 1]: values at or above ``level`` (the top 8-bit
    code) and their 8 neighbours (noise lets the rim of a clipped area read just below the top)
    → bool (B, C, H, W)."""
    return F.max_pool2d((image >= level).float(), 3, 1, 1) > 0


def estimate_noise(image: torch.Tensor) -> float:
    """Robust estimate of the white-noise σ of (B, C, H, W) images in [0, 1] (Immerkær's Laplacian
    difference mask, median absolute response) → one number (median over channels)."""
    mask = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]], device=image.device)
    x = image.float().flatten(0, 1)[:, None]
    response = F.conv2d(x, mask[None, None]).abs().flatten(1)
    sigma = response.median(dim=1).values / (0.6745 * 6.0)
    return float(sigma.median())


def hyper_laplacian_energy(
    sharp: torch.Tensor, blurry: torch.Tensor, psf: torch.Tensor, weight: float = 3000.0, alpha: float = 0.8
) -> float:
    """The objective of :func:`deconvolve`, ``weight/2 ‖k ⊛ x − y‖² + Σ |∂x|^α``, for (B, C, H, W)
    images and a PSF (S, S) (reflect border, :func:`models.psf_ops.convolve`) → a number."""
    x = sharp.float()
    k = psf if psf.dim() == 4 else psf[None, None]
    data = (convolve(x, k.float()) - blurry.float()).square().sum()
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    return float(weight / 2 * data + dx.abs().pow(alpha).sum() + dy.abs().pow(alpha).sum())
