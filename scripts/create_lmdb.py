"""Pack a folder of images into an LMDB (BasicSR/EDVR layout: raw RGB values + meta_info.txt).

Layouts:
    REDS   DIR/<clip>/<frame>.png            e.g. train_sharp/000/00000000.png -> key 000_00000000
    GOPRO  DIR/<scene>/{sharp,blur}/*.png    one LMDB per side: pass --side sharp or --side blur
    flat   DIR/*.png                         key = file name without extension

Every image is decoded first: a corrupt or unreadable one stops with its path named (exit 2) and
nothing is left at --save_path. The LMDB is built under a temporary name and renamed at the end.
--save_path may not lie inside --img_folder (nor the other way round); an existing --save_path is
refused unless --overwrite, and even then only an LMDB folder (one holding data.mdb) is replaced.

Examples:
    python scripts/create_lmdb.py --img_folder REDS/train_sharp --save_path datasets/REDS/train_sharp.lmdb
    python scripts/create_lmdb.py --img_folder GOPRO_Large/train --side blur --save_path datasets/GOPRO/train_blur.lmdb
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from data.lmdb_io import GOPRO_SIDES, create_lmdb
from utils.errors import UserError, run_cli
from utils.paths import refuse_inside, refuse_overwrite


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and build the LMDB."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--img_folder", required=True, help="folder of images (REDS, GOPRO or flat layout)")
    parser.add_argument("--save_path", required=True, help="output LMDB folder, e.g. train_sharp.lmdb")
    parser.add_argument("--name", default=None, help="dataset name stored in info.yml (default: file stem)")
    parser.add_argument("--side", choices=GOPRO_SIDES, default=None, help="GOPRO trees: which side to pack")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --save_path")
    args = parser.parse_args(argv)
    save_path = Path(args.save_path)
    refuse_inside([save_path], [args.img_folder])  # the LMDB would become part of the folder it packs
    refuse_overwrite([save_path], [args.img_folder])  # --overwrite would replace the images themselves
    if args.overwrite and save_path.exists() and not (save_path / "data.mdb").is_file():
        raise UserError(f"{save_path}: exists and is not an LMDB folder (no data.mdb); --overwrite only replaces "
                        "an LMDB, choose another --save_path")
    count = create_lmdb(args.img_folder, args.save_path, name=args.name, side=args.side, overwrite=args.overwrite)
    print(f"wrote {count} images to {args.save_path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
