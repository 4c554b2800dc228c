"""The paper's blind deblurring (Tran et al., CVPR 2021, Sec. 4.2): Adam through a frozen kernel space.

The sharp image x and the kernel code k are the outputs of two small networks (deep image priors,
the paper) or free parameters (pixels and code, ``configs/deblur/fast.yml``), optimised so that the
frozen blur generator F re-blurs x into the input: minimise
``data(F(x, k), y) + w_hl · hyper-Laplacian(x) + w_kn · ||k||_2``, coarse to fine over ``cfg.scales``.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from tqdm import tqdm

from deblurring.config import deblur_config
from deblurring.result import DeblurResult
from losses import VGGPerceptualLoss, charbonnier, hyper_laplacian, kernel_norm, ssim
from models.dip import ImageDIP, KernelDIP, image_noise, kernel_noise
from models.kernel_space import code_grid_size
from utils.errors import UserError


def _scale_plan(cfg: dict, height: int, width: int) -> list[tuple[float, int]]:
    """(scale, steps) per scale: scales whose short side falls below min_size are dropped."""
    kept = [
        (s, f)
        for s, f in zip(cfg["scales"], cfg["scale_fractions"])
        if s == 1 or min(height, width) * s >= cfg["min_size"]
    ]
    total = sum(f for _, f in kept)
    plan = [(s, int(round(cfg["iterations"] * f / total))) for s, f in kept]
    plan[-1] = (1.0, max(1, cfg["iterations"] - sum(n for _, n in plan[:-1])))
    return [(s, n) for s, n in plan if n > 0]


def _lr_factor(schedule: str, t: float, min_ratio: float) -> float:
    """Learning-rate multiplier at progress t in [0, 1) of a scale."""
    if schedule == "step":  # the published StepLR: ×0.7 every fifth of the steps
        return 0.7 ** math.floor(5 * t)
    if schedule == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    return 1.0


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    shrink = size[0] < image.shape[-2]
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=shrink).clamp(0, 1)


def _start_code(
    rule: str, kernel_space: Any, y: torch.Tensor, x: torch.Tensor | None, previous: torch.Tensor | None
) -> torch.Tensor:
    """The start code (1, kernel_dim, gh, gw) for blurry ``y`` by one of the config's rules."""
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


def _data_term(
    weights: Mapping[str, float],
    fake: torch.Tensor,
    y: torch.Tensor,
    perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
) -> torch.Tensor:
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


def deblur_dip(
    blurry: torch.Tensor,  # (1, 3, H, W) RGB or (1, 1, H, W) gray, in [0, 1]
    kernel_space: Any,  # a KernelSpace (kept frozen; on `device`)
    cfg: Mapping[str, Any] | None,  # a deblur config (partial configs are completed from the defaults)
    device: str | torch.device,
    progress: bool = True,
    seed: int = 0,
) -> DeblurResult:
    """Blind deblurring of one image through the kernel space → a :class:`DeblurResult` (sharp estimate
    with the input's channels, its code, the re-blur, the history; no explicit PSF).

    Coarse to fine over ``cfg.scales``; at each scale the image (DIP or pixels) and the code (DIP or
    free) start from the coarser result (first scale: the blurry image and ``kernel.init``), the DIPs
    are warmed up to those starts, then Adam minimises the objective with the learning rate and the
    loss weights read off ``t = step / steps`` (see ``configs/defaults/deblur.yml``). Same seed, same
    result on the CPU (bitwise with one thread; with several, up to float rounding ~1e-7, as
    multi-threaded reductions may round differently).
    """
    cfg = deblur_config(cfg)
    device = torch.device(device)
    if blurry.dim() != 4 or blurry.shape[0] != 1 or blurry.shape[1] not in (1, 3):
        raise ValueError(f"blurry must be (1, 1 or 3, H, W), got {tuple(blurry.shape)}")
    channels = blurry.shape[1]
    blurry = blurry.expand(1, 3, *blurry.shape[-2:])  # F blurs RGB: gray runs as three equal channels
    height, width = blurry.shape[-2:]
    if min(height, width) < cfg["min_size"]:
        raise UserError(
            f"image of {height}×{width} pixels is too small to deblur (min_size: {cfg['min_size']} px)"
        )
    perceptual = None
    if any(cfg["loss"][p]["perceptual"] > 0 for p in ("early", "late")):
        perceptual = VGGPerceptualLoss(cfg["loss"]["vgg_weights"], cfg["loss"]["vgg_layers"]).to(device)
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if cfg["amp"] and device.type == "cuda"
        else nullcontext()
    )
    plan = _scale_plan(cfg, height, width)
    frozen = [p.requires_grad for p in kernel_space.parameters()]
    kernel_space.eval().requires_grad_(False)
    y_full = blurry.to(device=device, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)  # every random draw comes from here (CPU), then moves
    history: list[dict[str, Any]] = []
    bar = tqdm(total=sum(n for _, n in plan), desc="deblur", unit="step", disable=not progress, leave=False)
    x_prev: torch.Tensor | None = None
    k_prev: torch.Tensor | None = None
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # network initialisation
            for index, (scale, steps) in enumerate(plan):
                size = (max(1, round(height * scale)), max(1, round(width * scale)))
                y = _resize(y_full, size)
                with torch.no_grad():
                    x0 = y if x_prev is None else _resize(x_prev, size)
                    rule = cfg["kernel"]["init"] if index == 0 else cfg["kernel"]["rescale_init"]
                    k0 = _start_code(rule, kernel_space, y, None if x_prev is None else x0, k_prev).detach()
                x_prev, k_prev = _optimise_scale(
                    y, x0, k0, steps, scale, cfg, kernel_space, perceptual, amp, gen, device, history, bar
                )
        with torch.no_grad(), amp:
            sharp = _resize(x_prev, (height, width))
            code = k_prev
            reblurred = kernel_space.apply(sharp, code).float().clamp(0, 1)
    finally:
        bar.close()
        for p, flag in zip(kernel_space.parameters(), frozen):
            p.requires_grad_(flag)
    if channels == 1:
        sharp, reblurred = sharp.mean(dim=1, keepdim=True), reblurred.mean(dim=1, keepdim=True)
    return DeblurResult(sharp.cpu(), code.float().cpu(), reblurred.cpu(), history)


