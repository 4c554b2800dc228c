"""Paired real-data datasets: LMDB, folders, mix; augmentation; key checks; DataLoader workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data import build_dataset
from data.image_io import write_image
from data.lmdb_io import create_lmdb
from data.paired import PairedFolderDataset, PairedLMDBDataset
from utils.errors import UserError

REPO = Path(__file__).resolve().parent.parent


def _pair_tree(root: Path, keys=("000/00000000", "000/00000001", "001/00000000"), size=(14, 18)):
    """sharp/ and blur/ trees with blur = 255 - sharp (so a pair's alignment is checkable)."""
    pixels = {}
    for i, rel in enumerate(keys):
        sharp = np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8)
        write_image(root / "sharp" / f"{rel}.png", sharp / 255.0)
        write_image(root / "blur" / f"{rel}.png", (255 - sharp) / 255.0)
        pixels[rel.replace("/", "_")] = sharp
    return pixels


def _lmdbs(tmp_path: Path, name: str = "d", **kw) -> tuple[Path, Path, dict]:
    pixels = _pair_tree(tmp_path / name, **kw)
    create_lmdb(tmp_path / name / "sharp", tmp_path / f"{name}_sharp.lmdb", progress=False)
    create_lmdb(tmp_path / name / "blur", tmp_path / f"{name}_blur.lmdb", progress=False)
    return tmp_path / f"{name}_sharp.lmdb", tmp_path / f"{name}_blur.lmdb", pixels


def test_folder_to_lmdb_to_dataset_returns_exactly_the_pixels_written(tmp_path):
    sharp, blur, pixels = _lmdbs(tmp_path)
    ds = build_dataset({"mode": "lmdb", "dataroot_HQ": str(sharp), "dataroot_LQ": str(blur), "HQ_size": None},
                       seed=0, phase="val")
    assert isinstance(ds, PairedLMDBDataset) and len(ds) == 3
    for i in range(len(ds)):
        s = ds[i]
        chw = pixels[s["key"]].transpose(2, 0, 1)
        assert torch.equal(s["sharp"], torch.from_numpy(chw.astype(np.float32) / 255.0))
        assert torch.equal(s["blur"], torch.from_numpy((255 - chw).astype(np.float32) / 255.0))


def test_train_augmentation_is_identical_on_both_images(tmp_path):
    sharp, blur, _ = _lmdbs(tmp_path)
    ds = PairedLMDBDataset(sharp, blur, crop_size=8, train=True)
    torch.manual_seed(0)
    seen = set()
    for _ in range(20):
        s = ds[0]
        assert s["sharp"].shape == (3, 8, 8)
        torch.testing.assert_close(s["blur"], 1.0 - s["sharp"], atol=1e-6, rtol=0)
        seen.add(s["sharp"].numpy().tobytes())
    assert len(seen) > 5  # crops/flips/rotations actually vary


def test_key_mismatch_names_both_lmdbs_and_a_key(tmp_path):
    sharp, _, _ = _lmdbs(tmp_path, "a")
    _, other_blur, _ = _lmdbs(tmp_path, "b", keys=("000/00000000", "000/00000001", "002/00000009"))
    with pytest.raises(UserError) as info:
        PairedLMDBDataset(sharp, other_blur)
    message = str(info.value)
    assert str(sharp) in message and str(other_blur) in message and "001_00000000" in message


