"""Weight initialisation for training a kernel space from scratch.

PyTorch's default initialisation (uniform, gain 1/√3) shrinks a signal at every ReLU layer. In the
kernel space that compounds: G's code is ~1e-3 and a unit change of the code moves F's output by
~1e-5, because the code enters at the bottom of a 5-level U-Net. With so little signal the code
cannot start to matter within a CPU-sized training run. :func:`he_initialise` keeps signals at
unit scale instead (He et al. 2015), with the residual branches scaled down so that stacks of
residual blocks start close to the identity.
"""

from __future__ import annotations

import math

from torch import nn

from models.blocks import ResidualBlock, ResnetBlock

RESIDUAL_SCALE = 0.1
INIT_SCHEMES = ("default", "he")


def he_initialise(model: nn.Module, residual_scale: float = RESIDUAL_SCALE) -> nn.Module:
    """Re-initialise every convolution of ``model`` in place and return it.

    Conv2d: normal with std √(2 / fan_in) (fan_in = in_channels·kh·kw). ConvTranspose2d: the same
    with the taps that reach one output pixel as fan_in (in_channels·(kh/stride)·(kw/stride)).
    Biases zero. The last convolution of every residual branch (:class:`ResidualBlock`,
    :class:`ResnetBlock`) is scaled by ``residual_scale``.
    """
    for module in model.modules():
        if isinstance(module, nn.ConvTranspose2d):
            taps = (module.kernel_size[0] // module.stride[0]) * (module.kernel_size[1] // module.stride[1])
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / (module.in_channels * max(taps, 1))))
        elif isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        else:
            continue
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    for module in model.modules():
        if isinstance(module, ResidualBlock):
            module.conv2.weight.data.mul_(residual_scale)
        elif isinstance(module, ResnetBlock):
            module.conv_block[5].weight.data.mul_(residual_scale)
    return model


def initialise_kernel_space(model: nn.Module, scheme: str) -> nn.Module:
    """Apply the ``train.init`` scheme to a KernelSpace in place: ``default`` (PyTorch's, as in the
    published training) leaves it; ``he`` applies :func:`he_initialise` and also scales F's last
    convolution (its output residual) by ``RESIDUAL_SCALE``, so that F starts close to F(x, k) = x."""
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown initialisation scheme {scheme!r} (expected one of {INIT_SCHEMES})")
    if scheme == "default":
        return model
    he_initialise(model)
    postprocess = getattr(model.generator, "postprocess", None)  # the unet type's F; the psf type has no residual
    if postprocess is not None:
        postprocess[-1].weight.data.mul_(RESIDUAL_SCALE)
    return model
