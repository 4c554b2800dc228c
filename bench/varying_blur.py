"""Spatially varying blur benchmark: blur that changes across the photo (issue: blur that is not one
convolution).

Two kinds of case, each on scikit-image's bundled photos (the evaluation set; never used for
training), a centre square resized to ``--size`` plus a margin (so no blur reaches past the border):

- ``blend``: two camera-shake kernels (data/kernels.py, ``BLEND_KERNEL`` px) blended across the
  photo along a random direction, y = (1 − t)·(x ⊛ k1) + t·(x ⊛ k2) with t going from 0 to 1 over the
  frame; the true PSF at a point is (1 − t)·k1 + t·k2;
- ``camera``: the photo averaged over ``POSES`` poses of a random camera path (the physical
  trajectory of data/kernels.py) of in-plane rotations about the centre (spanning up to
  ``MAX_ROTATION`` degrees) and translations (up to ``MAX_SHIFT`` px); the true PSF at a point is the
  histogram of where the poses move it.

Then Gaussian noise (σ = 0.01), clipping and 8-bit quantisation. Methods: the blurry input and ours
(``deblurring.run.deblur_image`` with a preset, by default configs/deblur/default.yml). PSNR after
the best integer shift (up to ``SHIFT_SEARCH`` px: a varying blur moves the photo a little, and no
method should be charged for that), on the interior ``SCORE_BORDER`` px from the border.

Writes bench/results/varying_blur_<tag>.md (a table per kind), .json (every number) and .png (one
example per kind: sharp, blurry, ours, the true PSF field and the found one on the 128-px cells).

  python bench/varying_blur.py --threads 2 --tag default
  python bench/varying_blur.py --set alternating.cells=true --tag cells
"""

from __future__ import annotations

import argparse
import math
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

from bench.deblur_bench import NOISE_SIGMA, noisy_8bit, sharp_photo, write_png, write_results  # noqa: E402
from data.kernels import physical_trajectory, shake_kernel, splat_points  # noqa: E402
from data.synthetic import blur_valid  # noqa: E402
from models.psf_ops import CELL  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402

KINDS = ("blend", "camera")
PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "immunohistochemistry")
BLEND_KERNEL = 25   # side of the two blended kernels (px)
MAX_ROTATION = 3.0  # degrees: the largest span of the camera's in-plane rotation
MAX_SHIFT = 20.0    # px: the largest span of its translation
POSES = 64          # poses averaged along the camera path
SHIFT_SEARCH = 4    # px: PSNR is taken at the best integer shift within this reach
SCORE_BORDER = 16   # px from the border that are not scored
FIELD_PSF = 41      # side of the drawn PSFs
OUT_DIR = REPO / "bench" / "results"


def cell_centres(size: int) -> list[tuple[float, float]]:
    """(row, col) pixel centres of the 128-px code cells of a size² image, row-major."""
    n = math.ceil(size / CELL)
    return [(min(i * CELL + CELL / 2, size - 1) - 0.5, min(j * CELL + CELL / 2, size - 1) - 0.5)
            for i in range(n) for j in range(n)]


def blend_case(photo: np.ndarray, size: int, rng: np.random.Generator) -> dict[str, Any]:
    """A ``blend`` case of a photo: sharp, blurry (size², 8-bit), and its true PSF field."""
    k1, k2 = (shake_kernel(rng, BLEND_KERNEL, float(rng.uniform(0.6, 1.0))) for _ in range(2))
    r = BLEND_KERNEL // 2
    big = cv2.resize(photo, (size + 2 * r, size + 2 * r), interpolation=cv2.INTER_AREA)
    angle = rng.uniform(0, 2 * np.pi)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    along = np.cos(angle) * cols + np.sin(angle) * rows
    t = ((along - along.min()) / (along.max() - along.min())).astype(np.float32)[:, :, None]
    blurry = (1 - t) * blur_valid(big, k1) + t * blur_valid(big, k2)
    field = [(1 - t[int(round(y)), int(round(x)), 0]) * k1 + t[int(round(y)), int(round(x)), 0] * k2
             for y, x in cell_centres(size)]
    return {"sharp": big[r:r + size, r:r + size], "blurry": noisy_8bit(blurry, rng), "field": field}


