#!/usr/bin/env python
"""Joint training of the kernel extractor G and the blur generator F (the encoded blur-kernel space).

One training step: code = G(x, y) (a VAE model samples code = mean + sigma · N(0, 1) and adds
``train.kl_weight`` · KL), ŷ = F(x, code), loss = pixel criterion (Charbonnier) between ŷ and y;
Adam over G and F together, cosine annealing with restarts.

Examples:
    python train.py -opt configs/train/ci_tiny.yml
    python train.py -opt configs/train/gopro_woVAE.yml --set train.niter=1000 --set datasets.train.n_workers=4
    python train.py -opt configs/train/synthetic_small.yml --resume auto      # continue the newest state
    torchrun --nproc_per_node=4 train.py -opt configs/train/reds_woVAE.yml   # DDP, batch_size per GPU

Outputs in <path.root>/<name>/: models/<iter>.pth, models/latest.pth, models/best.pth (the shared
checkpoint format; ``deblur.py --model`` takes them), training_state/<iter>.state, tb/, train.log,
config.yml. Only rank 0 logs and writes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import random
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.data import DataLoader

from data import build_dataset
from data.kernels import random_psfs
from losses import charbonnier, kernel_code_loss, kernel_code_target, kernel_projection, kl_divergence, psf_loss
from models import KernelSpace
from models.checkpoint import read_checkpoint_file
from models.init import INIT_SCHEMES, initialise_kernel_space
from utils.config import build_config, load_schema
from utils.device import resolve_device
from utils.dist import (
    DistInfo,
    any_true,
    barrier,
    cleanup_distributed,
    dist_info_from_env,
    gather_objects,
    init_distributed,
)
from utils.errors import UserError, run_cli
from utils.fileio import atomic_path, unwritable_reason
from utils.lr_scheduler import CosineAnnealingRestartLR, check_restart_schedule
from utils.sampler import ResumableDistributedSampler

LOG = logging.getLogger("train")
LOG_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
AMP_MODES = ("none", "bf16", "fp16")
PIXEL_CRITERIA = ("cb", "l1", "l2")
STATE_SUFFIX = ".state"


# --------------------------------------------------------------------------------------------- config
def train_schema() -> dict:
    """The schema of a training config: configs/defaults/train.yml with the dataset entries
    (``datasets.<name>``: configs/defaults/dataset.yml) and the model section (``KernelWizard``:
    configs/defaults/model.yml) inserted."""
    schema = load_schema("train")
    schema["datasets"] = {"*": load_schema("dataset")}
    schema["KernelWizard"] = load_schema("model")
    return schema


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> dict:
    """Read a training YAML, apply ``--set`` overrides and check every key and value.

    Returns the complete nested config dict. Raises :class:`UserError` naming a bad key.
    """
    from utils.config import read_yaml

    cfg = build_config(train_schema(), read_yaml(path), overrides, source=str(path))
    check_train_config(cfg, str(path))
    return cfg


def check_train_config(cfg: dict, source: str = "config") -> None:
    """Value checks that the schema's types cannot express; raises :class:`UserError` naming the key."""
    name = cfg["name"]
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise UserError(f"{source}: config key 'name' must be a plain folder name, got {name!r}")
    if "train" not in cfg["datasets"]:
        raise UserError(f"{source}: config key 'datasets.train' is required")
    t = cfg["train"]
    if t["amp"] not in AMP_MODES:
        raise UserError(
            f"{source}: config key 'train.amp' must be one of {', '.join(AMP_MODES)}, got {t['amp']!r}"
        )
    if t["pixel_criterion"] not in PIXEL_CRITERIA:
        raise UserError(
            f"{source}: config key 'train.pixel_criterion' must be one of {', '.join(PIXEL_CRITERIA)}, "
            f"got {t['pixel_criterion']!r}"
        )
    if t["lr_scheme"] != "CosineAnnealingLR_Restart":
        raise UserError(
            f"{source}: config key 'train.lr_scheme' must be CosineAnnealingLR_Restart, "
            f"got {t['lr_scheme']!r}"
        )
    if t["warmup_iter"] not in (-1, 0):
        raise UserError(
            f"{source}: config key 'train.warmup_iter' must be -1 (no warm-up), got {t['warmup_iter']}"
        )
    check_restart_schedule(t["T_period"], t["restarts"], t["restart_weights"])
    positive = {"train.niter": t["niter"], "train.max_nonfinite": t["max_nonfinite"],
                "logger.print_freq": cfg["logger"]["print_freq"]}
    for key, value in positive.items():
        if value < 1:
            raise UserError(f"{source}: config key '{key}' must be >= 1, got {value}")
    non_negative = {"train.val_freq": t["val_freq"], "train.num_threads": t["num_threads"],
                    "logger.save_checkpoint_freq": cfg["logger"]["save_checkpoint_freq"],
                    "logger.keep_last": cfg["logger"]["keep_last"],
                    "logger.image_freq": cfg["logger"]["image_freq"],
                    "train.kl_weight": t["kl_weight"], "train.lr_G": t["lr_G"]}
    for key, value in non_negative.items():
        if value < 0:
            raise UserError(f"{source}: config key '{key}' must be >= 0, got {value}")
    if t["init"] not in INIT_SCHEMES:
        raise UserError(
            f"{source}: config key 'train.init' must be one of {', '.join(INIT_SCHEMES)}, got {t['init']!r}"
        )
    if t["kernel_weight"] < 0:
        raise UserError(f"{source}: config key 'train.kernel_weight' must be >= 0, got {t['kernel_weight']}")
    if not 0.0 <= t["kernel_teacher"] <= 1.0:
        raise UserError(f"{source}: config key 'train.kernel_teacher' must be in [0, 1], got {t['kernel_teacher']}")
    for key in ("kernel_weight", "kernel_teacher"):
        if t[key] > 0 and cfg["datasets"]["train"]["mode"] != "synthetic":
            raise UserError(
                f"{source}: config key 'train.{key}' needs the true kernels of synthetic training data "
                f"(datasets.train.mode: synthetic), got mode {cfg['datasets']['train']['mode']!r}"
            )
    if t["kernel_batch"] < 0:
        raise UserError(f"{source}: config key 'train.kernel_batch' must be >= 0, got {t['kernel_batch']}")
    if t["kernel_batch"] > 0 and (cfg["KernelWizard"]["generator"] != "psf"
                                  or cfg["datasets"]["train"]["mode"] != "synthetic"):
        raise UserError(f"{source}: config key 'train.kernel_batch' needs KernelWizard.generator: psf and "
                        "synthetic training data (its kernel settings)")
    if not 0.0 <= t["mean_code_decay"] < 1.0:
        raise UserError(
            f"{source}: config key 'train.mean_code_decay' must be in [0, 1), got {t['mean_code_decay']}"
        )


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


