#!/usr/bin/env python
"""Write the quick-start images under examples/ (deterministic; re-run to regenerate them).

The photos are scikit-image's bundled samples (never used for training), cropped to 256×256 and
blurred with kernels from ``data/kernels.py`` plus Gaussian noise σ = 0.01:

- ``examples/blurry_astronaut.png``: camera-shake blur, the deblurring example
  (``examples/sharp_astronaut.png`` is its ground truth, for PSNR);
- ``examples/pair_sharp.png`` / ``examples/pair_blurry.png``: a sharp/blurry pair for transfer
  (linear motion blur), and ``examples/target_sharp.png``, a sharp target to put that blur on;
- ``examples/kernels/*.npy``: the true kernels, for reference.

Example:
    python scripts/make_examples.py --out examples
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from data.image_io import write_image
from data.kernels import linear_kernel, shake_kernel
from utils.errors import run_cli
from utils.fileio import atomic_path

ROOT = Path(__file__).resolve().parent.parent

NOISE_SIGMA = 0.01


def crop(image: np.ndarray, top: int, left: int, size: int = 256) -> np.ndarray:
    """A float32 [0, 1] RGB size×size crop of an 8-bit image (gray replicated to RGB)."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[top : top + size, left : left + size, :3].astype(np.float32) / 255.0


def blur(sharp: np.ndarray, kernel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Convolve (H, W, 3) with a kernel (reflect border), add N(0, σ²) noise, clip to [0, 1]."""
    flipped = np.ascontiguousarray(kernel[::-1, ::-1])
    out = cv2.filter2D(sharp, -1, flipped, borderType=cv2.BORDER_REFLECT_101)
    return np.clip(out + rng.normal(0.0, NOISE_SIGMA, out.shape).astype(np.float32), 0.0, 1.0)


def make_examples(out: Path, seed: int = 2021) -> list[Path]:
    """Write the example images into ``out``; returns the written paths."""
    from skimage import data as skdata

    rng = np.random.default_rng(seed)
    astronaut = crop(skdata.astronaut(), 20, 130)
    coffee = crop(skdata.coffee(), 100, 150)
    target = crop(skdata.chelsea(), 30, 60)
    shake = shake_kernel(rng, 15, 0.75)
    motion = linear_kernel(rng, 21, 0.9)
    images = {
        "sharp_astronaut.png": astronaut,
        "blurry_astronaut.png": blur(astronaut, shake, rng),
        "pair_sharp.png": coffee,
        "pair_blurry.png": blur(coffee, motion, rng),
        "target_sharp.png": target,
    }
    written = []
    for name, image in images.items():
        write_image(out / name, image)
        written.append(out / name)
    for name, kernel in {"astronaut_shake.npy": shake, "pair_motion.npy": motion}.items():
        with atomic_path(out / "kernels" / name, suffix=".npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, kernel)
        written.append(out / "kernels" / name)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "examples"), help="output folder (default examples/)")
    parser.add_argument("--seed", type=int, default=2021)
    args = parser.parse_args(argv)
    for path in make_examples(Path(args.out), args.seed):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
