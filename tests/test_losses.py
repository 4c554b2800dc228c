"""Each loss against a value computed by hand on a tiny tensor."""

from __future__ import annotations

import math

import pytest
import torch

from losses import (
    CharbonnierLoss,
    HyperLaplacianPrior,
    SSIMLoss,
    VGGPerceptualLoss,
    charbonnier,
    hyper_laplacian,
    kernel_norm,
    kl_divergence,
    ssim,
)
from utils.errors import UserError


def test_charbonnier_by_hand():
    pred = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]])
    target = torch.tensor([[[[0.0, 0.1], [0.0, 0.25]]]])
    eps = 1e-3
    # |d| = 0, 0.4, 1, 0 → sqrt(d² + eps²)
    expected = (eps + math.sqrt(0.16 + eps**2) + math.sqrt(1 + eps**2) + eps) / 4
    assert charbonnier(pred, target, eps).item() == pytest.approx(expected, rel=1e-6)
    assert CharbonnierLoss(eps)(pred, target).item() == pytest.approx(expected, rel=1e-6)


def test_hyper_laplacian_by_hand():
    # 2×3 image: horizontal differences [1, -1], [0, 0.5]; vertical [0, -1, -0.5]
    x = torch.tensor([[[[0.0, 1.0, 0.0], [0.0, 0.0, 0.5]]]])
    alpha = 2.0 / 3.0
    h = (1.0 + 1.0 + 0.0 + 0.5**alpha) / 4
    v = (0.0 + 1.0 + 0.5**alpha) / 3
    assert hyper_laplacian(x, alpha, eps=0.0).item() == pytest.approx(h + v, rel=1e-6)
    # the smoothed form: (d² + eps²)^(α/2)
    eps = 0.1
    s = lambda d: (d * d + eps * eps) ** (alpha / 2)  # noqa: E731
    h_eps = (s(1.0) + s(1.0) + s(0.0) + s(0.5)) / 4
    v_eps = (s(0.0) + s(1.0) + s(0.5)) / 3
    assert HyperLaplacianPrior(alpha, eps)(x).item() == pytest.approx(h_eps + v_eps, rel=1e-6)
    # another exponent: α = 1 is the total variation (mean absolute differences)
    assert hyper_laplacian(x, 1.0, eps=0.0).item() == pytest.approx(2.5 / 4 + 1.5 / 3, rel=1e-6)


def test_hyper_laplacian_gradient_finite_at_zero():
    x = torch.zeros(1, 1, 4, 4, requires_grad=True)
    hyper_laplacian(x).backward()
    assert torch.isfinite(x.grad).all()


def test_kernel_norm_by_hand():
    code = torch.tensor([3.0, 4.0, 0.0, 0.0]).view(1, 4, 1, 1)
    assert kernel_norm(code).item() == pytest.approx(5.0)
    two = torch.cat([code, 2 * code])  # norms 5 and 10 → mean 7.5
    assert kernel_norm(two).item() == pytest.approx(7.5)


def test_kl_by_hand():
    mean = torch.tensor([0.0, 1.0, 0.0])
    sigma = torch.tensor([1.0, 1.0, 2.0])
    # per element: 0.5·(μ² + σ² − log σ² − 1) = 0, 0.5, 0.5·(4 − log 4 − 1)
    expected = (0.0 + 0.5 + 0.5 * (3.0 - math.log(4.0))) / 3
    assert kl_divergence(mean, sigma).item() == pytest.approx(expected, rel=1e-6)
    # sigma is a standard deviation of either sign; σ = 0 is clamped, finite
    assert kl_divergence(mean, -sigma).item() == pytest.approx(expected, rel=1e-6)
    value = kl_divergence(torch.zeros(1), torch.zeros(1), min_sigma=1e-3)
    assert value.item() == pytest.approx(0.5 * (-math.log(1e-6) - 1), rel=1e-6)


def test_ssim_constant_images_by_hand():
    a, b = 0.2, 0.6
    x = torch.full((1, 2, 12, 12), a, dtype=torch.float64)
    y = torch.full((1, 2, 12, 12), b, dtype=torch.float64)
    c1 = 0.01**2
    # zero variances: SSIM = (2ab + C1) / (a² + b² + C1) · (C2 / C2)
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(x, y).item() == pytest.approx(expected, rel=1e-5)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    assert SSIMLoss()(x, y).item() == pytest.approx(1 - expected, rel=1e-5)


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 24, 20, generator=gen)
    y = (x + 0.1 * torch.randn(1, 1, 24, 20, generator=gen)).clamp(0, 1)
    ref = structural_similarity(
        x[0, 0].double().numpy(),
        y[0, 0].double().numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
    )
    assert ssim(x.double(), y.double()).item() == pytest.approx(ref, abs=1e-6)


def test_perceptual_requires_a_local_file(tmp_path):
    with pytest.raises(UserError, match="no VGG-19 weights"):
        VGGPerceptualLoss(None)
    with pytest.raises(UserError, match="not found"):
        VGGPerceptualLoss(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"something": torch.zeros(1)}, bad)
    with pytest.raises(UserError, match="missing features.0.weight"):
        VGGPerceptualLoss(bad, layers=("relu1_1",))


def test_perceptual_by_hand(tmp_path):
    # a partial vgg19 state_dict holding only the first convolution is enough for relu1_1
    gen = torch.Generator().manual_seed(0)
    weight, bias = 0.1 * torch.randn(64, 3, 3, 3, generator=gen), 0.1 * torch.randn(64, generator=gen)
    path = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": weight, "features.0.bias": bias}, path)
    loss = VGGPerceptualLoss(path, layers=("relu1_1",))
    x = torch.rand(1, 3, 8, 8, generator=gen)
    y = torch.rand(1, 3, 8, 8, generator=gen)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def feat(t):
        return torch.relu(torch.nn.functional.conv2d((t - mean) / std, weight, bias, padding=1))

    expected = ((feat(x) - feat(y)) ** 2).mean()
    assert loss(x, y).item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss(x, x).item() == 0.0
    assert not any(p.requires_grad for p in loss.parameters())


def test_kernel_code_loss_is_zero_at_the_projected_kernel_and_grows_away_from_it():
    from losses import kernel_code_loss, kernel_projection

    projection = kernel_projection(64, 9)
    assert torch.equal(projection, kernel_projection(64, 9))  # fixed: seeded, not trained
    kernels = torch.rand(3, 1, 9, 9)
    unit = kernels.flatten(1) / kernels.flatten(1).norm(dim=1, keepdim=True)
    code = unit @ projection.T
    assert kernel_code_loss(code, kernels, projection).item() == pytest.approx(0.0, abs=1e-10)
    assert kernel_code_loss(code + 0.1, kernels, projection).item() == pytest.approx(3 * 64 * 0.01, rel=1e-4)
    # distances between normalised kernels survive the projection (Johnson–Lindenstrauss), roughly
    d_kernel = (unit[0] - unit[1]).norm()
    d_code = (code[0] - code[1]).norm()
    assert 0.5 < (d_code / d_kernel).item() < 1.5
    with pytest.raises(ValueError, match="projection"):
        kernel_code_loss(code, torch.rand(3, 1, 7, 7), projection)
