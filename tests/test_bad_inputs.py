"""Bad input never crashes and never loses work: a table of bad inputs across every command.

Each case runs one command as a subprocess (the real entry point, ``run_cli`` included) on tiny
inputs and a tiny random model, and checks the contract of the shared error path:

- exit status 2, no "Traceback" on stderr, exactly one ``error: ...`` line naming the offending
  file or key;
- nothing written to the case's output path (no file, no temporary left behind), and a checkpoint
  that runs code when unpickled is refused without running that code.

- no command destroys its input: an output that is one of the inputs (spelled with
  ``..``, relative or absolute, or through a symlink), or a folder output that would write over
  them, is refused before any work; the case's own inputs under ``{own}`` keep their bytes and
  nothing new appears there.

A few cases must *succeed* instead (16-bit RGB and RGBA inputs keep their depth and channels), and
a folder that mixes good and bad images finishes the good ones and lists the bad ones.

Subprocesses are slow to start (Python + torch), so the selected cases of the table run
concurrently from one module fixture; each case is still its own test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

pytestmark = pytest.mark.slow  # the table of bad inputs, run as subprocesses: left out of `make test-fast`

REPO = Path(__file__).resolve().parent.parent
WORKERS = max(2, min(4, os.cpu_count() or 2))
TIMEOUT_S = 600

# the tiny deblur settings every deblur case uses: 2 steps on pixels and a free code (no DIP)
TINY_DEBLUR = {"algorithm": "direct", "iterations": 2}
# a published (plain state_dict) tensor name removed from the "published, missing tensor" checkpoint
MISSING_TENSOR = "adapter.model.submodule.submodule.up.1.weight"


@dataclass(frozen=True)
class Case:
    """One command line and what must happen.

    ``args``: arguments after the script; ``{data}`` is the folder of inputs, ``{out}`` the case's
    own output folder (not created beforehand), ``{evil}`` a checkpoint of this case whose unpickling
    would create ``{data}/marker_<id>``, ``{own}`` a folder of inputs for this case alone (see
    :func:`make_own_inputs`; every file there must keep its bytes) and ``{rel}`` the same folder
    spelled relative to the working directory (``../..``). ``names``: strings the error line must
    contain (formatted like ``args``, so they can name the case's paths). ``rc``:
    expected exit status; for rc 2 nothing may appear under ``{out}``. ``check``: extra assertions
    ``check(result, data, out)`` (for the cases that must succeed).
    """

    id: str
    script: str
    args: tuple[str, ...]
    names: tuple[str, ...] = ()
    rc: int = 2
    check: Callable[[subprocess.CompletedProcess, Path, Path], None] | None = field(default=None, compare=False)


# -------------------------------------------------------------------------------------- extra checks
def _expect_image(name: str, shape: tuple[int, ...], dtype: type) -> Callable:
    def check(result: subprocess.CompletedProcess, data: Path, out: Path) -> None:
        path = out / name
        assert path.is_file(), f"{path} was not written"
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.shape == shape and image.dtype == dtype, (
            f"{path}: got {None if image is None else (image.shape, image.dtype)}, expected {shape} {dtype}"
        )

    return check


def _mixed_folder(result: subprocess.CompletedProcess, data: Path, out: Path) -> None:
    """Folder mode: the good images are written, the bad ones listed on stderr and not written."""
    for good in ("a.png", "b.png"):
        assert (out / good).is_file(), f"good image {good} was not deblurred"
        assert cv2.imread(str(out / good)).shape == (32, 32, 3)
    for bad in ("empty.png", "text.png", "truncated.png"):
        assert bad in result.stderr, f"bad image {bad} not listed on stderr"
        assert not (out / bad).exists()


# -------------------------------------------------------------------------------------- the table
DEBLUR = ("--model", "{data}/model.pth", "--config", "{data}/deblur.yml", "--device", "cpu", "--quiet")
TRANSFER = ("--model", "{data}/model.pth", "--device", "cpu")
TRANSFER_PAIR = ("--sharp", "{data}/good.png", "--blur", "{data}/good.png")
TRAIN = ("-opt", "configs/train/ci_tiny.yml", "--set", "path.root={out}", "--device", "cpu")
CONVERT = "scripts/convert_published_checkpoint.py"
LMDB = "scripts/create_lmdb.py"
SYNTH = "scripts/make_synthetic_dataset.py"
EVALUATE = "scripts/evaluate.py"
AUGMENT = "scripts/augment_dataset.py"
DEMO = "scripts/demo.py"
TRANSFER_DEMO = "scripts/transfer_demo.py"
PAIR = ("--sharp", "{data}/good.png", "--blur", "{data}/good.png")

CASES = [
    # deblur.py: images
    Case("deblur-missing-input", "deblur.py", ("--input", "{data}/nope.png", "--output", "{out}/x.png", *DEBLUR),
         ("nope.png",)),
    Case("deblur-empty-file", "deblur.py", ("--input", "{data}/empty.png", "--output", "{out}/x.png", *DEBLUR),
         ("empty.png",)),
    Case("deblur-truncated-png", "deblur.py",
         ("--input", "{data}/truncated.png", "--output", "{out}/x.png", *DEBLUR), ("truncated.png",)),
    Case("deblur-text-named-png", "deblur.py", ("--input", "{data}/text.png", "--output", "{out}/x.png", *DEBLUR),
         ("text.png",)),
    Case("deblur-1x1-image", "deblur.py", ("--input", "{data}/one.png", "--output", "{out}/x.png", *DEBLUR),
         ("one.png",)),
    Case("deblur-rgb16-succeeds", "deblur.py", ("--input", "{data}/rgb16.png", "--output", "{out}/x.png", *DEBLUR),
         rc=0, check=_expect_image("x.png", (32, 32, 3), np.uint16)),
    Case("deblur-rgba-succeeds", "deblur.py", ("--input", "{data}/rgba.png", "--output", "{out}/x.png", *DEBLUR),
         rc=0, check=_expect_image("x.png", (32, 32, 4), np.uint8)),
    Case("deblur-folder-mixed", "deblur.py", ("--input-dir", "{data}/mixed", "--output-dir", "{out}", *DEBLUR),
         rc=1, check=_mixed_folder),
    Case("deblur-output-under-file", "deblur.py",
         ("--input", "{data}/good.png", "--output", "{data}/plain.txt/x.png", *DEBLUR), ("plain.txt",)),
    # deblur.py: model, config, options
    Case("deblur-model-missing", "deblur.py",
         ("--input", "{data}/good.png", "--output", "{out}/x.png", *DEBLUR, "--model", "{data}/nope.pth"),
         ("nope.pth",)),
    Case("deblur-model-random-bytes", "deblur.py",
         ("--input", "{data}/good.png", "--output", "{out}/x.png", *DEBLUR, "--model", "{data}/random.pth"),
         ("random.pth",)),
    Case("deblur-model-runs-code", "deblur.py",
         ("--input", "{data}/good.png", "--output", "{out}/x.png", *DEBLUR, "--model", "{evil}"),
         ("evil_deblur-model-runs-code.pth",)),
    Case("deblur-published-missing-tensor", "deblur.py",
         ("--input", "{data}/good.png", "--output", "{out}/x.png", *DEBLUR, "--model", "{data}/published_missing.pth"),
         ("published_missing.pth", MISSING_TENSOR)),
    Case("deblur-config-unknown-key", "deblur.py",
         ("--input", "{data}/good.png", "--output", "{out}/x.png", *DEBLUR, "--config", "{data}/deblur_unknown.yml"),
         ("deblur_unknown.yml", "iteratoins")),
    Case("deblur-config-wrong-type", "deblur.py",
         ("--input", "{data}/good.png", "--output", "{out}/x.png", *DEBLUR, "--config", "{data}/deblur_type.yml"),
         ("deblur_type.yml", "image.lr")),
    Case("deblur-iters-0", "deblur.py", ("--input", "{data}/good.png", "--output", "{out}/x.png", *DEBLUR,
                                         "--iters", "0"), ("--iters",)),
    Case("deblur-iters-negative", "deblur.py", ("--input", "{data}/good.png", "--output", "{out}/x.png", *DEBLUR,
                                                "--iters", "-3"), ("--iters",)),
    Case("deblur-device-cuda7", "deblur.py", ("--input", "{data}/good.png", "--output", "{out}/x.png", *DEBLUR,
                                              "--device", "cuda:7"), ("cuda:7",)),
    Case("deblur-device-tpu", "deblur.py", ("--input", "{data}/good.png", "--output", "{out}/x.png", *DEBLUR,
                                            "--device", "tpu"), ("tpu",)),
    # transfer.py
    Case("transfer-missing-target", "transfer.py",
         (*TRANSFER_PAIR, "--target", "{data}/nope.png", "--output", "{out}/t.png", *TRANSFER), ("nope.png",)),
    Case("transfer-truncated-blur", "transfer.py",
         ("--sharp", "{data}/good.png", "--blur", "{data}/truncated.png", "--target", "{data}/good.png",
          "--output", "{out}/t.png", *TRANSFER), ("truncated.png",)),
    Case("transfer-1x1-pair", "transfer.py",
         ("--sharp", "{data}/one.png", "--blur", "{data}/one.png", "--target", "{data}/good.png",
          "--output", "{out}/t.png", *TRANSFER), ("one.png",)),
    Case("transfer-rgb16-target-succeeds", "transfer.py",
         (*TRANSFER_PAIR, "--target", "{data}/rgb16.png", "--output", "{out}/t.png", *TRANSFER),
         rc=0, check=_expect_image("t.png", (32, 32, 3), np.uint16)),
    Case("transfer-rgba-target-succeeds", "transfer.py",
         (*TRANSFER_PAIR, "--target", "{data}/rgba.png", "--output", "{out}/t.png", *TRANSFER),
         rc=0, check=_expect_image("t.png", (32, 32, 4), np.uint8)),
    Case("transfer-model-random-bytes", "transfer.py",
         (*TRANSFER_PAIR, "--target", "{data}/good.png", "--output", "{out}/t.png", *TRANSFER,
          "--model", "{data}/random.pth"), ("random.pth",)),
    Case("transfer-model-runs-code", "transfer.py",
         (*TRANSFER_PAIR, "--target", "{data}/good.png", "--output", "{out}/t.png", *TRANSFER, "--model", "{evil}"),
         ("evil_transfer-model-runs-code.pth",)),
    Case("transfer-config-unknown-key", "transfer.py",
         (*TRANSFER_PAIR, "--target", "{data}/good.png", "--output", "{out}/t.png", *TRANSFER,
          "--set", "tiles=512"), ("tiles",)),
    Case("transfer-output-under-file", "transfer.py",
         (*TRANSFER_PAIR, "--target", "{data}/good.png", "--output", "{data}/plain.txt/t.png", *TRANSFER),
         ("plain.txt",)),
    # train.py
    Case("train-config-missing", "train.py", ("-opt", "{data}/nope.yml", "--device", "cpu"), ("nope.yml",)),
    Case("train-config-unknown-key", "train.py",
         ("-opt", "{data}/train_unknown.yml", "--set", "path.root={out}", "--device", "cpu"),
         ("train_unknown.yml", "train.nitre")),
    Case("train-config-wrong-type", "train.py", (*TRAIN, "--set", "train.niter=many"), ("train.niter",)),
    Case("train-niter-0", "train.py", (*TRAIN, "--set", "train.niter=0"), ("train.niter",)),
    Case("train-device-cuda7", "train.py", (*TRAIN, "--device", "cuda:7"), ("cuda:7",)),
    Case("train-lmdb-keys-differ", "train.py",
         (*TRAIN, "--set", "datasets.train.mode=lmdb", "--set", "datasets.train.dataroot_HQ={data}/sharp_ab.lmdb",
          "--set", "datasets.train.dataroot_LQ={data}/blur_ac.lmdb"), ("sharp_ab.lmdb", "blur_ac.lmdb")),
    Case("train-pretrained-runs-code", "train.py", (*TRAIN, "--set", "path.pretrain_model_G={evil}"),
         ("evil_train-pretrained-runs-code.pth",)),
    Case("train-resume-random-bytes", "train.py", (*TRAIN, "--resume", "{data}/random.pth"), ("random.pth",)),
    Case("train-root-under-file", "train.py", (*TRAIN, "--set", "path.root={data}/plain.txt/exp"), ("plain.txt",)),
    # scripts/create_lmdb.py
    Case("lmdb-truncated-image", LMDB, ("--img_folder", "{data}/one_bad", "--save_path", "{out}/x.lmdb"),
         ("b.png",)),
    Case("lmdb-missing-folder", LMDB, ("--img_folder", "{data}/nope", "--save_path", "{out}/x.lmdb"), ("nope",)),
    Case("lmdb-save-under-file", LMDB, ("--img_folder", "{data}/targets", "--save_path", "{data}/plain.txt/x.lmdb"),
         ("plain.txt",)),
    # scripts/make_synthetic_dataset.py
    Case("synthetic-num-0", SYNTH, ("--deadleaves", "--out", "{out}", "--num", "0", "--size", "32"), ("--num",)),
    Case("synthetic-unknown-key", SYNTH, ("--deadleaves", "--out", "{out}", "--num", "1", "--size", "32",
                                          "--set", "synthetic.nois_sigma=[0,0]"), ("synthetic.nois_sigma",)),
    Case("synthetic-wrong-type", SYNTH, ("--deadleaves", "--out", "{out}", "--num", "1", "--size", "32",
                                         "--set", "synthetic.quantize=maybe"), ("synthetic.quantize",)),
    Case("synthetic-bad-sharp-image", SYNTH, ("--sharp-dir", "{data}/one_bad", "--out", "{out}", "--num", "2",
                                              "--size", "16", "--kernel-size", "3"), ("b.png",)),
    Case("synthetic-out-under-file", SYNTH, ("--deadleaves", "--out", "{data}/plain.txt/synth", "--num", "1",
                                             "--size", "32"), ("plain.txt",)),
    # scripts/convert_published_checkpoint.py
    Case("convert-missing-tensor", CONVERT, ("--input", "{data}/published_missing.pth", "--output", "{out}/c.pth"),
         ("published_missing.pth", MISSING_TENSOR)),
    Case("convert-empty-file", CONVERT, ("--input", "{data}/empty.pth", "--output", "{out}/c.pth"), ("empty.pth",)),
    Case("convert-random-bytes", CONVERT, ("--input", "{data}/random.pth", "--output", "{out}/c.pth"),
         ("random.pth",)),
    Case("convert-runs-code", CONVERT, ("--input", "{evil}", "--output", "{out}/c.pth"),
         ("evil_convert-runs-code.pth",)),
    Case("convert-output-under-file", CONVERT,
         ("--input", "{data}/published.pth", "--output", "{data}/plain.txt/c.pth"), ("plain.txt",)),
    # scripts/evaluate.py
    Case("evaluate-lmdb-keys-differ", EVALUATE, ("--model", "{data}/model.pth", "--data-lmdb", "{data}/sharp_ab.lmdb",
                                                 "{data}/blur_ac.lmdb", "--out", "{out}", "--device", "cpu"),
         ("sharp_ab.lmdb", "blur_ac.lmdb")),
    Case("evaluate-model-missing", EVALUATE, ("--model", "{data}/nope.pth", "--synthetic", "1", "--size", "32",
                                              "--out", "{out}", "--device", "cpu"), ("nope.pth",)),
    Case("evaluate-out-under-file", EVALUATE, ("--model", "{data}/model.pth", "--synthetic", "1", "--size", "32",
                                               "--out", "{data}/plain.txt/r", "--device", "cpu"), ("plain.txt",)),
    # scripts/augment_dataset.py
    Case("augment-lmdb-keys-differ", AUGMENT,
         ("--source-lmdb", "{data}/sharp_ab.lmdb", "{data}/blur_ac.lmdb", "--targets", "{data}/targets",
          "--out", "{out}", "--model", "{data}/model.pth", "--device", "cpu"), ("sharp_ab.lmdb", "blur_ac.lmdb")),
    Case("augment-bad-target-image", AUGMENT,
         ("--source", "{data}/pairs", "--targets", "{data}/one_bad", "--out", "{out}", "--model", "{data}/model.pth",
          "--device", "cpu"), ("b.png",)),
    Case("augment-model-runs-code", AUGMENT,
         ("--source", "{data}/pairs", "--targets", "{data}/targets", "--out", "{out}", "--model", "{evil}",
          "--device", "cpu"), ("evil_augment-model-runs-code.pth",)),
    # no command destroys its input: output == input, however spelled
    Case("deblur-output-is-input", "deblur.py", ("--input", "{own}/photo.png", "--output", "{own}/photo.png", *DEBLUR),
         ("{own}/photo.png", "would overwrite")),
    Case("deblur-output-is-input-dotdot", "deblur.py",
         ("--input", "{own}/photo.png", "--output", "{rel}/photos/../photo.png", *DEBLUR),
         ("{rel}/photos/../photo.png", "{own}/photo.png")),
    Case("deblur-output-is-input-absolute", "deblur.py",
         ("--input", "{rel}/photo.png", "--output", "{own}/photo.png", *DEBLUR),
         ("{own}/photo.png", "{rel}/photo.png")),
    Case("deblur-output-symlink-to-input", "deblur.py",
         ("--input", "{own}/photo.png", "--output", "{own}/link.png", *DEBLUR), ("{own}/link.png", "{own}/photo.png")),
    Case("deblur-input-via-symlink", "deblur.py",
         ("--input", "{own}/link.png", "--output", "{own}/photo.png", *DEBLUR), ("{own}/photo.png", "{own}/link.png")),
    Case("deblur-output-is-input-before-model", "deblur.py",
         ("--input", "{own}/photo.png", "--output", "{own}/photo.png", *DEBLUR, "--model", "{data}/nope.pth"),
         ("{own}/photo.png", "would overwrite")),
    Case("deblur-folder-output-is-input-dir", "deblur.py",
         ("--input-dir", "{own}/photos", "--output-dir", "{own}/photos", *DEBLUR), ("{own}/photos/a.png",)),
    Case("deblur-folder-output-dir-dotdot", "deblur.py",
         ("--input-dir", "{own}/photos", "--output-dir", "{rel}/pairs/../photos", *DEBLUR),
         ("{rel}/pairs/../photos/a.png", "{own}/photos/a.png")),
    Case("deblur-folder-output-dir-symlink", "deblur.py",
         ("--input-dir", "{own}/photos", "--output-dir", "{own}/photos_link", *DEBLUR),
         ("{own}/photos_link/a.png", "{own}/photos/a.png")),
    Case("deblur-folder-save-reblur-in-input-dir", "deblur.py",
         ("--input-dir", "{own}/photos", "--output-dir", "{out}", "--save-reblur", "{own}/photos", *DEBLUR),
         ("{own}/photos/a.png",)),
    Case("deblur-save-kernel-over-input", "deblur.py",
         ("--input", "{own}/photo.png", "--output", "{out}/x.png", "--save-kernel", "{own}/photo.png", *DEBLUR),
         ("{own}/photo.png",)),
    Case("deblur-save-reblur-over-input", "deblur.py",
         ("--input", "{own}/photo.png", "--output", "{out}/x.png", "--save-reblur", "{own}/link.png", *DEBLUR),
         ("{own}/link.png", "{own}/photo.png")),
    Case("deblur-save-psf-over-input", "deblur.py",
         ("--input", "{own}/photo.png", "--output", "{out}/x.png", "--save-psf", "{rel}/photo.png", *DEBLUR),
         ("{rel}/photo.png", "{own}/photo.png")),
    Case("deblur-report-over-model", "deblur.py",
         ("--input", "{own}/photo.png", "--output", "{out}/x.png", *DEBLUR, "--model", "{own}/model.pth",
          "--report", "{rel}/model.pth"), ("{rel}/model.pth", "{own}/model.pth")),
    Case("transfer-output-is-target", "transfer.py",
         (*PAIR, "--target", "{own}/photo.png", "--output", "{own}/photo.png", *TRANSFER), ("{own}/photo.png",)),
    Case("transfer-output-is-target-dotdot", "transfer.py",
         (*PAIR, "--target", "{own}/photo.png", "--output", "{rel}/photos/../photo.png", *TRANSFER),
         ("{rel}/photos/../photo.png", "{own}/photo.png")),
    Case("transfer-output-is-sharp-absolute", "transfer.py",
         ("--sharp", "{rel}/photo.png", "--blur", "{data}/good.png", "--target", "{data}/good.png",
          "--output", "{own}/photo.png", *TRANSFER), ("{own}/photo.png", "{rel}/photo.png")),
    Case("transfer-output-symlink-to-blur", "transfer.py",
         ("--sharp", "{data}/good.png", "--blur", "{own}/photo.png", "--target", "{data}/good.png",
          "--output", "{own}/link.png", *TRANSFER), ("{own}/link.png", "{own}/photo.png")),
    Case("transfer-output-dir-symlink-to-targets", "transfer.py",
         (*PAIR, "--target", "{own}/photos/a.png", "--target", "{own}/photos/b.png",
          "--output-dir", "{own}/photos_link", *TRANSFER), ("{own}/photos_link/a.png", "{own}/photos/a.png")),
    Case("transfer-default-output-is-other-target", "transfer.py",
         (*PAIR, "--target", "{own}/photos/a.png", "--target", "{own}/photos/a_transfer.png", *TRANSFER),
         ("{own}/photos/a_transfer.png",)),
    Case("transfer-output-is-target-before-model", "transfer.py",
         (*PAIR, "--target", "{own}/photo.png", "--output", "{own}/photo.png", *TRANSFER,
          "--model", "{data}/random.pth"), ("{own}/photo.png", "would overwrite")),
    Case("augment-out-is-source", AUGMENT,
         ("--source", "{own}/pairs", "--targets", "{data}/targets", "--out", "{own}/pairs", "--overwrite",
          "--model", "{data}/model.pth", "--device", "cpu"),
         ("{own}/pairs/sharp", "{own}/pairs/sharp/000/00000000.png")),
    Case("augment-targets-inside-out", AUGMENT,
         ("--source", "{data}/pairs", "--targets", "{own}/pairs_link/sharp", "--out", "{rel}/pairs", "--overwrite",
          "--model", "{data}/model.pth", "--device", "cpu"),
         ("{rel}/pairs/sharp", "the input {own}/pairs_link/sharp")),
    Case("augment-out-lmdb-is-source-lmdb", AUGMENT,
         ("--source-lmdb", "{own}/sharp.lmdb", "{own}/blur.lmdb", "--targets", "{data}/targets", "--out", "{own}",
          "--format", "lmdb", "--overwrite", "--model", "{data}/model.pth", "--device", "cpu"),
         ("{own}/sharp.lmdb",)),
    Case("synthetic-out-is-sharp-dir", SYNTH,
         ("--sharp-dir", "{own}/pairs", "--out", "{own}/pairs", "--num", "1", "--size", "16", "--kernel-size", "3",
          "--overwrite"), ("{own}/pairs/sharp", "{own}/pairs/sharp/000/00000000.png")),
    Case("synthetic-out-symlink-to-sharp-dir", SYNTH,
         ("--sharp-dir", "{rel}/pairs", "--out", "{own}/pairs_link", "--num", "1", "--size", "16",
          "--kernel-size", "3", "--overwrite"), ("{own}/pairs_link/sharp", "{rel}/pairs/sharp/000/00000000.png")),
    Case("demo-output-is-truth", DEMO,
         ("--input", "{own}/photos/a.png", "--truth", "{own}/photos/a_deblurred.png", "--out", "{rel}/photos",
          "--model", "{data}/model.pth", "--device", "cpu"),
         ("{rel}/photos/a_deblurred.png", "{own}/photos/a_deblurred.png")),
    Case("transfer-demo-output-is-target", TRANSFER_DEMO,
         (*PAIR, "--target", "{own}/photo.png", "--output", "{own}/link.png", "--model", "{data}/model.pth",
          "--device", "cpu"), ("{own}/link.png", "{own}/photo.png")),
    Case("lmdb-save-inside-img-folder", LMDB, ("--img_folder", "{own}/photos", "--save_path", "{own}/photos/x.lmdb"),
         ("{own}/photos/x.lmdb", "inside the input folder {own}/photos")),
    Case("lmdb-save-inside-img-folder-symlink-dotdot", LMDB,
         ("--img_folder", "{own}/photos_link", "--save_path", "{rel}/pairs/../photos/x.lmdb"),
         ("{rel}/pairs/../photos/x.lmdb", "{own}/photos_link")),
    Case("lmdb-save-is-img-folder-overwrite", LMDB,
         ("--img_folder", "{own}/photos", "--save_path", "{own}/photos_link", "--overwrite"),
         ("{own}/photos_link", "{own}/photos")),
    Case("lmdb-img-folder-inside-save-overwrite", LMDB,
         ("--img_folder", "{own}/pairs/sharp", "--save_path", "{own}/pairs", "--overwrite"),
         ("{own}/pairs:", "{own}/pairs/sharp")),
    Case("lmdb-overwrite-not-an-lmdb", LMDB,
         ("--img_folder", "{data}/targets", "--save_path", "{own}/photos", "--overwrite"),
         ("{own}/photos", "data.mdb")),
    Case("lmdb-exists-without-overwrite", LMDB, ("--img_folder", "{data}/targets", "--save_path", "{own}/sharp.lmdb"),
         ("{own}/sharp.lmdb", "--overwrite")),
    Case("convert-output-is-input", CONVERT, ("--input", "{own}/published.pth", "--output", "{own}/published.pth"),
         ("{own}/published.pth", "would overwrite")),
    Case("convert-output-is-input-dotdot", CONVERT,
         ("--input", "{own}/published.pth", "--output", "{rel}/photos/../published.pth"),
         ("{rel}/photos/../published.pth", "{own}/published.pth")),
    Case("convert-output-symlink-to-input", CONVERT,
         ("--input", "{rel}/published.pth", "--output", "{own}/published_link.pth"),
         ("{own}/published_link.pth", "{rel}/published.pth")),
    Case("evaluate-report-is-model", EVALUATE,
         ("--model", "{own}/evaluate_tiny.png", "--synthetic", "1", "--size", "32", "--out", "{rel}", "--name", "tiny",
          "--device", "cpu"), ("{rel}/evaluate_tiny.png", "{own}/evaluate_tiny.png")),
    Case("evaluate-report-is-model-data-symlink", EVALUATE,
         ("--model", "{own}/evaluate_tiny.png", "--data", "{own}/pairs", "--out", "{own}/photos_link/..",
          "--name", "tiny", "--device", "cpu"), ("{own}/photos_link/../evaluate_tiny.png", "{own}/evaluate_tiny.png")),
    Case("train-config-is-experiment-config", "train.py",
         ("-opt", "{rel}/run/config.yml", "--set", "path.root={own}", "--device", "cpu"),
         ("{own}/run/config.yml", "{rel}/run/config.yml")),
    Case("train-pretrained-in-experiment-models", "train.py",
         ("-opt", "configs/train/ci_tiny.yml", "--set", "path.root={own}", "--set", "name=run",
          "--set", "path.pretrain_model_G={rel}/run/models/latest.pth", "--device", "cpu"),
         ("{rel}/run/models/latest.pth", "{own}/run/models")),
    Case("train-pretrained-in-experiment-models-resume", "train.py",
         ("-opt", "{own}/run/config.yml", "--set", "path.root={rel}/pairs_link/..", "--resume", "auto",
          "--set", "path.pretrain_model_G={own}/run/models/latest.pth", "--device", "cpu"),
         ("{own}/run/models/latest.pth", "{rel}/pairs_link/../run/models")),
]


# -------------------------------------------------------------------------------------- inputs
class _RunsCodeOnLoad:
    """Unpickling this object calls ``open(marker, "w")``: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _write_evil_checkpoint(path: Path, marker: Path, model) -> None:
    """A checkpoint of our format whose meta holds an object that runs code when unpickled."""
    torch.save({"format": "kernel-space/1", "config": model.config,
                "state_dict": model.state_dict(), "meta": {"note": _RunsCodeOnLoad(marker)}}, path)


def _published_state_dict(model) -> dict:
    """Our tiny model's weights under the published KernelWizard tensor names."""
    from models.checkpoint import PUBLISHED_PREFIXES

    ours_to_published = {new: old for old, new in PUBLISHED_PREFIXES.items()}
    out = {}
    for key, value in model.state_dict().items():
        for new, old in ours_to_published.items():
            if key.startswith(new):
                key = old + key[len(new):]
                break
        out[key] = value.clone()
    return out


def _png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def make_own_inputs(folder: Path, model: Path, published: Path) -> None:
    """The inputs of one issue-16 case, in its own folder (cases run concurrently; a case that
    failed to refuse must not spoil another's inputs):

        photo.png  link.png -> photo.png  model.pth  photos/{a,b,a_transfer,a_deblurred}.png
        photos_link -> photos  pairs/{sharp,blur}/000/00000000.png  pairs_link -> pairs
        sharp.lmdb  blur.lmdb  (LMDBs of pairs/sharp and pairs/blur)
        published.pth  published_link.pth -> published.pth  (a published state_dict)
        evaluate_tiny.png  (a copy of model.pth under the name of an evaluate.py report)
        run/config.yml  (configs/train/ci_tiny.yml named "run")  run/models/latest.pth  (a copy of model.pth)
    """
    from data.lmdb_io import create_lmdb

    rng = np.random.default_rng(len(folder.name))

    def rgb8() -> np.ndarray:
        return cv2.GaussianBlur(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), (3, 3), 0)

    _png(folder / "photo.png", rgb8())
    (folder / "link.png").symlink_to("photo.png")
    (folder / "model.pth").write_bytes(model.read_bytes())
    for name in ("a", "b", "a_transfer", "a_deblurred"):
        _png(folder / "photos" / f"{name}.png", rgb8())
    (folder / "photos_link").symlink_to("photos", target_is_directory=True)
    for side in ("sharp", "blur"):
        _png(folder / "pairs" / side / "000" / "00000000.png", rgb8())
        create_lmdb(folder / "pairs" / side, folder / f"{side}.lmdb", progress=False)
    (folder / "pairs_link").symlink_to("pairs", target_is_directory=True)
    (folder / "published.pth").write_bytes(published.read_bytes())
    (folder / "published_link.pth").symlink_to("published.pth")
    (folder / "evaluate_tiny.png").write_bytes(model.read_bytes())
    (folder / "run" / "models").mkdir(parents=True)
    (folder / "run" / "models" / "latest.pth").write_bytes(model.read_bytes())
    config = (REPO / "configs" / "train" / "ci_tiny.yml").read_text()
    assert "\nname: ci_tiny\n" in config
    (folder / "run" / "config.yml").write_text(config.replace("\nname: ci_tiny\n", "\nname: run\n"))


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder``: symlinks by target, files by bytes, folders by name."""
    entries: dict[str, tuple] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            key = str(path.relative_to(folder))
            if path.is_symlink():
                entries[key] = ("link", os.readlink(path))
            elif path.is_file():
                entries[key] = ("file", path.read_bytes())
            else:
                entries[key] = ("dir",)
    return entries


def make_inputs(data: Path) -> None:
    """Write every input file the table refers to into ``data``."""
    from conftest import TINY_MODEL

    from data.lmdb_io import create_lmdb
    from models import KernelSpace

    rng = np.random.default_rng(0)

    def rgb8(h: int = 32, w: int = 32) -> np.ndarray:
        return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (3, 3), 0)

    _png(data / "good.png", rgb8())
    _png(data / "rgb16.png", rng.integers(0, 65536, (32, 32, 3), dtype=np.uint16))
    _png(data / "rgba.png", np.concatenate([rgb8(), rng.integers(1, 256, (32, 32, 1), dtype=np.uint8)], axis=2))
    _png(data / "one.png", rgb8(1, 1))
    png_bytes = (data / "good.png").read_bytes()
    (data / "truncated.png").write_bytes(png_bytes[: len(png_bytes) // 2])
    (data / "empty.png").write_bytes(b"")
    (data / "empty.pth").write_bytes(b"")
    (data / "text.png").write_text("this is a text file, not an image\n")
    (data / "plain.txt").write_text("a regular file: nothing can be created under it\n")
    (data / "random.pth").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    # a folder mixing good and bad images
    mixed = data / "mixed"
    _png(mixed / "a.png", rgb8())
    _png(mixed / "b.png", rgb8())
    for bad in ("empty.png", "text.png", "truncated.png"):
        (mixed / bad).write_bytes((data / bad).read_bytes())
    # a flat folder with one good and one truncated image
    _png(data / "one_bad" / "a.png", rgb8())
    (data / "one_bad" / "b.png").write_bytes((data / "truncated.png").read_bytes())
    _png(data / "targets" / "t.png", rgb8())
    _png(data / "pairs" / "sharp" / "000" / "00000000.png", rgb8())
    _png(data / "pairs" / "blur" / "000" / "00000000.png", rgb8())
    # two LMDBs whose keys differ (a, b vs a, c)
    for name, keys in (("sharp_ab", "ab"), ("blur_ac", "ac")):
        for key in keys:
            _png(data / name / f"{key}.png", rgb8())
        create_lmdb(data / name, data / f"{name}.lmdb", progress=False)
    # models
    torch.manual_seed(0)
    model = KernelSpace.from_config(TINY_MODEL)
    model.save(str(data / "model.pth"))
    published = _published_state_dict(model)
    torch.save(published, data / "published.pth")
    assert MISSING_TENSOR in published
    del published[MISSING_TENSOR]
    torch.save(published, data / "published_missing.pth")
    for case in CASES:
        if any("{evil}" in arg for arg in case.args):
            _write_evil_checkpoint(data / f"evil_{case.id}.pth", data / f"marker_{case.id}", model)
    for case in CASES:
        if any("{own}" in arg or "{rel}" in arg for arg in case.args):
            make_own_inputs(data / "own" / case.id, data / "model.pth", data / "published.pth")
    # the payload is live: loading it without weights_only does run the code
    _write_evil_checkpoint(data / "evil_probe.pth", data / "marker_probe", model)
    torch.load(data / "evil_probe.pth", weights_only=False)
    assert (data / "marker_probe").exists(), "the code-running checkpoint does not run code; the cases prove nothing"
    # configs
    (data / "deblur.yml").write_text(yaml.safe_dump(TINY_DEBLUR))
    (data / "deblur_unknown.yml").write_text(yaml.safe_dump({**TINY_DEBLUR, "iteratoins": 2}))
    (data / "deblur_type.yml").write_text(yaml.safe_dump({**TINY_DEBLUR, "image": {"lr": "fast"}}))
    train_cfg = yaml.safe_load((REPO / "configs" / "train" / "ci_tiny.yml").read_text())
    train_cfg["train"]["nitre"] = 5
    (data / "train_unknown.yml").write_text(yaml.safe_dump(train_cfg))


# -------------------------------------------------------------------------------------- runner
def _values(case: Case, data: Path, out_root: Path) -> dict[str, str]:
    """What the placeholders of a case's ``args`` and ``names`` stand for."""
    own = data / "own" / case.id
    return {"data": str(data), "out": str(out_root / case.id), "evil": str(data / f"evil_{case.id}.pth"),
            "own": str(own), "rel": os.path.relpath(own, REPO)}


