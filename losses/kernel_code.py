"""An auxiliary loss for synthetic training data, whose true blur kernels are known: G's code must
encode the kernel.

Training a kernel space from scratch has a slow start: at first G's code is noise to F, so F learns
one average blur and the code is driven out before it becomes useful. Asking G's (spatially averaged)
code to equal a fixed random projection of the true kernel makes it informative from the first
steps; F then learns to read it. The projection is seeded and not trained, so the loss adds no
parameters and nothing to checkpoints.
"""

from __future__ import annotations

import functools

import torch

PROJECTION_SEED = 20210601


def kernel_projection(code_dim: int, kernel_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The fixed (code_dim, kernel_size²) Gaussian projection with entries N(0, 1/code_dim): it keeps
    the length of a unit vector in expectation (a Johnson–Lindenstrauss map), so distances between
    normalised kernels survive in the code."""
    return _cpu_projection(code_dim, kernel_size).to(device)


@functools.lru_cache(maxsize=4)
def _cpu_projection(code_dim: int, kernel_size: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(PROJECTION_SEED)
    return torch.randn(code_dim, kernel_size * kernel_size, generator=gen) / code_dim**0.5


def kernel_code_target(kernel: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """P·k/‖k‖: the code that the kernel-code loss asks G for, (B, code_dim) from (B, 1, K, K) kernels."""
    flat = kernel.flatten(1).to(projection.dtype)
    if flat.shape[1] != projection.shape[1]:
        raise ValueError(f"kernel_code_loss: kernel {tuple(kernel.shape)} does not match the projection "
                         f"{tuple(projection.shape)}")
    return (flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)) @ projection.T


def kernel_code_loss(code_mean: torch.Tensor, kernel: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """Σ over the batch of ‖code − P·k/‖k‖‖².

    ``code_mean``: (B, code_dim), G's code averaged over its grid; ``kernel``: (B, 1, K, K) true kernels;
    ``projection``: P from :func:`kernel_projection` for (code_dim, K). Returns a scalar (a sum, like
    the pixel loss of :func:`train.pixel_loss`).
    """
    if code_mean.shape[1] != projection.shape[0]:
        raise ValueError(f"kernel_code_loss: code {tuple(code_mean.shape)} does not match the projection "
                         f"{tuple(projection.shape)}")
    return (code_mean - kernel_code_target(kernel, projection).to(code_mean.dtype)).pow(2).sum()
