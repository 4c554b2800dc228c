"""Data: image I/O, blur-kernel generator, sharp-image sources, synthetic and paired datasets.

``build_dataset(opt, seed, phase)`` turns one entry of a training config's ``datasets`` section
(schema: ``configs/defaults/dataset.yml``) into a torch Dataset of dict samples.
"""

from data.build import build_dataset

__all__ = ["build_dataset"]
