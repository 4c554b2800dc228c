"""Cosine annealing with warm restarts, in closed form (BasicSR's CosineAnnealingRestartLR semantics).

Training is split into periods starting at iteration 0 and at each restart point ``r_1 < r_2 < ...``.
In period ``j`` (starting at ``r_j``, length ``T_j``, weight ``w_j``) the learning rate is

    lr(t) = eta_min + w_j · (base_lr − eta_min) · ½ · (1 + cos(π · min(t − r_j, T_j) / T_j))

so it falls from ``eta_min + w_j·(base_lr − eta_min)`` to ``eta_min`` over ``T_j`` iterations and
stays at ``eta_min`` if the next restart comes later. ``lr(t)`` is the rate of the optimizer step
that produces iteration ``t + 1``. Being a pure function of ``t`` makes resuming exact.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import torch
from torch.optim.lr_scheduler import LRScheduler

from utils.errors import UserError


def check_restart_schedule(
    periods: Sequence[int], restarts: Sequence[int], weights: Sequence[float], where: str = "train"
) -> list[float]:
    """Validate a restart schedule; returns one weight per period (the first period's weight
    is 1 when ``weights`` has one entry per restart). Raises :class:`UserError` naming the key."""
    if not periods or any(not isinstance(p, (int, float)) or p <= 0 for p in periods):
        raise UserError(
            f"config key '{where}.T_period' must be a non-empty list of positive lengths, got {periods}"
        )
    if len(periods) != len(restarts) + 1:
        raise UserError(
            f"config key '{where}.T_period' has {len(periods)} periods but '{where}.restarts' has "
            f"{len(restarts)} restarts (expected one more period than restarts)"
        )
    if any(b <= a for a, b in zip([0, *restarts], restarts)):
        raise UserError(
            f"config key '{where}.restarts' must be increasing positive iterations, got {restarts}"
        )
    if len(weights) == len(restarts):
        weights = [1.0, *weights]
    if len(weights) != len(periods):
        raise UserError(
            f"config key '{where}.restart_weights' has {len(weights)} entries; expected {len(restarts)} "
            f"(one per restart) or {len(periods)} (one per period)"
        )
    return [float(w) for w in weights]


def restart_cosine_factor(
    t: int, periods: Sequence[int], restarts: Sequence[int], weights: Sequence[float]
) -> tuple[float, float]:
    """(w_j, cosine factor in [0, 1]) at iteration ``t``; ``weights`` has one entry per period."""
    j = bisect.bisect_right(list(restarts), t)
    start = restarts[j - 1] if j > 0 else 0
    progress = min(t - start, periods[j]) / periods[j]
    return weights[j], 0.5 * (1.0 + math.cos(math.pi * progress))


class CosineAnnealingRestartLR(LRScheduler):
    """Cosine annealing with restarts for ``optimizer`` (see the module docstring for the formula).

    ``periods``: T_j per period; ``restarts``: the iterations r_1.. where periods 2.. start
    (one fewer than ``periods``); ``restart_weights``: one per restart (the first period has
    weight 1) or one per period; ``eta_min``: the floor. ``state_dict`` holds plain numbers only.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        periods: Sequence[int],
        restarts: Sequence[int],
        restart_weights: Sequence[float] = (),
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.periods = [int(p) for p in periods]
        self.restarts = [int(r) for r in restarts]
        weights = list(restart_weights) or [1.0] * len(self.restarts)
        self.weights = check_restart_schedule(self.periods, self.restarts, weights)
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The learning rate of every parameter group at iteration ``self.last_epoch``."""
        t = max(self.last_epoch, 0)
        weight, factor = restart_cosine_factor(t, self.periods, self.restarts, self.weights)
        return [self.eta_min + weight * (base - self.eta_min) * factor for base in self.base_lrs]
