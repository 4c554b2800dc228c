"""No command destroys its input: refuse output paths that are (or would replace) input files.

Every command that reads and writes files calls :func:`refuse_overwrite` with all the paths it
is about to write and all the paths it reads, after parsing its arguments and before any work
(loading a model, reading images). Paths are compared as files, not as strings: two paths are
the same when ``os.path.samefile`` says so (both exist; this also catches symlinks and hard
links) or when they resolve to the same absolute path (``Path.resolve``: ``..``, ``.``,
relative and absolute spellings, symlinked folders). A refusal is a :class:`UserError`, which
``run_cli`` turns into one ``error: ...`` line naming both paths and exit status 2.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from utils.errors import UserError

PathLike = str | os.PathLike


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare the absolute spelling
        return Path(os.path.abspath(path))


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing path (symlinks followed), else None."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _input_files(inputs: Iterable[PathLike | None]) -> Iterator[tuple[PathLike, Path]]:
    """(as given, path) of every existing input: a file, or a folder and every file under it."""
    for given in inputs:
        if given is None or str(given) == "":
            continue
        path = Path(given)
        if path.is_dir():
            yield given, path
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    yield Path(root) / name, Path(root) / name
        elif path.exists():
            yield given, path


def refuse_overwrite(
    outputs: Iterable[PathLike | None],
    inputs: Iterable[PathLike | None],
    hint: str = "choose another output path",
) -> None:
    """Raise :class:`UserError` when an output path would overwrite or replace an input.

    ``outputs``: every path the command will write (files, and folders it replaces or fills,
    e.g. an LMDB or ``OUT/sharp``); ``inputs``: every path it reads (files, or folders: all
    files under a folder count). ``None`` entries are skipped, and so are inputs that do not
    exist (nothing to destroy; the command reports them itself). An output is refused when it
    is the same file as an input (``os.path.samefile``, or the same resolved path), or when an
    input lies inside it (writing or replacing that folder would destroy the input). The error
    names the output and the input as the user spelled them, then ``hint`` (what to do instead).
    Nothing is written.
    """
    by_identity: dict[tuple[int, int], PathLike] = {}
    by_path: dict[Path, PathLike] = {}
    holders: dict[Path, PathLike] = {}  # every folder holding an input -> that input
    for given, path in _input_files(inputs):
        identity = _identity(path)
        if identity is not None:
            by_identity.setdefault(identity, given)
        resolved = _resolve(path)
        by_path.setdefault(resolved, given)
        for parent in resolved.parents:
            if parent in holders:  # and so are all its ancestors
                break
            holders[parent] = given
    for output in outputs:
        if output is None or str(output) == "":
            continue
        path = Path(output)
        resolved = _resolve(path)
        identity = _identity(path)
        same = by_identity.get(identity) if identity is not None else None
        if same is None:
            same = by_path.get(resolved)
        if same is not None:
            raise UserError(f"{output}: would overwrite the input {same} (the same path); {hint}")
        if resolved in holders:
            raise UserError(f"{output}: would write over the folder holding the input {holders[resolved]}; {hint}")


def refuse_inside(outputs: Iterable[PathLike | None], folders: Iterable[PathLike | None]) -> None:
    """Raise :class:`UserError` when an output path is one of ``folders`` or lies inside one.

    For commands whose output must not become part of the folder they read (an LMDB written into
    the image folder it packs). Paths are compared resolved (symlinks, ``..``, relative or
    absolute spellings); ``None`` entries are skipped. The error names both paths.
    """
    resolved_folders = [(folder, _resolve(Path(folder))) for folder in folders if folder is not None]
    for output in outputs:
        if output is None:
            continue
        resolved = _resolve(Path(output))
        for folder, root in resolved_folders:
            if resolved == root or root in resolved.parents:
                raise UserError(
                    f"{output}: is inside the input folder {folder}; write it outside the folder it reads"
                )


REPO_ROOT = Path(__file__).resolve().parent.parent


def model_path(value: str | os.PathLike) -> Path:
    """A checkpoint path from ``--model`` or a config's ``model`` → the file to load: the path as
    given when it is absolute or exists from here, else relative to the repository root (where
    the shipped model lives)."""
    path = Path(value)
    return path if path.is_absolute() or path.exists() else REPO_ROOT / path
