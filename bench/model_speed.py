#!/usr/bin/env python
"""Parameter counts and forward time of the kernel-space networks (paper, default and tiny configs).

Times G (encode), F (apply) and F∘G at a given size on the chosen device; writes a markdown table
to bench/results/model_speed_<device>.md. CI runs only the smoke test (tests/test_bench.py: the tiny
config at 64², one repeat).

Examples:
    python bench/model_speed.py --size 256 --repeats 3 --device cpu
    python bench/model_speed.py --configs tiny --size 64 --repeats 1 --out /tmp/model_speed.md
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from models import KernelSpace
from utils.config import read_yaml
from utils.device import resolve_device
from utils.errors import UserError, run_cli
from utils.fileio import atomic_write

ROOT = Path(__file__).resolve().parent.parent

CONFIGS = {
    "paper (woVAE)": {},
    "paper (wVAE)": {"use_vae": True},
    "tiny (conformance)": {
        "nf": 8, "kernel_dim": 64, "front_RBs": 1, "back_RBs": 2, "KernelExtractor": {"n_blocks": 1}
    },
}


def _timed(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--configs", default=None,
                        help="comma list of first words of the config names (paper, tiny, default_small; default all)")
    parser.add_argument("--out", default=None, help="markdown table path (default bench/results/...)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    configs = dict(CONFIGS)
    default_cfg = ROOT / "configs" / "train" / "default_small.yml"
    if default_cfg.is_file():
        configs["default_small (shipped)"] = read_yaml(default_cfg).get("KernelWizard", {})
    if args.configs:
        wanted = {w.strip() for w in args.configs.split(",") if w.strip()}
        configs = {name: cfg for name, cfg in configs.items() if name.split()[0] in wanted}
        if not configs:
            raise UserError(f"--configs {args.configs}: no config of {', '.join(CONFIGS)}, default_small (shipped)")
    rows = [
        f"Forward time at {args.size}×{args.size}, batch 1, {device} ({torch.get_num_threads()} threads), "
        f"torch {torch.__version__}",
        "",
        "| config | parameters | size (fp32) | G(x, y) s | F(x, k) s | F(x, G(x, y)) s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    x = torch.rand(1, 3, args.size, args.size, device=device)
    for name, cfg in configs.items():
        torch.manual_seed(0)
        model = KernelSpace.from_config(cfg).to(device).eval()
        n = sum(p.numel() for p in model.parameters())
        with torch.no_grad():
            code = model.extract_code(x, x)
            t_g = _timed(lambda m=model: m.extract_code(x, x), args.repeats, device)
            t_f = _timed(lambda m=model, c=code: m.apply(x, c), args.repeats, device)
            t_fg = _timed(lambda m=model: m(x, x), args.repeats, device)
        rows.append(f"| {name} | {n:,} | {n * 4 / 2**20:.1f} MiB | {t_g:.3f} | {t_f:.3f} | {t_fg:.3f} |")
        print(rows[-1], flush=True)
        del model
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"model_speed_{device.type}.md"
    atomic_write(out, lambda p: p.write_text("\n".join(rows) + "\n"), suffix=".md")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
