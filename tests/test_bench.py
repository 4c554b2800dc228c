"""Every benchmark in bench/ runs in a seconds-long smoke mode, so a change that breaks one fails here
(full runs write bench/results/ and are not part of the tests). bench/deblur_bench.py and bench/levin.py
run their preset with one alternation and one candidate on tiny inputs; the numbers deblur_bench.py
writes are checked against an independent computation. bench/levin.py needs the Levin files
(``../shared/benchmarks/levin``) and is skipped without them; its protocol is tested in
tests/test_deblurring.py::test_levin_protocol_and_bench_smoke.
Also: every script of scripts/ starts as ``python scripts/x.py`` (no sys.path patches: the project is
installed with ``pip install -e .``)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.slow  # every bench and script run as a subprocess: left out of `make test-fast`

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
LEVIN_DIR = REPO.parent / "shared" / "benchmarks" / "levin"  # bench/levin.py's default --root
# the deblur benchmarks' preset cut to one alternation of one candidate under one kernel threshold, no polish
FAST_ALTERNATING = ("iterations=1", "candidates=[[9, 0.004]]", "polish=0", "kernel_threshold=0.1")
# a PSF of the true kernel's side: a 31-px PSF on a 64² image after one alternation is noise (8 dB)
DEBLUR_SMOKE = {"images": ("astronaut", "camera"), "size": 64, "kernel_size": 9, "seed": 0}


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, script, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def smoke_cases(out: Path) -> dict[str, tuple[tuple[str, ...], Path | None]]:
    """bench script -> (smoke arguments, the file it must write)."""
    return {
        "train_speed.py": (("--models", "ci_tiny", "--steps", "1", "--warmup", "1", "--device", "cpu",
                            "--out", str(out / "train_speed")), out / "train_speed.json"),
        "model_speed.py": (("--configs", "tiny", "--size", "64", "--repeats", "1", "--device", "cpu",
                            "--out", str(out / "model_speed.md")), out / "model_speed.md"),
        "data_speed.py": (("--size", "32", "--workers", "0", "--batch-size", "2", "--batches", "2",
                           "--out", str(out / "data_speed.txt")), out / "data_speed.txt"),
        "bottleneck_bound.py": (("--pairs", "4", "--size", "64", "--components", "4,24",
                                 "--out", str(out / "bottleneck_bound.md")), out / "bottleneck_bound.md"),
        "loss_reduction.py": (("--config", "configs/train/ci_tiny.yml", "--output", str(out / "loss_reduction.md")),
                              out / "loss_reduction.md"),
        "deblur_bench.py": (("--images", ",".join(DEBLUR_SMOKE["images"]), "--size", str(DEBLUR_SMOKE["size"]),
                             "--kernel-size", str(DEBLUR_SMOKE["kernel_size"]), "--seed", str(DEBLUR_SMOKE["seed"]),
                             *(a for knob in (*FAST_ALTERNATING, f"psf_size={DEBLUR_SMOKE['kernel_size']}")
                               for a in ("--set", f"alternating.{knob}")),
                             "--threads", "1", "--tag", "smoke", "--out", str(out)), out / "deblur_smoke.json"),
        "levin.py": (("--images", "im1_kernel5", *(a for knob in FAST_ALTERNATING for a in ("--set", knob)),
                      "--threads", "1", "--figure", "1", "--tag", "smoke", "--out", str(out)),
                     out / "levin_smoke.json"),
        "speed.py": (("--quick", "--medium", "96x64", "--large", "none", "--busy", "1", "--tag", "smoke",
                      "--out", str(out)),
                     out / "speed_smoke.json"),
        "gpu_check.py": (("--dry-run", "--out-dir", str(out)), None),
        "large_blur.py": (("--images", "astronaut,camera", "--kernel-sizes", "9,15", "--size", "64", "--threads", "1",
                           *(a for knob in (*FAST_ALTERNATING, "psf_size=15")
                             for a in ("--set", f"alternating.{knob}")),
                           "--tag", "smoke", "--out", str(out)), out / "large_blur_smoke.json"),
        "varying_blur.py": (("--images", "astronaut", "--size", "64", "--threads", "1",
                             *(a for knob in (*FAST_ALTERNATING, "psf_size=15")
                               for a in ("--set", f"alternating.{knob}")),
                             "--tag", "smoke", "--out", str(out)), out / "varying_blur_smoke.json"),
    }


def test_every_benchmark_has_a_smoke_test(tmp_path):
    scripts = {p.name for p in (REPO / "bench").glob("*.py")}
    assert scripts == set(smoke_cases(tmp_path)), "add the new bench script's smoke arguments to smoke_cases"


@pytest.mark.parametrize("script", sorted(smoke_cases(Path("out"))))
def test_benchmark_smoke(script, tmp_path):
    if script == "levin.py" and not (LEVIN_DIR / "im1_kernel5_img.png").exists():
        pytest.skip(f"the Levin benchmark files are not in {LEVIN_DIR}")
    args, written = smoke_cases(tmp_path)[script]
    proc = run(f"bench/{script}", *args)
    if script == "gpu_check.py":  # no GPU here: the plan only (tests/test_gpu_check.py tests the rest)
        assert "deblur" in proc.stdout
        return
    assert written.is_file() and written.stat().st_size > 0
    if script == "speed.py":
        figures = json.loads(written.read_text())
        assert figures["help_seconds"] > 0 and 0 < figures["startup_share"] < 1
        assert figures["workers_ratio"] > 0 and figures["medium_megapixels"] == 96 * 64 / 1e6
        assert "| 4 photos, --workers 2 |" in (tmp_path / "speed_smoke.md").read_text()
    if script == "train_speed.py":
        rows = json.loads(written.read_text())["results"]
        assert {r["variant"] for r in rows} >= {"plain", "shared"} and all(r["samples_per_s"] > 0 for r in rows)
    if script == "deblur_bench.py":
        check_deblur_bench(tmp_path)
    if script == "levin.py":
        check_levin(tmp_path)
    if script == "large_blur.py":
        check_large_blur(tmp_path)
    if script == "varying_blur.py":
        check_varying_blur(tmp_path)


def check_varying_blur(out: Path) -> None:
    """The numbers of a varying_blur.py smoke run agree with the cases it made; the figure is written."""
    from bench.varying_blur import make_case, shifted_psnr

    payload = json.loads((out / "varying_blur_smoke.json").read_text())
    rows = payload["rows"]
    assert [(r["kind"], r["image"]) for r in rows] == [("blend", "astronaut"), ("camera", "astronaut")]
    rng = np.random.default_rng(0)  # the cases again, as the bench made them: same seed, same order
    for row in rows:
        case = make_case(row["kind"], row["image"], 64, rng)
        assert math.isclose(row["psnr_blurry"], shifted_psnr(case["blurry"], case["sharp"]), abs_tol=1e-6)
        assert np.isfinite(row["psnr_ours"]) and len(case["field"]) == 1
        assert all(abs(float(k.sum()) - 1) < 1e-4 for k in case["field"])
    gains = [r["psnr_ours"] - r["psnr_blurry"] for r in rows]
    assert math.isclose(payload["summary"]["all"]["gain_min"], min(gains))
    assert "| blend | 1 |" in (out / "varying_blur_smoke.md").read_text()
    _picture(out / "varying_blur_smoke.png")


def check_large_blur(out: Path) -> None:
    """The table, the numbers and the figure of a large_blur.py smoke run agree with the cases it made."""
    from bench.deblur_bench import scores
    from bench.large_blur import make_case

    payload = json.loads((out / "large_blur_smoke.json").read_text())
    rows = payload["rows"]
    assert [(r["kernel_size"], r["image"]) for r in rows] == [(k, i) for k in (9, 15) for i in ("astronaut", "camera")]
    rng = np.random.default_rng(0)  # the cases again, as the bench made them: same seed, same order
    for row in rows:
        case = make_case(row["image"], 64, row["kernel_size"], 0.02, rng)
        assert math.isclose(row["psnr_blurry"], scores(case["blurry"], case["sharp"])[0], abs_tol=1e-6)
        assert 0 < row["clipped"] < 0.5 and case["kernel"].shape == (row["kernel_size"],) * 2
        assert np.isfinite(row["psnr_ours"]) and np.isfinite(row["psnr_true"]) and row["found_psf_size"] <= 15
    for size in ("9", "15", "all"):
        mine = [r for r in rows if size == "all" or str(r["kernel_size"]) == size]
        summary = payload["summary"][size]
        assert math.isclose(summary["gain_mean"], np.mean([r["psnr_ours"] - r["psnr_blurry"] for r in mine]))
        assert f"| {size} | {len(mine)} | {summary['psnr_blurry']:.2f} |" in (out / "large_blur_smoke.md").read_text()
    _picture(out / "large_blur_smoke.png")


def test_levin_true_kernel_runs(tmp_path):
    """bench/levin.py --true-kernel: the final step given the true kernel beats the blurry input."""
    if not (LEVIN_DIR / "im1_kernel5_img.png").exists():
        pytest.skip(f"the Levin benchmark files are not in {LEVIN_DIR}")
    run("bench/levin.py", "--true-kernel", "--images", "im1_kernel5", "--threads", "1", "--figure", "0",
        "--tag", "truek", "--out", str(tmp_path))
    (row,) = json.loads((tmp_path / "levin_truek.json").read_text())["rows"]
    assert row["psnr"] > row["psnr_blurry"] + 3 and row["kernel_similarity"] > 0.999


def _picture(path: Path) -> np.ndarray:
    picture = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert picture is not None and picture.ndim == 3 and min(picture.shape[:2]) > 32, path
    return picture


def check_deblur_bench(out: Path) -> None:
    """The table, the numbers and the plot of a deblur_bench.py smoke run (DEBLUR_SMOKE) are consistent."""
    from scipy.signal import fftconvolve

    from bench.deblur_bench import NOISE_SIGMA, make_case

    payload = json.loads((out / "deblur_smoke.json").read_text())
    text = (out / "deblur_smoke.md").read_text()
    _picture(out / "deblur_smoke.png")
    methods = {"blurry", "ours", "richardson_lucy", "wiener"}
    rows = {(r["image"], r["method"]): r for r in payload["rows"]}
    assert set(rows) == {(i, m) for i in DEBLUR_SMOKE["images"] for m in methods}
    assert len(payload["rows"]) == len(rows)
    for r in payload["rows"]:
        assert all(np.isfinite(r[k]) for k in ("psnr", "ssim", "seconds")), r
        assert 10 < r["psnr"] < 60 and 0 < r["ssim"] <= 1 and r["seconds"] >= 0, r
        assert f"| {r['image']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} |" in text
    for image in DEBLUR_SMOKE["images"]:  # the preset really ran, one alternation, and changed the input
        assert rows[image, "ours"]["steps"] == 1 and rows[image, "ours"]["psnr"] != rows[image, "blurry"]["psnr"]
    summary = payload["summary"]
    assert set(summary) == methods
    for method, s in summary.items():
        mine = [r for r in payload["rows"] if r["method"] == method]
        assert s["images"] == len(DEBLUR_SMOKE["images"])
        assert s["psnr"] == pytest.approx(np.mean([r["psnr"] for r in mine]))
        assert f"| {method} | {s['images']} | {s['psnr']:.2f} | {s['ssim']:.4f} |" in text
    # the blurry rows, recomputed here: the same cases (same seed, same order), PSNR from its definition
    rng = np.random.default_rng(DEBLUR_SMOKE["seed"])
    for image in DEBLUR_SMOKE["images"]:
        case = make_case(image, DEBLUR_SMOKE["size"], DEBLUR_SMOKE["kernel_size"], rng)
        sharp, blurry, kernel = case["sharp"].astype(np.float64), case["blurry"].astype(np.float64), case["kernel"]
        assert sharp.shape == blurry.shape == (DEBLUR_SMOKE["size"],) * 2 + (3,)
        assert kernel.shape == (DEBLUR_SMOKE["kernel_size"],) * 2 and kernel.sum() == pytest.approx(1, abs=1e-4)
        psnr = 10 * np.log10(1 / np.mean((blurry - sharp) ** 2))
        assert rows[image, "blurry"]["psnr"] == pytest.approx(psnr, abs=1e-4)
        # the blurry image is the sharp one convolved with the true kernel plus σ-noise (interior: valid part)
        r = DEBLUR_SMOKE["kernel_size"] // 2
        reblurred = np.stack([fftconvolve(sharp[:, :, c], kernel, mode="valid") for c in range(3)], axis=2)
        residual = blurry[r:-r, r:-r] - reblurred
        assert abs(residual.mean()) < 0.003 and 0.8 * NOISE_SIGMA < residual.std() < 1.3 * NOISE_SIGMA
    # non-blind deconvolution given the true kernel beats doing nothing, on average
    assert min(summary["richardson_lucy"]["psnr"], summary["wiener"]["psnr"]) > summary["blurry"]["psnr"]


def check_levin(out: Path) -> None:
    """The table, the numbers and the figure of a levin.py smoke run (one image) are consistent."""
    payload = json.loads((out / "levin_smoke.json").read_text())
    (row,) = payload["rows"]
    assert row["image"] == "im1_kernel5" and row["psnr"] > row["psnr_blurry"] > 10
    assert np.isfinite(row["kernel_similarity"]) and -1 <= row["kernel_similarity"] <= 1
    assert payload["knobs"]["iterations"] == 1 and payload["knobs"]["candidates"] == [[9, 0.004]]
    assert payload["mean"]["psnr"] == pytest.approx(row["psnr"])
    assert f"| {row['image']} | {row['psnr_blurry']:.2f} | {row['psnr']:.2f} |" in (out / "levin_smoke.md").read_text()
    _picture(out / "levin_smoke.png")


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "scripts").glob("*.py")))
def test_script_starts(script):
    assert "usage" in run(f"scripts/{script}", "--help").stdout


def test_levin_set_is_checked_against_the_schema():
    """bench/levin.py --set KEY=VALUE is checked like deblur.py's: a misspelt knob ends in one line naming
    it, exit status 2, before any image is read."""
    proc = subprocess.run([sys.executable, "bench/levin.py", "--set", "iteratoins=3", "--root", "/nonexistent"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env=ENV)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "iteratoins" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
