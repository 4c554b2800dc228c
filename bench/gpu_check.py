#!/usr/bin/env python
"""One-GPU health check: the project's training step, DDP and deblurring on CUDA.

Sections (``--sections``, default all three, always run in this order; each is time-boxed and a
failure in one is recorded as FAILED with its one-line error, then the next one runs):

- ``train``: training throughput at the published U-Net config (configs/train/gopro_woVAE.yml: the
  49 M-parameter model, batch 16 of 256² crops) on synthetic pairs held in memory (no dataset
  needed), through the trainer's own pieces (training.loop.build_model / build_optimizer,
  training.step.TrainForward / train_step), in three modes: fp32; bf16 autocast + channels_last;
  torch.compile (default mode, fp32). A few untimed warm-up steps (compilation included), then
  ``--train-steps`` steps between ``torch.cuda.synchronize`` calls → samples/s.
- ``ddp``: one process joins an NCCL process group (world size 1, localhost TCP store) and trains
  configs/train/ci_tiny.yml through ``training.loop.train`` wrapped in DistributedDataParallel,
  writing a checkpoint; a second process resumes it with ``--resume auto`` semantics and continues.
  (``train`` joins a group only for world_size > 1, so the check hands it a DistInfo that says it is
  distributed: the real NCCL + DDP path with one process.) Each run is a subprocess with a timeout.
- ``deblur``: the default route (``algorithm: alternating``, configs/deblur/default.yml) and the
  paper's route (``algorithm: dip``, configs/deblur/paper.yml cut to ``--dip-iters`` steps) on a
  255×255 crop of examples/blurry_astronaut.png with the shipped model, on the device and on the
  CPU: seconds of each and the largest absolute difference of the two sharp outputs (pass when
  <= 1e-3; TF32 is switched off for these runs, so the GPU computes in true fp32).

Every section also records its peak GPU memory (torch.cuda.max_memory_allocated). The results go
to bench/results/gpu_<gpu name>.md (e.g. gpu_nvidia_h200.md), rewritten atomically after every
section, so a run cut short still leaves the finished sections. The whole run keeps within a
budget of 440 s (bench/gpu_check.sh adds an 8-minute timeout around it).

Examples:
    bench/gpu_check.sh                                   # all sections, <= 8 min on one H200
    python bench/gpu_check.py --dry-run                  # the plan only; CUDA is not touched
    python bench/gpu_check.py --sections train --train-steps 50
    python bench/gpu_check.py --quick --device cpu       # tiny sizes: the code path on any machine

Exit status: 0 when every section passed, 1 when something FAILED (see the results file), 2 on a
bad option or when CUDA is requested but not available.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = ROOT / "bench" / "results"
SECTIONS = ("train", "ddp", "deblur")
SECTION_TITLES = {
    "train": "Training steps",
    "ddp": "DDP (1 process) checkpoint and resume",
    "deblur": "Deblurring on the device against the CPU",
}
TOTAL_BUDGET_S = 440.0  # the Python side; bench/gpu_check.sh kills the run at 8 min
TOLERANCE = 1e-3  # max |sharp(device) - sharp(cpu)| for a pass

PAPER_TRAIN_CONFIG = "configs/train/gopro_woVAE.yml"  # the published U-Net model without the VAE
TINY_TRAIN_CONFIG = "configs/train/ci_tiny.yml"
TRAIN_WARMUP_STEPS = 3
# mode -> (label, train.amp, train.channels_last, train.compile, time cap in s incl. warm-up)
TRAIN_MODES: dict[str, tuple[str, str, bool, bool, float]] = {
    "fp32": ("fp32", "none", False, False, 60.0),
    "bf16_cl": ("bf16 autocast + channels_last", "bf16", True, False, 60.0),
    "compile": ("torch.compile (default mode), fp32", "none", False, True, 180.0),
}

DDP_CONFIG = TINY_TRAIN_CONFIG
DDP_RUN_CAP_S = 90.0
DDP_RESULT_TAG = "GPU_CHECK_DDP_RESULT "

DEBLUR_IMAGE = "examples/blurry_astronaut.png"
DEBLUR_SIZE = 255
QUICK_DEBLUR_SIZE = 64
# algorithm -> (config, time cap in s for the device run and the CPU run together)
DEBLUR_ROUTES: dict[str, tuple[str, float]] = {
    "alternating": ("configs/deblur/default.yml", 60.0),
    "dip": ("configs/deblur/paper.yml", 150.0),
}


# -- options -----------------------------------------------------------------------------------


class _OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit status 2), without the usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {' '.join(message.split())}", file=sys.stderr)
        raise SystemExit(2)


def parse_sections(text: str) -> list[str]:
    """``"deblur, train"`` → ``["train", "deblur"]`` (known names, in the run order, once each)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"no section named (choose from {', '.join(SECTIONS)})")
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown section {unknown[0]!r} (choose from {', '.join(SECTIONS)})"
        )
    return [s for s in SECTIONS if s in names]


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def device_name_arg(text: str) -> str:
    """``cuda``, ``cuda:N`` or ``cpu`` (argparse type; whether the device exists is checked later)."""
    if re.fullmatch(r"cuda(:\d+)?|cpu", text.strip()):
        return text.strip()
    raise argparse.ArgumentTypeError(f"expected cuda, cuda:N or cpu, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """The gpu_check argument parser (errors: one line naming the option, exit status 2)."""
    parser = _OneLineParser(
        prog="gpu_check.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help="folder of the results file gpu_<gpu name>.md (default bench/results)")
    parser.add_argument("--sections", type=parse_sections, default=list(SECTIONS),
                        help=f"comma list of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--train-steps", type=positive_int, default=20,
                        help=f"timed training steps per mode, after {TRAIN_WARMUP_STEPS} warm-up steps (default 20)")
    parser.add_argument("--dip-iters", type=positive_int, default=50,
                        help="Adam steps of the dip route (its warm-up: as many, at most the config's; default 50)")
    parser.add_argument("--device", type=device_name_arg, default="cuda",
                        help="cuda, cuda:N (default cuda) or cpu (the code path only, with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (ci_tiny training config, 64² deblur crop, small DIPs): seconds, for tests")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan of what would run and exit 0 (CUDA is not touched)")
    return parser


# -- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What a run does, resolved from the options."""

    sections: tuple[str, ...]
    device: str
    out_dir: Path
    quick: bool
    train_config: str
    train_steps: int
    train_warmup: int
    ddp_first: int  # iterations of the first DDP run (it ends with a checkpoint)
    ddp_total: int  # the resumed run continues to this iteration
    deblur_size: int
    dip_iters: int


def make_plan(args: argparse.Namespace) -> Plan:
    """The :class:`Plan` of parsed options."""
    return Plan(
        sections=tuple(args.sections), device=args.device, out_dir=Path(args.out_dir), quick=args.quick,
        train_config=TINY_TRAIN_CONFIG if args.quick else PAPER_TRAIN_CONFIG,
        train_steps=args.train_steps, train_warmup=1 if args.quick else TRAIN_WARMUP_STEPS,
        ddp_first=2 if args.quick else 6, ddp_total=4 if args.quick else 10,
        deblur_size=QUICK_DEBLUR_SIZE if args.quick else DEBLUR_SIZE, dip_iters=args.dip_iters,
    )


def _train_shape(config: str) -> str:
    """"batch B of S² crops" of a training config (its path when it cannot be read)."""
    try:
        from training.config import load_train_config

        opt = load_train_config(ROOT / config)["datasets"]["train"]
        return f"batch {opt['batch_size']} of {opt['HQ_size']}² crops"
    except Exception as exc:  # noqa: BLE001 - the plan is informative only
        return f"(config not readable: {one_line(exc)})"


def describe_plan(plan: Plan) -> list[str]:
    """The lines ``--dry-run`` prints: every section that would run, its sizes and time caps."""
    backend = "nccl" if plan.device.startswith("cuda") else "gloo"
    lines = [
        "gpu_check plan (dry run: nothing is run, CUDA is not touched)",
        f"  device: {plan.device}{'  (quick: tiny sizes)' if plan.quick else ''}",
        f"  output: {plan.out_dir / 'gpu_<gpu name>.md'} (the name from torch.cuda.get_device_name, slugified)",
        f"  time budget: {TOTAL_BUDGET_S:.0f} s in all (bench/gpu_check.sh: 8 min timeout)",
    ]
    if "train" in plan.sections:
        modes = "; ".join(f"{label} (cap {cap:.0f} s)" for label, _a, _c, _k, cap in TRAIN_MODES.values())
        lines.append(f"  [train]  {plan.train_config}: {_train_shape(plan.train_config)}, synthetic pairs in "
                     f"memory; {plan.train_warmup} warm-up + {plan.train_steps} timed steps per mode: {modes}")
    if "ddp" in plan.sections:
        lines.append(f"  [ddp]    {DDP_CONFIG}, 1 process, {backend}, DistributedDataParallel: iterations "
                     f"0 → {plan.ddp_first} with a checkpoint, then --resume auto → {plan.ddp_total} "
                     f"(cap {DDP_RUN_CAP_S:.0f} s per run)")
    if "deblur" in plan.sections:
        routes = ", ".join(f"{name} ({cfg}, cap {cap:.0f} s)" for name, (cfg, cap) in DEBLUR_ROUTES.items())
        lines.append(f"  [deblur] {DEBLUR_IMAGE} cropped to {plan.deblur_size}×{plan.deblur_size}: {routes}; "
                     f"dip: {plan.dip_iters} iterations + up to {plan.dip_iters} warm-up; each on {plan.device} "
                     f"and on cpu, pass when max |difference| <= {TOLERANCE:g}")
    return lines


# -- small helpers -----------------------------------------------------------------------------


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` of an exception on one line (at most ``limit`` characters)."""
    message = " ".join(str(exc).split())
    text = message if isinstance(exc, SectionTimeout) else f"{type(exc).__name__}: {message}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def gpu_slug(name: str) -> str:
    """A device name as a file-name part: ``"NVIDIA H200"`` → ``"nvidia_h200"``."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return slug or "unknown"


def result_path(out_dir: str | os.PathLike, gpu_name: str) -> Path:
    """The results file of a GPU: ``<out_dir>/gpu_<slug>.md``."""
    return Path(out_dir) / f"gpu_{gpu_slug(gpu_name)}.md"


def format_bytes(count: int | None) -> str:
    """Bytes as GiB with two decimals (``n/a`` for None: no CUDA device)."""
    return "n/a" if count is None else f"{count / 2**30:.2f} GiB"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (no-op off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory measurement on a CUDA device (no-op elsewhere)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> int | None:
    """torch.cuda.max_memory_allocated since the last reset (None off CUDA, or when a broken CUDA
    context cannot say: it is also read after a failure)."""
    if device.type != "cuda":
        return None
    try:
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    except Exception:  # noqa: BLE001 - the failure itself is what gets reported
        return None


def free_memory(device: torch.device) -> None:
    """Collect garbage and return cached CUDA blocks (between modes and sections; never raises)."""
    gc.collect()
    if device.type == "cuda":
        with contextlib.suppress(Exception):
            torch.cuda.empty_cache()


class SectionTimeout(BaseException):
    """A section or mode ran past its time cap (or found no time left in the budget).

    A BaseException, like KeyboardInterrupt, so that no library's ``except Exception`` swallows it."""


@dataclass
class Budget:
    """The run's wall-clock budget: every cap is cut to what is left of it."""

    total_s: float
    start: float = field(default_factory=time.perf_counter)

    def left(self) -> float:
        """Seconds left of the budget."""
        return self.total_s - (time.perf_counter() - self.start)

    def cap(self, seconds: float) -> float:
        """``seconds``, or less when the budget has less left."""
        return min(seconds, self.left())


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`SectionTimeout` in the block once ``seconds`` have passed (SIGALRM, main thread
    only; elsewhere the block runs unbounded). ``seconds`` <= 0 raises at once."""
    if seconds <= 0:
        raise SectionTimeout(f"skipped: no time left in the {TOTAL_BUDGET_S:.0f} s budget")
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise SectionTimeout(f"timed out after {seconds:.0f} s (its time cap)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """True fp32 matmuls and convolutions on CUDA inside the block (the settings are restored after)."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


# -- results and the markdown file ---------------------------------------------------------------


@dataclass
class SectionResult:
    """One section of the report: a table (``columns``, ``rows`` of cells), notes below it, the
    section's peak GPU memory and whether anything in it failed (``error``: the whole section)."""

    key: str
    title: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    peak_bytes: int | None = None
    failed: bool = False
    error: str | None = None
    seconds: float = 0.0

    @property
    def status(self) -> str:
        """``pass``, ``FAILED`` (something in it failed) or ``FAILED: <error>`` (the whole section)."""
        if self.error is not None:
            return f"FAILED: {self.error}"
        return "FAILED" if self.failed else "pass"

    def add_peak(self, count: int | None) -> None:
        """Fold one measurement into the section's peak GPU memory."""
        if count is not None:
            self.peak_bytes = max(self.peak_bytes or 0, count)


@dataclass
class Report:
    """The whole results file: a title, ``(key, value)`` facts about the machine, the sections."""

    title: str
    facts: list[tuple[str, str]]
    sections: list[SectionResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no section failed."""
        return all(s.error is None and not s.failed for s in self.sections)


def _cell(value: Any) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A markdown table (pipes in cells escaped, every cell on one line)."""
    out = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def render_markdown(report: Report) -> str:
    """The results file's text: facts, a summary table, then a table (and notes) per section."""
    lines = [f"# {report.title}", ""]
    lines += [f"- {key}: {value}" for key, value in report.facts]
    lines += ["", "## Summary", ""]
    lines += markdown_table(["section", "status", "seconds", "peak GPU memory"],
                            [[s.title, s.status, f"{s.seconds:.1f}", format_bytes(s.peak_bytes)]
                             for s in report.sections])
    for section in report.sections:
        number = SECTIONS.index(section.key) + 1 if section.key in SECTIONS else "-"
        lines += ["", f"## {number}. {section.title}", ""]
        if section.error is not None:
            lines += [f"FAILED: {section.error}", ""]
        if section.rows:
            lines += markdown_table(section.columns, section.rows)
            lines.append("")
        lines += [f"- {note}" for note in section.notes]
        lines.append(f"- peak GPU memory (torch.cuda.max_memory_allocated) of the section: "
                     f"{format_bytes(section.peak_bytes)}")
    return "\n".join(lines).rstrip() + "\n"


def write_report(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a temporary file beside it, then a rename)."""
    from utils.fileio import atomic_write

    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), suffix=".md")
    return Path(path)


def machine_facts(device: torch.device, argv: Sequence[str]) -> tuple[str, list[tuple[str, str]]]:
    """(device name, facts of the header: date, device, torch / CUDA / cuDNN versions, command)."""
    facts = [("date", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        name = props.name
        facts.append(("device", f"{name} (compute capability {props.major}.{props.minor}, "
                                f"{props.total_memory / 2**30:.1f} GiB)"))
    else:
        name = "cpu"
        facts.append(("device", f"cpu ({platform.processor() or platform.machine()}, "
                                f"{torch.get_num_threads()} threads)"))
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    facts += [
        ("torch", torch.__version__),
        ("CUDA (torch build)", str(torch.version.cuda)),
        ("cuDNN", str(cudnn)),
        ("python", platform.python_version()),
        ("CPU threads (torch)", str(torch.get_num_threads())),
        ("TF32 (training section)", f"cudnn {torch.backends.cudnn.allow_tf32}, "
                                    f"matmul {torch.backends.cuda.matmul.allow_tf32}"),
        ("command", "python bench/gpu_check.py " + " ".join(argv)),
    ]
    return name, facts


# -- section 1: training steps -----------------------------------------------------------------


@dataclass
class TrainTiming:
    """One training mode's measurement."""

    samples_per_s: float
    warmup_s: float
    timed_s: float
    steps: int
    peak_bytes: int | None
    last_loss: float


def synthetic_batches(size: int, batch: int, count: int) -> list[dict[str, torch.Tensor]]:
    """``count`` batches of ``batch`` synthetic (sharp, blur, kernel) pairs of ``size``² (the project's
    synthetic generator), stacked into the dicts the training step takes."""
    from data import build_dataset

    ds = build_dataset({"mode": "synthetic", "HQ_size": size, "synthetic": {"num_samples": batch * count}}, 0)
    out = []
    for i in range(count):
        items = [ds[i * batch + j] for j in range(batch)]
        out.append({key: torch.stack([s[key] for s in items]) for key in ("sharp", "blur", "kernel")})
    return out


def measure_train_mode(cfg: dict, mode: str, batches: Sequence[dict[str, torch.Tensor]], device: torch.device,
                       warmup: int, steps: int) -> TrainTiming:
    """Samples/s of the trainer's step in ``mode`` (a key of :data:`TRAIN_MODES`) on a freshly
    initialised model of ``cfg``: ``warmup`` untimed steps (compilation included), then ``steps``
    timed ones between synchronisations."""
    from training.loop import build_model, build_optimizer
    from training.state import seed_everything
    from training.step import TrainForward, autocast_context, to_device, train_step
    from utils.dist import DistInfo

    _label, amp, channels_last, compile_, _cap = TRAIN_MODES[mode]
    cfg = copy.deepcopy(cfg)
    t = cfg["train"]
    t.update(amp=amp, channels_last=channels_last, compile=compile_)
    if t["kernel_batch"]:
        raise ValueError("train.kernel_batch > 0 (generated PSF batches) is not measured")
    uses_kernels = t["kernel_weight"] > 0 or t["kernel_teacher"] > 0
    seed_everything(t["manual_seed"])
    reset_peak_memory(device)
    ks = build_model(cfg, device)
    optimizer, _scheduler = build_optimizer(cfg, ks)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    autocast = autocast_context(amp, device)
    forward: torch.nn.Module = TrainForward(ks)
    if compile_:
        forward = torch.compile(forward)
    info = DistInfo()
    batch_size = batches[0]["sharp"].shape[0]

    def step(i: int) -> float:
        batch = batches[i % len(batches)]
        sharp, blur = to_device(batch, device, channels_last)
        kernel = batch["kernel"] if uses_kernels else None
        return train_step(forward, sharp, blur, optimizer, scaler, autocast, cfg, info, kernel=kernel).loss

    start = time.perf_counter()
    for i in range(warmup):
        step(i)
    synchronize(device)
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    loss = math.nan
    for i in range(steps):
        loss = step(warmup + i)
    synchronize(device)
    timed_s = time.perf_counter() - start
    return TrainTiming(batch_size * steps / timed_s, warmup_s, timed_s, steps, peak_memory(device), loss)


def run_train_section(plan: Plan, device: torch.device, budget: Budget) -> SectionResult:
    """Section 1: samples/s of the three training modes (:data:`TRAIN_MODES`) at ``plan.train_config``."""
    from training.config import load_train_config

    cfg = load_train_config(ROOT / plan.train_config)
    opt = cfg["datasets"]["train"]
    batch, size = opt["batch_size"], opt["HQ_size"]
    n_params = None
    section = SectionResult("train", SECTION_TITLES["train"],
                            ["mode", "status", "warm-up s", "timed steps", "timed s", "samples/s", "× fp32",
                             "peak GPU memory", "last loss"])
    batches = synthetic_batches(size, batch, 2)
    baseline = None
    for mode, (label, _amp, _cl, _compile, cap) in TRAIN_MODES.items():
        print(f"[train] {label} ...", flush=True)
        try:
            with time_limit(budget.cap(cap)):
                timing = measure_train_mode(cfg, mode, batches, device, plan.train_warmup, plan.train_steps)
        except (Exception, SectionTimeout) as exc:  # noqa: BLE001 - a failing mode is recorded, the next one runs
            section.failed = True
            section.add_peak(peak_memory(device))
            section.rows.append([label, f"FAILED: {one_line(exc)}", "", "", "", "", "", "", ""])
            print(f"[train] {label}: FAILED: {one_line(exc)}", flush=True)
        else:
            baseline = timing.samples_per_s if mode == "fp32" else baseline
            ratio = f"{timing.samples_per_s / baseline:.2f}" if baseline else "n/a"
            finite = math.isfinite(timing.last_loss)
            section.failed |= not finite
            section.add_peak(timing.peak_bytes)
            section.rows.append([label, "ok" if finite else "FAILED: non-finite loss", f"{timing.warmup_s:.2f}",
                                 str(timing.steps), f"{timing.timed_s:.2f}", f"{timing.samples_per_s:.2f}", ratio,
                                 format_bytes(timing.peak_bytes), f"{timing.last_loss:.4g}"])
            print(f"[train] {label}: {timing.samples_per_s:.2f} samples/s", flush=True)
        finally:
            if mode == "compile":
                with contextlib.suppress(Exception):
                    torch._dynamo.reset()
            free_memory(device)
    with contextlib.suppress(Exception):
        from models import KernelSpace

        n_params = sum(p.numel() for p in KernelSpace.from_config(cfg["KernelWizard"]).parameters())
    size_note = f", {n_params / 1e6:.1f} M parameters" if n_params else ""
    section.notes += [
        f"{plan.train_config}: batch {batch} of {size}² crops{size_note}; synthetic pairs held in memory "
        "(2 batches, alternated; data loading excluded)",
        f"the trainer's own pieces: training.loop.build_model / build_optimizer, training.step.TrainForward / "
        f"train_step; {plan.train_warmup} untimed warm-up step(s) per mode (the compile mode compiles there), "
        "then the timed steps between torch.cuda.synchronize calls; samples/s = batch × steps / timed s",
        "loss: per image element (the optimised loss is summed, see training/step.py pixel_loss)",
    ]
    return section


# -- section 2: DDP checkpoint and resume ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ddp_worker(spec_json: str) -> int:
    """The DDP check's child process: join a one-process group (NCCL on CUDA, gloo on the CPU) and
    train ``spec["config"]`` with ``spec["overrides"]`` through :func:`training.loop.train` (DDP-wrapped),
    resuming per ``spec["resume"]``; prints ``GPU_CHECK_DDP_RESULT {json}`` with its peak GPU memory.

    ``train`` joins a process group only when ``DistInfo.enabled`` (world_size > 1); the one process
    here gets a DistInfo whose ``enabled`` is true, so it takes the distributed path for real.
    """
    from training.config import load_train_config
    from training.loop import train
    from utils.dist import DistInfo

    @dataclass(frozen=True)
    class OneProcessGroup(DistInfo):
        @property
        def enabled(self) -> bool:
            return True

    spec = json.loads(spec_json)
    cfg = load_train_config(ROOT / spec["config"], spec["overrides"])
    device = torch.device(spec["device"])
    train(cfg, device, spec["resume"], OneProcessGroup(rank=0, local_rank=0, world_size=1))
    peak = int(torch.cuda.max_memory_allocated()) if device.type == "cuda" else None
    print(DDP_RESULT_TAG + json.dumps({"peak_bytes": peak}), flush=True)
    return 0


def _launch_ddp_run(root: Path, niter: int, save_freq: int, resume: str | None, device: torch.device,
                    timeout: float) -> tuple[float, int | None]:
    """Run :func:`ddp_worker` in a child process (localhost TCP store) → (seconds, peak GPU bytes).
    A failure (exit status, timeout) raises RuntimeError with the child's last stderr line."""
    if timeout <= 0:
        raise SectionTimeout(f"skipped: no time left in the {TOTAL_BUDGET_S:.0f} s budget")
    overrides = [f"path.root={root}", f"train.niter={niter}", f"logger.save_checkpoint_freq={save_freq}",
                 f"train.val_freq={save_freq}", "use_tb_logger=false", "logger.progress_bar=false"]
    spec = {"config": DDP_CONFIG, "overrides": overrides, "resume": resume,
            "device": "cuda" if device.type == "cuda" else "cpu"}
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "RANK": "0",
           "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    if device.type == "cuda" and device.index is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(device.index)
    code = "import sys; from bench.gpu_check import ddp_worker; sys.exit(ddp_worker(sys.argv[1]))"
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SectionTimeout(f"timed out after {timeout:.0f} s") from None
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        raise RuntimeError(f"exit status {proc.returncode}: {lines[-1] if lines else 'no error output'}")
    found = [line[len(DDP_RESULT_TAG):] for line in proc.stdout.splitlines() if line.startswith(DDP_RESULT_TAG)]
    if not found:
        raise RuntimeError("the worker printed no result line")
    return seconds, json.loads(found[-1])["peak_bytes"]


def _check_checkpoint(exp: Path, iteration: int) -> str:
    """Both files of a checkpoint at ``iteration`` load with weights_only=True; returns a note."""
    from models import KernelSpace

    model_file, state_file = exp / "models" / f"{iteration}.pth", exp / "training_state" / f"{iteration}.state"
    for path in (model_file, state_file):
        if not path.is_file():
            raise RuntimeError(f"{path.relative_to(exp)} was not written")
    state = torch.load(state_file, map_location="cpu", weights_only=True)
    if int(state["iteration"]) != iteration:
        raise RuntimeError(f"{state_file.name} holds iteration {state['iteration']}, expected {iteration}")
    KernelSpace.load(str(model_file), "cpu")
    return f"models/{iteration}.pth and training_state/{iteration}.state load with weights_only=True"


def resumed_iteration(log_text: str) -> int | None:
    """The iteration of the last "resumed from ... (iteration N)" line of a train.log (None: none)."""
    found = re.findall(r"resumed from .* \(iteration (\d+)\)", log_text)
    return int(found[-1]) if found else None


def run_ddp_section(plan: Plan, device: torch.device, budget: Budget) -> SectionResult:
    """Section 2: a one-process DDP run that writes a checkpoint, then a resume that continues it."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    section = SectionResult("ddp", SECTION_TITLES["ddp"],
                            ["run", "status", "iterations", "seconds", "peak GPU memory", "detail"])
    first, total = plan.ddp_first, plan.ddp_total
    with tempfile.TemporaryDirectory(prefix="gpu_check_ddp_") as tmp:
        exp = Path(tmp) / "ci_tiny"
        runs = [("1: fresh run", None, first, f"0 → {first}"), ("2: --resume auto", "auto", total, None)]
        for label, resume, niter, span in runs:
            print(f"[ddp] {label} ...", flush=True)
            try:
                seconds, peak = _launch_ddp_run(Path(tmp), niter, first, resume, device,
                                                budget.cap(DDP_RUN_CAP_S))
                section.add_peak(peak)
                detail = _check_checkpoint(exp, niter)
                if resume is not None:
                    log = exp / "train.log"
                    start = resumed_iteration(log.read_text(encoding="utf-8")) if log.is_file() else None
                    if start != first:
                        raise RuntimeError(f"resumed from iteration {start}, expected {first}")
                    span = f"resumed from {start} → {total}"
            except (Exception, SectionTimeout) as exc:  # noqa: BLE001 - recorded; a failed first run fails the resume too
                section.failed = True
                section.rows.append([label, f"FAILED: {one_line(exc)}", span or "", "", "", ""])
                print(f"[ddp] {label}: FAILED: {one_line(exc)}", flush=True)
                if resume is None:
                    section.rows.append([runs[1][0], "FAILED: not run (the first run failed)", "", "", "", ""])
                    break
            else:
                section.rows.append([label, "pass", span, f"{seconds:.1f}", format_bytes(peak), detail])
                print(f"[ddp] {label}: pass ({span})", flush=True)
    section.notes += [
        f"{DDP_CONFIG} (synthetic pairs made on the fly), world size 1, backend {backend}, localhost TCP store, "
        "each run a child process through training.loop.train wrapped in DistributedDataParallel",
        "train() joins a process group only for world_size > 1; the check hands the one process a DistInfo that "
        f"reports itself distributed, so the {backend} group, DDP wrapper, barriers and gathers all run",
        "pass: the checkpoint files exist and load with weights_only=True, and the resumed run's train.log says "
        "it resumed from the first run's last iteration",
    ]
    return section


# -- section 3: deblurring, device against CPU -------------------------------------------------------


@dataclass
class DeblurComparison:
    """One deblurring route on the device and on the reference device (the CPU)."""

    algorithm: str
    device_s: float
    reference_s: float
    max_abs_diff: float
    mean_abs_diff: float
    peak_bytes: int | None

    @property
    def passed(self) -> bool:
        """True when the sharp outputs agree to :data:`TOLERANCE`."""
        return self.max_abs_diff <= TOLERANCE


def _deblur_function() -> Callable[..., Any]:
    """:func:`deblurring.run.deblur_image` (imported late: ``--dry-run`` and ``--help`` stay light)."""
    from deblurring.run import deblur_image

    return deblur_image


def load_test_image(size: int) -> torch.Tensor:
    """examples/blurry_astronaut.png as (1, 3, size, size) in [0, 1]: shrunk (area) when its shorter
    side is over twice ``size``, then the centre crop."""
    import torch.nn.functional as F

    from data.image_io import read_image, to_tensor

    image = to_tensor(read_image(ROOT / DEBLUR_IMAGE).rgb).float()
    height, width = image.shape[-2:]
    if min(height, width) < size:
        raise ValueError(f"{DEBLUR_IMAGE} is {height}×{width}, smaller than {size}×{size}")
    if min(height, width) > 2 * size:
        scale = size / min(height, width)
        image = F.interpolate(image, size=(max(size, round(height * scale)), max(size, round(width * scale))),
                              mode="area")
        height, width = image.shape[-2:]
    top, left = (height - size) // 2, (width - size) // 2
    return image[..., top:top + size, left:left + size].contiguous()


def deblur_route_config(algorithm: str, dip_iters: int, quick: bool) -> tuple[dict, list[str]]:
    """The full deblur config of a route (:data:`DEBLUR_ROUTES`) as the check runs it, and notes on
    what it changes from the preset: dip runs ``dip_iters`` steps after a warm-up of as many (at most
    the preset's); without a local VGG-19 file its perceptual terms become MSE; ``quick`` shrinks
    the work (one alternation of one candidate; 8-channel DIPs)."""
    from deblurring.config import deblur_config
    from utils.config import read_yaml

    path = DEBLUR_ROUTES[algorithm][0]
    raw = read_yaml(ROOT / path)
    overrides: list[str] = []
    notes: list[str] = []
    if algorithm == "alternating":
        if quick:
            overrides += ["alternating.iterations=1", "alternating.candidates=[[9, 0.004]]", "alternating.polish=0",
                          "alternating.kernel_threshold=0.1", "alternating.psf_size=9"]
    else:
        preset = deblur_config(raw, source=path)
        warmup = min(dip_iters, preset["dip"]["warmup_iterations"])
        overrides += [f"iterations={dip_iters}", f"dip.warmup_iterations={warmup}"]
        notes.append(f"dip: {dip_iters} iterations after {warmup} warm-up steps (the preset: "
                     f"{preset['iterations']} after {preset['dip']['warmup_iterations']})")
        vgg = preset["loss"]["vgg_weights"]
        if not vgg or (not (ROOT / str(vgg)).is_file() and not Path(str(vgg)).is_file()):
            for phase in ("early", "late"):
                if preset["loss"][phase]["perceptual"] > 0:
                    overrides += [f"loss.{phase}.perceptual=0",
                                  f"loss.{phase}.mse={preset['loss'][phase]['perceptual']}"]
            notes.append("dip: no local VGG-19 weights, so the perceptual data terms are MSE of the same weight")
        if quick:
            overrides += ["dip.image_channels_down=[8, 8, 8, 8, 8]", "dip.image_channels_up=[8, 8, 8, 8, 8]",
                          "dip.image_channels_skip=[4, 4, 4, 4, 4]", "dip.kernel_width=8", "dip.kernel_n_blocks=1",
                          "dip.kernel_in_channels=8"]
    if quick:
        notes.append(f"{algorithm}: quick sizes ({', '.join(overrides)})")
    return deblur_config(raw, source=path, overrides=overrides), notes


def _model_path(cfg: dict) -> Path:
    from utils.paths import model_path

    return model_path(cfg["model"])


def compare_deblur(image: torch.Tensor, cfg: dict, device: str | torch.device,
                   reference: str | torch.device = "cpu", seed: int = 0) -> DeblurComparison:
    """Deblur ``image`` (1, 3, H, W) by the config ``cfg`` (full deblur config) with its model on
    ``device`` and again on ``reference`` (TF32 off) → seconds of each, max and mean |difference| of
    the sharp outputs, the peak GPU memory of the device run."""
    from models import KernelSpace

    deblur_image = _deblur_function()
    device, reference = torch.device(device), torch.device(reference)
    path = _model_path(cfg)
    outputs, seconds = [], []
    peak = None
    with no_tf32():
        for dev in (device, reference):
            space = KernelSpace.load(str(path), dev)
            reset_peak_memory(dev)
            start = time.perf_counter()
            result = deblur_image(image, space, cfg, dev, progress=False, seed=seed)
            synchronize(dev)
            seconds.append(time.perf_counter() - start)
            if dev == device:
                peak = peak_memory(dev)
            outputs.append(result.sharp.detach().float().cpu())
            del space, result
            free_memory(dev)
    diff = (outputs[0] - outputs[1]).abs()
    return DeblurComparison(str(cfg["algorithm"]), seconds[0], seconds[1], float(diff.max()), float(diff.mean()),
                            peak)


def run_deblur_section(plan: Plan, device: torch.device, budget: Budget,
                       reference: str | torch.device = "cpu") -> SectionResult:
    """Section 3: each route of :data:`DEBLUR_ROUTES` on ``device`` and on ``reference``."""
    section = SectionResult("deblur", SECTION_TITLES["deblur"],
                            ["algorithm", "config", "status", f"{device} s", f"{reference} s (reference)",
                             "max abs diff", "mean abs diff", "peak GPU memory"])
    image = load_test_image(plan.deblur_size)
    for algorithm, (config, cap) in DEBLUR_ROUTES.items():
        print(f"[deblur] {algorithm} ...", flush=True)
        try:
            cfg, notes = deblur_route_config(algorithm, plan.dip_iters, plan.quick)
            section.notes += notes
            with time_limit(budget.cap(cap)):
                cmp = compare_deblur(image, cfg, device, reference)
        except (Exception, SectionTimeout) as exc:  # noqa: BLE001 - recorded, the next route runs
            section.failed = True
            section.add_peak(peak_memory(device))
            section.rows.append([algorithm, config, f"FAILED: {one_line(exc)}", "", "", "", "", ""])
            print(f"[deblur] {algorithm}: FAILED: {one_line(exc)}", flush=True)
        else:
            section.failed |= not cmp.passed
            section.add_peak(cmp.peak_bytes)
            status = "pass" if cmp.passed else f"FAIL (> {TOLERANCE:g})"
            section.rows.append([algorithm, config, status, f"{cmp.device_s:.2f}", f"{cmp.reference_s:.2f}",
                                 f"{cmp.max_abs_diff:.3g}", f"{cmp.mean_abs_diff:.3g}", format_bytes(cmp.peak_bytes)])
            print(f"[deblur] {algorithm}: {status}, max |diff| {cmp.max_abs_diff:.3g}", flush=True)
        finally:
            free_memory(device)
    section.notes[:0] = [
        f"{DEBLUR_IMAGE}, centre {plan.deblur_size}×{plan.deblur_size} crop, RGB; the configs' model "
        "(pretrained/default_psf.pth); seed 0; each route run on the device first, then on the CPU",
        f"pass when the largest absolute difference of the sharp outputs is <= {TOLERANCE:g}; TF32 is off for these "
        "runs (both devices compute in fp32)",
        "alternating does its image and kernel steps on the CPU whatever the device (deblurring/alternating.py); "
        "only the model's code of the PSF found runs on the device",
    ]
    return section


RUNNERS: dict[str, Callable[[Plan, torch.device, Budget], SectionResult]] = {
    "train": run_train_section,
    "ddp": run_ddp_section,
    "deblur": run_deblur_section,
}


# -- main ----------------------------------------------------------------------------------------


def _error(message: str) -> int:
    print(f"gpu_check.py: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def run_check(plan: Plan, device: torch.device, argv: Sequence[str]) -> Report:
    """Run the plan's sections in order (each failure recorded, never raised), rewriting the results
    file after each; returns the report."""
    budget = Budget(TOTAL_BUDGET_S)
    name, facts = machine_facts(device, argv)
    report = Report(f"GPU check: {name}", facts)
    path = result_path(plan.out_dir, name)
    for key in plan.sections:
        print(f"== {SECTION_TITLES[key]}", flush=True)
        start = time.perf_counter()
        try:
            section = RUNNERS[key](plan, device, budget)
        except (Exception, SectionTimeout) as exc:  # noqa: BLE001 - the section failed as a whole; the next one runs
            section = SectionResult(key, SECTION_TITLES[key], error=one_line(exc))
            print(f"[{key}] FAILED: {section.error}", flush=True)
        section.seconds = time.perf_counter() - start
        free_memory(device)
        report.sections.append(section)
        report.facts = facts + [("wall time so far", f"{time.perf_counter() - budget.start:.1f} s")]
        write_report(path, render_markdown(report))
    print(f"wrote {path}", flush=True)
    for section in report.sections:
        print(f"  {section.title}: {section.status}", flush=True)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options; print the plan (``--dry-run``) or run the check. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage errors were printed on one line; --help exits 0
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 2
    plan = make_plan(args)
    if args.dry_run:
        print("\n".join(describe_plan(plan)))
        return 0
    device = torch.device(plan.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return _error(f"--device {plan.device}: CUDA is not available on this machine "
                          "(--dry-run prints the plan without it)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            return _error(f"--device {plan.device}: only {torch.cuda.device_count()} CUDA device(s) present")
        if device.index is not None:
            torch.cuda.set_device(device)
    try:
        report = run_check(plan, device, argv)
    except Exception as exc:  # noqa: BLE001 - e.g. the results folder is not writable
        return _error(one_line(exc))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
