"""The knobs of ``algorithm: alternating`` as one frozen dataclass: names and types here, defaults
and descriptions in the ``alternating`` section of ``configs/defaults/deblur.yml`` (their one
source), every range checked here, whether the knobs come from a config or from a direct call."""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from utils.config import load_schema
from utils.errors import UserError


@functools.cache
def _schema_defaults() -> dict[str, Any]:
    return load_schema("deblur")["alternating"]


def _odd(value: Any) -> bool:
    return isinstance(value, int) and value >= 3 and value % 2 == 1


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class AlternatingOptions:
    """Every knob of :func:`deblurring.alternating.deblur_alternating` (described in the schema)."""

    psf_size: int
    support_start: int
    support_step: float
    support_gain: float
    large_support_gain: float
    large_support: Sequence[int]
    candidates: Sequence[Sequence[float]]  # [min_kernel, l0_weight(, scale_ratio)] per run
    select_weight: float
    scale_ratio: float
    iterations: int
    l0_decay: float
    l0_min: float
    l0_beta_max: float
    kernel_reg: float
    kernel_threshold: float | Sequence[float] | None
    kernel_min_mass: float
    edge_select: float
    edge_window: float
    prefilter: float | None
    cells: bool
    space_projection: bool
    final_weight: float | None
    final_noise_scale: float
    final_noise_power: float
    final_alpha: float
    final_beta_rate: float
    final_beta_max: float
    final_second_order: float
    final_tile: int | None
    polish: int
    polish_reg: float
    polish_beta_rate: float
    refine_rounds: int
    refine_gamma: float
    estimate_side: int | None

    @classmethod
    def from_knobs(cls, knobs: Mapping[str, Any]) -> AlternatingOptions:
        """The schema's defaults with ``knobs`` over them; an unknown knob is a TypeError (as for a
        function's keyword), a value out of range a :class:`UserError` naming ``alternating.<knob>``."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(knobs) - names)
        if unknown:
            raise TypeError(f"unknown alternating knob(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
        return cls(**{**copy.deepcopy(_schema_defaults()), **knobs})

    def __post_init__(self) -> None:
        def fail(key: str, expected: str) -> None:
            raise UserError(f"'alternating.{key}' must be {expected}, got {getattr(self, key)!r}")

        for key in ("psf_size", "support_start"):
            if not _odd(getattr(self, key)):
                fail(key, "odd and >= 3")
        if not self.support_step > 1:
            fail("support_step", "> 1")
        if not 0 <= self.support_gain < 1:
            fail("support_gain", "in [0, 1)")
        if not _number(self.large_support_gain) or not -1 < self.large_support_gain < 1:
            fail("large_support_gain", "a number in (-1, 1)")
        sides = self.large_support
        if not isinstance(sides, (list, tuple)) or len(sides) != 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sides) or sides[0] >= sides[1]:
            fail("large_support", "[low, high]: two integers with 1 <= low < high (px)")
        if not self.candidates or any(
            not isinstance(c, (list, tuple)) or len(c) not in (2, 3) or not all(_number(v) for v in c)
            for c in self.candidates
        ):
            fail("candidates", "a non-empty list of [min_kernel, l0_weight(, scale_ratio)]")
        if not isinstance(self.iterations, int) or self.iterations < 1:
            fail("iterations", ">= 1")
        threshold = self.kernel_threshold
        values = threshold if isinstance(threshold, (list, tuple)) else [threshold]
        if threshold is not None and (not values or any(not _number(v) or not 0 <= v < 1 for v in values)):
            fail("kernel_threshold", "null, a number in [0, 1) or a non-empty list of them")
        for key in ("final_beta_rate", "polish_beta_rate"):
            if not _number(getattr(self, key)) or getattr(self, key) <= 1:
                fail(key, "a number > 1")
        if not _number(self.final_second_order) or self.final_second_order < 0:
            fail("final_second_order", "a number >= 0")
        if self.final_tile is not None and (not isinstance(self.final_tile, int) or self.final_tile < 64):
            fail("final_tile", "null or an integer >= 64")
