"""Deblurring algorithms as importable functions (deblur.py is their command line).

Each blind algorithm is ``fn(blurry, kernel_space, *, iterations=..., ...) -> DeblurResult``; the
config's ``algorithm`` picks one and ``deblurring.run.deblur_image`` maps the config to its keywords.

* :mod:`deblurring.alternating` — ``algorithm: alternating`` (the default): coarse-to-fine
  alternation of a sparse (L0) image step and a closed-form kernel step, then the non-blind step.
* :mod:`deblurring.dip` — ``algorithm: dip``, the paper's route: an image DIP and a kernel DIP
  optimised by Adam through the frozen kernel space (``configs/deblur/paper.yml``).
* :mod:`deblurring.direct` — ``algorithm: direct``: free pixels and a free code optimised by Adam
  through the frozen kernel space (``configs/deblur/fast.yml``).
* :mod:`deblurring.through_space` — the loop ``dip`` and ``direct`` share (scale plan, learning-rate
  schedule, objective, warm-up, early stop); it takes the image and kernel parameterisations as objects.
* :mod:`deblurring.nonblind` — hyper-Laplacian non-blind deconvolution by half-quadratic splitting.
* :mod:`deblurring.run` — deblurring by config: a tensor (:func:`deblur_image`), a file, many files
  (a process pool; what deblur.py calls).
* :mod:`deblurring.config` — the deblur config (schema ``configs/defaults/deblur.yml``, checks).
* :mod:`deblurring.result` — :class:`DeblurResult`, what every algorithm returns.
"""

from deblurring.result import DeblurResult

__all__ = ["DeblurResult"]
