"""Losses and priors: Charbonnier, hyper-Laplacian gradient prior, kernel-code norm, VAE KL, SSIM, VGG,
the kernel-code loss of synthetic training and the PSF loss of the psf kernel space.

Images are float tensors (B, C, H, W) in [0, 1]; every function returns a scalar tensor.
"""

from losses.kernel_code import kernel_code_loss, kernel_code_target, kernel_projection
from losses.kl import kl_divergence
from losses.perceptual import VGGPerceptualLoss
from losses.pixel import CharbonnierLoss, charbonnier
from losses.priors import HyperLaplacianPrior, hyper_laplacian, image_gradients, kernel_norm
from losses.psf import psf_loss
from losses.ssim import SSIMLoss, gaussian_window, ssim

__all__ = [
    "CharbonnierLoss",
    "HyperLaplacianPrior",
    "SSIMLoss",
    "VGGPerceptualLoss",
    "charbonnier",
    "gaussian_window",
    "hyper_laplacian",
    "image_gradients",
    "kernel_code_loss",
    "kernel_code_target",
    "kernel_norm",
    "kernel_projection",
    "kl_divergence",
    "psf_loss",
    "ssim",
]
