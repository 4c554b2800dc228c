"""``build_dataset``: one entry of a training config's ``datasets`` section -> a torch Dataset."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch.utils.data import Dataset

from data.kernels import KernelSampler
from data.sharp_sources import DeadLeavesSource, FolderSource
from data.synthetic import NoiseModel, SyntheticBlurDataset
from utils.config import build_config, load_schema
from utils.errors import UserError

_MODE_ALIASES = {"REDS": "lmdb", "GOPRO": "lmdb"}  # the published options' names for paired LMDBs
_STREAMS = {"train": 0, "val": 1, "test": 2}


def _pair(value: Any, key: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        raise UserError(f"config key '{key}' expects a [low, high] pair of numbers, got {value!r}")
    low, high = float(value[0]), float(value[1])
    if low > high:
        raise UserError(f"config key '{key}': low {low} is larger than high {high}")
    return low, high


def build_synthetic(opt: Mapping[str, Any], seed: int, phase: str) -> SyntheticBlurDataset:
    """The synthetic dataset of a ``mode: synthetic`` entry (``opt`` holds every schema key)."""
    syn = opt["synthetic"]
    size = opt["HQ_size"]
    if not isinstance(size, int) or size < 1:
        raise UserError(f"config key 'HQ_size' must be a positive integer for mode synthetic, got {size!r}")
    try:
        kernels = KernelSampler(
            size=syn["kernel_size"],
            kinds=list(syn["kernel_kinds"]),
            probs=list(syn["kernel_probs"]) if syn["kernel_probs"] is not None else None,
            intensity=_pair(syn["kernel_intensity"], "synthetic.kernel_intensity"),
        )
    except ValueError as exc:
        raise UserError(f"config section 'synthetic' (kernel_size/kernel_kinds/kernel_probs): {exc}") from exc
    sigma = _pair(syn["noise_sigma"], "synthetic.noise_sigma")
    if sigma[0] < 0:
        raise UserError(f"config key 'synthetic.noise_sigma' must be non-negative, got {list(sigma)}")
    if syn["source"] == "deadleaves":
        leaves = syn["deadleaves"]
        try:
            source: DeadLeavesSource | FolderSource = DeadLeavesSource(
                r_min=leaves["r_min"], r_max=leaves["r_max"], coverage=leaves["coverage"],
                gradients=leaves["gradients"], texture=leaves["texture"],
            )
        except ValueError as exc:
            raise UserError(f"config section 'synthetic.deadleaves': {exc}") from exc
    else:  # folder (the schema allows only these two sources)
        if not syn["sharp_dir"]:
            raise UserError("config key 'synthetic.sharp_dir' is required when synthetic.source is folder")
        source = FolderSource(syn["sharp_dir"])
    if not isinstance(syn["num_samples"], int) or syn["num_samples"] < 1:
        raise UserError(f"config key 'synthetic.num_samples' must be a positive integer, got {syn['num_samples']!r}")
    return SyntheticBlurDataset(
        source,
        kernels,
        crop_size=size,
        noise=NoiseModel(sigma=sigma, quantize=bool(syn["quantize"])),
        num_samples=syn["num_samples"],
        seed=seed,
        stream=_STREAMS.get(phase, 3),
    )


def _check_sizes(opt: Mapping[str, Any]) -> None:
    """LQ_size, a published key, can only repeat HQ_size. (The other published keys with one supported
    value, N_frames, interval_list and color, are checked by the schema's allowed values.)"""
    if opt["LQ_size"] is not None and opt["LQ_size"] != opt["HQ_size"]:
        raise UserError(f"config key 'LQ_size' ({opt['LQ_size']}) must equal HQ_size ({opt['HQ_size']}): "
                        "sharp and blurry crops have one size")


def build_dataset(opt: Mapping[str, Any], seed: int, phase: str = "train") -> Dataset:
    """Build the Dataset described by ``opt`` (one ``datasets.<name>`` entry; see
    ``configs/defaults/dataset.yml``). Missing keys take the schema defaults.

    ``seed``: the run's seed (synthetic samples are a pure function of seed, phase and index);
    ``phase``: "train" (random crops and flips/rotations) or "val"/"test" (centre crops, no
    augmentation, a different synthetic stream). Every sample is a dict with "sharp" and "blur"
    (3, S, S) float32 tensors in [0, 1] (plus "kernel" (1, K, K) for synthetic data, "key" for
    real data). A bad entry is a UserError naming the key.
    """
    opt = build_config(load_schema("dataset"), opt, source=f"datasets.{phase}")
    mode = opt["mode"] = _MODE_ALIASES.get(opt["mode"], opt["mode"])
    _check_sizes(opt)
    if mode == "synthetic":
        return build_synthetic(opt, seed, phase)
    from data.paired import build_paired  # real-data datasets (LMDB / folders)

    return build_paired(opt, phase)
