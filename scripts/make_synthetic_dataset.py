"""Write a folder of synthetic (sharp, blurry, kernel) training pairs in the REDS-like layout.

    OUT/sharp/000/00000000.png   OUT/blur/000/00000000.png   OUT/kernels/000/00000000.npy

Sample i is a pure function of (--seed, i): the same command writes the same files. The generator
settings are those of the `synthetic:` section of configs/defaults/dataset.yml; change any with
--set (e.g. --set synthetic.noise_sigma=[0.01,0.01]).

Examples:
    python scripts/make_synthetic_dataset.py --deadleaves --out datasets/synth --num 2000 --seed 0
    python scripts/make_synthetic_dataset.py --sharp-dir my_photos/ --out datasets/mine --num 500 --size 256
    python scripts/create_lmdb.py --img_folder datasets/synth/sharp --save_path datasets/synth_sharp.lmdb
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from data.build import build_synthetic
from data.synthetic import export_synthetic_dataset
from utils.config import build_config, load_schema
from utils.errors import UserError, run_cli
from utils.paths import refuse_overwrite


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and write the dataset."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sharp-dir", help="folder of sharp images to crop from (searched recursively)")
    source.add_argument("--deadleaves", action="store_true", help="procedural dead-leaves sharp images")
    parser.add_argument("--out", required=True, help="output folder (gets sharp/, blur/, kernels/)")
    parser.add_argument("--num", type=int, required=True, help="number of pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=256, help="crop size S of the written images")
    parser.add_argument("--kernel-size", type=int, default=None, help="kernel size K (odd; default from config)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of configs/defaults/dataset.yml, e.g. synthetic.quantize=false")
    parser.add_argument("--overwrite", action="store_true", help="write into an OUT that already has pairs")
    args = parser.parse_args(argv)
    if args.num < 1 or args.size < 1:
        raise UserError(f"--num ({args.num}) and --size ({args.size}) must be positive")
    out = Path(args.out)
    refuse_overwrite([out / "sharp", out / "blur", out / "kernels"], [args.sharp_dir])  # never the photos it reads
    if (out / "sharp").exists() and not args.overwrite:
        raise UserError(f"{out}: already holds sharp/ (use --overwrite to write into it)")
    synthetic = {"num_samples": args.num, "source": "deadleaves" if args.deadleaves else "folder",
                 "sharp_dir": args.sharp_dir}
    if args.kernel_size is not None:
        synthetic["kernel_size"] = args.kernel_size
    opt = build_config(load_schema("dataset"), {"mode": "synthetic", "HQ_size": args.size, "synthetic": synthetic},
                       args.set, source="make_synthetic_dataset")
    dataset = build_synthetic(opt, args.seed, "train")
    count = export_synthetic_dataset(dataset, out)
    print(f"wrote {count} pairs to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
