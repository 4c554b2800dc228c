#!/usr/bin/env python
"""Blur transfer and novel-blur synthesis through the encoded blur-kernel space.

Blur transfer takes the blur of a sharp/blurry pair (x, y) and puts it on new sharp images x̂:
ŷ = F(x̂, G(x, y)). The pair and the targets may have different sizes: the code map is resampled
to each target's grid (``models.resample_code``). Novel blur (``--sample N``) draws N codes from
the prior N(0, I) of a VAE model and writes F(x̂, z) for each. Outputs keep the target's channel
count, alpha channel and bit depth.

Large images are processed in overlapping tiles (``tile``, ``overlap`` in configs/transfer/);
each tile takes the matching cells of the whole image's code map and tiles are blended with
smooth weight ramps, so a 4K image needs a bounded amount of memory and shows no seams.

Examples:
    python transfer.py --sharp examples/pair_sharp.png --blur examples/pair_blurry.png \\
        --target examples/target_sharp.png --output target_blurred.png
    python transfer.py --sharp x.png --blur y.png --target a.png --target b.jpg --output-dir out/
    python transfer.py --target examples/target_sharp.png --sample 8 --output-dir novel/ \\
        --model vae.pth --seed 1
    python transfer.py --sharp x.png --blur y.png --target a.png --target b.png --target c.png \\
        --output-dir out/ --shard 2/3 --skip-existing          # job 2 of a SLURM array of 3

Many targets: ``--shard K/N`` blurs only every N-th --target, from the K-th, in the order given,
so N jobs together write exactly the outputs of one run (the same files); each job extracts the
pair's code once. ``--skip-existing`` skips the targets (with --sample: the samples) whose output
file exists. ``--workers W`` runs W processes on this machine, each loading the model once (the
code is extracted once, here, and handed to them). ``--threads N``: torch's threads in all (F is
large convolutions, which intra-op threads speed up; default: torch's own, the cores); with
--workers each process gets N // W of them.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from data.image_io import LoadedImage, read_image, to_numpy, to_tensor, write_image
from models import KernelSpace, code_grid_size, pad_to_multiple, resample_code
from models.psf_ops import CELL
from utils.batch import check_threads, check_workers, parse_shard, run_tasks, take_shard
from utils.config import load_config
from utils.device import resolve_device
from utils.errors import UserError, run_cli
from utils.paths import model_path as model_path_from_config
from utils.paths import refuse_overwrite
from utils.threads import available_cores, torch_threads

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "transfer" / "default.yml"
BLENDS = ("cosine", "linear")


# -- tiles ----------------------------------------------------------------------------------------
def check_tiling(tile: int, overlap: int, name: str = "tile") -> None:
    """Raise UserError unless ``tile`` is a multiple of 128 (>= 256) and 0 <= ``overlap`` <= tile/2."""
    if not isinstance(tile, int) or tile < 2 * CELL or tile % CELL:
        raise UserError(f"{name} must be a multiple of {CELL} and at least {2 * CELL} pixels, got {tile!r}")
    if not isinstance(overlap, int) or not 0 <= overlap <= tile // 2:
        raise UserError(f"overlap must be between 0 and {name}/2 = {tile // 2} pixels, got {overlap!r}")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` (both multiples of 128).

    Starts are multiples of 128 (so every tile holds whole code cells), neighbours overlap by at
    least ``overlap`` pixels, and the last tile ends at ``length``.
    """
    if length <= tile:
        return [0]
    stride = max(CELL, (tile - overlap) // CELL * CELL)
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def ramp(length: int, ramp_in: int, ramp_out: int, blend: str = "cosine") -> torch.Tensor:
    """1-D blending weights (length,) in (0, 1]: rising over the first ``ramp_in`` samples, falling
    over the last ``ramp_out``, 1 in between. Two tiles whose ramps overlap exactly sum to 1."""
    if blend not in BLENDS:
        raise UserError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    weights = torch.ones(length, dtype=torch.float32)
    for n, reverse in ((ramp_in, False), (ramp_out, True)):
        n = min(n, length // 2)
        if n <= 0:
            continue
        t = (torch.arange(n, dtype=torch.float32) + 0.5) / n
        r = 0.5 - 0.5 * torch.cos(math.pi * t) if blend == "cosine" else t
        if reverse:
            weights[length - n:] = weights[length - n:] * r.flip(0)
        else:
            weights[:n] = weights[:n] * r
    return weights


def _tiles(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(top, left, tile_height, tile_width) of every tile of a padded height×width image."""
    th, tw = min(tile, height), min(tile, width)
    return [(top, left, th, tw) for top in tile_starts(height, th, overlap) for left in tile_starts(width, tw, overlap)]


@torch.inference_mode()
def apply_code(
    kernel_space: KernelSpace,
    target: torch.Tensor,
    code: torch.Tensor,
    tile: int | None = 512,
    overlap: int = 128,
    blend: str = "cosine",
    progress: bool = False,
) -> torch.Tensor:
    """F(x̂, k), tiled: target (1, 3, H, W) in [0, 1] and code (1, C, h, w) -> blurry (1, 3, H, W).

    The code is first resampled to the target's grid ``code_grid_size(H, W)``; each tile of the
    (reflect-padded, like the model pads) target gets the code cells it covers. ``tile=None`` or a
    target that fits in one tile runs F once on the whole image. Tiles run on the model's device;
    the result is assembled on the target's device. Output is not clamped. ``progress`` shows a
    tqdm bar over the tiles.
    """
    device = next(kernel_space.parameters()).device
    h, w = target.shape[-2:]
    code = resample_code(code.to(device), code_grid_size(h, w))
    padded = pad_to_multiple(target)
    hp, wp = padded.shape[-2:]
    if tile is None or (hp <= tile and wp <= tile):
        return kernel_space.apply(target.to(device), code).to(target.device)
    check_tiling(tile, overlap)
    out = torch.zeros(padded.shape, dtype=torch.float32, device=target.device)
    total = torch.zeros((1, 1, hp, wp), dtype=torch.float32, device=target.device)
    tiles = _tiles(hp, wp, tile, overlap)
    for top, left, th, tw in tqdm(tiles, desc=f"F on {len(tiles)} tiles", unit="tile", leave=False,
                                  disable=not progress):
        piece = padded[..., top:top + th, left:left + tw].to(device)
        cells = code[..., top // CELL:(top + th) // CELL, left // CELL:(left + tw) // CELL]
        pred = kernel_space.apply(piece, cells).to(target.device)
        wy = ramp(th, overlap if top > 0 else 0, overlap if top + th < hp else 0, blend)
        wx = ramp(tw, overlap if left > 0 else 0, overlap if left + tw < wp else 0, blend)
        weight = (wy[:, None] * wx[None, :]).to(target.device)
        out[..., top:top + th, left:left + tw] += pred * weight
        total[..., top:top + th, left:left + tw] += weight
    return (out / total)[..., :h, :w]


@torch.inference_mode()
def extract_code(
    kernel_space: KernelSpace,
    sharp: torch.Tensor,
    blur: torch.Tensor,
    tile: int | None = 2048,
    overlap: int = 128,
    blend: str = "cosine",
) -> torch.Tensor:
    """The deterministic code G(x, y) (the mean for a VAE model) of a pair, tiled when large.

    ``sharp``/``blur``: (1, 3, H, W) in [0, 1] of one size. Returns (1, C, ceil(H/128), ceil(W/128))
    on the model's device. A pair larger than ``tile`` is encoded in 128-aligned tiles whose code
    cells are blended with ramps of ``overlap // 128`` cells (equal weights where that is 0).
    """
    if sharp.shape != blur.shape:
        raise UserError(f"sharp image {tuple(sharp.shape[-2:])} and blurry image {tuple(blur.shape[-2:])} "
                        "must have the same size")
    device = next(kernel_space.parameters()).device
    padded_sharp, padded_blur = pad_to_multiple(sharp), pad_to_multiple(blur)
    hp, wp = padded_sharp.shape[-2:]
    # the psf type's G works cell by cell on windows of two cells: its memory is bounded without tiles
    if tile is None or (hp <= tile and wp <= tile) or kernel_space.generator_type == "psf":
        return kernel_space.extract_code(sharp.to(device), blur.to(device))
    check_tiling(tile, overlap, "encode_tile")
    gh, gw = hp // CELL, wp // CELL
    code = torch.zeros((1, kernel_space.kernel_dim, gh, gw), dtype=torch.float32, device=device)
    total = torch.zeros((1, 1, gh, gw), dtype=torch.float32, device=device)
    cells_overlap = overlap // CELL
    for top, left, th, tw in _tiles(hp, wp, tile, overlap):
        rows, cols = slice(top, top + th), slice(left, left + tw)
        part = kernel_space.extract_code(padded_sharp[..., rows, cols].to(device),
                                         padded_blur[..., rows, cols].to(device))
        ch, cw = th // CELL, tw // CELL
        wy = ramp(ch, cells_overlap if top > 0 else 0, cells_overlap if top + th < hp else 0, blend)
        wx = ramp(cw, cells_overlap if left > 0 else 0, cells_overlap if left + tw < wp else 0, blend)
        weight = (wy[:, None] * wx[None, :]).to(device)
        r0, c0 = top // CELL, left // CELL
        code[..., r0:r0 + ch, c0:c0 + cw] += part * weight
        total[..., r0:r0 + ch, c0:c0 + cw] += weight
    return code / total


# -- the two uses ---------------------------------------------------------------------------------
def _as_tensor(image: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """H×W×3 array or (1, 3, H, W)/(3, H, W) tensor in [0, 1] -> (1, 3, H, W) float32 CPU tensor."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise UserError(f"{name}: expected an H×W×3 RGB array, got shape {image.shape}")
        return to_tensor(image)
    tensor = image.detach().float().cpu()
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 4 or tensor.shape[:2] != (1, 3):
        raise UserError(f"{name}: expected a (1, 3, H, W) tensor, got shape {tuple(image.shape)}")
    return tensor


def transfer_blur(
    sharp: np.ndarray | torch.Tensor,
    blurry: np.ndarray | torch.Tensor,
    targets: Sequence[np.ndarray | torch.Tensor],
    kernel_space: KernelSpace,
    device: str | torch.device = "cpu",
    tile: int | None = 512,
    overlap: int = 128,
    blend: str = "cosine",
    encode_tile: int | None = 2048,
    progress: bool = False,
) -> list[np.ndarray]:
    """Put the blur of the pair (x, y) on every target x̂: ŷ = F(x̂, G(x, y)).

    ``sharp``/``blurry``: x and y, H×W×3 float arrays in [0, 1] (or (1, 3, H, W) tensors) of one
    size; ``targets``: sharp images of any sizes. The code is extracted once (tiled above
    ``encode_tile``) and resampled to each target's grid; F runs in ``tile``-sized tiles with
    ``overlap``-pixel ``blend`` ramps. Returns one H'×W'×3 float32 array in [0, 1] per target.
    The model is moved to ``device`` and put in eval mode; ``progress`` shows tqdm bars.
    """
    kernel_space = kernel_space.to(device).eval()
    code = extract_code(kernel_space, _as_tensor(sharp, "sharp"), _as_tensor(blurry, "blurry"),
                        encode_tile, overlap, blend)
    results = []
    for i, target in enumerate(tqdm(targets, desc="targets", unit="image", disable=not progress or len(targets) < 2)):
        out = apply_code(kernel_space, _as_tensor(target, f"target {i}"), code, tile, overlap, blend, progress)
        results.append(to_numpy(out.clamp(0.0, 1.0)))
    return results


def sample_codes(
    kernel_space: KernelSpace, grid: tuple[int, int], count: int, seed: int = 0, uniform: bool = False
) -> torch.Tensor:
    """``count`` codes drawn from the VAE prior N(0, I): (count, kernel_dim, *grid) on the CPU.

    The draw depends only on ``seed`` (a private generator). ``uniform`` draws one code per sample
    and replicates it over the grid (a spatially uniform blur). A non-VAE model is a UserError.
    """
    if not kernel_space.use_vae:
        raise UserError("sampling novel blur needs a VAE model (use_vae: true; e.g. a checkpoint trained "
                        "with KernelWizard.use_vae or the published GOPRO_wVAE); this model has no prior "
                        "to sample from")
    if count < 1:
        raise UserError(f"--sample must be a positive number of samples, got {count}")
    generator = torch.Generator().manual_seed(int(seed))
    if uniform:
        codes = torch.randn((count, kernel_space.kernel_dim, 1, 1), generator=generator)
        return codes.expand(-1, -1, *grid).contiguous()
    return torch.randn((count, kernel_space.kernel_dim, *grid), generator=generator)


def synthesize_blur(
    target: np.ndarray | torch.Tensor,
    kernel_space: KernelSpace,
    count: int,
    device: str | torch.device = "cpu",
    seed: int = 0,
    uniform: bool = False,
    tile: int | None = 512,
    overlap: int = 128,
    blend: str = "cosine",
    progress: bool = False,
    indices: Sequence[int] | None = None,
) -> list[np.ndarray]:
    """Novel blur: ``count`` blurry versions F(x̂, z_i) of a target, z_i ~ N(0, I) (VAE models only).

    ``target``: H×W×3 float array in [0, 1] (or a (1, 3, H, W) tensor). The codes have the target's
    grid and depend only on ``seed`` (see :func:`sample_codes`). Returns ``count`` H×W×3 arrays, or
    with ``indices`` only the samples of those numbers (in 0..count-1, in that order; the same
    images as in the whole set).
    """
    image = _as_tensor(target, "target")
    codes = sample_codes(kernel_space, code_grid_size(*image.shape[-2:]), count, seed, uniform)
    if indices is not None:
        codes = codes[list(indices)]
    kernel_space = kernel_space.to(device).eval()
    return [to_numpy(apply_code(kernel_space, image, z[None], tile, overlap, blend, progress).clamp(0.0, 1.0))
            for z in tqdm(codes, desc="samples", unit="image", disable=not progress)]


# -- command line ---------------------------------------------------------------------------------
def load_model(path: str | Path, device: torch.device) -> KernelSpace:
    """Load a kernel-space checkpoint for ``--model``, with a hint when the shipped model is missing."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: model checkpoint not found (pass --model CKPT: a checkpoint written by "
                        "train.py or one converted with scripts/convert_published_checkpoint.py)")
    return KernelSpace.load(str(path), device)


def output_paths(targets: Sequence[str], output: str | None, output_dir: str | None, suffix: str) -> list[Path]:
    """Where each target's result goes: ``--output`` (one target), ``--output-dir``/<target name>,
    or beside the target as <stem><suffix><ext>. Two targets mapping to one file are a UserError."""
    if output is not None:
        if len(targets) != 1:
            raise UserError(f"--output takes one target but {len(targets)} were given; use --output-dir")
        return [Path(output)]
    if output_dir is not None:
        paths = [Path(output_dir) / Path(t).name for t in targets]
    else:
        paths = [Path(t).with_name(Path(t).stem + suffix + Path(t).suffix) for t in targets]
    seen: dict[Path, str] = {}
    for path, target in zip(paths, targets):
        if path in seen:
            raise UserError(f"{target} and {seen[path]} would both be written to {path}; use distinct names")
        seen[path] = target
    return paths


@dataclass
class TransferContext:
    """What every target of a run shares: the model, the pair's code G(x, y), the settings of
    :func:`apply_code` (tile, overlap, blend, progress)."""

    model: KernelSpace
    code: torch.Tensor
    settings: dict[str, Any]


def worker_context(model_path: str, device: str, code: torch.Tensor, settings: dict[str, Any],
                   threads: int) -> TransferContext:
    """``setup`` of a ``--workers`` process: its share of the threads, the model loaded once and
    the pair's code (extracted once by the parent, so every worker uses the same one)."""
    torch.set_num_threads(threads)
    return TransferContext(load_model(model_path, torch.device(device)).eval(), code, settings)


def transfer_one(context: TransferContext, task: tuple[LoadedImage, Path]) -> Path:
    """Blur one target with the run's code and write it (keeping the target's format) → its path."""
    target, path = task
    out = apply_code(context.model, _as_tensor(target.rgb, str(target.path)), context.code, **context.settings)
    write_image(path, to_numpy(out.clamp(0.0, 1.0)), like=target)
    return path


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of transfer.py (documented by the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sharp", help="sharp image x of the pair whose blur is transferred")
    parser.add_argument("--blur", help="blurry image y of the pair (same size as --sharp)")
    parser.add_argument("--target", action="append", required=True, metavar="XHAT",
                        help="sharp image to blur (repeat for several targets)")
    parser.add_argument("--output", help="output file (one target)")
    parser.add_argument("--output-dir", help="output folder (several targets, or --sample)")
    parser.add_argument("--sample", type=int, metavar="N", help="novel blur: draw N codes from a VAE model's prior")
    parser.add_argument("--model", help="kernel-space checkpoint (default: the config's model, the shipped one)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML settings (configs/transfer/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. overlap=256")
    parser.add_argument("--tile", type=int, help="tile size in pixels for F (multiple of 128; default from config)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled codes (--sample)")
    parser.add_argument("--shard", metavar="K/N",
                        help="only every N-th --target, from the K-th, in the order given (not with --sample)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="skip the targets (with --sample: the samples) whose output file exists")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads in all (default: torch's, the cores available)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes blurring the targets, each loading the model once (default 1)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run blur transfer or novel-blur sampling, write the images."""
    args = build_parser().parse_args(argv)
    check_threads(args.threads)
    check_workers(args.workers)
    shard = parse_shard(args.shard)
    if args.sample is not None and (shard is not None or args.workers != 1):
        raise UserError("--shard and --workers split the --target files; --sample has one target (drop them)")
    cfg = load_config(args.config, "transfer", args.set)
    tile = args.tile if args.tile is not None else cfg["tile"]
    check_tiling(tile, cfg["overlap"])
    check_tiling(cfg["encode_tile"], cfg["overlap"], "encode_tile")
    if cfg["blend"] not in BLENDS:
        raise UserError(f"{args.config}: config key 'blend' must be one of {', '.join(BLENDS)}, got {cfg['blend']!r}")
    settings = {"tile": tile, "overlap": cfg["overlap"], "blend": cfg["blend"], "progress": True}
    if args.sample is not None:
        if args.sharp or args.blur:
            raise UserError("--sample draws codes from the prior; it takes no --sharp/--blur pair")
        if args.output_dir is None or len(args.target) != 1:
            raise UserError("--sample N needs exactly one --target and an --output-dir for the N images")
        if args.sample < 1:
            raise UserError(f"--sample must be a positive number of samples, got {args.sample}")
        stem, ext = Path(args.target[0]).stem, Path(args.target[0]).suffix
        paths = [Path(args.output_dir) / f"{stem}_sample{i:03d}{ext}" for i in range(args.sample)]
    elif not (args.sharp and args.blur):
        raise UserError("blur transfer needs --sharp X and --blur Y (or --sample N for novel blur)")
    else:  # all targets, not only this shard's: every shard refuses the same clashes
        paths = output_paths(args.target, args.output, args.output_dir, "_transfer")
    model_path = Path(args.model) if args.model else model_path_from_config(cfg["model"])
    refuse_overwrite(paths, [*args.target, args.sharp, args.blur, model_path, args.config])  # no input replaced
    with torch_threads(args.threads):
        if args.sample is not None:
            return _sample(args, cfg, settings, paths, model_path)
        return _transfer(args, cfg, settings, paths, model_path, shard)


def _skip_existing(names: Sequence[str], paths: Sequence[Path], skip: bool) -> list[int]:
    """Indices of the outputs to write: all, or with ``skip`` those whose file does not exist yet
    (the others are printed as skipped)."""
    keep = []
    for i, (name, path) in enumerate(zip(names, paths)):
        if skip and path.exists():
            print(f"skipped {name}: {path} exists")
        else:
            keep.append(i)
    return keep


def _sample(args: argparse.Namespace, cfg: dict[str, Any], settings: dict[str, Any], paths: list[Path],
            model_path: Path) -> int:
    """--sample: write the novel-blur samples of the one target (those missing, with --skip-existing)."""
    device = resolve_device(args.device)
    target = read_image(args.target[0])
    indices = _skip_existing([f"sample {i}" for i in range(len(paths))], paths, args.skip_existing)
    if not indices:
        print(f"nothing to do: all {len(paths)} samples of {args.target[0]} exist")
        return 0
    model = load_model(model_path, device)
    if not model.use_vae:
        raise UserError(f"{model_path}: --sample needs a VAE model (use_vae: true), this checkpoint has no "
                        "prior to sample novel blur from")
    images = synthesize_blur(target.rgb, model, args.sample, device, args.seed, cfg["sample"]["uniform"],
                             **settings, indices=indices)
    for i, image in zip(indices, images):
        write_image(paths[i], image, like=target)
    print(f"wrote {len(images)} novel-blur samples of {args.target[0]} to {args.output_dir}")
    return 0


def _transfer(args: argparse.Namespace, cfg: dict[str, Any], settings: dict[str, Any], paths: list[Path],
              model_path: Path, shard: tuple[int, int] | None) -> int:
    """Blur transfer onto this shard's targets (those missing, with --skip-existing), the pair's code
    extracted once; with --workers the targets are spread over processes."""
    device = resolve_device(args.device)
    jobs = take_shard(list(zip(args.target, paths)), shard)
    jobs = [jobs[i] for i in _skip_existing([t for t, _ in jobs], [p for _, p in jobs], args.skip_existing)]
    targets: list[LoadedImage] = [read_image(t) for t, _ in jobs]
    sharp, blurry = read_image(args.sharp), read_image(args.blur)
    if sharp.size != blurry.size:
        raise UserError(f"{args.blur}: blurry image is {blurry.size[0]}×{blurry.size[1]} but the sharp image "
                        f"{args.sharp} is {sharp.size[0]}×{sharp.size[1]}; a pair must have one size")
    if min(sharp.size) < cfg["min_pair_size"]:
        raise UserError(f"{args.sharp}: pair of {sharp.size[0]}×{sharp.size[1]} pixels is too small to "
                        f"estimate its blur (min_pair_size: {cfg['min_pair_size']} px)")
    if not jobs:
        where = f" in shard {args.shard}" if shard is not None else ""
        print(f"nothing to do: no targets to blur{where}")
        return 0
    model = load_model(model_path, device).eval()
    code = extract_code(model, _as_tensor(sharp.rgb, "sharp"), _as_tensor(blurry.rgb, "blurry"),
                        cfg["encode_tile"], settings["overlap"], settings["blend"])
    tasks = [(target, path) for target, (_, path) in zip(targets, jobs)]
    workers = min(args.workers, len(tasks))
    if workers == 1:
        context = TransferContext(model, code, settings)
        results = run_tasks(tasks, transfer_one, lambda: context)
    else:
        threads = max(1, (args.threads or available_cores()) // workers)
        setup_args = (str(model_path), str(device), code.cpu(), {**settings, "progress": False}, threads)
        results = run_tasks(tasks, transfer_one, worker_context, setup_args, workers)
    for _, path in results:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
