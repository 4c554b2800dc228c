#!/usr/bin/env python
"""Kernel-space fidelity of a model: how well F(·, G(x, y)) reproduces and transfers a blur.

Two measurements, each beside the identity baseline (the output is the sharp input itself):

- re-blur: PSNR/SSIM of F(x, G(x, y)) against y on every pair (baseline: y := x). For synthetic
  pairs also against the noise-free blur x ⊛ k, since F cannot (and should not) reproduce noise.
- transfer (synthetic pairs, whose kernels k are known): PSNR/SSIM of F(x̂, G(x, y)) against
  x̂ ⊛ k on new sharp images x̂ (baseline: ŷ := x̂). x̂ are random crops of scikit-image's bundled
  photos, which are reserved for evaluation and never used for training.

Synthetic pairs are scored on their interior, ``K // 2`` pixels from the border (K: the kernel
size): the reference blur there depends on pixels outside the image, which no F can know.
For synthetic pairs the kernel itself is scored too: ``kernel_similarity``, the best-shift
normalised cross-correlation (utils/metrics.py) of the PSF of G(x, y) (the decoded PSF of the psf
generator type, F's impulse response for the unet type; the mean over code cells) with the true
kernel — 1 for the same kernel, ~0.3 for no blur at all.

A third column checks that the code carries the pair's blur at all: the same PSNRs with the code
of ANOTHER pair (the previous one) in place of G(x, y). A kernel space whose F ignores its code
scores the same there as with the right code.

Pairs come from a paired folder tree (--data), an LMDB pair (--data-lmdb) or the synthetic
generator run on the fly (--synthetic N: dead-leaves images and random kernels from
configs/defaults/dataset.yml, on the held-out "test" stream of --seed, so never a training or
validation sample). Results: a table on stdout and evaluate_<name>.json / .md / .png under --out.

``--prior N`` measures the model's prior instead (transferring/prior_report.py): N codes drawn from
each prior it has (the learned code prior, N(0, I) for a VAE) decoded to PSFs — the share with one
connected support, the mean pairwise best-shift NCC, and the best match to held-out generated
kernels and to reference kernels (--reference-kernels, default Levin's eight) → prior_<name>.*.

Examples:
    python scripts/evaluate.py          # the shipped model, 100 synthetic pairs, seed 0 -> bench/results/
    python scripts/evaluate.py --model pretrained/default_psf.pth --synthetic 100 --seed 0
    python scripts/evaluate.py --model experiments/default_psf/models/latest.pth --synthetic 32 --name smoke
    python scripts/evaluate.py --model gopro.pth --data-lmdb val_sharp.lmdb val_blur.lmdb --crop 512 --limit 50
    python scripts/evaluate.py --prior 256 --seed 0     # the shipped model's prior -> bench/results/prior_default_psf.*
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from data.build import build_synthetic
from data.image_io import write_image
from data.paired import PairedFolderDataset, PairedLMDBDataset
from data.synthetic import blur_valid
from models import KernelSpace
from transferring import DEFAULT_CONFIG, apply_code, extract_code, load_model
from transferring.prior_report import (
    LEVIN_KERNELS,
    prior_markdown,
    prior_paths,
    prior_report,
    read_kernels,
    write_prior_report,
)
from utils.config import build_config, load_config, load_schema
from utils.device import resolve_device
from utils.errors import UserError, run_cli
from utils.fileio import atomic_write
from utils.metrics import kernel_similarity, psnr, ssim
from utils.paths import model_path as model_path_from_config
from utils.paths import refuse_overwrite

REPO = Path(__file__).resolve().parent.parent
# scikit-image's bundled photographs used as new sharp targets x̂ (evaluation only; none needs a download)
EVALUATION_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "immunohistochemistry", "grass",
                     "gravel", "brick", "clock", "coins", "moon", "hubble_deep_field")
METRICS = (
    ("reblur_psnr", "re-blur PSNR: F(x, G(x, y)) vs y", "dB"),
    ("reblur_ssim", "re-blur SSIM: F(x, G(x, y)) vs y", ""),
    ("reblur_clean_psnr", "re-blur PSNR vs noise-free x ⊛ k", "dB"),
    ("transfer_psnr", "transfer PSNR: F(x̂, G(x, y)) vs x̂ ⊛ k", "dB"),
    ("transfer_ssim", "transfer SSIM: F(x̂, G(x, y)) vs x̂ ⊛ k", ""),
    ("kernel_similarity", "kernel similarity: PSF of G(x, y) vs k (best-shift NCC)", ""),
)


def load_photos(names: Sequence[str] = EVALUATION_PHOTOS) -> list[np.ndarray]:
    """scikit-image's bundled photos as H×W×3 float32 RGB in [0, 1] (gray ones replicated)."""
    import skimage.data

    photos = []
    for name in names:
        image = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
        photos.append(np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image[:, :, :3])
    return photos


