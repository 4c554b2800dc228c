#!/usr/bin/env python
"""Write a model checkpoint for shipping: ours (e.g. experiments/<name>/models/latest.pth) or a
published state_dict in, our format out, optionally with float16 weights.

``--half`` halves the file; the weights load back as float32 (PSNR of F(x, G(x, y)) against the
float32 model's output is printed, on a random pair, so the loss of precision is visible).

``--set KEY=VALUE`` changes a model setting that has no weights (for example the psf type's
``PSF.reg``, the regularisation of G's closed-form kernel, or ``PSF.refine_steps``); a key that
would change the weights' shapes is refused.

Example:
    python scripts/export_model.py --input experiments/default_psf/models/latest.pth \\
        --output pretrained/default_psf.pth --half --set PSF.reg=1.0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import torch

from models import KernelSpace
from utils.config import build_config, load_schema
from utils.errors import UserError, run_cli
from utils.metrics import psnr


def export_model(src: str, dst: str, half: bool = False, overrides: Sequence[str] = ()) -> float:
    """Copy the checkpoint at ``src`` to ``dst`` in our format (float16 weights with ``half``; the
    model config changed by ``overrides``, ``--set`` items, which must leave the weights' shapes).

    Returns the PSNR (dB) of the written model's re-blur F(x, G(x, y)) against the source model's on
    a seeded random 128×128 pair (inf when identical).
    """
    model = KernelSpace.load(src)
    if overrides:
        config = build_config(load_schema("model"), model.config, overrides, source="--set")
        changed = KernelSpace(config, model.meta)
        try:
            changed.load_state_dict(model.state_dict())
        except RuntimeError as exc:
            raise UserError(f"--set {' '.join(overrides)}: changes the model's weights, not a setting") from exc
        model = changed.eval()
    model.save(dst, half=half)
    written = KernelSpace.load(dst)
    gen = torch.Generator().manual_seed(0)
    sharp = torch.rand(1, 3, 128, 128, generator=gen)
    blur = torch.nn.functional.avg_pool2d(sharp, 5, 1, 2, count_include_pad=False)
    with torch.no_grad():
        return psnr(model(sharp, blur), written(sharp, blur))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="checkpoint to export (ours or published)")
    parser.add_argument("--output", required=True, help="where to write it")
    parser.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change a model setting without weights, e.g. PSF.reg=1.0 (repeatable)")
    args = parser.parse_args(argv)
    psnr = export_model(args.input, args.output, args.half, args.set)
    size = Path(args.output).stat().st_size / 1e6
    print(f"wrote {args.output} ({size:.1f} MB); its re-blur vs the input model's: {psnr:.1f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