# --------------------------------------------------------------------------------------------- build
class TrainForward(nn.Module):
    """The training forward pass of a :class:`KernelSpace` (what DDP wraps and compile traces).

    ``forward(sharp, blur, teacher=None, psfs=None)`` with (B, 3, H, W) tensors returns (ŷ = F(x, G(x, y))
    (B, 3, H, W), G's code mean (B, kernel_dim) averaged over the code grid (with its graph, for the
    kernel loss), KL term (scalar; 0 without a VAE): the published one,
    ``sum(μ² + σ² − log σ² − 1)`` over the batch's code elements, i.e. twice the summed KL
    divergence). ``teacher`` (``train.kernel_teacher``) replaces G's code as F's input for the
    first T ≤ B samples, spread over the code grid: (T, kernel_dim) codes for the unet type, or for
    the psf type (T, S, S) PSFs (the true kernels) that its kernel encoder turns into codes.

    psf type only, ``psfs`` (N, S, S) (``train.kernel_batch``): a fourth element is returned, the
    pair (PSFs decoded from G's grid-averaged codes (B, S, S), the auto-encoded ``psfs`` (N, S, S)),
    so that every use of the decoder and encoder happens inside this one forward (as DDP needs).

    It runs :meth:`KernelSpace.encode_and_apply`: the unet type's shared PreprocessBlock runs once
    on the sharp image for G and F, as in the published KernelWizard.forward.
    """

    def __init__(self, ks: KernelSpace) -> None:
        super().__init__()
        self.ks = ks

    def forward(
        self, sharp: torch.Tensor, blur: torch.Tensor, teacher: torch.Tensor | None = None,
        psfs: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        ks = self.ks
        kl = torch.zeros((), device=sharp.device)
        means: list[torch.Tensor] = []

        def sample(encoded: Any) -> torch.Tensor:
            nonlocal kl
            if isinstance(encoded, tuple):
                mean, sigma = encoded
                kl = kl + 2.0 * kl_divergence(mean.float(), sigma.float(), reduction="sum")
                return mean + sigma * torch.randn_like(mean)
            return encoded

        def choose_code(encoded: Any) -> torch.Tensor:
            means.append(encoded[0] if isinstance(encoded, tuple) else encoded)
            code = sample(encoded)
            if teacher is not None and len(teacher):
                own = teacher
                if ks.generator_type == "psf":
                    own = sample(ks.extractor.encoder(teacher[:, None, None]))[:, :, 0, 0]
                grid = own.to(code.dtype)[:, :, None, None].expand(-1, -1, *code.shape[-2:])
                code = torch.cat([grid, code[len(teacher):]], dim=0)
            return code

        pred, _ = ks.encode_and_apply(sharp, blur, choose_code)
        code_mean = means[0].float().mean(dim=(2, 3))
        if psfs is None:
            return pred, code_mean, kl
        decoder = ks.generator.decoder
        g_psfs = decoder(code_mean[:, :, None, None])[:, 0, 0]
        restored = decoder(sample(ks.extractor.encoder(psfs[:, None, None])))[:, 0, 0]
        return pred, code_mean, kl, (g_psfs, restored)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_model(cfg: dict, device: torch.device) -> KernelSpace:
    """The KernelSpace of ``cfg['KernelWizard']`` on ``device`` (initialised from
    ``path.pretrain_model_G`` when set, else by the ``train.init`` scheme), in train mode, NHWC when
    ``train.channels_last``."""
    ks = KernelSpace.from_config(cfg["KernelWizard"])
    pretrained = cfg["path"]["pretrain_model_G"]
    if pretrained:
        load_weights_into(ks, pretrained)
    else:
        initialise_kernel_space(ks, cfg["train"]["init"])
    ks = ks.to(device)
    if cfg["train"]["channels_last"]:
        ks = ks.to(memory_format=torch.channels_last)
    return ks.train()


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


def build_optimizer(cfg: dict, ks: KernelSpace) -> tuple[torch.optim.Optimizer, CosineAnnealingRestartLR]:
    """Adam over every parameter of G and F, and the cosine-with-restarts schedule of ``cfg['train']``."""
    t = cfg["train"]
    optimizer = torch.optim.Adam(
        ks.parameters(), lr=t["lr_G"], betas=(t["beta1"], t["beta2"]), weight_decay=t["weight_decay"]
    )
    scheduler = CosineAnnealingRestartLR(
        optimizer, t["T_period"], t["restarts"], t["restart_weights"], t["eta_min"]
    )
    return optimizer, scheduler


def build_train_loader(
    cfg: dict, info: DistInfo, device: torch.device
) -> tuple[DataLoader, ResumableDistributedSampler, torch.Generator]:
    """DataLoader of ``datasets.train`` (``batch_size`` per process), its sampler (this rank's share
    of each epoch, resumable) and the generator that seeds its workers."""
    opt = cfg["datasets"]["train"]
    seed = cfg["train"]["manual_seed"]
    dataset = build_dataset(opt, seed, "train")
    sampler = ResumableDistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                                          shuffle=opt["use_shuffle"], seed=seed)
    if sampler.num_samples < opt["batch_size"]:
        raise UserError(
            f"datasets.train: {len(dataset)} samples give {sampler.num_samples} per process, fewer than "
            f"batch_size {opt['batch_size']}"
        )
    generator = torch.Generator()
    loader = DataLoader(
        dataset, batch_size=opt["batch_size"], sampler=sampler, drop_last=True, generator=generator,
        **loader_speed_options(opt["n_workers"], device),
    )
    return loader, sampler, generator


