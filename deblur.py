"""Blind deblurring of photos (deblurring/ holds the algorithms; this is their command line).

The config's ``algorithm`` chooses the function (configs/defaults/deblur.yml); each is an importable
``fn(blurry, kernel_space, *, iterations=..., ...) -> DeblurResult`` and the config section named after
it holds its own keywords:
  alternating  (configs/deblur/default.yml, the default) deblurring.alternating.deblur_alternating:
               coarse-to-fine L0 image step + closed-form kernel step, then hyper-Laplacian non-blind
               deconvolution; with a PSF-type model the PSF found is also encoded as the model's code.
  dip          (configs/deblur/paper.yml) deblurring.dip.deblur_dip: the paper's route (Tran et al.,
               CVPR 2021, Sec. 4.2), an image DIP and a kernel DIP optimised through the frozen kernel
               space; section `dip` (warm-up, noise, network sizes).
  direct       (configs/deblur/fast.yml) deblurring.direct.deblur_direct: free pixels and a free code
               optimised through the frozen kernel space; section `direct`.
dip and direct share the keys outside those sections (iterations, scales, image.lr, kernel.*, loss,
early_stop, ...). Gray images are deblurred as gray, colour as colour.

Examples:
  python deblur.py --input examples/blurry_astronaut.png --output sharp.png
  python deblur.py --input blurry.png --output sharp.png --save-psf psf.png --report run.json
  python deblur.py --input blurry.png --set alternating.cells=true      # one PSF per 128-px cell
  python deblur.py --input blurry.png --config configs/deblur/fast.yml --iters 200
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
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from deblurring.alternating import deblur_alternating, resize_support
from deblurring.config import deblur_config, through_space_keywords
from deblurring.dip import deblur_dip
from deblurring.direct import deblur_direct
from deblurring.result import DeblurResult
from utils.config import read_yaml
from utils.errors import UserError, run_cli

__all__ = ["DeblurResult", "deblur_config", "deblur_image", "main"]

REPO_ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = REPO_ROOT / "configs" / "deblur" / "default.yml"


def deblur_image(
    blurry: torch.Tensor,  # (1, 3, H, W) RGB or (1, 1, H, W) gray, in [0, 1]
    kernel_space: Any,  # a KernelSpace (kept frozen; on `device`)
    cfg: Mapping[str, Any] | None,  # a deblur config (partial configs are completed from the defaults)
    device: str | torch.device,
    progress: bool = True,
    seed: int = 0,
) -> DeblurResult:
    """Blind deblurring of one image by the config's ``algorithm`` → a :class:`DeblurResult` with the
    input's channels (sharp and re-blur (1, C, H, W), code, history, PSF where the algorithm has one).

    ``alternating``: :func:`deblur_alternating` with the ``alternating`` section as keywords (on the
    CPU; a PSF-type ``kernel_space`` gives the result's code and, with ``space_projection``, the
    projection; other model types are not used, the code is then None). ``dip``: :func:`deblur_dip`,
    ``direct``: :func:`deblur_direct`, each with the shared keys
    (:func:`deblurring.config.through_space_keywords`) and its own section as keywords.
    """
    cfg = deblur_config(cfg)
    if blurry.dim() != 4 or blurry.shape[0] != 1 or blurry.shape[1] not in (1, 3):
        raise ValueError(f"blurry must be (1, 1 or 3, H, W), got {tuple(blurry.shape)}")
    height, width = blurry.shape[-2:]
    if min(height, width) < cfg["min_size"]:
        raise UserError(
            f"image of {height}×{width} pixels is too small to deblur (min_size: {cfg['min_size']} px)"
        )
    if cfg["algorithm"] == "alternating":
        space = kernel_space if getattr(kernel_space, "generator_type", None) == "psf" else None
        return deblur_alternating(blurry, space, **cfg["alternating"], seed=seed, progress=progress)
    deblur = {"dip": deblur_dip, "direct": deblur_direct}[cfg["algorithm"]]
    return deblur(
        blurry, kernel_space, **through_space_keywords(cfg), **cfg[cfg["algorithm"]],
        device=device, seed=seed, progress=progress,
    )  # fmt: skip


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
        help="YAML settings (configs/deblur/default.yml by default; fast.yml: direct; paper.yml: dip, the paper's)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set loss.vgg_weights=vgg19.pth (repeatable)",
    )
    parser.add_argument(
        "--iters", type=int, help="optimisation steps (dip, direct: iterations; alternating: alternations per level)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the DIP inputs and weights (direct, alternating: not random)"
    )
    parser.add_argument(
        "--save-kernel", metavar="PATH", help="save the found code and PSF map (torch .pt; a folder with -dir)"
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


def _save_code(path: Path, result: DeblurResult, model: str, size: tuple[int, int]) -> None:
    """``{"code": (1, kernel_dim, gh, gw) or None, "psf": (1, gh, gw, S, S) or None, "model", "image_size"}``."""
    from utils.fileio import atomic_path

    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"code": result.code, "psf": result.psf, "model": model, "image_size": list(size)}, tmp)


def _psf_picture(result: DeblurResult, kernel_space: Any, device: torch.device) -> Any:
    """The picture of the blur found: the explicit PSF map where the algorithm has one (drawn at the
    model's PSF size, the support its code holds, for a PSF-type model), else the code's PSFs."""
    from models.psf_probe import render_psfs

    if result.psf is None:
        return render_psfs(kernel_space.psf_of_code(result.code.to(device))[0])
    psf = result.psf[0]
    if getattr(kernel_space, "generator_type", None) == "psf":
        psf = resize_support(psf, int(kernel_space.psf_size))
    return render_psfs(psf)


def _rgb(image: torch.Tensor) -> Any:
    """(1, C, H, W) → H×W×3 array (gray replicated), for data.image_io.write_image."""
    from data.image_io import to_numpy

    return to_numpy(image.expand(1, 3, *image.shape[-2:]))


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
    from data.image_io import read_image, to_tensor, write_image

    loaded = read_image(src)
    blurry = to_tensor(loaded.rgb)
    if loaded.channels == 1:  # gray stays gray (read_image replicates it to three equal channels)
        blurry = blurry[:, :1]
    start = time.perf_counter()
    try:
        result = deblur_image(blurry, kernel_space, cfg, device, progress=progress, seed=seed)
    except UserError as exc:
        raise UserError(f"{src}: {exc}") from exc
    seconds = time.perf_counter() - start
    write_image(dst, _rgb(result.sharp), like=loaded)
    if extras["reblur"] is not None:
        write_image(extras["reblur"], _rgb(result.reblurred), like=loaded)
    if extras["kernel"] is not None:
        _save_code(extras["kernel"], result, model, loaded.size)
    if extras["psf"] is not None:
        write_image(extras["psf"], _psf_picture(result, kernel_space, device))
    if cfg["algorithm"] == "alternating":  # one entry per alternation, then one per candidate run
        main = [h for h in result.history if "step" in h]
        energies = [h["energy"] for h in result.history if "energy" in h]
        final_loss = min(energies) if energies else None
    else:
        main = [h for h in result.history if h["phase"] == "main"]
        final_loss = main[-1]["loss"] if main else None
    return {
        "input": str(src),
        "output": str(dst),
        "status": "ok",
        "size": list(loaded.size),
        "channels": loaded.channels,
        "bit_depth": loaded.bit_depth,
        "seconds": round(seconds, 3),
        "algorithm": cfg["algorithm"],
        "steps": len(main),
        "stopped_early": any(h.get("stopped") for h in main),
        "final_loss": final_loss,
        "reblur_mse": float(F.mse_loss(result.reblurred, blurry).item()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load the model and config, deblur the image(s), write the outputs."""
    from data.image_io import IMAGE_EXTENSIONS, is_image_file, list_images
    from models.kernel_space import KernelSpace
    from utils.device import resolve_device
    from utils.fileio import atomic_write
    from utils.paths import refuse_overwrite

    args = build_parser().parse_args(argv)
    if args.iters is not None and args.iters < 1:
        raise UserError(f"--iters must be >= 1, got {args.iters}")
    cfg = deblur_config(read_yaml(args.config), source=args.config, overrides=args.set)
    if args.iters is not None:  # dip, direct: optimisation steps; alternating: alternations per pyramid level
        (cfg["alternating"] if cfg["algorithm"] == "alternating" else cfg)["iterations"] = args.iters
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
