"""deblurring/nonblind.py: the hyper-Laplacian shrink, deconvolution (uniform and per cell), image
shifts, clipped pixels as lower bounds."""

from __future__ import annotations

import torch
from deblur_cases import photo_case, psnr_db

from deblurring.nonblind import (
    adjoint_second_differences,
    clipped_mask,
    deconvolve,
    deconvolve_cells,
    deconvolve_tiled,
    hyper_laplacian_energy,
    hyper_laplacian_shrink,
    second_differences,
    shift_image,
    tile_spans,
)
from models.psf_ops import convolve


def test_shrink_solves_the_scalar_problem():
    v = torch.linspace(-1, 1, 201)
    for beta, alpha in ((4.0, 0.8), (50.0, 0.67), (10.0, 1.0)):
        w = hyper_laplacian_shrink(v, beta, alpha)
        grid = torch.linspace(-1.2, 1.2, 24001)[None, :]
        cost = grid.abs().pow(alpha) + beta / 2 * (grid - v[:, None]).square()
        best = cost.min(dim=1).values
        mine = w.abs().pow(alpha) + beta / 2 * (w - v).square()
        assert torch.all(mine <= best + 1e-4)


def test_shrink_table_matches_the_exact_solve():
    # large tensors read one β-free table (w = s·u(v/s)); it must agree with the exact per-element solve
    from deblurring.nonblind import _shrink_newton

    v = torch.randn(200, 200, generator=torch.Generator().manual_seed(0)) * 0.2
    v[0, :100] = torch.linspace(-4, 4, 100)  # beyond the table at large β
    for alpha in (0.8, 0.5):
        for beta in (1.0, 7.3, 300.0, 1e5):
            w = hyper_laplacian_shrink(v, beta, alpha)
            exact = _shrink_newton(v.double(), beta, alpha).float()
            assert float((w - exact).abs().max()) < 1e-5, (alpha, beta)
            assert torch.equal(w == 0, exact == 0)


def test_nonblind_objective_decreases_and_deblurs(synthetic):
    y, k, x_true = synthetic["blurry"], synthetic["kernel"], synthetic["sharp"]
    energies = [hyper_laplacian_energy(y, y, k, weight=3000, alpha=0.8)]
    for beta_max in (4.0, 32.0, 256.0):
        x = deconvolve(y, k, weight=3000, beta_max=beta_max)
        energies.append(hyper_laplacian_energy(x, y, k, weight=3000, alpha=0.8))
    assert all(b < a for a, b in zip(energies, energies[1:])), energies
    assert psnr_db(x, x_true, 8) > psnr_db(y, x_true, 8) + 5


def test_second_differences_and_their_adjoint():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 11, 14, dtype=torch.float64, generator=g)
    w = torch.randn(3, 1, 1, 11, 14, dtype=torch.float64, generator=g).unbind(0)
    xx, yy, xy = second_differences(x)
    assert torch.allclose(xx[..., 5, 5], x[..., 5, 4] - 2 * x[..., 5, 5] + x[..., 5, 6])
    assert torch.allclose(yy[..., 5, 5], x[..., 4, 5] - 2 * x[..., 5, 5] + x[..., 6, 5])
    assert torch.allclose(xy[..., 5, 5], x[..., 6, 6] - x[..., 6, 5] - x[..., 5, 6] + x[..., 5, 5])
    forward = sum((d * t).sum() for d, t in zip((xx, yy, xy), w))
    assert torch.allclose(forward, (x * adjoint_second_differences(*w)).sum())


def test_second_order_prior_keeps_smooth_shading():
    # first differences alone turn shading into staircases; an L1 prior on the second differences does not
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 96), indexing="ij")
    x = (0.2 + 0.5 * (xx * yy + 0.3 * xx.square()) + 0.2 * (xx > 0.6).float())[None, None]
    k = torch.zeros(9, 9)
    k[4, :], k[2:7, 6] = 1, 1
    k /= k.sum()
    noise = 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    y = (convolve(x, k[None, None]) + noise).clamp(0, 1)
    for weight in (1500, 3000):
        plain = psnr_db(deconvolve(y, k, weight=weight), x, 10)
        assert psnr_db(deconvolve(y, k, weight=weight, second_order=0.25), x, 10) > plain + 0.5


