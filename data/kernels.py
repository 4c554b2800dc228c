"""Random blur kernels: camera shake (two models), linear motion, defocus disk and Gaussian.

Every kernel is a float32 ``size × size`` array (``size`` odd), non-negative, summing to 1, with its
centre of mass at (or, for shake, within a fraction of a pixel of) the central pixel, so that
blurring does not shift the image. All randomness comes from the ``numpy.random.Generator`` passed
in: the same generator state gives the same kernel.

``intensity`` in (0, 1] scales how far a kernel reaches: 1 uses (almost) the whole ``size × size``
support, 0.1 gives a small blur.

Camera shake follows the idea of Boracchi & Foi (2012), "Modeling the performance of image
restoration from motion blur": the camera position is a 2-D random walk whose velocity has inertia,
a random (Gaussian) acceleration, a weak pull back towards the start, and rare impulsive jerks that
reverse the direction abruptly. The continuous path is rasterised by splatting densely spaced
points bilinearly onto the pixel grid, each weighted by the time the camera spends there.

``trajectory`` is the physical version of the same idea (Boracchi & Foi 2012, Sec. 3): the camera's
acceleration is a smooth random process over the exposure, its velocity and position are its
integrals, and the exposure is sampled at equal time steps. Nothing renormalises the speed, so
where the hand slows down or turns round the streak dwells and is brighter — the bright knots and
hooks of measured camera-shake kernels (Levin et al. 2009).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

KERNEL_KINDS = ("shake", "linear", "defocus", "gaussian", "trajectory")
DEFAULT_KINDS = ("shake", "linear", "defocus", "gaussian")  # what random_kernel draws when no kinds are given


def _check_size(size: int) -> None:
    if size < 3 or size % 2 == 0:
        raise ValueError(f"kernel size must be an odd integer >= 3, got {size}")


def _normalise(kernel: np.ndarray) -> np.ndarray:
    kernel = np.clip(kernel, 0.0, None)
    total = kernel.sum()
    if not np.isfinite(total) or total <= 0:  # cannot happen for valid parameters; keep a delta
        kernel = np.zeros_like(kernel)
        kernel[kernel.shape[0] // 2, kernel.shape[1] // 2] = 1.0
        total = 1.0
    return (kernel / total).astype(np.float32)


def splat_points(points: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Rasterise weighted sub-pixel points bilinearly onto a ``size × size`` grid.

    ``points``: (N, 2) array of (x, y) pixel coordinates (x = column, y = row; pixel centres at
    integers); ``weights``: (N,). Points must lie inside [0, size-1]² (they are clipped otherwise).
    Returns a float64 (size, size) array whose sum equals ``weights.sum()``.
    """
    pts = np.clip(points, 0.0, size - 1.0)
    x0 = np.floor(pts[:, 0]).astype(np.int64)
    y0 = np.floor(pts[:, 1]).astype(np.int64)
    x0 = np.minimum(x0, size - 2)
    y0 = np.minimum(y0, size - 2)
    fx = pts[:, 0] - x0
    fy = pts[:, 1] - y0
    grid = np.zeros(size * size, dtype=np.float64)
    for dy, dx, w in (
        (0, 0, (1 - fx) * (1 - fy)),
        (0, 1, fx * (1 - fy)),
        (1, 0, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        np.add.at(grid, (y0 + dy) * size + (x0 + dx), w * weights)
    return grid.reshape(size, size)


def _densify(path: np.ndarray, times: np.ndarray, spacing: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Resample a polyline (M, 2) so consecutive points are at most ``spacing`` px apart.

    ``times`` (M-1,) is the time spent on each segment; each output point carries its share of
    that time. Returns (points (N, 2), weights (N,)).
    """
    seg = np.diff(path, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    counts = np.maximum(1, np.ceil(lengths / spacing).astype(np.int64))
    seg_index = np.repeat(np.arange(len(seg)), counts)
    # position of each sample inside its segment: midpoints of ``counts`` equal sub-intervals
    offsets = np.arange(seg_index.size) - np.repeat(np.cumsum(counts) - counts, counts)
    frac = (offsets + 0.5) / counts[seg_index]
    points = path[seg_index] + seg[seg_index] * frac[:, None]
    weights = (times / counts)[seg_index]
    return points, weights


def _fit_and_splat(points: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Move the weighted centroid to the kernel centre, shrink to fit the support, and splat."""
    centroid = (points * weights[:, None]).sum(axis=0) / weights.sum()
    rel = points - centroid
    reach = np.abs(rel).max() if rel.size else 0.0
    limit = (size - 1) / 2 - 1.0  # keep one pixel free for the bilinear footprint
    if reach > limit:
        rel = rel * (limit / reach)
    centre = (size - 1) / 2
    return splat_points(rel + centre, weights, size)


def shake_trajectory(
    rng: np.random.Generator,
    length: float,
    n_steps: int = 96,
) -> tuple[np.ndarray, np.ndarray]:
    """A random camera-shake path of total arc length about ``length`` pixels.

    Returns (path (n_steps, 2) of (x, y) positions starting at the origin, times (n_steps-1,) the
    relative time spent on each segment, summing to 1). The walk: velocity with inertia, Gaussian
    acceleration (the "anxiety" of the hand), a pull back towards the start, and rare jerks that
    turn the motion around; the speed varies smoothly so some parts of the path are dwelt on longer.
    """
    step = length / (n_steps - 1)
    anxiety = rng.uniform(0.05, 0.35)  # size of the random acceleration, relative to the step
    pull = rng.uniform(0.0, 0.3)  # centripetal pull towards the start, per step
    jerk_prob = rng.uniform(0.0, 0.04)  # chance of an impulsive jerk at each step
    angle = rng.uniform(0.0, 2 * np.pi)
    velocity = np.array([np.cos(angle), np.sin(angle)]) * step
    pos = np.zeros(2)
    path = np.zeros((n_steps, 2))
    noise = rng.normal(size=(n_steps - 1, 2))
    jerks = rng.random(n_steps - 1) < jerk_prob
    jerk_turn = rng.uniform(-0.5, 0.5, n_steps - 1)
    for t in range(n_steps - 1):
        accel = anxiety * step * noise[t] - pull * (pos / max(length, 1e-6)) * step
        if jerks[t]:  # impulsive jerk: turn sharply (roughly reverse) with a burst of speed
            c, s = np.cos(np.pi + jerk_turn[t]), np.sin(np.pi + jerk_turn[t])
            accel = accel + 2.0 * np.array([c * velocity[0] - s * velocity[1], s * velocity[0] + c * velocity[1]])
        velocity = velocity + accel
        speed = np.hypot(*velocity)
        velocity = velocity * (step / speed) if speed > 0 else np.array([step, 0.0])
        pos = pos + velocity
        path[t + 1] = pos
    # smoothly varying speed: time per segment follows a low-frequency random curve
    knots = rng.normal(0.0, rng.uniform(0.0, 0.8), size=6)
    slow = np.exp(np.interp(np.linspace(0, 5, n_steps - 1), np.arange(6), knots))
    times = slow / slow.sum()
    return path, times


def shake_kernel(rng: np.random.Generator, size: int, intensity: float = 1.0) -> np.ndarray:
    """A camera-shake kernel (size × size float32, sums to 1).

    The path is scaled so that its larger bounding-box side is ``intensity · (size - 3)`` times a
    random factor in [0.6, 1]; it is then centred on its (time-weighted) centroid.
    """
    _check_size(size)
    path, times = shake_trajectory(rng, length=1.0)
    extent = np.ptp(path, axis=0).max()
    span = intensity * (size - 3) * rng.uniform(0.6, 1.0)
    if extent > 0:
        path = path * (span / extent)
    points, weights = _densify(path, times)
    return _normalise(_fit_and_splat(points, weights, size))


def physical_trajectory(rng: np.random.Generator, n_steps: int = 512) -> np.ndarray:
    """A camera path over one exposure from random acceleration: (n_steps, 2) (x, y) positions at
    equal time steps, starting at the origin (arbitrary units; the caller scales it).

    The acceleration is white Gaussian noise smoothed over a random share of the exposure (how
    jittery the hand is), plus a spring pulling back towards the start; the start velocity has a
    random direction and a log-uniform size relative to the acceleration, so paths range from
    nearly straight streaks to hooks and loops that stop and turn round (dwell points).
    """
    dt = 1.0 / (n_steps - 1)
    smooth = rng.uniform(0.03, 0.25) * n_steps  # correlation length of the acceleration, in steps
    taps = np.exp(-0.5 * (np.arange(-3 * int(smooth), 3 * int(smooth) + 1) / smooth) ** 2)
    noise = rng.normal(size=(n_steps + taps.size, 2))
    accel = np.stack([np.convolve(noise[:, i], taps / np.sqrt((taps ** 2).sum()), "valid")[:n_steps]
                      for i in range(2)], axis=1)
    spring = rng.uniform(0.0, 30.0)  # stiffness of the pull back (per exposure²)
    angle = rng.uniform(0.0, 2 * np.pi)
    velocity = np.array([np.cos(angle), np.sin(angle)]) * np.exp(rng.uniform(np.log(0.05), np.log(3.0)))
    position = np.zeros(2)
    path = np.zeros((n_steps, 2))
    for t in range(1, n_steps):
        velocity = velocity + (accel[t] - spring * position) * dt
        position = position + velocity * dt
        path[t] = position
    return path


def trajectory_kernel(rng: np.random.Generator, size: int, intensity: float = 1.0) -> np.ndarray:
    """A camera-shake kernel from :func:`physical_trajectory` (size × size float32, sums to 1): equal
    time on every step of the path, so slow parts are bright. Scaled like :func:`shake_kernel`: the
    larger bounding-box side is ``intensity · (size - 3)`` times a random factor in [0.6, 1]."""
    _check_size(size)
    path = physical_trajectory(rng)
    extent = np.ptp(path, axis=0).max()
    span = intensity * (size - 3) * rng.uniform(0.6, 1.0)
    if extent > 0:
        path = path * (span / extent)
    points, weights = _densify(path, np.full(len(path) - 1, 1.0 / (len(path) - 1)))
    return _normalise(_fit_and_splat(points, weights, size))


def linear_kernel(rng: np.random.Generator, size: int, intensity: float = 1.0) -> np.ndarray:
    """Uniform linear motion at a random angle, sub-pixel accurate (size × size float32, sums to 1).

    The segment length is ``intensity · (size - 3)`` pixels; it is centred on the central pixel.
    """
    _check_size(size)
    length = max(0.0, intensity * (size - 3))
    angle = rng.uniform(0.0, np.pi)
    half = 0.5 * length * np.array([np.cos(angle), np.sin(angle)])
    path = np.stack([-half, half])
    points, weights = _densify(path, np.ones(1), spacing=0.1)
    return _normalise(splat_points(points + (size - 1) / 2, weights, size))


def defocus_kernel(rng: np.random.Generator, size: int, intensity: float = 1.0) -> np.ndarray:
    """An anti-aliased uniform disk (out-of-focus blur) of radius up to ``intensity · (size-1)/2``.

    Pixel coverage is approximated by clipping ``radius + 0.5 - distance`` to [0, 1], so edges are
    smooth and the radius varies continuously.
    """
    _check_size(size)
    max_radius = max(0.5, intensity * ((size - 1) / 2 - 0.5))
    radius = rng.uniform(min(0.5, max_radius), max_radius)
    c = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size]
    dist = np.hypot(xx - c, yy - c)
    return _normalise(np.clip(radius + 0.5 - dist, 0.0, 1.0))


def gaussian_kernel(rng: np.random.Generator, size: int, intensity: float = 1.0) -> np.ndarray:
    """A Gaussian with random (possibly anisotropic) widths and orientation, truncated to size × size.

    The larger standard deviation is at most ``intensity · (size-1)/6`` so truncation is negligible.
    """
    _check_size(size)
    max_sigma = max(0.3, intensity * (size - 1) / 6)
    s1 = rng.uniform(0.3, max_sigma)
    s2 = s1 * rng.uniform(0.3, 1.0)
    theta = rng.uniform(0.0, np.pi)
    c = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size] - c
    u = np.cos(theta) * xx + np.sin(theta) * yy
    v = -np.sin(theta) * xx + np.cos(theta) * yy
    return _normalise(np.exp(-0.5 * ((u / s1) ** 2 + (v / s2) ** 2)))


_GENERATORS = {
    "shake": shake_kernel,
    "linear": linear_kernel,
    "defocus": defocus_kernel,
    "gaussian": gaussian_kernel,
    "trajectory": trajectory_kernel,
}


def random_kernel(
    rng: np.random.Generator,
    size: int = 31,
    kinds: Sequence[str] = DEFAULT_KINDS,
    probs: Sequence[float] | None = None,
    intensity: tuple[float, float] | float = (0.1, 1.0),
) -> np.ndarray:
    """Draw one blur kernel: (size, size) float32, non-negative, sums to 1.

    ``kinds`` picks among :data:`KERNEL_KINDS` (default :data:`DEFAULT_KINDS`) with probabilities ``probs``
    (uniform when None); ``intensity`` is a value in (0, 1] or a (low, high) range drawn uniformly.
    """
    _check_size(size)
    if not kinds:
        raise ValueError("kinds must name at least one kernel kind")
    unknown = [k for k in kinds if k not in _GENERATORS]
    if unknown:
        raise ValueError(f"unknown kernel kind(s) {unknown}, expected some of {list(KERNEL_KINDS)}")
    if probs is None:
        p = np.full(len(kinds), 1.0 / len(kinds))
    else:
        p = np.asarray(probs, dtype=np.float64)
        if p.shape != (len(kinds),) or np.any(p < 0) or p.sum() <= 0:
            raise ValueError(f"probs {list(probs)} must be {len(kinds)} non-negative weights, not all zero")
        p = p / p.sum()
    kind = kinds[int(rng.choice(len(kinds), p=p))]
    if isinstance(intensity, (int, float)):
        level = float(intensity)
    else:
        low, high = intensity
        level = rng.uniform(low, high)
    if not 0.0 < level <= 1.0:
        raise ValueError(f"kernel intensity must lie in (0, 1], got {level}")
    return _GENERATORS[kind](rng, size, level)


@dataclass
class KernelSampler:
    """Kernel settings from a config, drawn with :meth:`sample`.

    ``size`` odd; ``kinds``/``probs`` as in :func:`random_kernel`; ``intensity`` = (low, high).
    """

    size: int = 31
    kinds: Sequence[str] = DEFAULT_KINDS
    probs: Sequence[float] | None = None
    intensity: tuple[float, float] = field(default=(0.1, 1.0))

    def __post_init__(self) -> None:
        # validate once, eagerly, with a throwaway generator
        random_kernel(np.random.default_rng(0), self.size, self.kinds, self.probs, tuple(self.intensity))

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One kernel, (size, size) float32 summing to 1."""
        return random_kernel(rng, self.size, self.kinds, self.probs, tuple(self.intensity))


def random_psfs(sampler: KernelSampler, rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """``count`` kernels of ``sampler`` placed in a ``size × size`` frame at a random integer shift
    (uniform, up to the margin ``(size − sampler.size) // 2`` in each direction): (count, size, size)
    float32, each summing to 1. The auto-encoder batch of the psf kernel space (``train.kernel_batch``)."""
    margin = (size - sampler.size) // 2
    if margin < 0:
        raise ValueError(f"kernels of {sampler.size} px do not fit a {size} px PSF")
    out = np.zeros((count, size, size), dtype=np.float32)
    for i in range(count):
        dy, dx = rng.integers(-margin, margin + 1, size=2) if margin else (0, 0)
        top, left = margin + dy, margin + dx
        out[i, top:top + sampler.size, left:left + sampler.size] = sampler.sample(rng)
    return out


def trajectory_psfs(count: int, kernel_size: int, frame: int, intensity: Sequence[float], seed: int) -> np.ndarray:
    """``count`` trajectory kernels of ``kernel_size`` px, centred in ``frame`` × ``frame``:
    (count, frame, frame) float32, each summing to 1; reach drawn uniformly in ``intensity``."""
    rng = np.random.default_rng(seed)
    out = np.zeros((count, frame, frame), dtype=np.float32)
    offset = (frame - kernel_size) // 2
    low, high = intensity
    for i in range(count):
        out[i, offset:offset + kernel_size, offset:offset + kernel_size] = trajectory_kernel(
            rng, kernel_size, float(rng.uniform(low, high)))
    return out
