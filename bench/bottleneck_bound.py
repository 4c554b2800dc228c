#!/usr/bin/env python
"""How many numbers per 8×8 patch F needs to re-blur the synthetic pairs: a linear estimate.

F's output is x + a residual, and everything F knows about x's fine detail passes through the first
level of its U-Net: ``nf`` channels at 1/8 resolution, i.e. ``nf`` numbers per 8×8×3 patch (192
pixel values). A blur removes fine detail, so the residual y - x must cancel it. This script takes
the residuals of synthetic training pairs, cuts them into 8×8×3 patches, keeps their top-``c``
principal components, and reports the re-blur PSNR of x + (residual limited to c components) against
y on held-out pairs, for several c. It is an estimate, not a strict bound: the projection knows y
(F does not), and a non-linear network can beat a linear projection. Compare c with the ``nf`` of a
config (24 for default_small, 64 for the paper's).

Writes bench/results/bottleneck_bound.md. CI runs only the smoke test (tests/test_bench.py: 4 pairs of 64²).

Example:
    python bench/bottleneck_bound.py --pairs 64 --size 256
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data.build import build_synthetic
from utils.config import build_config, load_schema
from utils.fileio import atomic_write
from utils.metrics import psnr

ROOT = Path(__file__).resolve().parent.parent

PATCH = 8
MAX_DB = 120.0  # PSNR cap: an exact reconstruction (the full basis) scores this, not inf


def synthetic_pairs(count: int, size: int, seed: int, phase: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` (sharp, blur) H×W×3 float arrays of the default synthetic generator's ``phase`` stream."""
    opt = build_config(load_schema("dataset"), {"mode": "synthetic", "HQ_size": size,
                                                 "synthetic": {"num_samples": count}}, (), "bottleneck_bound")
    dataset = build_synthetic(opt, seed, phase)
    return [dataset.make_arrays(i)[:2] for i in range(count)]


def patches(image: np.ndarray) -> np.ndarray:
    """H×W×C (H, W multiples of 8) → (H/8 · W/8, 8·8·C) rows, one per non-overlapping patch."""
    h, w, c = image.shape
    return image.reshape(h // PATCH, PATCH, w // PATCH, PATCH, c).transpose(0, 2, 1, 3, 4).reshape(
        -1, PATCH * PATCH * c)


def reblur_psnr_with_components(
    train: Sequence[tuple[np.ndarray, np.ndarray]],
    test: Sequence[tuple[np.ndarray, np.ndarray]],
    components: Sequence[int],
) -> dict[int, float]:
    """Mean PSNR (dB) over ``test`` of x + P_c(y - x) against y, P_c the projection on the top-c
    principal components of the training residual patches, for each c in ``components``."""
    residuals = np.concatenate([patches(b - s) for s, b in train]).astype(np.float64)
    mean = residuals.mean(0)
    _, _, basis = np.linalg.svd(residuals - mean, full_matrices=False)
    if max(components) > len(basis):
        raise ValueError(f"{len(residuals)} training patches give {len(basis)} components, fewer than "
                         f"{max(components)}: use more or larger training pairs")
    result = {}
    for c in components:
        top = basis[:c]
        scores = []
        for s, b in test:
            r = patches(b - s) - mean
            scores.append(psnr(r @ top.T @ top, r, max_db=MAX_DB))  # x + P_c(y - x) vs y
        result[c] = float(np.mean(scores))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, measure, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=64, help="training pairs (and as many held-out pairs)")
    parser.add_argument("--size", type=int, default=256, help="side of the pairs (a multiple of 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--components", default="8,24,64,128,192", help="comma list of c")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "bottleneck_bound.md"))
    args = parser.parse_args(argv)
    if args.size % PATCH or args.size < PATCH or args.pairs < 1:
        parser.error(f"--size must be a positive multiple of {PATCH} and --pairs positive")
    components = [int(c) for c in args.components.split(",")]
    train = synthetic_pairs(args.pairs, args.size, args.seed, "train")
    test = synthetic_pairs(args.pairs, args.size, args.seed, "test")
    identity = float(np.mean([psnr(s, b) for s, b in test]))
    scores = reblur_psnr_with_components(train, test, components)
    lines = [f"Re-blur PSNR with the residual y - x limited to c numbers per 8×8×3 patch (PCA of {args.pairs} "
             f"training residuals, {args.pairs} held-out pairs, {args.size}², default synthetic generator, "
             f"seed {args.seed}). Identity ŷ := x: {identity:.2f} dB. "
             "`python bench/bottleneck_bound.py`",
             "", "| c (numbers per 8×8 patch) | re-blur PSNR (dB) |", "|---:|---:|"]
    lines += [f"| {c} | {scores[c]:.2f} |" for c in components]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(text), suffix=".md")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