def random_crop(rng: np.random.Generator, image: np.ndarray, size: int) -> np.ndarray:
    """A random size×size crop (the image is enlarged first when smaller)."""
    h, w = image.shape[:2]
    if h < size or w < size:
        scale = size / min(h, w)
        image = cv2.resize(image, (max(size, round(w * scale)), max(size, round(h * scale))),
                           interpolation=cv2.INTER_CUBIC)
        h, w = image.shape[:2]
    top, left = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
    return np.ascontiguousarray(image[top:top + size, left:left + size])


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None].float()


def synthetic_samples(
    count: int, size: int = 256, seed: int = 0, overrides: Sequence[str] = ()
) -> Iterator[dict[str, Any]]:
    """Synthetic pairs of the held-out "test" stream: dicts with "key", "sharp", "blur" (1, 3, S, S),
    "clean" (the noise-free x ⊛ k) and "kernel" (K×K). ``overrides``: ``--set`` items for the
    dataset schema (configs/defaults/dataset.yml), e.g. ``synthetic.noise_sigma=[0,0]``."""
    opt = build_config(load_schema("dataset"), {"mode": "synthetic", "HQ_size": size,
                                                 "synthetic": {"num_samples": count}}, overrides, "evaluate")
    noisy = build_synthetic(opt, seed, "test")
    clean_opt = {**opt, "synthetic": {**opt["synthetic"], "noise_sigma": [0.0, 0.0], "quantize": False}}
    clean = build_synthetic(clean_opt, seed, "test")
    for i in range(count):
        sharp, blur, kernel = noisy.make_arrays(i)
        _, clean_blur, clean_kernel = clean.make_arrays(i)  # same sample without noise or quantisation
        if not np.array_equal(kernel, clean_kernel):
            raise RuntimeError(f"synthetic sample {i}: the noise-free copy drew another kernel")
        yield {"key": f"synthetic_{i:05d}", "sharp": _tensor(sharp), "blur": _tensor(blur),
               "clean": _tensor(clean_blur), "kernel": kernel}


