"""Tolerances as data: per-element rounding-error bounds, or the frameworks' fixed defaults.

The default (``"bound"``) allows, per element,

    c * (u(dtype) * (K * A + |ref|) + (K + 1) * eta(dtype))

where ``u`` is the dtype's unit roundoff, ``K`` the number of terms summed for
that output (the reduction length), ``A`` the same sum taken over absolute
values (computed in float64 by refcnn, as each op's table entry says:
``|x| conv |w| + |b|`` for a conv output, ``|dy| conv^T |w|`` for dx, and so
on), ``|ref|`` covers the final rounding to the dtype, and ``eta`` (half the
dtype's smallest subnormal) the absolute error of a rounding that underflows. ``K * u * A`` is the classical worst-case bound for a
recursively summed dot product, so the bound is both safe (it scales with the
reduction length and the magnitudes) and tight where a fixed atol is not: an
element that needs no arithmetic (a max, a gradient routed once) must be exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crosscheck.cases import Case, Inputs

#: Unit roundoff 2**-p of each dtype.
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11,
                 "bfloat16": 2.0**-8}

#: Half the smallest subnormal of each dtype: the absolute error of one rounding into the
#: subnormal range, which the relative model ``(1 + delta)`` does not cover (an output that
#: rounds to a float16 subnormal may be off by 2**-25 however small ``u * |ref|`` is).
UNDERFLOW = {"float64": 2.0**-1075, "float32": 2.0**-150, "float16": 2.0**-25,
             "bfloat16": 2.0**-134}

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

#: Outputs that must match exactly whatever the dtype.
EXACT_OUTPUTS = ("indices",)


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
    # Indices (of max pools) are integers: only the exact index is right, in every mode.
    result = {name: Bound(np.zeros(ref.shape), "exact (an index)")
              for name, ref in reference.items() if name in EXACT_OUTPUTS}
    if mode != "bound":
        rtol, atol = FIXED_TOLERANCES[mode][case.dtype]
        result.update({name: Bound(atol + rtol * np.abs(np.nan_to_num(ref, nan=0.0,
                                                                       posinf=0.0, neginf=0.0)),
                                   f"{mode} default rtol={rtol:g} atol={atol:g}")
                       for name, ref in reference.items() if name not in result})
        return result
    u = UNIT_ROUNDOFF[case.dtype]
    absolute = _absolute_sums(case, inputs)
    for name, ref in reference.items():
        if name in result:
            continue
        terms, magnitude = absolute[name]
        finite_ref = np.abs(np.where(np.isfinite(ref), ref, 0.0))
        # Every one of the K + 1 roundings may also underflow by at most UNDERFLOW.
        allowed = BOUND_FACTOR * (u * (terms * magnitude + finite_ref)
                                  + (terms + 1) * UNDERFLOW[case.dtype])
        result[name] = Bound(allowed, f"rounding bound {BOUND_FACTOR:g}*(u*(K*A+|ref|)"
                                      f"+(K+1)*eta), u=2^{int(np.log2(u))}, K={terms}")
    return result


def _absolute_sums(case: Case, inputs: Inputs) -> dict[str, tuple[int, np.ndarray]]:
    """For each output: (K, A) with A the computation redone on absolute values (the op table)."""
    return case.entry.magnitudes(case, inputs)
