"""Device selection shared by every entry point (``--device``)."""

from __future__ import annotations

import torch

from utils.errors import UserError


def default_device() -> str:
    """``"cuda"`` when a GPU is usable, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(name: str | None) -> torch.device:
    """Turn a ``--device`` string into a usable :class:`torch.device`.

    ``None`` or ``"auto"`` picks :func:`default_device`. A device that does not exist on this
    machine (``cuda`` without a GPU, ``cuda:3`` on a one-GPU box, a typo) is a :class:`UserError`.
    """
    if name in (None, "", "auto"):
        name = default_device()
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"--device {name!r}: not a device name (expected cpu, cuda or cuda:N)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name!r}: CUDA is not available on this machine (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise UserError(f"--device {name!r}: MPS is not available on this machine")
    elif device.type != "cpu":
        raise UserError(f"--device {name!r}: unsupported device type (expected cpu, cuda or cuda:N)")
    return device
