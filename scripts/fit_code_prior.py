#!/usr/bin/env python
"""Fit a learned prior over a psf-type model's kernel codes and store it in the checkpoint.

Camera-shake kernels from the physical trajectory model (``data.kernels.trajectory_kernel``) are
encoded into the model's kernel space (its kernel encoder, then the code refinement of
``KernelSpace.code_of_psf``) and a mixture of diagonal Gaussians is fitted to those codes
(``models.code_prior``). The result goes into ``meta["code_prior"]`` of the written checkpoint, with
the recipe and the time it took in ``meta["code_prior_recipe"]``; the weights are not touched, so
re-blur and transfer stay exactly as they were. ``transfer.py --sample`` then draws from it, and
``scripts/evaluate.py --prior`` measures it. The recipe is ``configs/defaults/prior.yml``.

Example (the shipped model; its float16 weights are kept):
    python scripts/fit_code_prior.py --model pretrained/default_psf.pth --output pretrained/default_psf.pth --half
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch
from tqdm import tqdm

from data.kernels import trajectory_psfs
from models import KernelSpace
from models.code_prior import META_KEY, GaussianMixturePrior, fit_gaussian_mixture
from utils.config import load_config
from utils.errors import UserError, run_cli
from utils.kernel_stats import ONE_STREAK, connected_share
from utils.paths import model_path


def fit_code_prior(model: KernelSpace, recipe: dict[str, Any],
                   progress: bool = True) -> tuple[GaussianMixturePrior, int]:
    """The :class:`GaussianMixturePrior` of ``model`` (psf type) for a ``configs/defaults/prior.yml``
    recipe, and how many kernels it was fitted to: codes (kernels, kernel_dim) of trajectory kernels
    (with ``represented_only``, those that decode to one streak), then EM."""
    if model.generator_type != "psf":
        raise UserError("fitting a code prior needs a model of the psf generator type (it encodes PSFs)")
    size, frame = recipe["kernel_size"], model.psf_size
    if size % 2 == 0 or not 3 <= size <= frame:
        raise UserError(f"kernel_size {size}: expected an odd side from 3 to the model's PSF.size {frame}")
    low, high = recipe["intensity"]
    if not 0 < low <= high <= 1:
        raise UserError(f"intensity {recipe['intensity']}: expected [low, high] with 0 < low <= high <= 1")
    if recipe["kernels"] < recipe["components"] or recipe["components"] < 1 or recipe["batch"] < 1:
        raise UserError(f"kernels ({recipe['kernels']}) must be at least components ({recipe['components']}) >= 1, "
                        f"batch ({recipe['batch']}) >= 1")
    psfs = torch.from_numpy(trajectory_psfs(recipe["kernels"], size, frame, (low, high), recipe["seed"]))
    codes, represented = encode_kernels(model, psfs, recipe["batch"], progress)
    if recipe["represented_only"]:
        codes = codes[represented]
    if len(codes) < recipe["components"]:
        raise UserError(f"only {len(codes)} of {recipe['kernels']} kernels decode to one connected streak "
                        f"(represented_only), fewer than components ({recipe['components']}): draw more kernels "
                        "or set represented_only=false")
    prior = fit_gaussian_mixture(codes, recipe["components"], recipe["iterations"], recipe["seed"],
                                 recipe["variance_floor"])
    return prior, len(codes)


def encode_kernels(model: KernelSpace, psfs: torch.Tensor, batch: int = 512,
                   progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes of PSFs (N, S, S) in ``model``'s kernel space → (codes (N, kernel_dim), represented (N,) bool).

    ``represented``: the code decodes to one connected streak, as every trajectory kernel is
    (:func:`utils.kernel_stats.connected_share` ≥ ``ONE_STREAK``); False where the decoder renders the kernel
    as specks or a broken loop, i.e. where the code is not a faithful image of the kernel."""
    device = next(model.parameters()).device
    codes, represented = [], []
    with torch.no_grad():
        for start in tqdm(range(0, len(psfs), batch), desc="encoding kernels", unit="batch", disable=not progress):
            code = model.code_of_psf(psfs[start:start + batch, None, None].to(device))
            decoded = model.psf_of_code(code)[:, 0, 0].double().cpu()
            codes.append(code[:, :, 0, 0].cpu())
            represented.extend(connected_share(k) >= ONE_STREAK for k in decoded)
    return torch.cat(codes), torch.tensor(represented, dtype=torch.bool)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, fit the prior, write the checkpoint with it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pretrained/default_psf.pth", help="psf-type checkpoint to fit a prior to")
    parser.add_argument("--output", required=True, help="checkpoint to write (may be --model itself: atomic)")
    parser.add_argument("--half", action="store_true", help="store float16 weights (as the shipped model)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of configs/defaults/prior.yml")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu; the MLPs are small)")
    args = parser.parse_args(argv)
    recipe = load_config(None, "prior", args.set)
    model = KernelSpace.load(str(model_path(args.model)), args.device).eval()
    start = time.time()
    prior, fitted = fit_code_prior(model, recipe)
    seconds = time.time() - start
    meta = {META_KEY: prior.to_meta(),
            "code_prior_recipe": {**recipe, "fitted_kernels": fitted, "seconds": round(seconds, 1)}}
    model.cpu().save(args.output, meta=meta, half=args.half)
    print(f"fitted {recipe['components']} components to the codes of {fitted} of {recipe['kernels']} kernels "
          f"in {seconds:.0f} s; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
