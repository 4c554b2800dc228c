"""Reading and writing image files (PNG/JPEG/TIFF/BMP; gray, RGB or RGBA; 8- or 16-bit).

Inside the project an image is a float32 RGB array in [0, 1] (H×W×3) or a (1, 3, H, W) tensor.
:func:`read_image` remembers what the file held (channel count, alpha, bit depth) so that
:func:`write_image` with ``like=`` writes an output of the same kind. Every failure to read or
write is a :class:`~utils.errors.UserError` naming the file and what was expected.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from utils.errors import UserError
from utils.fileio import atomic_write

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_EXPECTED = "a readable PNG/JPEG/TIFF/BMP image (8- or 16-bit gray, RGB or RGBA)"
_NO_ALPHA_FORMATS = (".jpg", ".jpeg", ".bmp")  # formats that cannot store an alpha channel
_EIGHT_BIT_FORMATS = (".jpg", ".jpeg", ".bmp")  # formats that cannot store 16-bit samples
_LUMA_BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # weights of R, G, B


@dataclass
class LoadedImage:
    """An image file as the project sees it.

    ``rgb``: float32 H×W×3 in [0, 1] (gray files replicated to 3 channels);
    ``alpha``: float32 H×W in [0, 1], or None when the file has no alpha channel;
    ``channels``: 1, 3 or 4, as stored in the file; ``bit_depth``: 8 or 16; ``path``: the file.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    channels: int
    bit_depth: int
    path: Path

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own log lines while decoding (failures are reported as UserError instead)."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


def decode_image(data: bytes, name: str | os.PathLike = "<bytes>") -> LoadedImage:
    """Decode encoded image bytes (PNG/JPEG/TIFF/BMP) into a :class:`LoadedImage`.

    ``name`` is only used in error messages and stored as ``path``. Raises UserError when the bytes
    are not a complete image of a supported kind.
    """
    path = Path(name)
    if len(data) == 0:
        raise UserError(f"{path}: empty file, expected {_EXPECTED}")
    with _quiet_opencv():
        try:
            raw = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:
            raise UserError(f"{path}: cannot decode image ({exc.err.strip()}), expected {_EXPECTED}") from exc
    if raw is None or raw.size == 0:
        raise UserError(f"{path}: not a decodable image (corrupt, truncated or unsupported format), "
                        f"expected {_EXPECTED}")
    return _from_opencv(raw, path)


def _from_opencv(raw: np.ndarray, path: Path) -> LoadedImage:
    if raw.dtype == np.uint8:
        bit_depth, scale = 8, 255.0
    elif raw.dtype == np.uint16:
        bit_depth, scale = 16, 65535.0
    else:
        raise UserError(f"{path}: unsupported sample type {raw.dtype}, expected 8- or 16-bit integer samples")
    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[:, :, 0]
    if raw.ndim == 2:
        channels = 1
        gray = raw.astype(np.float32) / scale
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
        alpha = None
    elif raw.ndim == 3 and raw.shape[2] in (3, 4):
        channels = raw.shape[2]
        values = raw.astype(np.float32) / scale
        rgb = np.ascontiguousarray(values[:, :, 2::-1])  # BGR(A) -> RGB
        alpha = np.ascontiguousarray(values[:, :, 3]) if channels == 4 else None
    else:
        raise UserError(f"{path}: unsupported layout {raw.shape}, expected gray, RGB or RGBA")
    return LoadedImage(rgb=rgb, alpha=alpha, channels=channels, bit_depth=bit_depth, path=path)


