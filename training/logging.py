"""Training logs: the console (through tqdm, rank 0; other ranks warnings only), train.log, and the
tensorboard scalars and image grids."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import torch

from utils.errors import UserError
from utils.fileio import unwritable_reason

LOG = logging.getLogger("train")
LOG_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")


class _TqdmHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


def setup_logging(is_main: bool) -> list[logging.Handler]:
    """Log to the console through tqdm (other ranks: warnings only). Returns the handlers, to be
    removed by :func:`close_logging`; :func:`attach_log_file` adds train.log once the run is valid."""
    console = _TqdmHandler()
    if not is_main:
        console.setLevel(logging.WARNING)
    console.setFormatter(LOG_FORMAT)
    LOG.addHandler(console)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False
    return [console]


def attach_log_file(root: Path, log_file: Path, handlers: list[logging.Handler]) -> None:
    """Create the experiment folder ``root`` and append the log to ``log_file`` in it (rank 0)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{root}: cannot create the experiment folder ({unwritable_reason(root, exc)})") from exc
    handler.setFormatter(LOG_FORMAT)
    LOG.addHandler(handler)
    handlers.append(handler)


def close_logging(handlers: list[logging.Handler]) -> None:
    """Detach and close what :func:`setup_logging` and :func:`attach_log_file` attached."""
    for h in handlers:
        LOG.removeHandler(h)
        h.close()


def tensorboard_writer(folder: Path, iteration: int) -> Any:
    """A tensorboard SummaryWriter on ``folder`` that drops events after ``iteration`` (a resumed run)."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(folder), purge_step=iteration + 1)


def write_scalars(writer: Any, scalars: dict[str, float], iteration: int) -> None:
    """Add every ``name: value`` of ``scalars`` to tensorboard (nothing without a writer)."""
    if writer is not None:
        for name, value in scalars.items():
            writer.add_scalar(name, value, iteration)


def image_grid(sharp: torch.Tensor, blur: torch.Tensor, pred: torch.Tensor, count: int) -> torch.Tensor:
    """(3, H', W') grid: rows x, y, F(x, G(x, y)) of the first ``count`` samples."""
    from torchvision.utils import make_grid

    n = min(count, sharp.shape[0])
    rows = torch.cat([sharp[:n], blur[:n], pred[:n].clamp(0, 1)]).detach().float().cpu()
    return make_grid(rows, nrow=n, padding=2)
