"""Run a command with a crash injected in the middle of a file write (used by tests/test_faults.py).

    python tests/helpers_crash.py SCRIPT [ARGS...]

runs ``SCRIPT`` as ``__main__`` (like ``python SCRIPT ARGS``) after patching, from the environment:

- ``CRASH_IN_SAVE=TEXT``: the first ``torch.save`` to a file whose name contains TEXT writes half of
  its bytes to that file, then the process kills itself with SIGKILL;
- ``CRASH_IN_IMAGE_WRITE=N``: the N-th image write (``data.image_io``'s atomic write) writes half of
  the encoded file under its temporary name, then the process kills itself with SIGKILL.

Nothing in the production code knows about this: the patches replace library functions before the
script is imported, so the crash lands deterministically inside a real checkpoint or image write.
"""

from __future__ import annotations

import io
import os
import runpy
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _keep_half(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        os.fsync(handle.fileno())


def _patch_torch_save(text: str) -> None:
    import torch

    original = torch.save

    def save(obj, f, *args, **kwargs):  # noqa: ANN001, ANN202 - same signature as torch.save
        if isinstance(f, (str, os.PathLike)) and text in Path(f).name:
            buffer = io.BytesIO()
            original(obj, buffer, *args, **kwargs)
            _keep_half(Path(f), buffer.getvalue())
            _die()
        return original(obj, f, *args, **kwargs)

    torch.save = save


def _patch_image_write(n: int) -> None:
    import data.image_io as image_io
    from utils.fileio import atomic_path

    original = image_io.atomic_write
    calls = [0]

    def atomic_write(path, write, suffix=""):  # noqa: ANN001, ANN202 - same signature as atomic_write
        calls[0] += 1
        if calls[0] == n:
            with atomic_path(path, suffix=suffix) as tmp:
                write(tmp)
                _keep_half(tmp, tmp.read_bytes())
                _die()
        return original(path, write, suffix)

    image_io.atomic_write = atomic_write


def main() -> None:
    """Install the patches the environment asks for, then run the script of argv[1]."""
    if os.environ.get("CRASH_IN_SAVE"):
        _patch_torch_save(os.environ["CRASH_IN_SAVE"])
    if os.environ.get("CRASH_IN_IMAGE_WRITE"):
        _patch_image_write(int(os.environ["CRASH_IN_IMAGE_WRITE"]))
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
