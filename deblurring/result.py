"""The result of a blind deblurring run (shared by every algorithm of :mod:`deblurring` and deblur.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class DeblurResult:
    """What a blind deblurring function found, on the CPU.

    ``sharp``: (1, C, H, W) in [0, 1] (C as in the input); ``code``: the kernel code
    (1, kernel_dim, ceil(H/128), ceil(W/128)), or None when no kernel space was used;
    ``reblurred``: the sharp image blurred by what was found, (1, C, H, W); ``history``: one dict per
    optimisation step; ``psf``: the explicit PSF map (1, gh, gw, S, S) where the algorithm has one
    (None for the implicit U-Net kernel space).
    """

    sharp: torch.Tensor
    code: torch.Tensor | None
    reblurred: torch.Tensor
    history: list[dict[str, Any]] = field(default_factory=list)
    psf: torch.Tensor | None = None
