"""utils.batch: shards that cover a list exactly once, and the process pool."""

from __future__ import annotations

import os

import pytest

from utils.batch import parse_shard, run_tasks, take_shard
from utils.errors import UserError


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shards_cover_every_item_once(n):
    items = list(range(10))
    shards = [take_shard(items, parse_shard(f"{k}/{n}")) for k in range(1, n + 1)]
    assert sorted(i for shard in shards for i in shard) == items
    assert take_shard(items, None) == items


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/2/3", "-1/2"])
def test_bad_shards(text):
    with pytest.raises(UserError, match="--shard"):
        parse_shard(text)


def _setup(offset: int) -> dict:
    return {"offset": offset, "pid": os.getpid()}


def _work(context: dict, task: int) -> tuple[int, int]:
    return task + context["offset"], context["pid"]


@pytest.mark.parametrize("workers", [1, 2])
def test_run_tasks_sets_up_once_per_process(workers):
    results = dict(run_tasks(list(range(6)), _work, _setup, (100,), workers=workers))
    assert sorted(results) == list(range(6))
    assert [results[i][0] for i in range(6)] == [100 + i for i in range(6)]
    pids = {pid for _, pid in results.values()}
    assert (pids == {os.getpid()}) if workers == 1 else (os.getpid() not in pids and len(pids) <= 2)
