"""scripts/real_gallery.py: the rows it draws, a run on a small photo, a missing photo refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data.image_io import read_image, write_image
from scripts.real_gallery import gallery_row, main, psf_tile, stack_rows
from utils.errors import run_cli

REPO = Path(__file__).resolve().parent.parent


def test_gallery_row_and_stack_shapes():
    blurry = np.full((60, 80, 3), 0.5, np.float32)
    psf = np.zeros((5, 5), np.float32)
    psf[2, 1:4] = 1 / 3
    row = gallery_row(blurry, blurry, psf, width=40)
    assert row.shape == (30, 2 * 40 + 30 + 8, 3)
    tile = psf_tile(psf, 30)
    assert tile.max() == 1.0 and tile.shape == (30, 30, 3)
    other = gallery_row(np.zeros((40, 40, 3), np.float32), np.zeros((40, 40, 3), np.float32), psf, width=40)
    figure = stack_rows([row, other])
    assert figure.shape == (30 + 4 + 40, max(row.shape[1], other.shape[1]), 3)


@pytest.mark.slow
def test_real_gallery_draws_a_row_per_photo(tmp_path: Path):
    photo = read_image(REPO / "examples" / "blurry_astronaut.png").rgb[:96, :96]
    path = tmp_path / "blurry.png"
    write_image(path, photo)
    out = tmp_path / "gallery.png"
    assert run_cli(main, [str(path), str(path), "--out", str(out), "--width", "48", "--device", "cpu",
                          "--threads", "1"]) == 0
    figure = read_image(out).rgb
    assert figure.shape[0] == 2 * 48 + 4


def test_real_gallery_refuses_a_missing_photo(tmp_path: Path, capsys):
    status = run_cli(main, [str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "g.png"), "--device", "cpu"])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "missing.jpg" in err and "\n" not in err
