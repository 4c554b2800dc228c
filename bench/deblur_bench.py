"""Synthetic deblurring benchmark: PSNR/SSIM and seconds per image.

Sharp photos: scikit-image's bundled images (the evaluation set; never used for training), centre
crops of ``--size``. Each is blurred by a kernel from data/kernels.py (valid convolution of a larger
crop, so no border artefacts), plus Gaussian noise (σ = 0.01, ``--noise``) and 8-bit quantisation. Methods:
the blurry input; ours (``deblurring.run.deblur_image``) with a preset, by default configs/deblur/default.yml,
what ``deblur.py`` runs by default; ours with the paper preset on the first ``--paper N`` images
(slow); non-blind Richardson–Lucy and Wiener deconvolution given the TRUE kernel.

Writes bench/results/deblur_<tag>.md (table), .json (every number) and .png (mean PSNR/SSIM bars
and an example row), unless --out says otherwise.

  python bench/deblur_bench.py --threads 2 --tag default     # the default preset and model
  python bench/deblur_bench.py --model M.pth --images astronaut,coffee --config configs/deblur/fast.yml \\
                               --set iterations=200 --tag fast200
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from data.kernels import random_kernel  # noqa: E402
from data.synthetic import blur_valid  # noqa: E402
from utils.config import load_config  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.threads import set_threads  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "camera", "rocket", "cat", "immunohistochemistry", "coins")
NOISE_SIGMA = 0.01
OUT_DIR = REPO / "bench" / "results"


def sharp_photo(name: str, size: int) -> np.ndarray:
    """Centre crop (size + margin) of a scikit-image photo as float32 H×W×3 in [0, 1]."""
    image = getattr(skdata, name)()
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = image[:, :, :3].astype(np.float32) / (65535.0 if image.dtype == np.uint16 else 255.0)
    h, w = image.shape[:2]
    side = min(h, w)
    if side < size:
        raise UserError(f"skimage.data.{name} is {h}×{w}, smaller than --size {size}")
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def noisy_8bit(image: np.ndarray, rng: np.random.Generator, noise: float = NOISE_SIGMA) -> np.ndarray:
    """An H×W×3 image plus Gaussian noise of σ ``noise`` (drawn from ``rng``), clipped to [0, 1] and
    quantised to 8 bits: float32."""
    noisy = image + rng.normal(0.0, noise, image.shape).astype(np.float32)
    return (np.round(np.clip(noisy, 0, 1) * 255) / 255).astype(np.float32)


def write_png(path: Path, picture: np.ndarray) -> None:
    """Write a uint8 BGR (or gray) picture atomically as PNG; one that cannot be encoded is a UserError."""
    from utils.fileio import atomic_write

    ok, buf = cv2.imencode(".png", picture)
    if not ok:
        raise UserError(f"cannot encode {path}")
    atomic_write(path, lambda tmp: tmp.write_bytes(buf.tobytes()), suffix=".png")


def write_results(out: Path, stem: str, text: str, payload: dict[str, Any]) -> None:
    """A bench's results: ``out/<stem>.md`` (the tables, ``text``) and ``out/<stem>.json`` (``payload``),
    each written atomically."""
    from utils.fileio import atomic_write

    atomic_write(out / f"{stem}.md", lambda tmp: tmp.write_text(text), suffix=".md")
    atomic_write(out / f"{stem}.json", lambda tmp: tmp.write_text(json.dumps(payload, indent=2)), suffix=".json")


def make_case(name: str, size: int, kernel_size: int, rng: np.random.Generator, noise: float = NOISE_SIGMA) -> dict:
    """One benchmark case: sharp (size²), blurry (size², Gaussian noise of σ ``noise``, 8-bit) and the true kernel."""
    photo = sharp_photo(name, size + kernel_size - 1)
    r = kernel_size // 2
    big = cv2.resize(photo, (size + 2 * r, size + 2 * r), interpolation=cv2.INTER_AREA)
    kernel = random_kernel(rng, kernel_size, kinds=("shake", "linear", "defocus"), intensity=(0.3, 0.8))
    blurry = noisy_8bit(blur_valid(big, kernel), rng, noise)
    return {
        "name": name,
        "sharp": big[r : r + size, r : r + size],
        "blurry": blurry,
        "kernel": kernel,
    }


def _convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    flipped = np.ascontiguousarray(kernel[::-1, ::-1])
    return cv2.filter2D(image, -1, flipped, borderType=cv2.BORDER_REFLECT_101)


def richardson_lucy(blurry: np.ndarray, kernel: np.ndarray, iterations: int = 30) -> np.ndarray:
    """Non-blind Richardson–Lucy deconvolution (H×W×3 in [0, 1], the true kernel) → H×W×3."""
    estimate = np.full_like(blurry, 0.5)
    flipped = np.ascontiguousarray(kernel[::-1, ::-1])
    for _ in range(iterations):
        ratio = blurry / np.maximum(_convolve(estimate, kernel), 1e-6)
        estimate = estimate * _convolve(ratio, flipped)
    return np.clip(estimate, 0, 1)


def wiener(blurry: np.ndarray, kernel: np.ndarray, nsr: float = 1e-2) -> np.ndarray:
    """Non-blind Wiener deconvolution with the true kernel; reflect-padded to limit wrap-around."""
    k = kernel.shape[0]
    pad = 2 * k
    padded = cv2.copyMakeBorder(blurry, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    h, w = padded.shape[:2]
    psf = np.zeros((h, w), np.float32)
    psf[:k, :k] = kernel
    psf = np.roll(psf, (-(k // 2), -(k // 2)), axis=(0, 1))
    otf = np.fft.fft2(psf)
    filt = np.conj(otf) / (np.abs(otf) ** 2 + nsr)
    out = np.stack([np.real(np.fft.ifft2(np.fft.fft2(padded[:, :, c]) * filt)) for c in range(3)], axis=2)
    return np.clip(out[pad:-pad, pad:-pad], 0, 1).astype(np.float32)


def scores(estimate: np.ndarray, sharp: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, SSIM) of an H×W×3 estimate against the sharp image, both in [0, 1]."""
    psnr = peak_signal_noise_ratio(sharp, estimate, data_range=1.0)
    ssim = structural_similarity(
        sharp,
        estimate,
        data_range=1.0,
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    return float(psnr), float(ssim)


def preset_model(cfg: dict) -> str:
    """The checkpoint a deblur preset names (its ``model`` key, :func:`utils.paths.model_path`)."""
    from utils.paths import model_path

    return str(model_path(cfg["model"]))


def add_preset_arguments(parser: argparse.ArgumentParser, results: str) -> None:
    """The flags the deblurring benches share: our preset (--model, --config, --set) and the run
    (--device, --threads, --tag: the results are bench/results/<results>_<tag>.*, --out)."""
    parser.add_argument("--model", default=None, help="kernel-space checkpoint (default: the preset's model)")
    parser.add_argument("--config", default=str(REPO / "configs" / "deblur" / "default.yml"), help="our preset")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override our preset")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (utils.threads)")
    parser.add_argument("--tag", default="default", help=f"results are bench/results/{results}_<tag>.*")
    parser.add_argument("--out", default=str(OUT_DIR), help="results folder")


