"""The state of a run on disk and in memory: the experiment's files, what a resume restores (weights,
optimizer, scheduler, scaler, RNG and sampler position), and the checkpoints the loop writes
(atomically, the training state last) and prunes.

Layout of ``<path.root>/<name>/``: ``models/<iter>.pth``, ``models/latest.pth``, ``models/best.pth``
(model checkpoints, the shared format of :meth:`KernelSpace.save`), ``training_state/<iter>.state``,
``tb/``, ``train.log``, ``config.yml``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models import KernelSpace
from models.checkpoint import read_checkpoint_file
from training.logging import LOG
from utils.dist import DistInfo, barrier, gather_objects
from utils.errors import UserError
from utils.fileio import atomic_path
from utils.lr_scheduler import CosineAnnealingRestartLR
from utils.paths import refuse_overwrite

STATE_SUFFIX = ".state"


@dataclass(frozen=True)
class ExperimentPaths:
    """The files of one experiment, ``<path.root>/<name>/``."""

    root: Path

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def states(self) -> Path:
        return self.root / "training_state"

    @property
    def tb(self) -> Path:
        return self.root / "tb"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    def model_file(self, iteration: int | str) -> Path:
        return self.models / f"{iteration}.pth"

    def state_file(self, iteration: int) -> Path:
        return self.states / f"{iteration}{STATE_SUFFIX}"


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_weights_into(ks: KernelSpace, path: str | Path) -> dict:
    """Copy the weights of the checkpoint at ``path`` into ``ks`` (same architecture required).

    Returns the checkpoint's meta dict.
    """
    other = KernelSpace.load(str(path), "cpu")
    if other.config != ks.config:
        diff = sorted(k for k in ks.config if other.config.get(k) != ks.config.get(k))
        raise UserError(
            f"{path}: checkpoint model differs from the KernelWizard config (keys: {', '.join(diff)})"
        )
    ks.load_state_dict(other.state_dict())
    return dict(other.meta)


@dataclass
class LoopState:
    """Everything of the loop that a resume restores besides the model/optimizer/scheduler."""

    iteration: int = 0
    epoch: int = 0
    epoch_start: int = 0  # samples of this rank's current epoch already consumed
    best_psnr: float = -math.inf
    wall_time: float = 0.0  # seconds of training before this process started
    mean_code: torch.Tensor | None = None  # EMA (not bias-corrected) of the batch-mean code
    mean_code_steps: int = 0
    nonfinite_streak: int = 0
    extra: dict = field(default_factory=dict)

    def mean_code_estimate(self, decay: float) -> torch.Tensor | None:
        """The bias-corrected moving average of the code, (kernel_dim,), or None before any step."""
        if self.mean_code is None or self.mean_code_steps == 0:
            return None
        return (self.mean_code / (1.0 - decay**self.mean_code_steps)).detach().cpu()


def rng_state() -> dict:
    """This process's python, numpy, torch and CUDA generator states (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    out = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(_as_tuple(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(obj: Any) -> Any:
    return tuple(_as_tuple(v) for v in obj) if isinstance(obj, (list, tuple)) else obj


def newest_states(paths: ExperimentPaths) -> list[tuple[int, Path]]:
    """Complete training states (``<iter>.state`` with its ``models/<iter>.pth``), newest first."""
    found = []
    if paths.states.is_dir():
        for p in paths.states.glob(f"*{STATE_SUFFIX}"):
            if p.stem.isdigit() and paths.model_file(p.stem).is_file():
                found.append((int(p.stem), p))
    return sorted(found, reverse=True)


def read_training_state(path: Path) -> dict:
    """Load a ``.state`` file (weights_only); a missing/corrupt file is a UserError."""
    data = read_checkpoint_file(path)
    if not isinstance(data, dict) or "iteration" not in data or "optimizer" not in data:
        raise UserError(f"{path}: not a training state (expected a dict with 'iteration' and 'optimizer')")
    return data


