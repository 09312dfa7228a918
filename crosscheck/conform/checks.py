"""Checking one case: :func:`run_check` calls the target and returns a :class:`CaseOutcome`.

Shapes first, then values against refcnn in float64 under the rounding-error bounds of
:mod:`crosscheck.tolerance`, then that no input array was modified.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
import traceback
from dataclasses import asdict, dataclass, field

import numpy as np

from crosscheck.cases import Case, make_inputs
from crosscheck.compare import Discrepancy, compare
from crosscheck.conform.reproduce import reproduction
from crosscheck.conform.sweep import ConformCase
from crosscheck.tolerance import UNIT_ROUNDOFF, Bound, bounds

@dataclass
class CaseOutcome:
    """The result of one conformance case.

    status: ``passed``, ``failed``, ``timeout``, ``skipped`` (after a timeout of the
    same function) or ``reported`` (a strict convention probe: never a failure).
    """

    function: str
    case_id: str
    status: str
    message: str = ""
    params: dict = field(default_factory=dict)
    max_error: float | None = None
    worst_ratio: float | None = None
    discrepancies: list = field(default_factory=list)
    mutated: list = field(default_factory=list)
    convention: str | None = None
    seconds: float = 0.0
    reproduce: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("max_error", "worst_ratio"):
            if d[key] is not None and not math.isfinite(d[key]):
                d[key] = str(d[key])
        return d


# The crosscheck package, not this subpackage: a target's traceback is cut at its own frames.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class _Fail(Exception):
    """A failed check inside :func:`run_check` (the message says what was wrong)."""


def _snapshot(named: dict) -> dict:
    return {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else dict(v)
                if isinstance(v, dict) else v) for k, v in named.items()}


def _mutated(named: dict, before: dict) -> list[str]:
    changed = []
    for k, v in named.items():
        old = before[k]
        if isinstance(v, np.ndarray):
            if v.shape != old.shape or not np.array_equal(v, old, equal_nan=True):
                changed.append(k)
        elif isinstance(v, dict) and v != old:
            changed.append(k)
    return changed


def _as_array(value, what: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except Exception as exc:  # noqa: BLE001
        raise _Fail(f"{what} is not an array of numbers: {type(value).__name__} ({exc})")


def _check_shape(got: np.ndarray, want: tuple, what: str, hint: str = "") -> None:
    if tuple(got.shape) != tuple(want):
        raise _Fail(f"{what} has shape {tuple(got.shape)}, expected {tuple(want)}"
                    + (f" ({hint})" if hint else ""))


def _out_size_hint(cc: ConformCase) -> str:
    c, hp = cc.case, cc.hparameters()
    pad = hp.get("pad", 0)
    f, s = c.kernel[0], c.stride[0]
    n_h, n_w = c.out_hw()
    return (f"n_H = floor((n_H_prev + 2*pad - f) / stride) + 1 = floor(({c.h} + {2 * pad} - {f})"
            f" / {s}) + 1 = {n_h}; n_W = floor(({c.w} + {2 * pad} - {f}) / {s}) + 1 = {n_w}")


def _unpack(result, n: int, what: str):
    if not isinstance(result, (tuple, list)) or len(result) != n:
        kind = type(result).__name__
        size = f" of {len(result)}" if isinstance(result, (tuple, list)) else ""
        raise _Fail(f"{what} must return a tuple of {n}, got a {kind}{size}")
    return result


def run_check(functions: dict, cc: ConformCase, spec: str = "TARGET") -> CaseOutcome:
    """Run one conformance case on ``functions`` (name -> callable). Never raises."""
    start = time.perf_counter()
    outcome = CaseOutcome(cc.function, cc.id, "passed", params=cc.params(),
                          reproduce=reproduction(spec, cc))
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # notebook code likes to print
            discs, mutated, convention = _CHECKS[cc.function](functions, cc)
        outcome.discrepancies = [d.to_dict() for d in discs]
        outcome.mutated = mutated
        finite = [d for d in discs if d.error is None]
        if finite:
            outcome.max_error = max(d.max_abs_error for d in finite)
            outcome.worst_ratio = max(d.worst_ratio for d in finite)
        bad = [d for d in discs if not d.passed]
        if cc.probe:
            outcome.status, outcome.convention = "reported", convention
            outcome.message = convention or ""
        elif bad:
            outcome.status = "failed"
            d = bad[0]
            outcome.message = (d.error if d.error else
                               f"{d.output}: {d.mismatches}/{d.elements} elements outside the "
                               f"bound, max abs error {d.max_abs_error:.3g} at "
                               f"{d.max_abs_index} (got {d.actual_at_worst!r}, expected "
                               f"{d.expected_at_worst!r}, allowed +-{d.allowed_at_worst:.3g})")
            if len(bad) > 1:
                outcome.message += "; also " + ", ".join(b.output for b in bad[1:])
        elif mutated:
            outcome.status = "failed"
            outcome.message = (f"modified its input{'s' if len(mutated) > 1 else ''} "
                               f"{', '.join(mutated)} in place (values were right)")
    except _Fail as exc:
        outcome.status, outcome.message = ("reported" if cc.probe else "failed"), str(exc)
        if cc.probe:
            outcome.convention = f"could not tell: {exc}"
    except Exception as exc:  # noqa: BLE001 - the target raised
        frames = [fr for fr in traceback.extract_tb(exc.__traceback__)
                  if not os.path.abspath(fr.filename).startswith(_PACKAGE_DIR)]
        where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
        outcome.status = "reported" if cc.probe else "failed"
        outcome.message = f"raised {type(exc).__name__}: {exc}{where}"
        if cc.probe:
            outcome.convention = f"raised {type(exc).__name__}"
    outcome.seconds = time.perf_counter() - start
    return outcome


def _compare(spec_output: str, got, want: np.ndarray, allowed, cc: ConformCase) -> Discrepancy:
    bound = allowed if isinstance(allowed, Bound) else Bound(np.asarray(allowed, float),
                                                             "exact" if np.all(allowed == 0)
                                                             else "float64 rounding bound")
    return compare(got, want, bound, case_id=cc.id, backend=cc.function, output=spec_output)


def _reference(case: Case, inputs):
    from crosscheck.runner import reference_outputs

    ref = reference_outputs(case, inputs)
    return ref, bounds(case, inputs, ref)


def _check_zero_pad(fns, cc):
    rng = np.random.default_rng([cc.seed, 11])
    X = rng.standard_normal(cc.shape)
    p = cc.pad
    want = np.pad(X, ((0, 0), (p, p), (p, p), (0, 0)))
    named = {"X": X}
    before = _snapshot(named)
    got = _as_array(fns["zero_pad"](X, p), "X_pad")
    _check_shape(got, want.shape, "X_pad", "pad only the height and width, by pad on each side")
    return [_compare("X_pad", got, want, np.zeros(want.shape), cc)], _mutated(named, before), None


def _check_single_step(fns, cc):
    rng = np.random.default_rng([cc.seed, 12])
    a = rng.standard_normal(cc.shape)
    W = rng.standard_normal(cc.shape)
    b = rng.standard_normal((1, 1, 1))
    products = a * W
    want = np.array(math.fsum(products.ravel()) + b.item())
    named = {"a_slice_prev": a, "W": W, "b": b}
    before = _snapshot(named)
    got = _as_array(fns["conv_single_step"](a, W, b), "Z")
    if got.size != 1:
        raise _Fail(f"Z must be a single value, got shape {got.shape}")
    k = products.size + 1
    allowed = 2 * UNIT_ROUNDOFF["float64"] * (k * (np.abs(products).sum() + abs(b.item()))
                                              + abs(want.item()))
    return ([_compare("Z", got.reshape(()), want, np.array(allowed), cc)],
            _mutated(named, before), None)


def _check_mask(fns, cc):
    rng = np.random.default_rng([cc.seed, 13])
    if cc.probe:
        x = np.array([[1.0, 3.0, 2.0], [3.0, 0.0, 3.0], [2.0, 1.0, 0.5]])
    else:
        x = rng.standard_normal(cc.shape)
    want = (x == np.max(x)).astype(np.float64)
    named = {"x": x}
    before = _snapshot(named)
    raw = fns["create_mask_from_window"](x)
    got = _as_array(raw, "mask")
    _check_shape(got, x.shape, "mask", "the mask has the window's shape")
    disc = _compare("mask", got, want, np.zeros(x.shape), cc)
    convention = None
    if cc.probe:
        first = np.zeros(x.shape)
        first[np.unravel_index(np.argmax(x), x.shape)] = 1
        if disc.passed:
            convention = "marks every maximum (the notebook's x == max(x))"
        elif np.array_equal(got, first):
            convention = "marks only the first maximum (torch's routing rule)"
        else:
            convention = f"marks {int(np.count_nonzero(got))} cells of 3 tied maxima: neither rule"
    return [disc], _mutated(named, before), convention


def _check_distribute(fns, cc):
    rng = np.random.default_rng([cc.seed, 14])
    dz = float(rng.standard_normal() * 3)
    n_h, n_w = cc.shape
    want = np.full(cc.shape, dz / (n_h * n_w))
    got = _as_array(fns["distribute_value"](dz, cc.shape), "a")
    _check_shape(got, want.shape, "a", "the matrix has the given shape (n_H, n_W)")
    allowed = 4 * UNIT_ROUNDOFF["float64"] * np.abs(want)
    return [_compare("a", got, want, allowed, cc)], [], None


def _conv_arrays(cc):
    inputs = make_inputs(cc.case)
    return inputs, inputs.x.copy(), inputs.w.copy(), inputs.b.reshape(1, 1, 1, -1).copy()


def _check_conv_forward(fns, cc):
    inputs, A_prev, W, b = _conv_arrays(cc)
    hp = cc.hparameters()
    named = {"A_prev": A_prev, "W": W, "b": b, "hparameters": hp}
    before = _snapshot(named)
    Z, _cache = _unpack(fns["conv_forward"](A_prev, W, b, hp), 2, "conv_forward")
    ref, bnds = _reference(cc.case, inputs)
    Z = _as_array(Z, "Z")
    _check_shape(Z, ref["y"].shape, "Z", _out_size_hint(cc))
    return [_compare("Z", Z, ref["y"], bnds["y"], cc)], _mutated(named, before), None


def _check_conv_backward(fns, cc):
    inputs, A_prev, W, b = _conv_arrays(cc)
    hp = cc.hparameters()
    dZ = inputs.dy.copy()
    named = {"A_prev": A_prev, "W": W, "b": b, "hparameters": hp, "dZ": dZ}
    before = _snapshot(named)
    if "conv_forward" in fns:
        try:
            _Z, cache = _unpack(fns["conv_forward"](A_prev, W, b, hp), 2, "conv_forward")
        except _Fail as exc:
            raise _Fail(f"conv_forward (called for its cache): {exc}") from None
    else:  # no forward: the notebook's cache layout
        cache = (A_prev, W, b, hp)
    dA_prev, dW, db = _unpack(fns["conv_backward"](dZ, cache), 3, "conv_backward")
    ref, bnds = _reference(cc.case, inputs)
    dA_prev, dW, db = (_as_array(dA_prev, "dA_prev"), _as_array(dW, "dW"),
                       _as_array(db, "db"))
    _check_shape(dA_prev, A_prev.shape, "dA_prev", "A_prev's shape: crop the padding "
                 "with da_prev_pad[pad:pad + n_H_prev], which also works for pad=0")
    _check_shape(dW, W.shape, "dW", "W's shape")
    _check_shape(db, b.shape, "db", "b's shape (1, 1, 1, n_C)")
    discs = [_compare("dA_prev", dA_prev, ref["dx"], bnds["dx"], cc),
             _compare("dW", dW, ref["dw"], bnds["dw"], cc),
             _compare("db", db.reshape(-1), ref["db"], bnds["db"], cc)]
    return discs, _mutated(named, before), None


def _pool_inputs(cc):
    inputs = make_inputs(cc.case)
    return inputs, inputs.x.copy()


def _check_pool_forward(fns, cc):
    inputs, A_prev = _pool_inputs(cc)
    hp = cc.hparameters()
    named = {"A_prev": A_prev, "hparameters": hp}
    before = _snapshot(named)
    A, _cache = _unpack(fns["pool_forward"](A_prev, hp, mode=cc.mode), 2, "pool_forward")
    ref, bnds = _reference(cc.case, inputs)
    A = _as_array(A, "A")
    _check_shape(A, ref["y"].shape, "A", _out_size_hint(cc))
    disc = _compare("A", A, ref["y"], bnds["y"], cc)
    convention = None
    if cc.probe:  # max pooling over windows holding NaN
        nan_out = np.isnan(ref["y"])
        if disc.passed:
            convention = "a window holding NaN gives NaN (refcnn, torch, jax)"
        elif not np.isnan(A[nan_out]).any():
            convention = "a window holding NaN gives the max of the rest (tensorflow's rule)"
        else:
            convention = "NaN handled by neither rule: " + disc.summary()
    return [disc], _mutated(named, before), convention


def _check_pool_backward(fns, cc):
    inputs, A_prev = _pool_inputs(cc)
    hp = cc.hparameters()
    dA = inputs.dy.copy()
    named = {"A_prev": A_prev, "hparameters": hp, "dA": dA}
    before = _snapshot(named)
    if "pool_forward" in fns:
        try:
            _A, cache = _unpack(fns["pool_forward"](A_prev, hp, mode=cc.mode), 2,
                                "pool_forward")
        except _Fail as exc:
            raise _Fail(f"pool_forward (called for its cache): {exc}") from None
    else:
        cache = (A_prev, hp)
    got = _as_array(fns["pool_backward"](dA, cache, mode=cc.mode), "dA_prev")
    ref, bnds = _reference(cc.case, inputs)
    _check_shape(got, A_prev.shape, "dA_prev", "A_prev's shape")
    disc = _compare("dA_prev", got, ref["dx"], bnds["dx"], cc)
    convention = None
    if cc.probe:
        convention = _pool_backward_convention(cc, inputs, got, disc)
    return [disc], _mutated(named, before), convention


def _pool_backward_convention(cc, inputs, got, disc) -> str:
    if disc.passed:
        return {"ties": "a tied window's gradient goes to its first maximum (torch, jax, refcnn)",
                "nan": "a window holding NaN routes its gradient to the last NaN (torch, refcnn)"
                }[cc.case.inputs]
    every = _every_max_routing(cc, inputs)
    if np.allclose(np.nan_to_num(got), every, rtol=1e-12, atol=1e-12):
        rule = ("every tied maximum gets the full gradient (the notebook's mask x == max(x)); "
                "torch and refcnn route it to the first maximum only")
        return rule if cc.case.inputs == "ties" else (
            "a window holding NaN routes no gradient (x == max(x) is False everywhere)")
    return "neither rule: " + disc.summary()


def _every_max_routing(cc, inputs) -> np.ndarray:
    """The notebook's max-pool gradient: dA to every cell equal to its window's max."""
    c = cc.case
    f, s = c.kernel[0], c.stride[0]
    x, dy = inputs.x, inputs.dy
    out = np.zeros_like(x)
    n_h, n_w = c.out_hw()
    for h in range(n_h):
        for w in range(n_w):
            win = x[:, h * s:h * s + f, w * s:w * s + f, :]
            with np.errstate(invalid="ignore"):
                mask = win == np.max(win, axis=(1, 2), keepdims=True)
            out[:, h * s:h * s + f, w * s:w * s + f, :] += mask * dy[:, h:h + 1, w:w + 1, :]
    return out


_CHECKS = {
    "zero_pad": _check_zero_pad,
    "conv_single_step": _check_single_step,
    "conv_forward": _check_conv_forward,
    "conv_backward": _check_conv_backward,
    "pool_forward": _check_pool_forward,
    "pool_backward": _check_pool_backward,
    "create_mask_from_window": _check_mask,
    "distribute_value": _check_distribute,
}