def _run(case: Case, data: Path, out_root: Path) -> tuple[subprocess.CompletedProcess, Path]:
    out = out_root / case.id
    values = _values(case, data, out_root)
    argv = [sys.executable, str(REPO / case.script), *(arg.format(**values) for arg in case.args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    return result, out


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory) -> dict:
    """Run every selected case of the table (concurrently) once; ``{id: (result, out)}`` plus "data"."""
    data = tmp_path_factory.mktemp("inputs")
    out_root = tmp_path_factory.mktemp("outputs")
    make_inputs(data)
    owned = {case: snapshot(data / "own" / case) for case in os.listdir(data / "own")}
    selected = [item.callspec.params["case"] for item in request.session.items
                if item.module is request.module and item.originalname == "test_bad_input"]
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {case.id: pool.submit(_run, case, data, out_root) for case in selected}
        results = {key: future.result() for key, future in futures.items()}
    return {"data": data, "owned": owned, **results}


def _files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if not p.is_dir()) if path.exists() else []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, runs: dict) -> None:
    result, out = runs[case.id]
    data = runs["data"]
    values = _values(case, data, out.parent)
    report = f"{case.script} {' '.join(case.args)}\nexit {result.returncode}\nstderr:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, report
    assert result.returncode == case.rc, report
    assert not (data / f"marker_{case.id}").exists(), f"unpickling ran code\n{report}"
    if case.rc == 2:
        lines = [line for line in result.stderr.replace("\r", "\n").splitlines() if line.startswith("error:")]
        assert len(lines) == 1, f"expected one 'error:' line\n{report}"
        for name in (name.format(**values) for name in case.names):
            assert name in lines[0], f"{name!r} not named in the error\n{report}"
        assert _files_under(out) == [], f"files written to the output path: {_files_under(out)}\n{report}"
    if case.id in runs["owned"]:
        own = data / "own" / case.id
        assert snapshot(own) == runs["owned"][case.id], f"the case's inputs under {own} changed\n{report}"
    if case.check is not None:
        case.check(result, data, out)
    leftovers = [p for p in _files_under(out) + _files_under(data) if p.name.endswith(".tmp")]
    assert leftovers == [], f"temporary files left behind: {leftovers}\n{report}"


