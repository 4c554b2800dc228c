"""The two uses of the kernel space on images: blur transfer ŷ = F(x̂, G(x, y)) and novel blur F(x̂, z)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data.image_io import to_numpy, to_tensor
from models import KernelSpace, code_grid_size
from models.code_prior import META_KEY, GaussianMixturePrior
from transferring.tiling import apply_code, extract_code
from utils.errors import UserError


def as_rgb_tensor(image: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """H×W×3 array or (1, 3, H, W)/(3, H, W) tensor in [0, 1] -> (1, 3, H, W) float32 CPU tensor."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise UserError(f"{name}: expected an H×W×3 RGB array, got shape {image.shape}")
        return to_tensor(image)
    tensor = image.detach().float().cpu()
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 4 or tensor.shape[:2] != (1, 3):
        raise UserError(f"{name}: expected a (1, 3, H, W) tensor, got shape {tuple(image.shape)}")
    return tensor


def load_model(path: str | Path, device: torch.device) -> KernelSpace:
    """Load a kernel-space checkpoint for ``--model``, with a hint when the shipped model is missing."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: model checkpoint not found (pass --model CKPT: a checkpoint written by "
                        "train.py or one converted with scripts/convert_published_checkpoint.py)")
    return KernelSpace.load(str(path), device)


def transfer_blur(
    sharp: np.ndarray | torch.Tensor,
    blurry: np.ndarray | torch.Tensor,
    targets: Sequence[np.ndarray | torch.Tensor],
    kernel_space: KernelSpace,
    device: str | torch.device = "cpu",
    tile: int | None = 512,
    overlap: int = 128,
    blend: str = "cosine",
    encode_tile: int | None = 2048,
    progress: bool = False,
) -> list[np.ndarray]:
    """Put the blur of the pair (x, y) on every target x̂: ŷ = F(x̂, G(x, y)).

    ``sharp``/``blurry``: x and y, H×W×3 float arrays in [0, 1] (or (1, 3, H, W) tensors) of one
    size; ``targets``: sharp images of any sizes. The code is extracted once (tiled above
    ``encode_tile``) and resampled to each target's grid; F runs in ``tile``-sized tiles with
    ``overlap``-pixel ``blend`` ramps. Returns one H'×W'×3 float32 array in [0, 1] per target.
    The model is moved to ``device`` and put in eval mode; ``progress`` shows tqdm bars.
    """
    kernel_space = kernel_space.to(device).eval()
    code = extract_code(kernel_space, as_rgb_tensor(sharp, "sharp"), as_rgb_tensor(blurry, "blurry"),
                        encode_tile, overlap, blend)
    results = []
    for i, target in enumerate(tqdm(targets, desc="targets", unit="image", disable=not progress or len(targets) < 2)):
        out = apply_code(kernel_space, as_rgb_tensor(target, f"target {i}"), code, tile, overlap, blend, progress)
        results.append(to_numpy(out.clamp(0.0, 1.0)))
    return results


def code_prior(kernel_space: KernelSpace) -> GaussianMixturePrior | None:
    """The learned prior stored in a model's ``meta["code_prior"]`` (``scripts/fit_code_prior.py``),
    or None when it has none; a malformed one is a UserError."""
    stored = kernel_space.meta.get(META_KEY)
    if stored is None:
        return None
    try:
        return GaussianMixturePrior.from_meta(stored, kernel_space.kernel_dim)
    except ValueError as exc:
        raise UserError(f"the model's code prior is unusable: {exc}") from exc


def sample_codes(
    kernel_space: KernelSpace, grid: tuple[int, int], count: int, seed: int = 0, uniform: bool = False
) -> torch.Tensor:
    """``count`` code maps drawn from the model's prior: (count, kernel_dim, *grid) on the CPU.

    The prior is the model's learned one (:func:`code_prior`) when it has one, else a VAE model's
    N(0, I); a model with neither is a UserError. The draw depends only on ``seed`` (a private
    generator). ``uniform`` draws one code per sample and replicates it over the grid (a spatially
    uniform blur); otherwise a learned prior draws a field that changes smoothly across the frame
    (:meth:`~models.code_prior.GaussianMixturePrior.sample_field`) and N(0, I) an independent code
    per cell.
    """
    prior = code_prior(kernel_space)
    if prior is None and not kernel_space.use_vae:
        raise UserError("sampling novel blur needs a model with a prior: a learned code prior "
                        "(scripts/fit_code_prior.py) or a VAE (use_vae: true; e.g. a checkpoint trained with "
                        "KernelWizard.use_vae or the published GOPRO_wVAE); this model has neither")
    if count < 1:
        raise UserError(f"--sample must be a positive number of samples, got {count}")
    generator = torch.Generator().manual_seed(int(seed))
    if prior is not None:
        if uniform:
            return prior.sample(count, generator)[..., None, None].expand(-1, -1, *grid).contiguous()
        return prior.sample_field(count, grid, generator)
    if uniform:
        codes = torch.randn((count, kernel_space.kernel_dim, 1, 1), generator=generator)
        return codes.expand(-1, -1, *grid).contiguous()
    return torch.randn((count, kernel_space.kernel_dim, *grid), generator=generator)


def synthesize_blur(
    target: np.ndarray | torch.Tensor,
    kernel_space: KernelSpace,
    count: int,
    device: str | torch.device = "cpu",
    seed: int = 0,
    uniform: bool = False,
    tile: int | None = 512,
    overlap: int = 128,
    blend: str = "cosine",
    progress: bool = False,
    indices: Sequence[int] | None = None,
) -> list[np.ndarray]:
    """Novel blur: ``count`` blurry versions F(x̂, z_i) of a target, z_i drawn from the model's prior
    (:func:`sample_codes`).

    ``target``: H×W×3 float array in [0, 1] (or a (1, 3, H, W) tensor). The codes have the target's
    grid and depend only on ``seed`` (see :func:`sample_codes`). Returns ``count`` H×W×3 arrays, or
    with ``indices`` only the samples of those numbers (in 0..count-1, in that order; the same
    images as in the whole set).
    """
    image = as_rgb_tensor(target, "target")
    codes = sample_codes(kernel_space, code_grid_size(*image.shape[-2:]), count, seed, uniform)
    if indices is not None:
        codes = codes[list(indices)]
    kernel_space = kernel_space.to(device).eval()
    return [to_numpy(apply_code(kernel_space, image, z[None], tile, overlap, blend, progress).clamp(0.0, 1.0))
            for z in tqdm(codes, desc="samples", unit="image", disable=not progress)]
