"""Sources of sharp training images: a folder of photos, or procedural dead-leaves images.

A source draws one H×W×3 float32 RGB image in [0, 1] from a ``numpy.random.Generator``:
``source.sample(rng, height, width)``. The same generator state gives the same image.

The dead-leaves model (Matheron; Lee, Mumford & Huang 2001) stacks occluding shapes whose sizes
follow a power law, which reproduces the scale invariance and edge statistics of natural images.
The images it makes are what the shipped model trains on: no download, no photo. The photos bundled
with scikit-image are reserved for evaluation and must never be used as a training source.
"""

from __future__ import annotations

import importlib.util
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from data.image_io import list_images, read_image
from utils.errors import UserError

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT


@dataclass
class DeadLeavesSource:
    """Procedural dead-leaves images.

    ``r_min``/``r_max``: radius range in pixels (``r_max`` as a fraction of the image's larger side
    when <= 1); radii follow p(r) ∝ r^-3 (scale invariant). ``coverage``, ``max_shapes``: leaves are painted
    back to front until their total area is ``coverage`` times the image area (at most
    ``max_shapes``; with coverage 3 about 95 % of the image is covered by leaves, the rest shows a
    smooth background). ``ellipse_fraction``/``polygon_fraction``: share of leaves that are ellipses or
    convex polygons instead of disks (straight and oriented edges). ``gradients``: each leaf has a
    linear intensity ramp; ``texture``: each leaf carries an oriented sinusoidal texture and
    fine noise. ``supersample``: leaves are drawn at this factor and averaged down (anti-aliased
    edges).
    """

    r_min: float = 1.5
    r_max: float = 0.35
    coverage: float = 3.0
    max_shapes: int = 6000
    ellipse_fraction: float = 0.3
    polygon_fraction: float = 0.2
    gradients: bool = True
    texture: bool = True
    supersample: int = 2

    def __post_init__(self) -> None:
        if self.r_min <= 0 or self.r_max <= 0 or self.coverage <= 0 or self.max_shapes < 1 \
                or self.supersample < 1:
            raise ValueError("dead-leaves parameters must be positive (r_min, r_max, coverage, max_shapes, "
                             "supersample)")
        if not 0 <= self.ellipse_fraction + self.polygon_fraction <= 1:
            raise ValueError("ellipse_fraction + polygon_fraction must lie in [0, 1]")

    def _radii(self, rng: np.random.Generator, n: int, r_max: float) -> np.ndarray:
        lo, hi = self.r_min ** -2, r_max ** -2  # inverse CDF of p(r) ∝ r^-3 on [r_min, r_max]
        return (lo - rng.random(n) * (lo - hi)) ** -0.5

    def _labels(self, rng: np.random.Generator, h: int, w: int, radii: np.ndarray) -> np.ndarray:
        """Index of the top-most leaf at each pixel (a float32 map), drawn at ``h × w``."""
        n = radii.size
        labels = np.zeros((h, w), np.float32)  # label 0 = background
        cx = rng.uniform(-0.1 * w, 1.1 * w, n)
        cy = rng.uniform(-0.1 * h, 1.1 * h, n)
        kind = rng.random(n)
        aspect = rng.uniform(0.25, 1.0, n)
        angle = rng.uniform(0, 360, n)
        n_vertices = rng.integers(3, 7, n)
        vertex_jitter = rng.uniform(-0.4, 0.4, (n, 6))
        cxs, cys, rs = (cx * _ONE).astype(int).tolist(), (cy * _ONE).astype(int).tolist(), radii.tolist()
        kinds, aspects, angles = kind.tolist(), aspect.tolist(), angle.tolist()
        for i in range(n):
            centre = (cxs[i], cys[i])
            r = rs[i]
            label = float(i + 1)
            if kinds[i] < self.ellipse_fraction:
                axes = (int(r * _ONE), int(r * aspects[i] * _ONE))
                cv2.ellipse(labels, centre, axes, angles[i], 0, 360, label, -1, cv2.LINE_8, _SHIFT)
            elif kinds[i] < self.ellipse_fraction + self.polygon_fraction:
                k = int(n_vertices[i])
                theta = np.deg2rad(angle[i]) + 2 * np.pi * (np.arange(k) + vertex_jitter[i, :k]) / k
                pts = np.stack([cx[i] + r * np.cos(theta), cy[i] + r * np.sin(theta)], axis=1)
                cv2.fillConvexPoly(labels, np.round(pts * _ONE).astype(np.int32), label, cv2.LINE_8, _SHIFT)
            else:
                cv2.circle(labels, centre, int(r * _ONE), label, -1, cv2.LINE_8, _SHIFT)
        return labels

    def sample(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """One dead-leaves image, (height, width, 3) float32 in [0, 1]."""
        ss = self.supersample
        h, w = height * ss, width * ss
        r_max = self.r_max * max(height, width) if self.r_max <= 1 else self.r_max
        radii = self._radii(rng, self.max_shapes, max(r_max, self.r_min * 1.01))
        # enough leaves to cover the (slightly enlarged) canvas ``coverage`` times over
        needed = self.coverage * 1.2 * height * 1.2 * width
        count = int(np.searchsorted(np.cumsum(np.pi * radii**2), needed)) + 1
        radii = radii[: min(count, self.max_shapes)] * ss
        labels = self._labels(rng, h, w, radii).astype(np.int64)
        n = radii.size + 1
        # colours: a luminance with moderate, correlated chroma; sometimes saturated
        lum = rng.random(n) ** 1.3
        chroma = rng.normal(0.0, 1.0, (n, 3)) * rng.choice([0.05, 0.15, 0.35], n, p=[0.4, 0.45, 0.15])[:, None]
        colours = np.clip(lum[:, None] + chroma - chroma.mean(axis=1, keepdims=True), 0.0, 1.0)
        colours = colours.astype(np.float32)
        image = colours[labels]  # (h, w, 3)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        yy /= h
        xx /= w
        if self.gradients:
            gx = (rng.normal(0.0, 0.3, n) * (rng.random(n) < 0.6)).astype(np.float32)
            gy = (rng.normal(0.0, 0.3, n) * (rng.random(n) < 0.6)).astype(np.float32)
            shade = gx[labels] * (xx - 0.5) + gy[labels] * (yy - 0.5)
            image *= (1.0 + shade)[:, :, None]
        if self.texture:
            has = rng.random(n) < 0.35
            amp = (rng.uniform(0.03, 0.2, n) * has).astype(np.float32)
            freq = rng.uniform(4.0, 0.25 * min(height, width), n).astype(np.float32)  # cycles per image
            ang = rng.uniform(0, np.pi, n).astype(np.float32)
            phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
            fx, fy = (freq * np.cos(ang))[labels], (freq * np.sin(ang))[labels]
            stripes = np.sin(2 * np.pi * (fx * xx + fy * yy) + phase[labels])
            image *= (1.0 + amp[labels] * stripes)[:, :, None]
            grain = rng.normal(0.0, 1.0, (h, w)).astype(np.float32) * rng.uniform(0.0, 0.03)
            image += grain[:, :, None]
        if ss > 1:
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)