def load_preset(args: argparse.Namespace) -> tuple[dict, str, Any, torch.device]:
    """The flags of :func:`add_preset_arguments` put to work: the thread pool set, then (our preset's
    config with --set applied, the checkpoint, the kernel space loaded on the device, the device)."""
    from models.kernel_space import KernelSpace
    from utils.device import resolve_device

    set_threads(args.threads)
    device = resolve_device(args.device)
    cfg = load_config(args.config, "deblur", args.set)
    model = args.model or preset_model(cfg)
    return cfg, model, KernelSpace.load(model, device), device


def ours(kernel_space, cfg: dict, device: torch.device, seed: int) -> Callable[[dict], np.ndarray]:
    """A method of the benchmark: deblurring.run.deblur_image with a config."""
    from data.image_io import to_numpy, to_tensor
    from deblurring.run import deblur_image

    def run(case: dict) -> np.ndarray:
        result = deblur_image(to_tensor(case["blurry"]), kernel_space, cfg, device, progress=False, seed=seed)
        case["last_steps"] = sum(h.get("phase") == "main" or "level" in h for h in result.history)
        if result.psf is not None:  # the mean PSF of the map (one PSF if uniform)
            case["psf"] = result.psf[0].mean(dim=(0, 1)).numpy()
        return to_numpy(result.sharp)

    return run


