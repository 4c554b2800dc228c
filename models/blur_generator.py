"""The blur generator F: a sharp image and a kernel code → the blurry image.

F = PreprocessBlock (shared with G, owned by :class:`~models.kernel_space.KernelSpace`) → a
5-level U-Net whose bottleneck is concatenated with the code → PostprocessBlock, plus the input.
"""

from __future__ import annotations

import torch
from torch import nn

from models.blocks import PostprocessBlock


def up_activation(slope: float) -> nn.Module:
    """The decoder's activation: ReLU (published) for ``slope`` 0, else LeakyReLU(``slope``)."""
    return nn.LeakyReLU(slope) if slope > 0 else nn.ReLU()


class UNetLevel(nn.Module):
    """One level of the pix2pix-style skip U-Net, nesting the deeper levels in ``submodule``.

    ``down``: [LeakyReLU(0.2)] Conv4×4 s2 (outer→inner, no bias) — the outermost level has no
    activation before its conv. ``up``: ReLU (LeakyReLU(``decoder_slope``) when it is > 0),
    ConvTranspose4×4 s2 (→outer) — the outermost one has a bias and ends in Tanh. The innermost
    level concatenates the kernel code to its bottleneck before ``up``; every level but the
    outermost returns ``cat([up(...), input])`` (this channel order is the published one).
    Input (B, outer, h, w); output (B, 2·outer, h, w), or (B, outer, h, w) for the outermost.
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        submodule: UNetLevel | None = None,
        outermost: bool = False,
        code_dim: int = 0,
        decoder_slope: float = 0.0,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        self.innermost = submodule is None
        down_conv = nn.Conv2d(outer_nc, inner_nc, 4, 2, 1, bias=False)
        if outermost:
            self.down = nn.Sequential(down_conv)
            up_conv = nn.ConvTranspose2d(2 * inner_nc, outer_nc, 4, 2, 1, bias=True)
            self.up = nn.Sequential(up_activation(decoder_slope), up_conv, nn.Tanh())
        else:
            self.down = nn.Sequential(nn.LeakyReLU(0.2), down_conv)
            up_in = inner_nc + code_dim if self.innermost else 2 * inner_nc
            up_conv = nn.ConvTranspose2d(up_in, outer_nc, 4, 2, 1, bias=False)
            self.up = nn.Sequential(up_activation(decoder_slope), up_conv)
        if submodule is not None:
            self.submodule = submodule

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        y = self.down(x)
        y = torch.cat([y, code], dim=1) if self.innermost else self.submodule(y, code)
        y = self.up(y)
        return y if self.outermost else torch.cat([y, x], dim=1)


def build_unet(nf: int, code_dim: int, decoder_slope: float = 0.0) -> UNetLevel:
    """The 5-level U-Net of F with channels nf→nf→2nf→4nf→8nf→8nf and the code at the bottleneck;
    ``decoder_slope``: see :class:`UNetLevel`."""
    level = UNetLevel(8 * nf, 8 * nf, code_dim=code_dim, decoder_slope=decoder_slope)
    level = UNetLevel(4 * nf, 8 * nf, level, decoder_slope=decoder_slope)
    level = UNetLevel(2 * nf, 4 * nf, level, decoder_slope=decoder_slope)
    level = UNetLevel(nf, 2 * nf, level, decoder_slope=decoder_slope)
    return UNetLevel(nf, nf, level, outermost=True, decoder_slope=decoder_slope)


class BlurGenerator(nn.Module):
    """F without its (shared) PreprocessBlock: U-Net with code injection + PostprocessBlock + input.

    ``forward(sharp, sharp_feat, code)``: sharp (B, 3, H, W) with H, W multiples of 128,
    sharp_feat (B, nf, H/4, W/4) from the PreprocessBlock, code (B, kernel_dim, H/128, W/128).
    Output: the blurry image (B, 3, H, W) (not clamped).
    """

    def __init__(
        self, nf: int = 64, kernel_dim: int = 512, back_RBs: int = 20, out_nc: int = 3,
        decoder_slope: float = 0.0,
    ) -> None:
        super().__init__()
        self.unet = build_unet(nf, kernel_dim, decoder_slope)
        self.postprocess = PostprocessBlock(nf, back_RBs, out_nc)

    def forward(self, sharp: torch.Tensor, sharp_feat: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return sharp + self.postprocess(self.unet(sharp_feat, code))
