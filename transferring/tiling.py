"""F and G on large images in overlapping, 128-aligned tiles blended with smooth weight ramps.

A tile holds whole code cells (its offsets are multiples of 128), so F on a tile takes the matching
cells of the whole image's code map, and G on a tile gives the matching cells of the code. Tiles
are blended with ramps over their overlaps (``tile``, ``overlap``, ``blend`` in configs/transfer/),
so a 4K image needs a bounded amount of memory and shows no seams.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm import tqdm

from models import KernelSpace, code_grid_size, pad_to_multiple, resample_code
from models.psf_ops import CELL
from utils.errors import UserError
from utils.windows import raised_cosine

BLENDS = ("cosine", "linear")


def check_tiling(tile: int, overlap: int, name: str = "tile") -> None:
    """Raise UserError unless ``tile`` is a multiple of 128 (>= 256) and 0 <= ``overlap`` <= tile/2."""
    if not isinstance(tile, int) or tile < 2 * CELL or tile % CELL:
        raise UserError(f"{name} must be a multiple of {CELL} and at least {2 * CELL} pixels, got {tile!r}")
    if not isinstance(overlap, int) or not 0 <= overlap <= tile // 2:
        raise UserError(f"overlap must be between 0 and {name}/2 = {tile // 2} pixels, got {overlap!r}")


def check_blend(blend: str) -> None:
    """Raise UserError unless ``blend`` is one of :data:`BLENDS`."""
    if blend not in BLENDS:
        raise UserError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` (both multiples of 128).

    Starts are multiples of 128 (so every tile holds whole code cells), neighbours overlap by at
    least ``overlap`` pixels, and the last tile ends at ``length``.
    """
    if length <= tile:
        return [0]
    stride = max(CELL, (tile - overlap) // CELL * CELL)
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def ramp(length: int, ramp_in: int, ramp_out: int, blend: str = "cosine") -> torch.Tensor:
    """1-D blending weights (length,) in (0, 1]: rising over the first ``ramp_in`` samples, falling
    over the last ``ramp_out``, 1 in between. Two tiles whose ramps overlap exactly sum to 1."""
    check_blend(blend)
    weights = torch.ones(length, dtype=torch.float32)
    for n, reverse in ((ramp_in, False), (ramp_out, True)):
        n = min(n, length // 2)
        if n <= 0:
            continue
        r = raised_cosine(n) if blend == "cosine" else (torch.arange(n, dtype=torch.float32) + 0.5) / n
        if reverse:
            weights[length - n:] = weights[length - n:] * r.flip(0)
        else:
            weights[:n] = weights[:n] * r
    return weights


def blend_tiles(
    run: Callable[[int, int, int, int], torch.Tensor],
    size: tuple[int, int],
    tile: int,
    overlap: int,
    blend: str,
    unit: int = 1,
    progress: str | None = None,
) -> torch.Tensor:
    """The weighted average of ``run`` over the tiles of a (padded) H×W image.

    ``run(top, left, height, width)`` returns the (1, C, height/unit, width/unit) result of one
    tile (``unit`` 1 for images, 128 for code maps); each is weighted by ramps of ``overlap/unit``
    samples on its inner sides. Returns (1, C, H/unit, W/unit) on the device of the tiles' results.
    ``progress``: the description of a tqdm bar over the tiles (None: no bar).
    """
    height, width = size
    th, tw = min(tile, height), min(tile, width)
    tiles = [(top, left) for top in tile_starts(height, th, overlap) for left in tile_starts(width, tw, overlap)]
    step = overlap // unit
    out = total = None
    desc = None if progress is None else f"{progress} on {len(tiles)} tiles"
    for top, left in tqdm(tiles, desc=desc, unit="tile", leave=False, disable=progress is None):
        part = run(top, left, th, tw)
        if out is None:
            out = part.new_zeros((1, part.shape[1], height // unit, width // unit))
            total = part.new_zeros((1, 1, height // unit, width // unit))
        wy = ramp(th // unit, step if top > 0 else 0, step if top + th < height else 0, blend)
        wx = ramp(tw // unit, step if left > 0 else 0, step if left + tw < width else 0, blend)
        weight = (wy[:, None] * wx[None, :]).to(part.device)
        rows = slice(top // unit, (top + th) // unit)
        cols = slice(left // unit, (left + tw) // unit)
        out[..., rows, cols] += part * weight
        total[..., rows, cols] += weight
    return out / total


@torch.inference_mode()
def apply_code(
    kernel_space: KernelSpace,
    target: torch.Tensor,
    code: torch.Tensor,
    tile: int | None = 512,
    overlap: int = 128,
    blend: str = "cosine",
    progress: bool = False,
) -> torch.Tensor:
    """F(x̂, k), tiled: target (1, 3, H, W) in [0, 1] and code (1, C, h, w) -> blurry (1, 3, H, W).

    The code is first resampled to the target's grid ``code_grid_size(H, W)``; each tile of the
    (reflect-padded, like the model pads) target gets the code cells it covers. ``tile=None`` or a
    target that fits in one tile runs F once on the whole image. Tiles run on the model's device;
    the result is assembled on the target's device. Output is not clamped. ``progress`` shows a
    tqdm bar over the tiles.
    """
    device = next(kernel_space.parameters()).device
    h, w = target.shape[-2:]
    code = resample_code(code.to(device), code_grid_size(h, w))
    padded = pad_to_multiple(target)
    hp, wp = padded.shape[-2:]
    if tile is None or (hp <= tile and wp <= tile):
        return kernel_space.apply(target.to(device), code).to(target.device)
    check_tiling(tile, overlap)

    def run(top: int, left: int, th: int, tw: int) -> torch.Tensor:
        cells = code[..., top // CELL:(top + th) // CELL, left // CELL:(left + tw) // CELL]
        return kernel_space.apply(padded[..., top:top + th, left:left + tw].to(device), cells).to(target.device)

    out = blend_tiles(run, (hp, wp), tile, overlap, blend, progress="F" if progress else None)
    return out[..., :h, :w]


@torch.inference_mode()
def extract_code(
    kernel_space: KernelSpace,
    sharp: torch.Tensor,
    blur: torch.Tensor,
    tile: int | None = 2048,
    overlap: int = 128,
    blend: str = "cosine",
) -> torch.Tensor:
    """The deterministic code G(x, y) (the mean for a VAE model) of a pair, tiled when large.

    ``sharp``/``blur``: (1, 3, H, W) in [0, 1] of one size. Returns (1, C, ceil(H/128), ceil(W/128))
    on the model's device. A pair larger than ``tile`` is encoded in 128-aligned tiles whose code
    cells are blended with ramps of ``overlap // 128`` cells (equal weights where that is 0).
    """
    if sharp.shape != blur.shape:
        raise UserError(f"sharp image {tuple(sharp.shape[-2:])} and blurry image {tuple(blur.shape[-2:])} "
                        "must have the same size")
    device = next(kernel_space.parameters()).device
    padded_sharp, padded_blur = pad_to_multiple(sharp), pad_to_multiple(blur)
    hp, wp = padded_sharp.shape[-2:]
    # the psf type's G works cell by cell on windows of two cells: its memory is bounded without tiles
    if tile is None or (hp <= tile and wp <= tile) or kernel_space.generator_type == "psf":
        return kernel_space.extract_code(sharp.to(device), blur.to(device))
    check_tiling(tile, overlap, "encode_tile")

    def run(top: int, left: int, th: int, tw: int) -> torch.Tensor:
        rows, cols = slice(top, top + th), slice(left, left + tw)
        return kernel_space.extract_code(padded_sharp[..., rows, cols].to(device),
                                         padded_blur[..., rows, cols].to(device)).float()

    return blend_tiles(run, (hp, wp), tile, overlap, blend, unit=CELL)
