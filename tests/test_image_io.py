"""Round trips and failure modes of data.image_io."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

from data.image_io import (
    LoadedImage,
    decode_image,
    list_images,
    read_image,
    to_numpy,
    to_tensor,
    write_image,
)
from utils.errors import UserError


def _random_rgb(h: int = 9, w: int = 11, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


@pytest.mark.parametrize("ext", [".png", ".tif", ".bmp"])
def test_rgb_8bit_round_trip_is_exact_on_the_8bit_grid(tmp_path, ext):
    rgb = np.round(_random_rgb() * 255) / 255
    path = tmp_path / f"x{ext}"
    write_image(path, rgb)
    img = read_image(path)
    assert (img.channels, img.bit_depth, img.alpha) == (3, 8, None)
    assert img.rgb.dtype == np.float32 and img.rgb.shape == (9, 11, 3)
    np.testing.assert_allclose(img.rgb, rgb, atol=1e-6)


def test_rgb_channel_order_is_rgb(tmp_path):
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    img = read_image(tmp_path / "red.png")
    np.testing.assert_array_equal(img.rgb[0, 0], [1.0, 0.0, 0.0])


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_rgba_round_trip_keeps_depth_and_alpha(tmp_path, ext):
    raw = np.random.default_rng(1).integers(0, 65536, (6, 7, 4), dtype=np.uint16)
    src = tmp_path / f"src{ext}"
    assert cv2.imwrite(str(src), raw)
    img = read_image(src)
    assert (img.channels, img.bit_depth) == (4, 16)
    np.testing.assert_allclose(img.alpha, raw[..., 3] / 65535.0, atol=1e-6)
    np.testing.assert_allclose(img.rgb, raw[..., 2::-1] / 65535.0, atol=1e-6)
    out = tmp_path / f"out{ext}"
    write_image(out, img.rgb, like=img)
    again = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert again.dtype == np.uint16
    np.testing.assert_array_equal(again, raw)


def test_gray_8bit_round_trip_keeps_one_channel(tmp_path):
    gray = np.random.default_rng(2).integers(0, 256, (5, 8), dtype=np.uint8)
    src = tmp_path / "g.png"
    cv2.imwrite(str(src), gray)
    img = read_image(src)
    assert (img.channels, img.bit_depth) == (1, 8)
    np.testing.assert_array_equal(img.rgb[..., 0], img.rgb[..., 2])
    out = tmp_path / "g_out.png"
    write_image(out, img.rgb, like=img)
    again = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert again.ndim == 2
    np.testing.assert_array_equal(again, gray)


def test_gray_output_uses_bt601_luma(tmp_path):
    like = LoadedImage(rgb=np.zeros((2, 2, 3), np.float32), alpha=None, channels=1, bit_depth=16,
                       path=tmp_path / "like.png")
    rgb = np.zeros((2, 2, 3), np.float32)
    rgb[..., 1] = 1.0  # pure green
    write_image(tmp_path / "luma.png", rgb, like=like)
    again = cv2.imread(str(tmp_path / "luma.png"), cv2.IMREAD_UNCHANGED)
    assert again.dtype == np.uint16 and again.ndim == 2
    assert again[0, 0] == round(0.587 * 65535)


def test_rgba_8bit_round_trip_and_jpeg_drops_alpha(tmp_path):
    raw = np.random.default_rng(3).integers(0, 256, (6, 5, 4), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), raw)
    img = read_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png", img.rgb, like=img)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "b.png"), cv2.IMREAD_UNCHANGED), raw)
    write_image(tmp_path / "b.jpg", img.rgb, like=img)
    jpg = read_image(tmp_path / "b.jpg")
    assert (jpg.channels, jpg.bit_depth, jpg.alpha) == (3, 8, None)


def test_write_clips_values(tmp_path):
    rgb = np.full((3, 3, 3), 2.0, np.float32)
    rgb[0, 0] = -1.0
    write_image(tmp_path / "c.png", rgb)
    img = read_image(tmp_path / "c.png")
    assert img.rgb.min() == 0.0 and img.rgb.max() == 1.0


def test_write_leaves_no_temporary_files(tmp_path):
    write_image(tmp_path / "x.png", _random_rgb())
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _truncated_png(tmp_path):
    path = tmp_path / "trunc.png"
    write_image(path, _random_rgb(32, 32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    "make",
    [
        lambda d: d / "missing.png",
        lambda d: _write(d / "empty.png", b""),
        lambda d: _write(d / "text.png", b"not an image\n"),
        _truncated_png,
    ],
    ids=["missing", "empty", "text", "truncated"],
)
def test_bad_files_raise_user_error_naming_the_path(tmp_path, make):
    path = make(tmp_path)
    with pytest.raises(UserError, match=path.name):
        read_image(path)


def test_float_tiff_is_rejected(tmp_path):
    path = tmp_path / "f.tif"
    assert cv2.imwrite(str(path), np.zeros((4, 4, 3), np.float32))
    with pytest.raises(UserError, match="unsupported sample type"):
        read_image(path)


def test_decode_bytes_matches_read(tmp_path):
    write_image(tmp_path / "d.png", _random_rgb())
    a = read_image(tmp_path / "d.png")
    b = decode_image((tmp_path / "d.png").read_bytes(), "d.png")
    np.testing.assert_array_equal(a.rgb, b.rgb)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder_is_user_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(UserError, match="x.png"):
            write_image(folder / "x.png", _random_rgb())
    finally:
        folder.chmod(0o700)


def test_unwritable_target_is_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="x.png"):
        write_image(blocker / "x.png", _random_rgb())


def test_unknown_extension_and_bad_shape_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="extension"):
        write_image(tmp_path / "x.gif", _random_rgb())
    with pytest.raises(UserError, match="H×W×3"):
        write_image(tmp_path / "x.png", np.zeros((4, 4), np.float32))


def test_tensor_conversions_round_trip():
    rgb = _random_rgb(5, 6)
    t = to_tensor(rgb)
    assert t.shape == (1, 3, 5, 6) and t.dtype == torch.float32
    assert torch.equal(t[0, :, 2, 3], torch.from_numpy(rgb[2, 3]))
    np.testing.assert_array_equal(to_numpy(t), rgb)
    np.testing.assert_array_equal(to_numpy(t[0]), rgb)


def test_list_images_sorted_by_extension(tmp_path):
    for name in ["b.PNG", "a.jpg", "c.txt", "d.tiff", ".hidden.png"]:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "d.tiff"]
    with pytest.raises(UserError, match="folder not found"):
        list_images(tmp_path / "nope")
