"""Large-blur benchmark: camera-shake kernels of 31–101 px with clipped highlights.

What users bring beyond Levin's small kernels: long camera-shake blur, lights that clip. Sharp
photos: scikit-image's bundled images (the evaluation set; never used for training), a centre square
resized to ``--size`` (plus the kernel's margin, so the blur is a valid convolution with no border
artefact). Each photo is brightened so that ``--clip`` of its pixels
exceed 1 (an exposure gain, at most 2×), those pixels made lights ``LIGHT_GAIN`` times brighter still,
blurred by a camera-shake kernel of data/kernels.py spanning 60–100 % of its side, given Gaussian
noise (σ = 0.01), then clipped to [0, 1] and quantised to 8 bits; the ground truth is the brightened
sharp photo clipped to [0, 1]. Methods: the blurry input; ours (``deblurring.run.deblur_image`` with a
preset, by default configs/deblur/default.yml, what ``deblur.py`` runs by default); and the
final non-blind step of that preset given the TRUE kernel (an upper bound of what the kernel estimate
can give).

Writes bench/results/large_blur_<tag>.md (a table per kernel size), .json (every number) and .png
(one example per kernel size: sharp, blurry, ours, true and found PSF), unless --out says otherwise.

  python bench/large_blur.py --threads 2 --tag default
  python bench/large_blur.py --images astronaut,coffee --kernel-sizes 75 --set alternating.iterations=4 --tag dev
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.deblur_bench import NOISE_SIGMA, noisy_8bit, scores, sharp_photo, write_png, write_results  # noqa: E402
from data.kernels import shake_kernel  # noqa: E402
from data.synthetic import blur_valid  # noqa: E402
from utils.errors import run_cli  # noqa: E402

PHOTOS = ("astronaut", "camera", "immunohistochemistry", "hubble_deep_field", "retina", "rocket")
KERNEL_SIZES = (31, 51, 75, 101)
LIGHT_GAIN = 2.0  # the pixels brightened past 1 are lights this much brighter: their blur clips too
OUT_DIR = REPO / "bench" / "results"


def make_case(name: str, size: int, kernel_size: int, clip: float, rng: np.random.Generator) -> dict[str, Any]:
    """One case: sharp (size², clipped highlights), blurry (size², clipped, noisy, 8-bit), true kernel."""
    r = kernel_size // 2
    photo = sharp_photo(name, 1)
    big = cv2.resize(photo, (size + 2 * r, size + 2 * r), interpolation=cv2.INTER_AREA)
    brightest = np.quantile(big.max(axis=2), 1.0 - clip) if clip > 0 else 1.0
    bright = big * float(np.clip(1.0 / max(brightest, 1e-6), 1.0, 2.0))
    bright = bright * np.where(bright.max(axis=2, keepdims=True) >= 1, LIGHT_GAIN, 1.0)  # lights, not just white
    kernel = shake_kernel(rng, kernel_size, intensity=1.0)
    blurry = noisy_8bit(blur_valid(bright, kernel), rng)
    sharp = np.clip(bright[r:r + size, r:r + size], 0, 1)
    return {"name": name, "kernel_size": kernel_size, "sharp": sharp.astype(np.float32),
            "blurry": blurry, "kernel": kernel,
            "clipped": float((blurry >= 1).any(axis=2).mean())}


def support_side(psf: np.ndarray, floor: float = 0.05) -> int:
    """Side of the smallest centred square holding a PSF's values above ``floor`` × its peak
    (:func:`deblurring.alternating.support_side` of a NumPy PSF)."""
    from deblurring.alternating import support_side as side_of

    return side_of(torch.from_numpy(np.asarray(psf, dtype=np.float32)), floor)


def true_kernel_step(cfg: dict[str, Any]):
    """The preset's final non-blind step given the true kernel: case → H×W×3 estimate."""
    from data.image_io import to_numpy, to_tensor
    from deblurring.alternating import final_deconvolution

    def run(case: dict[str, Any]) -> np.ndarray:
        sharp = final_deconvolution(to_tensor(case["blurry"]), torch.from_numpy(case["kernel"]),
                                    **{k: v for k, v in cfg["alternating"].items() if k.startswith("final_")})
        return to_numpy(sharp)

    return run


def _tile(image: np.ndarray, label: str, side: int = 180) -> np.ndarray:
    tile = cv2.resize((np.clip(image, 0, 1) * 255).astype(np.uint8), (side, side), interpolation=cv2.INTER_AREA)
    tile = np.ascontiguousarray(np.repeat(tile[:, :, None], 3, 2) if tile.ndim == 2 else tile[:, :, ::-1])
    cv2.putText(tile, label[:22], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 255, 255), 1)
    return tile