def test_refuse_overwrite_compares_files_not_strings(tmp_path: Path) -> None:
    """utils.paths directly: hard links and resolved spellings collide; a sibling or sub-folder output,
    or a missing input, does not."""
    from utils.errors import UserError
    from utils.paths import refuse_inside, refuse_overwrite

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(b"a")
    os.link(photos / "a.png", tmp_path / "hard.png")
    with pytest.raises(UserError, match="hard.png.*photos/a.png"):
        refuse_overwrite([tmp_path / "hard.png"], [photos / "a.png"])
    with pytest.raises(UserError, match="the input"):
        refuse_overwrite([tmp_path / "x" / ".." / "photos" / "." / "a.png"], [photos])
    with pytest.raises(UserError, match="folder holding the input"):
        refuse_overwrite([photos], [photos / "a.png"])
    refuse_overwrite([photos / "sharp" / "a.png", tmp_path / "b.png", None], [photos / "a.png", None])
    refuse_overwrite([tmp_path / "missing.png"], [tmp_path / "missing.png"])  # nothing to destroy
    refuse_inside([tmp_path / "x.lmdb"], [photos])
    with pytest.raises(UserError, match="inside the input folder"):
        refuse_inside([photos / "sub" / "x.lmdb"], [photos])


def test_train_guard_allows_resuming_with_the_saved_config(tmp_path: Path) -> None:
    """training.state.refuse_overwriting_inputs directly: -opt <experiment>/config.yml is the run's own
    record when resuming (allowed, it is updated) but refused on a fresh run; a resume state of the
    experiment itself is never refused; pretrained weights in models/ or training_state/ always are."""
    from training.state import ExperimentPaths, refuse_overwriting_inputs
    from utils.errors import UserError

    paths = ExperimentPaths(tmp_path / "exp")
    paths.models.mkdir(parents=True)
    paths.states.mkdir()
    config = paths.root / "config.yml"
    config.write_text("name: exp\n")
    (paths.models / "10.pth").write_bytes(b"weights")
    (paths.states / "10.state").write_bytes(b"state")
    outside = tmp_path / "init.pth"
    outside.write_bytes(b"weights")
    refuse_overwriting_inputs(paths, config, None, resuming=True)
    refuse_overwriting_inputs(paths, tmp_path / "other.yml", outside, resuming=False)
    refuse_overwriting_inputs(paths, None, None, resuming=False)
    with pytest.raises(UserError, match="config.yml: would overwrite the input .*config.yml"):
        refuse_overwriting_inputs(paths, config, None, resuming=False)
    with pytest.raises(UserError, match="train.log: would overwrite"):
        (paths.root / "train.log").write_text("log\n")
        refuse_overwriting_inputs(paths, paths.root / "train.log", None, resuming=True)
    for weights in (paths.models / "10.pth", paths.states / "10.state", paths.models / "not_yet.pth"):
        with pytest.raises(UserError, match=f"{weights}: path.pretrain_model_G lies in "):
            refuse_overwriting_inputs(paths, None, weights, resuming=True)
