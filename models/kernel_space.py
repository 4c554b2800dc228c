"""KernelSpace: the encoded blur-kernel space, G and F together with their shared PreprocessBlock.

Images are float tensors (B, 3, H, W) in [0, 1] of any size: they are padded (reflect, bottom and
right) to a multiple of 128 inside and the outputs are cropped back. The code map has
``kernel_dim × ceil(H/128) × ceil(W/128)`` cells.

Code resampling rule: a code extracted at one size is applied to an image of another size by
resizing the code map to the target's grid with bilinear interpolation (antialiased when
shrinking, ``align_corners=False``). A 1×1 code (a single, spatially uniform blur) is therefore
replicated over the target's grid, and a spatially varying code is stretched over it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import PreprocessBlock, safe_reflect_pad
from models.blur_generator import BlurGenerator
from models.checkpoint import (
    CheckpointContents,
    load_state,
    read_kernel_space_file,
    read_published_file,
    save_checkpoint,
)
from models.kernel_extractor import KernelExtractor
from models.psf_extractor import PSFKernelExtractor, refine_code
from models.psf_generator import PSFBlurGenerator
from models.psf_ops import CELL
from utils.config import build_config, load_schema
from utils.errors import UserError

GENERATOR_TYPES = ("unet", "psf")


def code_grid_size(height: int, width: int) -> tuple[int, int]:
    """Size (gh, gw) of the code map of an H×W image: (ceil(H/128), ceil(W/128))."""
    return math.ceil(height / CELL), math.ceil(width / CELL)


def resample_code(code: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a code map (B, C, h, w) to (B, C, *size) by the module's code resampling rule."""
    if tuple(code.shape[-2:]) == tuple(size):
        return code
    shrink = size[0] < code.shape[-2] or size[1] < code.shape[-1]
    return F.interpolate(code, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def pad_to_multiple(x: torch.Tensor, multiple: int = CELL) -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom/right to multiples of ``multiple``.

    Reflection where the image is large enough, otherwise edge replication (tiny images).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return x if ph == 0 and pw == 0 else safe_reflect_pad(x, (0, pw, 0, ph))


def model_config(cfg: Mapping[str, Any] | None = None, source: str = "model config") -> dict:
    """Complete and check a KernelWizard-style model config against ``configs/defaults/model.yml``.

    Unknown keys, wrong types and unsupported values raise :class:`UserError` naming the key.
    """
    full = build_config(load_schema("model"), cfg or {}, source=source)
    if full["generator"] not in GENERATOR_TYPES:
        raise UserError(f"{source}: 'generator' must be one of {', '.join(GENERATOR_TYPES)}, "
                        f"got {full['generator']!r}")
    psf = full["PSF"]
    if psf["size"] < 3 or psf["size"] % 2 == 0:
        raise UserError(f"{source}: 'PSF.size' must be an odd integer >= 3, got {psf['size']}")
    for key in ("width", "depth"):
        if psf[key] < 1:
            raise UserError(f"{source}: 'PSF.{key}' must be a positive integer, got {psf[key]}")
    if psf["refine_steps"] < 0 or psf["refine_lr"] <= 0:
        raise UserError(f"{source}: 'PSF.refine_steps' must be >= 0 and 'PSF.refine_lr' > 0")
    if psf["reg"] <= 0:
        raise UserError(f"{source}: 'PSF.reg' must be > 0, got {psf['reg']}")
    checks = {
        "input_nc": (full["input_nc"] == 3, "3"),
        "N_frames": (full["N_frames"] == 1, "1"),
        "KernelExtractor.norm": (full["KernelExtractor"]["norm"] == "none", "'none'"),
        "KernelExtractor.use_sharp": (full["KernelExtractor"]["use_sharp"] is True, "true"),
        "KernelExtractor.padding_type": (full["KernelExtractor"]["padding_type"] == "reflect", "'reflect'"),
        "KernelExtractor.use_dropout": (full["KernelExtractor"]["use_dropout"] is False, "false"),
        "Adapter.norm": (full["Adapter"]["norm"] == "none", "'none'"),
        "Adapter.use_dropout": (full["Adapter"]["use_dropout"] is False, "false"),
    }
    for key, (ok, expected) in checks.items():
        if not ok:
            raise UserError(f"{source}: '{key}' must be {expected} (the only supported setting)")
    for key in ("nf", "kernel_dim"):
        if full[key] < 1:
            raise UserError(f"{source}: '{key}' must be a positive integer, got {full[key]}")
    for key in ("front_RBs", "back_RBs"):
        if full[key] < 0:
            raise UserError(f"{source}: '{key}' must be >= 0, got {full[key]}")
    if not 0.0 <= full["decoder_slope"] < 1.0:
        raise UserError(f"{source}: 'decoder_slope' must be in [0, 1), got {full['decoder_slope']}")
    if full["KernelExtractor"]["n_blocks"] < 0:
        raise UserError(f"{source}: 'KernelExtractor.n_blocks' must be >= 0")
    return full


class KernelSpace(nn.Module):
    """The kernel space: G and F behind one API, for both blur-generator types.

    ``config["generator"]`` chooses the type:

    * ``unet`` (the published KernelWizard): ``preprocess`` (the PreprocessBlock shared by G and F),
      ``extractor`` (G, :class:`KernelExtractor`), ``generator`` (F's U-Net and PostprocessBlock,
      :class:`BlurGenerator`). Images are padded (reflect) to a multiple of 128 inside.
    * ``psf``: ``extractor`` (G, :class:`PSFKernelExtractor`: closed-form kernel + learned encoder),
      ``generator`` (F, :class:`PSFBlurGenerator`: learned PSF decoder + FFT blur); ``preprocess``
      is None and images are used at their own size.

    ``config`` is the complete model config; ``meta`` holds facts from training (e.g. ``mean_code``).
    """

    def __init__(self, config: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.config = model_config(config)
        c = self.config
        self.generator_type: str = c["generator"]
        self.kernel_dim: int = c["kernel_dim"]
        self.use_vae: bool = c["use_vae"]
        self.extractor: nn.Module
        self.generator: nn.Module
        if self.generator_type == "psf":
            p = c["PSF"]
            self.preprocess: PreprocessBlock | None = None
            self.extractor = PSFKernelExtractor(c["kernel_dim"], p["size"], p["width"], p["depth"],
                                                c["use_vae"], p["reg"])
            self.generator = PSFBlurGenerator(c["kernel_dim"], p["size"], p["width"], p["depth"])
        else:
            self.preprocess = PreprocessBlock(c["input_nc"], c["nf"], c["front_RBs"])
            self.extractor = KernelExtractor(c["nf"], c["kernel_dim"], c["KernelExtractor"]["n_blocks"],
                                             c["use_vae"])
            self.generator = BlurGenerator(c["nf"], c["kernel_dim"], c["back_RBs"], c["input_nc"],
                                           c["decoder_slope"])
        self.meta: dict[str, Any] = dict(meta or {})

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None) -> KernelSpace:
        """Build a randomly initialised model from a (possibly partial) KernelWizard config."""
        return cls(config)

    @property
    def psf_size(self) -> int | None:
        """Side of the PSFs the ``psf`` type decodes (None for ``unet``, whose PSFs are probed)."""
        return self.config["PSF"]["size"] if self.generator_type == "psf" else None

    # -- the two maps -------------------------------------------------------------------------
    def encode(
        self, sharp: torch.Tensor, blur: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """G(x, y): sharp and blurry (B, 3, H, W) → code (B, kernel_dim, ceil(H/128), ceil(W/128)).

        With a VAE model the result is a tuple (mean, sigma) of that shape; a code is
        ``mean + sigma · N(0, 1)``.
        """
        return self.encode_and_apply(sharp, blur, None)[1]

    def extract_code(self, sharp: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
        """The deterministic code of a pair: G(x, y), or its mean for a VAE model."""
        code = self.encode(sharp, blur)
        return code[0] if isinstance(code, tuple) else code

    def apply(self, sharp: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """F(x̂, k): sharp (B, 3, H, W) and a code → blurry (B, 3, H, W).

        A code whose grid differs from ``code_grid_size(H, W)`` is resampled (:func:`resample_code`);
        a code of batch 1 is shared by the whole batch.
        """
        h, w = sharp.shape[-2:]
        code = resample_code(code, code_grid_size(h, w))
        if code.shape[0] == 1 and sharp.shape[0] > 1:
            code = code.expand(sharp.shape[0], -1, -1, -1)
        if self.preprocess is None:
            return self.generator(sharp, code)
        padded = pad_to_multiple(sharp)
        return self.generator(padded, self.preprocess(padded), code)[..., :h, :w]

    def encode_and_apply(
        self,
        sharp: torch.Tensor,
        blur: torch.Tensor,
        choose_code: Callable[[Any], torch.Tensor] | None,
    ) -> tuple[torch.Tensor | None, Any]:
        """G and F in one pass: ``(F(x, choose_code(G(x, y))), G(x, y))``.

        ``choose_code`` turns G's output (a code, or (mean, sigma) for a VAE) into F's code, e.g.
        by sampling; None skips F and returns ``(None, G(x, y))``. The unet type runs the shared
        PreprocessBlock once on the sharp image for both maps (as the published KernelWizard.forward).
        """
        if sharp.shape != blur.shape:
            raise ValueError(f"sharp {tuple(sharp.shape)} and blur {tuple(blur.shape)} must have one shape")
        if self.preprocess is None:
            encoded = self.extractor(sharp, blur) if self.training else self._encode_psf(
                self.extractor.estimate(sharp, blur))
            return (None if choose_code is None else self.generator(sharp, choose_code(encoded))), encoded
        h, w = sharp.shape[-2:]
        padded = pad_to_multiple(torch.cat([sharp, blur], dim=0))
        sharp_feat, blur_feat = self.preprocess(padded).chunk(2, dim=0)
        encoded = self.extractor(sharp_feat, blur_feat)
        if choose_code is None:
            return None, encoded
        pred = self.generator(padded[: sharp.shape[0]], sharp_feat, choose_code(encoded))
        return pred[..., :h, :w], encoded

    def forward(self, sharp: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
        """F(x, G(x, y)) with the deterministic code: the kernel-space re-blur of a pair."""
        return self.apply(sharp, self.extract_code(sharp, blur))

    # -- PSFs ---------------------------------------------------------------------------------
    def psf_of_code(self, code: torch.Tensor) -> torch.Tensor:
        """The PSFs of a code's cells, (B, kernel_dim, gh, gw) → (B, gh, gw, S, S), each summing to 1.

        The ``psf`` type's decoder output itself; the ``unet`` type has no explicit PSF and reads it
        off F's response to impulses (:func:`models.psf_probe.probe_psf`, gray, S = 41).
        """
        if self.generator_type == "psf":
            return self.generator.decoder(code)
        from models.psf_probe import probe_psf

        return torch.stack([torch.from_numpy(probe_psf(self, c[None]).mean(-1)) for c in code]).to(code.device)

    def code_of_psf(self, psf: torch.Tensor) -> torch.Tensor:
        """The code whose cells decode to (approximately) the given PSFs: (B, gh, gw, S, S) →
        (B, kernel_dim, gh, gw) (the mean for a VAE model). ``psf`` type only: its kernel encoder, then
        ``PSF.refine_steps`` steps of :func:`~models.psf_extractor.refine_code`."""
        if self.generator_type != "psf":
            raise ValueError("code_of_psf needs a kernel space of the psf generator type")
        code = self._encode_psf(psf)
        return code[0] if isinstance(code, tuple) else code

    def _encode_psf(self, psf: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """psf type: the kernel encoder's code of ``psf`` (mean, sigma for a VAE), its (mean) code
        refined towards decoding to ``psf`` (``PSF.refine_steps``)."""
        p = self.config["PSF"]
        encoded = self.extractor.encoder(psf)
        mean = encoded[0] if isinstance(encoded, tuple) else encoded
        mean = refine_code(self.generator.decoder, mean, psf, p["refine_steps"], p["refine_lr"])
        return (mean, encoded[1]) if isinstance(encoded, tuple) else mean

    # -- files --------------------------------------------------------------------------------
    def save(self, path: str, meta: Mapping[str, Any] | None = None, half: bool = False) -> None:
        """Write our checkpoint format atomically (see :mod:`models.checkpoint`);
        ``half`` stores float16 weights (half the size, loaded back as float32)."""
        save_checkpoint(self, path, meta, half)

    @classmethod
    def from_contents(cls, contents: CheckpointContents) -> KernelSpace:
        """The model a checkpoint describes (:func:`models.checkpoint.read_kernel_space_file`), on the CPU."""
        model = cls(contents.config, meta=contents.meta)
        load_state(model, contents)
        return model

    @classmethod
    def load(cls, path: str, device: str | torch.device = "cpu") -> KernelSpace:
        """Load our checkpoint or a published KernelWizard state_dict; the model is in eval mode."""
        return cls.from_contents(read_kernel_space_file(path)).to(device).eval()


def convert_published_checkpoint(src: str, dst: str) -> KernelSpace:
    """Read a published KernelWizard state_dict at ``src``, write it in our checkpoint format at ``dst``
    → the model."""
    model = KernelSpace.from_contents(read_published_file(src))
    model.save(str(dst))
    return model
