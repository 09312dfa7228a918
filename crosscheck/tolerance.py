"""Tolerances as data: per-element rounding-error bounds, or the frameworks' fixed defaults.

The default (``"bound"``) allows, per element,

    c * u(dtype) * (K * A + |ref|)

where ``u`` is the dtype's unit roundoff, ``K`` the number of terms summed for
that output (the reduction length), ``A`` the same sum taken over absolute
values (computed in float64 by refcnn: ``|x| conv |w| + |b|`` for a conv
output, ``|dy| conv^T |w|`` for dx, and so on) and ``|ref|`` covers the final
rounding to the dtype. ``K * u * A`` is the classical worst-case bound for a
recursively summed dot product, so the bound is both safe (it scales with the
reduction length and the magnitudes) and tight where a fixed atol is not: an
element that needs no arithmetic (a max, a gradient routed once) must be exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import refcnn
from crosscheck.cases import Case, Inputs

#: Unit roundoff 2**-p of each dtype.
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11,
                 "bfloat16": 2.0**-8}

#: Safety factor ``c`` of the rounding bound.
BOUND_FACTOR = 2.0

#: Fixed (rtol, atol) defaults of torch.testing.assert_close and of JAX's tests.
FIXED_TOLERANCES = {
    "torch": {"float64": (1e-7, 1e-7), "float32": (1.3e-6, 1e-5), "float16": (1e-3, 1e-5),
              "bfloat16": (1.6e-2, 1e-5)},
    "jax": {"float64": (1e-15, 1e-15), "float32": (1e-6, 1e-6), "float16": (1e-3, 1e-3),
            "bfloat16": (1e-2, 1e-2)},
}

TOLERANCE_MODES = ("bound", "torch", "jax")


@dataclass(frozen=True)
class Bound:
    """The allowed absolute error per element of one output, and how it was made."""

    allowed: np.ndarray
    description: str


def bounds(case: Case, inputs: Inputs, reference: dict[str, np.ndarray],
           mode: str = "bound") -> dict[str, Bound]:
    """Allowed error for each output of ``case`` (keys as in ``reference``).

    Parameters
    ----------
    case, inputs : the case and its inputs
    reference : float64 reference outputs (``{"y": ...}`` or ``{"dx": ..., ...}``)
    mode : "bound" (rounding-error bound), "torch" or "jax" (fixed rtol/atol defaults)
    """
    if mode not in TOLERANCE_MODES:
        raise ValueError(f"tolerance mode must be one of {TOLERANCE_MODES}, got {mode!r}")
    if mode != "bound":
        rtol, atol = FIXED_TOLERANCES[mode][case.dtype]
        return {name: Bound(atol + rtol * np.abs(np.nan_to_num(ref, nan=0.0, posinf=0.0,
                                                                 neginf=0.0)),
                            f"{mode} default rtol={rtol:g} atol={atol:g}")
                for name, ref in reference.items()}
    u = UNIT_ROUNDOFF[case.dtype]
    absolute = _absolute_sums(case, inputs)
    result = {}
    for name, ref in reference.items():
        terms, magnitude = absolute[name]
        finite_ref = np.abs(np.where(np.isfinite(ref), ref, 0.0))
        allowed = BOUND_FACTOR * u * (terms * magnitude + finite_ref)
        result[name] = Bound(allowed, f"rounding bound {BOUND_FACTOR:g}*u*(K*A+|ref|), "
                                      f"u=2^{int(np.log2(u))}, K={terms}")
    return result


def _absolute_sums(case: Case, inputs: Inputs) -> dict[str, tuple[int, np.ndarray]]:
    """For each output: (K, A) with A the computation redone on absolute values."""
    x = _finite_abs(inputs.x)
    dy = np.abs(inputs.dy)
    opts = case.options()
    if case.is_conv:
        w = np.abs(inputs.w)
        b = None if inputs.b is None else np.abs(inputs.b)
        fh, fw, _, c_out = w.shape
        if case.direction == "forward":
            return {"y": (case.reduction_length() + 1, refcnn.conv2d(x, w, b, **opts))}
        dx, dw, db = refcnn.conv2d_backward(dy, x, w, b, **opts)
        rows = dy.shape[0] * dy.shape[1] * dy.shape[2]
        return {"dx": (fh * fw * c_out // case.groups, dx), "dw": (rows, dw), "db": (rows, db)}
    taps = case.reduction_length()
    if case.op == "max_pool2d":
        if case.direction == "forward":
            return {"y": (0, np.zeros(dy.shape))}  # a max is exact
        # Routing follows the real input (ties and NaN included): overlapping windows add up.
        return {"dx": (taps, refcnn.max_pool2d_backward(dy, inputs.x, **opts))}
    if case.direction == "forward":
        return {"y": (taps + 1, refcnn.avg_pool2d(x, **opts))}
    return {"dx": (taps + 1, refcnn.avg_pool2d_backward(dy, x, **opts))}


def _finite_abs(a: np.ndarray) -> np.ndarray:
    """|a| with non-finite entries zeroed: their outputs are compared exactly instead."""
    return np.abs(np.where(np.isfinite(a), a, 0.0))
