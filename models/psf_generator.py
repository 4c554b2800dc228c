"""The explicit-PSF blur generator F: each cell of the kernel code decodes to a PSF, F convolves with it.

F(x, k) = :func:`models.psf_ops.blur_cells` (x, decoder(k)): the PSF of every 128-px code cell is
blended by a smooth partition of unity (see :mod:`models.psf_ops` for the border and centring
conventions), so a uniform code is exactly one convolution and a code that varies over the grid is
a blur that varies smoothly over the image.
"""

from __future__ import annotations

import torch
from torch import nn

from models.psf_ops import blur_cells


def mlp(sizes: list[int], slope: float = 0.2) -> nn.Sequential:
    """Linear layers of the given widths with LeakyReLU(``slope``) between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(slope))
    return nn.Sequential(*layers)


class PSFDecoder(nn.Module):
    """Kernel code → PSF per code cell.

    An MLP (``kernel_dim`` → ``width`` × ``depth`` → ``size²``) applied to every cell, then a softmax
    over the ``size × size`` pixels: each PSF is positive and sums to 1.
    Input (B, kernel_dim, gh, gw); output (B, gh, gw, size, size).
    """

    def __init__(self, kernel_dim: int, size: int, width: int = 512, depth: int = 2) -> None:
        super().__init__()
        if size % 2 == 0 or size < 3:
            raise ValueError(f"PSF size must be odd and >= 3, got {size}")
        self.size = size
        self.net = mlp([kernel_dim] + [width] * depth + [size * size])

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        logits = self.net(code.permute(0, 2, 3, 1).float())
        psf = torch.softmax(logits, dim=-1)
        return psf.unflatten(-1, (self.size, self.size))


class PSFBlurGenerator(nn.Module):
    """F of the ``psf`` generator type: ``forward(sharp, code)`` → blurry.

    ``sharp`` (B, C, H, W) of any size; ``code`` (B, kernel_dim, ceil(H/128), ceil(W/128)).
    Output (B, C, H, W): each pixel blurred by its cells' decoded PSFs (not clamped).
    ``decoder`` (:class:`PSFDecoder`) is the learned part.
    """

    def __init__(self, kernel_dim: int, size: int, width: int = 512, depth: int = 2) -> None:
        super().__init__()
        self.decoder = PSFDecoder(kernel_dim, size, width, depth)

    def forward(self, sharp: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return blur_cells(sharp, self.decoder(code))
