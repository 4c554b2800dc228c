"""Speed of deblur.py as a user meets it, measured in one run: start-up, a busy core, workers, large photos.

Every figure is a whole ``deblur.py`` process (``python deblur.py ...`` in a subprocess, wall-clock
time; memory is the process's peak resident set, from ``os.wait4``), on photos made here from
scikit-image's bundled ``camera`` / ``astronaut`` (blurred by a camera-shake kernel of
``data.kernels``, noise σ 0.01, 8-bit):

* ``--help``: the median of 3 runs (start-up without the model or torch work);
* one 255² photo end to end: the median of 3 runs, and the share of it that is not deblurring
  (the report's seconds against the wall-clock time); noise σ 0.002, as clean as Levin's images
  (the default then makes 4 candidate runs; a σ 0.01 photo, also timed, takes 8 and two polish rounds);
* the same with ``--busy`` processes spinning on the CPU: the slowdown against the quiet run;
* a folder of 4 photos with ``--workers 2`` against ``--workers 1`` (and ``--workers 1 --threads 1``);
* one 1024×700 photo (``--medium``) and one large photo (``--large``, default 4000×3000, 12 MP):
  seconds, seconds per megapixel and peak memory.

Writes bench/results/speed_<tag>.md and .json. Run it with nothing else on the machine.

  python bench/speed.py --tag default                  # ~5 minutes on 2 cores
  python bench/speed.py --quick --out /tmp/speed       # tiny sizes: checks the bench itself
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from utils.errors import UserError, run_cli  # noqa: E402

TARGETS = {  # the speed targets the table is held to
    "help_seconds": ("≤", 1.5),
    "small_seconds": ("≤", 5.0),
    "busy_slowdown": ("≤", 2.0),
    "workers_ratio": ("≤", 0.75),
    "medium_seconds": ("≤", 60.0),
    "large_seconds": ("≤", 60.0),
}


def make_photo(path: Path, name: str, height: int, width: int, kernel_size: int, seed: int,
               noise: float = 0.01) -> None:
    """Write a blurry 8-bit test photo: scikit-image's ``name`` resized to height × width, blurred by a
    camera-shake kernel of ``kernel_size`` px, Gaussian noise of σ ``noise``."""
    import skimage.data

    from data.kernels import shake_kernel

    rng = np.random.default_rng(seed)
    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = cv2.resize(image[..., :3].astype(np.float32) / 255, (width, height), interpolation=cv2.INTER_AREA)
    kernel = shake_kernel(rng, kernel_size).astype(np.float32)
    blurry = cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)
    blurry = blurry + rng.normal(0, noise, blurry.shape).astype(np.float32)
    cv2.imwrite(str(path), (np.clip(blurry, 0, 1)[..., ::-1] * 255 + 0.5).astype(np.uint8))


QUICK_FLAGS = ["--set", "alternating.psf_size=9", "--iters", "1"]  # --quick: the bench's own check, not a figure


def run_timed(args: Sequence[str]) -> tuple[float, float]:
    """Run ``python deblur.py *args`` → (wall seconds, peak memory GB); a failure raises UserError."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, str(REPO / "deblur.py"), *args], cwd=REPO,
                                   stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            errors.seek(0)
            message = " ".join(errors.read().decode(errors="replace").split())[-300:]
            raise UserError(f"deblur.py {' '.join(args)} failed (exit {code}): {message}")
    return seconds, usage.ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def deblur_seconds(report: Path) -> float:
    """Seconds spent deblurring, summed over the images of a deblur.py --report."""
    return sum(entry.get("seconds", 0.0) for entry in json.loads(report.read_text())["images"])