def _reserved_photo_dir() -> Path | None:
    """The folder of scikit-image's bundled photos (reserved for evaluation), found without importing it."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        return None
    return (Path(spec.origin).parent / "data").resolve()


class FolderSource:
    """Random crops (with random flips) of the images in a folder.

    ``folder``: images of any size (smaller ones are upscaled just enough to fit a crop);
    ``recursive``: also search sub-folders; ``cache_size``: decoded images kept in memory per
    process (0 disables the cache). A folder without images is a UserError.
    """

    def __init__(self, folder: str | os.PathLike, recursive: bool = True, cache_size: int = 64) -> None:
        self.folder = Path(folder)
        reserved = _reserved_photo_dir()
        if reserved is not None and self.folder.resolve().is_relative_to(reserved):
            raise UserError(f"{self.folder}: scikit-image's bundled photos are reserved for evaluation; "
                            "choose another folder of sharp training images")
        self.files = list_images(self.folder, recursive=recursive)
        if not self.files:
            raise UserError(f"{self.folder}: no images found (expected PNG/JPEG/TIFF/BMP files)")
        self.cache_size = cache_size
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> np.ndarray:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        rgb = read_image(self.files[index]).rgb
        if self.cache_size > 0:
            self._cache[index] = rgb
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return rgb

    def sample(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        """A random (height, width, 3) float32 crop of a random image, randomly flipped."""
        index = int(rng.integers(len(self.files)))
        image = self._load(index)
        h, w = image.shape[:2]
        if h < height or w < width:
            scale = max(height / h, width / w)
            size = (max(width, int(np.ceil(w * scale))), max(height, int(np.ceil(h * scale))))
            image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
            h, w = image.shape[:2]
        top = int(rng.integers(h - height + 1))
        left = int(rng.integers(w - width + 1))
        crop = image[top:top + height, left:left + width]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
        return np.ascontiguousarray(np.clip(crop, 0.0, 1.0), dtype=np.float32)
