"""Transfer and novel blur on files: where outputs go, skipping those written, a pool of processes
(what transfer.py calls)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from data.image_io import LoadedImage, read_image, to_numpy, write_image
from models import KernelSpace
from transferring.blur import as_rgb_tensor, code_prior, load_model, synthesize_blur
from transferring.tiling import apply_code, extract_code
from utils.batch import run_tasks
from utils.errors import UserError
from utils.paths import REPO_ROOT
from utils.threads import available_cores

DEFAULT_CONFIG = REPO_ROOT / "configs" / "transfer" / "default.yml"  # transfer.py's --config


def output_paths(targets: Sequence[str], output: str | None, output_dir: str | None, suffix: str) -> list[Path]:
    """Where each target's result goes: ``output`` (one target), ``output_dir``/<target name>,
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


def sample_paths(target: str, output_dir: str, count: int) -> list[Path]:
    """The files of ``count`` novel-blur samples of ``target``: <output_dir>/<stem>_sampleNNN<ext>."""
    stem, ext = Path(target).stem, Path(target).suffix
    return [Path(output_dir) / f"{stem}_sample{i:03d}{ext}" for i in range(count)]


def to_write(names: Sequence[str], paths: Sequence[Path], skip_existing: bool) -> list[int]:
    """Indices of the outputs to write: all, or with ``skip_existing`` those whose file does not exist
    yet (the others are printed as skipped)."""
    keep = []
    for i, (name, path) in enumerate(zip(names, paths)):
        if skip_existing and path.exists():
            print(f"skipped {name}: {path} exists")
        else:
            keep.append(i)
    return keep


@dataclass
class TransferContext:
    """What every target of a run shares: the model, the pair's code G(x, y), the keywords of
    :func:`~transferring.tiling.apply_code` (tile, overlap, blend, progress)."""

    model: KernelSpace
    code: torch.Tensor
    settings: dict[str, Any]


def worker_context(model_path: str, device: str, code: torch.Tensor, settings: dict[str, Any],
                   threads: int) -> TransferContext:
    """``setup`` of a worker process: its share of the threads, the model loaded once and the pair's
    code (extracted once by the parent, so every worker uses the same one)."""
    torch.set_num_threads(threads)
    return TransferContext(load_model(model_path, torch.device(device)).eval(), code, settings)


def transfer_one(context: TransferContext, task: tuple[LoadedImage, Path]) -> Path:
    """Blur one target with the run's code and write it (keeping the target's format) → its path."""
    target, path = task
    out = apply_code(context.model, as_rgb_tensor(target.rgb, str(target.path)), context.code, **context.settings)
    write_image(path, to_numpy(out.clamp(0.0, 1.0)), like=target)
    return path


def sample_files(target_path: str, paths: Sequence[Path], model_path: Path, device: torch.device, *, seed: int,
                 uniform: bool, settings: dict[str, Any], skip_existing: bool) -> int:
    """Write the novel-blur samples ``paths`` of one target (those missing, with ``skip_existing``) → 0."""
    target = read_image(target_path)
    indices = to_write([f"sample {i}" for i in range(len(paths))], paths, skip_existing)
    if not indices:
        print(f"nothing to do: all {len(paths)} samples of {target_path} exist")
        return 0
    model = load_model(model_path, device)
    if not model.use_vae and code_prior(model) is None:
        raise UserError(f"{model_path}: --sample needs a model with a prior (a learned code prior, "
                        "scripts/fit_code_prior.py, or a VAE); this checkpoint has neither")
    images = synthesize_blur(target.rgb, model, len(paths), device, seed, uniform, **settings, indices=indices)
    for i, image in zip(indices, images):
        write_image(paths[i], image, like=target)
    print(f"wrote {len(images)} novel-blur samples of {target_path} to {Path(paths[0]).parent}")
    return 0


def read_pair(sharp_path: str, blur_path: str, min_size: int) -> tuple[LoadedImage, LoadedImage]:
    """The sharp/blurry pair whose blur is transferred; a UserError unless both have one size of at
    least ``min_size`` pixels a side."""
    sharp, blurry = read_image(sharp_path), read_image(blur_path)
    if sharp.size != blurry.size:
        raise UserError(f"{blur_path}: blurry image is {blurry.size[0]}×{blurry.size[1]} but the sharp image "
                        f"{sharp_path} is {sharp.size[0]}×{sharp.size[1]}; a pair must have one size")
    if min(sharp.size) < min_size:
        raise UserError(f"{sharp_path}: pair of {sharp.size[0]}×{sharp.size[1]} pixels is too small to "
                        f"estimate its blur (min_pair_size: {min_size} px)")
    return sharp, blurry


def transfer_files(pair: tuple[str, str], jobs: Sequence[tuple[str, Path]], model_path: Path, device: torch.device,
                   *, settings: dict[str, Any], encode_tile: int, min_pair_size: int, skip_existing: bool,
                   workers: int = 1, threads: int | None = None, shard: str | None = None) -> int:
    """Blur transfer from the pair (sharp, blurry) onto the targets of ``jobs`` ((target, output)
    pairs; those missing, with ``skip_existing``), the pair's code extracted once; ``workers`` > 1
    spreads the targets over processes sharing ``threads`` (default: the cores); ``shard`` (K/N) only
    names the shard in a message → 0."""
    jobs = [jobs[i] for i in to_write([t for t, _ in jobs], [p for _, p in jobs], skip_existing)]
    targets = [read_image(t) for t, _ in jobs]
    sharp, blurry = read_pair(*pair, min_pair_size)
    if not jobs:
        print("nothing to do: no targets to blur" + (f" in shard {shard}" if shard else ""))
        return 0
    model = load_model(model_path, device).eval()
    code = extract_code(model, as_rgb_tensor(sharp.rgb, "sharp"), as_rgb_tensor(blurry.rgb, "blurry"),
                        encode_tile, settings["overlap"], settings["blend"])
    tasks = [(target, path) for target, (_, path) in zip(targets, jobs)]
    workers = min(workers, len(tasks))
    if workers == 1:
        context = TransferContext(model, code, settings)
        results = run_tasks(tasks, transfer_one, lambda: context)
    else:
        share = max(1, (threads or available_cores()) // workers)
        setup_args = (str(model_path), str(device), code.cpu(), {**settings, "progress": False}, share)
        results = run_tasks(tasks, transfer_one, worker_context, setup_args, workers)
    for _, path in results:
        print(f"wrote {path}")
    return 0
