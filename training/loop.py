"""The training loop: build the model, optimizer and data, restore a run, then step, log, validate
and checkpoint until ``train.niter`` (:func:`train`). Single process, or one process per GPU under
torchrun (DDP); only rank 0 logs and writes."""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader

from data import build_dataset
from data.kernels import random_psfs
from models import KernelSpace
from models.init import initialise_kernel_space
from training.logging import (
    LOG,
    attach_log_file,
    close_logging,
    image_grid,
    setup_logging,
    tensorboard_writer,
    write_scalars,
)
from training.state import (
    ExperimentPaths,
    LoopState,
    find_resume_state,
    load_weights_into,
    model_meta,
    prepare_experiment,
    restore,
    save_training_checkpoint,
    seed_everything,
)
from training.step import StepResult, TrainForward, autocast_context, to_device, train_step
from utils.dist import DistInfo, barrier, cleanup_distributed, dist_info_from_env, init_distributed
from utils.errors import UserError
from utils.fileio import atomic_path
from utils.lr_scheduler import CosineAnnealingRestartLR
from utils.metrics import psnr_per_image
from utils.sampler import ResumableDistributedSampler


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
    """Sum over the batch of each image's PSNR (ŷ clamped to [0, 1]; at most 100 dB, so means stay finite)."""
    return float(psnr_per_image(pred.float().clamp(0, 1), target, max_db=100.0).sum())


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


def train(cfg: dict, device: torch.device | str = "cpu", resume: str | None = None,
          info: DistInfo | None = None) -> KernelSpace:
    """Train the kernel space described by ``cfg`` (see :func:`training.config.load_train_config`).

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
            attach_log_file(paths.root, paths.log, handlers)
            if found is not None:
                LOG.info("resumed from %s (iteration %d)", found[1], loop.iteration)
            with atomic_path(paths.root / "config.yml", suffix=".yml") as tmp:
                tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
            if cfg["use_tb_logger"]:
                writer = tensorboard_writer(paths.tb, loop.iteration)

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


def _batches(loader: DataLoader, sampler: ResumableDistributedSampler, loader_gen: torch.Generator,
             loop: LoopState, seed: int, rank: int, batch_size: int) -> Iterator[dict]:
    """Batches without end from ``loop.epoch``/``loop.epoch_start`` on, counting them in ``loop`` (so a
    resumed run continues the epoch where it stopped, with the same shuffle)."""
    while True:
        sampler.set_epoch(loop.epoch)
        sampler.set_start(loop.epoch_start)
        loader_gen.manual_seed(seed * 1_000_003 + loop.epoch * 7919 + rank)
        for batch in loader:
            loop.epoch_start += batch_size
            yield batch
        loop.epoch, loop.epoch_start = loop.epoch + 1, 0


def _account(result: StepResult, loop: LoopState, t: dict, it: int) -> None:
    """After a step: count a skipped (non-finite) step, refusing too many in a row, or update the
    running mean code."""
    if result.skipped:
        loop.nonfinite_streak += 1
        LOG.warning("iteration %d: loss is %s; step skipped (%d in a row)", it, result.loss, loop.nonfinite_streak)
        if loop.nonfinite_streak >= t["max_nonfinite"]:
            raise UserError(
                f"iteration {it}: loss is {result.loss} for {loop.nonfinite_streak} iterations in a row "
                f"(train.max_nonfinite={t['max_nonfinite']}); lower train.lr_G or check the data"
            )
        return
    loop.nonfinite_streak = 0
    decay = t["mean_code_decay"]
    code = result.code_mean.detach()
    previous = torch.zeros_like(code) if loop.mean_code is None else loop.mean_code
    loop.mean_code = previous * decay + code * (1 - decay)
    loop.mean_code_steps += 1


def _log(cfg: dict, ks: KernelSpace, writer: Any, info: DistInfo, it: int, result: StepResult, lr: float,
         rate: float, images: tuple[torch.Tensor, torch.Tensor]) -> None:
    """The log line and scalars every ``print_freq`` iterations, the image grid every ``image_freq``."""
    log_cfg, niter = cfg["logger"], cfg["train"]["niter"]
    if info.is_main and (it % log_cfg["print_freq"] == 0 or it == niter):
        LOG.info("iter %d  loss %.5g  pixel %.5g  kl %.4g  kernel code %.4g  lr %.4g  %.2f samples/s",
                 it, result.loss, result.pixel, result.kl, result.kernel, lr, rate)
        scalars = {"loss/total": result.loss, "loss/pixel": result.pixel, "lr": lr, "samples_per_s": rate}
        if ks.use_vae:
            scalars["loss/kl"] = result.kl
        if cfg["train"]["kernel_weight"] > 0:
            scalars["loss/kernel_code"] = result.kernel
        write_scalars(writer, scalars, it)
    if writer is not None and log_cfg["image_freq"] and (it % log_cfg["image_freq"] == 0 or it == 1):
        writer.add_image("train/x_y_reblur", image_grid(*images, result.pred, log_cfg["image_count"]), it)


def _validate(cfg: dict, paths: ExperimentPaths, ks: KernelSpace, val_loader: DataLoader | None, loop: LoopState,
              writer: Any, info: DistInfo, device: torch.device, autocast: contextlib.AbstractContextManager,
              elapsed: float) -> None:
    """Validation on the main process (all processes wait for it); a better PSNR saves the best model."""
    it = loop.iteration
    if info.is_main and val_loader is not None:
        scores = validate(ks, val_loader, device, cfg["train"]["channels_last"], autocast)
        psnr = scores.psnr
        improved = psnr > loop.best_psnr
        loop.best_psnr = max(loop.best_psnr, psnr)
        LOG.info("iter %d  validation PSNR %.3f dB (best %.3f); with another pair's code %.3f, "
                 "identity %.3f", it, psnr, loop.best_psnr, scores.other_code_psnr, scores.identity_psnr)
        write_scalars(writer, {"val/psnr": psnr, "val/psnr_other_code": scores.other_code_psnr,
                               "val/psnr_identity": scores.identity_psnr}, it)
        if improved:
            ks.save(str(paths.model_file("best")), meta={**model_meta(loop, cfg, elapsed), "val_psnr": psnr})
    barrier(info)


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
    batches = _batches(loader, sampler, loader_gen, loop, seed, info.rank, batch_size)
    rate, last = 0.0, time.perf_counter()
    while loop.iteration < niter:
        batch = next(batches)
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
        _account(result, loop, t, it)

        now = time.perf_counter()
        step_rate = samples_per_step / max(now - last, 1e-9)
        rate = step_rate if rate == 0.0 else 0.9 * rate + 0.1 * step_rate
        last = now
        bar.update(1)
        bar.set_postfix(loss=f"{result.loss:.4g}", lr=f"{lr:.3g}", samples_s=f"{rate:.2f}", refresh=False)
        _log(cfg, ks, writer, info, it, result, lr, rate, (sharp, blur))
        if t["val_freq"] and (it % t["val_freq"] == 0 or it == niter):
            _validate(cfg, paths, ks, val_loader, loop, writer, info, device, autocast, now - start_time)
        save_freq = log_cfg["save_checkpoint_freq"]
        if (save_freq and it % save_freq == 0) or it == niter:
            save_training_checkpoint(paths, ks, optimizer, scheduler, scaler, loop, cfg, info,
                                     time.perf_counter() - start_time, batch_size)
    bar.close()
    if loop.iteration >= niter and info.is_main:
        LOG.info("finished %s at iteration %d (%.1f s this run)", cfg["name"], loop.iteration,
                 time.perf_counter() - start_time)
