"""Properties of the random blur-kernel generator (data.kernels)."""

from __future__ import annotations

import numpy as np
import pytest

from data.kernels import (
    KERNEL_KINDS,
    KernelSampler,
    defocus_kernel,
    linear_kernel,
    random_kernel,
    shake_kernel,
    splat_points,
)


def _centre_of_mass(k: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0:k.shape[0], 0:k.shape[1]]
    return np.array([(k * yy).sum(), (k * xx).sum()]) / k.sum()


def test_properties_over_1000_draws():
    rng = np.random.default_rng(123)
    seen = set()
    for i in range(1000):
        size = (15, 21, 31)[i % 3]
        kind = KERNEL_KINDS[i % len(KERNEL_KINDS)]
        k = random_kernel(rng, size, kinds=[kind])
        seen.add(kind)
        assert k.shape == (size, size) and k.dtype == np.float32
        assert np.all(np.isfinite(k))
        assert k.min() >= 0.0
        assert abs(float(k.sum(dtype=np.float64)) - 1.0) < 1e-5
        offset = _centre_of_mass(k) - (size - 1) / 2
        assert np.abs(offset).max() < 0.5, (kind, offset)  # blurring does not shift the image
        # some mass must lie away from the border row/column (kernels fit their support)
        assert k[0].sum() + k[-1].sum() + k[:, 0].sum() + k[:, -1].sum() < 0.05
    assert seen == set(KERNEL_KINDS)


def test_same_seed_same_kernels_and_different_seeds_differ():
    a = [random_kernel(np.random.default_rng(7), 31) for _ in range(3)]
    b = [random_kernel(np.random.default_rng(7), 31) for _ in range(3)]
    c = random_kernel(np.random.default_rng(8), 31)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c)


def test_intensity_controls_extent():
    def support_radius(k):
        ys, xs = np.nonzero(k > 1e-4)
        return max(np.abs(ys - 15).max(), np.abs(xs - 15).max())

    for make in (shake_kernel, linear_kernel, defocus_kernel):
        small = np.mean([support_radius(make(np.random.default_rng(s), 31, 0.15)) for s in range(20)])
        large = np.mean([support_radius(make(np.random.default_rng(s), 31, 1.0)) for s in range(20)])
        assert large > 2 * small, make.__name__


def test_linear_kernel_is_a_line_at_the_drawn_angle():
    k = linear_kernel(np.random.default_rng(3), 31, 1.0)
    yy, xx = np.mgrid[0:31, 0:31] - 15.0
    cov = np.cov(np.stack([xx.ravel(), yy.ravel()]), aweights=k.ravel())
    eig = np.linalg.eigvalsh(cov)
    assert eig[0] < 0.1 * eig[1]  # elongated: one direction carries almost all the spread


def test_splat_is_subpixel_and_preserves_mass_and_centroid():
    pts = np.array([[3.25, 4.75], [1.0, 1.0]])
    grid = splat_points(pts, np.array([2.0, 1.0]), 7)
    assert grid.sum() == pytest.approx(3.0)
    assert grid[4, 3] == pytest.approx(2.0 * 0.75 * 0.25)
    assert grid[1, 1] == pytest.approx(1.0)


def test_invalid_arguments_are_rejected():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="odd"):
        random_kernel(rng, 30)
    with pytest.raises(ValueError, match="unknown kernel kind"):
        random_kernel(rng, 31, kinds=["wobble"])
    with pytest.raises(ValueError, match="probs"):
        random_kernel(rng, 31, kinds=["shake", "linear"], probs=[1.0])
    with pytest.raises(ValueError, match="intensity"):
        random_kernel(rng, 31, intensity=(0.0, 0.0))


def test_sampler_follows_probabilities():
    sampler = KernelSampler(size=15, kinds=["defocus", "linear"], probs=[1.0, 0.0])
    rng = np.random.default_rng(0)
    for _ in range(5):
        k = sampler.sample(rng)
        # a defocus disk is symmetric under transposition and flips
        np.testing.assert_allclose(k, k.T, atol=1e-7)
        np.testing.assert_allclose(k, k[::-1], atol=1e-7)
