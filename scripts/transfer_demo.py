#!/usr/bin/env python
"""A picture of blur transfer: the pair (x, y), the blur's PSF, and each target x̂ with ŷ = F(x̂, G(x, y)).

Top row: x, y, the re-blur F(x, G(x, y)), the PSF of the code G(x, y) (F applied with the code to
impulses for the unet type, see models/psf_probe.py; the decoded PSF for the psf type; averaged over the
128×128 code cells) and, when --kernel gives the true
kernel of the pair, that kernel at the same scale. One row per target: x̂, ŷ, and with --kernel the reference
x̂ ⊛ k and the error |ŷ − x̂ ⊛ k| (×4), with PSNRs in the labels. The defaults use the example
images (the pair is blurred by examples/kernels/pair_motion.npy).

``--sample N`` draws a picture of novel blur instead: the first target blurred by N uniform codes drawn
from the model's prior (transferring.sample_codes), each beside the PSF of its code, and then by
two spatially varying samples (the prior's smooth field), each beside its PSF field (one PSF per cell).

Examples:
    python scripts/transfer_demo.py --output docs/transfer_grid.png        # the shipped model
    python scripts/transfer_demo.py --sample 8 --output docs/sample_grid.png  # novel blur from the prior
    python scripts/transfer_demo.py --model m.pth --sharp x.png --blur y.png --target a.png --target b.png \\
        --output grid.png
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from data.image_io import read_image, to_tensor, write_image
from models import code_grid_size
from models.psf_probe import render_psfs
from transferring import DEFAULT_CONFIG, apply_code, extract_code, load_model, sample_codes
from utils.config import load_config
from utils.device import resolve_device
from utils.errors import UserError, run_cli
from utils.metrics import psnr
from utils.paths import model_path as model_path_from_config
from utils.paths import refuse_overwrite

ROOT = Path(__file__).resolve().parent.parent

EXAMPLES = ROOT / "examples"
LABEL_HEIGHT = 24


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """True 2-D convolution of H×W×3 with a K×K kernel, reflected borders (as scripts/make_examples.py)."""
    flipped = np.ascontiguousarray(kernel[::-1, ::-1], dtype=np.float32)
    return cv2.filter2D(image.astype(np.float32), -1, flipped, borderType=cv2.BORDER_REFLECT_101)


def kernel_picture(kernel: np.ndarray, window: int = 41) -> np.ndarray:
    """A K×K kernel centred in a window×window black square, scaled to its maximum: H×W×3 in [0, 1]."""
    k = kernel.shape[0]
    size = max(window, k)
    canvas = np.zeros((size, size), np.float32)
    top = (size - k) // 2
    canvas[top:top + k, top:top + k] = kernel / max(float(kernel.max()), 1e-12)
    return np.repeat(canvas[:, :, None], 3, axis=2)


def fit(image: np.ndarray, panel: int) -> np.ndarray:
    """Scale H×W×3 to fit a panel×panel square (nearest when enlarging, area when shrinking), centred on white."""
    h, w = image.shape[:2]
    scale = panel / max(h, w)
    interp = cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA
    resized = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)
    out = np.ones((panel, panel, 3), np.float32)
    top, left = (panel - resized.shape[0]) // 2, (panel - resized.shape[1]) // 2
    out[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
    return out


def grid(rows: Sequence[Sequence[tuple[str, np.ndarray]]], panel: int = 256, gap: int = 6) -> np.ndarray:
    """Lay out labelled panels (H×W×3 float in [0, 1]) row by row on white: H×W×3 uint8 RGB."""
    columns = max(len(r) for r in rows)
    cell_h = panel + LABEL_HEIGHT
    canvas = np.full((len(rows) * (cell_h + gap) + gap, columns * (panel + gap) + gap, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, (label, image) in enumerate(row):
            top, left = gap + i * (cell_h + gap), gap + j * (panel + gap)
            picture = np.round(fit(np.clip(image, 0, 1), panel) * 255).astype(np.uint8)
            canvas[top + LABEL_HEIGHT:top + cell_h, left:left + panel] = picture
            cv2.putText(canvas, label, (left + 2, top + 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                        cv2.LINE_AA)
    return canvas


@torch.inference_mode()
def transfer_figure(
    kernel_space, sharp: np.ndarray, blurry: np.ndarray, targets: Sequence[np.ndarray],
    kernel: np.ndarray | None = None, panel: int = 256,
) -> np.ndarray:
    """The demo grid (H×W×3 uint8 RGB) for a pair (H×W×3 arrays in [0, 1]) and targets; ``kernel``: the
    pair's true kernel, which adds the reference x̂ ⊛ k and the error to each target row."""
    x, y = to_tensor(sharp), to_tensor(blurry)
    code = extract_code(kernel_space, x, y)
    reblur = apply_code(kernel_space, x, code).clamp(0, 1).cpu()
    top = [("x (sharp)", sharp), ("y (blurry)", blurry),
           (f"F(x,G(x,y)) {psnr(reblur, y):.1f} dB", reblur[0].permute(1, 2, 0).numpy()),
           ("PSF of G(x,y), mean of cells",
            kernel_picture(kernel_space.psf_of_code(code)[0].mean(dim=(0, 1)).cpu().numpy()))]
    if kernel is not None:
        top.append(("true kernel k", kernel_picture(kernel)))
    rows = [top]
    for i, target in enumerate(targets):
        t = to_tensor(target)
        moved = apply_code(kernel_space, t, code).clamp(0, 1).cpu()
        row = [(f"target {i + 1} (sharp)", target)]
        if kernel is None:
            row.append(("F(target, G(x,y))", moved[0].permute(1, 2, 0).numpy()))
        else:
            reference = to_tensor(convolve(target, kernel))
            row += [(f"F(target,G(x,y)) {psnr(moved, reference):.1f} dB", moved[0].permute(1, 2, 0).numpy()),
                    (f"target conv k (sharp: {psnr(t, reference):.1f} dB)", reference[0].permute(1, 2, 0).numpy()),
                    ("|error| x4", (4 * (moved - reference).abs())[0].permute(1, 2, 0).numpy())]
        rows.append(row)
    return grid(rows, panel)


