"""The deblur config: ``configs/defaults/deblur.yml`` completed and checked (every algorithm)."""

from __future__ import annotations

from typing import Any, Mapping

from utils.config import build_config, load_schema
from utils.errors import UserError

DATA_TERMS = ("mse", "charbonnier", "ssim", "perceptual")


def deblur_config(cfg: Mapping[str, Any] | None = None, source: str = "deblur config") -> dict:
    """Complete a (partial) deblur config over ``configs/defaults/deblur.yml`` and check its values."""
    full = build_config(load_schema("deblur"), cfg or {}, source=source)
    scales, fractions = full["scales"], full["scale_fractions"]
    if not scales or len(scales) != len(fractions):
        raise UserError(f"{source}: 'scales' and 'scale_fractions' need one length (>= 1)")
    if any(not 0 < s <= 1 for s in scales) or list(scales) != sorted(scales) or scales[-1] != 1:
        raise UserError(f"{source}: 'scales' must increase in (0, 1] and end with 1.0, got {scales}")
    if any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise UserError(f"{source}: 'scale_fractions' must be >= 0 with a positive sum, got {fractions}")
    choices = {
        "image.param": (full["image"]["param"], ("dip", "pixels")),
        "kernel.param": (full["kernel"]["param"], ("dip", "code")),
        "kernel.init": (full["kernel"]["init"], ("mean_code", "identity", "zero")),
        "kernel.rescale_init": (
            full["kernel"]["rescale_init"],
            ("previous", "extract", "identity", "mean_code", "zero"),
        ),
        "lr_schedule": (full["lr_schedule"], ("step", "cosine", "constant")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise UserError(f"{source}: '{key}' must be one of {', '.join(allowed)}, got {value!r}")
    if full["iterations"] < 1 or full["warmup_iterations"] < 0:
        raise UserError(f"{source}: 'iterations' must be >= 1 and 'warmup_iterations' >= 0")
    if full["min_size"] < 1:
        raise UserError(f"{source}: 'min_size' must be >= 1")
    for phase in ("early", "late"):
        weights = full["loss"][phase]
        if any(weights[k] < 0 for k in weights):
            raise UserError(f"{source}: weights under 'loss.{phase}' must be >= 0")
        if not any(weights[k] > 0 for k in DATA_TERMS):
            raise UserError(f"{source}: 'loss.{phase}' needs a positive data term ({', '.join(DATA_TERMS)})")
    image = full["image"]
    if not (len(image["channels_down"]) == len(image["channels_up"]) == len(image["channels_skip"]) >= 1):
        raise UserError(f"{source}: 'image.channels_down/up/skip' need one length (>= 1)")
    alt = full["alternating"]
    if alt["psf_size"] < 3 or alt["psf_size"] % 2 == 0:
        raise UserError(f"{source}: 'alternating.psf_size' must be odd and >= 3, got {alt['psf_size']}")
    candidates = alt["candidates"]
    if not candidates or any(
        not isinstance(c, (list, tuple)) or len(c) not in (2, 3) or any(isinstance(v, bool) or
                                                                        not isinstance(v, (int, float)) for v in c)
        for c in candidates
    ):
        raise UserError(
            f"{source}: 'alternating.candidates' must be a non-empty list of [min_kernel, l0_weight(, scale_ratio)]"
        )
    if alt["iterations"] < 1:
        raise UserError(f"{source}: 'alternating.iterations' must be >= 1")
    return full
