"""Kernel-space networks: shapes at any size, gradients, code resampling, config checks."""

from __future__ import annotations

import math

import pytest
import torch

from models import KernelSpace, code_grid_size, resample_code
from utils.errors import UserError


@pytest.mark.parametrize("size", [(64, 64), (200, 312), (256, 384)])
def test_encode_apply_shapes(tiny_model, size):
    h, w = size
    x, y = torch.rand(2, 3, h, w), torch.rand(2, 3, h, w)
    with torch.no_grad():
        code = tiny_model.encode(x, y)
        out = tiny_model.apply(x, code)
    assert code.shape == (2, 64, math.ceil(h / 128), math.ceil(w / 128))
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


def test_large_image_shape(tiny_model):
    x = torch.rand(1, 3, 720, 1280)
    with torch.no_grad():
        code = tiny_model.encode(x, x)
        out = tiny_model.apply(x, code)
    assert code.shape == (1, 64, 6, 10)
    assert out.shape == x.shape


def test_code_grid_size():
    assert code_grid_size(64, 64) == (1, 1)
    assert code_grid_size(128, 129) == (1, 2)
    assert code_grid_size(720, 1280) == (6, 10)


def test_code_from_other_size_applies(tiny_model):
    x_small = torch.rand(1, 3, 64, 64)
    x_big = torch.rand(1, 3, 200, 312)
    with torch.no_grad():
        code = tiny_model.encode(x_small, x_small)
        out = tiny_model.apply(x_big, code)
    assert out.shape == x_big.shape


def test_resample_code_rule():
    uniform = torch.randn(1, 4, 1, 1)
    big = resample_code(uniform, (3, 5))
    assert big.shape == (1, 4, 3, 5)
    assert torch.allclose(big, uniform.expand(1, 4, 3, 5))
    same = torch.randn(1, 4, 2, 2)
    assert resample_code(same, (2, 2)) is same
    shrunk = resample_code(torch.ones(1, 4, 4, 6), (2, 3))
    assert torch.allclose(shrunk, torch.ones(1, 4, 2, 3))


def test_vae_encode_returns_mean_and_sigma(tiny_config):
    model = KernelSpace.from_config({**tiny_config, "use_vae": True}).eval()
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        mean, sigma = model.encode(x, x)
        assert mean.shape == sigma.shape == (1, 64, 1, 1)
        assert torch.equal(model.extract_code(x, x), mean)
        assert model.apply(x, mean).shape == x.shape


def test_gradients_reach_every_parameter(tiny_config):
    torch.manual_seed(0)
    model = KernelSpace.from_config(tiny_config).train()
    x, y = torch.rand(2, 3, 128, 128), torch.rand(2, 3, 128, 128)
    loss = (model(x, y) - y).abs().mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_shared_preprocess_block(tiny_model):
    """One PreprocessBlock serves G and F: no duplicate parameters."""
    names = [n for n, _ in tiny_model.named_parameters()]
    assert sum(n.startswith("preprocess.") for n in names) > 0
    assert not any(".preprocess." in n for n in names)
    ids = [id(p) for p in tiny_model.parameters()]
    assert len(ids) == len(set(ids))


def test_unknown_model_key_is_an_error(tiny_config):
    with pytest.raises(UserError, match="kernel_dimm"):
        KernelSpace.from_config({**tiny_config, "kernel_dimm": 3})


def test_unsupported_norm_is_an_error(tiny_config):
    with pytest.raises(UserError, match="KernelExtractor.norm"):
        KernelSpace.from_config({**tiny_config, "KernelExtractor": {"norm": "batch"}})


def test_batch_one_code_is_shared(tiny_model):
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        code = tiny_model.encode(x[:1], x[:1])
        both = tiny_model.apply(x, code)
        first = tiny_model.apply(x[:1], code)
    assert torch.allclose(both[:1], first, atol=1e-6)


def test_he_initialisation_lets_the_code_reach_f(tiny_config):
    """With PyTorch's default initialisation the code is ~1e-3 and barely moves F's output; with
    ``train.init: he`` both are at a usable scale from the first step."""
    from models.init import initialise_kernel_space

    sharp = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    blur = torch.nn.functional.avg_pool2d(sharp, 5, 1, 2, count_include_pad=False)
    scales = {}
    for scheme in ("default", "he"):
        torch.manual_seed(0)
        ks = initialise_kernel_space(KernelSpace.from_config(tiny_config), scheme).eval()
        with torch.no_grad():
            code = ks.extract_code(sharp, blur)
            effect = (ks.apply(sharp, code) - ks.apply(sharp, code.roll(1, 0))).pow(2).mean().sqrt()
        scales[scheme] = (code.pow(2).mean().sqrt().item(), effect.item())
    assert scales["he"][0] > 30 * scales["default"][0]
    assert scales["he"][1] > 30 * scales["default"][1]
    with pytest.raises(ValueError, match="xavier"):
        initialise_kernel_space(ks, "xavier")


def test_decoder_slope_changes_only_the_decoder_activation(tiny_config):
    relu = KernelSpace.from_config(tiny_config)
    leaky = KernelSpace.from_config({**tiny_config, "decoder_slope": 0.2})
    assert relu.state_dict().keys() == leaky.state_dict().keys()  # same tensors: published weights load
    acts = [m for m in leaky.generator.unet.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU))]
    ups = [m.up[0] for m in leaky.generator.unet.modules() if hasattr(m, "up")]
    assert all(isinstance(a, torch.nn.LeakyReLU) and a.negative_slope == 0.2 for a in ups)
    assert len(ups) == 5 and len(acts) == 9  # 5 decoder activations, 4 encoder LeakyReLU(0.2)
    assert all(isinstance(m.up[0], torch.nn.ReLU) for m in relu.generator.unet.modules() if hasattr(m, "up"))
    with pytest.raises(UserError, match="decoder_slope"):
        KernelSpace.from_config({**tiny_config, "decoder_slope": -0.1})
