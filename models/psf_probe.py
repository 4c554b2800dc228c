"""The point-spread function that F applies with a code, read off by probing F with impulses.

For the ``unet`` generator type a code has no explicit kernel: its blur is read off by applying F
with the code to impulses (the ``psf`` type's PSFs are its decoder's output,
:meth:`~models.kernel_space.KernelSpace.psf_of_code`, and need no probe). An
image of the code's grid size (``gh·128 × gw·128``) holds one white pixel at the centre of every
128×128 cell on a black background; the response of F minus its response to the black image
alone, cropped around each impulse, is the PSF of that cell. :func:`probe_psf` returns these
PSFs as numbers (non-negative, summing to 1); :func:`render_psfs` lays PSFs out as a picture
(one panel per code cell, each scaled to its maximum and enlarged with nearest-neighbour).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.psf_ops import CELL


@torch.inference_mode()
def probe_psf(kernel_space: Any, code: torch.Tensor, size: int = 41) -> np.ndarray:
    """PSF of every cell of ``code`` (1, C, gh, gw): (gh, gw, size, size, 3) float32.

    ``size`` (odd, <= 127) is the side of the window cut around each impulse. Each PSF is
    clipped at 0 and normalised to sum 1 per colour channel (a flat zero response stays zero).
    The code is used on the model's device; the result is on the CPU.
    """
    if size % 2 == 0 or not 1 <= size < CELL:
        raise ValueError(f"PSF window size must be odd and smaller than {CELL}, got {size}")
    if code.dim() != 4 or code.shape[0] != 1:
        raise ValueError(f"code must have shape (1, C, gh, gw), got {tuple(code.shape)}")
    device = next(kernel_space.parameters()).device
    code = code.to(device)
    gh, gw = code.shape[-2:]
    black = torch.zeros((1, 3, gh * CELL, gw * CELL), device=device)
    impulses = black.clone()
    centre = CELL // 2
    impulses[..., centre::CELL, centre::CELL] = 1.0
    response = kernel_space.apply(impulses, code) - kernel_space.apply(black, code)
    response = response.clamp_min(0.0)[0].permute(1, 2, 0).cpu()  # (H, W, 3)
    r = size // 2
    psf = torch.zeros((gh, gw, size, size, 3))
    for i in range(gh):
        for j in range(gw):
            cy, cx = i * CELL + centre, j * CELL + centre
            psf[i, j] = response[cy - r:cy + r + 1, cx - r:cx + r + 1]
    total = psf.sum(dim=(2, 3), keepdim=True)
    psf = torch.where(total > 0, psf / total.clamp_min(1e-12), psf)
    return psf.numpy().astype(np.float32)


def render_psfs(psf: np.ndarray | torch.Tensor, scale: int = 4, gap: int = 2) -> np.ndarray:
    """A picture of per-cell PSFs (gh, gw, S, S) or (gh, gw, S, S, 3): H×W×3 float32 in [0, 1].

    One panel of ``S·scale`` pixels per code cell (row-major, like the cells), separated by ``gap``
    pixels of mid-gray; each panel is scaled so its brightest value is white. Write it with
    ``data.image_io.write_image``.
    """
    psf = psf.detach().cpu().numpy() if torch.is_tensor(psf) else np.asarray(psf)
    if psf.ndim == 4:
        psf = np.repeat(psf[..., None], 3, axis=-1)
    gh, gw, size = psf.shape[:3]
    panel = size * scale
    height, width = gh * panel + (gh - 1) * gap, gw * panel + (gw - 1) * gap
    canvas = np.full((height, width, 3), 0.5, dtype=np.float32)
    for i in range(gh):
        for j in range(gw):
            kernel = psf[i, j].astype(np.float32)
            peak = kernel.max()
            kernel = kernel / peak if peak > 0 else kernel
            tensor = torch.from_numpy(np.ascontiguousarray(kernel.transpose(2, 0, 1)))[None]
            big = F.interpolate(tensor, scale_factor=scale, mode="nearest")[0].permute(1, 2, 0).numpy()
            top, left = i * (panel + gap), j * (panel + gap)
            canvas[top:top + panel, left:left + panel] = big
    return canvas