def build_val_loader(cfg: dict, device: torch.device) -> DataLoader | None:
    """DataLoader of ``datasets.val`` in order (None when the config has no val entry)."""
    opt = cfg["datasets"].get("val")
    if opt is None:
        return None
    dataset = build_dataset(opt, cfg["train"]["manual_seed"], "val")
    return DataLoader(dataset, batch_size=opt["batch_size"], shuffle=False, generator=torch.Generator(),
                      **loader_speed_options(opt["n_workers"], device, persistent=False))


def loader_speed_options(workers: int, device: torch.device, persistent: bool = True) -> dict:
    """Worker processes, prefetching and pinned memory (CUDA) for a DataLoader."""
    out: dict[str, Any] = {"num_workers": workers, "pin_memory": device.type == "cuda"}
    if workers > 0:
        out.update(persistent_workers=persistent, prefetch_factor=4)
    return out


def autocast_context(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The one mixed-precision context of the loop: ``nullcontext`` for ``none``, else autocast.

    bf16 works on CUDA and CPU; fp16 needs CUDA (and a gradient scaler, see :func:`train`).
    """
    if amp == "none":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise UserError(
            f"config key 'train.amp': fp16 needs a CUDA device (this run uses {device}); use bf16 or none"
        )
    return torch.autocast(device.type, dtype=torch.float16 if amp == "fp16" else torch.bfloat16)


def pixel_loss(pred: torch.Tensor, target: torch.Tensor, criterion: str) -> torch.Tensor:
    """Pixel loss between ŷ and y (B, 3, H, W), **summed** over all elements as in the published
    training: ``cb`` Charbonnier, ``l1`` or ``l2``.

    The sum matters. Adam is blind to the scale of the loss except through its ``eps`` (1e-8): with
    a mean, the gradients reaching G and the code input of F at the default initialisation are about
    1e-12 (B·3·H·W times smaller than with the sum), far below ``eps``, so Adam's steps on them
    shrink ~10⁴-fold, G never trains and F learns to ignore the code (measured:
    bench/results/loss_reduction.md).
    """
    if criterion == "cb":
        return charbonnier(pred, target, reduction="sum")
    if criterion == "l1":
        return F.l1_loss(pred, target, reduction="sum")
    return F.mse_loss(pred, target, reduction="sum")


# --------------------------------------------------------------------------------------------- state
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


# --------------------------------------------------------------------------------------------- step
def unwrap_kernel_space(forward: nn.Module) -> KernelSpace:
    """The KernelSpace inside a (possibly DDP- or compile-wrapped) TrainForward."""
    inner = getattr(forward, "module", forward)
    inner = getattr(inner, "_orig_mod", inner)
    return inner.ks


@dataclass
class StepResult:
    """Losses of one step (python floats, for the logs) and the outputs kept for logging.

    The optimised loss is a sum over the batch (:func:`pixel_loss`); the logs show it per image
    element (``loss``, ``pixel``: divided by B·3·H·W, comparable across batch and crop sizes) and
    the KL term and the kernel-code loss per sample (``kl``, ``kernel``)."""

    loss: float
    pixel: float
    kl: float
    kernel: float
    skipped: bool
    code_mean: torch.Tensor  # (kernel_dim,) batch mean of the spatially averaged code
    pred: torch.Tensor  # (B, 3, H, W) detached


def train_step(
    forward: nn.Module, sharp: torch.Tensor, blur: torch.Tensor, optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler, autocast: contextlib.AbstractContextManager, cfg: dict, info: DistInfo,
    kernel: torch.Tensor | None = None, psfs: torch.Tensor | None = None,
) -> StepResult:
    """One optimizer step on a batch (sharp, blur: (B, 3, H, W) on the training device; ``kernel``:
    the true (B, 1, K, K) kernels, needed when ``train.kernel_weight`` or ``train.kernel_teacher``
    is > 0; ``psfs``: psf type, the (N, S, S) generated kernels of ``train.kernel_batch``).

    The kernel loss: for the unet type, G's code against a fixed projection of the true kernel
    (:func:`losses.kernel_code_loss`); for the psf type, the PSF decoded from G's code against the
    true kernel, plus the auto-encoded ``psfs`` against themselves (:func:`losses.psf_loss`).
    A non-finite loss (on any rank) skips the backward pass and the update.
    """
    t = cfg["train"]
    ks = unwrap_kernel_space(forward)
    optimizer.zero_grad(set_to_none=True)
    uses_kernels = t["kernel_weight"] > 0 or t["kernel_teacher"] > 0
    if uses_kernels and kernel is None:
        raise ValueError("train.kernel_weight / train.kernel_teacher need the batch's true kernels")
    projection = teacher = None
    if uses_kernels:
        kernel = kernel.to(blur.device)
        n_teacher = round(t["kernel_teacher"] * len(blur))
        if ks.generator_type == "psf":
            kernel = centre_kernels(kernel, ks.psf_size)
            teacher = kernel[:n_teacher] if n_teacher else None
        else:
            projection = kernel_projection(ks.kernel_dim, kernel.shape[-1], blur.device)
            teacher = kernel_code_target(kernel[:n_teacher], projection) if n_teacher else None
    with autocast:
        out = forward(sharp, blur, teacher, psfs) if psfs is not None else forward(sharp, blur, teacher)
    pred, code_mean, kl = out[:3]
    pixel = pixel_loss(pred.float(), blur, t["pixel_criterion"])
    loss = t["pixel_weight"] * pixel + t["kl_weight"] * kl.float()
    kernel_term = torch.zeros((), device=blur.device)
    if ks.generator_type == "psf":
        g_psfs, restored = out[3] if len(out) > 3 else (None, None)
        if t["kernel_weight"] > 0:
            if g_psfs is None:
                g_psfs = ks.generator.decoder(code_mean[:, :, None, None])[:, 0, 0]
            kernel_term = psf_loss(g_psfs, kernel)
        if restored is not None:
            kernel_term = kernel_term + psf_loss(restored, psfs) * len(blur) / len(psfs)
        loss = loss + t["kernel_weight"] * kernel_term
    elif t["kernel_weight"] > 0:
        kernel_term = kernel_code_loss(code_mean, kernel, projection)
        loss = loss + t["kernel_weight"] * kernel_term
    value = loss.item()
    skipped = any_true(info, not math.isfinite(value), loss.device)
    if not skipped:
        # DDP averages gradients over the processes; scaling by their number makes the update that of
        # the loss summed over the global batch, as one process with world_size × batch would make
        scaler.scale(loss * info.world_size).backward()
        scaler.step(optimizer)
        scaler.update()
    elements = blur.numel()
    return StepResult(value / elements, pixel.item() / elements, float(kl.item()) / len(blur),
                      kernel_term.item() / len(blur), skipped, code_mean.detach().mean(0), pred.detach())


def centre_kernels(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """True kernels (B, 1, K, K) → (B, size, size), zero-padded (or cropped) about their centre."""
    pad = (size - kernel.shape[-1]) // 2
    return F.pad(kernel[:, 0], (pad, pad, pad, pad))


# --------------------------------------------------------------------------------------------- validate
@dataclass
class ValidationScores:
    """Mean PSNR (dB) over the validation images of F(x, G(x, y)) vs y (``psnr``), of F(x, k') with
    the code k' of another pair (``other_code_psnr``: the previous pair of the batch, or of the
    previous batch for batches of one; NaN with a single validation image) and of the identity
    y := x (``identity_psnr``). ``psnr`` close to ``other_code_psnr`` means F ignores
    its code: the kernel space has collapsed to one average blur."""

    psnr: float
    other_code_psnr: float
    identity_psnr: float


def _psnr_sum(pred: torch.Tensor, target: torch.Tensor) -> float:
    mse = (pred.float().clamp(0, 1) - target).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10.0 * torch.log10(1.0 / mse)).sum())


@torch.no_grad()
def validate(ks: KernelSpace, loader: DataLoader, device: torch.device, channels_last: bool = False,
             autocast: contextlib.AbstractContextManager | None = None) -> ValidationScores:
    """:class:`ValidationScores` of ``ks`` on the images of ``loader`` (images in [0, 1];
    deterministic code: the mean for a VAE model)."""
    was_training = ks.training
    ks.eval()
    total = other = identity = 0.0
    count = other_count = 0
    previous_code = None
    for batch in loader:
        sharp, blur = to_device(batch, device, channels_last)
        with autocast or contextlib.nullcontext():
            code = ks.extract_code(sharp, blur)
            pred = ks.apply(sharp, code)
            other_code = code.roll(1, 0) if len(code) > 1 else previous_code
            other_pred = ks.apply(sharp, other_code) if other_code is not None else None
        previous_code = code[-1:]
        total += _psnr_sum(pred, blur)
        identity += _psnr_sum(sharp, blur)
        count += len(blur)
        if other_pred is not None:
            other += _psnr_sum(other_pred, blur)
            other_count += len(blur)
    ks.train(was_training)
    return ValidationScores(total / max(count, 1), other / other_count if other_count else math.nan,
                            identity / max(count, 1))


def to_device(batch: dict, device: torch.device, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(sharp, blur) of a batch dict on ``device`` (NHWC when ``channels_last``)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    sharp = batch["sharp"].to(device, non_blocking=True).contiguous(memory_format=fmt)
    blur = batch["blur"].to(device, non_blocking=True).contiguous(memory_format=fmt)
    return sharp, blur


# --------------------------------------------------------------------------------------------- checkpoint
def save_checkpoint(
    paths: ExperimentPaths, ks: KernelSpace, optimizer: torch.optim.Optimizer,
    scheduler: CosineAnnealingRestartLR, scaler: torch.amp.GradScaler, loop: LoopState, cfg: dict,
    info: DistInfo, elapsed: float, batch_size: int,
) -> None:
    """Write models/<iter>.pth, models/latest.pth and then (last) training_state/<iter>.state.

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


# --------------------------------------------------------------------------------------------- logging
class _TqdmHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


def setup_logging(is_main: bool) -> list[logging.Handler]:
    """Log to the console through tqdm (other ranks: warnings only). Returns the handlers, to be
    removed by :func:`close_logging`; :func:`attach_log_file` adds train.log once the run is valid."""
    console = _TqdmHandler()
    if not is_main:
        console.setLevel(logging.WARNING)
    console.setFormatter(LOG_FORMAT)
    LOG.addHandler(console)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False
    return [console]


def attach_log_file(paths: ExperimentPaths, handlers: list[logging.Handler]) -> None:
    """Create the experiment folder and append the log to its train.log (rank 0)."""
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(paths.log, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{paths.root}: cannot create the experiment folder "
                        f"({unwritable_reason(paths.root, exc)})") from exc
    handler.setFormatter(LOG_FORMAT)
    LOG.addHandler(handler)
    handlers.append(handler)


def close_logging(handlers: list[logging.Handler]) -> None:
    """Detach and close what :func:`setup_logging` and :func:`attach_log_file` attached."""
    for h in handlers:
        LOG.removeHandler(h)
        h.close()


def image_grid(sharp: torch.Tensor, blur: torch.Tensor, pred: torch.Tensor, count: int) -> torch.Tensor:
    """(3, H', W') grid: rows x, y, F(x, G(x, y)) of the first ``count`` samples."""
    from torchvision.utils import make_grid

    n = min(count, sharp.shape[0])
    rows = torch.cat([sharp[:n], blur[:n], pred[:n].clamp(0, 1)]).detach().float().cpu()
    return make_grid(rows, nrow=n, padding=2)


# --------------------------------------------------------------------------------------------- loop
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


def train(cfg: dict, device: torch.device | str = "cpu", resume: str | None = None,
          info: DistInfo | None = None) -> KernelSpace:
    """Train the kernel space described by ``cfg`` (see :func:`load_train_config`).

    ``resume``: None (fresh run), "auto" (newest state of this experiment, fresh if none) or a
    ``.state`` path. ``info``: the DDP rank (default: from torchrun's environment). Returns the
    trained KernelSpace (on the training device).
    """
    info = info or dist_info_from_env()
    device = init_distributed(info, torch.device(device))
    t = cfg["train"]
    paths = ExperimentPaths(Path(cfg["path"]["root"]) / cfg["name"])
    handlers: list[logging.Handler] = []
    writer = None
    threads = torch.get_num_threads()
    try:
        prepare_experiment(paths, resume, info)
        handlers = setup_logging(info.is_main)
        if t["num_threads"] > 0:
            torch.set_num_threads(t["num_threads"])
        autocast = autocast_context(t["amp"], device)
        seed_everything(t["manual_seed"])
        ks = build_model(cfg, device)
        seed_everything(t["manual_seed"] + 1000 * info.rank)
        optimizer, scheduler = build_optimizer(cfg, ks)
        scaler = torch.amp.GradScaler(device.type, enabled=t["amp"] == "fp16")
        loader, sampler, loader_gen = build_train_loader(cfg, info, device)
        val_loader = build_val_loader(cfg, device)  # built everywhere (same errors on every rank), used on rank 0
        batch_size = cfg["datasets"]["train"]["batch_size"]

        loop = LoopState()
        found = find_resume_state(resume, paths) if resume else None
        if found is not None:
            loop = restore(found[0], found[1], ks, optimizer, scheduler, scaler, info, batch_size)
        elif resume not in (None, "auto"):
            raise UserError(f"--resume {resume}: no training state found")
        if info.is_main:  # the run is valid: only now does anything appear under path.root
            attach_log_file(paths, handlers)
            if found is not None:
                LOG.info("resumed from %s (iteration %d)", found[1], loop.iteration)
            with atomic_path(paths.root / "config.yml", suffix=".yml") as tmp:
                tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
            if cfg["use_tb_logger"]:
                from torch.utils.tensorboard import SummaryWriter

                writer = SummaryWriter(str(paths.tb), purge_step=loop.iteration + 1)

        forward: nn.Module = TrainForward(ks)
        if t["compile"]:
            forward = torch.compile(forward)
        if info.enabled:
            ids = [device.index] if device.type == "cuda" else None
            forward = nn.parallel.DistributedDataParallel(forward, device_ids=ids)

        n_params = sum(p.numel() for p in ks.parameters())
        LOG.info("%s: %d parameters, %d process(es) on %s, batch %d per process, amp %s, %d threads",
                 cfg["name"], n_params, info.world_size, device, batch_size, t["amp"],
                 torch.get_num_threads())
        run_loop(cfg, paths, ks, forward, optimizer, scheduler, scaler, autocast, loader, sampler, loader_gen,
                 val_loader, loop, writer, info, device)
        return ks
    finally:
        if writer is not None:
            writer.close()
        close_logging(handlers)
        cleanup_distributed()
        torch.set_num_threads(threads)


def run_loop(
    cfg: dict, paths: ExperimentPaths, ks: KernelSpace, forward: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: CosineAnnealingRestartLR, scaler: torch.amp.GradScaler,
    autocast: contextlib.AbstractContextManager, loader: DataLoader, sampler: ResumableDistributedSampler,
    loader_gen: torch.Generator,
    val_loader: DataLoader | None, loop: LoopState, writer: Any, info: DistInfo, device: torch.device,
) -> None:
    """The training loop from ``loop.iteration`` to ``train.niter``: steps, logging, validation,
    checkpoints (the last iteration always writes a model and a training state)."""
    from tqdm import tqdm

    t, log_cfg = cfg["train"], cfg["logger"]
    niter, seed = t["niter"], t["manual_seed"]
    batch_size = cfg["datasets"]["train"]["batch_size"]
    samples_per_step = batch_size * info.world_size
    start_time = time.perf_counter()
    bar = tqdm(total=niter, initial=loop.iteration, desc=cfg["name"], dynamic_ncols=True,
               disable=not (info.is_main and log_cfg["progress_bar"]))
    data_iter = None
    rate, last = 0.0, time.perf_counter()
    while loop.iteration < niter:
        if data_iter is None:
            sampler.set_epoch(loop.epoch)
            sampler.set_start(loop.epoch_start)
            loader_gen.manual_seed(seed * 1_000_003 + loop.epoch * 7919 + info.rank)
            data_iter = iter(loader)
        try:
            batch = next(data_iter)
        except StopIteration:
            loop.epoch, loop.epoch_start, data_iter = loop.epoch + 1, 0, None
            continue
        loop.epoch_start += batch_size
        sharp, blur = to_device(batch, device, t["channels_last"])
        kernel = batch["kernel"] if t["kernel_weight"] > 0 or t["kernel_teacher"] > 0 else None
        psfs = None
        if t["kernel_batch"]:  # a pure function of the iteration: a resumed run draws the same kernels
            rng = np.random.default_rng([seed, 7, info.rank, loop.iteration])
            psfs = torch.from_numpy(random_psfs(loader.dataset.kernels, rng, t["kernel_batch"], ks.psf_size))
            psfs = psfs.to(device)
        result = train_step(forward, sharp, blur, optimizer, scaler, autocast, cfg, info, kernel, psfs)
        lr = optimizer.param_groups[0]["lr"]
        with warnings.catch_warnings():  # a skipped (non-finite) first step warns about the call order
            warnings.simplefilter("ignore", UserWarning)
            scheduler.step()
        loop.iteration += 1
        it = loop.iteration
        if result.skipped:
            loop.nonfinite_streak += 1
            LOG.warning("iteration %d: loss is %s; step skipped (%d in a row)", it, result.loss,
                        loop.nonfinite_streak)
            if loop.nonfinite_streak >= t["max_nonfinite"]:
                raise UserError(
                    f"iteration {it}: loss is {result.loss} for {loop.nonfinite_streak} iterations in a row "
                    f"(train.max_nonfinite={t['max_nonfinite']}); lower train.lr_G or check the data"
                )
        else:
            loop.nonfinite_streak = 0
            decay = t["mean_code_decay"]
            code = result.code_mean.detach()
            previous = torch.zeros_like(code) if loop.mean_code is None else loop.mean_code
            loop.mean_code = previous * decay + code * (1 - decay)
            loop.mean_code_steps += 1

        now = time.perf_counter()
        step_rate = samples_per_step / max(now - last, 1e-9)
        rate = step_rate if rate == 0.0 else 0.9 * rate + 0.1 * step_rate
        last = now
        bar.update(1)
        bar.set_postfix(loss=f"{result.loss:.4g}", lr=f"{lr:.3g}", samples_s=f"{rate:.2f}", refresh=False)

        if info.is_main and (it % log_cfg["print_freq"] == 0 or it == niter):
            LOG.info("iter %d  loss %.5g  pixel %.5g  kl %.4g  kernel code %.4g  lr %.4g  %.2f samples/s",
                     it, result.loss, result.pixel, result.kl, result.kernel, lr, rate)
            if writer is not None:
                writer.add_scalar("loss/total", result.loss, it)
                writer.add_scalar("loss/pixel", result.pixel, it)
                if ks.use_vae:
                    writer.add_scalar("loss/kl", result.kl, it)
                if t["kernel_weight"] > 0:
                    writer.add_scalar("loss/kernel_code", result.kernel, it)
                writer.add_scalar("lr", lr, it)
                writer.add_scalar("samples_per_s", rate, it)
        if writer is not None and log_cfg["image_freq"] and (it % log_cfg["image_freq"] == 0 or it == 1):
            grid = image_grid(sharp, blur, result.pred, log_cfg["image_count"])
            writer.add_image("train/x_y_reblur", grid, it)

        if t["val_freq"] and (it % t["val_freq"] == 0 or it == niter):
            if info.is_main and val_loader is not None:
                scores = validate(ks, val_loader, device, t["channels_last"], autocast)
                psnr = scores.psnr
                improved = psnr > loop.best_psnr
                loop.best_psnr = max(loop.best_psnr, psnr)
                LOG.info("iter %d  validation PSNR %.3f dB (best %.3f); with another pair's code %.3f, "
                         "identity %.3f", it, psnr, loop.best_psnr, scores.other_code_psnr, scores.identity_psnr)
                if writer is not None:
                    writer.add_scalar("val/psnr", psnr, it)
                    writer.add_scalar("val/psnr_other_code", scores.other_code_psnr, it)
                    writer.add_scalar("val/psnr_identity", scores.identity_psnr, it)
                if improved:
                    ks.save(str(paths.model_file("best")),
                            meta={**model_meta(loop, cfg, now - start_time), "val_psnr": psnr})
            barrier(info)
        save_freq = log_cfg["save_checkpoint_freq"]
        if (save_freq and it % save_freq == 0) or it == niter:
            save_checkpoint(paths, ks, optimizer, scheduler, scaler, loop, cfg, info,
                            time.perf_counter() - start_time, batch_size)
    bar.close()
    if loop.iteration >= niter and info.is_main:
        LOG.info("finished %s at iteration %d (%.1f s this run)", cfg["name"], loop.iteration,
                 time.perf_counter() - start_time)


# --------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run :func:`train`."""
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
    device = resolve_device(args.device)
    train(cfg, device=device, resume=args.resume or cfg["path"]["resume_state"])
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