def find_resume_state(resume: str, paths: ExperimentPaths) -> tuple[dict, Path] | None:
    """``resume`` = "auto": the newest readable state of this experiment (None when there is none);
    else the path of a state file. Returns (state dict, its path)."""
    if resume != "auto":
        path = Path(resume)
        return read_training_state(path), path
    for _, path in newest_states(paths):
        try:
            return read_training_state(path), path
        except UserError as exc:
            LOG.warning("skipping unreadable training state: %s", exc)
    return None


def restore(
    state: dict, state_path: Path, ks: KernelSpace, optimizer: torch.optim.Optimizer,
    scheduler: CosineAnnealingRestartLR, scaler: torch.amp.GradScaler, info: DistInfo,
    batch_size: int,
) -> LoopState:
    """Load weights, optimizer, scheduler, scaler and RNG states from a training state.

    The weights come from ``models/<iter>.pth`` beside the ``training_state`` folder.
    """
    it = int(state["iteration"])
    model_path = state_path.parent.parent / "models" / f"{it}.pth"
    load_weights_into(ks, model_path)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    loop = LoopState(
        iteration=it, best_psnr=float(state.get("best_psnr", -math.inf)),
        wall_time=float(state.get("wall_time", 0.0)),
        mean_code=state.get("mean_code"), mean_code_steps=int(state.get("mean_code_steps", 0)),
        nonfinite_streak=int(state.get("nonfinite_streak", 0)),
    )
    data = state.get("data", {})
    rngs = state.get("rng", [])
    if data.get("world_size") == info.world_size and data.get("batch_size") == batch_size:
        loop.epoch, loop.epoch_start = int(data["epoch"]), int(data["epoch_start"])
    else:
        LOG.warning("world size or batch size changed since the state was written: starting a new data epoch")
        loop.epoch = int(data.get("epoch", 0)) + 1
    if len(rngs) == info.world_size:
        set_rng_state(rngs[info.rank])
    else:
        LOG.warning("world size changed since the state was written: reseeding the generators")
        seed_everything(int(state.get("seed", 0)) + 1000 * info.rank + it)
    return loop


def save_training_checkpoint(
    paths: ExperimentPaths, ks: KernelSpace, optimizer: torch.optim.Optimizer,
    scheduler: CosineAnnealingRestartLR, scaler: torch.amp.GradScaler, loop: LoopState, cfg: dict,
    info: DistInfo, elapsed: float, batch_size: int,
) -> None:
    """Write models/<iter>.pth, models/latest.pth and then (last) training_state/<iter>.state (the
    model checkpoints in :meth:`KernelSpace.save`'s format, the state with everything a resume needs).

    Called on every rank (it gathers the ranks' RNG states); only rank 0 writes. Each file is
    written atomically and the state last, so a run killed mid-save leaves the previous state as
    the newest complete one. Old checkpoints beyond ``logger.keep_last`` are removed afterwards.
    """
    rngs = gather_objects(info, rng_state())
    if not info.is_main:
        return
    it = loop.iteration
    meta = model_meta(loop, cfg, elapsed)
    ks.save(str(paths.model_file(it)), meta=meta)
    ks.save(str(paths.model_file("latest")), meta=meta)
    state = {
        "iteration": it,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "rng": rngs,
        "data": {"epoch": loop.epoch, "epoch_start": loop.epoch_start, "world_size": info.world_size,
                 "batch_size": batch_size},
        "best_psnr": loop.best_psnr,
        "wall_time": loop.wall_time + elapsed,
        "mean_code": loop.mean_code.detach().cpu() if loop.mean_code is not None else None,
        "mean_code_steps": loop.mean_code_steps,
        "nonfinite_streak": loop.nonfinite_streak,
        "seed": cfg["train"]["manual_seed"],
        "config": cfg,
    }
    with atomic_path(paths.state_file(it), suffix=STATE_SUFFIX) as tmp:
        torch.save(state, tmp)
    prune_checkpoints(paths, cfg["logger"]["keep_last"])
    LOG.info("saved models/%d.pth and training_state/%d%s", it, it, STATE_SUFFIX)


