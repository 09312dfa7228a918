"""Checks over a whole output, in the spirit of TOSA's: the RMS and the mean of the signed errors.

The per-element bound (:mod:`crosscheck.tolerance`) lets each element err up to its
``allowed``; it cannot see a kernel that always errs the same way, or always near the
limit. Over an output of ``n`` judged elements, with ``e_i = (actual_i - ref_i) /
allowed_i`` the normalised errors (elements with ``allowed_i > 0`` and both values
finite; an exact-tier or index output has none), two figures are checked:

* **bias**: ``mean(e)``, the mean signed normalised error;
* **RMS**: ``sqrt(mean(e**2))``.

Derivation of the limits. The model of a correct implementation: each ``e_i`` lies in
``[-1, 1]`` (the per-element bound holds), has mean 0 (rounding to nearest has no
preferred side, and no reduction order prefers one) and, at worst, spreads evenly over
the bound, i.e. ``E[e_i**2] <= 1/3`` (the uniform distribution on ``[-1, 1]``). The bound
charges every rounding at its worst with a safety factor of 2, so real kernels sit far
inside it: the final rounding alone errs by at most half the bound, and the ``K``
roundings of a reduction add up like a random walk (``sqrt(K)``, not ``K``).

* Bias: by Hoeffding's inequality for ``n`` independent values in ``[-1, 1]`` with mean
  0, ``P(|mean(e)| >= t) <= 2 exp(-n t**2 / 2)``; for a false-alarm probability
  ``delta`` per output, ``t = sqrt(2 ln(2/delta) / n)``. Errors of neighbouring outputs
  share inputs, so they are not independent: the limit is never below
  :data:`BIAS_FLOOR`. ``bias_limit(n) = max(BIAS_FLOOR, sqrt(2 ln(2/delta) / n))``.
* RMS: the ``e_i**2`` lie in ``[0, 1]`` with mean at most 1/3; Hoeffding's one-sided
  bound gives ``P(mean(e**2) >= 1/3 + s) <= exp(-2 n s**2)``, so ``s = sqrt(ln(1/delta) /
  (2n))`` and ``rms_limit(n) = sqrt(1/3 + sqrt(ln(1/delta) / (2n)))``.

With ``delta = 1e-6`` and ``n >= MIN_ELEMENTS = 100``: ``bias_limit`` is 0.54 at n = 100,
0.17 at n = 1000 and 0.1 from n = 2902 on; ``rms_limit`` is 0.77 at n = 100 and tends to
0.577. A default sweep judges about 1200 outputs per backend this way (of some 4700; the
rest are smaller), so under the model a correct backend trips a test with probability
below 1 in 400 per sweep. Measured (torch 2.13 and JAX 0.10.2 on CPU, default sweep,
accumulator-aware bounds included) no ``|mean(e)|`` exceeds 0.04 or 0.14 of its limit,
and no RMS exceeds 0.23 or 0.33 of its limit. A kernel whose every element sits
at 60% of its bound on the same side has ``mean(e) = 0.6`` and fails wherever the checks
apply; one that errs by +-90% of its bound at random has ``rms = 0.9`` and fails too.
Outputs with fewer than :data:`MIN_ELEMENTS` judged elements are left to the per-element
bound (too small to tell a bias from chance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: False-alarm probability per output and test under the model.
DELTA = 1e-6
#: Fewest judged elements for the checks to apply.
MIN_ELEMENTS = 100
#: The bias limit never goes below this (errors of neighbouring outputs are correlated).
BIAS_FLOOR = 0.1


def bias_limit(n: int) -> float:
    """Largest ``|mean(e)|`` a correct output of ``n`` judged elements may show."""
    return max(BIAS_FLOOR, math.sqrt(2 * math.log(2 / DELTA) / n))


def rms_limit(n: int) -> float:
    """Largest ``sqrt(mean(e**2))`` a correct output of ``n`` judged elements may show."""
    return math.sqrt(1 / 3 + math.sqrt(math.log(1 / DELTA) / (2 * n)))


@dataclass(frozen=True)
class Figures:
    """The statistics of one output: ``elements`` judged, their bias and RMS, the limits,
    and ``problem`` (None when both hold or the output is too small to judge)."""

    elements: int
    bias: float
    rms: float
    bias_limit: float
    rms_limit: float
    problem: str | None

    @property
    def judged(self) -> bool:
        return self.elements >= MIN_ELEMENTS


def figures(got: np.ndarray, ref: np.ndarray, allowed: np.ndarray) -> Figures:
    """Bias and RMS of the normalised errors of ``got`` (all float64, ``ref``'s shape)."""
    usable = np.isfinite(got) & np.isfinite(ref) & (allowed > 0)
    n = int(usable.sum())
    if n == 0:
        return Figures(0, 0.0, 0.0, math.inf, math.inf, None)
    with np.errstate(over="ignore", invalid="ignore"):
        e = (got[usable] - ref[usable]) / allowed[usable]
    bias, rms = float(np.mean(e)), float(np.sqrt(np.mean(e * e)))
    limits = (bias_limit(n), rms_limit(n)) if n >= MIN_ELEMENTS else (math.inf, math.inf)
    problem = None
    if n >= MIN_ELEMENTS:
        side = "above" if bias > 0 else "below"
        if abs(bias) > limits[0]:
            problem = (f"biased: the mean signed error/bound over {n} elements is {bias:+.3g} "
                       f"(limit +-{limits[0]:.3g}): it errs {side} the reference "
                       "systematically")
        elif rms > limits[1]:
            problem = (f"errors too large on the whole: the RMS of error/bound over {n} "
                       f"elements is {rms:.3g} (limit {limits[1]:.3g})")
    return Figures(n, bias, rms, *limits, problem)