def _optimise_scale(
    y: torch.Tensor,
    x0: torch.Tensor,
    k0: torch.Tensor,
    steps: int,
    scale: float,
    cfg: dict,
    kernel_space: Any,
    perceptual: Any,
    amp: Any,
    gen: torch.Generator,
    device: torch.device,
    history: list[dict[str, Any]],
    bar: tqdm,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warm up and optimise x and k at one scale; returns the final (x, k) without input noise."""
    ic, kc, lc = cfg["image"], cfg["kernel"], cfg["loss"]
    k_lr = kc["lr"]
    std = cfg["reg_noise_std"]

    def jitter(z: torch.Tensor) -> torch.Tensor:
        return z + std * torch.randn(z.shape, generator=gen).to(device) if std > 0 else z

    # the two parameterisations: make_x(noisy) / make_k(noisy) build x and k from the parameters
    if ic["param"] == "dip":
        x_net = ImageDIP(
            ic["in_channels"], 3, ic["channels_down"], ic["channels_up"], ic["channels_skip"]
        ).to(device)
        z_x = image_noise(tuple(y.shape[-2:]), ic["in_channels"], gen).to(device)
        x_params = list(x_net.parameters())

        def make_x(noisy: bool) -> torch.Tensor:
            return x_net(jitter(z_x) if noisy else z_x)
    else:
        u = torch.logit(x0.clamp(1e-3, 1 - 1e-3)).clone().requires_grad_(True)
        x_params = [u]

        def make_x(noisy: bool) -> torch.Tensor:
            return torch.sigmoid(u)

    if kc["param"] == "dip":
        k_net = KernelDIP(
            kernel_space.kernel_dim, kc["in_channels"], kc["width"], kc["n_down"], kc["n_blocks"]
        )
        k_net = k_net.to(device)
        z_k = kernel_noise(tuple(k0.shape[-2:]), kc["in_channels"], kc["n_down"], gen).to(device)
        k_params = list(k_net.parameters())

        def make_k(noisy: bool) -> torch.Tensor:
            return k_net(jitter(z_k) if noisy else z_k)
    else:
        code = k0.clone().requires_grad_(True)
        k_params = [code]
        if kc["lr_relative"]:
            k_lr = kc["lr"] * max(float(k0.pow(2).mean().sqrt()), 1e-8)

        def make_k(noisy: bool) -> torch.Tensor:
            return code

    # warm-up: each DIP fitted to its start (the blurry image or coarser estimate; the start code)
    for name, make, target, params, lr in (
        ("image", make_x, x0, x_params, ic["lr"]),
        ("kernel", make_k, k0, k_params, kc["lr"]),
    ):
        if cfg[name]["param"] != "dip":
            continue
        opt = torch.optim.Adam(params, lr=lr)
        for step in range(cfg["warmup_iterations"]):
            opt.zero_grad(set_to_none=True)
            loss = F.mse_loss(make(True), target)
            loss.backward()
            opt.step()
            history.append({"scale": scale, "phase": f"warmup_{name}", "step": step, "loss": loss.item()})

    opt = torch.optim.Adam([{"params": x_params, "lr": ic["lr"]}, {"params": k_params, "lr": k_lr}])
    base_lrs = [ic["lr"], k_lr]
    es = cfg["early_stop"]
    last_phase_start = round(lc["switch_at"] * steps) if lc["switch_at"] < 1 else 0
    objectives: list[float] = []
    for step in range(steps):
        t = step / steps
        factor = _lr_factor(cfg["lr_schedule"], t, cfg["lr_min_ratio"])
        for group, lr in zip(opt.param_groups, base_lrs):
            group["lr"] = lr * factor
        weights = lc["early"] if t < lc["switch_at"] else lc["late"]
        opt.zero_grad(set_to_none=True)
        x, k = make_x(True), make_k(True)
        with amp:
            fake = kernel_space.apply(x, k).float()
        data = _data_term(weights, fake, y, perceptual)
        prior = hyper_laplacian(x, lc["alpha"], lc["eps"])
        knorm = kernel_norm(k)
        loss = data + weights["hyper_laplacian"] * prior + weights["kernel_norm"] * knorm
        loss.backward()
        opt.step()
        objectives.append(loss.item())
        entry = {
            "scale": scale,
            "phase": "main",
            "step": step,
            "t": t,
            "loss": objectives[-1],
            "data": data.item(),
            "hyper_laplacian": prior.item(),
            "kernel_norm": knorm.item(),
            "lr": ic["lr"] * factor,
        }
        history.append(entry)
        bar.update(1)
        bar.set_postfix(scale=scale, loss=f"{objectives[-1]:.4g}", refresh=False)
        w = es["window"]
        if (
            es["enabled"]
            and step + 1 >= es["min_fraction"] * steps
            and step + 1 - last_phase_start >= 2 * w
            and w > 0
        ):
            before = sum(objectives[-2 * w : -w]) / w
            now = sum(objectives[-w:]) / w
            if before - now < es["min_improvement"] * abs(before):
                entry["stopped"] = True
                bar.update(steps - step - 1)
                break
    with torch.no_grad():
        return make_x(False).detach(), make_k(False).detach()
