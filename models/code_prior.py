"""A learned prior over kernel codes: a Gaussian mixture fitted to the codes of camera-shake kernels.

The VAE of the shipped model is trained with a small KL weight, so its codes sit far from N(0, I)
and N(0, I) codes decode to isotropic speckled blobs (measured in ``pretrained/README.md``). A prior
that fits is learned after training instead: camera-shake kernels from a physical trajectory model
(:func:`data.kernels.trajectory_kernel`) are encoded into the kernel space
(:meth:`~models.kernel_space.KernelSpace.code_of_psf`), and a mixture of diagonal Gaussians is
fitted to those codes by EM (:func:`fit_gaussian_mixture`). Drawing from it
(:meth:`GaussianMixturePrior.sample`) gives codes where the model's codes of real blur are.
``scripts/fit_code_prior.py`` fits one and stores it in a checkpoint's ``meta["code_prior"]``
(:meth:`GaussianMixturePrior.to_meta`, plain tensors, loadable with ``weights_only=True``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

META_KEY = "code_prior"


@dataclass(frozen=True)
class GaussianMixturePrior:
    """A mixture of K diagonal Gaussians over D-dimensional codes: ``weights`` (K,) summing to 1,
    ``means`` (K, D), ``variances`` (K, D) > 0 (float64 tensors on the CPU)."""

    weights: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor

    def __post_init__(self) -> None:
        k, d = self.means.shape if self.means.dim() == 2 else (0, 0)
        if k == 0 or self.weights.shape != (k,) or self.variances.shape != (k, d):
            raise ValueError(f"a code prior needs weights (K,), means (K, D) and variances (K, D); got "
                             f"{tuple(self.weights.shape)}, {tuple(self.means.shape)}, {tuple(self.variances.shape)}")
        if not bool((self.variances > 0).all()) or not bool((self.weights >= 0).all()):
            raise ValueError("a code prior needs positive variances and non-negative weights")

    @property
    def dim(self) -> int:
        """D, the code dimension (the model's kernel_dim)."""
        return int(self.means.shape[1])

    def log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """log p(code) of codes (N, D) → (N,) float64."""
        return torch.logsumexp(_component_log_probs(codes.double(), self), dim=1)

    def _components(self, count: int, generator: torch.Generator) -> torch.Tensor:
        return torch.multinomial(self.weights, count, replacement=True, generator=generator)

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` codes (count, D) float32: a component drawn by its weight, then its Gaussian."""
        generator = generator or torch.Generator().manual_seed(0)
        chosen = self._components(count, generator)
        noise = torch.randn((count, self.dim), generator=generator, dtype=torch.float64)
        return (self.means[chosen] + self.variances[chosen].sqrt() * noise).float()

    def sample_field(self, count: int, grid: tuple[int, int], generator: torch.Generator | None = None,
                     turn: float = math.pi / 2) -> torch.Tensor:
        """``count`` code maps (count, D, gh, gw) float32 whose blur changes smoothly across the frame.

        Each map has one component and two of its standard normal draws e1, e2; the cell at frame
        position u ∈ [0, 1] along a random direction gets mean + σ ⊙ (cos θ · e1 + sin θ · e2), with
        θ = u × a random angle up to ``turn``. Every cell is a draw of the prior (cos² + sin² = 1) and
        neighbouring cells are alike, as under one shaking camera; ``turn`` 0 gives a uniform map.
        """
        generator = generator or torch.Generator().manual_seed(0)
        gh, gw = grid
        chosen = self._components(count, generator)
        draws = torch.randn((count, 2, self.dim), generator=generator, dtype=torch.float64)
        direction = torch.rand(count, generator=generator, dtype=torch.float64) * 2 * math.pi
        angle = torch.rand(count, generator=generator, dtype=torch.float64) * turn
        rows = torch.linspace(-0.5, 0.5, gh, dtype=torch.float64) if gh > 1 else torch.zeros(1, dtype=torch.float64)
        cols = torch.linspace(-0.5, 0.5, gw, dtype=torch.float64) if gw > 1 else torch.zeros(1, dtype=torch.float64)
        along = (direction.sin()[:, None, None] * rows[None, :, None]
                 + direction.cos()[:, None, None] * cols[None, None, :])  # (count, gh, gw) in [-0.71, 0.71]
        theta = (along / math.sqrt(0.5) * 0.5 + 0.5) * angle[:, None, None]
        noise = (theta.cos()[:, None] * draws[:, 0, :, None, None] + theta.sin()[:, None] * draws[:, 1, :, None, None])
        field = self.means[chosen][..., None, None] + self.variances[chosen].sqrt()[..., None, None] * noise
        return field.float()

    def to_meta(self) -> dict[str, torch.Tensor]:
        """The prior as a checkpoint's ``meta["code_prior"]``: float32 tensors (weights, means, variances)."""
        return {"weights": self.weights.float(), "means": self.means.float(), "variances": self.variances.float()}

    @classmethod
    def from_meta(cls, meta: Mapping[str, object], kernel_dim: int | None = None) -> GaussianMixturePrior:
        """The prior stored by :meth:`to_meta` → a GaussianMixturePrior; ValueError when a tensor is
        missing or its shape does not fit (or its D is not ``kernel_dim``)."""
        try:
            parts = {name: torch.as_tensor(meta[name]).double() for name in ("weights", "means", "variances")}
        except (KeyError, TypeError) as exc:
            raise ValueError(f"meta['{META_KEY}'] must hold weights, means and variances tensors ({exc})") from exc
        prior = cls(parts["weights"] / parts["weights"].sum(), parts["means"], parts["variances"])
        if kernel_dim is not None and prior.dim != kernel_dim:
            raise ValueError(f"meta['{META_KEY}'] has {prior.dim}-dimensional codes, the model {kernel_dim}")
        return prior


def _component_log_probs(codes: torch.Tensor, prior: GaussianMixturePrior) -> torch.Tensor:
    """log(w_k N(code; μ_k, diag σ²_k)) of codes (N, D) → (N, K), by matrix products (no (N, K, D) array)."""
    inverse = 1.0 / prior.variances
    distance = (codes ** 2) @ inverse.T - 2.0 * codes @ (prior.means * inverse).T + (prior.means ** 2 * inverse).sum(1)
    norm = prior.variances.log().sum(1) + prior.dim * math.log(2 * math.pi)
    return -0.5 * (distance + norm) + prior.weights.clamp_min(1e-300).log()


def fit_gaussian_mixture(codes: torch.Tensor, components: int, iterations: int = 100, seed: int = 0,
                         variance_floor: float = 1e-3) -> GaussianMixturePrior:
    """EM for a mixture of ``components`` diagonal Gaussians on codes (N, D) → GaussianMixturePrior.

    Starts from ``components`` codes drawn at random (``seed``) with the data's variance; every
    variance is kept above ``variance_floor`` × the data's mean variance (no component collapses on
    one code). ValueError when there are fewer codes than components.
    """
    x = codes.detach().double().cpu()
    if x.dim() != 2 or x.shape[0] < components or components < 1:
        raise ValueError(f"fitting {components} components needs at least as many codes (N, D), got {tuple(x.shape)}")
    generator = torch.Generator().manual_seed(int(seed))
    floor = variance_floor * float(x.var(0).mean())
    prior = GaussianMixturePrior(torch.full((components,), 1.0 / components, dtype=torch.float64),
                                 x[torch.randperm(x.shape[0], generator=generator)[:components]].clone(),
                                 x.var(0).clamp_min(floor).expand(components, -1).clone())
    for _ in range(iterations):
        resp = torch.softmax(_component_log_probs(x, prior), dim=1)  # (N, K)
        mass = resp.sum(0).clamp_min(1e-12)
        means = (resp.T @ x) / mass[:, None]
        variances = ((resp.T @ x ** 2) / mass[:, None] - means ** 2).clamp_min(floor)
        prior = GaussianMixturePrior(mass / mass.sum(), means, variances)
    return prior