@torch.inference_mode()
def sample_figure(kernel_space, target: np.ndarray, count: int, seed: int = 0, panel: int = 256) -> np.ndarray:
    """Novel blur (H×W×3 uint8 RGB): ``target`` (H×W×3 in [0, 1]) under ``count`` uniform codes of the
    model's prior, each with its PSF, four pairs to a row; then two smooth fields, each with its PSF field."""
    t = to_tensor(target)
    grid_size = code_grid_size(*t.shape[-2:])
    uniform = sample_codes(kernel_space, grid_size, count, seed, uniform=True)
    fields = sample_codes(kernel_space, grid_size, 2, seed + 1)
    panels = []
    for i, code in enumerate(uniform):
        blurred = apply_code(kernel_space, t, code[None]).clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()
        psf = kernel_space.psf_of_code(code[None, :, :1, :1])[0, 0, 0].cpu().numpy()
        panels += [(f"sample {i + 1}", blurred), (f"PSF {i + 1}", kernel_picture(psf))]
    for i, code in enumerate(fields):
        blurred = apply_code(kernel_space, t, code[None]).clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()
        psfs = kernel_space.psf_of_code(code[None])[0].cpu().numpy()
        panels += [(f"varying sample {i + 1}", blurred), (f"its PSF field ({psfs.shape[0]}x{psfs.shape[1]})",
                                                           render_psfs(psfs, scale=1, gap=3))]
    return grid([[("target (sharp)", target)]] + [panels[i:i + 8] for i in range(0, len(panels), 8)], panel)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, build the figure, write it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="kernel-space checkpoint (default: the shipped model)")
    parser.add_argument("--sharp", default=str(EXAMPLES / "pair_sharp.png"))
    parser.add_argument("--blur", default=str(EXAMPLES / "pair_blurry.png"))
    parser.add_argument("--target", action="append", help="target image (repeatable; default: two examples)")
    parser.add_argument("--kernel", help="the pair's true kernel (.npy) for the reference columns "
                                         "(default: examples/kernels/pair_motion.npy with the default pair)")
    parser.add_argument("--output", default=str(ROOT / "docs" / "transfer_grid.png"))
    parser.add_argument("--panel", type=int, default=256, help="panel side in pixels")
    parser.add_argument("--sample", type=int, metavar="N", help="draw N samples of the model's prior instead")
    parser.add_argument("--seed", type=int, default=0, help="--sample: seed of the draw")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    args = parser.parse_args(argv)
    targets = args.target or [str(EXAMPLES / "target_sharp.png"), str(EXAMPLES / "sharp_astronaut.png")]
    kernel_file = args.kernel
    if kernel_file is None and args.sharp == str(EXAMPLES / "pair_sharp.png"):
        kernel_file = str(EXAMPLES / "kernels" / "pair_motion.npy")
    model_path = args.model or model_path_from_config(load_config(DEFAULT_CONFIG, "transfer")["model"])
    refuse_overwrite([args.output], [args.sharp, args.blur, *targets, kernel_file, model_path])  # no input replaced
    kernel = None
    if kernel_file is not None:
        try:
            kernel = np.load(kernel_file, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as exc:
            raise UserError(f"{kernel_file}: not a readable .npy kernel ({type(exc).__name__})") from exc
        if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
            raise UserError(f"{kernel_file}: expected a square, odd-sized 2-D kernel, got shape {kernel.shape}")
    if args.sample is not None:
        figure = sample_figure(load_model(model_path, resolve_device(args.device)), read_image(targets[0]).rgb,
                               args.sample, args.seed, args.panel)
        write_image(args.output, figure.astype(np.float32) / 255.0)
        print(f"wrote {args.output}")
        return 0
    sharp, blurry = read_image(args.sharp), read_image(args.blur)
    if sharp.size != blurry.size:
        raise UserError(f"{args.blur}: size {blurry.size} differs from {args.sharp} {sharp.size}")
    images = [read_image(t).rgb for t in targets]
    device = resolve_device(args.device)
    model = load_model(model_path, device)
    figure = transfer_figure(model, sharp.rgb, blurry.rgb, images, kernel, args.panel)
    write_image(args.output, figure.astype(np.float32) / 255.0)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
