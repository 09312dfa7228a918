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

Two refinements:

* **The exact tier** (``inputs="exact"``, :mod:`crosscheck.exact`): integer inputs under
  the safe-accumulation rule, on which no partial sum can round; the bound is zero, in
  every mode: every backend must match the float64 reference bit for bit.
* **A declared accumulator** (:mod:`crosscheck.accumulation`): a backend that sums in a
  wider type than the output's (float16 and bfloat16 convolutions summed in float32)
  is allowed, per element,

      c * (u_acc * K * A + u * (|ref| + P) + K * eta_acc + R * eta)

  the reduction charged to the accumulator's unit roundoff and only the final rounding
  (and the roundings of separately rounded parts, ``P``) to the output's. ``P`` is the
  magnitude of parts a framework may round to the output dtype before adding them:
  ``|ref - b|`` for a convolution with bias (the bias added after the conv), ``A`` for
  a jvp's ``ty`` or a double backward's ``ddy`` (each a sum of two convolutions and a
  bias, rounded one by one), 0 otherwise; ``R`` counts those roundings (1, or 4 with
  parts). For float16 with K = 576 this is about 2.5 times ``u * |ref|`` instead of
  ``u * K * A`` (hundreds of times larger), so a kernel that declares float32 but sums
  in float16 fails, where the plain bound lets it pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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
    """The allowed absolute error per element of one output, and how it was made.

    ``terms`` and ``magnitude`` are the op table's ``K`` and ``A`` for that output (None
    where it has none: an index), kept so that another accumulator's bound
    (:func:`with_accumulator`) need not redo them.
    """

    allowed: np.ndarray
    description: str
    terms: int | None = None
    magnitude: np.ndarray | None = field(default=None, repr=False)


def bounds(case: Case, inputs: Inputs, reference: dict[str, np.ndarray],
           mode: str = "bound", accumulator=None) -> dict[str, Bound]:
    """Allowed error for each output of ``case`` (keys as in ``reference``).

    Parameters
    ----------
    case, inputs : the case and its inputs
    reference : float64 reference outputs (``{"y": ...}`` or ``{"dx": ..., ...}``)
    mode : "bound" (rounding-error bound), "torch" or "jax" (fixed rtol/atol defaults)
    accumulator : what the backend declares it sums in (:mod:`crosscheck.accumulation`):
        None, a dtype name, or ``{output: dtype name}``; used in mode "bound" only
    """
    if mode not in TOLERANCE_MODES:
        raise ValueError(f"tolerance mode must be one of {TOLERANCE_MODES}, got {mode!r}")
    # Indices (of max pools) are integers: only the exact index is right, in every mode.
    result = {name: Bound(np.zeros(ref.shape), "exact (an index)")
              for name, ref in reference.items() if name in EXACT_OUTPUTS}
    absolute = _absolute_sums(case, inputs)
    if case.inputs == "exact":
        result.update({name: Bound(np.zeros(ref.shape), EXACT_TIER, *absolute[name])
                       for name, ref in reference.items() if name not in result})
        return result
    if mode != "bound":
        rtol, atol = FIXED_TOLERANCES[mode][case.dtype]
        result.update({name: Bound(atol + rtol * np.abs(np.nan_to_num(ref, nan=0.0,
                                                                       posinf=0.0, neginf=0.0)),
                                   f"{mode} default rtol={rtol:g} atol={atol:g}",
                                   *absolute[name])
                       for name, ref in reference.items() if name not in result})
        return result
    u = UNIT_ROUNDOFF[case.dtype]
    for name, ref in reference.items():
        if name in result:
            continue
        terms, magnitude = absolute[name]
        finite_ref = np.abs(np.where(np.isfinite(ref), ref, 0.0))
        # Every one of the K + 1 roundings may also underflow by at most UNDERFLOW.
        allowed = BOUND_FACTOR * (u * (terms * magnitude + finite_ref)
                                  + (terms + 1) * UNDERFLOW[case.dtype])
        result[name] = Bound(allowed, f"rounding bound {BOUND_FACTOR:g}*(u*(K*A+|ref|)"
                                      f"+(K+1)*eta), u=2^{int(np.log2(u))}, K={terms}",
                             terms, magnitude)
    if accumulator:
        result = with_accumulator(case, inputs, reference, result, accumulator)
    return result


