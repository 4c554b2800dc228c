"""Throughput of the synthetic blur dataset through a DataLoader (samples per second).

Example:
    python bench/data_speed.py --size 256 --workers 2 --batches 30 --out bench/results/data_speed.txt

CI runs only the smoke test (tests/test_bench.py: 32², no workers, two batches).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader

from data import build_dataset
from utils.errors import run_cli
from utils.fileio import atomic_write


def measure(size: int, workers: int, batch_size: int, batches: int, source: str = "deadleaves") -> float:
    """Samples per second of ``mode: synthetic`` at crop ``size`` through a DataLoader.

    The first batch (worker start-up) is excluded from the timing.
    """
    opt = {"mode": "synthetic", "HQ_size": size, "synthetic": {"source": source, "num_samples": 10**6}}
    dataset = build_dataset(opt, seed=0, phase="train")
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=True,
                        persistent_workers=workers > 0)
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    elapsed = time.perf_counter() - start
    return batches * batch_size / elapsed


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, measure each configuration, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--out", default="bench/results/data_speed.txt")
    args = parser.parse_args(argv)
    lines = [
        "# synthetic dataset throughput (dead-leaves source, kernel 31, defaults of configs/defaults/dataset.yml)",
        f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"batch {args.batch_size}, {args.batches} timed batches after one warm-up batch",
        "size  workers  samples/s",
    ]
    print("\n".join(lines), flush=True)
    for size in args.size:
        for workers in args.workers:
            rate = measure(size, workers, args.batch_size, args.batches)
            line = f"{size:<5} {workers:<8} {rate:.1f}"
            print(line, flush=True)
            lines.append(line)
    text = "\n".join(lines) + "\n"
    atomic_write(args.out, lambda tmp: tmp.write_text(text), suffix=".txt")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
