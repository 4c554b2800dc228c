"""deblurring/alternating.py: the blind alternation, its kernel search, registration, clipped lights, the
final step, the Levin benchmark runner."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from deblur_cases import photo_case, psnr_db

from data.kernels import shake_kernel
from data.sharp_sources import DeadLeavesSource
from data.synthetic import blur_valid
from deblurring.alternating import (
    _start_kernel,
    centre_subpixel,
    deblur_alternating,
    gradual,
    l0_energy,
    no_blur_margin,
    resize_support,
)
from deblurring.nonblind import (
    clipped_mask,
    hyper_laplacian_energy,
    shift_image,
)
from models.psf_ops import border_taper, convolve, least_squares_kernel, project_psf
from utils.errors import UserError
from utils.metrics import kernel_similarity


def test_blind_finds_the_kernel_and_deblurs(synthetic):
    y, k, x_true = synthetic["blurry"], synthetic["kernel"], synthetic["sharp"]
    result = deblur_alternating(y, psf_size=21)
    # psf_size is the largest side searched: the PSF found is the window its support grew into
    size = result.psf.shape[-1]
    assert result.sharp.shape == y.shape and result.psf.shape == (1, 2, 2, size, size) and 15 <= size <= 21
    assert kernel_similarity(result.psf[0, 0, 0], k) > 0.85
    assert psnr_db(result.sharp, x_true, 10) > psnr_db(y, x_true, 10) + 3
    assert float((result.reblurred - y).abs().mean()) < 0.03
    # the sparse objective prefers what was found to the no-blur (delta) answer
    delta = torch.zeros(size, size)
    delta[size // 2, size // 2] = 1
    assert l0_energy(y, result.psf[0, 0, 0], 1e-3) < l0_energy(y, delta, 1e-3)


def test_blind_is_deterministic_and_keeps_channels(synthetic):
    gray = synthetic["blurry"][..., :128, :128]
    knobs = dict(psf_size=15, iterations=2, candidates=((9, 4e-3),))
    a = deblur_alternating(gray, seed=1, **knobs)
    b = deblur_alternating(gray, seed=1, **knobs)
    assert torch.equal(a.sharp, b.sharp) and torch.equal(a.psf, b.psf)
    assert a.sharp.shape == (1, 1, 128, 128) and a.code is None
    colour = torch.cat([gray, gray.flip(-1), 1 - gray], dim=1)
    c = deblur_alternating(colour, **knobs)
    assert c.sharp.shape == (1, 3, 128, 128)
    assert not torch.allclose(c.sharp[:, 0], c.sharp[:, 2])
    assert 0 <= float(c.sharp.min()) and float(c.sharp.max()) <= 1


def test_kernel_space_projection_and_code(synthetic):
    class IdentitySpace:  # the PSF-type KernelSpace API, with the code = the flattened 41×41 PSF
        psf_size = 41

        def code_of_psf(self, psfs):
            return psfs.flatten(-2).permute(0, 3, 1, 2)

        def psf_of_code(self, code):
            b, _, gh, gw = code.shape
            return code.permute(0, 2, 3, 1).reshape(b, gh, gw, 41, 41)

    y = synthetic["blurry"][..., :128, :128]
    knobs = dict(psf_size=15, iterations=2, candidates=((9, 4e-3),))
    plain = deblur_alternating(y, **knobs)
    projected = deblur_alternating(y, IdentitySpace(), space_projection=True, **knobs)
    assert torch.allclose(plain.psf, projected.psf, atol=1e-6)
    assert projected.code.shape == (1, 41 * 41, 1, 1)
    assert math.isclose(float(projected.code.sum()), 1.0, rel_tol=1e-5)
    with pytest.raises(ValueError, match="space_projection needs"):  # never silently unprojected
        deblur_alternating(y, space_projection=True, **knobs)


@pytest.mark.slow
def test_levin_protocol_and_bench_smoke(tmp_path):
    from bench import levin

    truth = np.random.default_rng(0).uniform(0, 255, (60, 60))
    shifted = np.roll(truth, (2, -3), axis=(0, 1))
    psnr, shift = levin.levin_psnr(shifted, truth)
    assert psnr > 80 and shift == (2.0, -3.0)  # the estimate is sampled at p + shift
    if not (levin.LEVIN_DIR / "im1_kernel5_img.png").exists():
        pytest.skip("the Levin benchmark files are not here")
    assert levin.main(["--images", "im1_kernel5", "--set", "iterations=1", "--set", "candidates=[[9, 0.004]]",
                       "--threads", "1", "--out", str(tmp_path), "--tag", "smoke", "--figure", "1"]) == 0
    payload = json.loads((tmp_path / "levin_smoke.json").read_text())
    assert len(payload["rows"]) == 1 and payload["rows"][0]["psnr"] > payload["rows"][0]["psnr_blurry"]
    assert (tmp_path / "levin_smoke.md").exists() and (tmp_path / "levin_smoke.png").exists()


def test_blur_convention_of_the_synthetic_case(synthetic):
    """The valid convolution of data.synthetic is the true convolution of models.psf_ops."""
    reblurred = convolve(synthetic["sharp"], synthetic["kernel"][None, None])
    assert float((reblurred - synthetic["blurry"])[..., 8:-8, 8:-8].abs().mean()) < 0.005


@pytest.mark.slow
def test_default_preset_through_deblur_image(synthetic):
    """deblurring.run.deblur_image with the default preset (alternating) and a PSF-type model: the objectives
    decrease, the PSF found matches the true blur, PSNR rises, the code is the model's, same seed same output."""
    from deblurring.nonblind import hyper_laplacian_energy
    from deblurring.run import deblur_image
    from models import KernelSpace
    from utils.config import load_config

    torch.manual_seed(0)
    space = KernelSpace.from_config({"generator": "psf", "kernel_dim": 16, "PSF": {"size": 15, "width": 32,
                                                                                    "depth": 1}}).eval()
    cfg = load_config("configs/deblur/default.yml", "deblur")
    assert cfg["algorithm"] == "alternating"
    y, k, x_true = synthetic["blurry"], synthetic["kernel"], synthetic["sharp"]
    a = deblur_image(y, space, cfg, "cpu", progress=False, seed=5)
    b = deblur_image(y, space, cfg, "cpu", progress=False, seed=5)
    assert torch.equal(a.sharp, b.sharp) and torch.equal(a.psf, b.psf) and torch.equal(a.code, b.code)
    assert a.sharp.shape == y.shape and a.code.shape == (1, 16, 2, 2)
    psf = a.psf[0, 0, 0]
    assert kernel_similarity(psf, k) > 0.8  # 0.85 measured (a 31-px support for a 15-px kernel)
    assert psnr_db(a.sharp, x_true, 10) > psnr_db(y, x_true, 10) + 3
    # the kernel step's sparse objective: what was found beats the no-blur answer and the start blob
    delta = torch.zeros_like(psf)
    delta[psf.shape[0] // 2, psf.shape[1] // 2] = 1
    assert l0_energy(y, psf) < l0_energy(y, delta)
    # the non-blind step's objective falls from the input to the result (its own weight)
    weight = next(h["final_weight"] for h in a.history if "final_weight" in h)
    assert hyper_laplacian_energy(a.sharp, y, psf, weight) < hyper_laplacian_energy(y, y, psf, weight)
    # every run's sparse energy is scored: at the first size limit each candidate under each kernel
    # threshold (then each threshold's polished PSF), at the larger limits the winning candidate and
    # threshold once; the kept PSF's energy is within support_gain of the lowest over the limits (up to
    # its sub-pixel recentring), and the PSF beats the start blob
    limits = [h for h in a.history if "size_limit" in h]
    assert [h["size_limit"] for h in limits] == [31]  # the default limit: one size
    tried = [h for h in a.history if "kernel_threshold" in h]
    first = len(tried) - (len(limits) - 1)
    assert first >= 1
    assert len([h for h in a.history if "candidate" in h]) == \
        first * len(cfg["alternating"]["candidates"]) + len(limits) - 1
    lowest = min(h["energy"] for h in limits)
    clipped = clipped_mask(y)  # the search leaves out what clipped pixels reach: so does this energy
    assert l0_energy(y, psf, crop=limits[-1]["size_limit"] // 2, clipped=clipped) <= lowest * (1 + 0.02) * 1.05
    assert l0_energy(y, psf) < l0_energy(y, resize_support(_start_kernel(9), psf.shape[-1]))


def test_centre_subpixel_puts_the_centre_of_mass_at_the_centre():
    k = torch.zeros(15, 15)
    k[7, 5:10] = torch.tensor([0.1, 0.2, 0.2, 0.25, 0.25])  # centre of mass at column 7.35
    k[6, 7] = 0.1  # ... and row 7 - 0.1 / 1.1
    k = k / k.sum()
    centred, (dy, dx) = centre_subpixel(k)
    assert abs(dy + 0.1 / 1.1) < 1e-5 and abs(dx - 0.35 / 1.1 * 1.0) < 1e-5
    idx = torch.arange(15, dtype=torch.float32)
    assert abs(float((centred.sum(dim=1) * idx).sum()) - 7) < 0.01
    assert abs(float((centred.sum(dim=0) * idx).sum()) - 7) < 0.01
    assert float(centred.min()) >= 0 and math.isclose(float(centred.sum()), 1.0, rel_tol=1e-5)
    assert kernel_similarity(centred, k) > 0.95  # the same PSF, moved


def test_blind_result_is_registered_with_the_truth(synthetic):
    """The sharp estimate is not translated against the truth (the PSF's centre-of-mass convention):
    moving it by a quarter pixel either way makes it worse."""
    y, x_true = synthetic["blurry"], synthetic["sharp"]
    result = deblur_alternating(y, psf_size=21, candidates=[[9, 4e-3]], iterations=3)
    here = psnr_db(result.sharp, x_true, 16)
    for offset in ((0.25, 0), (-0.25, 0), (0, 0.25), (0, -0.25)):
        assert here > psnr_db(shift_image(result.sharp, offset), x_true, 16)


def test_estimation_window_picks_the_structure():
    from deblurring.alternating import estimation_window

    flat = torch.full((1, 1, 300, 400), 0.5)
    flat[..., 200:260, 300:380] = torch.rand(60, 80, generator=torch.Generator().manual_seed(1))
    rows, cols = estimation_window(flat, 128)
    assert rows.stop - rows.start == 128 and cols.stop - cols.start == 128
    assert rows.start <= 200 and rows.stop >= 260 - 60 and cols.start <= 300 and cols.stop >= 380 - 80
    assert estimation_window(flat, None) == (slice(0, 300), slice(0, 400))
    assert estimation_window(flat, 512) == (slice(0, 300), slice(0, 400))  # fits: the whole image


def test_blind_kernel_from_a_window_deblurs_the_whole_image(synthetic):
    """estimate_side smaller than the image: the kernel is measured on a window, every pixel deconvolved."""
    y, k, x_true = synthetic["blurry"], synthetic["kernel"], synthetic["sharp"]
    result = deblur_alternating(y, psf_size=21, estimate_side=128)
    assert result.sharp.shape == y.shape
    assert kernel_similarity(result.psf[0, 0, 0], k) > 0.8
    assert psnr_db(result.sharp, x_true, 10) > psnr_db(y, x_true, 10) + 3
    outside = (..., slice(150, 182), slice(150, 182))  # the window is at most 128 px from one corner
    assert psnr_db(result.sharp[outside], x_true[outside]) > psnr_db(y[outside], x_true[outside]) + 2


def test_cells_find_a_spatially_varying_blur():
    """Left half blurred along x, right half along y (blur_cells, 1×3 cells): with ``cells`` the PSF of
    each side's cell follows its own blur and the image is deblurred."""
    from models.psf_ops import blur_cells

    rng = np.random.default_rng(4)
    sharp = torch.from_numpy(DeadLeavesSource(texture=False).sample(rng, 128, 384)[:, :, :1].copy()).float()
    sharp = sharp.permute(2, 0, 1)[None]
    across, down = torch.zeros(15, 15), torch.zeros(15, 15)
    across[7, 2:13], down[2:13, 7] = 1 / 11, 1 / 11
    psfs = torch.stack([across, across, down])[None, None]  # (1, 1, 3, 15, 15)
    blurry = (blur_cells(sharp, psfs) + 0.002 * torch.randn(sharp.shape, generator=torch.Generator().manual_seed(0)))
    blurry = blurry.clamp(0, 1)
    knobs = dict(psf_size=15, candidates=[[9, 4e-3]], iterations=4)
    varying = deblur_alternating(blurry, cells=True, **knobs)
    assert kernel_similarity(varying.psf[0, 0, 0], across) > kernel_similarity(varying.psf[0, 0, 0], down)
    assert kernel_similarity(varying.psf[0, 0, 2], down) > kernel_similarity(varying.psf[0, 0, 2], across)
    assert psnr_db(varying.sharp, sharp, 16) > psnr_db(blurry, sharp, 16) + 1


def test_the_kernel_step_mask_ramps_and_ignores_what_its_holes_hide():
    """The mask of clipped lights reaches the closed-form kernel step as a ramp (gradual): 0 in every
    hole, 1 a kernel's width away. Holes that hide data no kernel explains (garbage in y there) then
    leave the kernel as it is, where the hard mask fits the holes' edges."""
    keep = torch.ones(60, 60)
    keep[20:30, 20:30] = 0
    ramp = gradual(keep, 9)
    assert bool((ramp[keep == 0] == 0).all()) and float(ramp[50, 50]) == 1.0
    assert 0 < float(ramp[25, 36]) < float(ramp[25, 40]) <= 1.0  # rising away from the hole
    rng = np.random.default_rng(1)
    kernel = shake_kernel(rng, 15, 1.0)
    low = torch.rand(1, 1, 22, 22, generator=torch.Generator().manual_seed(2))
    big = torch.nn.functional.interpolate(low, size=(174, 174), mode="bicubic")[0].permute(1, 2, 0).numpy()
    big = big + 0.3 * (rng.random(big.shape) > 0.97)
    blurry = np.ascontiguousarray(blur_valid(big, kernel).transpose(2, 0, 1))
    holes = torch.ones(160, 160)
    for cy, cx in rng.uniform(30, 130, (5, 2)).astype(int):
        holes[cy - 12:cy + 12, cx - 12:cx + 12] = 0
        blurry[:, cy - 8:cy + 8, cx - 8:cx + 8] = rng.random((1, 16, 16))
    x = torch.from_numpy(np.ascontiguousarray(big[7:-7, 7:-7].transpose(2, 0, 1)))[None].float()
    y = torch.from_numpy(blurry)[None].float()
    taper = border_taper((160, 160), 42)
    hard = project_psf(least_squares_kernel(x, y, 21, weight=taper * holes, project=False))[0]
    soft = project_psf(least_squares_kernel(x, y, 21, weight=taper * gradual(holes, 21), project=False))[0]
    assert kernel_similarity(soft, kernel) > 0.98
    assert kernel_similarity(soft, kernel) > kernel_similarity(hard, kernel) + 0.02


def test_clipped_lights_do_not_move_the_kernel():
    """Clipped lights are kept out of the kernel step: the kernel found with them stays close to the
    one found without them, and the final step does not ring around them."""
    knobs = dict(candidates=[[9, 4e-3]], iterations=4, psf_size=31)
    plain = photo_case(21, 256, seed=2)
    lit = photo_case(21, 256, seed=2, lights=True)
    assert float((lit["blurry"] >= 1).float().mean()) > 0.005
    a = deblur_alternating(plain["blurry"], **knobs).psf[0, 0, 0]
    b = deblur_alternating(lit["blurry"], **knobs).psf[0, 0, 0]
    assert kernel_similarity(a, plain["kernel"]) > 0.8
    assert kernel_similarity(b, a) > 0.9


@pytest.mark.slow
def test_the_size_of_a_75px_blur_is_found():
    """The kernel's size is found, not configured: a 75-px camera-shake blur of a 640² photo comes back
    with the size of its support within 20 % (under the default limit of 101 px) and its shape."""
    import cv2
    from skimage import data as skdata

    from bench.large_blur import support_side

    rng = np.random.default_rng(3)
    kernel = shake_kernel(rng, 75, intensity=1.0)
    r = 75 // 2
    photo = cv2.resize(skdata.astronaut().mean(axis=2).astype(np.float32) / 255, (640 + 2 * r, 640 + 2 * r),
                       interpolation=cv2.INTER_CUBIC).clip(0, 1)
    blurry = blur_valid(photo[:, :, None], kernel)[:, :, 0] + rng.normal(0, 0.005, (640, 640)).astype(np.float32)
    y = torch.from_numpy(np.clip(blurry, 0, 1))[None, None]
    psf = deblur_alternating(y, candidates=[[9, 4e-3]], kernel_threshold=0.1).psf[0, 0, 0]
    truth = support_side(kernel)
    assert truth > 51
    assert abs(support_side(psf.numpy()) - truth) <= 0.2 * truth
    assert kernel_similarity(psf, torch.from_numpy(kernel)) > 0.6  # a failed estimate: 0.2-0.35


def test_final_step_lowers_its_energy():
    """The final deconvolution's output has a lower hyper-Laplacian energy than the blurry input."""
    from deblurring.alternating import final_deconvolution, final_weight_for
    from deblurring.nonblind import estimate_noise

    case = photo_case(15, 128, seed=1)
    y, k = case["blurry"], case["kernel"]
    weight = final_weight_for(estimate_noise(y))
    x = final_deconvolution(y, k)
    assert hyper_laplacian_energy(x, y, k, weight) < hyper_laplacian_energy(y, y, k, weight)
    assert psnr_db(x, case["sharp"], 10) > psnr_db(y, case["sharp"], 10) + 2


def test_unfiltered_takes_the_prefilter_out_of_a_kernel():
    """A PSF blurred by the prefilter's Gaussian comes back close to itself (non-negative, sum 1);
    below MIN_PREFILTER nothing is done."""
    from deblurring.alternating import MIN_PREFILTER, prefiltered, unfiltered

    kernel = torch.zeros(15, 15)
    kernel[7, 4:11] = torch.tensor([0.05, 0.1, 0.1, 0.4, 0.2, 0.1, 0.05])
    blurred = prefiltered(kernel, 0.8)[3:-3, 3:-3]  # back to 15², the mass is inside
    found = unfiltered(blurred, 0.8)
    assert found.min() >= 0 and math.isclose(float(found.sum()), 1.0, rel_tol=1e-5)
    assert kernel_similarity(found, kernel) > kernel_similarity(blurred, kernel) + 0.05
    assert float(found.max()) > 1.5 * float(blurred.max())  # the peak is sharp again
    assert unfiltered(blurred, MIN_PREFILTER / 2) is blurred


def test_mild_blur_on_a_noisy_photo_stays_mild():
    """A 5-px blur under σ = 0.01 noise: the kernel found is not the prefilter's blob and the result is
    sharper than the input (before the prefilter was taken out of the kernel: peak 0.23, NCC 0.85,
    0.6 dB below the input on this case)."""
    case = photo_case(5, 192, seed=3, noise=0.01)
    result = deblur_alternating(case["blurry"], candidates=[[9, 4e-3], [11, 4e-3]], iterations=4)
    psf = result.psf[0, 0, 0]
    assert float(psf.max()) > 0.3 and kernel_similarity(psf, case["kernel"]) > 0.9
    assert psnr_db(result.sharp, case["sharp"], 12) > psnr_db(case["blurry"], case["sharp"], 12) + 1.5


def test_alternating_knobs_are_the_schema_section():
    """The options' fields are exactly the keys of the schema's `alternating` section (whose values are
    their defaults), and a direct call checks its knobs like a config does."""
    from dataclasses import asdict

    from deblurring.config import deblur_config
    from deblurring.options import AlternatingOptions

    assert asdict(AlternatingOptions.from_knobs({})) == deblur_config({})["alternating"]
    assert AlternatingOptions.from_knobs({"psf_size": 31}).psf_size == 31
    with pytest.raises(TypeError, match="psf_sise"):
        AlternatingOptions.from_knobs({"psf_sise": 31})
    with pytest.raises(UserError, match="'alternating.psf_size' must be odd and >= 3, got 30"):
        deblur_alternating(torch.rand(1, 1, 64, 64), psf_size=30)


def test_no_blur_margin_falls_from_small_to_long_psfs():
    """A small PSF must beat no blur by ``gain``, a long one by ``large_gain`` (here: may lose by 5 %),
    linear in the support's side between; values under 5 % of the peak are not support."""
    def streak(half: int, tail: float = 0.0) -> torch.Tensor:
        k = torch.zeros(41, 41)
        k[20] = tail
        k[20, 20 - half:21 + half] = 1.0
        return k / k.sum()

    margin = {"gain": 0.02, "large_gain": -0.05, "large_support": (15, 41)}
    assert no_blur_margin(streak(1), **margin) == pytest.approx(0.02)  # 3 px
    assert no_blur_margin(streak(1, tail=0.01), **margin) == pytest.approx(0.02)  # a faint tail is no support
    assert no_blur_margin(streak(10), **margin) == pytest.approx(0.02 - 0.07 * 6 / 26)  # 21 px
    assert no_blur_margin(streak(20), **margin) == pytest.approx(-0.05)  # 41 px
    with pytest.raises(UserError, match="'alternating.large_support' must be \\[low, high\\]"):
        deblur_alternating(torch.rand(1, 1, 64, 64), large_support=[41, 15])


def test_a_sharp_noisy_photo_is_denoised_not_sharpened():
    """No blur at all (a sharp photo, σ = 0.01): the no-blur check keeps the delta, so the result is
    the input denoised, never sharpened by a kernel found in the noise."""
    from skimage import data as skdata

    rng = np.random.default_rng(0)
    sharp = torch.from_numpy(skdata.camera()[100:292, 100:292].astype(np.float32) / 255)[None, None]
    blurry = (sharp + 0.01 * torch.from_numpy(rng.standard_normal(sharp.shape).astype(np.float32))).clamp(0, 1)
    result = deblur_alternating(blurry, candidates=[[9, 4e-3], [11, 4e-3]], iterations=4)
    psf = result.psf[0, 0, 0]
    assert psf.shape[-1] == 3 and float(psf.max()) == 1.0
    assert any("no_blur_energy" in entry for entry in result.history)
    assert psnr_db(result.sharp, sharp, 12) > psnr_db(blurry, sharp, 12)


def test_polish_keeps_a_small_kernel_sharp():
    """A polish round from the true 5-px kernel keeps its peak: half of the Tikhonov term pulls
    towards the kernel being polished, so the little energy a photo has at high frequencies does not
    low-pass (widen) the kernel, as a pull towards zero alone did (peak 0.77 → 0.45)."""
    from deblurring.alternating import final_weight_for, polish_kernel
    from deblurring.nonblind import estimate_noise

    kernel = torch.zeros(5, 5)
    kernel[2, 1:4] = torch.tensor([0.1, 0.8, 0.1])
    big = photo_case(5, 192, seed=0, noise=0.0)["sharp"]
    noise = torch.randn(big.shape, generator=torch.Generator().manual_seed(0))
    gray = (convolve(big, kernel[None, None]) + 0.01 * noise).clamp(0, 1)
    knobs = dict(weight=final_weight_for(estimate_noise(gray)), alpha=0.8, beta_rate=2.0, beta_max=1024.0)
    clipped = torch.zeros_like(gray, dtype=torch.bool)
    polished = polish_kernel(gray, resize_support(kernel, 11), clipped, 11, 0.3, 0.1, 0.05, knobs)
    assert float(polished.max()) > 0.7
    assert kernel_similarity(polished, kernel) > 0.98


def test_the_refit_on_the_support_thins_a_widened_kernel():
    """A thin camera-shake kernel widened by a Gaussian (as the Tikhonov kernel step widens streaks) comes
    back closer to the thin one when re-fitted on its support from the sharp image."""
    from deblurring.kernel_refine import refine_on_support

    rng = np.random.default_rng(4)
    kernel = torch.from_numpy(shake_kernel(rng, 21, intensity=1.0))
    sharp = torch.from_numpy(DeadLeavesSource(texture=False).sample(rng, 160, 160)[..., 0].astype(np.float32))
    blurry = convolve(sharp[None, None], kernel[None, None])[0, 0]
    t = torch.arange(-2, 3, dtype=torch.float32)
    gauss = torch.exp(-t.square() / 2)
    wide = convolve(kernel[None, None], (gauss[:, None] * gauss[None, :] / gauss.sum() ** 2)[None, None])[0, 0]
    wide = torch.where(wide > 0.05 * wide.max(), wide, torch.zeros_like(wide))
    wide = wide / wide.sum()
    refit = refine_on_support(sharp, blurry, wide)
    assert refit.shape == kernel.shape and float(refit.min()) >= 0 and abs(float(refit.sum()) - 1) < 1e-5
    assert kernel_similarity(refit, kernel) > max(0.95, kernel_similarity(wide, kernel) + 0.05)


def test_final_step_defaults_are_the_schema_defaults():
    """final_deconvolution and final_weight_for (used on their own by bench/levin.py --true-kernel) default
    to what configs/defaults/deblur.yml sets for the alternating route."""
    import inspect

    from deblurring.alternating import final_deconvolution, final_weight_for
    from deblurring.options import AlternatingOptions

    schema = AlternatingOptions.from_knobs({})
    defaults = {n: p.default for n, p in inspect.signature(final_deconvolution).parameters.items()
                if n.startswith("final_")}
    assert defaults == {n: getattr(schema, n) for n in defaults}
    rule = inspect.signature(final_weight_for).parameters
    assert (rule["final_noise_scale"].default, rule["final_noise_power"].default) == \
        (schema.final_noise_scale, schema.final_noise_power)
