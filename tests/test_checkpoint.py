"""Checkpoint save/load, weights_only safety, published-checkpoint import and conformance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models import KernelSpace
from models.checkpoint import FORMAT, convert_published_state_dict, infer_published_config
from utils.errors import UserError

REPO = Path(__file__).resolve().parent.parent


def test_save_load_round_trip_identical_outputs(tiny_model, tmp_path):
    path = tmp_path / "m.pth"
    tiny_model.save(str(path), meta={"iteration": 7, "mean_code": torch.arange(64.0)})
    loaded = KernelSpace.load(str(path), "cpu")
    x, y = torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(tiny_model(x, y), loaded(x, y))
    assert loaded.config == tiny_model.config
    assert loaded.meta["iteration"] == 7
    assert torch.equal(loaded.meta["mean_code"], torch.arange(64.0))
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and set(raw) == {"format", "config", "state_dict", "meta"}
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED_MARKER",))


def test_pickled_object_is_refused_and_not_run(tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    torch.save({"format": FORMAT, "config": tiny_model.config, "state_dict": {}, "meta": {"x": _Exploit()}}, path)
    with pytest.raises(UserError, match="pickled Python objects"):
        KernelSpace.load(str(path))
    assert not (tmp_path / "PWNED_MARKER").exists()


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (os.urandom(4096), "not a readable PyTorch checkpoint"), (None, "not found")],
)
def test_bad_checkpoint_files(tmp_path, content, message):
    path = tmp_path / "bad.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        KernelSpace.load(str(path))


def test_checkpoint_of_other_architecture_names_the_tensor(tiny_model, tmp_path):
    path = tmp_path / "m.pth"
    tiny_model.save(str(path))
    raw = torch.load(path, weights_only=True)
    raw["config"]["nf"] = 16
    torch.save(raw, path)
    with pytest.raises(UserError, match="preprocess.0.weight"):
        KernelSpace.load(str(path))


def _published_state_dict(model: KernelSpace) -> dict:
    back = {"preprocess.": "feature_extractor.", "extractor.model.": "kernel_extractor.model.",
            "generator.unet.": "adapter.model.", "generator.postprocess.": "recon_trunk."}
    out = {}
    for key, value in model.state_dict().items():
        for new, old in back.items():
            if key.startswith(new):
                out[old + key[len(new):]] = value.clone()
    return out


@pytest.mark.parametrize("use_vae", [False, True])
def test_published_state_dict_with_module_prefix_loads(tiny_config, tmp_path, use_vae):
    torch.manual_seed(1)
    model = KernelSpace.from_config({**tiny_config, "use_vae": use_vae}).eval()
    sd = {"module." + k: v for k, v in _published_state_dict(model).items()}
    path = tmp_path / "published.pth"
    torch.save(sd, path)
    loaded = KernelSpace.load(str(path))
    assert loaded.config["use_vae"] is use_vae
    assert loaded.config["front_RBs"] == 1 and loaded.config["KernelExtractor"]["n_blocks"] == 1
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(loaded(x, x), model(x, x))


def test_published_checkpoint_missing_tensor_is_named(tiny_model, tmp_path):
    sd = _published_state_dict(tiny_model)
    del sd["recon_trunk.0.conv1.bias"]
    path = tmp_path / "published.pth"
    torch.save(sd, path)
    with pytest.raises(UserError, match="recon_trunk.0.conv1.bias"):
        KernelSpace.load(str(path))


def test_conformance_with_published_tiny_model(reference_dir, tmp_path):
    ref = torch.load(reference_dir / "published_tiny_reference.pt", weights_only=True)
    src = tmp_path / "published.pth"
    torch.save(ref["vectors"]["state_dict"], src)
    dst = tmp_path / "converted.pth"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "convert_published_checkpoint.py"), "--input", str(src),
         "--output", str(dst)], capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    model = KernelSpace.load(str(dst))
    for key, value in ref["config"].items():
        assert model.config[key] == value, key
    for size in ("256x256", "256x384"):
        v = ref["vectors"][size]
        with torch.no_grad():
            kernel = model.encode(v["sharp"], v["blur"])
            reblur = model.apply(v["sharp"], v["kernel"])
            transfer = model.apply(v["target"], v["kernel"])
        assert (kernel - v["kernel"]).abs().max() <= 1e-4, size
        assert (reblur - v["reblur"]).abs().max() <= 1e-4, size
        assert (transfer - v["transfer"]).abs().max() <= 1e-4, size


@pytest.mark.parametrize("variant", ["woVAE", "wVAE"])
def test_paper_config_matches_published_layout(reference_dir, variant):
    layout = json.loads((reference_dir / "published_checkpoint_layout.json").read_text())[variant]
    with torch.device("meta"):
        model = KernelSpace.from_config(layout["config"])
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    published = {name: tuple(shape) for name, shape in layout["state_dict"]}
    converted = {k: published[name] for name, k in zip(published, convert_published_state_dict(published))}
    assert converted == ours  # every published tensor maps onto one of ours, same shape, none left over
    fake = {name: torch.empty(shape, device="meta") for name, shape in published.items()}
    inferred = infer_published_config(fake)
    for key in ("nf", "kernel_dim", "front_RBs", "back_RBs", "use_vae"):
        assert inferred[key] == layout["config"][key], key
    assert inferred["KernelExtractor"]["n_blocks"] == layout["config"]["KernelExtractor"]["n_blocks"]
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == layout["num_params"]
    if variant == "woVAE":
        assert n_params == 49_205_187


def test_half_precision_export_halves_the_file_and_keeps_outputs(tiny_model, tmp_path):
    full, half = tmp_path / "full.pth", tmp_path / "half.pth"
    tiny_model.save(str(full))
    proc = subprocess.run([sys.executable, "scripts/export_model.py", "--input", str(full), "--output", str(half),
                           "--half"], cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "dB" in proc.stdout
    assert half.stat().st_size < 0.6 * full.stat().st_size
    raw = torch.load(half, weights_only=True)
    assert all(t.dtype == torch.float16 for t in raw["state_dict"].values() if t.is_floating_point())
    loaded = KernelSpace.load(str(half))
    assert all(p.dtype == torch.float32 for p in loaded.parameters())  # cast back on load
    sharp = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    blur = torch.nn.functional.avg_pool2d(sharp, 5, 1, 2, count_include_pad=False)
    with torch.no_grad():
        err = (loaded(sharp, blur) - tiny_model(sharp, blur)).abs().max().item()
    assert 0 < err < 1e-2


@pytest.mark.slow
def test_export_changes_a_setting_but_not_the_weights(tmp_path):
    torch.manual_seed(0)
    src, dst = tmp_path / "psf.pth", tmp_path / "psf_reg.pth"
    KernelSpace.from_config({"generator": "psf", "kernel_dim": 8, "PSF": {"size": 9, "width": 16, "depth": 1}}).save(
        str(src))
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "scripts/export_model.py", "--input", str(src), "--output", str(dst),
                           "--set", "PSF.reg=0.5"], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert KernelSpace.load(str(dst)).config["PSF"]["reg"] == 0.5
    proc = subprocess.run([sys.executable, "scripts/export_model.py", "--input", str(src), "--output",
                           str(tmp_path / "bad.pth"), "--set", "PSF.width=32"], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "not a setting" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "bad.pth").exists()