def _bar_chart(
    table: dict[str, dict[str, float]], key: str, width: int = 520, height: int = 260
) -> np.ndarray:
    canvas = np.full((height, width, 3), 255, np.uint8)
    names = list(table)
    values = [table[n][key] for n in names]
    top = max(values) * 1.15 if values else 1
    bar_w = (width - 40) // max(1, len(names))
    for i, (name, value) in enumerate(zip(names, values)):
        x0 = 20 + i * bar_w + 8
        y0 = int(height - 40 - (height - 80) * value / top)
        cv2.rectangle(canvas, (x0, y0), (x0 + bar_w - 16, height - 40), (180, 120, 60), -1)
        cv2.putText(canvas, f"{value:.3g}", (x0, y0 - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        cv2.putText(canvas, name[:12], (x0, height - 22), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.putText(canvas, f"mean {key}", (20, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1)
    return canvas


def write_plot(path: Path, summary: dict[str, dict[str, float]], example: dict[str, np.ndarray]) -> None:
    """Bars of mean PSNR and SSIM per method, then one example row (sharp, blurry, each method)."""

    bars = np.concatenate([_bar_chart(summary, "psnr"), _bar_chart(summary, "ssim")], axis=1)
    tiles = []
    for name, image in example.items():
        tile = cv2.resize((np.clip(image, 0, 1) * 255).astype(np.uint8), (180, 180))[:, :, ::-1].copy()
        cv2.putText(tile, name[:14], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1)
        tiles.append(tile)
    row = np.concatenate(tiles, axis=1)
    width = max(bars.shape[1], row.shape[1])
    pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0)), constant_values=255)  # noqa: E731
    write_png(path, np.concatenate([pad(bars), pad(row)], axis=0))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the table, the numbers and the plot."""

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_preset_arguments(parser, "deblur")
    parser.add_argument("--images", default=",".join(PHOTOS[:6]), help="comma-separated skimage.data names")
    parser.add_argument("--size", type=int, default=256, help="side of the square test images")
    parser.add_argument("--kernel-size", type=int, default=31, help="side of the true blur kernels (odd)")
    parser.add_argument(
        "--paper", type=int, default=0, help="also run the paper preset on the first N images"
    )
    parser.add_argument(
        "--paper-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the paper preset (e.g. loss.vgg_weights=PATH)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of kernels, noise and the optimisation")
    parser.add_argument("--noise", type=float, default=NOISE_SIGMA, help=f"σ of the added noise ({NOISE_SIGMA})")
    args = parser.parse_args(argv)

    fast_cfg, args.model, kernel_space, device = load_preset(args)
    rng = np.random.default_rng(args.seed)
    cases = [
        make_case(n.strip(), args.size, args.kernel_size, rng, args.noise) for n in args.images.split(",") if n.strip()
    ]
    methods: dict[str, Callable[[dict], np.ndarray]] = {
        "blurry": lambda c: c["blurry"],
        "ours": ours(kernel_space, fast_cfg, device, args.seed),
        "richardson_lucy": lambda c: richardson_lucy(c["blurry"], c["kernel"]),
        "wiener": lambda c: wiener(c["blurry"], c["kernel"]),
    }
    if args.paper > 0:
        paper_cfg = load_config(REPO / "configs" / "deblur" / "paper.yml", "deblur", args.paper_set)
        methods["ours_paper"] = ours(kernel_space, paper_cfg, device, args.seed)
    rows: list[dict] = []
    example: dict[str, np.ndarray] = {}
    for i, case in enumerate(cases):
        if i == 0:
            example = {"sharp": case["sharp"]}
        for method, run in methods.items():
            if method == "ours_paper" and i >= args.paper:
                continue
            start = time.perf_counter()
            estimate = run(case)
            seconds = time.perf_counter() - start
            psnr, ssim = scores(estimate, case["sharp"])
            rows.append(
                {
                    "image": case["name"],
                    "method": method,
                    "psnr": psnr,
                    "ssim": ssim,
                    "seconds": seconds,
                    "steps": case.pop("last_steps", None),
                }
            )
            print(
                f"{case['name']:>22} {method:>16}  PSNR {psnr:6.2f}  SSIM {ssim:.4f}  {seconds:7.1f} s",
                flush=True,
            )
            if i == 0:
                example[method] = estimate

    summary: dict[str, dict[str, float]] = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        if mine:
            summary[method] = {k: float(np.mean([r[k] for r in mine])) for k in ("psnr", "ssim", "seconds")}
            summary[method]["images"] = len(mine)
    out = Path(args.out)
    lines = [
        f"# Deblurring benchmark ({args.tag})",
        "",
        f"model `{args.model}`, preset `{args.config}` {' '.join(args.set)}, {len(cases)} skimage photos "
        f"{args.size}², kernels {args.kernel_size} px (shake/linear/defocus), noise σ={args.noise}, "
        f"device {device}, {args.threads} threads",
        "",
        "| method | images | PSNR (dB) | SSIM | s/image |",
        "|---|---|---|---|---|",
    ]
    for method, s in summary.items():
        lines.append(f"| {method} | {s['images']} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s['seconds']:.1f} |")
    lines += ["", "| image | method | PSNR | SSIM | s |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['image']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds']:.1f} |"
        for r in rows
    ]
    text = "\n".join(lines) + "\n"
    write_results(out, f"deblur_{args.tag}", text, {"args": vars(args), "summary": summary, "rows": rows})
    write_plot(out / f"deblur_{args.tag}.png", summary, example)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
