"""Image LMDBs in the BasicSR/EDVR layout: build them from folders, read them back.

An image LMDB is a folder ``NAME.lmdb/`` holding ``data.mdb``/``lock.mdb``, ``meta_info.txt``
(one line per image: ``key (h,w,c)``, in key order) and ``info.yml`` (name, source folder,
layout). Each value is the image as raw ``uint8`` bytes in RGB order, ``h·w·c`` long; values that
are not of that length are decoded as encoded images (PNG), so LMDBs written by BasicSR
(``key.png (h,w,c) level`` lines, PNG values) read as well.

Folder layouts accepted by :func:`collect_images`:

- REDS: ``DIR/<clip>/<frame>.png`` (e.g. ``train_sharp/000/00000000.png``) -> key ``000_00000000``;
- GOPRO: ``DIR/<scene>/sharp/*.png`` and ``DIR/<scene>/blur/*.png`` -> key ``<scene>_<frame>``,
  one LMDB per side (``side="sharp"`` or ``"blur"``);
- flat: ``DIR/<name>.png`` -> key ``<name>``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lmdb
import numpy as np
import yaml
from tqdm import tqdm

from data.image_io import decode_image, is_image_file, read_image
from utils.errors import UserError
from utils.fileio import unwritable_reason

GOPRO_SIDES = ("sharp", "blur")
_META_LINE = re.compile(r"^(\S+)\s+\((\d+),\s*(\d+),\s*(\d+)\)(?:\s+\S+)?\s*$")
_COMMIT_EVERY = 64


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p) and not p.name.startswith("."))


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def detect_layout(folder: str | os.PathLike) -> str:
    """"gopro", "reds" or "flat" for an image folder (see the module docstring); UserError if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: folder not found, expected a folder of images (REDS, GOPRO or flat layout)")
    subdirs = _subdirs(folder)
    if any((d / side).is_dir() for d in subdirs for side in GOPRO_SIDES):
        return "gopro"
    if any(_images_in(d) for d in subdirs):
        return "reds"
    if _images_in(folder):
        return "flat"
    raise UserError(f"{folder}: no images found (expected DIR/<clip>/*.png, DIR/<scene>/sharp|blur/*.png "
                    "or DIR/*.png)")


