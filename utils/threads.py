"""The thread policy of the CPU paths: every torch op on one thread, parallelism over independent work.

torch's intra-op threads spin-wait at the end of every parallel op. Deblurring is thousands of
small FFTs and element-wise ops, so as soon as another process holds one of the cores, each op
waits for a descheduled thread (measured on 2 cores, a 255² deblur: 3.4 s quiet, 15 s with one
core busy). Here torch runs each op on the calling thread, and :func:`parallel_map` spreads
independent pieces of work (the candidate runs of the kernel estimate, the colour channels of the
deconvolution) over a pool of Python threads (torch releases the GIL inside its ops). A busy core
then only delays the pieces it runs, and the results do not depend on the number of threads:
each piece is computed the same way on whichever thread runs it.

``--threads N`` on the command lines sets the pool's size (:func:`set_threads`); the default is
the number of cores this process may use, at most :data:`MAX_DEFAULT_THREADS`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

MAX_DEFAULT_THREADS = 8  # more pieces than this rarely run at once (4-8 candidate runs, 3 channels)
_state = {"threads": None}
_inside = threading.local()  # set in pool threads: nested parallel_map calls run serially there


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it) → ≥ 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """The pool size used when none was set: the available cores, at most ``MAX_DEFAULT_THREADS``."""
    return min(MAX_DEFAULT_THREADS, available_cores())


def set_threads(threads: int | None) -> int:
    """Use ``threads`` pool threads for :func:`parallel_map` (None: :func:`default_threads`) and one
    thread per torch op → the pool size now in force. Raises ValueError for a count below 1."""
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    _state["threads"] = default_threads() if threads is None else int(threads)
    return _state["threads"]


def pool_threads() -> int:
    """The pool size :func:`parallel_map` uses (the one set, else :func:`default_threads`)."""
    return _state["threads"] if _state["threads"] is not None else default_threads()


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (None: the count as it is) and restore
    the previous count after it. ``torch_threads(1)``: every torch op on the calling thread, the
    policy of the deblurring paths (also usable as a decorator)."""
    previous = torch.get_num_threads()
    if threads is not None and threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def parallel_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(item) for item in items]``, in order, the items spread over :func:`pool_threads` threads.

    Serial when the pool has one thread, when there is one item, or when called from inside a
    pool thread (no nested pools). The first exception raised by ``fn`` is raised here.
    """
    items = list(items)
    workers = min(pool_threads(), len(items))
    if workers <= 1 or getattr(_inside, "active", False):
        return [fn(item) for item in items]

    def run(item: T) -> R:
        _inside.active = True
        try:
            return fn(item)
        finally:
            _inside.active = False

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bks") as pool:
        return list(pool.map(run, items))
