"""Networks: the kernel space (G, F and their blocks), DIP networks, checkpoint I/O."""

from models.blocks import PostprocessBlock, PreprocessBlock, ResidualBlock, ResnetBlock
from models.blur_generator import BlurGenerator
from models.kernel_extractor import KernelExtractor
from models.kernel_space import KernelSpace, code_grid_size, model_config, pad_to_multiple, resample_code

__all__ = [
    "BlurGenerator",
    "KernelExtractor",
    "KernelSpace",
    "PostprocessBlock",
    "PreprocessBlock",
    "ResidualBlock",
    "ResnetBlock",
    "code_grid_size",
    "model_config",
    "pad_to_multiple",
    "resample_code",
]
