"""VGG-19 perceptual loss, loaded only from a local weights file (it never downloads anything).

The weights file is a torchvision ``vgg19`` state_dict (``torch.save(vgg19(...).state_dict(), path)``),
or any subset of it holding the ``features.<i>.weight/bias`` tensors of the layers the loss uses.
Give its path in the config; without one the loss cannot be built and says so (a UserError, which
the command-line tools turn into exit status 2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from utils.errors import UserError

# Index of each ReLU output in torchvision's vgg19().features.
VGG19_LAYERS = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15, "relu3_4": 17,
    "relu4_1": 20, "relu4_2": 22, "relu4_3": 24, "relu4_4": 26,
    "relu5_1": 29, "relu5_2": 31, "relu5_3": 33, "relu5_4": 35,
}  # fmt: skip
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _load_features(weights_path: str | os.PathLike | None, last: int) -> nn.Sequential:
    """vgg19().features[: last + 1] with weights from ``weights_path``; UserError if unusable."""
    if weights_path is None or str(weights_path) == "":
        raise UserError(
            "perceptual loss: no VGG-19 weights file configured (set the config key naming a local "
            "torchvision vgg19 state_dict; nothing is downloaded)"
        )
    path = Path(weights_path)
    if not path.is_file():
        raise UserError(f"{path}: VGG-19 weights file not found (expected a local vgg19 state_dict)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input error
        raise UserError(f"{path}: cannot read VGG-19 weights ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise UserError(f"{path}: expected a vgg19 state_dict (dict of tensors), got {type(state).__name__}")
    import torchvision  # here, not at the top: importing it costs every command ~1 s of start-up

    features = torchvision.models.vgg19(weights=None).features[: last + 1]
    wanted = {f"features.{k}": v for k, v in features.state_dict().items()}
    missing = [k for k in wanted if k not in state]
    if missing:
        raise UserError(f"{path}: not a vgg19 state_dict, missing {missing[0]} (and {len(missing) - 1} more)")
    for key, ref in wanted.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise UserError(f"{path}: {key} has shape {tuple(state[key].shape)}, expected {tuple(ref.shape)}")
    features.load_state_dict({k[len("features.") :]: state[k] for k in wanted})
    return features


class VGGPerceptualLoss(nn.Module):
    """Mean over ``layers`` of the MSE between VGG-19 features of two images.

    Inputs: (B, 3, H, W) RGB in [0, 1] (ImageNet normalisation is applied inside). Output: scalar.
    ``weights_path``: local torchvision vgg19 state_dict; ``layers``: names from :data:`VGG19_LAYERS`.
    The network is frozen (no gradients to its weights; gradients flow to the inputs).
    """

    def __init__(
        self,
        weights_path: str | os.PathLike | None,
        layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_4"),
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown or not layers:
            raise UserError(
                f"perceptual loss: unknown VGG-19 layer {unknown or layers!r} "
                f"(known: {', '.join(VGG19_LAYERS)})"
            )
        self.indices = sorted(VGG19_LAYERS[name] for name in layers)
        self.features = _load_features(weights_path, self.indices[-1])
        self.features.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        h = (x - self.mean) / self.std
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.indices:
                out.append(h)
        return out

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) prediction and target in [0, 1] → scalar loss."""
        feats_p, feats_t = self._activations(pred), self._activations(target)
        losses = [F.mse_loss(p, t) for p, t in zip(feats_p, feats_t)]
        return torch.stack(losses).mean()

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        """Keep the VGG network in eval mode whatever the caller asks."""
        super().train(mode)
        self.features.eval()
        return self
