"""Blind deblurring by deep image priors through a frozen kernel space (Tran et al., CVPR 2021, Sec. 4.2).

The sharp image x and the kernel code k are the outputs of two small networks (or free parameters)
optimised so that the frozen blur generator F re-blurs x into the input: minimise
``data(F(x, k), y) + w_hl · hyper-Laplacian(x) + w_kn · ||k||_2`` with Adam.

Examples:
  python deblur.py --input examples/blurry_astronaut.png --output sharp.png
  python deblur.py --input blurry.png --output sharp.png --save-psf psf.png --report run.json
  python deblur.py --input blurry.png --config configs/deblur/paper.yml --device cuda \\
                   --set loss.vgg_weights=vgg19.pth          # the published 5,000-step schedule
  python deblur.py --input-dir photos/ --output-dir sharp/ --skip-existing --report report.json

Folder mode (--input-dir): every image in the folder is deblurred into --output-dir under the same
name; --save-kernel/--save-reblur/--save-psf then name folders. Files that cannot be read (or are too
small) are skipped, listed on stderr and in the report. Exit status: 0 when every image was written
(or skipped by --skip-existing), 1 when some were written and some failed, 2 when none could be
deblurred (or on a usage error).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from losses import VGGPerceptualLoss, charbonnier, hyper_laplacian, kernel_norm, ssim
from models.dip import ImageDIP, KernelDIP, image_noise, kernel_noise
from models.kernel_space import code_grid_size
from utils.config import build_config, load_config, load_schema
from utils.errors import UserError, run_cli

REPO_ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = REPO_ROOT / "configs" / "deblur" / "fast.yml"
DATA_TERMS = ("mse", "charbonnier", "ssim", "perceptual")


@dataclass
class DeblurResult:
    """What :func:`deblur_image` found, on the CPU.

    ``sharp``: (1, 3, H, W) in [0, 1]; ``code``: (1, kernel_dim, ceil(H/128), ceil(W/128));
    ``reblurred``: F(sharp, code), (1, 3, H, W); ``history``: one dict per optimisation step
    (keys ``scale, phase, step, t, loss, data, hyper_laplacian, kernel_norm, lr``; ``phase`` is
    ``warmup`` or ``main``), the last main step of a scale that stopped early has ``stopped: True``.
    """

    sharp: torch.Tensor
    code: torch.Tensor
    reblurred: torch.Tensor
    history: list[dict[str, Any]] = field(default_factory=list)


def deblur_config(cfg: Mapping[str, Any] | None = None, source: str = "deblur config") -> dict:
    """Complete a (partial) deblur config over ``configs/defaults/deblur.yml`` and check its values."""
    full = build_config(load_schema("deblur"), cfg or {}, source=source)
    scales, fractions = full["scales"], full["scale_fractions"]
    if not scales or len(scales) != len(fractions):
        raise UserError(f"{source}: 'scales' and 'scale_fractions' need one length (>= 1)")
    if any(not 0 < s <= 1 for s in scales) or list(scales) != sorted(scales) or scales[-1] != 1:
        raise UserError(f"{source}: 'scales' must increase in (0, 1] and end with 1.0, got {scales}")
    if any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise UserError(f"{source}: 'scale_fractions' must be >= 0 with a positive sum, got {fractions}")
    choices = {
        "image.param": (full["image"]["param"], ("dip", "pixels")),
        "kernel.param": (full["kernel"]["param"], ("dip", "code")),
        "kernel.init": (full["kernel"]["init"], ("mean_code", "identity", "zero")),
        "kernel.rescale_init": (
            full["kernel"]["rescale_init"],
            ("previous", "extract", "identity", "mean_code", "zero"),
        ),
        "lr_schedule": (full["lr_schedule"], ("step", "cosine", "constant")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise UserError(f"{source}: '{key}' must be one of {', '.join(allowed)}, got {value!r}")
    if full["iterations"] < 1 or full["warmup_iterations"] < 0:
        raise UserError(f"{source}: 'iterations' must be >= 1 and 'warmup_iterations' >= 0")
    if full["min_size"] < 1:
        raise UserError(f"{source}: 'min_size' must be >= 1")
    for phase in ("early", "late"):
        weights = full["loss"][phase]
        if any(weights[k] < 0 for k in weights):
            raise UserError(f"{source}: weights under 'loss.{phase}' must be >= 0")
        if not any(weights[k] > 0 for k in DATA_TERMS):
            raise UserError(f"{source}: 'loss.{phase}' needs a positive data term ({', '.join(DATA_TERMS)})")
    image = full["image"]
    if not (len(image["channels_down"]) == len(image["channels_up"]) == len(image["channels_skip"]) >= 1):
        raise UserError(f"{source}: 'image.channels_down/up/skip' need one length (>= 1)")
    return full


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


def deblur_image(
    blurry: torch.Tensor,  # (1, 3, H, W) RGB in [0, 1]
    kernel_space: Any,  # a KernelSpace (kept frozen; on `device`)
    cfg: Mapping[str, Any] | None,  # a deblur config (partial configs are completed from the defaults)
    device: str | torch.device,
    progress: bool = True,
    seed: int = 0,
) -> DeblurResult:
    """Blind deblurring of one image: returns the sharp estimate, its code, the re-blur and the history.

    Coarse to fine over ``cfg.scales``; at each scale the image (DIP or pixels) and the code (DIP or
    free) start from the coarser result (first scale: the blurry image and ``kernel.init``), the DIPs
    are warmed up to those starts, then Adam minimises the objective with the learning rate and the
    loss weights read off ``t = step / steps`` (see ``configs/defaults/deblur.yml``). Same seed, same
    result on the CPU (bitwise with one thread; with several, up to float rounding ~1e-7, as
    multi-threaded reductions may round differently).
    """
    cfg = deblur_config(cfg)
    device = torch.device(device)
    if blurry.dim() != 4 or blurry.shape[:2] != (1, 3):
        raise ValueError(f"blurry must be (1, 3, H, W), got {tuple(blurry.shape)}")
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


# -- command line ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The deblur.py argument parser (flags of DESIGN.md)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="blurry image (PNG/JPEG/TIFF/BMP; 8/16-bit gray, RGB or RGBA)")
    src.add_argument("--input-dir", help="folder of blurry images (every image in it)")
    parser.add_argument(
        "--output", help="sharp output image (default: <input>_deblurred.<ext> beside the input)"
    )
    parser.add_argument("--output-dir", help="output folder for --input-dir (required there)")
    parser.add_argument(
        "--model", help="kernel-space checkpoint (default: the config's model, the shipped one)"
    )
    parser.add_argument(
        "--config",
        default=str(DEFAULT_CONFIG),
        help="YAML settings (configs/deblur/fast.yml by default, or paper.yml)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set loss.vgg_weights=vgg19.pth (repeatable)",
    )
    parser.add_argument("--iters", type=int, help="optimisation steps (overrides the config's iterations)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the DIP inputs and initialisation")
    parser.add_argument(
        "--save-kernel", metavar="PATH", help="save the found code (torch .pt; a folder with -dir)"
    )
    parser.add_argument("--save-reblur", metavar="PATH", help="save F(sharp, code), the re-blurred estimate")
    parser.add_argument(
        "--save-psf", metavar="PNG", help="save a picture of the estimated blur (PSF per cell)"
    )
    parser.add_argument("--report", metavar="JSON", help="write a per-image report (sizes, seconds, losses)")
    parser.add_argument(
        "--skip-existing", action="store_true", help="skip images whose output already exists"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _save_code(path: Path, code: torch.Tensor, model: str, size: tuple[int, int]) -> None:
    from utils.fileio import atomic_path

    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"code": code, "model": model, "image_size": list(size)}, tmp)


def _deblur_file(
    src: Path,
    dst: Path,
    extras: dict[str, Path | None],
    kernel_space: Any,
    cfg: dict,
    device: torch.device,
    seed: int,
    progress: bool,
    model: str,
) -> dict[str, Any]:
    """Read, deblur and write one image (and the requested extras); returns its report entry."""
    from data.image_io import read_image, to_numpy, to_tensor, write_image
    from models.psf_probe import render_psfs

    loaded = read_image(src)
    start = time.perf_counter()
    try:
        result = deblur_image(to_tensor(loaded.rgb), kernel_space, cfg, device, progress=progress, seed=seed)
    except UserError as exc:
        raise UserError(f"{src}: {exc}") from exc
    seconds = time.perf_counter() - start
    write_image(dst, to_numpy(result.sharp), like=loaded)
    if extras["reblur"] is not None:
        write_image(extras["reblur"], to_numpy(result.reblurred), like=loaded)
    if extras["kernel"] is not None:
        _save_code(extras["kernel"], result.code, model, loaded.size)
    if extras["psf"] is not None:
        write_image(extras["psf"], render_psfs(kernel_space.psf_of_code(result.code.to(device))[0]))
    main = [h for h in result.history if h["phase"] == "main"]
    return {
        "input": str(src),
        "output": str(dst),
        "status": "ok",
        "size": list(loaded.size),
        "channels": loaded.channels,
        "bit_depth": loaded.bit_depth,
        "seconds": round(seconds, 3),
        "steps": len(main),
        "stopped_early": any(h.get("stopped") for h in main),
        "final_loss": main[-1]["loss"] if main else None,
        "reblur_mse": float(F.mse_loss(result.reblurred, to_tensor(loaded.rgb)).item()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load the model and config, deblur the image(s), write the outputs."""
    from data.image_io import IMAGE_EXTENSIONS, is_image_file, list_images
    from models.kernel_space import KernelSpace
    from utils.device import resolve_device
    from utils.fileio import atomic_write
    from utils.paths import refuse_overwrite

    args = build_parser().parse_args(argv)
    overrides = list(args.set) + ([f"iterations={args.iters}"] if args.iters is not None else [])
    if args.iters is not None and args.iters < 1:
        raise UserError(f"--iters must be >= 1, got {args.iters}")
    cfg = deblur_config(load_config(args.config, "deblur", overrides), source=args.config)
    if args.input_dir is not None:
        if args.output_dir is None:
            raise UserError("--input-dir needs --output-dir")
        if args.output is not None:
            raise UserError("--output is for --input; use --output-dir with --input-dir")
        sources = list_images(args.input_dir)
        others = [
            p
            for p in sorted(Path(args.input_dir).iterdir())
            if p.is_file() and not is_image_file(p) and not p.name.startswith(".")
        ]
        if not sources:
            raise UserError(f"{args.input_dir}: no images found (expected PNG/JPEG/TIFF/BMP files)")
        out_dir = Path(args.output_dir)
        jobs = [
            (
                p,
                out_dir / p.name,
                {
                    k: (Path(v) / (p.stem + ext) if v else None)
                    for k, v, ext in (
                        ("kernel", args.save_kernel, ".pt"),
                        ("reblur", args.save_reblur, p.suffix),
                        ("psf", args.save_psf, ".png"),
                    )
                },
            )
            for p in sources
        ]
    else:
        src = Path(args.input)
        if not src.is_file():
            raise UserError(f"{src}: input image not found")
        dst = Path(args.output) if args.output else src.with_name(f"{src.stem}_deblurred{src.suffix}")
        extras = {"kernel": args.save_kernel, "reblur": args.save_reblur, "psf": args.save_psf}
        jobs = [(src, dst, {k: Path(v) if v else None for k, v in extras.items()})]
        others = []
    for _src, dst, _extras in jobs:
        if not is_image_file(dst):
            raise UserError(f"{dst}: unknown image extension, expected one of {', '.join(IMAGE_EXTENSIONS)}")
    model = args.model or cfg["model"]
    model_path = Path(model) if Path(model).is_absolute() or Path(model).exists() else REPO_ROOT / model
    refuse_overwrite(  # issue 16: no output (image, extras, report) may be one of the inputs
        [path for _src, dst, extras in jobs for path in (dst, *extras.values())] + [args.report],
        [src for src, _dst, _extras in jobs] + [model_path, args.config],
    )
    if not model_path.is_file():
        hint = (
            " (the shipped default model is not there yet; pass --model CKPT)" if args.model is None else ""
        )
        raise UserError(f"{model}: model checkpoint not found{hint}")
    device = resolve_device(args.device)
    kernel_space = KernelSpace.load(str(model_path), device)

    folder = args.input_dir is not None
    reports: list[dict[str, Any]] = [
        {"input": str(p), "status": "skipped", "reason": "not an image file"} for p in others
    ]
    bar = tqdm(jobs, desc="images", unit="img", disable=args.quiet or not folder)
    for src, dst, extras in bar:
        if args.skip_existing and dst.exists():
            reports.append({"input": str(src), "output": str(dst), "status": "exists"})
            continue
        try:
            entry = _deblur_file(
                src,
                dst,
                extras,
                kernel_space,
                cfg,
                device,
                args.seed,
                progress=not args.quiet and not folder,
                model=str(model),
            )
        except UserError as exc:
            if not folder:
                raise
            entry = {"input": str(src), "status": "failed", "reason": " ".join(str(exc).split())}
        reports.append(entry)
        bar.set_postfix(last=src.name, refresh=False)
        if entry["status"] == "ok" and not folder:
            h, w = entry["size"]
            print(f"{dst}: {h}×{w}, {entry['steps']} steps, {entry['seconds']:.1f} s")
    failed = [r for r in reports if r["status"] == "failed"]
    done = [r for r in reports if r["status"] in ("ok", "exists")]
    if args.report:
        summary = {
            "model": str(model),
            "config": args.config,
            "device": str(device),
            "seed": args.seed,
            "images": reports,
        }
        atomic_write(
            args.report, lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"), suffix=".json"
        )
    if folder:
        ok = [r for r in reports if r["status"] == "ok"]
        mean = sum(r["seconds"] for r in ok) / len(ok) if ok else 0.0
        print(
            f"{len(ok)} deblurred ({mean:.1f} s per image), {len(done) - len(ok)} already existed, "
            f"{len(failed)} failed",
            file=sys.stderr,
        )
        for r in failed:
            print(f"  failed: {r['input']}: {r['reason']}", file=sys.stderr)
        for r in reports:
            if r["status"] == "skipped":
                print(f"  skipped: {r['input']}: {r['reason']}", file=sys.stderr)
        if failed:
            return 1 if done else 2
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
