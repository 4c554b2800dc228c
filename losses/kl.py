"""The KL term of the VAE variant of the kernel extractor."""

from __future__ import annotations

import torch


def kl_divergence(
    mean: torch.Tensor, sigma: torch.Tensor, min_sigma: float = 1e-6, reduction: str = "mean"
) -> torch.Tensor:
    """KL(N(μ, σ²) || N(0, 1)) per element, averaged (``reduction="mean"``) or summed (``"sum"``)
    over elements: ``0.5 · mean(μ² + σ² − log σ² − 1)`` or ``0.5 · sum(...)``.

    ``mean`` and ``sigma``: tensors of one shape, e.g. G's (B, kernel_dim, gh, gw) halves.
    ``sigma`` is the **standard deviation** of the code distribution (a code is
    ``mean + sigma · N(0, 1)``), not a variance or a log-variance. It may be a raw network output
    of either sign: only σ² enters, and inside the logarithm σ² is clamped to at least
    ``min_sigma²`` so that σ → 0 gives a large but finite value. Returns a scalar.
    """
    if mean.shape != sigma.shape:
        raise ValueError(f"kl_divergence: mean {tuple(mean.shape)} and sigma {tuple(sigma.shape)} differ")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"kl_divergence: reduction must be 'mean' or 'sum', got {reduction!r}")
    var = sigma * sigma
    log_var = torch.log(var.clamp_min(min_sigma * min_sigma))
    per_element = 0.5 * (mean * mean + var - log_var - 1.0)
    return per_element.sum() if reduction == "sum" else per_element.mean()
