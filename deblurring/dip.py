"""The paper's blind deblurring (Tran et al., CVPR 2021, Sec. 4.2): two deep image priors through a
frozen kernel space.

The sharp image is the output of an image DIP, x = ImageDIP(z_x), and the kernel code the output of a
kernel DIP, k = KernelDIP(z_k), both fed fixed noise (plus fresh noise of std ``reg_noise_std`` at every
step); Adam optimises the two networks so that the frozen F re-blurs x into the input (the loop:
:mod:`deblurring.through_space`). ``configs/deblur/paper.yml`` is the published schedule.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from deblurring.result import DeblurResult
from deblurring.through_space import adam_through_space
from models.dip import ImageDIP, KernelDIP, image_noise, kernel_noise


def _jitter(z: torch.Tensor, std: float, gen: torch.Generator) -> torch.Tensor:
    """z plus fresh Gaussian noise of ``std`` drawn from ``gen`` (on the CPU, then moved to z's device)."""
    return z + std * torch.randn(z.shape, generator=gen).to(z.device) if std > 0 else z


class ImagePrior:
    """x = ImageDIP(z_x) (1, 3, h, w) in [0, 1], with z_x (1, in_channels, h, w) drawn once from ``gen``.

    The network is built at construction (its weights from torch's global generator), on ``y``'s device.
    """

    def __init__(
        self,
        y: torch.Tensor,  # (1, 3, h, w): the blurry image at this scale (its size and device)
        gen: torch.Generator,
        *,
        lr: float,
        warmup_steps: int,
        noise_std: float,
        in_channels: int,
        channels_down: Sequence[int],
        channels_up: Sequence[int],
        channels_skip: Sequence[int],
    ) -> None:
        self.lr, self.warmup_steps, self.noise_std, self.gen = lr, warmup_steps, noise_std, gen
        self.net = ImageDIP(in_channels, 3, channels_down, channels_up, channels_skip).to(y.device)
        self.z = image_noise(tuple(y.shape[-2:]), in_channels, gen).to(y.device)

    def parameters(self) -> list[torch.Tensor]:
        """The network's weights."""
        return list(self.net.parameters())

    def __call__(self, noisy: bool) -> torch.Tensor:
        """x (1, 3, h, w); ``noisy``: z_x jittered by fresh noise."""
        return self.net(_jitter(self.z, self.noise_std, self.gen) if noisy else self.z)


class KernelPrior:
    """k = KernelDIP(z_k) (1, kernel_dim, gh, gw), with z_k (1, in_channels, gh·2^n_down, gw·2^n_down)
    drawn once from ``gen``. The network is built at construction, on ``k0``'s device."""

    def __init__(
        self,
        k0: torch.Tensor,  # (1, kernel_dim, gh, gw): the start code (its grid and device)
        gen: torch.Generator,
        *,
        lr: float,
        warmup_steps: int,
        noise_std: float,
        in_channels: int,
        width: int,
        n_down: int,
        n_blocks: int,
    ) -> None:
        self.lr, self.warmup_steps, self.noise_std, self.gen = lr, warmup_steps, noise_std, gen
        self.net = KernelDIP(k0.shape[1], in_channels, width, n_down, n_blocks).to(k0.device)
        self.z = kernel_noise(tuple(k0.shape[-2:]), in_channels, n_down, gen).to(k0.device)

    def parameters(self) -> list[torch.Tensor]:
        """The network's weights."""
        return list(self.net.parameters())

    def __call__(self, noisy: bool) -> torch.Tensor:
        """k (1, kernel_dim, gh, gw); ``noisy``: z_k jittered by fresh noise."""
        return self.net(_jitter(self.z, self.noise_std, self.gen) if noisy else self.z)


def deblur_dip(
    blurry: torch.Tensor,  # (1, 3, H, W) RGB or (1, 1, H, W) gray, in [0, 1]
    kernel_space: Any,  # a KernelSpace (kept frozen; on `device`)
    *,
    iterations: int = 5000,  # Adam steps, all scales together
    warmup_iterations: int = 300,  # steps fitting each DIP to its start, at every scale
    scales: Sequence[float] = (1.0,),  # coarse to fine, ending with 1.0
    scale_fractions: Sequence[float] = (1.0,),  # share of `iterations` per scale
    min_size: int = 16,  # smallest side of an image (and of a scale) in pixels
    image_lr: float = 5e-4,
    kernel_lr: float = 5e-4,
    kernel_init: str = "mean_code",  # mean_code | identity | zero
    kernel_rescale_init: str = "identity",  # previous | extract | identity | mean_code | zero
    reg_noise_std: float = 1e-3,  # fresh noise on z_x and z_k at every step
    image_in_channels: int = 8,
    image_channels_down: Sequence[int] = (128, 128, 128, 128, 128),
    image_channels_up: Sequence[int] = (128, 128, 128, 128, 128),
    image_channels_skip: Sequence[int] = (16, 16, 16, 16, 16),
    kernel_in_channels: int = 64,
    kernel_width: int = 64,
    kernel_n_down: int = 5,
    kernel_n_blocks: int = 6,
    lr_schedule: str = "step",  # step (×0.7 every fifth) | cosine | constant
    lr_min_ratio: float = 0.05,  # end of the cosine schedule
    loss: Mapping[str, Any] | None = None,  # the `loss` section of configs/defaults/deblur.yml (None: its defaults)
    early_stop: Mapping[str, Any] | None = None,  # the `early_stop` section (None: off)
    amp: bool = False,  # bfloat16 autocast for F on CUDA
    device: str | torch.device | None = None,  # None: the kernel space's device
    seed: int = 0,
    progress: bool = True,
) -> DeblurResult:
    """Blind deblurring of one image by the paper's route: an image DIP and a kernel DIP optimised by
    Adam through the frozen kernel space → a :class:`DeblurResult` (sharp (1, C, H, W) with the input's
    C, code (1, kernel_dim, ceil(H/128), ceil(W/128)), re-blur, history; no explicit PSF).

    At each scale both DIPs are built afresh (image first), warmed up to their starts (the blurry image or
    the coarser estimate; the start code) for ``warmup_iterations`` steps, then optimised for the
    scale's share of ``iterations`` (:func:`deblurring.through_space.adam_through_space`). The defaults
    are those of ``configs/defaults/deblur.yml`` (the published schedule: ``configs/deblur/paper.yml``).
    Same seed, same result on the CPU (bitwise with one thread).
    """

    def make_image(y: torch.Tensor, x0: torch.Tensor, gen: torch.Generator) -> ImagePrior:
        return ImagePrior(
            y, gen, lr=image_lr, warmup_steps=warmup_iterations, noise_std=reg_noise_std,
            in_channels=image_in_channels, channels_down=image_channels_down,
            channels_up=image_channels_up, channels_skip=image_channels_skip,
        )  # fmt: skip

    def make_kernel(k0: torch.Tensor, gen: torch.Generator) -> KernelPrior:
        return KernelPrior(
            k0, gen, lr=kernel_lr, warmup_steps=warmup_iterations, noise_std=reg_noise_std,
            in_channels=kernel_in_channels, width=kernel_width, n_down=kernel_n_down, n_blocks=kernel_n_blocks,
        )  # fmt: skip

    return adam_through_space(
        blurry, kernel_space, make_image, make_kernel, iterations=iterations, scales=scales,
        scale_fractions=scale_fractions, min_size=min_size, kernel_init=kernel_init,
        kernel_rescale_init=kernel_rescale_init, lr_schedule=lr_schedule, lr_min_ratio=lr_min_ratio,
        loss=loss, early_stop=early_stop, amp=amp, device=device, seed=seed, progress=progress,
    )  # fmt: skip