def test_nonblind_cells_match_uniform():
    torch.manual_seed(0)
    x = torch.nn.functional.interpolate(torch.rand(1, 2, 25, 38), size=(200, 300), mode="bicubic").clamp(0, 1)
    k = torch.rand(9, 9)
    k /= k.sum()
    y = convolve(x, k[None, None])
    uniform = deconvolve(y, k)
    cells = deconvolve_cells(y, k.expand(1, 2, 3, 9, 9))
    assert cells.shape == uniform.shape
    # about the same away from the image border (where the solution is ill-posed and each window is
    # solved on its own FFT grid): the half-quadratic solve is not run to convergence, so the windows
    # differ a little from the whole image, but no seam shows
    assert psnr_db(cells, uniform, 20) > 40


def test_shift_image_moves_content_by_the_offset():
    noise = torch.rand(1, 2, 54, 46, generator=torch.Generator().manual_seed(0))
    box = torch.nn.functional.avg_pool2d
    x = box(box(noise, 4, 1), 4, 1)  # (1, 2, 48, 40); an even box has no Nyquist content, whose sub-pixel move is lost
    whole = shift_image(x, (2.0, -3.0))
    assert torch.allclose(whole[..., 6:-6, 6:-6], torch.roll(x, (2, -3), (-2, -1))[..., 6:-6, 6:-6], atol=1e-4)
    half = shift_image(shift_image(x, (0.3, 0.2)), (-0.3, -0.2))  # sub-pixel there and back
    assert torch.allclose(half[..., 6:-6, 6:-6], x[..., 6:-6, 6:-6], atol=5e-3)
    ramp = torch.arange(40, dtype=torch.float32).expand(1, 1, 48, 40) / 40  # a linear ramp moves exactly
    moved = shift_image(ramp, (0.0, 0.3))
    assert torch.allclose(moved[..., 8:-8, 8:-8], (ramp - 0.3 / 40)[..., 8:-8, 8:-8], atol=2e-3)


def test_onesided_data_term_at_clipped_pixels():
    """Given the true kernel, trusting clipped pixels only as lower bounds beats trusting them."""

    case = photo_case(15, 128, seed=4, lights=True)
    y, k = case["blurry"], case["kernel"]
    knobs = dict(weight=2000.0, margin=15)
    mask = clipped_mask(y)
    assert bool(mask.any())
    plain = deconvolve(y, k, **knobs)
    onesided = deconvolve(y, k, **knobs, clipped=mask)
    assert psnr_db(onesided, case["sharp"], 10) > psnr_db(plain, case["sharp"], 10)


def test_tile_spans_share_every_pixel_out():
    for length, tile, reach in ((1000, 256, 40), (257, 256, 10), (100, 256, 8), (513, 100, 30)):
        total = torch.zeros(length)
        for start, stop, weight in tile_spans(length, tile, reach):
            assert 0 <= start < stop <= length and weight.shape == (stop - start,)
            total[start:stop] += weight
        assert torch.allclose(total, torch.ones(length), atol=1e-6), (length, tile)
    assert len(tile_spans(100, 256, 8)) == 1


def test_tiled_deconvolution_matches_the_whole_image():
    # the final step of a large photo runs in overlapping tiles: seams must not show (clipped lights too)
    case = photo_case(9, 200, 0, lights=True)
    y, k = case["blurry"], case["kernel"]
    knobs = dict(weight=2000.0, beta_rate=2.0, beta_max=256.0, margin=9, clipped=clipped_mask(y), second_order=0.25)
    whole = deconvolve(y, k, **knobs)
    tiled = deconvolve_tiled(y, k, 64, **knobs)
    assert tiled.shape == whole.shape
    assert abs(psnr_db(tiled, case["sharp"], 8) - psnr_db(whole, case["sharp"], 8)) < 0.05
    assert float((tiled - whole).abs().mean()) < 2e-3
    assert torch.equal(deconvolve_tiled(y, k, 256, **knobs), whole)  # one tile: the whole deconvolution
