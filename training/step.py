"""One training step: the training forward pass (:class:`TrainForward`, what DDP wraps), the losses,
and one optimizer update (:func:`train_step`)."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from losses import charbonnier, kernel_code_loss, kernel_code_target, kernel_projection, kl_divergence, psf_loss
from models import KernelSpace
from utils.dist import DistInfo, any_true
from utils.errors import UserError


class TrainForward(nn.Module):
    """The training forward pass of a :class:`KernelSpace` (what DDP wraps and compile traces).

    ``forward(sharp, blur, teacher=None, psfs=None)`` with (B, 3, H, W) tensors returns (ŷ = F(x, G(x, y))
    (B, 3, H, W), G's code mean (B, kernel_dim) averaged over the code grid (with its graph, for the
    kernel loss), KL term (scalar; 0 without a VAE): the published one,
    ``sum(μ² + σ² − log σ² − 1)`` over the batch's code elements, i.e. twice the summed KL
    divergence). ``teacher`` (``train.kernel_teacher``) replaces G's code as F's input for the
    first T ≤ B samples, spread over the code grid: (T, kernel_dim) codes for the unet type, or for
    the psf type (T, S, S) PSFs (the true kernels) that its kernel encoder turns into codes.

    psf type only, ``psfs`` (N, S, S) (``train.kernel_batch``): a fourth element is returned, the
    pair (PSFs decoded from G's grid-averaged codes (B, S, S), the auto-encoded ``psfs`` (N, S, S)),
    so that every use of the decoder and encoder happens inside this one forward (as DDP needs).

    It runs :meth:`KernelSpace.encode_and_apply`: the unet type's shared PreprocessBlock runs once
    on the sharp image for G and F, as in the published KernelWizard.forward.
    """

    def __init__(self, ks: KernelSpace) -> None:
        super().__init__()
        self.ks = ks

    def forward(
        self, sharp: torch.Tensor, blur: torch.Tensor, teacher: torch.Tensor | None = None,
        psfs: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        ks = self.ks
        kl = torch.zeros((), device=sharp.device)
        means: list[torch.Tensor] = []

        def sample(encoded: Any) -> torch.Tensor:
            nonlocal kl
            if isinstance(encoded, tuple):
                mean, sigma = encoded
                kl = kl + 2.0 * kl_divergence(mean.float(), sigma.float(), reduction="sum")
                return mean + sigma * torch.randn_like(mean)
            return encoded

        def choose_code(encoded: Any) -> torch.Tensor:
            means.append(encoded[0] if isinstance(encoded, tuple) else encoded)
            code = sample(encoded)
            if teacher is not None and len(teacher):
                own = teacher
                if ks.generator_type == "psf":
                    own = sample(ks.extractor.encoder(teacher[:, None, None]))[:, :, 0, 0]
                grid = own.to(code.dtype)[:, :, None, None].expand(-1, -1, *code.shape[-2:])
                code = torch.cat([grid, code[len(teacher):]], dim=0)
            return code

        pred, _ = ks.encode_and_apply(sharp, blur, choose_code)
        code_mean = means[0].float().mean(dim=(2, 3))
        if psfs is None:
            return pred, code_mean, kl
        decoder = ks.generator.decoder
        g_psfs = decoder(code_mean[:, :, None, None])[:, 0, 0]
        restored = decoder(sample(ks.extractor.encoder(psfs[:, None, None])))[:, 0, 0]
        return pred, code_mean, kl, (g_psfs, restored)


def autocast_context(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The one mixed-precision context of the loop: ``nullcontext`` for ``none``, else autocast.

    bf16 works on CUDA and CPU; fp16 needs CUDA (and a gradient scaler, see :func:`train`).
    """
    if amp == "none":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise UserError(
            f"config key 'train.amp': fp16 needs a CUDA device (this run uses {device}); use bf16 or none"
        )
    return torch.autocast(device.type, dtype=torch.float16 if amp == "fp16" else torch.bfloat16)


def pixel_loss(pred: torch.Tensor, target: torch.Tensor, criterion: str) -> torch.Tensor:
    """Pixel loss between ŷ and y (B, 3, H, W), **summed** over all elements as in the published
    training: ``cb`` Charbonnier, ``l1`` or ``l2``.

    The sum matters. Adam is blind to the scale of the loss except through its ``eps`` (1e-8): with
    a mean, the gradients reaching G and the code input of F at the default initialisation are about
    1e-12 (B·3·H·W times smaller than with the sum), far below ``eps``, so Adam's steps on them
    shrink ~10⁴-fold, G never trains and F learns to ignore the code (measured:
    bench/results/loss_reduction.md).
    """
    if criterion == "cb":
        return charbonnier(pred, target, reduction="sum")
    if criterion == "l1":
        return F.l1_loss(pred, target, reduction="sum")
    return F.mse_loss(pred, target, reduction="sum")


def unwrap_kernel_space(forward: nn.Module) -> KernelSpace:
    """The KernelSpace inside a (possibly DDP- or compile-wrapped) TrainForward."""
    inner = getattr(forward, "module", forward)
    inner = getattr(inner, "_orig_mod", inner)
    return inner.ks


@dataclass
class StepResult:
    """Losses of one step (python floats, for the logs) and the outputs kept for logging.

    The optimised loss is a sum over the batch (:func:`pixel_loss`); the logs show it per image
    element (``loss``, ``pixel``: divided by B·3·H·W, comparable across batch and crop sizes) and
    the KL term and the kernel-code loss per sample (``kl``, ``kernel``)."""

    loss: float
    pixel: float
    kl: float
    kernel: float
    skipped: bool
    code_mean: torch.Tensor  # (kernel_dim,) batch mean of the spatially averaged code
    pred: torch.Tensor  # (B, 3, H, W) detached


def train_step(
    forward: nn.Module, sharp: torch.Tensor, blur: torch.Tensor, optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler, autocast: contextlib.AbstractContextManager, cfg: dict, info: DistInfo,
    kernel: torch.Tensor | None = None, psfs: torch.Tensor | None = None,
) -> StepResult:
    """One optimizer step on a batch (sharp, blur: (B, 3, H, W) on the training device; ``kernel``:
    the true (B, 1, K, K) kernels, needed when ``train.kernel_weight`` or ``train.kernel_teacher``
    is > 0; ``psfs``: psf type, the (N, S, S) generated kernels of ``train.kernel_batch``).

    The kernel loss: for the unet type, G's code against a fixed projection of the true kernel
    (:func:`losses.kernel_code_loss`); for the psf type, the PSF decoded from G's code against the
    true kernel, plus the auto-encoded ``psfs`` against themselves (:func:`losses.psf_loss`).
    A non-finite loss (on any rank) skips the backward pass and the update.
    """
    t = cfg["train"]
    ks = unwrap_kernel_space(forward)
    optimizer.zero_grad(set_to_none=True)
    uses_kernels = t["kernel_weight"] > 0 or t["kernel_teacher"] > 0
    if uses_kernels and kernel is None:
        raise ValueError("train.kernel_weight / train.kernel_teacher need the batch's true kernels")
    projection = teacher = None
    if uses_kernels:
        kernel = kernel.to(blur.device)
        n_teacher = round(t["kernel_teacher"] * len(blur))
        if ks.generator_type == "psf":
            kernel = centre_kernels(kernel, ks.psf_size)
            teacher = kernel[:n_teacher] if n_teacher else None
        else:
            projection = kernel_projection(ks.kernel_dim, kernel.shape[-1], blur.device)
            teacher = kernel_code_target(kernel[:n_teacher], projection) if n_teacher else None
    with autocast:
        out = forward(sharp, blur, teacher, psfs)
    pred, code_mean, kl = out[:3]
    pixel = pixel_loss(pred.float(), blur, t["pixel_criterion"])
    loss = t["pixel_weight"] * pixel + t["kl_weight"] * kl.float()
    kernel_term = torch.zeros((), device=blur.device)
    if ks.generator_type == "psf":
        g_psfs, restored = out[3] if len(out) > 3 else (None, None)
        if t["kernel_weight"] > 0:
            if g_psfs is None:
                g_psfs = ks.generator.decoder(code_mean[:, :, None, None])[:, 0, 0]
            kernel_term = psf_loss(g_psfs, kernel)
        if restored is not None:
            kernel_term = kernel_term + psf_loss(restored, psfs) * len(blur) / len(psfs)
        loss = loss + t["kernel_weight"] * kernel_term
    elif t["kernel_weight"] > 0:
        kernel_term = kernel_code_loss(code_mean, kernel, projection)
        loss = loss + t["kernel_weight"] * kernel_term
    value = loss.item()
    skipped = any_true(info, not math.isfinite(value), loss.device)
    if not skipped:
        # DDP averages gradients over the processes; scaling by their number makes the update that of
        # the loss summed over the global batch, as one process with world_size × batch would make
        scaler.scale(loss * info.world_size).backward()
        scaler.step(optimizer)
        scaler.update()
    elements = blur.numel()
    return StepResult(value / elements, pixel.item() / elements, float(kl.item()) / len(blur),
                      kernel_term.item() / len(blur), skipped, code_mean.detach().mean(0), pred.detach())


def centre_kernels(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """True kernels (B, 1, K, K) → (B, size, size), zero-padded (or cropped) about their centre."""
    pad = (size - kernel.shape[-1]) // 2
    return F.pad(kernel[:, 0], (pad, pad, pad, pad))


def to_device(batch: dict, device: torch.device, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(sharp, blur) of a batch dict on ``device`` (NHWC when ``channels_last``)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    sharp = batch["sharp"].to(device, non_blocking=True).contiguous(memory_format=fmt)
    blur = batch["blur"].to(device, non_blocking=True).contiguous(memory_format=fmt)
    return sharp, blur
