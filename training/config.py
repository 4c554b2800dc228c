"""The training config: its schema (configs/defaults/train.yml with the dataset and model sections
inserted), ``--set`` overrides, and the value checks that the schema cannot express."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from utils.config import build_config, load_schema, read_yaml
from utils.errors import UserError
from utils.lr_scheduler import check_restart_schedule


def train_schema() -> dict:
    """The schema of a training config: configs/defaults/train.yml with the dataset entries
    (``datasets.<name>``: configs/defaults/dataset.yml) and the model section (``KernelWizard``:
    configs/defaults/model.yml) inserted."""
    schema = load_schema("train")
    schema["datasets"] = {"*": load_schema("dataset")}
    schema["KernelWizard"] = load_schema("model")
    return schema


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> dict:
    """Read a training YAML, apply ``--set`` overrides and check every key and value.

    Returns the complete nested config dict. Raises :class:`UserError` naming a bad key.
    """
    cfg = build_config(train_schema(), read_yaml(path), overrides, source=str(path))
    check_train_config(cfg, str(path))
    return cfg


def check_train_config(cfg: dict, source: str = "config") -> None:
    """Value checks beyond the schema's types and allowed values; raises :class:`UserError` naming the key."""
    name = cfg["name"]
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise UserError(f"{source}: config key 'name' must be a plain folder name, got {name!r}")
    if "train" not in cfg["datasets"]:
        raise UserError(f"{source}: config key 'datasets.train' is required")
    t = cfg["train"]
    check_restart_schedule(t["T_period"], t["restarts"], t["restart_weights"])
    positive = {"train.niter": t["niter"], "train.max_nonfinite": t["max_nonfinite"],
                "logger.print_freq": cfg["logger"]["print_freq"]}
    for key, value in positive.items():
        if value < 1:
            raise UserError(f"{source}: config key '{key}' must be >= 1, got {value}")
    non_negative = {"train.val_freq": t["val_freq"], "train.num_threads": t["num_threads"],
                    "logger.save_checkpoint_freq": cfg["logger"]["save_checkpoint_freq"],
                    "logger.keep_last": cfg["logger"]["keep_last"],
                    "logger.image_freq": cfg["logger"]["image_freq"],
                    "train.kl_weight": t["kl_weight"], "train.lr_G": t["lr_G"],
                    "train.kernel_weight": t["kernel_weight"], "train.kernel_batch": t["kernel_batch"]}
    for key, value in non_negative.items():
        if value < 0:
            raise UserError(f"{source}: config key '{key}' must be >= 0, got {value}")
    if not 0.0 <= t["kernel_teacher"] <= 1.0:
        raise UserError(f"{source}: config key 'train.kernel_teacher' must be in [0, 1], got {t['kernel_teacher']}")
    if not 0.0 <= t["mean_code_decay"] < 1.0:
        raise UserError(
            f"{source}: config key 'train.mean_code_decay' must be in [0, 1), got {t['mean_code_decay']}"
        )
    mode = cfg["datasets"]["train"]["mode"]
    for key in ("kernel_weight", "kernel_teacher"):
        if t[key] > 0 and mode != "synthetic":
            raise UserError(
                f"{source}: config key 'train.{key}' needs the true kernels of synthetic training data "
                f"(datasets.train.mode: synthetic), got mode {mode!r}"
            )
    if t["kernel_batch"] > 0 and (cfg["KernelWizard"]["generator"] != "psf" or mode != "synthetic"
                                  or t["kernel_weight"] <= 0):
        raise UserError(f"{source}: config key 'train.kernel_batch' needs KernelWizard.generator: psf, "
                        "synthetic training data (its kernel settings) and train.kernel_weight > 0 (its loss weight)")
