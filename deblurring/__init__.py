"""Deblurring algorithms as importable functions (deblur.py is their command line).

* :mod:`deblurring.nonblind` — hyper-Laplacian non-blind deconvolution by half-quadratic splitting.
* :mod:`deblurring.alternating` — fast blind deblurring: coarse-to-fine alternation of a sparse
  (L0) image step and a closed-form kernel step, then the non-blind step.
* :mod:`deblurring.result` — :class:`DeblurResult`, what every algorithm returns.
"""

from deblurring.result import DeblurResult

__all__ = ["DeblurResult"]
