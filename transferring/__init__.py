"""Blur transfer and novel blur through the kernel space, as importable functions (transfer.py is
their command line).

* :mod:`transferring.tiling` — F and G on large images in overlapping 128-aligned tiles
  (:func:`apply_code`, :func:`extract_code`).
* :mod:`transferring.blur` — :func:`transfer_blur` (ŷ = F(x̂, G(x, y))) and :func:`synthesize_blur`
  (F(x̂, z), z from a VAE model's prior).
* :mod:`transferring.run` — the same on files: output names, skipping, a pool of processes.
"""

from transferring.blur import load_model, sample_codes, synthesize_blur, transfer_blur
from transferring.run import DEFAULT_CONFIG
from transferring.tiling import BLENDS, apply_code, check_blend, check_tiling, extract_code

__all__ = ["BLENDS", "DEFAULT_CONFIG", "apply_code", "check_blend", "check_tiling", "extract_code", "load_model",
           "sample_codes", "synthesize_blur", "transfer_blur"]
