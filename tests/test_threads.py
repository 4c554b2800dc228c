"""utils.threads: the pool, its order and nesting, and results that do not depend on the thread count."""

from __future__ import annotations

import threading

import pytest
import torch

from deblurring.alternating import deblur_alternating
from utils import threads


@pytest.fixture(autouse=True)
def _restore_pool():
    before = threads.pool_threads()
    yield
    threads.set_threads(before)


def test_parallel_map_keeps_order_and_runs_nested_calls_serially():
    threads.set_threads(2)
    names: set[str] = set()

    def inner(i: int) -> int:
        names.add(threading.current_thread().name)
        return i * i

    def outer(i: int) -> list[int]:
        return threads.parallel_map(inner, range(i))

    assert threads.parallel_map(outer, range(5)) == [[j * j for j in range(i)] for i in range(5)]
    assert all(name.startswith("bks") for name in names)  # nested calls stayed on the pool's threads


def test_parallel_map_raises_the_first_error():
    threads.set_threads(2)

    def fail(i: int) -> int:
        if i == 1:
            raise KeyError("one")
        return i

    with pytest.raises(KeyError, match="one"):
        threads.parallel_map(fail, range(3))


def test_bad_thread_count():
    with pytest.raises(ValueError, match="threads must be >= 1"):
        threads.set_threads(0)


def test_deblurring_gives_the_same_output_on_any_thread_count():
    """The candidate runs and channels go to the pool, torch ops stay on one thread: bitwise equal."""
    torch.manual_seed(0)
    sharp = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 72, 80), 3, 1, 1)
    kernel = torch.zeros(7, 7)
    kernel[3, 1:6] = 0.2
    blurry = torch.nn.functional.conv2d(sharp.transpose(0, 1), kernel[None, None], padding=3).transpose(0, 1)
    knobs = dict(psf_size=9, iterations=2, candidates=[[5, 4e-3], [7, 4e-3], [9, 4e-3]])
    intra_op = torch.get_num_threads()
    results = []
    for count in (1, 2, 3):
        threads.set_threads(count)
        results.append(deblur_alternating(blurry.clamp(0, 1), **knobs))
    for other in results[1:]:
        assert torch.equal(other.sharp, results[0].sharp) and torch.equal(other.psf, results[0].psf)
        assert other.history == results[0].history
    assert torch.get_num_threads() == intra_op  # the one-thread block restores torch's own setting