def write_figure(path: Path, examples: list[dict[str, Any]]) -> None:
    """One row per kernel size: sharp, blurry, ours, true PSF, found PSF (each PSF scaled to its peak)."""

    rows = []
    for ex in examples:
        psfs = [k / max(float(k.max()), 1e-12) for k in (ex["kernel"], ex["psf"])]
        rows.append(np.concatenate([
            _tile(ex["sharp"], f"sharp {ex['name']}"),
            _tile(ex["blurry"], f"blurry {ex['psnr_blurry']:.2f} dB"),
            _tile(ex["ours"], f"ours {ex['psnr_ours']:.2f} dB"),
            _tile(psfs[0], f"true {ex['kernel_size']} px"),
            _tile(psfs[1], f"found {ex['found_psf_size']} px"),
        ], axis=1))
    write_png(path, np.concatenate(rows, axis=0))


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per kernel size (and 'all'): mean PSNR of each method, mean/min gain of ours, seconds."""
    out: dict[str, dict[str, float]] = {}
    for key in sorted({r["kernel_size"] for r in rows}) + ["all"]:
        mine = [r for r in rows if key == "all" or r["kernel_size"] == key]
        gains = [r["psnr_ours"] - r["psnr_blurry"] for r in mine]
        out[str(key)] = {
            "images": len(mine),
            **{f"psnr_{m}": float(np.mean([r[f"psnr_{m}"] for r in mine])) for m in ("blurry", "ours", "true")},
            "gain_mean": float(np.mean(gains)), "gain_min": float(np.min(gains)),
            "seconds": float(np.mean([r["seconds"] for r in mine])),
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the table, the numbers and the figure."""
    from bench.deblur_bench import add_preset_arguments, load_preset, ours

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_preset_arguments(parser, "large_blur")
    parser.add_argument("--images", default=",".join(PHOTOS), help="comma-separated skimage.data names")
    parser.add_argument("--kernel-sizes", default=",".join(map(str, KERNEL_SIZES)), help="odd kernel sides")
    parser.add_argument("--size", type=int, default=640,
                        help="side of the square test images (kernels up to 101 px are searched from 606 px up)")
    parser.add_argument("--clip", type=float, default=0.02, help="share of the sharp pixels brightened past 1")
    parser.add_argument("--no-true-kernel", action="store_true", help="skip the true-kernel row")
    parser.add_argument("--seed", type=int, default=0, help="seed of kernels and noise")
    args = parser.parse_args(argv)

    cfg, model, kernel_space, device = load_preset(args)
    run_ours = ours(kernel_space, cfg, device, args.seed)
    run_true = None if args.no_true_kernel else true_kernel_step(cfg)
    rng = np.random.default_rng(args.seed)
    sizes = [int(s) for s in args.kernel_sizes.split(",") if s.strip()]
    names = [n.strip() for n in args.images.split(",") if n.strip()]
    rows: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    for kernel_size in sizes:
        for name in names:
            case = make_case(name, args.size, kernel_size, args.clip, rng)
            start = time.perf_counter()
            estimate = run_ours(case)
            seconds = time.perf_counter() - start
            row = {"image": name, "kernel_size": kernel_size, "clipped": case["clipped"], "seconds": seconds,
                   "psnr_blurry": scores(case["blurry"], case["sharp"])[0],
                   "psnr_ours": scores(estimate, case["sharp"])[0],
                   "psnr_true": scores(run_true(case), case["sharp"])[0] if run_true else float("nan"),
                   "found_psf_size": support_side(case["psf"])}
            rows.append(row)
            print(f"{name:>22} {kernel_size:>4} px  blurry {row['psnr_blurry']:6.2f}  ours {row['psnr_ours']:6.2f}  "
                  f"true kernel {row['psnr_true']:6.2f} dB  PSF {row['found_psf_size']} px  {seconds:6.1f} s",
                  flush=True)
            if not any(ex["kernel_size"] == kernel_size for ex in examples):
                examples.append({**case, **row, "ours": estimate})

    summary = summarise(rows)
    lines = [
        f"# Large-blur benchmark ({args.tag})",
        "",
        f"model `{Path(model).name}`, preset `{Path(args.config).name}` {' '.join(args.set)}; {len(names)} skimage "
        f"photos {args.size}², camera-shake kernels {', '.join(map(str, sizes))} px, highlights: {args.clip:.0%} of "
        f"the sharp pixels brightened past 1, noise σ={NOISE_SIGMA}, 8-bit; device {device}, {args.threads} threads; "
        f"seed {args.seed}. PSNR (dB) on RGB in [0, 1], no shift search.",
        "",
        "| kernel px | images | blurry | ours | gain (mean) | gain (min) | true kernel | s/image |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, s in summary.items():
        lines.append(f"| {key} | {s['images']} | {s['psnr_blurry']:.2f} | {s['psnr_ours']:.2f} | "
                     f"{s['gain_mean']:+.2f} | {s['gain_min']:+.2f} | {s['psnr_true']:.2f} | {s['seconds']:.1f} |")
    lines += ["", "| image | kernel px | clipped | blurry | ours | true kernel | PSF found (support, px) | s |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['image']} | {r['kernel_size']} | {r['clipped']:.1%} | {r['psnr_blurry']:.2f} | "
              f"{r['psnr_ours']:.2f} | {r['psnr_true']:.2f} | {r['found_psf_size']} | {r['seconds']:.1f} |"
              for r in rows]
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    write_results(out, f"large_blur_{args.tag}", text, {"args": vars(args), "summary": summary, "rows": rows})
    write_figure(out / f"large_blur_{args.tag}.png", examples)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
