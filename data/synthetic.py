"""Synthetic (sharp, blurry, kernel) training pairs generated on the fly.

``blur = valid_convolution(larger_sharp_crop, kernel) + noise``: the sharp image is drawn at
``(S + K - 1)²`` and only the ``S²`` pixels whose whole kernel footprint lies inside it are kept,
so no artificial border (zero, reflect, circular) ever enters the blurry image. The sharp target is
the matching central ``S²`` crop.

Sample ``i`` is a pure function of ``(seed, stream, i)``: the same seed yields the same samples
whatever the number of DataLoader workers, and a resumed run sees the same stream.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from data.image_io import write_image
from data.kernels import KernelSampler
from data.sharp_sources import DeadLeavesSource, FolderSource
from utils.errors import UserError
from utils.fileio import atomic_write


def blur_valid(sharp: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Valid 2-D convolution of an H×W×C image with a K×K kernel -> (H-K+1)×(W-K+1)×C float32.

    True convolution (the kernel is flipped), computed with OpenCV (DFT for large kernels).
    """
    k = kernel.shape[0]
    if kernel.shape != (k, k) or k % 2 == 0:
        raise ValueError(f"kernel must be square with an odd size, got {kernel.shape}")
    h, w = sharp.shape[:2]
    if h < k or w < k:
        raise ValueError(f"image {h}×{w} is smaller than the kernel {k}×{k}")
    flipped = np.ascontiguousarray(kernel[::-1, ::-1], dtype=np.float32)
    full = cv2.filter2D(np.ascontiguousarray(sharp, dtype=np.float32), -1, flipped,
                        borderType=cv2.BORDER_REFLECT_101)  # border rows are cut off below
    r = k // 2
    out = full[r:h - r, r:w - r]
    return out if out.ndim == 3 else out[:, :, None]


@dataclass
class NoiseModel:
    """Additive white Gaussian noise with σ drawn uniformly in ``sigma`` = (low, high) per sample,
    then optional 8-bit quantisation (``quantize``) of both sharp and blurry images."""

    sigma: tuple[float, float] = (0.0, 0.02)
    quantize: bool = False

    def apply(self, rng: np.random.Generator, blur: np.ndarray) -> np.ndarray:
        """Noisy, clipped (and quantised) copy of ``blur`` (H×W×C float32 in [0, 1])."""
        low, high = self.sigma
        s = rng.uniform(low, high) if high > low else low
        if s > 0:
            blur = blur + rng.standard_normal(blur.shape, dtype=np.float32) * np.float32(s)
        return quantize(np.clip(blur, 0.0, 1.0)) if self.quantize else np.clip(blur, 0.0, 1.0)


def quantize(image: np.ndarray) -> np.ndarray:
    """Round float32 values in [0, 1] to the 8-bit grid (k/255)."""
    return (np.round(image * 255.0) / 255.0).astype(np.float32)


class SyntheticBlurDataset(Dataset):
    """Dict samples ``{"sharp": (3,S,S), "blur": (3,S,S), "kernel": (1,K,K)}`` of float32 tensors.

    ``source``: a sharp-image source (:class:`DeadLeavesSource` or :class:`FolderSource`);
    ``kernels``: a :class:`KernelSampler` (its ``size`` is K); ``crop_size``: S; ``noise``: a
    :class:`NoiseModel`; ``num_samples``: the virtual length; ``seed`` and ``stream`` (e.g. 0 for
    train, 1 for validation) select the sample stream.
    """

    def __init__(
        self,
        source: DeadLeavesSource | FolderSource,
        kernels: KernelSampler,
        crop_size: int = 128,
        noise: NoiseModel | None = None,
        num_samples: int = 100_000,
        seed: int = 0,
        stream: int = 0,
    ) -> None:
        if crop_size < 1 or num_samples < 1:
            raise ValueError(f"crop_size ({crop_size}) and num_samples ({num_samples}) must be positive")
        self.source = source
        self.kernels = kernels
        self.crop_size = crop_size
        self.noise = noise or NoiseModel()
        self.num_samples = num_samples
        self.seed = seed
        self.stream = stream

    def __len__(self) -> int:
        return self.num_samples

    def rng_for(self, index: int) -> np.random.Generator:
        """The generator that makes sample ``index`` (independent of workers and of order)."""
        return np.random.default_rng([self.seed, self.stream, index])

    def make_arrays(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sharp S×S×3, blur S×S×3, kernel K×K) float32 arrays of sample ``index``."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample {index} out of range [0, {self.num_samples})")
        rng = self.rng_for(index)
        kernel = self.kernels.sample(rng)
        k = kernel.shape[0]
        s = self.crop_size
        big = self.source.sample(rng, s + k - 1, s + k - 1)
        r = k // 2
        sharp = big[r:r + s, r:r + s]
        blur = self.noise.apply(rng, blur_valid(big, kernel))
        if self.noise.quantize:
            sharp = quantize(sharp)
        return np.ascontiguousarray(sharp), np.ascontiguousarray(blur), kernel

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sharp, blur, kernel = self.make_arrays(index)
        return {
            "sharp": torch.from_numpy(sharp.transpose(2, 0, 1).copy()),
            "blur": torch.from_numpy(blur.transpose(2, 0, 1).copy()),
            "kernel": torch.from_numpy(kernel[None].copy()),
        }


def export_synthetic_dataset(
    dataset: SyntheticBlurDataset,
    out: str | os.PathLike,
    frames_per_clip: int = 100,
    progress: bool = True,
) -> int:
    """Write every sample of ``dataset`` as the REDS-like tree under ``out``; returns the count.

    Sample ``i`` goes to ``out/sharp/CCC/FFFFFFFF.png``, ``out/blur/CCC/FFFFFFFF.png`` (8-bit RGB)
    and ``out/kernels/CCC/FFFFFFFF.npy`` (K×K float32), with clip ``CCC = i // frames_per_clip`` and
    frame ``F = i``. Every file is written atomically.
    """
    out = Path(out)
    for index in tqdm(range(len(dataset)), desc=f"writing {out}", unit="pair", disable=not progress):
        sharp, blur, kernel = dataset.make_arrays(index)
        rel = Path(f"{index // frames_per_clip:03d}") / f"{index:08d}"
        write_image(out / "sharp" / rel.with_suffix(".png"), sharp)
        write_image(out / "blur" / rel.with_suffix(".png"), blur)
        kernel_path = out / "kernels" / rel.with_suffix(".npy")
        try:
            atomic_write(kernel_path, lambda tmp, k=kernel: _save_npy(tmp, k), suffix=".npy")
        except OSError as exc:
            raise UserError(f"{kernel_path}: cannot write ({exc.strerror or exc})") from exc
    return len(dataset)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a handle: np.save would append ".npy" to a temporary name
        np.save(handle, array, allow_pickle=False)