def read_image(path: str | os.PathLike) -> LoadedImage:
    """Read an image file into a :class:`LoadedImage` (rgb float32 H×W×3 in [0, 1], alpha, depth).

    A missing, empty, truncated or corrupt file, or one with float/32-bit samples, is a UserError
    naming ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found, expected {_EXPECTED}")
    if not path.is_file():
        raise UserError(f"{path}: not a file, expected {_EXPECTED}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror}), expected {_EXPECTED}") from exc
    return decode_image(data, path)


def _as_rgb_array(rgb: np.ndarray, path: Path) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise UserError(f"{path}: cannot write an array of shape {rgb.shape}, expected H×W×3 RGB")
    rgb = rgb.astype(np.float32, copy=False)
    if not np.all(np.isfinite(rgb)):
        raise UserError(f"{path}: refusing to write an image with NaN or infinite values")
    return np.clip(rgb, 0.0, 1.0)


def encode_image(
    rgb: np.ndarray,
    ext: str,
    channels: int = 3,
    alpha: np.ndarray | None = None,
    bit_depth: int = 8,
) -> bytes:
    """Encode float RGB H×W×3 in [0, 1] (clipped) as ``ext`` (e.g. ``".png"``) bytes.

    ``channels`` 1 writes BT.601 luma; ``alpha`` (H×W in [0, 1]) adds an alpha channel when the
    format can hold one; ``bit_depth`` 16 is used where the format allows it (PNG, TIFF).
    """
    ext = ext.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise UserError(f"cannot write '{ext}' files, expected one of {', '.join(IMAGE_EXTENSIONS)}")
    rgb = _as_rgb_array(rgb, Path(f"<image{ext}>"))
    if bit_depth == 16 and ext not in _EIGHT_BIT_FORMATS:
        dtype, scale = np.uint16, 65535.0
    else:
        dtype, scale = np.uint8, 255.0
    if channels == 1:
        values = (rgb @ _LUMA_BT601)[:, :, None]
    else:
        values = rgb[:, :, ::-1]  # RGB -> BGR
    if alpha is not None and ext not in _NO_ALPHA_FORMATS:
        alpha = np.clip(np.asarray(alpha, dtype=np.float32), 0.0, 1.0)
        if alpha.shape != rgb.shape[:2]:
            alpha = cv2.resize(alpha, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        values = np.concatenate([np.repeat(values, 3, axis=2) if channels == 1 else values,
                                 alpha[:, :, None]], axis=2)
    out = np.ascontiguousarray(np.round(values * scale).astype(dtype))
    if out.shape[2] == 1:
        out = out[:, :, 0]
    ok, buffer = cv2.imencode(ext, out)
    if not ok:
        raise UserError(f"OpenCV could not encode a {out.shape} {out.dtype} image as '{ext}'")
    return buffer.tobytes()


def write_image(path: str | os.PathLike, rgb: np.ndarray, like: LoadedImage | None = None) -> None:
    """Write float RGB ``rgb`` (H×W×3, clipped to [0, 1]) to ``path`` atomically.

    Without ``like``: 8-bit RGB. With ``like`` (a :class:`LoadedImage`): its channel count (gray
    written as ITU-R BT.601 luma), its alpha and its bit depth, as far as the format of ``path``
    allows (JPEG/BMP: 8-bit, no alpha). The format follows the extension of ``path``.
    An unknown extension or an unwritable folder is a UserError.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise UserError(f"{path}: unknown image extension '{path.suffix}', "
                        f"expected one of {', '.join(IMAGE_EXTENSIONS)}")
    rgb = _as_rgb_array(rgb, path)
    if like is None:
        data = encode_image(rgb, ext)
    else:
        data = encode_image(rgb, ext, channels=like.channels, alpha=like.alpha, bit_depth=like.bit_depth)
    try:
        atomic_write(path, lambda tmp: tmp.write_bytes(data), suffix=ext)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc}); is the folder writable?") from exc


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H×W×3 float array in [0, 1] -> (1, 3, H, W) float32 tensor."""
    array = np.ascontiguousarray(np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1))
    return torch.from_numpy(array).unsqueeze(0)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) tensor -> H×W×3 float32 array (values unchanged, on the CPU)."""
    t = tensor.detach()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"to_numpy expects a batch of one image, got shape {tuple(t.shape)}")
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"to_numpy expects (1, C, H, W) or (C, H, W), got shape {tuple(t.shape)}")
    return np.ascontiguousarray(t.float().cpu().numpy().transpose(1, 2, 0))


def is_image_file(path: str | os.PathLike) -> bool:
    """True when ``path`` has one of the supported image extensions (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Sorted image files (by extension, hidden files skipped) in ``folder``.

    A missing folder is a UserError. ``recursive`` also searches sub-folders.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: folder not found, expected a folder of images")
    pattern = "**/*" if recursive else "*"
    return sorted(
        p for p in folder.glob(pattern)
        if p.is_file() and is_image_file(p) and not p.name.startswith(".")
    )
