"""DDP on the CPU: two gloo processes train ci_tiny; the replicas must end with identical weights,
equal (to float rounding) to one process training on the same samples with twice the batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

pytestmark = pytest.mark.slow  # two-process DDP: left out of `make test-fast`

REPO = Path(__file__).resolve().parent.parent
CI_TINY = str(REPO / "configs" / "train" / "ci_tiny.yml")
ITERS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _overrides(root: Path, batch: int) -> list[str]:
    return [f"path.root={root}", f"train.niter={ITERS}", f"datasets.train.batch_size={batch}",
            "train.val_freq=2", "logger.progress_bar=false", "use_tb_logger=false"]


def _ddp_worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from training.config import load_train_config
    from training.loop import train

    ks = train(load_train_config(CI_TINY, _overrides(Path(root), batch=1)), "cpu")
    torch.save(ks.state_dict(), Path(out) / f"rank{rank}.pt")


def test_two_gloo_processes_keep_identical_replicas(tmp_path):
    from models import KernelSpace
    from training.config import load_train_config
    from training.loop import train

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp"), str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0), "DDP replicas diverged"

    exp = tmp_path / "ddp" / "ci_tiny"
    saved = KernelSpace.load(str(exp / "models" / f"{ITERS}.pth")).state_dict()
    assert all(torch.equal(saved[k], rank0[k]) for k in rank0)
    state = torch.load(exp / "training_state" / f"{ITERS}.state", weights_only=True)
    assert len(state["rng"]) == 2 and state["data"]["world_size"] == 2

    # rank r takes every other sample of the shuffled epoch, so 2 × batch 1 sees what one process with
    # batch 2 sees, and DDP's averaged gradient is that batch's gradient
    single = train(load_train_config(CI_TINY, _overrides(tmp_path / "single", batch=2)), "cpu")
    ref = single.state_dict()
    worst = max(float((ref[k] - rank0[k]).abs().max()) for k in ref)
    assert worst < 1e-5, worst
    torch.manual_seed(0)  # train.py's initialisation (train.manual_seed 0)
    initial = KernelSpace.from_config(single.config).state_dict()
    assert sum(not torch.equal(initial[k], ref[k]) for k in ref) > len(ref) // 2  # it trained
