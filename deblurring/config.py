"""The deblur config: ``configs/defaults/deblur.yml`` completed and checked (every algorithm)."""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

from deblurring.options import AlternatingOptions
from utils.config import build_config, load_schema, parse_override
from utils.errors import UserError

DATA_TERMS = ("mse", "charbonnier", "ssim", "perceptual")

_CHOOSE = "use 'algorithm: direct' (free pixels and code) or 'algorithm: dip' (image and kernel deep image priors)"
RETIRED_KEYS = {  # keys of the layout before the algorithms were split → what replaced them
    "image.param": f"was removed: {_CHOOSE}",
    "kernel.param": f"was removed: {_CHOOSE}",
    "warmup_iterations": "moved to 'dip.warmup_iterations'",
    "reg_noise_std": "moved to 'dip.reg_noise_std'",
    "image.in_channels": "moved to 'dip.image_in_channels'",
    "image.channels_down": "moved to 'dip.image_channels_down'",
    "image.channels_up": "moved to 'dip.image_channels_up'",
    "image.channels_skip": "moved to 'dip.image_channels_skip'",
    "kernel.in_channels": "moved to 'dip.kernel_in_channels'",
    "kernel.width": "moved to 'dip.kernel_width'",
    "kernel.n_down": "moved to 'dip.kernel_n_down'",
    "kernel.n_blocks": "moved to 'dip.kernel_n_blocks'",
    "kernel.lr_relative": "moved to 'direct.kernel_lr_relative'",
}


def _dotted(mapping: Mapping, prefix: str = "") -> Iterator[str]:
    """Every key of a nested mapping as a dotted path (sections and leaves)."""
    for key, value in mapping.items():
        yield f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _dotted(value, f"{prefix}{key}.")


def _refuse_retired(cfg: Mapping, overrides: Iterable[str], source: str) -> None:
    """A key of the old layout (``image.param``, ``warmup_iterations``, ...) is a one-line error saying
    what replaced it (the generic unknown-key error would not)."""
    keys = list(_dotted(cfg))
    for item in overrides:
        path, value = parse_override(item)
        keys.append(".".join(path))
        if isinstance(value, Mapping):
            keys.extend(_dotted(value, ".".join(path) + "."))
    for key in keys:
        if key in RETIRED_KEYS:
            raise UserError(f"{source}: config key '{key}' {RETIRED_KEYS[key]}")


def deblur_config(
    cfg: Mapping[str, Any] | None = None, source: str = "deblur config", overrides: Iterable[str] = ()
) -> dict:
    """Complete a (partial) deblur config over ``configs/defaults/deblur.yml`` and check its values.

    ``overrides``: ``--set KEY=VALUE`` strings applied over ``cfg``. Returns the full nested config;
    raises :class:`UserError` (one line naming the key) on an unknown, retired or invalid key.
    """
    overrides = list(overrides)
    _refuse_retired(cfg or {}, overrides, source)
    full = build_config(load_schema("deblur"), cfg or {}, overrides, source=source)
    scales, fractions = full["scales"], full["scale_fractions"]
    if not scales or len(scales) != len(fractions):
        raise UserError(f"{source}: 'scales' and 'scale_fractions' need one length (>= 1)")
    if any(not 0 < s <= 1 for s in scales) or list(scales) != sorted(scales) or scales[-1] != 1:
        raise UserError(f"{source}: 'scales' must increase in (0, 1] and end with 1.0, got {scales}")
    if any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise UserError(f"{source}: 'scale_fractions' must be >= 0 with a positive sum, got {fractions}")
    if full["iterations"] < 1 or full["dip"]["warmup_iterations"] < 0:
        raise UserError(f"{source}: 'iterations' must be >= 1 and 'dip.warmup_iterations' >= 0")
    if full["min_size"] < 1:
        raise UserError(f"{source}: 'min_size' must be >= 1")
    for phase in ("early", "late"):
        weights = full["loss"][phase]
        if any(weights[k] < 0 for k in weights):
            raise UserError(f"{source}: weights under 'loss.{phase}' must be >= 0")
        if not any(weights[k] > 0 for k in DATA_TERMS):
            raise UserError(f"{source}: 'loss.{phase}' needs a positive data term ({', '.join(DATA_TERMS)})")
    dip = full["dip"]
    if not (
        len(dip["image_channels_down"]) == len(dip["image_channels_up"]) == len(dip["image_channels_skip"]) >= 1
    ):
        raise UserError(f"{source}: 'dip.image_channels_down/up/skip' need one length (>= 1)")
    try:
        AlternatingOptions.from_knobs(full["alternating"])
    except UserError as error:
        raise UserError(f"{source}: {error}") from None
    return full


def through_space_keywords(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The keywords that :func:`deblurring.dip.deblur_dip` and :func:`deblurring.direct.deblur_direct`
    share, read off a full deblur config (its keys outside the ``alternating``, ``dip`` and ``direct``
    sections); each function's own keywords are its section, ``**cfg["dip"]`` or ``**cfg["direct"]``."""
    return {
        "iterations": cfg["iterations"],
        "scales": list(cfg["scales"]),
        "scale_fractions": list(cfg["scale_fractions"]),
        "min_size": cfg["min_size"],
        "image_lr": cfg["image"]["lr"],
        "kernel_lr": cfg["kernel"]["lr"],
        "kernel_init": cfg["kernel"]["init"],
        "kernel_rescale_init": cfg["kernel"]["rescale_init"],
        "lr_schedule": cfg["lr_schedule"],
        "lr_min_ratio": cfg["lr_min_ratio"],
        "loss": cfg["loss"],
        "early_stop": cfg["early_stop"],
        "amp": cfg["amp"],
    }