def camera_path(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A camera path of :data:`POSES` poses: (angles in degrees (P,), translations (P, 2) px as (x, y)),
    each centred on its mean (no net shift or turn)."""
    shift = physical_trajectory(rng, POSES)
    shift = shift * (rng.uniform(0.5, 1.0) * MAX_SHIFT / max(np.ptp(shift, axis=0).max(), 1e-9))
    turn = physical_trajectory(rng, POSES)[:, 0]
    turn = turn * (rng.uniform(0.5, 1.0) * MAX_ROTATION / max(np.ptp(turn), 1e-9))
    return turn - turn.mean(), shift - shift.mean(axis=0)


def _pose_matrix(angle: float, shift: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D(centre, float(angle), 1.0)
    matrix[:, 2] += shift
    return matrix


def camera_case(photo: np.ndarray, size: int, rng: np.random.Generator) -> dict[str, Any]:
    """A ``camera`` case of a photo: sharp, blurry (size², 8-bit), and its true PSF field."""
    margin = int(MAX_SHIFT + size * math.radians(MAX_ROTATION)) + 4
    side = size + 2 * margin
    big = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    angles, shifts = camera_path(rng)
    centre = ((side - 1) / 2, (side - 1) / 2)
    total = np.zeros_like(big)
    matrices = [_pose_matrix(a, s, centre) for a, s in zip(angles, shifts)]
    for matrix in matrices:
        total += cv2.warpAffine(big, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    blurry = (total / len(matrices))[margin:margin + size, margin:margin + size]
    field = []
    for y, x in cell_centres(size):
        point = np.array([x + margin, y + margin, 1.0])
        # warpAffine: out(p) = in(M⁻¹ p), so a pose blurs out(p) with in(p − q), q = p − M⁻¹ p
        offsets = np.array([point[:2] - cv2.invertAffineTransform(m) @ point for m in matrices])
        c = (FIELD_PSF - 1) / 2
        field.append(splat_points(np.clip(offsets + c, 0, FIELD_PSF - 1), np.full(len(offsets), 1 / len(offsets)),
                                  FIELD_PSF).astype(np.float32))
    return {"sharp": big[margin:margin + size, margin:margin + size], "blurry": noisy_8bit(blurry, rng),
            "field": field}


def make_case(kind: str, name: str, size: int, rng: np.random.Generator) -> dict[str, Any]:
    """One case of a kind (``blend`` or ``camera``) on the photo ``name``."""
    if kind not in KINDS:
        raise UserError(f"--kinds: unknown kind {kind!r}, expected some of {', '.join(KINDS)}")
    photo = sharp_photo(name, 1)
    case = (blend_case if kind == "blend" else camera_case)(photo, size, rng)
    return {"kind": kind, "name": name, **case}


def shifted_psnr(estimate: np.ndarray, sharp: np.ndarray, reach: int = SHIFT_SEARCH,
                 border: int = SCORE_BORDER) -> float:
    """PSNR (dB, data range 1) of an H×W×3 estimate against the sharp image at the best integer
    shift within ``reach`` px, on the pixels ``border`` px (≥ reach) from the border."""
    h, w = sharp.shape[:2]
    reference = sharp[border:h - border, border:w - border].astype(np.float64)
    best = -math.inf
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            moved = estimate[border + dy:h - border + dy, border + dx:w - border + dx].astype(np.float64)
            mse = float(np.mean((moved - reference) ** 2))
            best = max(best, 10 * math.log10(1.0 / max(mse, 1e-12)))
    return best


def psf_field_image(field: Sequence[np.ndarray], side: int = FIELD_PSF, zoom: int = 2) -> np.ndarray:
    """PSFs of the cells (row-major, n × n of them, any odd sides) as one picture: each zero-padded or
    cut about its centre to ``side`` and drawn by :func:`models.psf_probe.render_psfs`."""
    from deblurring.alternating import resize_support
    from models.psf_probe import render_psfs

    n = int(round(math.sqrt(len(field))))
    psfs = torch.stack([resize_support(torch.as_tensor(np.asarray(k, dtype=np.float32)), side) for k in field])
    return render_psfs(psfs.view(n, n, side, side), scale=zoom)


def write_figure(path: Path, examples: list[dict[str, Any]], side: int = 220) -> None:
    """One row per kind: sharp, blurry, ours, the true PSF field, the found PSF field."""
    from bench.large_blur import _tile

    rows = []
    for ex in examples:
        rows.append(np.concatenate([
            _tile(ex["sharp"], f"sharp {ex['name']}", side),
            _tile(ex["blurry"], f"{ex['kind']} {ex['psnr_blurry']:.2f} dB", side),
            _tile(ex["ours"], f"ours {ex['psnr_ours']:.2f} dB", side),
            _tile(psf_field_image(ex["field"]), "true PSF field", side),
            _tile(psf_field_image(ex["found_field"]), "found PSF field", side),
        ], axis=1))
    write_png(path, np.concatenate(rows, axis=0))


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per kind (and 'all'): mean PSNRs, mean/min gain of ours, seconds."""
    out: dict[str, dict[str, float]] = {}
    for key in [k for k in KINDS if any(r["kind"] == k for r in rows)] + ["all"]:
        mine = [r for r in rows if key == "all" or r["kind"] == key]
        gains = [r["psnr_ours"] - r["psnr_blurry"] for r in mine]
        out[key] = {"images": len(mine),
                    "psnr_blurry": float(np.mean([r["psnr_blurry"] for r in mine])),
                    "psnr_ours": float(np.mean([r["psnr_ours"] for r in mine])),
                    "gain_mean": float(np.mean(gains)), "gain_min": float(np.min(gains)),
                    "seconds": float(np.mean([r["seconds"] for r in mine]))}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the table, the numbers and the figure."""
    from bench.deblur_bench import add_preset_arguments, load_preset
    from data.image_io import to_numpy, to_tensor
    from deblurring.run import deblur_image

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_preset_arguments(parser, "varying_blur")
    parser.add_argument("--images", default=",".join(PHOTOS), help="comma-separated skimage.data names")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds: blend, camera")
    parser.add_argument("--size", type=int, default=512, help="side of the square test images (px, >= 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of kernels, camera paths and noise")
    args = parser.parse_args(argv)
    if args.size < 64:
        raise UserError(f"--size {args.size}: expected at least 64 px")
    cfg, model, kernel_space, device = load_preset(args)
    rng = np.random.default_rng(args.seed)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    names = [n.strip() for n in args.images.split(",") if n.strip()]
    rows: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    for kind in kinds:
        for name in names:
            case = make_case(kind, name, args.size, rng)
            start = time.perf_counter()
            result = deblur_image(to_tensor(case["blurry"]), kernel_space, cfg, device, progress=False, seed=args.seed)
            seconds = time.perf_counter() - start
            estimate = to_numpy(result.sharp)
            found = [] if result.psf is None else [p.numpy() for p in result.psf[0].flatten(0, 1)]
            row = {"kind": kind, "image": name, "seconds": seconds,
                   "psnr_blurry": shifted_psnr(case["blurry"], case["sharp"]),
                   "psnr_ours": shifted_psnr(estimate, case["sharp"])}
            rows.append(row)
            print(f"{kind:>7} {name:>22}  blurry {row['psnr_blurry']:6.2f}  ours {row['psnr_ours']:6.2f} dB  "
                  f"{seconds:6.1f} s", flush=True)
            if not any(ex["kind"] == kind for ex in examples) and found:
                examples.append({**case, **row, "ours": estimate, "found_field": found})

    summary = summarise(rows)
    lines = [
        f"# Spatially varying blur benchmark ({args.tag})",
        "",
        f"model `{Path(model).name}`, preset `{Path(args.config).name}` {' '.join(args.set)}; {len(names)} skimage "
        f"photos {args.size}²; blend: two {BLEND_KERNEL}-px camera-shake kernels blended across the frame; camera: "
        f"{POSES} poses of a camera path, rotation ≤ {MAX_ROTATION}°, translation ≤ {MAX_SHIFT:.0f} px; noise "
        f"σ={NOISE_SIGMA}, 8-bit; device {device}, {args.threads} threads; seed {args.seed}. PSNR (dB) on RGB "
        f"in [0, 1] at the best shift within {SHIFT_SEARCH} px, {SCORE_BORDER} px from the border.",
        "",
        "| kind | images | blurry | ours | gain (mean) | gain (min) | s/image |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, s in summary.items():
        lines.append(f"| {key} | {s['images']} | {s['psnr_blurry']:.2f} | {s['psnr_ours']:.2f} | "
                     f"{s['gain_mean']:+.2f} | {s['gain_min']:+.2f} | {s['seconds']:.1f} |")
    lines += ["", "| kind | image | blurry | ours | gain | s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['kind']} | {r['image']} | {r['psnr_blurry']:.2f} | {r['psnr_ours']:.2f} | "
              f"{r['psnr_ours'] - r['psnr_blurry']:+.2f} | {r['seconds']:.1f} |" for r in rows]
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    write_results(out, f"varying_blur_{args.tag}", text, {"args": vars(args), "summary": summary, "rows": rows})
    if examples:
        write_figure(out / f"varying_blur_{args.tag}.png", examples)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
