"""Blind deblurring by direct optimisation of pixels and code through a frozen kernel space.

The sharp image is free pixels, x = sigmoid(u) (u started at logit of the blurry image or the coarser
estimate), and the kernel code is free (started by ``kernel_init``); Adam optimises u and the code so
that the frozen F re-blurs x into the input, under the hyper-Laplacian prior and the kernel-norm term
(the loop: :mod:`deblurring.through_space`). No networks, no warm-up, nothing random: the fast
counterpart of the paper's DIP route (``configs/deblur/fast.yml``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from deblurring.result import DeblurResult
from deblurring.through_space import adam_through_space


class Pixels:
    """x = sigmoid(u) (1, 3, h, w), u free, started at logit(x0) (x0 clamped to [1e-3, 1 - 1e-3])."""

    warmup_steps = 0

    def __init__(self, x0: torch.Tensor, *, lr: float) -> None:
        self.lr = lr
        self.u = torch.logit(x0.clamp(1e-3, 1 - 1e-3)).clone().requires_grad_(True)

    def parameters(self) -> list[torch.Tensor]:
        """[u] (1, 3, h, w)."""
        return [self.u]

    def __call__(self, noisy: bool) -> torch.Tensor:
        """x (1, 3, h, w) in (0, 1) (no noise either way)."""
        return torch.sigmoid(self.u)


class FreeCode:
    """k = code (1, kernel_dim, gh, gw), free, started at k0. With ``relative``, the learning rate is
    ``lr`` × the RMS of k0, so a step is a fixed fraction of the model's code scale."""

    warmup_steps = 0

    def __init__(self, k0: torch.Tensor, *, lr: float, relative: bool) -> None:
        self.lr = lr * max(float(k0.pow(2).mean().sqrt()), 1e-8) if relative else lr
        self.code = k0.clone().requires_grad_(True)

    def parameters(self) -> list[torch.Tensor]:
        """[code] (1, kernel_dim, gh, gw)."""
        return [self.code]

    def __call__(self, noisy: bool) -> torch.Tensor:
        """k (1, kernel_dim, gh, gw) (no noise either way)."""
        return self.code


def deblur_direct(
    blurry: torch.Tensor,  # (1, 3, H, W) RGB or (1, 1, H, W) gray, in [0, 1]
    kernel_space: Any,  # a KernelSpace (kept frozen; on `device`)
    *,
    iterations: int = 5000,  # Adam steps, all scales together
    scales: Sequence[float] = (1.0,),  # coarse to fine, ending with 1.0
    scale_fractions: Sequence[float] = (1.0,),  # share of `iterations` per scale
    min_size: int = 16,  # smallest side of an image (and of a scale) in pixels
    image_lr: float = 5e-4,  # Adam learning rate of u
    kernel_lr: float = 5e-4,  # Adam learning rate of the code (see kernel_lr_relative)
    kernel_init: str = "mean_code",  # mean_code | identity | zero
    kernel_rescale_init: str = "identity",  # previous | extract | identity | mean_code | zero
    kernel_lr_relative: bool = False,  # kernel_lr × the RMS of each scale's start code
    lr_schedule: str = "step",  # step (×0.7 every fifth) | cosine | constant
    lr_min_ratio: float = 0.05,  # end of the cosine schedule
    loss: Mapping[str, Any] | None = None,  # the `loss` section of configs/defaults/deblur.yml (None: its defaults)
    early_stop: Mapping[str, Any] | None = None,  # the `early_stop` section (None: off)
    amp: bool = False,  # bfloat16 autocast for F on CUDA
    device: str | torch.device | None = None,  # None: the kernel space's device
    seed: int = 0,  # unused by the algorithm itself (nothing is random); kept for the common signature
    progress: bool = True,
) -> DeblurResult:
    """Blind deblurring of one image by Adam on free pixels and a free code through the frozen kernel
    space → a :class:`DeblurResult` (sharp (1, C, H, W) with the input's C, code (1, kernel_dim,
    ceil(H/128), ceil(W/128)), re-blur, history; no explicit PSF).

    At each scale x starts at the blurry image (first scale) or the upsampled coarser estimate and the
    code by ``kernel_init`` / ``kernel_rescale_init``; then Adam for the scale's share of ``iterations``
    (:func:`deblurring.through_space.adam_through_space`). The defaults are those of
    ``configs/defaults/deblur.yml``; the tuned fast settings are ``configs/deblur/fast.yml``.
    Deterministic (bitwise on the CPU with one thread).
    """

    def make_image(y: torch.Tensor, x0: torch.Tensor, gen: torch.Generator) -> Pixels:
        return Pixels(x0, lr=image_lr)

    def make_kernel(k0: torch.Tensor, gen: torch.Generator) -> FreeCode:
        return FreeCode(k0, lr=kernel_lr, relative=kernel_lr_relative)

    return adam_through_space(
        blurry, kernel_space, make_image, make_kernel, iterations=iterations, scales=scales,
        scale_fractions=scale_fractions, min_size=min_size, kernel_init=kernel_init,
        kernel_rescale_init=kernel_rescale_init, lr_schedule=lr_schedule, lr_min_ratio=lr_min_ratio,
        loss=loss, early_stop=early_stop, amp=amp, device=device, seed=seed, progress=progress,
    )  # fmt: skip