class Busy:
    """``count`` processes spinning on the CPU while the block runs (a browser, another run)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> Busy:
        self.processes = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.count)]
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


def measure(work: Path, quick: bool, busy: int, medium: tuple[int, int] | None, large: tuple[int, int] | None,
            repeats: int) -> dict[str, Any]:
    """Every figure of the module docstring, photos made in ``work`` → a dict of numbers."""
    side = 64 if quick else 255
    extra = QUICK_FLAGS if quick else []
    small = work / "small.png"
    make_photo(small, "camera", side, side, 9 if quick else 15, 0, noise=0.002)
    noisy = work / "noisy.png"
    make_photo(noisy, "camera", side, side, 9 if quick else 15, 0)
    folder = work / "four"
    folder.mkdir()
    for i in range(4):
        make_photo(folder / f"p{i}.png", ("camera", "astronaut")[i % 2], side, side, 9 if quick else 15, i + 1)
    out: dict[str, Any] = {"threads_default": os.cpu_count(), "small_side": side, "busy_processes": busy}

    out["help_seconds"] = statistics.median(run_timed(["--help"])[0] for _ in range(repeats))
    walls, shares = [], []
    for i in range(repeats):
        report = work / f"small_{i}.json"
        wall, out["small_memory_gb"] = run_timed(["--input", str(small), "--output", str(work / "small_out.png"),
                                                  "--quiet", "--report", str(report), *extra])
        walls.append(wall)
        shares.append(1 - deblur_seconds(report) / wall)
    out["small_seconds"] = statistics.median(walls)
    out["startup_share"] = statistics.median(shares)
    out["noisy_seconds"] = run_timed(["--input", str(noisy), "--output", str(work / "noisy_out.png"), "--quiet",
                                      *extra])[0]
    with Busy(busy):
        out["small_busy_seconds"] = run_timed(["--input", str(small), "--output", str(work / "busy_out.png"),
                                               "--quiet", *extra])[0]
    out["busy_slowdown"] = out["small_busy_seconds"] / out["small_seconds"]

    for name, flags in (("workers1", ["--workers", "1"]), ("workers2", ["--workers", "2"]),
                        ("workers1_threads1", ["--workers", "1", "--threads", "1"])):
        out[f"{name}_seconds"] = run_timed(["--input-dir", str(folder), "--output-dir", str(work / name),
                                            "--quiet", *flags, *extra])[0]
    out["workers_ratio"] = out["workers2_seconds"] / out["workers1_seconds"]
    out["workers_ratio_vs_one_thread"] = out["workers2_seconds"] / out["workers1_threads1_seconds"]

    for key, shape in (("medium", medium), ("large", large)):
        if shape is None:
            continue
        height, width = shape
        photo = work / f"{key}.png"
        make_photo(photo, "astronaut", height, width, 21, 9)
        report = work / f"{key}.json"
        out[f"{key}_seconds"], out[f"{key}_memory_gb"] = run_timed(
            ["--input", str(photo), "--output", str(work / f"{key}_out.png"), "--quiet", "--report", str(report),
             *extra])
        out[f"{key}_deblur_seconds"] = deblur_seconds(report)
        out[f"{key}_megapixels"] = height * width / 1e6
        out[f"{key}_seconds_per_megapixel"] = out[f"{key}_seconds"] / out[f"{key}_megapixels"]
    return out


def table(figures: dict[str, Any], command: str) -> str:
    """The markdown report of :func:`measure`'s figures."""
    def verdict(key: str) -> str:
        if key not in TARGETS or key not in figures:
            return ""
        sign, bound = TARGETS[key]
        return f"{sign} {bound:g}: " + ("pass" if figures[key] <= bound else "**miss**")

    rows = [
        ("`deblur.py --help`", "help_seconds", "s"),
        (f"one {figures['small_side']}² photo (σ 0.002), end to end", "small_seconds", "s"),
        ("  of which start-up and I/O (not deblurring)", "startup_share", "share"),
        ("  peak memory", "small_memory_gb", "GB"),
        (f"  with {figures['busy_processes']} busy process(es) on the CPU", "small_busy_seconds", "s"),
        ("  busy / quiet", "busy_slowdown", "×"),
        ("the same photo with noise σ 0.01", "noisy_seconds", "s"),
        ("4 photos, --workers 1", "workers1_seconds", "s"),
        ("4 photos, --workers 2", "workers2_seconds", "s"),
        ("4 photos, --workers 1 --threads 1", "workers1_threads1_seconds", "s"),
        ("  --workers 2 / --workers 1", "workers_ratio", "×"),
        ("  --workers 2 / --workers 1 --threads 1", "workers_ratio_vs_one_thread", "×"),
        (f"medium photo ({figures.get('medium_megapixels', 0):.2f} MP), end to end", "medium_seconds", "s"),
        ("  seconds per megapixel", "medium_seconds_per_megapixel", "s/MP"),
        ("  peak memory", "medium_memory_gb", "GB"),
        (f"large photo ({figures.get('large_megapixels', 0):.1f} MP), end to end", "large_seconds", "s"),
        ("  seconds per megapixel", "large_seconds_per_megapixel", "s/MP"),
        ("  peak memory", "large_memory_gb", "GB"),
    ]
    lines = ["# deblur.py speed (bench/speed.py)", "", f"`{command}`, {figures['threads_default']} cores, "
             "default threads (torch ops on one thread, the pool over candidate runs and channels).", "",
             "| measurement | value | unit | target |", "|---|---|---|---|"]
    for label, key, unit in rows:
        if key in figures:
            lines.append(f"| {label} | {figures[key]:.3g} | {unit} | {verdict(key)} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The bench/speed.py argument parser."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tag", default="default", help="results go to speed_<tag>.md/.json")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"), help="results folder")
    parser.add_argument("--medium", default="1024x700", help="WxH of the medium photo, or 'none' to skip")
    parser.add_argument("--large", default="4000x3000", help="WxH of the large photo, or 'none' to skip")
    parser.add_argument("--busy", type=int, default=1, help="busy processes for the busy-core run (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of --help and of the small photo (median)")
    parser.add_argument("--quick", action="store_true", help="tiny photos, one repeat: checks the bench itself")
    return parser


def parse_size(text: str, flag: str) -> tuple[int, int] | None:
    """``"WxH"`` → (H, W); ``"none"`` → None; a UserError naming ``flag`` otherwise."""
    if text.lower() == "none":
        return None
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"{flag} must be WxH (e.g. 4000x3000) or none, got {text!r}") from None
    if min(width, height) < 64:
        raise UserError(f"{flag} must be at least 64x64, got {text!r}")
    return height, width


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print and write the table."""
    args = build_parser().parse_args(argv)
    medium, large = parse_size(args.medium, "--medium"), parse_size(args.large, "--large")
    if args.repeats < 1 or args.busy < 0:
        raise UserError("--repeats must be >= 1 and --busy >= 0")
    with tempfile.TemporaryDirectory(prefix="speed.") as tmp:
        figures = measure(Path(tmp), args.quick, args.busy, medium, large, 1 if args.quick else args.repeats)
    command = "python bench/speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = table(figures, command.strip())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from utils.fileio import atomic_write

    atomic_write(out / f"speed_{args.tag}.md", lambda tmp: tmp.write_text(text), suffix=".md")
    atomic_write(out / f"speed_{args.tag}.json",
                 lambda tmp: tmp.write_text(json.dumps(figures, indent=2) + "\n"), suffix=".json")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
