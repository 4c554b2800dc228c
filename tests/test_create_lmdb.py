"""scripts/create_lmdb.py and data.lmdb_io: layouts, validation, atomicity, exact pixels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data.image_io import write_image
from data.lmdb_io import LmdbImages, collect_images, create_lmdb, read_meta_info
from utils.errors import UserError

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "create_lmdb.py"


def _u8(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write(path: Path, pixels: np.ndarray) -> None:
    write_image(path, pixels.astype(np.float32) / 255.0)


def _reds_tree(root: Path) -> dict[str, np.ndarray]:
    pixels = {}
    for clip, frames in (("000", 2), ("001", 1)):
        for f in range(frames):
            img = _u8(10 + f, 12 + 3 * f, seed=len(pixels))  # different sizes are allowed
            _write(root / clip / f"{f:08d}.png", img)
            pixels[f"{clip}_{f:08d}"] = img
    return pixels


def test_reds_folder_to_lmdb_reads_back_exact_pixels_and_shapes(tmp_path):
    pixels = _reds_tree(tmp_path / "train_sharp")
    out = tmp_path / "train_sharp.lmdb"
    assert create_lmdb(tmp_path / "train_sharp", out, progress=False) == 3
    meta = read_meta_info(out)
    assert meta == [(k, v.shape) for k, v in sorted(pixels.items())]
    images = LmdbImages(out)
    for key, img in pixels.items():
        np.testing.assert_array_equal(images.read(key), img)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_sharp", "train_sharp.lmdb"]


def test_gopro_layout_needs_a_side_and_packs_one_side(tmp_path):
    root = tmp_path / "train"
    for scene in ("GOPR0372_07_00", "GOPR0374_11_00"):
        for side, seed in (("sharp", 0), ("blur", 1)):
            _write(root / scene / side / "000047.png", _u8(6, 7, seed))
    layout, items = collect_images(root, side="blur")
    assert layout == "gopro"
    assert [k for k, _ in items] == ["GOPR0372_07_00_000047", "GOPR0374_11_00_000047"]
    assert all(p.parent.name == "blur" for _, p in items)
    with pytest.raises(UserError, match="--side"):
        collect_images(root)
    create_lmdb(root, tmp_path / "b.lmdb", side="blur", progress=False)
    np.testing.assert_array_equal(LmdbImages(tmp_path / "b.lmdb").read("GOPR0372_07_00_000047"), _u8(6, 7, 1))


@pytest.mark.slow
def test_cli_corrupt_png_exits_2_naming_the_file_and_leaves_nothing(tmp_path):
    _reds_tree(tmp_path / "imgs")
    bad = tmp_path / "imgs" / "001" / "00000005.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out.lmdb"
    result = subprocess.run([sys.executable, str(SCRIPT), "--img_folder", str(tmp_path / "imgs"),
                             "--save_path", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert str(bad) in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]  # no temporary LMDB left either


@pytest.mark.slow
def test_cli_refuses_to_overwrite_without_flag(tmp_path):
    _reds_tree(tmp_path / "imgs")
    out = tmp_path / "out.lmdb"
    args = [sys.executable, str(SCRIPT), "--img_folder", str(tmp_path / "imgs"), "--save_path", str(out)]
    assert subprocess.run(args, capture_output=True, cwd=tmp_path).returncode == 0
    before = (out / "meta_info.txt").read_text()
    again = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    (tmp_path / "imgs" / "001" / "00000000.png").unlink()
    replaced = subprocess.run(args + ["--overwrite", "--name", "REDS_sharp"], capture_output=True, cwd=tmp_path)
    assert replaced.returncode == 0
    after = (out / "meta_info.txt").read_text()
    assert after != before and "001_00000000" not in after
    assert "REDS_sharp" in (out / "info.yml").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "out.lmdb"]


def test_missing_folder_and_bad_meta_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="folder not found"):
        create_lmdb(tmp_path / "nope", tmp_path / "x.lmdb", progress=False)
    with pytest.raises(UserError, match="not an LMDB"):
        read_meta_info(tmp_path)
    _reds_tree(tmp_path / "imgs")
    create_lmdb(tmp_path / "imgs", tmp_path / "x.lmdb", progress=False)
    (tmp_path / "x.lmdb" / "meta_info.txt").write_text("000_00000000 720x1280\n")
    with pytest.raises(UserError, match=r"meta_info.txt:1"):
        LmdbImages(tmp_path / "x.lmdb")
