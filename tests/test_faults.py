"""Crashes never lose work: SIGKILL in the middle of a write, then carry on.

- training killed while writing its training state resumes (``--resume auto``) from the last
  complete state and reaches the same weights as the run that was killed;
- a folder deblur killed while writing an image, re-run with ``--skip-existing``, keeps the images
  already done and finishes the others.

The crash is injected by tests/helpers_crash.py, which patches ``torch.save`` / the image writer of
the real command so that it writes half a file and kills its own process with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

pytestmark = pytest.mark.slow  # subprocesses and kills: left out of `make test-fast`

REPO = Path(__file__).resolve().parent.parent
CRASH = REPO / "tests" / "helpers_crash.py"
TIMEOUT_S = 300


def _env(**extra: str) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def _run(argv: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S,
                          env=_env(**env))


def test_training_killed_while_saving_resumes_from_last_complete_state(tmp_path: Path) -> None:
    root = tmp_path / "exp"
    # ci_tiny: 10 iterations, checkpoints at 5 and 10; keep_last 0 keeps every checkpoint to compare
    train = ["train.py", "-opt", "configs/train/ci_tiny.yml", "--set", f"path.root={root}",
             "--set", "logger.keep_last=0", "--set", "use_tb_logger=false", "--device", "cpu"]
    killed = _run([str(CRASH), *train], CRASH_IN_SAVE=".10.state.")
    assert killed.returncode == -signal.SIGKILL, f"exit {killed.returncode}\n{killed.stderr[-3000:]}"
    exp = root / "ci_tiny"
    states = exp / "training_state"
    # the crash landed inside the write of state 10: only its temporary (half written) exists
    assert (states / "5.state").is_file()
    assert not (states / "10.state").exists()
    partial = list(states.glob(".10.state.*.tmp"))
    assert len(partial) == 1 and partial[0].stat().st_size > 0
    # models/10.pth was complete before the crash: the reference the resumed run must reproduce
    reference = torch.load(exp / "models" / "10.pth", map_location="cpu", weights_only=True)
    assert reference["meta"]["iteration"] == 10

    resumed = _run(train + ["--resume", "auto"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    log = (exp / "train.log").read_text()
    assert "resumed from" in log and "(iteration 5)" in log, log[-2000:]
    assert not list(states.glob(".*.tmp")), "the temporary of the killed write was not cleaned up"
    final = torch.load(states / "10.state", map_location="cpu", weights_only=True)
    assert final["iteration"] == 10
    again = torch.load(exp / "models" / "10.pth", map_location="cpu", weights_only=True)
    assert again["meta"]["iteration"] == 10
    assert again["state_dict"].keys() == reference["state_dict"].keys()
    for key, value in reference["state_dict"].items():
        assert torch.equal(again["state_dict"][key], value), f"{key}: resumed weights differ from the killed run's"


def test_deblur_folder_killed_mid_write_then_skip_existing(tmp_path: Path) -> None:
    from conftest import TINY_MODEL

    from models import KernelSpace

    inputs, outputs = tmp_path / "blurry", tmp_path / "sharp"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    names = ["a.png", "b.png", "c.png"]
    for name in names:
        assert cv2.imwrite(str(inputs / name), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    torch.manual_seed(0)
    KernelSpace.from_config(TINY_MODEL).save(str(tmp_path / "model.pth"))
    config = tmp_path / "deblur.yml"
    config.write_text(yaml.safe_dump({"algorithm": "direct", "iterations": 2}))
    deblur = ["deblur.py", "--input-dir", str(inputs), "--output-dir", str(outputs), "--model",
              str(tmp_path / "model.pth"), "--config", str(config), "--device", "cpu", "--quiet"]

    killed = _run([str(CRASH), *deblur], CRASH_IN_IMAGE_WRITE="2")  # dies while writing the 2nd image
    assert killed.returncode == -signal.SIGKILL, f"exit {killed.returncode}\n{killed.stderr[-3000:]}"
    assert (outputs / "a.png").is_file()
    assert not (outputs / "b.png").exists() and not (outputs / "c.png").exists()
    assert list(outputs.glob(".b.png.*.tmp")), "the crash did not land inside the write of b.png"
    done_before = (outputs / "a.png").stat().st_mtime_ns, (outputs / "a.png").read_bytes()

    report = tmp_path / "report.json"
    rerun = _run([*deblur, "--skip-existing", "--report", str(report)])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    status = {Path(entry["input"]).name: entry["status"] for entry in json.loads(report.read_text())["images"]}
    assert status == {"a.png": "exists", "b.png": "ok", "c.png": "ok"}
    assert ((outputs / "a.png").stat().st_mtime_ns, (outputs / "a.png").read_bytes()) == done_before
    for name in names:
        image = cv2.imread(str(outputs / name), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.shape == (32, 32, 3), name
