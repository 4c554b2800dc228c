#!/usr/bin/env python
"""Build a new paired dataset by transferring the blur of random source pairs onto new sharp images.

For every sharp image x̂ of --targets (``--per-target K`` times) a pair (x, y) is drawn from the
source dataset and the blurry image ŷ = F(x̂, G(x, y)) is written beside x̂ (see transfer.py).
Sample i draws its pair from a generator seeded with (--seed, i): the same command writes the same
dataset. The output is the folder tree read by ``PairedFolderDataset`` (8-bit RGB PNG)

    OUT/sharp/000/00000000.png   OUT/blur/000/00000000.png

or, with ``--format lmdb``, the LMDB pair OUT/sharp.lmdb + OUT/blur.lmdb read by
``PairedLMDBDataset``; OUT/augment_info.yml records, for each sample, its index, its target file
and the source pair it took the blur from.

``--from-prior`` needs no source pairs: sample i blurs its target with a code map drawn from the
model's prior instead (``transferring.sample_codes``, seeded by (--seed, i): the learned code prior's
smooth field, or N(0, I) for a VAE without one), recorded as ``prior_seed``.

``--shard K/N`` writes only the samples i with i % N == K - 1 (i: the sample's index in the whole
dataset, K in 1..N), each shard into its own --out (e.g. --out aug/shard_3). Samples keep their
global index in their file names and in augment_info.yml (which also records "shard": "K/N") and
draw their pairs from (--seed, i) as in one run, so N shards together hold exactly the samples of
one run, and their folder trees merge by copying (``cp -r aug/shard_*/sharp aug/shard_*/blur
aug/all/``: no two shards write one file name; each augment_info.yml lists its own samples).
``--threads N`` sets torch's CPU threads (F and G are large convolutions; default: torch's own).

Examples:
    python scripts/augment_dataset.py --source datasets/synth --targets my_photos/ --out datasets/aug
    python scripts/augment_dataset.py --source-lmdb train_sharp.lmdb train_blur.lmdb --targets photos/ \\
        --out datasets/aug --format lmdb --per-target 3 --seed 1
    python scripts/augment_dataset.py --from-prior --targets my_photos/ --out datasets/novel --per-target 4
    python scripts/augment_dataset.py --source datasets/synth --targets my_photos/ --out aug/shard_3 \\
        --shard 3/8                   # job 3 of a SLURM array of 8
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import Dataset
from tqdm import tqdm

from data.image_io import list_images, read_image, write_image
from data.lmdb_io import create_lmdb
from data.paired import PairedFolderDataset, PairedLMDBDataset
from models import KernelSpace, code_grid_size
from transferring import DEFAULT_CONFIG, apply_code, check_tiling, extract_code, load_model, sample_codes
from utils.batch import check_threads, parse_shard, take_shard
from utils.config import load_config
from utils.device import resolve_device
from utils.errors import UserError, run_cli
from utils.fileio import atomic_write
from utils.paths import model_path as model_path_from_config
from utils.paths import refuse_overwrite
from utils.threads import torch_threads

FRAMES_PER_CLIP = 100
FORMATS = ("folder", "lmdb")


def open_source(folder: str | None = None, lmdbs: Sequence[str] | None = None) -> Dataset:
    """The source pairs, whole images in a fixed order: a folder tree (root/sharp, root/blur) or
    a (sharp LMDB, blurry LMDB) pair. Samples are dicts with "sharp", "blur" (3, H, W) and "key"."""
    if folder is not None:
        return PairedFolderDataset(folder, crop_size=None, train=False)
    if lmdbs is None or len(lmdbs) != 2:
        raise UserError("give the source pairs as --source DIR or --source-lmdb SHARP.lmdb BLUR.lmdb")
    return PairedLMDBDataset(lmdbs[0], lmdbs[1], crop_size=None, train=False)


def augment_dataset(
    source: Dataset | None,
    targets: Sequence[str | os.PathLike],
    kernel_space: KernelSpace,
    out: str | os.PathLike,
    per_target: int = 1,
    seed: int = 0,
    fmt: str = "folder",
    tile: int | None = 512,
    overlap: int = 128,
    encode_tile: int | None = 2048,
    progress: bool = True,
    model_name: str = "",
    shard: tuple[int, int] | None = None,
) -> int:
    """Write the augmented dataset to ``out``; returns the number of pairs written.

    ``source``: paired dataset of whole images (see :func:`open_source`); ``targets``: sharp image
    files; sample ``i`` blurs ``targets[i // per_target]`` with the code of source pair
    ``default_rng([seed, i]).integers(len(source))`` (``source`` None: with a code drawn from the model's
    prior, seeded by ``default_rng([seed, i])``). ``fmt``: "folder" (the tree of the module
    docstring) or "lmdb" (sharp.lmdb and blur.lmdb built from a temporary tree). ``model_name`` is
    recorded in augment_info.yml. ``shard`` (K, N): only the samples with ``i % N == K - 1``, under
    the same names as in the whole dataset (a shard with no sample is a UserError).
    """
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if per_target < 1:
        raise UserError(f"--per-target must be a positive integer, got {per_target}")
    if source is not None and len(source) == 0:
        raise UserError("the source dataset holds no pairs")
    if not targets:
        raise UserError("no target images to blur")
    total = len(targets) * per_target
    indices = take_shard(range(total), shard)
    if not indices:
        raise UserError(f"--shard {shard[0]}/{shard[1]} holds no samples: the dataset has only {total}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tree = Path(tempfile.mkdtemp(prefix=".augment.", dir=out))  # moved into place only when complete
    device = next(kernel_space.parameters()).device
    records = []
    try:
        for index in tqdm(indices, desc=f"augment {out}", unit="pair", disable=not progress):
            target_path = Path(targets[index // per_target])
            target = read_image(target_path)
            sharp = torch.from_numpy(target.rgb.transpose(2, 0, 1).copy())[None]
            if source is None:
                prior_seed = int(np.random.default_rng([seed, index]).integers(2**62))
                code = sample_codes(kernel_space, code_grid_size(*sharp.shape[-2:]), 1, prior_seed)
                origin = {"prior_seed": prior_seed}
            else:
                pair_index = int(np.random.default_rng([seed, index]).integers(len(source)))
                pair = source[pair_index]
                code = extract_code(kernel_space, pair["sharp"][None], pair["blur"][None], encode_tile, overlap)
                origin = {"source_index": pair_index, "source_key": str(pair["key"])}
            blurry = apply_code(kernel_space, sharp, code.to(device), tile, overlap).clamp(0, 1)
            rel = Path(f"{index // FRAMES_PER_CLIP:03d}") / f"{index:08d}.png"
            write_image(tree / "sharp" / rel, target.rgb)
            write_image(tree / "blur" / rel, blurry[0].permute(1, 2, 0).cpu().numpy())
            records.append({"index": index, "file": rel.as_posix(), "target": str(target_path), **origin})
        for side in ("sharp", "blur"):
            if fmt == "lmdb":
                create_lmdb(tree / side, out / f"{side}.lmdb", name=f"augmented_{side}", overwrite=True,
                            progress=progress)
            else:
                if (out / side).exists():  # --overwrite: replace the previous tree
                    shutil.rmtree(out / side)
                os.replace(tree / side, out / side)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    info = {"count": len(indices), "total": total, "shard": None if shard is None else f"{shard[0]}/{shard[1]}",
            "seed": seed, "per_target": per_target, "format": fmt, "model": model_name, "samples": records}
    atomic_write(out / "augment_info.yml", lambda tmp: tmp.write_text(yaml.safe_dump(info, sort_keys=False)),
                 suffix=".yml")
    return len(indices)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and write the augmented dataset."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--source", help="paired folder tree with sharp/ and blur/ (PairedFolderDataset)")
    source.add_argument("--source-lmdb", nargs=2, metavar=("SHARP", "BLUR"), help="sharp and blurry LMDBs")
    source.add_argument("--from-prior", action="store_true", help="no source pairs: codes drawn from the model's prior")
    parser.add_argument("--targets", required=True, help="folder of sharp images to blur (searched recursively)")
    parser.add_argument("--out", required=True,
                        help="output folder (with --shard, one per shard: e.g. --out aug/shard_3)")
    parser.add_argument("--format", default="folder", choices=FORMATS, help="folder tree or LMDB pair")
    parser.add_argument("--per-target", type=int, default=1, help="blurry versions written per target image")
    parser.add_argument("--model", help="kernel-space checkpoint (default: the shipped model)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="transfer settings (tile, overlap)")
    parser.add_argument("--tile", type=int, help="tile size for F (multiple of 128; default from config)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--overwrite", action="store_true", help="write into an OUT that already holds a dataset")
    parser.add_argument("--shard", metavar="K/N",
                        help="only the samples i with i %% N == K-1 (global names kept; its own --out per shard)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's, the cores available)")
    args = parser.parse_args(argv)
    check_threads(args.threads)
    shard = parse_shard(args.shard)
    cfg = load_config(args.config, "transfer")
    tile = args.tile if args.tile is not None else cfg["tile"]
    check_tiling(tile, cfg["overlap"])
    out = Path(args.out)
    refuse_overwrite(  # what this writes (or replaces with --overwrite) may hold no input
        [out / name for name in ("sharp", "blur", "sharp.lmdb", "blur.lmdb", "augment_info.yml")],
        [args.source, *(args.source_lmdb or ()), args.targets, args.model or model_path_from_config(cfg["model"]),
         args.config],
    )
    if any((out / name).exists() for name in ("sharp", "blur", "sharp.lmdb", "blur.lmdb")) and not args.overwrite:
        raise UserError(f"{out}: already holds a dataset (use --overwrite to write into it)")
    targets = list_images(args.targets, recursive=True)
    if not targets:
        raise UserError(f"{args.targets}: no images found (expected PNG/JPEG/TIFF/BMP files)")
    pairs = None if args.from_prior else open_source(args.source, args.source_lmdb)
    device = resolve_device(args.device)
    model_path = Path(args.model) if args.model else model_path_from_config(cfg["model"])
    model = load_model(model_path, device)
    with torch_threads(args.threads):
        count = augment_dataset(pairs, targets, model, out, args.per_target, args.seed, args.format, tile,
                                cfg["overlap"], cfg["encode_tile"], model_name=str(model_path), shard=shard)
    where = f", shard {args.shard}" if shard is not None else ""
    print(f"wrote {count} pairs to {out} ({args.format}{where})")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
