"""Paired (sharp, blurry) datasets of real images: LMDBs, folders, and their concatenation ("mix").

Every sample is ``{"sharp": (3,S,S), "blur": (3,S,S), "key": str}`` with float32 tensors in [0, 1].
In the train phase a random S×S crop, random flips and a random 90° rotation are applied
identically to both images; in other phases the crop is central and nothing else is changed
(``crop_size=None`` keeps whole images).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from data.image_io import is_image_file, read_image
from data.lmdb_io import LmdbImages
from utils.errors import UserError


def paired_augment(
    rng: np.random.Generator,
    sharp: np.ndarray,
    blur: np.ndarray,
    crop_size: int | None,
    train: bool,
    use_flip: bool = True,
    use_rot: bool = True,
    name: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Crop (random when ``train``, else central) and, when ``train``, flip/rotate both arrays alike.

    ``sharp``/``blur``: H×W×C arrays of the same size. Returns two crop_size×crop_size×C arrays
    (or the whole images when ``crop_size`` is None). An image smaller than the crop is a UserError
    naming ``name``.
    """
    h, w = sharp.shape[:2]
    if crop_size is not None:
        if h < crop_size or w < crop_size:
            raise UserError(f"{name}: image is {h}×{w}, smaller than HQ_size {crop_size}")
        if train:
            top, left = int(rng.integers(h - crop_size + 1)), int(rng.integers(w - crop_size + 1))
        else:
            top, left = (h - crop_size) // 2, (w - crop_size) // 2
        sharp = sharp[top:top + crop_size, left:left + crop_size]
        blur = blur[top:top + crop_size, left:left + crop_size]
    if train:
        if use_flip and rng.random() < 0.5:
            sharp, blur = sharp[:, ::-1], blur[:, ::-1]
        if use_flip and rng.random() < 0.5:
            sharp, blur = sharp[::-1], blur[::-1]
        if use_rot and rng.random() < 0.5:
            sharp, blur = sharp.transpose(1, 0, 2), blur.transpose(1, 0, 2)
    return sharp, blur


def _to_chw(image: np.ndarray) -> torch.Tensor:
    """H×W×3 (uint8 or float in [0, 1]) -> (3, H, W) float32 tensor in [0, 1]."""
    if image.dtype == np.uint8:
        array = image.astype(np.float32) / 255.0
    else:
        array = image.astype(np.float32, copy=False)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


class _PairedBase(Dataset):
    """Shared sampling: augmentation randomness drawn from torch's RNG (seeded per DataLoader worker)."""

    crop_size: int | None
    train: bool
    use_flip: bool
    use_rot: bool

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))

    def _sample(self, key: str, sharp: np.ndarray, blur: np.ndarray, name: str) -> dict[str, Any]:
        if sharp.shape != blur.shape:
            raise UserError(f"{name}: sharp image is {sharp.shape[:2]} but blurry image is {blur.shape[:2]}")
        sharp, blur = paired_augment(self._rng(), sharp, blur, self.crop_size, self.train,
                                     self.use_flip, self.use_rot, name)
        return {"sharp": _to_chw(sharp), "blur": _to_chw(blur), "key": key}


class PairedLMDBDataset(_PairedBase):
    """Pairs from a sharp LMDB and a blurry LMDB with the same keys (see data/lmdb_io.py).

    The LMDB environments open lazily in each DataLoader worker. Keys that differ between the two
    LMDBs are a UserError naming both and an example key.
    """

    def __init__(
        self,
        sharp_lmdb: str | os.PathLike,
        blur_lmdb: str | os.PathLike,
        crop_size: int | None = 256,
        train: bool = True,
        use_flip: bool = True,
        use_rot: bool = True,
    ) -> None:
        self.sharp = LmdbImages(Path(sharp_lmdb))
        self.blur = LmdbImages(Path(blur_lmdb))
        only_sharp = sorted(set(self.sharp.keys) - set(self.blur.keys))
        only_blur = sorted(set(self.blur.keys) - set(self.sharp.keys))
        if only_sharp or only_blur:
            example = (f"'{only_sharp[0]}' is in {self.sharp.path} but not in {self.blur.path}" if only_sharp
                       else f"'{only_blur[0]}' is in {self.blur.path} but not in {self.sharp.path}")
            raise UserError(f"keys of {self.sharp.path} and {self.blur.path} differ "
                            f"({len(only_sharp)} only sharp, {len(only_blur)} only blurry): e.g. {example}")
        for key in self.sharp.keys:
            if self.sharp.shapes[key][:2] != self.blur.shapes[key][:2]:
                raise UserError(f"key '{key}': {self.sharp.path} has size {self.sharp.shapes[key][:2]} but "
                                f"{self.blur.path} has {self.blur.shapes[key][:2]}")
        self.keys = list(self.sharp.keys)
        self.crop_size, self.train, self.use_flip, self.use_rot = crop_size, train, use_flip, use_rot

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> dict[str, Any]:
        key = self.keys[index]
        return self._sample(key, self.sharp.read(key), self.blur.read(key), f"{self.sharp.path}[{key}]")


