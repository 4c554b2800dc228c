"""Deblurring by config, of tensors and of files: what deblur.py, the demo and the benches call.

* :func:`deblur_image` — one (1, C, H, W) tensor, the config's ``algorithm`` → a DeblurResult.
* :func:`deblur_file` — read an image, deblur it, write the output (and the requested extras) →
  the image's report entry.
* :func:`deblur_files` — many files, in this process or over a pool of worker processes (one
  model load per worker, :func:`utils.batch.run_tasks`); failures are listed, not raised.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from deblurring.alternating import deblur_alternating, resize_support
from deblurring.config import deblur_config, through_space_keywords
from deblurring.dip import deblur_dip
from deblurring.direct import deblur_direct
from deblurring.result import DeblurResult
from utils.batch import run_tasks, take_shard
from utils.errors import UserError
from utils.threads import available_cores, set_threads

__all__ = ["DeblurJob", "deblur_file", "deblur_files", "deblur_image", "plan_jobs"]


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


@dataclass(frozen=True)
class DeblurJob:
    """One image to deblur: its source, its output, and the extras wanted (None: not written):
    ``kernel`` the code and PSF map (.pt), ``reblur`` F(sharp, code), ``psf`` a picture of the PSFs."""

    source: Path
    output: Path
    kernel: Path | None = None
    reblur: Path | None = None
    psf: Path | None = None

    def outputs(self) -> list[Path]:
        """Every path this job writes."""
        return [p for p in (self.output, self.kernel, self.reblur, self.psf) if p is not None]


def plan_jobs(
    source: str | Path,
    output: str | Path | None,
    *,
    folder: bool = False,
    kernel: str | Path | None = None,
    reblur: str | Path | None = None,
    psf: str | Path | None = None,
    shard: tuple[int, int] | None = None,
) -> tuple[list[DeblurJob], list[Path]]:
    """The jobs of one deblur.py run → (DeblurJobs, the files of the input folder that are not images).

    One image: ``source`` → ``output`` (default ``<stem>_deblurred<ext>`` beside it), the extras
    at the paths given. ``folder``: every image of the folder ``source`` (sorted; only shard K of N,
    :func:`utils.batch.take_shard`) → the same name in the folder ``output``, the extras as
    ``<stem>.pt`` / ``<name>`` / ``<stem>.png`` in the folders given. A missing input, an empty folder
    or an output with an unknown image extension is a UserError."""
    from data.image_io import IMAGE_EXTENSIONS, is_image_file, list_images

    def extra(place: str | Path | None, name: str) -> Path | None:
        return None if not place else Path(place) / name if folder else Path(place)

    others: list[Path] = []
    if not folder:
        src = Path(source)
        if not src.is_file():
            raise UserError(f"{src}: input image not found")
        dst = Path(output) if output else src.with_name(f"{src.stem}_deblurred{src.suffix}")
        jobs = [DeblurJob(src, dst, kernel=extra(kernel, ""), reblur=extra(reblur, ""), psf=extra(psf, ""))]
    else:
        sources = list_images(source)
        if not sources:
            raise UserError(f"{source}: no images found (expected PNG/JPEG/TIFF/BMP files)")
        others = take_shard([p for p in sorted(Path(source).iterdir())
                             if p.is_file() and not is_image_file(p) and not p.name.startswith(".")], shard)
        jobs = [DeblurJob(p, Path(output) / p.name, kernel=extra(kernel, p.stem + ".pt"),
                          reblur=extra(reblur, p.name), psf=extra(psf, p.stem + ".png"))
                for p in take_shard(sources, shard)]
    for job in jobs:
        if not is_image_file(job.output):
            raise UserError(f"{job.output}: unknown image extension, expected one of {', '.join(IMAGE_EXTENSIONS)}")
    return jobs, others


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


def deblur_file(
    job: DeblurJob,
    kernel_space: Any,
    cfg: Mapping[str, Any],
    device: torch.device,
    seed: int = 0,
    progress: bool = False,
    model: str = "",
) -> dict[str, Any]:
    """Read ``job.source``, deblur it (:func:`deblur_image`), write ``job.output`` in the input's
    channels and bit depth and the extras asked for → the image's report entry (``status: ok``,
    size, seconds, steps, final loss, re-blur MSE). A bad input raises UserError naming the file."""
    from data.image_io import read_image, to_tensor, write_image

    loaded = read_image(job.source)
    blurry = to_tensor(loaded.rgb)
    if loaded.channels == 1:  # gray stays gray (read_image replicates it to three equal channels)
        blurry = blurry[:, :1]
    start = time.perf_counter()
    try:
        result = deblur_image(blurry, kernel_space, cfg, device, progress=progress, seed=seed)
    except UserError as exc:
        raise UserError(f"{job.source}: {exc}") from exc
    seconds = time.perf_counter() - start
    write_image(job.output, _rgb(result.sharp), like=loaded)
    if job.reblur is not None:
        write_image(job.reblur, _rgb(result.reblurred), like=loaded)
    if job.kernel is not None:
        _save_code(job.kernel, result, model, loaded.size)
    if job.psf is not None:
        write_image(job.psf, _psf_picture(result, kernel_space, device))
    if cfg["algorithm"] == "alternating":  # one entry per alternation, then one per candidate run
        steps = [h for h in result.history if "step" in h]
        energies = [h["energy"] for h in result.history if "energy" in h]
        final_loss = min(energies) if energies else None
    else:
        steps = [h for h in result.history if h["phase"] == "main"]
        final_loss = steps[-1]["loss"] if steps else None
    return {
        "input": str(job.source), "output": str(job.output), "status": "ok", "size": list(loaded.size),
        "channels": loaded.channels, "bit_depth": loaded.bit_depth, "seconds": round(seconds, 3),
        "algorithm": cfg["algorithm"], "steps": len(steps), "stopped_early": any(h.get("stopped") for h in steps),
        "final_loss": final_loss, "reblur_mse": float(F.mse_loss(result.reblurred, blurry).item()),
    }  # fmt: skip


@dataclass
class _Worker:
    """What one worker process holds: the model, loaded once, and the settings every job shares."""

    kernel_space: Any
    cfg: Mapping[str, Any]
    device: torch.device
    seed: int
    progress: bool
    model: str
    skip_existing: bool


def _setup(model_path: str, device: str | None, cfg: Mapping[str, Any], seed: int, threads: int | None,
           progress: bool, model: str, skip_existing: bool) -> _Worker:
    from models.kernel_space import KernelSpace
    from utils.device import resolve_device

    set_threads(threads)
    resolved = resolve_device(device)
    return _Worker(KernelSpace.load(model_path, resolved), cfg, resolved, seed, progress, model, skip_existing)


def _work(worker: _Worker, job: DeblurJob) -> dict[str, Any]:
    if worker.skip_existing and job.output.exists():
        return {"input": str(job.source), "output": str(job.output), "status": "exists"}
    try:
        return deblur_file(job, worker.kernel_space, worker.cfg, worker.device, worker.seed, worker.progress,
                           worker.model)
    except UserError as exc:
        return {"input": str(job.source), "status": "failed", "reason": " ".join(str(exc).split())}


def deblur_files(
    jobs: list[DeblurJob],
    model_path: str | Path,
    cfg: Mapping[str, Any],
    device: str | None = None,
    *,
    seed: int = 0,
    workers: int = 1,
    threads: int | None = None,
    skip_existing: bool = False,
    progress: bool = False,
    model: str = "",
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Deblur every job (:func:`deblur_file`) → yields (index of the job, its report entry) as each
    finishes. ``workers`` processes (each loads the model once; one: this process) share
    ``threads`` threads (None: the available cores; :mod:`utils.threads`). A job whose input cannot
    be deblurred gives ``status: failed`` with the reason; with ``skip_existing`` a job whose output
    exists gives ``status: exists``. ``progress``: per-image progress lines (one worker only)."""
    per_worker = threads if workers == 1 else max(1, (threads or available_cores()) // workers)
    args = (str(model_path), device, dict(cfg), seed, per_worker, progress and workers == 1, model, skip_existing)
    yield from run_tasks(jobs, _work, _setup, args, workers=workers)


def summarise_folder(reports: list[dict[str, Any]]) -> int:
    """Print a folder run's summary on stderr (one report per image: status ok, exists, failed or
    skipped) → the exit status of deblur.py: 0 when all were written, 1 when some failed, 2 when none
    was done."""
    ok = [r for r in reports if r["status"] == "ok"]
    failed = [r for r in reports if r["status"] == "failed"]
    existed = [r for r in reports if r["status"] == "exists"]
    mean = sum(r["seconds"] for r in ok) / len(ok) if ok else 0.0
    print(f"{len(ok)} deblurred ({mean:.1f} s per image), {len(existed)} already existed, {len(failed)} failed",
          file=sys.stderr)
    for r in failed:
        print(f"  failed: {r['input']}: {r['reason']}", file=sys.stderr)
    for r in reports:
        if r["status"] == "skipped":
            print(f"  skipped: {r['input']}: {r['reason']}", file=sys.stderr)
    if failed:
        return 1 if ok or existed else 2
    return 0
