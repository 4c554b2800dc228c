"""Adam through the frozen kernel space: what :func:`deblurring.dip.deblur_dip` and
:func:`deblurring.direct.deblur_direct` share (Tran et al., CVPR 2021, Sec. 4.2).

The sharp image x and the kernel code k are made from parameters and optimised so that the frozen blur
generator F re-blurs x into the input y:

    minimise  data(F(x, k), y) + w_hl · hyper-Laplacian(x) + w_kn · ||k||_2,

coarse to fine over ``scales``. How x and k are made from parameters is the only difference between the
algorithms: each hands :func:`adam_through_space` two factories of :class:`Parameterisation` objects
(built afresh at every scale); nothing here knows which algorithm runs.
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from deblurring.config import deblur_config
from deblurring.result import DeblurResult
from losses import VGGPerceptualLoss, charbonnier, hyper_laplacian, kernel_norm, ssim
from models.kernel_space import code_grid_size
from utils.errors import UserError


class Parameterisation(Protocol):
    """x (1, 3, h, w) in [0, 1] or k (1, kernel_dim, gh, gw) as a function of trainable tensors.

    ``lr``: Adam learning rate of those tensors; ``warmup_steps``: steps fitting the output to its start
    (MSE) before the main optimisation, 0 for none; ``parameters()``: the tensors; ``__call__(noisy)``:
    the output — ``noisy`` is True during the optimisation steps (a DIP then jitters its input) and
    False for the final estimate.
    """

    lr: float
    warmup_steps: int

    def parameters(self) -> list[torch.Tensor]: ...

    def __call__(self, noisy: bool) -> torch.Tensor: ...


# (y (1, 3, h, w) at this scale, x0 its start image (1, 3, h, w), the run's generator) → the image's
ImageFactory = Callable[[torch.Tensor, torch.Tensor, torch.Generator], Parameterisation]
# (k0 the start code (1, kernel_dim, gh, gw), the run's generator) → the kernel's
KernelFactory = Callable[[torch.Tensor, torch.Generator], Parameterisation]


def scale_plan(
    iterations: int, scales: Sequence[float], fractions: Sequence[float], min_size: int, height: int, width: int
) -> list[tuple[float, int]]:
    """(scale, steps) per scale for an image of height × width: scales whose short side falls below
    ``min_size`` are dropped, the others share ``iterations`` by ``fractions``; the last is 1.0."""
    kept = [(s, f) for s, f in zip(scales, fractions) if s == 1 or min(height, width) * s >= min_size]
    total = sum(f for _, f in kept)
    plan = [(s, int(round(iterations * f / total))) for s, f in kept]
    plan[-1] = (1.0, max(1, iterations - sum(n for _, n in plan[:-1])))
    return [(s, n) for s, n in plan if n > 0]


def lr_factor(schedule: str, t: float, min_ratio: float) -> float:
    """Learning-rate multiplier at progress t in [0, 1) of a scale (step | cosine | constant)."""
    if schedule == "step":  # the published StepLR: ×0.7 every fifth of the steps
        return 0.7 ** math.floor(5 * t)
    if schedule == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    return 1.0


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1, C, h, w) → (1, C, *size) bilinear (antialiased when shrinking), clamped to [0, 1]."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    shrink = size[0] < image.shape[-2]
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=shrink).clamp(0, 1)


def start_code(
    rule: str, kernel_space: Any, y: torch.Tensor, x: torch.Tensor | None, previous: torch.Tensor | None
) -> torch.Tensor:
    """The start code (1, kernel_dim, gh, gw) for blurry ``y`` (1, 3, h, w) by a rule of ``kernel.init``
    / ``kernel.rescale_init``; ``x``: the upsampled coarser estimate, ``previous``: the coarser code."""
    grid = code_grid_size(*y.shape[-2:])
    if rule == "previous" and previous is not None:
        return F.interpolate(previous, size=grid, mode="bilinear", align_corners=False)
    if rule == "extract" and x is not None:
        return kernel_space.extract_code(x, y)
    if rule == "mean_code" and kernel_space.meta.get("mean_code") is not None:
        mean = torch.as_tensor(kernel_space.meta["mean_code"], dtype=y.dtype, device=y.device).flatten()
        if mean.numel() != kernel_space.kernel_dim:
            raise UserError(
                f"model meta 'mean_code' has {mean.numel()} values, expected {kernel_space.kernel_dim}"
            )
        return mean.view(1, -1, 1, 1).expand(1, -1, *grid).clone()
    if rule == "zero":
        return torch.zeros(1, kernel_space.kernel_dim, *grid, device=y.device)
    # identity, and the fallback of mean_code for models trained without it: G(y, y) is the code of
    # "y is already what it looks like", i.e. F(y, G(y, y)) ≈ y
    return kernel_space.extract_code(y, y)


def data_term(
    weights: Mapping[str, float],
    fake: torch.Tensor,
    y: torch.Tensor,
    perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
) -> torch.Tensor:
    """Weighted sum of the data terms (mse, charbonnier, 1 - SSIM, perceptual) between the re-blur
    ``fake`` and ``y``, both (1, 3, h, w) → a scalar."""
    total = fake.new_zeros(())
    if weights["mse"] > 0:
        total = total + weights["mse"] * F.mse_loss(fake, y)
    if weights["charbonnier"] > 0:
        total = total + weights["charbonnier"] * charbonnier(fake, y)
    if weights["ssim"] > 0:
        total = total + weights["ssim"] * (1 - ssim(fake, y))
    if weights["perceptual"] > 0 and perceptual is not None:
        total = total + weights["perceptual"] * perceptual(fake, y)
    return total


def adam_through_space(
    blurry: torch.Tensor,  # (1, 3, H, W) RGB or (1, 1, H, W) gray, in [0, 1]
    kernel_space: Any,  # a KernelSpace (kept frozen; on `device`)
    make_image: ImageFactory,
    make_kernel: KernelFactory,
    *,
    iterations: int,
    scales: Sequence[float],
    scale_fractions: Sequence[float],
    min_size: int,
    kernel_init: str,
    kernel_rescale_init: str,
    lr_schedule: str,
    lr_min_ratio: float,
    loss: Mapping[str, Any] | None,
    early_stop: Mapping[str, Any] | None,
    amp: bool,
    device: str | torch.device | None,
    seed: int,
    progress: bool,
) -> DeblurResult:
    """Coarse-to-fine Adam on x = make_image(...) and k = make_kernel(...) → a :class:`DeblurResult`
    (sharp (1, C, H, W) with the input's C, code (1, kernel_dim, gh, gw), re-blur, history; no PSF).

    At each scale of the plan: y resized; x0 = y (first scale) or the upsampled coarser x; k0 by
    ``kernel_init`` (first scale) or ``kernel_rescale_init``; both parameterisations built from them (the
    image's first), each warmed up to its start if it asks, then Adam with the learning rates times
    :func:`lr_factor` and the ``loss`` weights (``early`` before ``switch_at``, ``late`` after) read off
    ``t = step / steps``; ``early_stop`` ends a scale whose objective plateaus. ``loss`` and
    ``early_stop`` are the sections of ``configs/defaults/deblur.yml`` (partial ones completed, None:
    its defaults). Every random draw comes from ``seed`` (network initialisation through torch's
    global generator, forked so the caller's is untouched; noise through the generator handed to the
    factories): same seed, same result on the CPU (bitwise with one thread).
    """
    checked = deblur_config({"loss": dict(loss or {}), "early_stop": dict(early_stop or {})}, source="deblur")
    loss, early_stop = checked["loss"], checked["early_stop"]
    device = torch.device(device) if device is not None else next(kernel_space.parameters()).device
    _check_input(blurry, scales, scale_fractions, min_size)
    channels = blurry.shape[1]
    blurry = blurry.expand(1, 3, *blurry.shape[-2:])  # F blurs RGB: gray runs as three equal channels
    height, width = blurry.shape[-2:]
    perceptual = None
    if any(loss[p]["perceptual"] > 0 for p in ("early", "late")):
        perceptual = VGGPerceptualLoss(loss["vgg_weights"], loss["vgg_layers"]).to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp and device.type == "cuda" else nullcontext()
    plan = scale_plan(iterations, scales, scale_fractions, min_size, height, width)
    y_full = blurry.to(device=device, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)  # every random draw comes from here (CPU), then moves
    history: list[dict[str, Any]] = []
    x_prev: torch.Tensor | None = None
    k_prev: torch.Tensor | None = None
    bar = tqdm(total=sum(n for _, n in plan), desc="deblur", unit="step", disable=not progress, leave=False)
    with _frozen(kernel_space), bar, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # network initialisation
        for index, (scale, steps) in enumerate(plan):
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            y = resize(y_full, size)
            with torch.no_grad():
                x0 = y if x_prev is None else resize(x_prev, size)
                rule = kernel_init if index == 0 else kernel_rescale_init
                k0 = start_code(rule, kernel_space, y, None if x_prev is None else x0, k_prev).detach()
            image = make_image(y, x0, gen)  # built in this order: the random draws stay where they were
            kernel = make_kernel(k0, gen)
            x_prev, k_prev = _fit_scale(
                y, x0, k0, image, kernel, kernel_space, steps=steps, scale=scale, loss=loss,
                early_stop=early_stop, lr_schedule=lr_schedule, lr_min_ratio=lr_min_ratio,
                perceptual=perceptual, autocast=autocast, history=history, bar=bar,
            )  # fmt: skip
        with torch.no_grad(), autocast:
            sharp = resize(x_prev, (height, width))
            code = k_prev
            reblurred = kernel_space.apply(sharp, code).float().clamp(0, 1)
    if channels == 1:
        sharp, reblurred = sharp.mean(dim=1, keepdim=True), reblurred.mean(dim=1, keepdim=True)
    return DeblurResult(sharp.cpu(), code.float().cpu(), reblurred.cpu(), history)


def _check_input(blurry: torch.Tensor, scales: Sequence[float], scale_fractions: Sequence[float],
                 min_size: int) -> None:
    """A (1, 1 or 3, H, W) image of at least ``min_size`` a side and a scale plan ending at 1.0, or an error."""
    if blurry.dim() != 4 or blurry.shape[0] != 1 or blurry.shape[1] not in (1, 3):
        raise ValueError(f"blurry must be (1, 1 or 3, H, W), got {tuple(blurry.shape)}")
    if not scales or len(scales) != len(scale_fractions) or scales[-1] != 1:
        raise ValueError(f"scales must end with 1.0 and match scale_fractions, got {scales}, {scale_fractions}")
    height, width = blurry.shape[-2:]
    if min(height, width) < min_size:
        raise UserError(f"image of {height}×{width} pixels is too small to deblur (min_size: {min_size} px)")


@contextmanager
def _frozen(module: torch.nn.Module) -> Iterator[None]:
    """``module`` in eval mode without gradients inside the block, its ``requires_grad`` flags restored after."""
    flags = [p.requires_grad for p in module.parameters()]
    module.eval().requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def _warm_up(image: Parameterisation, kernel: Parameterisation, x0: torch.Tensor, k0: torch.Tensor, scale: float,
             history: list[dict[str, Any]]) -> None:
    """Fit each parameterisation that asks for it (``warmup_steps`` > 0) to its start, x0 or k0, by MSE."""
    for name, param, target in (("image", image, x0), ("kernel", kernel, k0)):
        if param.warmup_steps <= 0:
            continue
        opt = torch.optim.Adam(param.parameters(), lr=param.lr)
        for step in range(param.warmup_steps):
            opt.zero_grad(set_to_none=True)
            fit = F.mse_loss(param(True), target)
            fit.backward()
            opt.step()
            history.append({"scale": scale, "phase": f"warmup_{name}", "step": step, "loss": fit.item()})


def _plateaued(objectives: list[float], step: int, steps: int, early_stop: Mapping[str, Any], phase_start: int) -> bool:
    """``early_stop``: the mean objective of the last window improved on the window before by less than
    ``min_improvement`` (relative), past ``min_fraction`` of the steps and two windows into the phase."""
    w = early_stop["window"]
    if not early_stop["enabled"] or w <= 0 or step + 1 < early_stop["min_fraction"] * steps \
            or step + 1 - phase_start < 2 * w:
        return False
    before = sum(objectives[-2 * w : -w]) / w
    now = sum(objectives[-w:]) / w
    return before - now < early_stop["min_improvement"] * abs(before)


def _fit_scale(
    y: torch.Tensor,
    x0: torch.Tensor,
    k0: torch.Tensor,
    image: Parameterisation,
    kernel: Parameterisation,
    kernel_space: Any,
    *,
    steps: int,
    scale: float,
    loss: Mapping[str, Any],
    early_stop: Mapping[str, Any],
    lr_schedule: str,
    lr_min_ratio: float,
    perceptual: Any,
    autocast: Any,
    history: list[dict[str, Any]],
    bar: tqdm,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warm up and optimise x and k at one scale; returns the final (x, k) (``noisy=False``), detached."""
    _warm_up(image, kernel, x0, k0, scale, history)
    base_lrs = [image.lr, kernel.lr]
    opt = torch.optim.Adam(
        [{"params": image.parameters(), "lr": image.lr}, {"params": kernel.parameters(), "lr": kernel.lr}]
    )
    last_phase_start = round(loss["switch_at"] * steps) if loss["switch_at"] < 1 else 0
    objectives: list[float] = []
    for step in range(steps):
        t = step / steps
        factor = lr_factor(lr_schedule, t, lr_min_ratio)
        for group, lr in zip(opt.param_groups, base_lrs):
            group["lr"] = lr * factor
        weights = loss["early"] if t < loss["switch_at"] else loss["late"]
        opt.zero_grad(set_to_none=True)
        x, k = image(True), kernel(True)
        with autocast:
            fake = kernel_space.apply(x, k).float()
        data = data_term(weights, fake, y, perceptual)
        prior = hyper_laplacian(x, loss["alpha"], loss["eps"])
        knorm = kernel_norm(k)
        objective = data + weights["hyper_laplacian"] * prior + weights["kernel_norm"] * knorm
        objective.backward()
        opt.step()
        objectives.append(objective.item())
        entry = {"scale": scale, "phase": "main", "step": step, "t": t, "loss": objectives[-1], "data": data.item(),
                 "hyper_laplacian": prior.item(), "kernel_norm": knorm.item(), "lr": image.lr * factor}
        history.append(entry)
        bar.update(1)
        bar.set_postfix(scale=scale, loss=f"{objectives[-1]:.4g}", refresh=False)
        if _plateaued(objectives, step, steps, early_stop, last_phase_start):
            entry["stopped"] = True
            bar.update(steps - step - 1)
            break
    with torch.no_grad():
        return image(False).detach(), kernel(False).detach()
