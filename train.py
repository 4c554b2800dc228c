#!/usr/bin/env python
"""Joint training of the kernel extractor G and the blur generator F (the encoded blur-kernel space).

One training step: code = G(x, y) (a VAE model samples code = mean + sigma · N(0, 1) and adds
``train.kl_weight`` · KL), ŷ = F(x, code), loss = pixel criterion (Charbonnier) between ŷ and y;
Adam over G and F together, cosine annealing with restarts.

Examples:
    python train.py -opt configs/train/ci_tiny.yml
    python train.py -opt configs/train/gopro_woVAE.yml --set train.niter=1000 --set datasets.train.n_workers=4
    python train.py -opt configs/train/default_small.yml --resume auto       # continue the newest state
    torchrun --nproc_per_node=4 train.py -opt configs/train/reds_woVAE.yml   # DDP, batch_size per GPU

Outputs in <path.root>/<name>/: models/<iter>.pth, models/latest.pth, models/best.pth (the shared
checkpoint format; ``deblur.py --model`` takes them), training_state/<iter>.state, tb/, train.log,
config.yml. Only rank 0 logs and writes.

The machinery lives in the ``training`` package: training/config.py (schema and checks),
training/loop.py (the loop), training/step.py (one step), training/state.py (resume, checkpoints),
training/logging.py (log and tensorboard).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from training.config import load_train_config
from training.loop import train
from training.state import ExperimentPaths, refuse_overwriting_inputs
from utils.device import resolve_device
from utils.errors import run_cli


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run :func:`training.loop.train`."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-opt", "--opt", required=True, help="training YAML (configs/train/<name>.yml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY.SUB=VALUE",
                        help="override a config key (repeatable), e.g. --set train.niter=10")
    parser.add_argument("--resume", default=None, metavar="auto|PATH",
                        help="continue from the newest training state of this experiment (auto) "
                        "or from a .state file")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    args = parser.parse_args(argv)
    cfg = load_train_config(args.opt, args.set)
    resume = args.resume or cfg["path"]["resume_state"]
    paths = ExperimentPaths(Path(cfg["path"]["root"]) / cfg["name"])
    # the experiment's files may not replace the config or the pretrained weights it reads
    refuse_overwriting_inputs(paths, args.opt, cfg["path"]["pretrain_model_G"], resuming=resume is not None)
    device = resolve_device(args.device)
    train(cfg, device=device, resume=resume)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
