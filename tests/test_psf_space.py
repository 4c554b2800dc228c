"""The explicit-PSF kernel space: FFT blur, per-cell blending, closed-form kernel, PSF generator type."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data.kernels import KernelSampler, random_psfs, shake_kernel
from data.synthetic import blur_valid
from models import KernelSpace
from models.psf_ops import blur_cells, cell_weights, convolve, least_squares_kernel, least_squares_kernel_cells
from training.step import TrainForward
from utils.metrics import kernel_similarity

PSF_MODEL = {"generator": "psf", "kernel_dim": 16, "PSF": {"size": 15, "width": 32, "depth": 1}}


@pytest.fixture
def psf_model() -> KernelSpace:
    torch.manual_seed(0)
    return KernelSpace.from_config(PSF_MODEL).eval()


def smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, h // 8 + 1, w // 8 + 1, generator=gen)
    return F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def conv2d_blur(x: torch.Tensor, psf: torch.Tensor) -> torch.Tensor:
    """The reference: reflect padding, then conv2d with the flipped PSF (a true convolution)."""
    r = psf.shape[-1] // 2
    weight = psf.flip(-1, -2).expand(x.shape[1], 1, -1, -1)
    return F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), weight, groups=x.shape[1])


def test_decoded_psfs_are_non_negative_and_normalised(psf_model):
    code = torch.randn(2, 16, 2, 3) * 3
    psf = psf_model.psf_of_code(code)
    assert psf.shape == (2, 2, 3, 15, 15)
    assert (psf >= 0).all()
    torch.testing.assert_close(psf.sum(dim=(-2, -1)), torch.ones(2, 2, 3))


def test_a_code_decoding_to_a_centred_delta_leaves_the_image_unchanged(psf_model):
    last = psf_model.generator.decoder.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.bias[15 * 7 + 7] = 200.0  # softmax: 1 at the centre, e^-200 elsewhere
    x = smooth_image(200, 300)
    out = psf_model.apply(x, torch.randn(1, 16, 2, 3))
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


def test_a_uniform_code_is_one_conv2d_with_its_psf(psf_model):
    x = smooth_image(300, 260, 1)
    code = torch.randn(1, 16, 1, 1).expand(1, 16, 3, 3)
    psf = psf_model.psf_of_code(code[..., :1, :1])[0, 0, 0]
    torch.testing.assert_close(psf_model.apply(x, code), conv2d_blur(x, psf), atol=1e-5, rtol=0)
    torch.testing.assert_close(psf_model.apply(x, code[..., :1, :1]), conv2d_blur(x, psf), atol=1e-5, rtol=0)


def test_spatially_varying_blur_blends_cells_without_a_seam():
    torch.manual_seed(0)
    x = torch.rand(1, 1, 256, 300, dtype=torch.float64)
    psfs = torch.rand(1, 2, 3, 9, 9, dtype=torch.float64)
    psfs /= psfs.sum(dim=(-2, -1), keepdim=True)
    out = blur_cells(x, psfs)
    wy, wx = cell_weights(2, 256).double(), cell_weights(3, 300).double()
    expected = sum(wy[i][:, None] * wx[j][None] * convolve(x, psfs[:, i, j, None])
                   for i in range(2) for j in range(3))
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=0)
    # the weights are a partition of unity that changes by at most 1/128 from one pixel to the next:
    # at the line where two cells meet the blur changes as smoothly as anywhere else
    for w in (wy, wx):
        torch.testing.assert_close(w.sum(0), torch.ones(w.shape[1], dtype=torch.float64))
        assert (w >= 0).all() and w.diff(dim=1).abs().max() <= 1 / 128 + 1e-9
    # two cells with different blurs of a smooth image: no jump across the cell border (column 128)
    diagonals = torch.stack([torch.eye(9), torch.eye(9).flip(0)])[None, None] / 9  # (1, 1, 2, 9, 9)
    y = blur_cells(smooth_image(128, 256, 3), diagonals)
    steps = y.diff(dim=-1).abs().amax(dim=(0, 1, 2))
    assert steps[120:136].max() <= 1.5 * steps[40:100].max()


def test_least_squares_kernel_recovers_a_synthetic_blur():
    rng = np.random.default_rng(3)
    kernel = shake_kernel(rng, 15, 0.8)
    big = smooth_image(128 + 14, 128 + 14, 5)[0].permute(1, 2, 0).numpy()
    big = big + 0.2 * (rng.random(big.shape) > 0.97)  # some edges
    blurry = blur_valid(big, kernel)
    sharp = big[7:-7, 7:-7]
    x = torch.from_numpy(np.ascontiguousarray(sharp.transpose(2, 0, 1)))[None].float()
    y = torch.from_numpy(np.ascontiguousarray(blurry.transpose(2, 0, 1)))[None].float()
    estimate = least_squares_kernel(x, y, 21)[0]
    assert estimate.shape == (21, 21) and (estimate >= 0).all()
    assert float(estimate.sum()) == pytest.approx(1.0, abs=1e-5)
    assert kernel_similarity(estimate, kernel) > 0.9
    cells = least_squares_kernel_cells(x, y, 21)
    assert cells.shape == (1, 1, 1, 21, 21)


def test_kernel_similarity_is_one_for_a_shifted_copy_and_low_for_a_delta():
    kernel = shake_kernel(np.random.default_rng(0), 15, 1.0)
    shifted = np.zeros((21, 21), np.float32)
    shifted[2:17, 5:20] = kernel
    assert kernel_similarity(shifted, kernel) == pytest.approx(1.0, abs=1e-6)
    delta = np.zeros((15, 15))
    delta[7, 7] = 1
    assert kernel_similarity(delta, kernel) < 0.6


def test_random_psfs_are_shifted_normalised_kernels():
    psfs = random_psfs(KernelSampler(9), np.random.default_rng(0), 16, 15)
    assert psfs.shape == (16, 15, 15)
    np.testing.assert_allclose(psfs.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    centres = [np.argwhere(p > 0).mean(axis=0) for p in psfs]
    assert np.ptp(np.array(centres), axis=0).max() > 1  # not all at one place


def test_psf_space_encodes_and_trains_through_the_training_forward(psf_model):
    x = smooth_image(128, 200, 2)
    y = conv2d_blur(x, torch.ones(5, 5) / 25)
    code = psf_model.encode(x, y)
    assert code.shape == (1, 16, 1, 2)
    pred, code_mean, kl = TrainForward(psf_model)(x, y)
    torch.testing.assert_close(pred, psf_model.apply(x, code))
    torch.testing.assert_close(code_mean, code.mean(dim=(2, 3)))
    assert float(kl) == 0.0
    psfs = torch.from_numpy(random_psfs(KernelSampler(9), np.random.default_rng(0), 4, 15))
    *_, (g_psfs, restored) = TrainForward(psf_model)(x, y, None, psfs)
    assert g_psfs.shape == (1, 15, 15) and restored.shape == (4, 15, 15)


def test_psf_code_round_trip_and_checkpoint(psf_model, tmp_path):
    psfs = torch.from_numpy(random_psfs(KernelSampler(9), np.random.default_rng(0), 2, 15))[:, None, None]
    code = psf_model.code_of_psf(psfs)
    assert code.shape == (2, 16, 1, 1)
    psf_model.save(str(tmp_path / "psf.pth"))
    loaded = KernelSpace.load(str(tmp_path / "psf.pth"))
    assert loaded.generator_type == "psf" and loaded.config == psf_model.config
    x = smooth_image(130, 140)
    torch.testing.assert_close(loaded.apply(x, code[:1]), psf_model.apply(x, code[:1]))


def test_unknown_generator_type_is_a_config_error():
    from utils.errors import UserError

    with pytest.raises(UserError, match="'generator' must be one of unet, psf"):
        KernelSpace.from_config({"generator": "gan"})
    with pytest.raises(UserError, match="PSF.size"):
        KernelSpace.from_config({"generator": "psf", "PSF": {"size": 20}})


def test_commands_run_end_to_end_with_a_psf_model(tmp_path):
    """deblur.py (with --save-psf), transfer.py and novel-blur sampling on a (VAE) psf model."""
    import deblur
    import transfer
    from data.image_io import read_image, write_image
    from utils.errors import run_cli

    torch.manual_seed(0)
    KernelSpace.from_config({**PSF_MODEL, "use_vae": True}).save(str(tmp_path / "psf.pth"))
    sharp = smooth_image(140, 200, 4)
    line = torch.zeros(7, 7)
    line[3] = 1 / 7
    blurry = conv2d_blur(sharp, line)
    for name, image in (("x.png", sharp), ("y.png", blurry)):
        write_image(tmp_path / name, image[0].permute(1, 2, 0).numpy())
    model = ["--model", str(tmp_path / "psf.pth"), "--device", "cpu"]
    assert run_cli(deblur.main, ["--input", str(tmp_path / "y.png"), "--output", str(tmp_path / "d.png"),
                                 "--iters", "4", "--save-psf", str(tmp_path / "psf.png"), *model]) == 0
    assert read_image(tmp_path / "d.png").rgb.shape == (140, 200, 3)
    assert read_image(tmp_path / "psf.png").rgb.shape == (2 * 60 + 2, 2 * 60 + 2, 3)  # a 15² PSF per cell, ×4
    assert run_cli(transfer.main, ["--sharp", str(tmp_path / "x.png"), "--blur", str(tmp_path / "y.png"),
                                   "--target", str(tmp_path / "x.png"), "--output", str(tmp_path / "t.png"),
                                   *model]) == 0
    assert read_image(tmp_path / "t.png").rgb.shape == (140, 200, 3)
    assert run_cli(transfer.main, ["--target", str(tmp_path / "x.png"), "--sample", "2",
                                   "--output-dir", str(tmp_path / "samples"), *model]) == 0
    assert len(list((tmp_path / "samples").iterdir())) == 2


def test_code_refinement_brings_the_decoded_psf_closer_to_its_kernel(psf_model):
    from models.psf_extractor import refine_code

    psfs = torch.from_numpy(random_psfs(KernelSampler(9), np.random.default_rng(1), 3, 15))[:, None, None]
    decoder = psf_model.generator.decoder
    with torch.inference_mode():  # as in evaluation: refinement enables its own gradients
        start = psf_model.extractor.encoder(psfs)
        refined = refine_code(decoder, start, psfs, steps=100, lr=0.1)
        before = (decoder(start) - psfs).pow(2).sum()
        after = (decoder(refined) - psfs).pow(2).sum()
    assert after < 0.9 * before
    assert not any(p.grad is not None for p in decoder.parameters())  # the model is left untouched
