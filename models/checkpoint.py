"""Checkpoint files: our format, and import of the published KernelWizard state_dicts.

This module knows files, not models: it reads a file into :class:`CheckpointContents` and copies
tensors into a given module; :class:`models.kernel_space.KernelSpace` builds the model (the imports
run one way, kernel_space → checkpoint).

Our format: ``{"format": "kernel-space/1", "config": <model config>, "state_dict":
..., "meta": {...}}``, written atomically, read with ``torch.load(..., weights_only=True)`` — a
checkpoint is untrusted input, and one that holds pickled Python objects is refused.

A published checkpoint is a plain state_dict (``feature_extractor.*``, ``kernel_extractor.*``,
``adapter.*``, ``recon_trunk.*``, sometimes with a ``module.`` prefix); its architecture is
inferred from the tensor shapes.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from utils.errors import UserError
from utils.fileio import atomic_path

FORMAT = "kernel-space/1"

# published prefix -> ours
PUBLISHED_PREFIXES = {
    "feature_extractor.": "preprocess.",
    "kernel_extractor.model.": "extractor.model.",
    "adapter.model.": "generator.unet.",
    "recon_trunk.": "generator.postprocess.",
}
INNERMOST = "adapter.model." + "submodule." * 4


def save_checkpoint(
    model: Any, path: str | Path, meta: Mapping[str, Any] | None = None, half: bool = False
) -> None:
    """Atomically write ``model`` (a KernelSpace) with ``meta`` merged over ``model.meta``.

    Tensors are moved to the CPU so the file loads anywhere. ``half``: store the floating-point
    weights as float16 (half the file; loading casts them back to the model's float32).
    """
    full_meta = {**model.meta, **(meta or {})}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    payload = {
        "format": FORMAT,
        "config": model.config,
        "state_dict": state,
        "meta": _cpu(full_meta),
    }
    with atomic_path(path, suffix=".pth") as tmp:
        torch.save(payload, tmp)


def _cpu(obj: Any) -> Any:
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def read_checkpoint_file(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` with every failure turned into a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: checkpoint file is empty")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc) or "GLOBAL" in str(exc):
            raise UserError(
                f"{path}: refused to load: the checkpoint contains pickled Python objects "
                "(only tensors and plain containers are accepted)"
            ) from exc
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__})") from exc
    except Exception as exc:  # zip/pickle/EOF errors of a random-bytes or truncated file
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__})") from exc


def is_published_state_dict(sd: Mapping[str, Any]) -> bool:
    """True when ``sd`` looks like a published KernelWizard state_dict (after prefix stripping)."""
    return any(k.startswith("feature_extractor.") for k in sd) and any(k.startswith("adapter.") for k in sd)


def strip_module_prefix(sd: Mapping[str, Any]) -> dict[str, Any]:
    """Remove a DataParallel/DDP ``module.`` prefix from every key that has it."""
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in sd.items()}


def _count(sd: Mapping[str, Any], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.fullmatch(k))})


def infer_published_config(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict:
    """Infer the KernelWizard config (nf, kernel_dim, front/back RBs, n_blocks, VAE) from shapes."""
    try:
        first = sd["feature_extractor.0.weight"]
        g_out = sd["kernel_extractor.model.16.weight"].shape[0]
        innermost_down = sd[INNERMOST + "down.1.weight"].shape[0]
        innermost_up_in = sd[INNERMOST + "up.1.weight"].shape[0]
    except KeyError as exc:
        raise UserError(f"{source}: published checkpoint is missing tensor {exc.args[0]!r}") from exc
    nf, input_nc = int(first.shape[0]), int(first.shape[1])
    kernel_dim = int(innermost_up_in - innermost_down)
    if g_out == kernel_dim:
        use_vae = False
    elif g_out == 2 * kernel_dim:
        use_vae = True
    else:
        raise UserError(
            f"{source}: G outputs {g_out} channels but F expects a {kernel_dim}-channel code "
            "(expected equal, or twice for a VAE model)"
        )
    return {
        "input_nc": input_nc,
        "nf": nf,
        "front_RBs": _count(sd, r"feature_extractor\.(\d+)\.conv1\.weight"),
        "back_RBs": _count(sd, r"recon_trunk\.(\d+)\.conv1\.weight"),
        "kernel_dim": kernel_dim,
        "use_vae": use_vae,
        "KernelExtractor": {"n_blocks": _count(sd, r"kernel_extractor\.model\.(\d+)\.conv_block\.1\.weight")},
    }


def convert_published_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename published tensor names to ours (unknown names are kept, so strict loading names them)."""
    out = {}
    for key, value in sd.items():
        for old, new in PUBLISHED_PREFIXES.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


@dataclass(frozen=True)
class CheckpointContents:
    """What a kernel-space checkpoint file holds, in this project's names: the model ``config``, the
    ``state_dict`` (published tensor names already renamed), the ``meta`` mapping, and whether the file
    was a ``published`` KernelWizard state_dict (its config then inferred from the shapes)."""

    config: dict[str, Any]
    state_dict: dict[str, Any]
    meta: dict[str, Any]
    published: bool
    source: str


def published_contents(sd: Mapping[str, Any], source: str = "checkpoint") -> CheckpointContents:
    """A published state_dict (with or without ``module.``) → its :class:`CheckpointContents`."""
    sd = strip_module_prefix(sd)
    return CheckpointContents(infer_published_config(sd, source), convert_published_state_dict(sd),
                              {"source": "published", "converted_from": str(source)}, True, str(source))


def _published_state_dict(data: Any) -> dict[str, Any] | None:
    """The published KernelWizard state_dict a loaded file holds (plain, or under ``state_dict`` /
    ``params``), or None when it holds none."""
    sd = data.get("state_dict", data.get("params", data)) if isinstance(data, dict) else None
    return sd if isinstance(sd, dict) and is_published_state_dict(strip_module_prefix(sd)) else None


def read_kernel_space_file(path: str | Path) -> CheckpointContents:
    """Read a checkpoint of ours or a published state_dict → :class:`CheckpointContents`; a file that
    is neither is a one-line UserError."""
    data = read_checkpoint_file(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a checkpoint dict, got {type(data).__name__}")
    if "format" in data:
        if data["format"] != FORMAT:
            raise UserError(f"{path}: unsupported checkpoint format {data['format']!r} (expected {FORMAT!r})")
        for key in ("config", "state_dict"):
            if not isinstance(data.get(key), dict):
                raise UserError(f"{path}: checkpoint has no '{key}' mapping")
        return CheckpointContents(data["config"], data["state_dict"], data.get("meta") or {}, False, str(path))
    sd = _published_state_dict(data)
    if sd is None:
        raise UserError(
            f"{path}: not a kernel-space checkpoint (expected format {FORMAT!r} "
            "or a published KernelWizard state_dict)"
        )
    return published_contents(sd, str(path))


def read_published_file(path: str | Path) -> CheckpointContents:
    """Read a published KernelWizard state_dict → :class:`CheckpointContents`; any other file
    (ours included) is a one-line UserError."""
    sd = _published_state_dict(read_checkpoint_file(path))
    if sd is None:
        raise UserError(f"{path}: not a published KernelWizard state_dict (no feature_extractor.*/adapter.* tensors)")
    return published_contents(sd, str(path))


def load_state(model: torch.nn.Module, contents: CheckpointContents) -> None:
    """Copy ``contents.state_dict`` into ``model`` strictly; a missing, extra or misshapen tensor is a
    one-line UserError naming the file and the tensor (by its published name for a published file)."""
    sd, source = contents.state_dict, contents.source
    own = model.state_dict()
    rename = {v: k for k, v in PUBLISHED_PREFIXES.items()} if contents.published else {}

    def shown(name: str) -> str:
        for new, old in rename.items():
            if name.startswith(new):
                return old + name[len(new) :]
        return name

    missing = [k for k in own if k not in sd]
    extra = [k for k in sd if k not in own]
    if missing:
        raise UserError(f"{source}: checkpoint is missing tensor {shown(missing[0])!r} ({len(missing)} missing)")
    if extra:
        raise UserError(f"{source}: checkpoint has unexpected tensor {shown(extra[0])!r} ({len(extra)} extra)")
    for key, value in own.items():
        got = sd[key]
        if not torch.is_tensor(got) or tuple(got.shape) != tuple(value.shape):
            shape = tuple(got.shape) if torch.is_tensor(got) else type(got).__name__
            raise UserError(f"{source}: tensor {shown(key)!r} has shape {shape}, expected {tuple(value.shape)}")
    model.load_state_dict(sd, strict=True)
