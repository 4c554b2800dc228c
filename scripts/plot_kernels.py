"""Draw a grid of random blur kernels (all kinds) to a PNG, for a visual check of the generator.

With ``--reference DIR`` (default: Levin et al.'s eight measured camera-shake kernels,
``../shared/benchmarks/levin/gt/kernel*.png``, when present; ``--reference none``: no row) the first row
shows those kernels, centred at the same scale, to compare the generated ones with.

Example:
    python scripts/plot_kernels.py --out docs/kernels.png --rows 7 --cols 8 --size 41 --seed 0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from data.image_io import write_image
from data.kernels import KERNEL_KINDS, random_kernel
from transferring.prior_report import LEVIN_KERNELS, read_kernels
from utils.errors import UserError, run_cli


def kernel_grid(
    rng: np.random.Generator,
    rows: int,
    cols: int,
    size: int,
    zoom: int = 3,
    kinds: Sequence[str] = KERNEL_KINDS,
    references: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """A (rows·cell, cols·cell, 3) float image of kernels, each scaled to its own maximum.

    Row r uses kind ``kinds[r * len(kinds) // rows]`` (shake gets the first rows), so every kind
    appears; kernels are drawn with intensities in [0.1, 1]. ``references`` (kernels of at most
    ``size`` px) fill an extra first row, centred.
    """
    cell = size * zoom + 2
    extra = 1 if len(references) else 0
    grid = np.full(((rows + extra) * cell, cols * cell, 3), 0.25, np.float32)
    for c, ref in enumerate(references[:cols]):
        h, w = ref.shape
        k = np.zeros((size, size), np.float32)
        k[(size - h) // 2:(size - h) // 2 + h, (size - w) // 2:(size - w) // 2 + w] = ref
        k = np.kron(k / k.max(), np.ones((zoom, zoom), np.float32))
        grid[1:1 + size * zoom, c * cell + 1:c * cell + 1 + size * zoom] = k[:, :, None]
    for r in range(rows):
        kind = kinds[r * len(kinds) // rows]
        for c in range(cols):
            k = random_kernel(rng, size, kinds=[kind])
            k = np.kron(k / k.max(), np.ones((zoom, zoom), np.float32))
            y, x = (r + extra) * cell + 1, c * cell + 1
            grid[y:y + size * zoom, x:x + size * zoom] = k[:, :, None]
    return grid


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, draw the grid, write the PNG."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/kernels.png", help="output PNG")
    parser.add_argument("--rows", type=int, default=6)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--size", type=int, default=31, help="kernel size (odd)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", default=None, help="folder of kernel*.png for the first row (default: "
                        "Levin's eight when present; 'none': no row)")
    parser.add_argument("--kinds", nargs="+", default=["trajectory", "trajectory", "shake", "shake", "linear",
                                                         "defocus", "gaussian"],
                        help="kinds, one per band of rows (repeat a kind to give it more rows)")
    args = parser.parse_args(argv)
    if args.size < 3 or args.size % 2 == 0:
        raise UserError(f"--size {args.size}: expected an odd integer >= 3")
    unknown = sorted(set(args.kinds) - set(KERNEL_KINDS))
    if unknown:
        raise UserError(f"--kinds {' '.join(unknown)}: unknown kind(s), expected some of {', '.join(KERNEL_KINDS)}")
    folder = args.reference or (str(LEVIN_KERNELS) if LEVIN_KERNELS.is_dir() else "none")
    references = [] if folder == "none" else read_kernels(folder)
    if any(max(r.shape) > args.size for r in references):
        raise UserError(f"--reference {folder}: kernels larger than --size {args.size}")
    grid = kernel_grid(np.random.default_rng(args.seed), args.rows, args.cols, args.size, kinds=args.kinds,
                       references=references)
    write_image(args.out, grid)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