class PairedFolderDataset(_PairedBase):
    """Pairs from ``root/sharp/**`` and ``root/blur/**`` matched by relative path (the tree written by
    scripts/make_synthetic_dataset.py). A file present on one side only is a UserError."""

    def __init__(
        self,
        root: str | os.PathLike,
        crop_size: int | None = 256,
        train: bool = True,
        use_flip: bool = True,
        use_rot: bool = True,
    ) -> None:
        self.root = Path(root)
        sides = {}
        for side in ("sharp", "blur"):
            folder = self.root / side
            if not folder.is_dir():
                raise UserError(f"{folder}: folder not found; expected {self.root}/sharp and {self.root}/blur")
            sides[side] = {p.relative_to(folder).as_posix() for p in folder.rglob("*")
                           if p.is_file() and is_image_file(p) and not p.name.startswith(".")}
        if sides["sharp"] != sides["blur"]:
            diff = sorted(sides["sharp"] ^ sides["blur"])
            where = "sharp" if diff[0] in sides["sharp"] else "blur"
            raise UserError(f"{self.root}: sharp/ and blur/ hold different files, e.g. {where}/{diff[0]} "
                            f"has no partner ({len(diff)} unmatched)")
        if not sides["sharp"]:
            raise UserError(f"{self.root}/sharp: no images found")
        self.files = sorted(sides["sharp"])
        self.crop_size, self.train, self.use_flip, self.use_rot = crop_size, train, use_flip, use_rot

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rel = self.files[index]
        sharp = read_image(self.root / "sharp" / rel).rgb
        blur = read_image(self.root / "blur" / rel).rgb
        key = rel.rsplit(".", 1)[0].replace("/", "_")
        return self._sample(key, sharp, blur, str(self.root / "sharp" / rel))


def _paths(value: Any, key: str) -> list[str]:
    if isinstance(value, (str, os.PathLike)):
        return [str(value)]
    if isinstance(value, Sequence) and value and all(isinstance(v, (str, os.PathLike)) for v in value):
        return [str(v) for v in value]
    raise UserError(f"config key '{key}' expects a path (or a list of paths for mode mix), got {value!r}")


def build_paired(opt: Mapping[str, Any], phase: str) -> Dataset:
    """The real-data dataset of a ``mode: lmdb | folder | mix`` entry (``opt`` holds every schema key)."""
    size = opt["HQ_size"]
    if size is not None and (not isinstance(size, int) or size < 1):
        raise UserError(f"config key 'HQ_size' must be a positive integer or null, got {size!r}")
    common = {"crop_size": size, "train": phase == "train", "use_flip": bool(opt["use_flip"]),
              "use_rot": bool(opt["use_rot"])}
    if opt["mode"] == "folder":
        if opt["dataroot_HQ"] is None:
            raise UserError("config key 'dataroot_HQ' is required for mode folder "
                            "(the folder holding sharp/ and blur/)")
        return PairedFolderDataset(_paths(opt["dataroot_HQ"], "dataroot_HQ")[0], **common)
    if opt["mode"] == "lmdb":
        if opt["dataroot_HQ"] is None or opt["dataroot_LQ"] is None:
            raise UserError("config keys 'dataroot_HQ' and 'dataroot_LQ' are required for mode lmdb "
                            "(sharp and blurry LMDBs)")
        sharp, blur = _paths(opt["dataroot_HQ"], "dataroot_HQ"), _paths(opt["dataroot_LQ"], "dataroot_LQ")
        if len(sharp) != 1 or len(blur) != 1:
            raise UserError("mode lmdb takes one sharp and one blurry LMDB; use mode mix for lists")
        return PairedLMDBDataset(sharp[0], blur[0], **common)
    return _build_mix(opt, common)


def _build_mix(opt: Mapping[str, Any], common: dict[str, Any]) -> Dataset:
    """``mode: mix``: several LMDB pairs concatenated, each repeated ``dataset_weights[i]`` times."""
    hq_key = "dataroots_HQ" if opt["dataroots_HQ"] is not None else "dataroot_HQ"
    lq_key = "dataroots_LQ" if opt["dataroots_LQ"] is not None else "dataroot_LQ"
    if opt[hq_key] is None or opt[lq_key] is None:
        raise UserError("config keys 'dataroots_HQ' and 'dataroots_LQ' (lists of sharp and blurry LMDBs) "
                        "are required for mode mix")
    sharp, blur = _paths(opt[hq_key], hq_key), _paths(opt[lq_key], lq_key)
    if len(sharp) != len(blur):
        raise UserError(f"mode mix: {hq_key} lists {len(sharp)} LMDBs but {lq_key} lists {len(blur)}")
    weights = opt["dataset_weights"] if opt["dataset_weights"] is not None else [1] * len(sharp)
    if (not isinstance(weights, (list, tuple)) or len(weights) != len(sharp)
            or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in weights)):
        raise UserError(f"config key 'dataset_weights' must list {len(sharp)} positive integers "
                        f"(one per LMDB pair), got {weights!r}")
    parts = [PairedLMDBDataset(s, b, **common) for s, b in zip(sharp, blur)]
    return ConcatDataset([part for part, w in zip(parts, weights) for _ in range(w)])
