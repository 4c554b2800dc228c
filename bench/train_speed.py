#!/usr/bin/env python
"""Training throughput (samples/s) of train.py's step against a straightforward fp32 loop.

For each model config (the paper's 49 M-parameter model at 256², the default_small config at its
crop size; ci_tiny for the smoke test) every variant trains a freshly seeded model on the same
pre-generated synthetic batches (data loading is excluded; bench/ has a separate data benchmark):

- ``plain fp32``: ``code = ks.encode(x, y)``, ``ŷ = ks.apply(x, code)``, Charbonnier, Adam — the
  obvious loop over the public KernelSpace API, default memory format and threads;
- ``train.py`` variants: :func:`training.step.train_step` (the trainer's own step: shared sharp
  features, NaN guard, the config's kernel losses) with the config's ``train`` section and the
  options named in the row (channels_last, bf16 autocast, torch.compile).

Writes a markdown table and a JSON file to bench/results/train_speed_<device>.{md,json}. CI runs only
the smoke test (tests/test_bench.py: ci_tiny, one step).

Examples:
    python bench/train_speed.py --device cpu                       # paper 256² and default_small
    python bench/train_speed.py --models default_small --steps 10 --variants plain,shared,shared+cl
    python bench/train_speed.py --models paper --steps 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from data import build_dataset
from losses import charbonnier
from models import KernelSpace
from training.config import load_train_config
from training.step import TrainForward, autocast_context, to_device, train_step
from utils.device import resolve_device
from utils.dist import DistInfo
from utils.errors import UserError, run_cli
from utils.fileio import atomic_write

ROOT = Path(__file__).resolve().parent.parent

# variant name -> (uses training.step.train_step, channels_last, amp, compile)
VARIANTS = {
    "plain": (False, False, "none", False),
    "shared": (True, False, "none", False),
    "shared+cl": (True, True, "none", False),
    "shared+bf16": (True, False, "bf16", False),
    "shared+cl+bf16": (True, True, "bf16", False),
    "shared+compile": (True, False, "none", True),
    "shared+cl+compile": (True, True, "none", True),
    "shared+fp16": (True, False, "fp16", False),
}
LABELS = {
    "plain": "plain fp32 loop (encode + apply, Adam)",
    "shared": "train.py step, fp32",
    "shared+cl": "train.py step, fp32, channels_last",
    "shared+bf16": "train.py step, bf16 autocast",
    "shared+cl+bf16": "train.py step, bf16 autocast, channels_last",
    "shared+compile": "train.py step, fp32, torch.compile",
    "shared+cl+compile": "train.py step, fp32, channels_last, torch.compile",
    "shared+fp16": "train.py step, fp16 autocast + GradScaler",
}
MODELS = {
    "paper": {"config": "configs/train/reds_woVAE.yml", "size": 256, "batch": 1},
    "default_small": {"config": "configs/train/default_small.yml", "size": None, "batch": None},
    "ci_tiny": {"config": "configs/train/ci_tiny.yml", "size": None, "batch": None},  # the smoke test
}


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def make_batches(size: int, batch: int, count: int) -> list[Batch]:
    """``count`` (sharp, blur, kernel) batches of (batch, 3, size, size) synthetic training pairs and
    their (batch, 1, 31, 31) kernels (the default synthetic generator)."""
    ds = build_dataset({"mode": "synthetic", "HQ_size": size, "synthetic": {"num_samples": batch * count}}, 0)
    out = []
    for i in range(count):
        items = [ds[i * batch + j] for j in range(batch)]
        out.append(tuple(torch.stack([s[key] for s in items]) for key in ("sharp", "blur", "kernel")))
    return out


def make_step(name: str, cfg: dict, device: torch.device) -> Callable[[Batch], None]:
    """A function doing one training step of variant ``name`` on a freshly seeded model of the training
    config ``cfg`` (its ``train`` section: losses and their weights)."""
    use_step, channels_last, amp, compile_ = VARIANTS[name]
    if cfg["train"]["kernel_batch"]:
        raise UserError(f"{cfg['name']}: train.kernel_batch > 0 is not benchmarked (generated PSF batches)")
    torch.manual_seed(0)
    ks = KernelSpace.from_config(cfg["KernelWizard"]).to(device).train()
    if channels_last:
        ks = ks.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(ks.parameters(), lr=1e-4, betas=(0.9, 0.99))
    info = DistInfo()
    autocast = autocast_context(amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    forward = TrainForward(ks)
    if compile_:
        forward = torch.compile(forward)

    def step(batch: Batch) -> None:
        sharp, blur = to_device({"sharp": batch[0], "blur": batch[1]}, device, channels_last)
        if use_step:
            train_step(forward, sharp, blur, optimizer, scaler, autocast, cfg, info, kernel=batch[2])
        else:
            optimizer.zero_grad()
            loss = charbonnier(ks.apply(sharp, ks.encode(sharp, blur)), blur)
            loss.backward()
            optimizer.step()
            loss.item()

    return step


def time_variants(names: list[str], cfg: dict, batches: list[Batch], device: torch.device,
                  warmup: int) -> dict[str, float]:
    """Samples/s of each variant: after ``warmup`` untimed steps each, the variants take turns, one
    step at a time over the remaining batches (so a shared, busy machine slows them alike); the
    rate is the batch size over the median step time."""
    steps = {}
    for name in names:
        try:
            steps[name] = make_step(name, cfg, device)
        except UserError as exc:  # e.g. fp16 on a CPU
            print(f"{name}: skipped ({exc})", flush=True)
    for batch in batches[:warmup]:
        for step in steps.values():
            step(batch)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for batch in batches[warmup:]:
        for name, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            step(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    batch = batches[0][0].shape[0]
    return {name: batch / statistics.median(t) for name, t in times.items()}


def cpu_name() -> str:
    """The CPU model name (from /proc/cpuinfo where available)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="paper,default_small", help=f"comma list of {', '.join(MODELS)}")
    parser.add_argument("--variants", default="plain,shared,shared+cl,shared+bf16,shared+cl+bf16",
                        help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: 1 paper, config's for small)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=None, help="output stem (default bench/results/train_speed_<device>)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            raise UserError(f"--variants: unknown variant {v!r} (known: {', '.join(VARIANTS)})")
    results = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if name not in MODELS:
            raise UserError(f"--models: unknown model {name!r} (known: {', '.join(MODELS)})")
        spec = MODELS[name]
        cfg = load_train_config(ROOT / spec["config"])
        size = spec["size"] or cfg["datasets"]["train"]["HQ_size"]
        batch = args.batch or spec["batch"] or cfg["datasets"]["train"]["batch_size"]
        batches = make_batches(size, batch, args.warmup + args.steps)
        rates = time_variants(variants, cfg, batches, device, args.warmup)
        base = rates.get("plain")
        for v, rate in rates.items():
            speedup = rate / base if base else float("nan")
            print(f"{name} {size}² batch {batch}: {LABELS[v]}: {rate:.3f} samples/s ({speedup:.2f}×)", flush=True)
            results.append({"model": name, "size": size, "batch": batch, "variant": v, "label": LABELS[v],
                            "samples_per_s": rate, "speedup_vs_plain": speedup})
    header = (
        f"Training throughput on {device} ({torch.get_num_threads()} threads, {cpu_name()}), "
        f"torch {torch.__version__}; {args.steps} timed steps after {args.warmup} warm-up, median step time, "
        "variants interleaved step by step, data loading excluded"
    )
    rows = [header, "", "| model | crop | batch | variant | samples/s | × plain fp32 |",
            "|---|---:|---:|---|---:|---:|"]
    for r in results:
        rows.append(f"| {r['model']} | {r['size']}² | {r['batch']} | {r['label']} | {r['samples_per_s']:.3f} | "
                    f"{r['speedup_vs_plain']:.2f} |")
    stem = Path(args.out) if args.out else ROOT / "bench" / "results" / f"train_speed_{device.type}"
    atomic_write(stem.with_suffix(".md"), lambda p: p.write_text("\n".join(rows) + "\n"), suffix=".md")
    atomic_write(stem.with_suffix(".json"), lambda p: p.write_text(json.dumps(
        {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__, "steps": args.steps,
         "warmup": args.warmup, "results": results}, indent=2) + "\n"), suffix=".json")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