def model_meta(loop: LoopState, cfg: dict, elapsed: float) -> dict:
    """The ``meta`` of an exported model: mean_code (kernel_dim,), iteration, config name, wall time."""
    meta: dict[str, Any] = {
        "iteration": loop.iteration,
        "config_name": cfg["name"],
        "wall_time": loop.wall_time + elapsed,
        "train_config": cfg,
    }
    mean_code = loop.mean_code_estimate(cfg["train"]["mean_code_decay"])
    if mean_code is not None:
        meta["mean_code"] = mean_code
    if math.isfinite(loop.best_psnr):
        meta["best_val_psnr"] = loop.best_psnr
    return meta


def prune_checkpoints(paths: ExperimentPaths, keep_last: int) -> None:
    """Remove all but the newest ``keep_last`` iteration checkpoints and states (0 keeps all)."""
    if keep_last <= 0:
        return
    iterations = sorted({int(p.stem) for p in paths.models.glob("*.pth") if p.stem.isdigit()}, reverse=True)
    for it in iterations[keep_last:]:
        paths.state_file(it).unlink(missing_ok=True)
        paths.model_file(it).unlink(missing_ok=True)


def remove_stale_temporaries(paths: ExperimentPaths) -> None:
    """Delete temporary files left by a run killed while writing (``.<name>.*.tmp``)."""
    for folder in (paths.models, paths.states):
        if folder.is_dir():
            for p in folder.glob(".*.tmp"):
                p.unlink(missing_ok=True)


def refuse_overwriting_inputs(
    paths: ExperimentPaths, config_file: str | Path | None, pretrained: str | Path | None, resuming: bool
) -> None:
    """Refuse (:class:`UserError`, one line naming both paths) a run that would destroy a file it reads.

    ``pretrained`` (``path.pretrain_model_G``) must not lie in ``models/`` or ``training_state/``
    of the experiment: the run replaces ``latest.pth``/``best.pth`` and ``<iter>.pth`` there and
    prunes old iterations. ``config_file`` (``-opt``) must not be ``train.log`` (appended to) nor,
    on a fresh run, ``config.yml`` (replaced by the resolved config); when ``resuming`` (--resume
    or path.resume_state), ``config.yml`` is the run's own record and is updated by design, so
    ``-opt <experiment>/config.yml --resume auto`` continues a run. A resume state (even one of
    this experiment) is not guarded: resuming reads it, later saves only add newer iterations.
    """
    if pretrained:
        for folder in (paths.models, paths.states):
            try:
                inside = Path(pretrained).resolve().is_relative_to(folder.resolve())
            except (OSError, RuntimeError):
                inside = False
            if inside:
                raise UserError(
                    f"{pretrained}: path.pretrain_model_G lies in {folder}, where this run writes, replaces and "
                    "prunes checkpoints; copy it elsewhere or choose another name (--set name=...) or path.root"
                )
    if config_file:
        outputs = [paths.log] if resuming else [paths.root / "config.yml", paths.log]
        refuse_overwrite(outputs, [config_file], hint="copy the config elsewhere or choose another name "
                         "(--set name=...) or path.root")


def prepare_experiment(paths: ExperimentPaths, resume: str | None, info: DistInfo) -> None:
    """Refuse to overwrite a previous run unless resuming (checked on every rank, so that all of
    them stop together); rank 0 clears temporaries left by a killed run."""
    if resume is None and newest_states(paths):
        raise UserError(
            f"{paths.root}: holds a previous run; pass --resume auto to continue it, or choose another "
            "name (--set name=...) or path.root"
        )
    barrier(info)  # every rank has looked before rank 0 removes anything
    if info.is_main:
        remove_stale_temporaries(paths)
