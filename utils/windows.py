"""Smooth 1-D weight ramps: the raised-cosine ramp that tapers borders and blends overlapping tiles."""

from __future__ import annotations

import math

import torch


def raised_cosine(
    n: int, offset: float = 0.5, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(n,) rising ramp ½ − ½·cos(π·(i + offset)/n), i = 0 … n−1: from near 0 to near 1.

    ``offset`` 0.5 samples the ramp at pixel centres (a ramp and its mirror image sum to 1 over an
    overlap); 0 starts it at exactly 0.
    """
    return 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(n, device=device, dtype=dtype) + offset) / n)
