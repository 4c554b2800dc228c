"""Statistics of sets of blur kernels: do they look like camera shake, and are they varied?

Three numbers describe a set of PSFs drawn from a kernel-space prior (``scripts/evaluate.py --prior``):

- :func:`connected_share`: the mass of a PSF's largest 8-connected piece above ``floor`` × its peak,
  as a share of its whole mass. A camera-shake kernel is one stroke (share ≥ 0.75); a scatter of
  speckles or a ghost image is not.
- :func:`mean_pairwise_similarity`: the mean best-shift NCC (:func:`utils.metrics.kernel_similarity`)
  between two different samples — 1 when a prior always draws the same blur.
- :func:`best_matches`: for each reference kernel, the best-shift NCC of the most similar sample —
  whether the prior can produce that kernel at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

ONE_STREAK = 0.75  # a connected_share at least this: the PSF is one stroke, as camera shake is


def connected_share(psf: np.ndarray | torch.Tensor, floor: float = 0.05) -> float:
    """A PSF (h, w), non-negative → the share of its mass in its largest 8-connected piece of the
    pixels above ``floor`` × its peak (a number in [0, 1]; 0 for an all-zero PSF)."""
    k = np.asarray(psf.detach().cpu() if torch.is_tensor(psf) else psf, dtype=np.float64)
    if k.ndim != 2:
        raise ValueError(f"a PSF must be 2-D, got shape {k.shape}")
    total = k.sum()
    if total <= 0:
        return 0.0
    support = (k > floor * k.max()).astype(np.uint8)
    count, labels = cv2.connectedComponents(support, connectivity=8)
    masses = np.bincount(labels.ravel(), weights=k.ravel(), minlength=count)[1:]
    return float(masses.max() / total) if masses.size else 0.0


def _spectra(kernels: torch.Tensor, size: tuple[int, int], flip: bool) -> torch.Tensor:
    k = kernels.double()
    k = k / k.flatten(1).norm(dim=1).clamp_min(1e-300)[:, None, None]
    return torch.fft.rfft2(k.flip(-2, -1) if flip else k, s=size)


def similarity_matrix(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, chunk: int = 16) -> np.ndarray:
    """Best-shift NCC of every kernel of ``a`` (N, h, w) with every kernel of ``b`` (M, h', w') →
    (N, M) float64, each entry :func:`utils.metrics.kernel_similarity` of the pair (batched FFTs)."""
    ta, tb = torch.as_tensor(np.asarray(a)), torch.as_tensor(np.asarray(b))
    if ta.dim() != 3 or tb.dim() != 3:
        raise ValueError(f"kernel sets must be (N, h, w), got {tuple(ta.shape)} and {tuple(tb.shape)}")
    size = (ta.shape[1] + tb.shape[1] - 1, ta.shape[2] + tb.shape[2] - 1)
    fa, fb = _spectra(ta, size, flip=True), _spectra(tb, size, flip=False)
    out = np.zeros((ta.shape[0], tb.shape[0]))
    for start in range(0, ta.shape[0], chunk):
        corr = torch.fft.irfft2(fa[start:start + chunk, None] * fb[None], s=size)
        out[start:start + chunk] = corr.flatten(2).amax(dim=2).numpy()
    return out


def mean_pairwise_similarity(kernels: np.ndarray | torch.Tensor) -> float:
    """The mean best-shift NCC over all pairs of different kernels of a set (N ≥ 2, h, w) → a number."""
    matrix = similarity_matrix(kernels, kernels)
    n = matrix.shape[0]
    if n < 2:
        raise ValueError("pairwise similarity needs at least two kernels")
    return float((matrix.sum() - np.trace(matrix)) / (n * (n - 1)))


def best_matches(samples: np.ndarray | torch.Tensor, references: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """For each reference kernel (any sizes), the best-shift NCC of the most similar of ``samples``
    (N, h, w) → (len(references),) float64."""
    return np.array([similarity_matrix(np.asarray(r)[None], samples).max() for r in references])