def paired_samples(dataset: torch.utils.data.Dataset, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The pairs of a PairedFolderDataset/PairedLMDBDataset as dicts with (1, 3, H, W) tensors."""
    for i in range(len(dataset) if limit is None else min(limit, len(dataset))):
        sample = dataset[i]
        yield {"key": sample["key"], "sharp": sample["sharp"][None], "blur": sample["blur"][None]}


@torch.inference_mode()
def evaluate_sample(
    kernel_space: KernelSpace,
    sample: dict[str, Any],
    target: np.ndarray | None = None,
    tile: int | None = 512,
    overlap: int = 128,
    code: torch.Tensor | None = None,
    other_code: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Metrics of one pair (see the module docstring); keys ``<metric>``, ``<metric>_identity`` and,
    given ``other_code`` (the code of another pair), ``reblur_psnr_othercode``/``transfer_psnr_othercode``.

    ``target``: for a sample with a "kernel", a sharp image of side S + K - 1 whose central S×S
    crop is x̂ and whose valid convolution with the kernel is the reference x̂ ⊛ k. ``code``: G(x, y)
    if already computed.
    """
    sharp, blur = sample["sharp"], sample["blur"]
    if code is None:
        code = extract_code(kernel_space, sharp, blur, None, overlap)
    m = sample["kernel"].shape[0] // 2 if "kernel" in sample else 0

    def inner(image: torch.Tensor) -> torch.Tensor:  # the interior that synthetic pairs are scored on
        return image[..., m:image.shape[-2] - m, m:image.shape[-1] - m]

    def scores(name: str, pred: torch.Tensor, reference: torch.Tensor, identity: torch.Tensor,
               with_ssim: bool = True) -> dict[str, float]:
        pred, reference, identity = inner(pred), inner(reference), inner(identity)
        out = {f"{name}_psnr": psnr(pred, reference), f"{name}_psnr_identity": psnr(identity, reference)}
        if with_ssim:
            out.update({f"{name}_ssim": ssim(pred, reference).item(),
                        f"{name}_ssim_identity": ssim(identity, reference).item()})
        return out

    reblur = apply_code(kernel_space, sharp, code, tile, overlap).clamp(0, 1).cpu()
    row: dict[str, Any] = {"key": sample["key"], **scores("reblur", reblur, blur, sharp)}
    if other_code is not None:
        other_reblur = apply_code(kernel_space, sharp, other_code, tile, overlap).clamp(0, 1).cpu()
        row["reblur_psnr_othercode"] = psnr(inner(other_reblur), inner(blur))
    if "clean" in sample:
        row.update(scores("reblur_clean", reblur, sample["clean"], sharp, with_ssim=False))
    if "kernel" in sample:
        psfs = kernel_space.psf_of_code(code)[0].cpu()  # (gh, gw, S, S)
        row["kernel_similarity"] = float(np.mean([kernel_similarity(p, sample["kernel"]) for p in psfs.flatten(0, 1)]))
    if target is not None and "kernel" in sample:
        k = sample["kernel"].shape[0]
        s = sharp.shape[-1]
        new_sharp = _tensor(target[k // 2:k // 2 + s, k // 2:k // 2 + s])
        reference = _tensor(blur_valid(target, sample["kernel"]))
        moved = apply_code(kernel_space, new_sharp, code, tile, overlap).clamp(0, 1).cpu()
        row.update(scores("transfer", moved, reference, new_sharp))
        if other_code is not None:
            moved_other = apply_code(kernel_space, new_sharp, other_code, tile, overlap).clamp(0, 1).cpu()
            row["transfer_psnr_othercode"] = psnr(inner(moved_other), inner(reference))
    return row


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean, median and min over samples of every metric and its baselines present in ``rows``."""
    out = {}
    for key, _, _ in METRICS:
        for name in (key, f"{key}_identity", f"{key}_othercode"):
            values = np.array([r[name] for r in rows if name in r and math.isfinite(r[name])])
            if values.size:
                out[name] = {"mean": float(values.mean()), "median": float(np.median(values)),
                             "min": float(values.min()), "count": int(values.size)}
    return out


@torch.inference_mode()
def evaluate(
    kernel_space: KernelSpace,
    samples: Iterator[dict[str, Any]],
    total: int | None = None,
    seed: int = 0,
    tile: int | None = 512,
    overlap: int = 128,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Per-sample metric rows for ``samples`` (see :func:`evaluate_sample`); synthetic samples get a
    transfer target cut from a bundled photo chosen by ``default_rng([seed, 7, index])``. Every pair
    but the first is also scored with the previous pair's code (the ``_othercode`` baseline)."""
    photos = None
    rows = []
    previous_code = None
    for index, sample in enumerate(tqdm(samples, total=total, desc="evaluate", unit="pair", disable=not progress)):
        target = None
        if "kernel" in sample:
            photos = photos if photos is not None else load_photos()
            rng = np.random.default_rng([seed, 7, index])
            side = sample["sharp"].shape[-1] + sample["kernel"].shape[0] - 1
            target = random_crop(rng, photos[int(rng.integers(len(photos)))], side)
        code = extract_code(kernel_space, sample["sharp"], sample["blur"], None, overlap)
        rows.append(evaluate_sample(kernel_space, sample, target, tile, overlap, code, previous_code))
        previous_code = code
    return rows


# -- reports --------------------------------------------------------------------------------------
def markdown_table(summary: dict[str, dict[str, float]], header: str = "") -> str:
    """The summary as a markdown table: metric | model (mean / median) | identity baseline | model
    with another pair's code (mean)."""
    lines = [header] if header else []
    lines += ["| metric | model mean | model median | identity mean | identity median "
              "| another pair's code mean (pairs 2..N) |",
              "|---|---:|---:|---:|---:|---:|"]
    for key, label, unit in METRICS:
        if key not in summary:
            continue
        m, b, o = summary[key], summary.get(f"{key}_identity", {}), summary.get(f"{key}_othercode", {})
        fmt = "{:.2f}" if unit == "dB" else "{:.4f}"
        cells = [fmt.format(m["mean"]), fmt.format(m["median"]),
                 fmt.format(b["mean"]) if b else "–", fmt.format(b["median"]) if b else "–",
                 fmt.format(o["mean"]) if o else "–"]
        lines.append(f"| {label}{' (' + unit + ')' if unit else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def scatter_plot(rows: Sequence[dict[str, Any]], size: int = 640) -> np.ndarray:
    """PSNR of the model (y) against the identity baseline (x) per sample, re-blur in blue and
    transfer in orange, with the diagonal (no gain): an H×W×3 uint8 RGB picture."""
    series = [("reblur_psnr", (31, 119, 180), "re-blur F(x,G(x,y)) vs y"),
              ("transfer_psnr", (255, 127, 14), "transfer F(x^,G(x,y)) vs x^*k")]
    points = [(r[f"{k}_identity"], r[k]) for k, _, _ in series for r in rows if k in r and math.isfinite(r[k])]
    values = [v for p in points for v in p if math.isfinite(v)] or [20.0, 40.0]
    lo, hi = math.floor(min(values) / 5) * 5, math.ceil(max(values) / 5) * 5
    hi = max(hi, lo + 5)
    img = np.full((size, size, 3), 255, np.uint8)
    margin = 70
    span = size - 2 * margin

    def at(x: float, y: float) -> tuple[int, int]:
        return (int(margin + (x - lo) / (hi - lo) * span), int(size - margin - (y - lo) / (hi - lo) * span))

    for t in range(int(lo), int(hi) + 1, 5):
        cv2.line(img, at(t, lo), at(t, hi), (225, 225, 225), 1)
        cv2.line(img, at(lo, t), at(hi, t), (225, 225, 225), 1)
        cv2.putText(img, str(t), (at(t, lo)[0] - 10, size - margin + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        cv2.putText(img, str(t), (margin - 35, at(lo, t)[1] + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.rectangle(img, at(lo, hi), at(hi, lo), (0, 0, 0), 1)
    cv2.line(img, at(lo, lo), at(hi, hi), (120, 120, 120), 1, cv2.LINE_AA)
    for key, colour, _ in series:
        for r in rows:
            if key in r and math.isfinite(r[key]) and math.isfinite(r[f"{key}_identity"]):
                cv2.circle(img, at(r[f"{key}_identity"], r[key]), 4, colour, -1, cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "identity baseline PSNR (dB): sharp input vs reference", (margin, size - 22), font, 0.5,
                (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "kernel-space fidelity per sample (model PSNR, dB)", (margin, 30), font, 0.55, (0, 0, 0), 1,
                cv2.LINE_AA)
    for i, (_, colour, label) in enumerate(series):
        cv2.circle(img, (margin + 12, margin + 18 + 20 * i), 5, colour, -1, cv2.LINE_AA)
        cv2.putText(img, label, (margin + 24, margin + 23 + 20 * i), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def report_paths(out_dir: str | Path, name: str) -> list[Path]:
    """The files :func:`write_report` writes: evaluate_<name>.json, .md and .png under ``out_dir``."""
    base = Path(out_dir) / f"evaluate_{name}"
    return [base.with_suffix(".json"), base.with_suffix(".md"), base.with_suffix(".png")]


def write_report(result: dict[str, Any], rows: Sequence[dict[str, Any]], out_dir: str | Path, name: str) -> list[Path]:
    """Write evaluate_<name>.json (settings, summary, per-sample rows), .md (table) and .png (plot)."""
    paths = report_paths(out_dir, name)
    payload = json.dumps({**result, "samples": list(rows)}, indent=2, allow_nan=True)
    atomic_write(paths[0], lambda tmp: tmp.write_text(payload), suffix=".json")
    header = (f"# Kernel-space fidelity: {result['model']}\n\n{result['data']}, {result['count']} pairs, "
              f"seed {result['seed']}, {result['seconds']:.0f} s on {result['device']}.\n")
    atomic_write(paths[1], lambda tmp: tmp.write_text(markdown_table(result["summary"], header)), suffix=".md")
    picture = scatter_plot(rows)
    write_image(paths[2], picture.astype(np.float32) / 255.0)
    return paths


def evaluate_prior(args: argparse.Namespace, cfg: dict[str, Any], model_path: Path) -> int:
    """``--prior N``: the figures of the model's priors (transferring/prior_report.py), printed and written."""
    name = args.name or model_path.stem
    refuse_overwrite(prior_paths(args.out, name), [model_path, DEFAULT_CONFIG, args.reference_kernels])
    folder = args.reference_kernels or (LEVIN_KERNELS if LEVIN_KERNELS.is_dir() else None)
    references = read_kernels(folder) if folder is not None else None
    model = load_model(model_path, resolve_device(args.device))
    result, psfs = prior_report(model, args.prior, args.seed, references)
    shown = os.path.relpath(folder, REPO) if folder is not None else None
    result.update(model=str(args.model or cfg["model"]), references=shown)
    print(prior_markdown(result))
    for path in write_prior_report(result, psfs, args.out, name):
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, evaluate, print the table and write the reports."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="kernel-space checkpoint (default: the shipped model of configs/transfer/)")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--synthetic", type=int, metavar="N", help="N synthetic pairs (default 100 if no data given)")
    data.add_argument("--data", help="paired folder tree with sharp/ and blur/")
    data.add_argument("--data-lmdb", nargs=2, metavar=("SHARP", "BLUR"), help="sharp and blurry LMDBs")
    data.add_argument("--prior", type=int, metavar="N", help="measure the model's prior on N samples instead")
    parser.add_argument("--reference-kernels", default=None,
                        help="--prior: folder of kernel*.png to match (default: Levin's eight, when present)")
    parser.add_argument("--size", type=int, default=256, help="side of the synthetic pairs")
    parser.add_argument("--crop", type=int, help="central crop of real pairs (default: whole images)")
    parser.add_argument("--limit", type=int, help="evaluate at most this many real pairs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a synthetic-data key of configs/defaults/dataset.yml")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic pairs and the transfer targets")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"), help="folder for the reports")
    parser.add_argument("--name", help="report name (default: <model stem>_<data>)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    args = parser.parse_args(argv)
    cfg = load_config(DEFAULT_CONFIG, "transfer")
    model_path = Path(args.model) if args.model else model_path_from_config(cfg["model"])
    if args.prior is not None:
        return evaluate_prior(args, cfg, model_path)
    real = args.data or (args.data_lmdb[0] if args.data_lmdb else None)
    name = args.name or f"{model_path.stem}_{Path(real).stem if real else f'synthetic{args.size}'}"
    # no report may replace the model, the config or the data it reads
    refuse_overwrite(report_paths(args.out, name), [model_path, DEFAULT_CONFIG, args.data, *(args.data_lmdb or ())])
    device = resolve_device(args.device)
    if args.data or args.data_lmdb:
        if args.crop is not None and args.crop < 1:
            raise UserError(f"--crop must be positive, got {args.crop}")
        dataset = (PairedFolderDataset(args.data, crop_size=args.crop, train=False) if args.data else
                   PairedLMDBDataset(*args.data_lmdb, crop_size=args.crop, train=False))
        total = len(dataset) if args.limit is None else min(args.limit, len(dataset))
        samples = paired_samples(dataset, args.limit)
        label = f"pairs of {real}"
    else:
        total = args.synthetic if args.synthetic is not None else 100
        if total < 1 or args.size < 32:
            raise UserError(f"--synthetic ({total}) must be positive and --size ({args.size}) at least 32")
        samples = synthetic_samples(total, args.size, args.seed, args.set)
        label = f"synthetic {args.size}×{args.size} pairs (dead-leaves, test stream)"
    model = load_model(model_path, device)
    start = time.time()
    rows = evaluate(model, samples, total, args.seed, cfg["tile"], cfg["overlap"])
    seconds = time.time() - start
    summary = summarize(rows)
    result = {"model": str(args.model or cfg["model"]), "data": label, "count": len(rows), "seed": args.seed,
              "device": str(device), "seconds": seconds, "summary": summary}
    print(markdown_table(summary))
    for path in write_report(result, rows, args.out, name):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
