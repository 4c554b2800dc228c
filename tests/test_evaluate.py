"""scripts/evaluate.py: metrics, the synthetic reference x̂ ⊛ k, reports and the command line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data.image_io import read_image, write_image
from scripts import evaluate
from utils.errors import run_cli


def test_psnr_of_known_error():
    a = torch.zeros(1, 3, 8, 8)
    assert evaluate.psnr(a, a + 0.1) == pytest.approx(20.0)
    assert evaluate.psnr(a, a) == math.inf


def test_synthetic_samples_are_seeded_and_clean_copy_differs_by_noise_only():
    first = list(evaluate.synthetic_samples(2, size=48, seed=3))
    again = list(evaluate.synthetic_samples(2, size=48, seed=3))
    other = list(evaluate.synthetic_samples(1, size=48, seed=4))
    assert torch.equal(first[0]["blur"], again[0]["blur"]) and np.array_equal(first[1]["kernel"], again[1]["kernel"])
    assert not torch.equal(first[0]["sharp"], other[0]["sharp"])
    for s in first:
        assert s["sharp"].shape == s["blur"].shape == s["clean"].shape == (1, 3, 48, 48)
        assert (s["blur"] - s["clean"]).abs().max() < 0.15  # noise (σ <= 0.02) and 8-bit rounding only


class KernelModel(torch.nn.Module):
    """Stands in for a perfect kernel space: F(x, k) = x ⊛ kernel (true convolution), any code."""

    kernel_dim = 4

    def __init__(self, kernel: np.ndarray) -> None:
        super().__init__()
        self.weight = torch.from_numpy(kernel).flip(0, 1)[None, None].repeat(3, 1, 1, 1).float()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def extract_code(self, sharp: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
        return torch.zeros(1, self.kernel_dim, 1, 1)

    def apply(self, sharp: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        r = self.weight.shape[-1] // 2
        return F.conv2d(F.pad(sharp, (r,) * 4, mode="replicate"), self.weight, groups=3)

    def psf_of_code(self, code: torch.Tensor) -> torch.Tensor:
        return self.weight[0, 0].flip(0, 1).expand(len(code), *code.shape[-2:], -1, -1)


def test_transfer_reference_is_aligned_with_the_target():
    sample = next(evaluate.synthetic_samples(1, size=64, seed=0, overrides=["synthetic.kernel_size=9",
                                                                             "synthetic.kernel_intensity=[1,1]"]))
    rng = np.random.default_rng(0)
    target = evaluate.random_crop(rng, evaluate.load_photos(["astronaut"])[0], 64 + 9 - 1)
    perfect = evaluate.evaluate_sample(KernelModel(sample["kernel"]), sample, target, tile=None)
    shifted = evaluate.evaluate_sample(KernelModel(np.roll(sample["kernel"], 2, axis=1)), sample, target, tile=None)
    # a model that applies exactly the kernel beats the identity baseline by far; a shifted kernel does not
    assert perfect["transfer_psnr"] > perfect["transfer_psnr_identity"] + 8
    assert perfect["reblur_clean_psnr"] > perfect["reblur_clean_psnr_identity"] + 8
    assert shifted["transfer_psnr"] < perfect["transfer_psnr"] - 5
    assert perfect["kernel_similarity"] == pytest.approx(1.0, abs=1e-6)


def test_summary_and_markdown_table():
    rows = [{"key": "a", "reblur_psnr": 30.0, "reblur_psnr_identity": 20.0},
            {"key": "b", "reblur_psnr": 34.0, "reblur_psnr_identity": 22.0}]
    summary = evaluate.summarize(rows)
    assert summary["reblur_psnr"]["mean"] == pytest.approx(32.0)
    assert summary["reblur_psnr_identity"]["median"] == pytest.approx(21.0)
    table = evaluate.markdown_table(summary)
    assert "| re-blur PSNR: F(x, G(x, y)) vs y (dB) | 32.00 | 32.00 | 21.00 | 21.00 |" in table
    assert evaluate.scatter_plot(rows).shape == (640, 640, 3)


def test_cli_writes_reports(tmp_path, tiny_model):
    tiny_model.save(str(tmp_path / "m.pth"))
    argv = ["--model", str(tmp_path / "m.pth"), "--synthetic", "2", "--size", "64", "--out", str(tmp_path / "r"),
            "--name", "t", "--device", "cpu"]
    assert run_cli(evaluate.main, argv) == 0
    report = json.loads((tmp_path / "r" / "evaluate_t.json").read_text())
    assert report["count"] == 2 and len(report["samples"]) == 2
    assert {"reblur_psnr", "transfer_psnr", "transfer_psnr_identity"} <= set(report["summary"])
    assert "identity" in (tmp_path / "r" / "evaluate_t.md").read_text()
    assert read_image(tmp_path / "r" / "evaluate_t.png").size == (640, 640)


def test_cli_on_a_folder_and_its_errors(tmp_path, tiny_model, capsys):
    tiny_model.save(str(tmp_path / "m.pth"))
    rng = np.random.default_rng(0)
    for side in ("sharp", "blur"):
        write_image(tmp_path / "pairs" / side / "000" / "00000000.png", rng.random((64, 80, 3), dtype=np.float32))
    base = ["--model", str(tmp_path / "m.pth"), "--out", str(tmp_path / "r"), "--name", "f", "--device", "cpu"]
    assert run_cli(evaluate.main, base + ["--data", str(tmp_path / "pairs")]) == 0
    report = json.loads((tmp_path / "r" / "evaluate_f.json").read_text())
    assert report["count"] == 1 and "transfer_psnr" not in report["summary"]
    capsys.readouterr()
    assert run_cli(evaluate.main, base + ["--data", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


class GainModel(torch.nn.Module):
    """A kernel space whose code is the blurry image's mean and whose F scales x to that mean."""

    kernel_dim = 1

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def extract_code(self, sharp: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
        return blur.mean().reshape(1, 1, 1, 1)

    def apply(self, sharp: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return sharp * (code.mean() / sharp.mean())


def test_another_pairs_code_baseline_separates_used_from_ignored_codes():
    samples = [{"key": str(i), "sharp": torch.full((1, 3, 32, 32), 0.5), "blur": torch.full((1, 3, 32, 32), v)}
               for i, v in enumerate((0.2, 0.8, 0.3))]
    used = evaluate.evaluate(GainModel(), iter(samples), tile=None, progress=False)
    assert "reblur_psnr_othercode" not in used[0]  # the first pair has no previous code
    for row in used[1:]:
        assert row["reblur_psnr"] > 60 and row["reblur_psnr_othercode"] < 15
    ignored = evaluate.evaluate(KernelModel(np.ones((3, 3)) / 9), iter(samples), tile=None, progress=False)
    assert all(r["reblur_psnr_othercode"] == r["reblur_psnr"] for r in ignored[1:])
    table = evaluate.markdown_table(evaluate.summarize(ignored))
    assert "another pair's code" in table
