"""The kernel extractor G: features of a sharp/blurry pair → a spatial kernel code.

G works on the outputs of the shared :class:`~models.blocks.PreprocessBlock` (see
:class:`~models.kernel_space.KernelSpace`, which owns that block).
"""

from __future__ import annotations

import torch
from torch import nn

from models.blocks import ResnetBlock

N_DOWNSAMPLINGS = 5  # H/4 → H/128


class KernelExtractor(nn.Module):
    """G: (sharp features, blurry features) → kernel code.

    Layers (``model`` keeps the published indices): ReflectionPad(3), Conv7×7(2nf→nf), ReLU,
    5 × [Conv3×3 s2, ReLU] with channels min(nf·2^i, out) → min(nf·2^(i+1), out), then ``n_blocks``
    :class:`ResnetBlock` (no biases, no norm). ``out`` is ``kernel_dim`` or, with ``use_vae``,
    ``2·kernel_dim`` (mean and sigma halves).

    Input: two (B, nf, H/4, W/4) maps with H, W multiples of 128.
    Output: (B, kernel_dim, H/128, W/128), or with ``use_vae`` a tuple (mean, sigma) of that shape.
    """

    def __init__(self, nf: int = 64, kernel_dim: int = 512, n_blocks: int = 4, use_vae: bool = False) -> None:
        super().__init__()
        self.kernel_dim = kernel_dim
        self.use_vae = use_vae
        out_dim = 2 * kernel_dim if use_vae else kernel_dim
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(2 * nf, nf, 7, 1, 0, bias=False),
            nn.Identity(),
            nn.ReLU(True),
        ]
        for i in range(N_DOWNSAMPLINGS):
            c_in, c_out = min(nf * 2**i, out_dim), min(nf * 2 ** (i + 1), out_dim)
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.Identity(), nn.ReLU(True)]
        layers += [ResnetBlock(out_dim) for _ in range(n_blocks)]
        self.model = nn.Sequential(*layers)

    def forward(
        self, sharp_feat: torch.Tensor, blur_feat: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        code = self.model(torch.cat([sharp_feat, blur_feat], dim=1))
        if self.use_vae:
            return code[:, : self.kernel_dim], code[:, self.kernel_dim :]
        return code
