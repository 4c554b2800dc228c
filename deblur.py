"""Blind deblurring of photos (deblurring/ holds the algorithms; this is their command line).

The config's ``algorithm`` chooses the function (configs/defaults/deblur.yml); each is an importable
``fn(blurry, kernel_space, *, iterations=..., ...) -> DeblurResult`` and the config section named after
it holds its own keywords:
  alternating  (configs/deblur/default.yml, the default) deblurring.alternating.deblur_alternating:
               coarse-to-fine L0 image step + closed-form kernel step, then hyper-Laplacian non-blind
               deconvolution; with a PSF-type model the PSF found is also encoded as the model's code.
  dip          (configs/deblur/paper.yml) deblurring.dip.deblur_dip: the paper's route (Tran et al.,
               CVPR 2021, Sec. 4.2), an image DIP and a kernel DIP optimised through the frozen kernel
               space; section `dip` (warm-up, noise, network sizes).
  direct       (configs/deblur/fast.yml) deblurring.direct.deblur_direct: free pixels and a free code
               optimised through the frozen kernel space; section `direct`.
dip and direct share the keys outside those sections (iterations, scales, image.lr, kernel.*, loss,
early_stop, ...). Gray images are deblurred as gray, colour as colour.

Examples:
  python deblur.py --input examples/blurry_astronaut.png --output sharp.png
  python deblur.py --input blurry.png --output sharp.png --save-psf psf.png --report run.json
  python deblur.py --input blurry.png --set alternating.cells=true      # one PSF per 128-px cell
  python deblur.py --input blurry.png --config configs/deblur/fast.yml --iters 200
  python deblur.py --input blurry.png --config configs/deblur/paper.yml --device cuda \\
                   --set loss.vgg_weights=vgg19.pth          # the published 5,000-step schedule
  python deblur.py --input-dir photos/ --output-dir sharp/ --skip-existing --report report.json
  python deblur.py --input-dir photos/ --output-dir sharp/ --workers 2      # two processes
  python deblur.py --input-dir photos/ --output-dir sharp/ --shard 3/8      # job 3 of a SLURM array of 8

Folder mode (--input-dir): every image in the folder is deblurred into --output-dir under the same name;
--save-kernel/--save-reblur/--save-psf then name folders. Files that cannot be read (or are too small) are
skipped, listed on stderr and in the report. Exit status: 0 when every image was written (or skipped by
--skip-existing), 1 when some were written and some failed, 2 when none could be deblurred (or on a usage
error). --workers N runs N processes, each loading the model once; --shard K/N takes every N-th image from
the K-th (sorted by name), so N jobs together write exactly the outputs of one run. --threads: threads in
all (default: the cores available); torch runs each op on one thread and the independent pieces (candidate
runs, colour channels, images) are spread over them, so a busy core slows a run down only gently and the
output does not depend on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from utils.batch import check_threads, check_workers, parse_shard
from utils.errors import UserError, run_cli

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "deblur" / "default.yml"


def __getattr__(name: str) -> Any:  # deblur.deblur_image, imported on first use: --help does not pay for torch
    if name != "deblur_image":
        raise AttributeError(f"module 'deblur' has no attribute {name!r}")
    from deblurring.run import deblur_image
    return deblur_image


def build_parser() -> argparse.ArgumentParser:
    """The deblur.py argument parser (README, "Deblurring", shows its flags in use)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="blurry image (PNG/JPEG/TIFF/BMP; 8/16-bit gray, RGB or RGBA)")
    src.add_argument("--input-dir", help="folder of blurry images (every image in it)")
    parser.add_argument("--output", help="sharp output image (default: <input>_deblurred.<ext> beside the input)")
    parser.add_argument("--output-dir", help="output folder for --input-dir (required there)")
    parser.add_argument("--model", help="kernel-space checkpoint (default: the config's model, the shipped one)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML settings (configs/deblur/: "
                        "default.yml, the default; fast.yml: direct; paper.yml: dip, the paper's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set loss.vgg_weights=vgg19.pth (repeatable)")
    parser.add_argument("--iters", type=int,
                        help="optimisation steps (dip, direct: iterations; alternating: alternations per level)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the DIP inputs and weights (direct, alternating: not random)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads in all (default: the cores available to this process)")
    parser.add_argument("--workers", type=int, default=1, help="processes for --input-dir (default 1)")
    parser.add_argument("--shard", metavar="K/N", help="with --input-dir: only every N-th image, from the K-th")
    parser.add_argument("--save-kernel", metavar="PATH",
                        help="save the found code and PSF map (torch .pt; a folder with -dir)")
    parser.add_argument("--save-reblur", metavar="PATH", help="save F(sharp, code), the re-blurred estimate")
    parser.add_argument("--save-psf", metavar="PNG", help="save a picture of the estimated blur (PSF per cell)")
    parser.add_argument("--report", metavar="JSON", help="write a per-image report (sizes, seconds, losses)")
    parser.add_argument("--skip-existing", action="store_true", help="skip images whose output already exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load the model and config, deblur the image(s), write the outputs."""
    args = build_parser().parse_args(argv)
    from deblurring.config import deblur_config  # after parsing: --help does not pay for torch
    from deblurring.run import deblur_files, plan_jobs, summarise_folder
    from utils.config import read_yaml
    from utils.fileio import atomic_write
    from utils.paths import model_path, refuse_overwrite

    if args.iters is not None and args.iters < 1:
        raise UserError(f"--iters must be >= 1, got {args.iters}")
    check_threads(args.threads)
    check_workers(args.workers)
    cfg = deblur_config(read_yaml(args.config), source=args.config, overrides=args.set)
    if args.iters is not None:  # dip, direct: optimisation steps; alternating: alternations per pyramid level
        (cfg["alternating"] if cfg["algorithm"] == "alternating" else cfg)["iterations"] = args.iters
    if args.input_dir is None and (args.shard is not None or args.workers != 1):
        raise UserError("--shard and --workers are for --input-dir")
    if args.input_dir is not None and (args.output_dir is None or args.output is not None):
        raise UserError("--input-dir needs --output-dir (--output is for --input)")
    jobs, others = plan_jobs(args.input or args.input_dir, args.output or args.output_dir,
                             folder=args.input_dir is not None, kernel=args.save_kernel, reblur=args.save_reblur,
                             psf=args.save_psf, shard=parse_shard(args.shard))
    model = args.model or cfg["model"]
    checkpoint = model_path(model)
    refuse_overwrite([p for job in jobs for p in job.outputs()] + [args.report],
                     [job.source for job in jobs] + [checkpoint, args.config])
    if not checkpoint.is_file():
        hint = " (the shipped default model is not there yet; pass --model CKPT)" if args.model is None else ""
        raise UserError(f"{model}: model checkpoint not found{hint}")
    folder = args.input_dir is not None
    reports: list[dict[str, Any]] = [{"input": str(p), "status": "skipped", "reason": "not an image file"}
                                     for p in others]
    entries: list[dict[str, Any] | None] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc="images", unit="img", disable=args.quiet or not folder)
    for index, entry in deblur_files(jobs, checkpoint, cfg, args.device, seed=args.seed, workers=args.workers,
                                     threads=args.threads, skip_existing=args.skip_existing,
                                     progress=not args.quiet and not folder, model=str(model)):
        if entry["status"] == "failed" and not folder:
            raise UserError(entry["reason"])
        entries[index] = entry
        bar.update()
        bar.set_postfix(last=jobs[index].source.name, refresh=False)
        if entry["status"] == "ok" and not folder:
            h, w = entry["size"]
            print(f"{jobs[index].output}: {h}×{w}, {entry['steps']} steps, {entry['seconds']:.1f} s")
    bar.close()
    reports += [e for e in entries if e is not None]
    if args.report:
        summary = {"model": str(model), "config": args.config, "device": args.device, "seed": args.seed,
                   "shard": args.shard, "images": reports}
        atomic_write(args.report, lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"), suffix=".json")
    return summarise_folder(reports) if folder else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
