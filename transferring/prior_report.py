"""``scripts/evaluate.py --prior N``: is novel blur drawn from a model's prior plausible and varied?

N codes are drawn from each prior the model has — its learned code prior (``meta["code_prior"]``,
``scripts/fit_code_prior.py``) and, for a VAE model, N(0, I) — one code per sample (a uniform
blur), and decoded to PSFs (``KernelSpace.psf_of_code``). Reported per prior
(:mod:`utils.kernel_stats`):

- ``connected``: the share of samples with one connected support (the largest 8-connected piece
  above 5 % of the peak holds ≥ 75 % of the mass);
- ``pairwise``: the mean best-shift NCC between two different samples (low: varied);
- ``match_generated``: the mean, over 64 held-out trajectory kernels (``data.kernels``, a seed no
  prior is fitted with), of the best-shift NCC of the closest sample;
- ``match_reference``: the same over the kernels of a reference folder (default: Levin et al.'s eight
  measured camera-shake kernels, ``../shared/benchmarks/levin/gt/kernel*.png``, when present).

Writes prior_<name>.json (figures, per-reference matches), .md (table) and .png (32 samples of each
prior, one row band per prior) under --out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from data.image_io import write_image
from data.kernels import trajectory_psfs
from models import KernelSpace
from models.psf_probe import render_psfs
from transferring.blur import code_prior
from utils.errors import UserError
from utils.fileio import atomic_write
from utils.kernel_stats import ONE_STREAK, best_matches, connected_share, mean_pairwise_similarity
from utils.paths import REPO_ROOT

LEVIN_KERNELS = REPO_ROOT.parent / "shared" / "benchmarks" / "levin" / "gt"
HELD_OUT_SEED = 1_000_003  # trajectory kernels of this seed are never used to fit a prior
FIGURE_SAMPLES = 32


def read_kernels(folder: str | Path) -> list[np.ndarray]:
    """The kernel*.png images of a folder as float64 arrays summing to 1 (sorted by name); a folder
    without any is a UserError."""
    paths = sorted(Path(folder).glob("kernel*.png"))
    kernels = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None or image.sum() == 0:
            raise UserError(f"{path}: not a readable, non-black kernel image")
        kernels.append(image.astype(np.float64) / image.sum())
    if not kernels:
        raise UserError(f"{folder}: no kernel*.png reference kernels")
    return kernels


def prior_samples(model: KernelSpace, count: int, seed: int) -> dict[str, torch.Tensor]:
    """Codes (count, kernel_dim) of every prior of ``model``: {"learned code prior": …, "N(0, I)": …}
    (those it has; neither is a UserError)."""
    generator = torch.Generator().manual_seed(int(seed))
    out: dict[str, torch.Tensor] = {}
    learned = code_prior(model)
    if learned is not None:
        out["learned code prior"] = learned.sample(count, generator)
    if model.use_vae:
        out["N(0, I)"] = torch.randn((count, model.kernel_dim), generator=generator)
    if not out:
        raise UserError("--prior: the model has no prior to sample (no learned code prior, not a VAE)")
    return out


@torch.inference_mode()
def prior_report(model: KernelSpace, count: int = 256, seed: int = 0,
                 references: Sequence[np.ndarray] | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The figures of every prior of ``model`` → (result dict, {prior: PSFs (count, S, S)})."""
    if count < 2:
        raise UserError(f"--prior {count}: needs at least 2 samples (pairwise similarity)")
    held_out = trajectory_psfs(64, 31, 31, (0.3, 1.0), HELD_OUT_SEED)
    device = next(model.parameters()).device
    result: dict[str, Any] = {"count": count, "seed": seed, "priors": {}}
    psfs = {}
    for name, codes in prior_samples(model, count, seed).items():
        start = time.time()
        psf = model.psf_of_code(codes[:, :, None, None].to(device))[:, 0, 0].double().cpu().numpy()
        figures = {
            "connected": float(np.mean([connected_share(k) >= ONE_STREAK for k in psf])),
            "pairwise": mean_pairwise_similarity(psf),
            "match_generated": float(best_matches(psf, held_out).mean()),
        }
        if references:
            matches = best_matches(psf, references)
            figures["match_reference"] = float(matches.mean())
            figures["match_reference_each"] = [round(float(v), 4) for v in matches]
        figures["seconds"] = time.time() - start
        result["priors"][name] = figures
        psfs[name] = psf
    return result, psfs


def prior_markdown(result: dict[str, Any]) -> str:
    """The table of :func:`prior_report`'s result."""
    lines = [f"# Kernel-space prior: {result.get('model', '')}", "",
             f"{result['count']} samples per prior (seed {result['seed']}); "
             f"references: {result.get('references')}.", "",
             "| prior | connected (↑) | pairwise NCC (↓) | best match, held-out generated (↑) "
             "| best match, references (↑) |",
             "|---|---|---|---|---|"]
    for name, f in result["priors"].items():
        ref = f"{f['match_reference']:.3f}" if "match_reference" in f else "—"
        lines.append(f"| {name} | {f['connected']:.3f} | {f['pairwise']:.3f} | {f['match_generated']:.3f} | {ref} |")
    return "\n".join(lines) + "\n"


def prior_paths(out_dir: str | Path, name: str) -> list[Path]:
    """The files :func:`write_prior_report` writes: prior_<name>.json, .md and .png under ``out_dir``."""
    base = Path(out_dir) / f"prior_{name}"
    return [base.with_suffix(".json"), base.with_suffix(".md"), base.with_suffix(".png")]


def write_prior_report(result: dict[str, Any], psfs: dict[str, np.ndarray], out_dir: str | Path,
                       name: str) -> list[Path]:
    """Write the json, the table and a figure of the first 32 samples of each prior (4 × 8 each)."""
    paths = prior_paths(out_dir, name)
    atomic_write(paths[0], lambda tmp: tmp.write_text(json.dumps(result, indent=2)), suffix=".json")
    atomic_write(paths[1], lambda tmp: tmp.write_text(prior_markdown(result)), suffix=".md")
    bands = []
    for psf in psfs.values():
        shown = psf[:FIGURE_SAMPLES]
        rows = -(-len(shown) // 8)
        grid = np.zeros((rows * 8, *shown.shape[1:]), dtype=np.float32)
        grid[:len(shown)] = shown
        bands.append(render_psfs(grid.reshape(rows, 8, *shown.shape[1:]), scale=3))
    gap = np.full((8, bands[0].shape[1], 3), 1.0, dtype=np.float32)
    write_image(paths[2], np.concatenate([part for band in bands for part in (band, gap)][:-1], axis=0))
    return paths
