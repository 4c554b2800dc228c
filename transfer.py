#!/usr/bin/env python
"""Blur transfer and novel-blur synthesis through the encoded blur-kernel space.

Blur transfer takes the blur of a sharp/blurry pair (x, y) and puts it on new sharp images x̂:
ŷ = F(x̂, G(x, y)). The pair and the targets may have different sizes: the code map is resampled
to each target's grid (``models.resample_code``). Novel blur (``--sample N``) draws N code maps from
the model's prior (its learned code prior, as the shipped model has; N(0, I) for a VAE without one)
and writes F(x̂, z) for each. Outputs keep the target's channel
count, alpha channel and bit depth.

Large images are processed in overlapping tiles (``tile``, ``overlap`` in configs/transfer/,
transferring/tiling.py), so a 4K image needs a bounded amount of memory and shows no seams. The
functions are importable: ``transferring.transfer_blur``, ``transferring.synthesize_blur``.

Examples:
    python transfer.py --sharp examples/pair_sharp.png --blur examples/pair_blurry.png \\
        --target examples/target_sharp.png --output target_blurred.png
    python transfer.py --sharp x.png --blur y.png --target a.png --target b.jpg --output-dir out/
    python transfer.py --target examples/target_sharp.png --sample 8 --output-dir novel/ \\
        --model vae.pth --seed 1
    python transfer.py --sharp x.png --blur y.png --target a.png --target b.png --target c.png \\
        --output-dir out/ --shard 2/3 --skip-existing          # job 2 of a SLURM array of 3

Many targets: ``--shard K/N`` blurs only every N-th --target, from the K-th, in the order given,
so N jobs together write exactly the outputs of one run (the same files); each job extracts the
pair's code once. ``--skip-existing`` skips the targets (with --sample: the samples) whose output
file exists. ``--workers W`` runs W processes on this machine, each loading the model once (the
code is extracted once, here, and handed to them). ``--threads N``: torch's threads in all (F is
large convolutions, which intra-op threads speed up; default: torch's own, the cores); with
--workers each process gets N // W of them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from transferring.blur import synthesize_blur, transfer_blur  # noqa: F401  the importable API: transfer.transfer_blur
from transferring.run import DEFAULT_CONFIG, output_paths, sample_files, sample_paths, transfer_files
from transferring.tiling import check_tiling
from utils.batch import check_threads, check_workers, parse_shard, take_shard
from utils.config import load_config
from utils.device import resolve_device
from utils.errors import UserError, run_cli
from utils.paths import model_path, refuse_overwrite
from utils.threads import torch_threads


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of transfer.py (documented by the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sharp", help="sharp image x of the pair whose blur is transferred")
    parser.add_argument("--blur", help="blurry image y of the pair (same size as --sharp)")
    parser.add_argument("--target", action="append", required=True, metavar="XHAT",
                        help="sharp image to blur (repeat for several targets)")
    parser.add_argument("--output", help="output file (one target)")
    parser.add_argument("--output-dir", help="output folder (several targets, or --sample)")
    parser.add_argument("--sample", type=int, metavar="N", help="novel blur: draw N codes from the model's prior")
    parser.add_argument("--model", help="kernel-space checkpoint (default: the config's model, the shipped one)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML settings (configs/transfer/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. overlap=256")
    parser.add_argument("--tile", type=int, help="tile size in pixels for F (multiple of 128; default from config)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled codes (--sample)")
    parser.add_argument("--shard", metavar="K/N",
                        help="only every N-th --target, from the K-th, in the order given (not with --sample)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="skip the targets (with --sample: the samples) whose output file exists")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads in all (default: torch's, the cores available)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes blurring the targets, each loading the model once (default 1)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run blur transfer or novel-blur sampling, write the images → exit status."""
    args = build_parser().parse_args(argv)
    check_threads(args.threads)
    check_workers(args.workers)
    shard = parse_shard(args.shard)
    if args.sample is not None and (shard is not None or args.workers != 1):
        raise UserError("--shard and --workers split the --target files; --sample has one target (drop them)")
    cfg = load_config(args.config, "transfer", args.set)
    tile = args.tile if args.tile is not None else cfg["tile"]
    check_tiling(tile, cfg["overlap"])
    check_tiling(cfg["encode_tile"], cfg["overlap"], "encode_tile")
    settings = {"tile": tile, "overlap": cfg["overlap"], "blend": cfg["blend"], "progress": True}
    if args.sample is not None:
        if args.sharp or args.blur:
            raise UserError("--sample draws codes from the prior; it takes no --sharp/--blur pair")
        if args.output_dir is None or len(args.target) != 1:
            raise UserError("--sample N needs exactly one --target and an --output-dir for the N images")
        if args.sample < 1:
            raise UserError(f"--sample must be a positive number of samples, got {args.sample}")
        paths = sample_paths(args.target[0], args.output_dir, args.sample)
    elif not (args.sharp and args.blur):
        raise UserError("blur transfer needs --sharp X and --blur Y (or --sample N for novel blur)")
    else:  # all targets, not only this shard's: every shard refuses the same clashes
        paths = output_paths(args.target, args.output, args.output_dir, "_transfer")
    model = Path(args.model) if args.model else model_path(cfg["model"])
    refuse_overwrite(paths, [*args.target, args.sharp, args.blur, model, args.config])  # no input replaced
    with torch_threads(args.threads):
        device = resolve_device(args.device)
        if args.sample is not None:
            return sample_files(args.target[0], paths, model, device, seed=args.seed,
                                uniform=cfg["sample"]["uniform"], settings=settings, skip_existing=args.skip_existing)
        return transfer_files((args.sharp, args.blur), take_shard(list(zip(args.target, paths)), shard), model,
                              device, settings=settings, encode_tile=cfg["encode_tile"],
                              min_pair_size=cfg["min_pair_size"], skip_existing=args.skip_existing,
                              workers=args.workers, threads=args.threads, shard=args.shard)


if __name__ == "__main__":
    sys.exit(run_cli(main))
