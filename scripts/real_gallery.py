#!/usr/bin/env python
"""A before / after / PSF gallery of real blurry photos, deblurred with the default preset.

Each photo is deblurred as ``deblur.py`` does by default (``configs/deblur/default.yml``, the shipped
model), and one row per photo is drawn: the blurry photo, the result (both downscaled to
``--width`` px) and the PSF found (its peak white, magnified to the row's height); the figure is
written atomically to ``--out``. The photos are not copied anywhere: only this downscaled figure.

Example (the real photos of the project's shared folder, sources in its README):
    python scripts/real_gallery.py ../shared/real/flower.jpg ../shared/real/fishes.jpg --out docs/real_gallery.png
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from data.image_io import read_image, to_numpy, to_tensor, write_image
from deblurring.run import deblur_image
from models import KernelSpace
from utils.config import load_config
from utils.device import resolve_device
from utils.errors import run_cli
from utils.paths import model_path, refuse_overwrite
from utils.threads import set_threads

ROOT = Path(__file__).resolve().parent.parent


def psf_tile(psf: np.ndarray, side: int, least: int = 33) -> np.ndarray:
    """A PSF (S, S) drawn as a side × side RGB tile in [0, 1]: its peak white, padded to at least
    ``least`` px (a small PSF stays small: no blur is a dot) and magnified (nearest)."""
    k = np.asarray(psf, dtype=np.float32)
    k = k / max(float(k.max()), 1e-12)
    pad = max(0, (least - k.shape[0] + 1) // 2)
    k = np.pad(k, pad)
    tile = cv2.resize(k, (side, side), interpolation=cv2.INTER_NEAREST)
    return np.repeat(tile[:, :, None], 3, axis=2)


def gallery_row(blurry: np.ndarray, sharp: np.ndarray, psf: np.ndarray, width: int) -> np.ndarray:
    """One row: blurry and sharp (H, W, 3) in [0, 1] downscaled to ``width`` px, then the PSF tile,
    with 4-px white gaps → (h, 2·width + h + 8, 3)."""
    height = max(1, round(blurry.shape[0] * width / blurry.shape[1]))
    small = [cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA) for image in (blurry, sharp)]
    gap = np.ones((height, 4, 3), np.float32)
    return np.concatenate([small[0], gap, small[1], gap, psf_tile(psf, height)], axis=1)


def stack_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of different widths stacked top to bottom on white, 4-px gaps → (H, W, 3)."""
    width = max(row.shape[1] for row in rows)
    padded = [np.pad(row, ((0, 4), (0, width - row.shape[1]), (0, 0)), constant_values=1.0) for row in rows]
    return np.concatenate(padded, axis=0)[:-4]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="+", help="blurry photos, one row each")
    parser.add_argument("--out", default=str(ROOT / "docs" / "real_gallery.png"), help="the figure (PNG)")
    parser.add_argument("--width", type=int, default=320, help="width of each downscaled photo (px)")
    parser.add_argument("--model", default=None, help="checkpoint (default: the preset's, the shipped model)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available, else cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.width < 16:
        parser.error(f"--width must be at least 16, got {args.width}")
    refuse_overwrite([Path(args.out)], [*args.photos, args.model])
    if args.threads is not None:
        set_threads(args.threads)

    device = resolve_device(args.device)
    cfg = load_config(ROOT / "configs" / "deblur" / "default.yml", "deblur")
    model = KernelSpace.load(str(model_path(args.model or cfg["model"])), device)
    rows = []
    for path in args.photos:
        blurry = read_image(path)
        start = time.perf_counter()
        result = deblur_image(to_tensor(blurry.rgb), model, cfg, device, progress=False, seed=0)
        psf = result.psf[0, 0, 0].cpu().numpy()
        print(f"{path}: {blurry.rgb.shape[1]}×{blurry.rgb.shape[0]}, PSF {psf.shape[0]} px, "
              f"{time.perf_counter() - start:.1f} s", flush=True)
        rows.append(gallery_row(blurry.rgb, to_numpy(result.sharp), psf, args.width))
    write_image(args.out, stack_rows(rows))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
