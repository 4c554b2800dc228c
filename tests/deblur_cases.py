"""What the deblurring tests share: tiny presets of the algorithms through the kernel space, a synthetic
dead-leaves case, blurred photos, PSNR on tensors."""

from __future__ import annotations

import numpy as np
import torch

from data.kernels import shake_kernel
from data.sharp_sources import DeadLeavesSource
from data.synthetic import blur_valid


def psnr_db(a: torch.Tensor, b: torch.Tensor, crop: int = 0) -> float:
    """PSNR (dB, peak 1) of two tensors, ``crop`` px cut from every border first."""
    if crop:
        a, b = a[..., crop:-crop, crop:-crop], b[..., crop:-crop, crop:-crop]
    return float(-10 * torch.log10((a - b).square().mean()))


def synthetic_case() -> dict:
    """A 192² dead-leaves image blurred by a 15-px camera-shake kernel (valid convolution), σ = 0.002."""
    rng = np.random.default_rng(3)
    kernel = shake_kernel(rng, 15, intensity=0.9)
    big = DeadLeavesSource(texture=False).sample(rng, 192 + 14, 192 + 14)
    if big.ndim == 2:
        big = big[:, :, None]
    big = big[:, :, :1].astype(np.float32)
    blurry = blur_valid(big, kernel)[:, :, 0] + rng.normal(0, 0.002, (192, 192)).astype(np.float32)
    return {
        "sharp": torch.from_numpy(np.ascontiguousarray(big[7:-7, 7:-7, 0]))[None, None],
        "blurry": torch.from_numpy(np.clip(blurry, 0, 1))[None, None],
        "kernel": torch.from_numpy(kernel),
    }


def photo_case(kernel_size: int, side: int, seed: int, lights: bool = False, noise: float = 0.005) -> dict:
    """A gray scikit-image photo (side²) blurred by a camera-shake kernel (valid convolution), σ = ``noise``;
    with ``lights``, a few bright discs 3× past white that clip after the blur."""
    from skimage import data as skdata

    rng = np.random.default_rng(seed)
    kernel = shake_kernel(rng, kernel_size, intensity=1.0)
    r = kernel_size // 2
    photo = skdata.camera().astype(np.float32) / 255
    big = photo[:side + 2 * r, :side + 2 * r, None] * 0.8
    if lights:
        yy, xx = np.mgrid[:big.shape[0], :big.shape[1]]
        for cy, cx in rng.uniform(r + 10, side + r - 10, (6, 2)):
            big[(yy - cy) ** 2 + (xx - cx) ** 2 < 16, 0] = 3.0
    blurry = blur_valid(big, kernel)[:, :, 0] + rng.normal(0, noise, (side, side)).astype(np.float32)
    return {"blurry": torch.from_numpy(np.clip(blurry, 0, 1))[None, None], "kernel": torch.from_numpy(kernel),
            "sharp": torch.from_numpy(np.clip(big[r:r + side, r:r + side, 0], 0, 1))[None, None]}


# few steps, small networks: every F call runs on a 128×128 pad of the tiny model
TINY_DIP_NETS = {
    "warmup_iterations": 2,
    "reg_noise_std": 0.01,
    "image_in_channels": 4,
    "image_channels_down": [4, 4],
    "image_channels_up": [4, 4],
    "image_channels_skip": [2, 2],
    "kernel_in_channels": 4,
    "kernel_width": 4,
    "kernel_n_down": 2,
    "kernel_n_blocks": 1,
}

TINY_DIP = {
    "algorithm": "dip",
    "iterations": 6,
    "image": {"lr": 0.01},
    "kernel": {"lr": 0.01},
    "dip": TINY_DIP_NETS,
}

FAST = {
    "algorithm": "direct",
    "iterations": 4,
    "scales": [0.5, 1.0],
    "scale_fractions": [0.5, 0.5],
    "image": {"lr": 0.02},
    "kernel": {"lr": 0.02, "rescale_init": "extract"},
}

# the same settings for either algorithm through the kernel space (dip: with tiny networks, no warm-up)
ROUTES = {
    "direct": {"algorithm": "direct"},
    "dip": {"algorithm": "dip", "dip": {**TINY_DIP_NETS, "warmup_iterations": 0}},
}
