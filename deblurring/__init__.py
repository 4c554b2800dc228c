"""Deblurring algorithms as importable functions (deblur.py is their command line).

* :mod:`deblurring.nonblind` — hyper-Laplacian non-blind deconvolution by half-quadratic splitting.
* :mod:`deblurring.alternating` — fast blind deblurring: coarse-to-fine alternation of a sparse
  (L0) image step and a closed-form kernel step, then the non-blind step.
* :mod:`deblurring.dip` — the paper's route: image and code optimised by Adam through the frozen
  kernel space (deep image priors, or free pixels and code).
* :mod:`deblurring.config` — the deblur config (schema ``configs/defaults/deblur.yml``, checks).
* :mod:`deblurring.result` — :class:`DeblurResult`, what every algorithm returns.

``deblur.deblur_image`` picks one by the config's ``algorithm``.
"""

from deblurring.result import DeblurResult

__all__ = ["DeblurResult"]
