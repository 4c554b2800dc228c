"""A DistributedSampler that can start an epoch part-way through (for exact resuming)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sized

from torch.utils.data import DistributedSampler


class ResumableDistributedSampler(DistributedSampler):
    """:class:`~torch.utils.data.DistributedSampler` (shuffled by ``seed + epoch``, this rank's share
    of every epoch) that skips the first ``start`` indices of the current epoch.

    With one process (``num_replicas=1``) it is a seeded shuffling sampler. The order of an epoch
    is a pure function of (seed, epoch, rank, world size), so ``set_epoch(e); set_start(n)``
    reproduces exactly the indices a run that never stopped would have drawn next.
    """

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=True)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` indices of this rank's current epoch (0: the whole epoch)."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"start {start} outside [0, {self.num_samples}]")
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return self.num_samples - self.start
