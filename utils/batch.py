"""Running one command over many files: shards for clusters, a process pool for one machine.

``--shard K/N`` keeps every N-th file starting with the K-th (1 ≤ K ≤ N) of the sorted list, so N
jobs (a SLURM array ``--array=1-N`` with ``--shard $SLURM_ARRAY_TASK_ID/N``, or N machines) cover
every file exactly once and never write the same output. ``--workers W`` runs W processes, each of
which sets itself up once (:func:`run_tasks`'s ``setup``, e.g. loading the model) and then takes
tasks one at a time.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from utils.errors import UserError

T = TypeVar("T")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` → (K, N) with 1 ≤ K ≤ N; None stays None. Raises UserError naming ``--shard`` otherwise."""
    if text is None:
        return None
    try:
        k, n = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise UserError(f"--shard must be K/N (e.g. 1/4), got {text!r}") from None
    if not 1 <= k <= n:
        raise UserError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def take_shard(items: Sequence[T], shard: tuple[int, int] | None) -> list[T]:
    """The K-th of N interleaved shards of ``items`` (items K-1, K-1+N, ...); all of them for None."""
    if shard is None:
        return list(items)
    k, n = shard
    return list(items[k - 1::n])


def check_workers(workers: int) -> int:
    """``workers`` if ≥ 1, else a UserError naming ``--workers``."""
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    return workers


def check_threads(threads: int | None) -> int | None:
    """``threads`` if None or ≥ 1, else a UserError naming ``--threads``."""
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")
    return threads


_worker_state: dict[str, Any] = {}


def _setup_worker(setup: Callable[..., Any], args: tuple) -> None:
    _worker_state["context"] = setup(*args)


def _run_in_worker(work: Callable[[Any, Any], Any], task: Any) -> Any:
    return work(_worker_state["context"], task)


def run_tasks(
    tasks: Sequence[Any],
    work: Callable[[Any, Any], Any],
    setup: Callable[..., Any],
    setup_args: tuple = (),
    workers: int = 1,
) -> Iterator[tuple[int, Any]]:
    """Run ``work(context, task)`` for every task, ``context = setup(*setup_args)`` made once per
    process → yields (index of the task, its result) as tasks finish (in order with one worker).

    One worker: everything in this process. More: a pool of that many processes (spawned, so it
    works the same on every OS and with CUDA); ``work`` and ``setup`` must be module-level
    functions and tasks/results picklable. An exception in ``work`` is raised here; ``work`` should
    catch the per-task failures it wants listed instead.
    """
    if workers <= 1 or len(tasks) <= 1:
        context = setup(*setup_args)
        for index, task in enumerate(tasks):
            yield index, work(context, task)
        return
    with ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_setup_worker,
        initargs=(setup, setup_args),
    ) as pool:
        pending: dict[Future, int] = {pool.submit(_run_in_worker, work, task): i for i, task in enumerate(tasks)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()
