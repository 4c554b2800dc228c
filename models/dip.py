"""Deep-image-prior networks for blind deblurring, and their fixed input noise.

- :class:`ImageDIP`: the skip U-Net of Ulyanov et al.'s Deep Image Prior (noise → image in [0, 1]).
- :class:`KernelDIP`: a G-like conv net (the structure of the kernel extractor: Conv7×7, strided
  Conv3×3, residual blocks) mapping noise → a kernel code map (1, kernel_dim, gh, gw).
- :func:`image_noise` / :func:`kernel_noise`: the fixed inputs z_x and z_k of those networks.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import ResnetBlock, SafeReflectionPad, safe_reflect_pad


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Reflection-padded convolution (same size for stride 1, half size for stride 2)."""
    pad = (kernel - 1) // 2
    layers: list[nn.Module] = [nn.ReflectionPad2d(pad)] if pad > 0 else []
    layers.append(nn.Conv2d(c_in, c_out, kernel, stride, 0))
    return nn.Sequential(*layers)


def _conv_bn_act(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(_conv(c_in, c_out, kernel, stride), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True))


class _SkipLevel(nn.Module):
    """One level of the skip U-Net: a 1×1 skip branch beside a down → deeper → up branch."""

    def __init__(
        self, c_in: int, down: int, up: int, skip: int, deeper: nn.Module | None, deeper_out: int, kernel: int
    ) -> None:
        super().__init__()
        self.skip = _conv_bn_act(c_in, skip, 1) if skip > 0 else None
        self.down = nn.Sequential(_conv_bn_act(c_in, down, kernel, 2), _conv_bn_act(down, down, kernel))
        self.deeper = deeper
        merged = skip + (deeper_out if deeper is not None else down)
        self.merge = nn.Sequential(
            nn.BatchNorm2d(merged), _conv_bn_act(merged, up, kernel), _conv_bn_act(up, up, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down(x)
        if self.deeper is not None:
            h = self.deeper(h)
        h = F.interpolate(h, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.skip is not None:
            h = torch.cat([self.skip(x), h], dim=1)
        return self.merge(h)


class ImageDIP(nn.Module):
    """Skip U-Net of Deep Image Prior: noise (B, in_channels, H, W) → image (B, out_channels, H, W) in [0, 1].

    Each of the ``len(channels_down)`` levels halves the resolution with a strided Conv3×3 (+ a
    Conv3×3), recurses, upsamples bilinearly, concatenates a 1×1 skip branch (``channels_skip``
    channels, 0 to drop it) and mixes with Conv3×3 + Conv1×1; every conv is reflection-padded and
    followed by BatchNorm and LeakyReLU(0.2); a final Conv1×1 and a sigmoid give the image. The
    defaults are Ulyanov et al.'s deblurring network (5 levels, 128 channels, 16-channel skips).

    Any H, W works: the input is reflect-padded (replicated when too small) to a multiple of
    ``2**levels`` (at least ``2**(levels+1)``, so that the deepest map is 2×2) and the output
    cropped back.
    """

    def __init__(
        self,
        in_channels: int = 8,
        out_channels: int = 3,
        channels_down: Sequence[int] = (128, 128, 128, 128, 128),
        channels_up: Sequence[int] = (128, 128, 128, 128, 128),
        channels_skip: Sequence[int] = (16, 16, 16, 16, 16),
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        if not (len(channels_down) == len(channels_up) == len(channels_skip)) or not channels_down:
            raise ValueError("ImageDIP: channels_down, channels_up and channels_skip need one length (>= 1)")
        self.levels = len(channels_down)
        self.in_channels = in_channels
        deeper: nn.Module | None = None
        deeper_out = 0
        for i in reversed(range(self.levels)):
            c_in = in_channels if i == 0 else channels_down[i - 1]
            deeper = _SkipLevel(
                c_in, channels_down[i], channels_up[i], channels_skip[i], deeper, deeper_out, kernel_size
            )
            deeper_out = channels_up[i]
        self.body = deeper
        self.head = nn.Conv2d(channels_up[0], out_channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) noise → (B, out_channels, H, W) image in [0, 1]."""
        h, w = z.shape[-2:]
        multiple = 2**self.levels  # and at least 2·multiple, so the deepest map is >= 2×2
        ph, pw = max((-h) % multiple, 2 * multiple - h), max((-w) % multiple, 2 * multiple - w)
        if ph or pw:
            z = safe_reflect_pad(z, (0, pw, 0, ph))
        return torch.sigmoid(self.head(self.body(z)))[..., :h, :w]


class KernelDIP(nn.Module):
    """G-like network: noise (B, in_channels, gh·2^n, gw·2^n) → code (B, kernel_dim, gh, gw).

    The structure of the kernel extractor G: ReflectionPad(3) Conv7×7(in → width) ReLU, then
    ``n_down`` × [Conv3×3 stride 2, ReLU] with channels min(width·2^(i+1), kernel_dim) (the last one
    always kernel_dim), then ``n_blocks`` residual blocks on the code map. With ``n_down = 5`` and an
    input the size of G's input (H/4 × W/4) it is the published kernel DIP; a fast preset uses a
    smaller width and a smaller noise map.
    """

    def __init__(
        self, kernel_dim: int, in_channels: int = 8, width: int = 16, n_down: int = 2, n_blocks: int = 2
    ) -> None:
        super().__init__()
        self.kernel_dim = kernel_dim
        self.in_channels = in_channels
        self.n_down = n_down
        layers: list[nn.Module] = [SafeReflectionPad(3), nn.Conv2d(in_channels, width, 7), nn.ReLU(True)]
        c_in = width
        for i in range(n_down):
            c_out = kernel_dim if i == n_down - 1 else min(width * 2 ** (i + 1), kernel_dim)
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1), nn.ReLU(True)]
            c_in = c_out
        if c_in != kernel_dim:  # n_down = 0: project to the code channels
            layers.append(nn.Conv2d(c_in, kernel_dim, 1))
        layers += [ResnetBlock(kernel_dim) for _ in range(n_blocks)]
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, gh·2^n_down, gw·2^n_down) noise → (B, kernel_dim, gh, gw) code."""
        return self.model(z)


def image_noise(
    shape: tuple[int, int], channels: int = 8, generator: torch.Generator | None = None, scale: float = 0.1
) -> torch.Tensor:
    """The fixed input z_x of :class:`ImageDIP`: (1, channels, H, W) uniform noise in [0, scale).

    ``shape`` is (H, W) of the image; as in Deep Image Prior the noise is uniform and scaled by 1/10.
    """
    h, w = shape
    return torch.rand(1, channels, h, w, generator=generator) * scale


def kernel_noise(
    grid: tuple[int, int], channels: int = 8, n_down: int = 2, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The fixed input z_k of :class:`KernelDIP`: (1, channels, gh·2^n_down, gw·2^n_down) N(0, 1) noise.

    ``grid`` is the code grid (gh, gw) the deblurring needs (``code_grid_size(H, W)``).
    """
    gh, gw = grid
    return torch.randn(1, channels, gh * 2**n_down, gw * 2**n_down, generator=generator)
