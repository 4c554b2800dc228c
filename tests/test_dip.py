"""DIP networks: output shapes at awkward sizes, gradients reach every parameter, noise helpers."""

from __future__ import annotations

import pytest
import torch

from models.blocks import ResnetBlock
from models.dip import ImageDIP, KernelDIP, image_noise, kernel_noise
from models.kernel_space import code_grid_size

SMALL = {"channels_down": (8, 8, 8, 8, 8), "channels_up": (8, 8, 8, 8, 8), "channels_skip": (4, 4, 4, 4, 4)}


@pytest.mark.parametrize("size", [(64, 64), (200, 312), (17, 23)])
def test_image_dip_shape_and_range(size):
    gen = torch.Generator().manual_seed(0)
    net = ImageDIP(in_channels=4, **SMALL)
    z = image_noise(size, channels=4, generator=gen)
    assert z.shape == (1, 4, *size)
    x = net(z)
    assert x.shape == (1, 3, *size)
    assert x.min() >= 0 and x.max() <= 1


def test_image_dip_default_is_the_published_prior():
    net = ImageDIP()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert net.levels == 5
    assert {m.out_channels for m in convs} == {128, 16, 3}
    assert any(isinstance(m, torch.nn.ReflectionPad2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_image_dip_gradients_reach_every_parameter():
    net = ImageDIP(in_channels=2, channels_down=(4, 4, 4), channels_up=(4, 4, 4), channels_skip=(2, 0, 2))
    x = net(image_noise((30, 20), channels=2))
    (x - 0.3).pow(2).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("size", [(64, 64), (200, 312)])
def test_kernel_dip_shape(size):
    grid = code_grid_size(*size)
    net = KernelDIP(kernel_dim=32, in_channels=4, width=8, n_down=3, n_blocks=1)
    z = kernel_noise(grid, channels=4, n_down=3)
    assert z.shape == (1, 4, grid[0] * 8, grid[1] * 8)
    assert net(z).shape == (1, 32, *grid)


def test_kernel_dip_published_structure():
    # n_down 5 on an H/4 noise map: the code grid of G
    net = KernelDIP(kernel_dim=64, in_channels=16, width=8, n_down=5, n_blocks=2)
    assert net(torch.randn(1, 16, 64, 96)).shape == (1, 64, 2, 3)
    assert sum(isinstance(m, ResnetBlock) for m in net.modules()) == 2
    assert KernelDIP(kernel_dim=16, n_down=0, n_blocks=0)(torch.randn(1, 8, 2, 2)).shape == (1, 16, 2, 2)


def test_kernel_dip_gradients_reach_every_parameter():
    net = KernelDIP(kernel_dim=16, in_channels=4, width=4, n_down=2, n_blocks=2)
    code = net(kernel_noise((2, 3), channels=4, n_down=2, generator=torch.Generator().manual_seed(1)))
    code.pow(2).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_noise_is_reproducible():
    a = image_noise((8, 9), 3, torch.Generator().manual_seed(5))
    b = image_noise((8, 9), 3, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and 0 <= a.min() and a.max() < 0.1
    assert torch.equal(
        kernel_noise((1, 2), 3, 1, torch.Generator().manual_seed(5)),
        kernel_noise((1, 2), 3, 1, torch.Generator().manual_seed(5)),
    )
