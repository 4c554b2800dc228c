#!/usr/bin/env python
"""The quick-start demo (``make demo``): deblur the shipped example with the shipped model.

Reads ``examples/blurry_astronaut.png``, deblurs it with the default preset
(``configs/deblur/default.yml``) and the shipped model, writes the result and a before/after
picture under ``--out`` (default ``demo_output/``), and prints the PSNR against the example's ground
truth and the time taken.

Example:
    python scripts/demo.py --device cpu
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data.image_io import read_image, to_numpy, to_tensor, write_image
from deblurring.run import deblur_image
from models import KernelSpace
from utils.config import load_config
from utils.device import resolve_device
from utils.errors import run_cli
from utils.metrics import psnr
from utils.paths import model_path, refuse_overwrite

ROOT = Path(__file__).resolve().parent.parent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default=str(ROOT / "examples" / "blurry_astronaut.png"))
    parser.add_argument("--truth", default=str(ROOT / "examples" / "sharp_astronaut.png"))
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument("--out", default="demo_output", help="output folder")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    refuse_overwrite(  # neither picture may be one of the inputs
        [Path(args.out) / f"{Path(args.input).stem}_{kind}.png" for kind in ("deblurred", "before_after")],
        [args.input, args.truth, args.model],
    )

    device = resolve_device(args.device)
    cfg = load_config(ROOT / "configs" / "deblur" / "default.yml", "deblur")
    checkpoint = model_path(args.model or cfg["model"])
    model = KernelSpace.load(str(checkpoint), device)
    blurry = read_image(args.input)
    print(f"deblurring {args.input} ({blurry.rgb.shape[1]}×{blurry.rgb.shape[0]}) with {checkpoint} on {device} ...")
    start = time.perf_counter()
    result = deblur_image(to_tensor(blurry.rgb), model, cfg, device, progress=True, seed=0)
    seconds = time.perf_counter() - start

    out = Path(args.out)
    sharp = to_numpy(result.sharp)
    name = Path(args.input).stem
    write_image(out / f"{name}_deblurred.png", sharp, like=blurry)
    side_by_side = np.concatenate([blurry.rgb, np.ones_like(blurry.rgb[:, :8]), sharp], axis=1)
    write_image(out / f"{name}_before_after.png", side_by_side)
    print(f"done in {seconds:.1f} s")
    if args.truth and Path(args.truth).is_file():
        truth = read_image(args.truth).rgb
        print(f"PSNR vs ground truth: blurry {psnr(blurry.rgb, truth):.2f} dB -> deblurred {psnr(sharp, truth):.2f} dB")
    print(f"before/after picture: {out / f'{name}_before_after.png'}")
    print(f"deblurred image:      {out / f'{name}_deblurred.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
