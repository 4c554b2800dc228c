"""Building blocks shared by the kernel extractor G and the blur generator F.

The module structure (``nn.Sequential`` indices) mirrors the published KernelWizard so that a
published state_dict maps onto ours by a prefix rename (see :mod:`models.checkpoint`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualBlock(nn.Module):
    """Conv3×3 → ReLU → Conv3×3 + identity, no normalisation (EDVR's ResidualBlock_noBN).

    Input and output: (B, nf, H, W).
    """

    def __init__(self, nf: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class PreprocessBlock(nn.Sequential):
    """Image → features at a quarter of the resolution (the paper's PrB, Table 1).

    Conv3×3(in→nf) LReLU(0.1), Conv3×3 s2 LReLU, Conv3×3 s2 LReLU, ``n_res`` residual blocks.
    Input (B, in_nc, H, W) with H, W multiples of 4; output (B, nf, H/4, W/4).
    """

    def __init__(self, in_nc: int = 3, nf: int = 64, n_res: int = 10) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_nc, nf, 3, 1, 1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(nf, nf, 3, 2, 1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(nf, nf, 3, 2, 1),
            nn.LeakyReLU(0.1, inplace=True),
        ]
        layers += [ResidualBlock(nf) for _ in range(n_res)]
        super().__init__(*layers)


class PostprocessBlock(nn.Sequential):
    """Features at a quarter resolution → image residual (the paper's PoB, Table 2).

    ``n_res`` residual blocks, Conv(nf→4nf) PixelShuffle(2) LReLU, Conv(nf→256) PixelShuffle(2)
    LReLU, Conv(64→64) LReLU, Conv(64→out_nc). Input (B, nf, h, w); output (B, out_nc, 4h, 4w).
    """

    def __init__(self, nf: int = 64, n_res: int = 20, out_nc: int = 3) -> None:
        layers: list[nn.Module] = [ResidualBlock(nf) for _ in range(n_res)]
        layers += [
            nn.Conv2d(nf, nf * 4, 3, 1, 1),
            nn.PixelShuffle(2),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(nf, 64 * 4, 3, 1, 1),
            nn.PixelShuffle(2),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(64, 64, 3, 1, 1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(64, out_nc, 3, 1, 1),
        ]
        super().__init__(*layers)


def safe_reflect_pad(x: torch.Tensor, pad: int | tuple[int, int, int, int]) -> torch.Tensor:
    """Reflect-pad (..., H, W) by ``pad`` (all four sides, or ``(left, right, top, bottom)`` as in
    ``F.pad``); edge replication instead where a side is too short to reflect (a pad >= that side,
    e.g. 1×1 code maps or tiny images). The one padding rule of the project's networks.

    The published code reflect-pads unconditionally and so crashes on maps smaller than 2×2;
    wherever reflection is possible this is exactly reflection padding.
    """
    left, right, top, bottom = (pad,) * 4 if isinstance(pad, int) else pad
    reflect = max(top, bottom) < x.shape[-2] and max(left, right) < x.shape[-1]
    return F.pad(x, (left, right, top, bottom), mode="reflect" if reflect else "replicate")


class SafeReflectionPad(nn.Module):
    """Module form of :func:`safe_reflect_pad` (a layer, so that state_dict indices match the published ones)."""

    def __init__(self, pad: int = 1) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return safe_reflect_pad(x, self.pad)


class ResnetBlock(nn.Module):
    """G's residual block: pad, Conv3×3 (no bias), ReLU, pad, Conv3×3 (no bias), + identity.

    ``conv_block`` keeps the published indices (1 and 5 are the convolutions). (B, C, h, w) → same.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            SafeReflectionPad(1),
            nn.Conv2d(dim, dim, 3, 1, 0, bias=False),
            nn.Identity(),
            nn.ReLU(True),
            SafeReflectionPad(1),
            nn.Conv2d(dim, dim, 3, 1, 0, bias=False),
            nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)