#: The exact tier's bound, as reports print it.
EXACT_TIER = ("exact tier: integer inputs under the safe-accumulation rule (no partial sum "
              "can round), bound 0: bit for bit")


def accumulators(case: Case, accumulator) -> dict[str, str]:
    """``{output: accumulator dtype}`` from a declaration: None, one dtype name for every
    output, or a mapping of output names to dtype names; narrower or equal accumulators
    (nothing to tighten) and names of other outputs are left out."""
    if not accumulator:
        return {}
    given = accumulator if isinstance(accumulator, dict) else dict.fromkeys(
        case.output_names(), accumulator)
    found = {}
    for name, acc in dict(given).items():
        if acc not in UNIT_ROUNDOFF:
            raise ValueError(f"accumulator must be one of {tuple(UNIT_ROUNDOFF)}, got {acc!r}")
        if name in case.output_names() and UNIT_ROUNDOFF[acc] < UNIT_ROUNDOFF[case.dtype]:
            found[name] = acc
    return found


def with_accumulator(case: Case, inputs: Inputs, reference: dict[str, np.ndarray],
                     plain: dict[str, Bound], accumulator) -> dict[str, Bound]:
    """``plain`` (the mode "bound" bounds) with each output summed in a declared wider
    accumulator bounded as the module docstring says; other outputs are kept as they are."""
    result = dict(plain)
    if case.inputs == "exact":
        return result  # zero already
    u, eta = UNIT_ROUNDOFF[case.dtype], UNDERFLOW[case.dtype]
    for name, acc in accumulators(case, accumulator).items():
        bound, ref = plain[name], reference[name]
        if bound.terms is None:
            continue
        terms, magnitude = bound.terms, bound.magnitude
        finite_ref = np.abs(np.where(np.isfinite(ref), ref, 0.0))
        parts = _rounded_parts(case, name, ref, inputs, magnitude)
        roundings = 1 if parts is None else 4
        parts = 0.0 if parts is None else parts
        allowed = BOUND_FACTOR * (UNIT_ROUNDOFF[acc] * terms * magnitude
                                  + u * (finite_ref + parts) + terms * UNDERFLOW[acc]
                                  + roundings * eta)
        ua = UNIT_ROUNDOFF[acc]
        result[name] = replace(bound, allowed=allowed, description=(
            f"accumulator-aware bound {BOUND_FACTOR:g}*(u_acc*K*A+u*(|ref|+P)+K*eta_acc"
            f"+{roundings}*eta), accumulating in {acc} (u_acc=2^{int(np.log2(ua))}), "
            f"u=2^{int(np.log2(u))}, K={terms}"
            + ("" if roundings == 1 else ", P: parts rounded before they are added")))
    return result


def _rounded_parts(case: Case, name: str, ref: np.ndarray, inputs: Inputs, magnitude):
    """The magnitude of the parts a framework may round to the output dtype before adding
    them (None: the output is one reduction, rounded once)."""
    if not case.is_conv:
        return None
    if case.direction == "forward" and name == "y" and inputs.b is not None:
        finite = np.where(np.isfinite(ref), ref, 0.0)
        return np.abs(finite - inputs.b)  # the conv before its bias (b on the channel axis)
    if (case.direction, name) in (("jvp", "ty"), ("double_backward", "ddy")):
        return magnitude
    return None


def _absolute_sums(case: Case, inputs: Inputs) -> dict[str, tuple[int, np.ndarray]]:
    """For each output: (K, A) with A the computation redone on absolute values (the op table)."""
    return case.entry.magnitudes(case, inputs)
