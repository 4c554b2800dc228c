"""Every benchmark in bench/ runs in a seconds-long smoke mode, so a change that breaks one fails here
(full runs write bench/results/ and are not part of the tests). Not yet covered here: bench/levin.py and
bench/deblur_bench.py (being reworked by the deblurring issue; they need a smoke mode too).
Also: every script of scripts/ starts as ``python scripts/x.py`` (no sys.path patches: the project is
installed with ``pip install -e .``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
NOT_YET = {"levin.py", "deblur_bench.py"}  # see the module docstring


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, script, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def smoke_cases(out: Path) -> dict[str, tuple[tuple[str, ...], Path]]:
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
    }


def test_every_benchmark_has_a_smoke_test(tmp_path):
    scripts = {p.name for p in (REPO / "bench").glob("*.py")} - NOT_YET
    assert scripts == set(smoke_cases(tmp_path)), "add the new bench script's smoke arguments to smoke_cases"


@pytest.mark.parametrize("script", sorted(smoke_cases(Path("out"))))
def test_benchmark_smoke(script, tmp_path):
    args, written = smoke_cases(tmp_path)[script]
    run(f"bench/{script}", *args)
    assert written.is_file() and written.stat().st_size > 0
    if script == "train_speed.py":
        rows = json.loads(written.read_text())["results"]
        assert {r["variant"] for r in rows} >= {"plain", "shared"} and all(r["samples_per_s"] > 0 for r in rows)


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "scripts").glob("*.py")))
def test_script_starts(script):
    assert "usage" in run(f"scripts/{script}", "--help").stdout