def test_lmdb_dataloader_with_two_workers(tmp_path):
    sharp, blur, _ = _lmdbs(tmp_path)
    ds = PairedLMDBDataset(sharp, blur, crop_size=8, train=True)
    ds[0]  # the parent opens its environment; workers must open their own
    loader = DataLoader(ds, batch_size=3, num_workers=2, shuffle=True, generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert sum(b["sharp"].shape[0] for b in batches) == 3
    for b in batches:
        torch.testing.assert_close(b["blur"], 1.0 - b["sharp"], atol=1e-6, rtol=0)


def test_folder_and_mix_modes(tmp_path):
    pixels = _pair_tree(tmp_path / "synth")
    ds = build_dataset({"mode": "folder", "dataroot_HQ": str(tmp_path / "synth"), "HQ_size": 12}, seed=0)
    assert isinstance(ds, PairedFolderDataset) and len(ds) == len(pixels)
    s = ds[1]
    assert s["sharp"].shape == (3, 12, 12)
    torch.testing.assert_close(s["blur"], 1.0 - s["sharp"], atol=1e-6, rtol=0)
    s1, b1, _ = _lmdbs(tmp_path, "reds")
    s2, b2, _ = _lmdbs(tmp_path, "gopro", keys=("x/00000001",))
    mix = build_dataset({"mode": "mix", "dataroot_HQ": [str(s1), str(s2)], "dataroot_LQ": [str(b1), str(b2)],
                         "HQ_size": 8}, seed=0)
    assert len(mix) == 4 and mix[3]["key"] == "x_00000001"
    with pytest.raises(UserError, match="dataroot_LQ lists 1"):
        build_dataset({"mode": "mix", "dataroot_HQ": [str(s1), str(s2)], "dataroot_LQ": [str(b1)]}, seed=0)


def test_folder_dataset_errors(tmp_path):
    _pair_tree(tmp_path / "t")
    (tmp_path / "t" / "blur" / "001" / "00000000.png").unlink()
    with pytest.raises(UserError, match="sharp/001/00000000.png has no partner"):
        PairedFolderDataset(tmp_path / "t")
    with pytest.raises(UserError, match="folder not found"):
        PairedFolderDataset(tmp_path / "none")
    with pytest.raises(UserError, match="smaller than HQ_size"):
        PairedFolderDataset(_tree_ok(tmp_path), crop_size=64)[0]
    with pytest.raises(UserError, match="dataroot_LQ"):
        build_dataset({"mode": "lmdb", "dataroot_HQ": "x.lmdb"}, seed=0)


def _tree_ok(tmp_path):
    _pair_tree(tmp_path / "ok")
    return tmp_path / "ok"


@pytest.mark.slow
def test_make_synthetic_dataset_cli_tree_feeds_the_folder_dataset(tmp_path):
    script = REPO / "scripts" / "make_synthetic_dataset.py"
    args = [sys.executable, str(script), "--deadleaves", "--out", str(tmp_path / "syn"), "--num", "3",
            "--seed", "4", "--size", "16", "--kernel-size", "5"]
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "syn" / "sharp" / "000" / "00000002.png").is_file()
    kernel = np.load(tmp_path / "syn" / "kernels" / "000" / "00000002.npy")
    assert kernel.shape == (5, 5) and abs(kernel.sum() - 1) < 1e-5
    # the files hold the samples of the synthetic dataset with the same seed (8-bit quantised)
    direct = build_dataset({"HQ_size": 16, "synthetic": {"kernel_size": 5, "num_samples": 3}}, seed=4)[2]
    folder = PairedFolderDataset(tmp_path / "syn", crop_size=None, train=False)[2]
    torch.testing.assert_close(folder["blur"], direct["blur"], atol=1e-6, rtol=0)
    torch.testing.assert_close(folder["sharp"], direct["sharp"], atol=1e-6, rtol=0)
    again = subprocess.run(args, capture_output=True, text=True)
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_published_dataset_blocks_load(tmp_path):
    s1, b1, _ = _lmdbs(tmp_path, "reds")
    s2, b2, _ = _lmdbs(tmp_path, "gopro", keys=("x/00000001",))
    published = {"name": "REDS", "mode": "REDS", "interval_list": [1], "dataroot_HQ": str(s1),
                 "dataroot_LQ": str(b1), "cache_keys": None, "use_shuffle": True, "n_workers": 4,
                 "batch_size": 13, "HQ_size": 8, "LQ_size": 8, "use_flip": True, "use_rot": True, "color": "RGB"}
    assert isinstance(build_dataset(published, seed=0), PairedLMDBDataset)
    mix = {**published, "mode": "mix", "dataroot_HQ": None, "dataroot_LQ": None, "N_frames": 1,
           "dataroots_HQ": [str(s1), str(s2)], "dataroots_LQ": [str(b1), str(b2)], "dataset_weights": [1, 10]}
    ds = build_dataset(mix, seed=0)
    assert len(ds) == 3 + 10 * 1 and ds[12]["key"] == "x_00000001"
    for bad, match in (({"N_frames": 5}, "N_frames"), ({"LQ_size": 64}, "LQ_size"), ({"color": "gray"}, "color"),
                       ({"dataset_weights": [1]}, "dataset_weights")):
        with pytest.raises(UserError, match=match):
            build_dataset({**mix, **bad}, seed=0)