def collect_images(folder: str | os.PathLike, side: str | None = None) -> tuple[str, list[tuple[str, Path]]]:
    """(layout, sorted [(key, path)]) of the images under ``folder``.

    ``side`` ("sharp" or "blur") is required for a GOPRO tree and refused otherwise. Duplicate
    keys are a UserError.
    """
    folder = Path(folder)
    layout = detect_layout(folder)
    items: list[tuple[str, Path]] = []
    if layout == "gopro":
        if side not in GOPRO_SIDES:
            raise UserError(f"{folder}: a GOPRO tree (<scene>/sharp, <scene>/blur); choose one side with "
                            "--side sharp or --side blur (one LMDB per side)")
        for scene in _subdirs(folder):
            if (scene / side).is_dir():
                items += [(f"{scene.name}_{p.stem}", p) for p in _images_in(scene / side)]
    else:
        if side is not None:
            raise UserError(f"{folder}: --side is only for GOPRO trees (<scene>/sharp, <scene>/blur); "
                            f"this folder has the {layout} layout")
        if layout == "reds":
            for clip in _subdirs(folder):
                items += [(f"{clip.name}_{p.stem}", p) for p in _images_in(clip)]
        else:
            items = [(p.stem, p) for p in _images_in(folder)]
    keys = [k for k, _ in items]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise UserError(f"{folder}: two images map to the key '{dup}' (same name with different extensions?)")
    if any(" " in k for k in keys):
        bad = next(k for k in keys if " " in k)
        raise UserError(f"{folder}: key '{bad}' contains a space; rename the file (keys must not contain spaces)")
    return layout, sorted(items)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def create_lmdb(
    img_folder: str | os.PathLike,
    save_path: str | os.PathLike,
    name: str | None = None,
    side: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> int:
    """Build an image LMDB at ``save_path`` from ``img_folder``; returns the number of images.

    Every image is decoded (a corrupt or unreadable one stops the build with a UserError naming
    it) and stored as raw RGB uint8 (8-bit; 16-bit files are rounded to 8 bits, gray ones become
    RGB). The LMDB is built under a temporary name beside ``save_path`` and renamed at the end, so
    nothing is left at ``save_path`` on failure. An existing ``save_path`` is a UserError unless
    ``overwrite``.
    """
    save_path = Path(save_path)
    if save_path.exists() and not overwrite:
        raise UserError(f"{save_path}: already exists (use --overwrite to replace it)")
    layout, items = collect_images(img_folder, side)
    name = name or save_path.stem
    try:
        save_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{save_path.name}.", suffix=".building", dir=save_path.parent))
    except OSError as exc:
        raise UserError(f"{save_path}: cannot create the LMDB ({unwritable_reason(save_path.parent, exc)})") from exc
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; give the LMDB folder the usual permissions
    try:
        meta = _write_entries(tmp, items, progress, label=save_path.name)
        (tmp / "meta_info.txt").write_text("".join(f"{k} ({h},{w},{c})\n" for k, (h, w, c) in meta))
        info = {"name": name, "source": str(Path(img_folder).resolve()), "layout": layout,
                "side": side, "count": len(meta), "format": "raw uint8 RGB"}
        (tmp / "info.yml").write_text(yaml.safe_dump(info, sort_keys=False))
        _replace_dir(tmp, save_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(items)


def _write_entries(
    path: Path, items: Sequence[tuple[str, Path]], progress: bool, label: str
) -> list[tuple[str, tuple]]:
    """Write every image into a new LMDB environment at ``path``; return [(key, (h, w, c))]."""
    map_size = 1 << 30
    env = lmdb.open(str(path), map_size=map_size, subdir=True, meminit=False)
    meta: list[tuple[str, tuple]] = []
    try:
        batch: list[tuple[bytes, bytes]] = []
        for key, file in tqdm(items, desc=label, unit="img", disable=not progress):
            rgb = _to_uint8(read_image(file).rgb)  # UserError names the file
            meta.append((key, rgb.shape))
            batch.append((key.encode(), rgb.tobytes()))
            if len(batch) >= _COMMIT_EVERY:
                map_size = _commit(env, batch, map_size)
                batch = []
        if batch:
            _commit(env, batch, map_size)
        env.sync()
    finally:
        env.close()
    return meta


def _commit(env: lmdb.Environment, batch: list[tuple[bytes, bytes]], map_size: int) -> int:
    """Write ``batch`` in one transaction, doubling the map size until it fits; returns the map size."""
    while True:
        try:
            with env.begin(write=True) as txn:
                for key, value in batch:
                    txn.put(key, value)
            return map_size
        except lmdb.MapFullError:
            map_size *= 2
            env.set_mapsize(map_size)


def _replace_dir(new: Path, target: Path) -> None:
    """Rename folder ``new`` to ``target``, replacing an existing ``target`` only at the end."""
    if target.exists():
        trash = target.with_name(f".{target.name}.old")
        if trash.exists():
            shutil.rmtree(trash)
        os.replace(target, trash)
        os.replace(new, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(new, target)


def read_meta_info(lmdb_path: str | os.PathLike) -> list[tuple[str, tuple[int, int, int]]]:
    """[(key, (h, w, c))] from ``meta_info.txt`` of an image LMDB, in file order.

    A missing folder, missing/garbled meta_info.txt or an empty list is a UserError.
    """
    lmdb_path = Path(lmdb_path)
    meta_file = lmdb_path / "meta_info.txt"
    if not lmdb_path.is_dir() or not (lmdb_path / "data.mdb").is_file():
        raise UserError(f"{lmdb_path}: not an LMDB folder (expected data.mdb and meta_info.txt; "
                        "create it with scripts/create_lmdb.py)")
    if not meta_file.is_file():
        raise UserError(f"{meta_file}: missing; expected one 'key (h,w,c)' line per image")
    entries = []
    for number, line in enumerate(meta_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        match = _META_LINE.match(line.strip())
        if match is None:
            raise UserError(f"{meta_file}:{number}: expected 'key (h,w,c)', got {line.strip()!r}")
        key = match.group(1)
        if key.lower().endswith(".png"):  # BasicSR writes 'key.png (h,w,c) level'
            key = key[:-4]
        entries.append((key, (int(match.group(2)), int(match.group(3)), int(match.group(4)))))
    if not entries:
        raise UserError(f"{meta_file}: no entries; expected one 'key (h,w,c)' line per image")
    return entries


@dataclass
class LmdbImages:
    """Read-only access to an image LMDB; the environment opens lazily in each process.

    ``path``: the ``.lmdb`` folder. ``keys``/``shapes`` come from its meta_info.txt.
    """

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        meta = read_meta_info(self.path)
        self.keys = [k for k, _ in meta]
        self.shapes = dict(meta)
        self._env: lmdb.Environment | None = None
        self._pid: int | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_env"] = None  # an open environment never crosses a process boundary
        state["_pid"] = None
        return state

    def _environment(self) -> lmdb.Environment:
        if self._env is None or self._pid != os.getpid():
            if self._env is not None:  # inherited through fork: never use it, release the child's copy
                self._env.close()
            try:
                self._env = lmdb.open(str(self.path), readonly=True, lock=False, readahead=False,
                                      meminit=False, max_readers=256)
            except lmdb.Error as exc:
                raise UserError(f"{self.path}: cannot open LMDB ({exc})") from exc
            self._pid = os.getpid()
        return self._env

    def read(self, key: str) -> np.ndarray:
        """The image stored under ``key``: (h, w, 3) uint8 RGB. A missing/garbled entry is a UserError."""
        with self._environment().begin(write=False) as txn:
            value = txn.get(key.encode())
        if value is None:
            raise UserError(f"{self.path}: key '{key}' listed in meta_info.txt is missing from the LMDB")
        h, w, c = self.shapes[key]
        if len(value) == h * w * c and c in (1, 3):
            image = np.frombuffer(value, dtype=np.uint8).reshape(h, w, c)
            return np.repeat(image, 3, axis=2) if c == 1 else image
        image = decode_image(value, f"{self.path}[{key}]")  # an encoded (BasicSR-style) value
        if image.size != (h, w):
            raise UserError(f"{self.path}: key '{key}' holds a {image.size} image, meta_info.txt says ({h},{w})")
        return _to_uint8(image.rgb)
