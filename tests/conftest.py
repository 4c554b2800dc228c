"""Shared test fixtures: CPU only, few threads, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent

torch.set_num_threads(1)  # the tests' small FFTs run faster on one thread than on two (15 % on the 2-core CI)

TINY_MODEL = {
    "nf": 8,
    "kernel_dim": 64,
    "front_RBs": 1,
    "back_RBs": 1,
    "KernelExtractor": {"n_blocks": 1},
}


@pytest.fixture
def tiny_config() -> dict:
    """A KernelWizard config small enough for fast CPU tests."""
    return {**TINY_MODEL, "KernelExtractor": dict(TINY_MODEL["KernelExtractor"])}


@pytest.fixture
def tiny_model(tiny_config):
    """A randomly initialised tiny KernelSpace (seeded) in eval mode."""
    from models import KernelSpace

    torch.manual_seed(0)
    return KernelSpace.from_config(tiny_config).eval()


def shared_reference_dir() -> Path | None:
    """``../shared/reference`` beside the checkout (or $KSPACE_REFERENCE_DIR), if present."""
    env = os.environ.get("KSPACE_REFERENCE_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "reference")
    for path in candidates:
        if (path / "published_tiny_reference.pt").is_file():
            return path
    return None


@pytest.fixture
def reference_dir() -> Path:
    """The published-architecture conformance files; required in CI, skipped elsewhere if absent."""
    path = shared_reference_dir()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("../shared/reference/published_tiny_reference.pt not found (required in CI)")
        pytest.skip("conformance reference files (../shared/reference) not available")
    return path


@pytest.fixture(scope="module")
def synthetic() -> dict:
    """A 192² dead-leaves image blurred by a 15-px camera-shake kernel (valid convolution), σ = 0.002."""
    from deblur_cases import synthetic_case

    return synthetic_case()
