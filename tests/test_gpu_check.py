"""bench/gpu_check.py without a GPU: option parsing, the dry-run plan, the no-CUDA error, the results
file (name, atomic write, tables), the time box, and the deblurring comparison end to end on the CPU
against the CPU at --quick sizes (the GPU run itself needs a GPU machine: bench/gpu_check.sh)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from bench import gpu_check as gc

REPO = Path(__file__).resolve().parent.parent


def test_defaults():
    args = gc.build_parser().parse_args([])
    assert args.sections == ["train", "ddp", "deblur"]
    assert args.out_dir == REPO / "bench" / "results"
    assert (args.train_steps, args.dip_iters, args.device) == (20, 50, "cuda")
    assert not args.quick and not args.dry_run
    plan = gc.make_plan(args)
    assert plan.train_config == "configs/train/gopro_woVAE.yml" and plan.deblur_size == 255
    assert plan.ddp_first < plan.ddp_total
    quick = gc.make_plan(gc.build_parser().parse_args(["--quick"]))
    assert quick.train_config == "configs/train/ci_tiny.yml" and quick.deblur_size < plan.deblur_size


@pytest.mark.parametrize("text, expected", [
    ("deblur", ["deblur"]),
    ("deblur, train", ["train", "deblur"]),  # run order, whatever the order given
    ("ddp,ddp,train,", ["train", "ddp"]),
])
def test_sections_parsing(text, expected):
    assert gc.build_parser().parse_args(["--sections", text]).sections == expected


@pytest.mark.parametrize("argv, option", [
    (["--sections", "foo"], "--sections"),
    (["--sections", " , "], "--sections"),
    (["--train-steps", "0"], "--train-steps"),
    (["--train-steps", "many"], "--train-steps"),
    (["--dip-iters", "-3"], "--dip-iters"),
    (["--device", "tpu"], "--device"),
])
def test_bad_values_exit_2_with_one_line(argv, option, capsys):
    assert gc.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and option in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:  # the parser alone behaves the same
        gc.build_parser().parse_args(argv)
    assert exc.value.code == 2


def _no_cuda_calls(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("CUDA was touched")

    for name in ("is_available", "init", "device_count", "get_device_name", "get_device_properties", "set_device"):
        monkeypatch.setattr(torch.cuda, name, forbidden)


def test_dry_run_prints_the_plan_without_touching_cuda(monkeypatch, capsys, tmp_path):
    _no_cuda_calls(monkeypatch)
    assert gc.main(["--dry-run", "--out-dir", str(tmp_path), "--train-steps", "7", "--dip-iters", "12"]) == 0
    out = capsys.readouterr().out
    for part in ("[train]", "[ddp]", "[deblur]", "gopro_woVAE.yml", "batch 16 of 256²", "7 timed steps",
                 "12 iterations", "torch.compile", "nccl", "255×255", str(tmp_path)):
        assert part in out, part
    assert not any(tmp_path.iterdir())
    assert gc.main(["--dry-run", "--sections", "deblur"]) == 0
    out = capsys.readouterr().out
    assert "[deblur]" in out and "[train]" not in out and "[ddp]" not in out


def test_without_cuda_one_line_error_and_status_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gc.main(["--sections", "train", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA is not available" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name, slug", [
    ("NVIDIA H200", "nvidia_h200"),
    ("NVIDIA GeForce RTX 4090", "nvidia_geforce_rtx_4090"),
    ("Tesla V100-SXM2-32GB", "tesla_v100_sxm2_32gb"),
    ("  NVIDIA A100 80GB PCIe ", "nvidia_a100_80gb_pcie"),
    ("???", "unknown"),
])
def test_gpu_slug_and_result_path(name, slug, tmp_path):
    assert gc.gpu_slug(name) == slug
    assert gc.result_path(tmp_path, name) == tmp_path / f"gpu_{slug}.md"


def test_markdown_report_written_atomically(tmp_path):
    ok = gc.SectionResult("train", gc.SECTION_TITLES["train"], ["mode", "status"], [["fp32", "ok"]],
                          notes=["a note"], peak_bytes=3 * 2**30, seconds=1.5)
    bad = gc.SectionResult("deblur", gc.SECTION_TITLES["deblur"], ["algorithm", "status"],
                           [["dip", "FAILED: RuntimeError: a | b"]], failed=True)
    whole = gc.SectionResult("ddp", gc.SECTION_TITLES["ddp"], error="RuntimeError: no NCCL")
    report = gc.Report("GPU check: NVIDIA H200", [("torch", torch.__version__), ("date", "2025-01-01 00:00 UTC")],
                       [ok, whole, bad])
    assert not report.ok and ok.status == "pass" and bad.status == "FAILED"
    assert whole.status == "FAILED: RuntimeError: no NCCL"
    path = gc.write_report(gc.result_path(tmp_path / "results", "NVIDIA H200"), gc.render_markdown(report))
    assert path == tmp_path / "results" / "gpu_nvidia_h200.md"
    assert [p.name for p in path.parent.iterdir()] == ["gpu_nvidia_h200.md"]  # no temporary left
    text = path.read_text()
    assert text.startswith("# GPU check: NVIDIA H200\n")
    assert f"- torch: {torch.__version__}" in text and "- date: 2025-01-01" in text
    assert "## 1. Training steps" in text and "## 2. DDP" in text and "## 3. Deblurring" in text
    assert "| fp32 | ok |" in text and "3.00 GiB" in text and "- a note" in text
    assert "a \\| b" in text  # a pipe inside a cell does not break the table
    assert "FAILED: RuntimeError: no NCCL" in text


def test_time_limit_and_helpers():
    with pytest.raises(gc.SectionTimeout, match="timed out"):
        with gc.time_limit(0.2):
            end = time.perf_counter() + 5
            while time.perf_counter() < end:
                pass
    with pytest.raises(gc.SectionTimeout, match="no time left"):
        with gc.time_limit(0):
            pass
    with gc.time_limit(5):  # finishing in time disarms the alarm
        pass
    time.sleep(0.01)
    assert gc.one_line(ValueError("two\nlines")) == "ValueError: two lines"
    assert gc.format_bytes(None) == "n/a" and gc.format_bytes(2**29) == "0.50 GiB"
    log = "x resumed from /t/training_state/6.state (iteration 6)\ny resumed from a/b.state (iteration 8)\n"
    assert gc.resumed_iteration(log) == 8 and gc.resumed_iteration("fresh run") is None
    assert gc.Budget(10.0).cap(100.0) <= 10.0


@pytest.mark.slow
def test_deblur_section_cpu_against_cpu(tmp_path, capsys):
    """The whole run path (options, section, results file) with the deblurring comparison on the CPU."""
    status = gc.main(["--quick", "--device", "cpu", "--sections", "deblur", "--dip-iters", "2",
                      "--out-dir", str(tmp_path)])
    assert status == 0, capsys.readouterr()
    text = (tmp_path / "gpu_cpu.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith(("| alternating |", "| dip |"))]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2] == "pass" and float(cells[5]) == 0.0, row
    assert "## 3. Deblurring" in text and "## 1." not in text
