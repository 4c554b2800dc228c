#!/usr/bin/env python
"""Convert a published KernelWizard checkpoint (plain state_dict) to this project's format.

The architecture (nf, kernel_dim, residual blocks, VAE or not) is inferred from tensor shapes; a
``module.`` prefix is accepted. The output loads with ``KernelSpace.load`` and ``--model``.

Example:
    python scripts/convert_published_checkpoint.py --input GOPRO_wVAE.pth --output gopro_wvae.pth
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from models.kernel_space import convert_published_checkpoint
from utils.errors import run_cli
from utils.paths import refuse_overwrite


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, convert --input and write --output."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="published checkpoint (.pth state_dict)")
    parser.add_argument("--output", required=True, help="where to write the converted checkpoint")
    args = parser.parse_args(argv)
    refuse_overwrite([args.output], [args.input])  # the output may not replace the published file
    model = convert_published_checkpoint(args.input, args.output)
    n_params = sum(p.numel() for p in model.parameters())
    c = model.config
    print(
        f"wrote {args.output}: nf={c['nf']} kernel_dim={c['kernel_dim']} front_RBs={c['front_RBs']} "
        f"back_RBs={c['back_RBs']} n_blocks={c['KernelExtractor']['n_blocks']} use_vae={c['use_vae']} "
        f"({n_params:,} parameters)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
