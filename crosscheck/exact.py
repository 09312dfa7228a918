"""The exact tier: integer inputs on which no partial sum can round, so results are bit for bit.

benchdnn's safe-accumulation rule. A sum of integer terms is computed exactly in a binary
floating-point format with ``digits`` significand bits (:data:`DIGITS`: 53, 24, 11 and 8
for float64, float32, float16 and bfloat16) when every partial sum is an integer of
magnitude at most ``2**digits``: then it is representable, whatever the order of the
sum, its blocking or its accumulator (any accumulator at least as wide as the dtype).
Every partial sum of one output element is at most the sum of its terms' absolute values,
which the op table already computes for the rounding bound (``A``, each op's
``magnitudes`` in :mod:`crosscheck.ops`). So the rule reads: integer inputs and
``max(A) <= 2**digits`` for every output of the case's direction (forward, dx, dw, db,
the jvp's tangent and the second-order outputs alike, since each is a sum of products
of two inputs, or of one). Under it the float64 reference is exact too, and the bound is
zero (:mod:`crosscheck.tolerance`).

How values are chosen (:func:`exact_inputs`), as benchdnn does: ``T`` is the largest
number of terms one output sums (``A`` with every input 1). Values are nonzero integers
in ``[-m, m]`` with ``m`` the largest value such that ``m*m*T <= 2**digits``, capped at
:data:`MAGNITUDE` (so a wrong kernel meets several values, not only +-1). Where even
``m = 1`` allows fewer dense terms than ``T``, the data arrays (x, dy and their tangents
and second-order cotangents, one factor of every product) are sparse, with density
``2**digits / T``. The draw is then checked against its exact ``A`` (float64 sums of
integers below 2**53 are exact) and thinned further until the rule holds, so it is a
guarantee, not an expectation.

Pooling. A max pool copies or routes values: its x is continuous, as in the random tier
(integers would tie, and ties are a convention, probed elsewhere), and only what is
summed (dy, which overlapping windows add up, and the cotangent gx) is integer. An
average pool divides each window sum by its divisor, which is exact when the divisor is
a power of two (the quotient of an exact integer by ``2**a``, or its product with the
exact reciprocal ``2**-a``, is exact), and in general is not (``S * (1/3)`` rounds
``1/3``). The tier therefore applies to average-pool geometries whose every divisor is a
power of two (:func:`applies`: ``kernel`` products 1, 2, 4, 8, ..., no ceil_mode window
or ``count_include_pad=False`` edge with another count, ``divisor_override`` a power of
two; adaptive bins of such sizes); there the terms are multiples of ``1/D`` (``D`` the
largest divisor) and the rule is ``max(A) * D <= 2**digits``.
"""

from __future__ import annotations

import math

import numpy as np

#: Significand bits (the implicit bit included) of each dtype.
DIGITS = {"float64": 53, "float32": 24, "float16": 11, "bfloat16": 8}
#: The largest integer magnitude drawn, per dtype (smaller where the reduction is long).
MAGNITUDE = {"float64": 8, "float32": 8, "float16": 3, "bfloat16": 2}
#: Roles that are data (one factor of every product): the ones made sparse.
DATA_ROLES = ("x", "dy", "tx", "gx")


def divisors(case) -> set[int]:
    """Every divisor an average pool of ``case`` uses ({1} for other families)."""
    from crosscheck import geometry, ops

    if case.family == "adaptive_avg_pool":
        sizes = [sorted({e - s for s, e in geometry.adaptive_bins(n, o)})
                 for n, o in zip(case.spatial, case.output_size)]
        return {math.prod(c) for c in _product(sizes)}
    if case.family != "avg_pool":
        return {1}
    import refcnn.functional as F

    ones = np.ones((1, *case.spatial, 1))
    # Window sums of ones count the real cells; the average divides that count by d.
    count = ops.pool_call(F.avg_pool, (ones,), case.with_(divisor_override=1))
    mean = ops.pool_call(F.avg_pool, (ones,), case)
    live = count > 0
    return {int(round(v)) for v in (count[live] / mean[live]).ravel()}


def _product(lists):
    if not lists:
        return [()]
    return [(v, *rest) for v in lists[0] for rest in _product(lists[1:])]


def applies(case) -> str | None:
    """Why the exact tier cannot hold on ``case``'s geometry (None when it can)."""
    odd = sorted(d for d in divisors(case) if d & (d - 1))
    if odd:
        return (f"{case.op} divides by {', '.join(map(str, odd[:4]))}: the exact tier needs "
                "every average-pool divisor to be a power of two")
    return None


def exact_inputs(case, rng):
    """The exact tier's :class:`~crosscheck.cases.Inputs` for ``case`` (see the module's rule).

    ValueError where the tier cannot hold (an average pool with a divisor that is not a
    power of two).
    """
    from crosscheck.cases import Inputs, round_to

    case.check_output()
    reason = applies(case)
    if reason:
        raise ValueError(f"case {case.id}: {reason}")
    limit = 2.0 ** DIGITS[case.dtype]
    scale = max(divisors(case))
    shapes = _shapes(case)
    is_max = "max" in case.family
    # A max pool's x decides the routing only: continuous, as in the random tier.
    x_real = round_to(rng.standard_normal(shapes["x"]), case.dtype) if is_max else None
    ones = {r: None if s is None else np.ones(s) for r, s in shapes.items()}
    if is_max:
        ones["x"] = x_real
    terms = _worst(case, Inputs(**ones)) * scale
    m = int(min(MAGNITUDE[case.dtype], max(1, math.isqrt(int(limit // max(terms, 1))))))
    density = min(1.0, limit / (m * m * max(terms, 1)))
    for _ in range(64):
        arrays = {r: None if s is None else _integers(rng, s, m, density if r in DATA_ROLES
                                                      else 1.0)
                  for r, s in shapes.items()}
        if is_max:
            arrays["x"] = x_real
        worst = _worst(case, Inputs(**arrays)) * scale
        if worst <= limit:
            for a in arrays.values():
                if a is not None:
                    a.setflags(write=False)
            return Inputs(**arrays)
        density *= 0.9 * limit / worst
    raise RuntimeError(f"case {case.id}: no exact-tier draw met the safe-accumulation rule "
                       f"(2**{DIGITS[case.dtype]}); the last one reached {worst:g}")


def _integers(rng, shape, m: int, density: float) -> np.ndarray:
    """Nonzero integers uniform in [-m, m], each kept with probability ``density``."""
    values = rng.integers(1, m + 1, size=shape) * rng.choice((-1.0, 1.0), size=shape)
    if density < 1.0:
        values = values * (rng.random(shape) < density)
    return values.astype(np.float64)


def _worst(case, inputs) -> float:
    """The largest ``A`` over every output of ``case`` (0 for empty outputs)."""
    found = case.entry.magnitudes(case, inputs)
    return max((float(np.max(a)) for _, a in found.values() if np.size(a)), default=0.0)


def _shapes(case) -> dict:
    """Role -> shape of every array ``case``'s direction reads (None where it reads none)."""
    from crosscheck.cases import ROLES

    x = (case.n, *case.spatial, case.c_in)
    w = case.entry.weight_shape(case)
    b = (case.c_out,) if w is not None and case.bias else None
    dy = (case.n, *case.out_spatial(), case.c_out)
    found = dict.fromkeys(ROLES)
    found.update(x=x, w=w, b=b, dy=dy)
    prefix = {"jvp": "t", "double_backward": "g"}.get(case.direction)
    if prefix:
        found.update({prefix + "x": x, prefix + "w": w, prefix + "b": b})
    return found
