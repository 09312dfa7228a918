"""Diagnosis: plain sentences that name why a notebook function failed.

It runs in the judging process, on what the target returned (the arrays its worker sent
back, kept in each :class:`~crosscheck.conform.checks.CaseOutcome`), and never imports the
target; the few targeted extra cases it asks for go through the same runner as the sweep.
Three sources, for each group of failing cases that failed the same way (the same exception
at the same line, the same wrong outputs, a wrong shape, a modified input):

- *differential*: the parameter values that separate the group from the cases that passed
  ("on every case with stride > 1 and on none with stride 1", "only with mode 'max' and
  stride > 1"), from the sweep's cases and, when those cannot tell, from extra cases that
  change one parameter at a time from a small case;
- *known mistakes*: the failing outputs compared with the reference computed under each
  wrong variant people write (the stride ignored, the kernel flipped, the bias missing or
  added per element, h and w swapped, the first example only, ``=`` for ``+=``, the gradient
  routed to the minimum, a divisor f or 2f for f * f, float32 precision, ...), naming the
  one it matches exactly;
- *hints* (:mod:`crosscheck.conform.hints`): the failures seen in the wild, from the
  exception or the shape alone (NumPy 2 and ``float(b)``, ``np.float``, a notebook global,
  the ``[pad:-pad]`` crop), and across functions (conv_forward failing because
  conv_single_step returns a (1, 1, 1) array; pool_backward wrong where distribute_value is).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from crosscheck.cases import make_inputs
from crosscheck.conform import hints
from crosscheck.conform.checks import FAILING, CaseOutcome, helper_inputs, run_check
from crosscheck.conform.sweep import (ConformCase, conform_case, from_case, notebook_conv_case,
                                      notebook_pool_case)
from crosscheck.statuses import ConformStatus, ConformVerdict

# ---- predicates on a case: the differential's vocabulary ----------------------------------------


@dataclass(frozen=True)
class Predicate:
    """A yes/no property of a case, with how to say it either way."""

    name: str
    yes: str
    no: str
    test: Callable[[ConformCase], bool | None]


def _hp(cc, key, default=None):
    return cc.hparameters().get(key, default)


def _remainder(cc) -> bool:
    c = cc.case
    p, f, s = _hp(cc, "pad", 0), c.kernel[0], c.stride[0]
    return (c.h + 2 * p - f) % s != 0 or (c.w + 2 * p - f) % s != 0


_WINDOWED = [
    Predicate("stride>1", "stride > 1", "stride 1", lambda cc: cc.case.stride[0] > 1),
    Predicate("pad0", "pad = 0", "pad > 0",
              lambda cc: _hp(cc, "pad", 0) == 0 if cc.case.is_conv else None),
    Predicate("mode-max", "mode 'max'", "mode 'average'",
              lambda cc: None if cc.case.is_conv else cc.mode == "max"),
    Predicate("mode-average", "mode 'average'", "mode 'max'",
              lambda cc: None if cc.case.is_conv else cc.mode == "average"),
    Predicate("batch", "m > 1", "m = 1", lambda cc: cc.case.n > 1),
    Predicate("nonsquare", "n_H_prev != n_W_prev", "a square input",
              lambda cc: cc.case.h != cc.case.w),
    Predicate("nonsquare-out", "n_H != n_W", "n_H = n_W",
              lambda cc: cc.case.out_hw()[0] != cc.case.out_hw()[1]),
    Predicate("channels", "n_C_prev != n_C", "n_C_prev = n_C",
              lambda cc: cc.case.c_in != cc.case.c_out if cc.case.is_conv else None),
    Predicate("many-channels", "more than one channel", "one channel",
              lambda cc: cc.case.c_in > 1),
    Predicate("out-channels", "n_C > 1", "n_C = 1",
              lambda cc: cc.case.c_out > 1 if cc.case.is_conv else None),
    Predicate("f!=2", "f != 2", "f = 2", lambda cc: cc.case.kernel[0] != 2),
    Predicate("f1", "f = 1", "f > 1", lambda cc: cc.case.kernel[0] == 1),
    Predicate("f-odd", "an odd f", "an even f", lambda cc: cc.case.kernel[0] % 2 == 1),
    Predicate("remainder", "a stride that leaves a remainder ((n_H_prev + 2 * pad - f) not a "
              "multiple of it)", "no remainder", _remainder),
    Predicate("gaps", "stride > f (gaps between windows)", "stride <= f",
              lambda cc: cc.case.stride[0] > cc.case.kernel[0]),
    Predicate("overlap", "stride < f (overlapping windows)", "stride >= f",
              lambda cc: cc.case.stride[0] < cc.case.kernel[0]),
    Predicate("pad>1", "pad > 1", "pad <= 1",
              lambda cc: _hp(cc, "pad", 0) > 1 if cc.case.is_conv else None),
    Predicate("out1", "a 1 x 1 output", "a larger output",
              lambda cc: cc.case.out_hw() == (1, 1)),
]


def _shape_predicates(shapes) -> list[Predicate]:
    out = [Predicate("h!=w", "n_H != n_W", "n_H = n_W",
                     lambda cc: len(cc.shape) >= 2 and cc.shape[0] != cc.shape[1])]
    for shape in dict.fromkeys(shapes):
        out.append(Predicate(f"not{shape}", f"a shape other than {shape}", f"shape {shape}",
                             lambda cc, s=shape: tuple(cc.shape) != s))
    return out


def predicates(function: str, cases) -> list[Predicate]:
    if function in ("conv_forward", "conv_backward", "pool_forward", "pool_backward"):
        return _WINDOWED
    if function == "zero_pad":
        return [Predicate("pad0", "pad = 0", "pad > 0", lambda cc: cc.pad == 0),
                Predicate("batch", "m > 1", "m = 1", lambda cc: cc.shape[0] > 1),
                Predicate("nonsquare", "n_H != n_W", "a square input",
                          lambda cc: cc.shape[1] != cc.shape[2])]
    if function == "conv_single_step":
        return [Predicate("f1", "f = 1", "f > 1", lambda cc: cc.shape[0] == 1),
                Predicate("channels", "n_C_prev > 1", "n_C_prev = 1",
                          lambda cc: cc.shape[2] > 1)]
    return _shape_predicates(tuple(cc.shape) for cc in cases)


def _value(p: Predicate, cc) -> bool | None:
    try:
        return p.test(cc)
    except Exception:  # noqa: BLE001 - a predicate that does not apply
        return None


def separate(group, passing, preds) -> tuple[str, list[Predicate]]:
    """How ``group`` (the cases failing one way) differs from ``passing``.

    ("every", [p...]): p holds on every case of the group and on no passing case (several
    when they coincide on these cases); ("and", [p, q]): p and q together do; ("only",
    [p]): p holds on the whole group but on passing cases too; ("", []) otherwise.
    """
    def holds(p, cases, want):
        return all(_value(p, cc) is want for cc in cases)

    if not passing:  # nothing to tell the group from
        return "", []
    literals = list(preds) + [negate(p) for p in preds]
    perfect = [p for p in literals if holds(p, group, True) and holds(p, passing, False)]
    if perfect:
        return "every", perfect
    for p, q in itertools.combinations(literals, 2):
        if p.name.lstrip("!").startswith("mode") and q.name.lstrip("!").startswith("mode"):
            continue
        if p.name.lstrip("!") == q.name.lstrip("!"):
            continue
        if holds(p, group, True) and holds(q, group, True) and all(
                not (_value(p, cc) and _value(q, cc)) for cc in passing):
            return "and", [p, q]
    partial = [p for p in preds if holds(p, group, True)
               and any(_value(p, cc) is False for cc in passing)]
    if partial:  # the one that leaves the fewest passing cases on its side
        best = min(partial, key=lambda p: sum(_value(p, cc) is True for cc in passing))
        return "only", [best]
    return "", []


def negate(p: Predicate) -> Predicate:
    def test(cc):
        v = _value(p, cc)
        return None if v is None else not v
    return Predicate("!" + p.name, p.no, p.yes, test)


def scope_phrase(kind: str, preds: list[Predicate], n: int, total: int,
                 group=(), passing=()) -> str:
    cases = f"{n} of {total} cases"
    if kind == "every":
        p = preds[0]
        also = "".join(f"; so do those with {q.yes}" for q in preds[1:2])
        return f"on every case with {p.yes} and on none with {p.no} ({cases}{also})"
    if kind == "and":
        p, q = preds
        return f"on every case with {p.yes} and {q.yes}, and on none of the others ({cases})"
    if kind == "only":
        p = preds[0]
        with_p = sum(_value(p, cc) is True for cc in passing) + n
        return (f"on {n} of the {with_p} cases with {p.yes} and on none with {p.no} (the "
                "others happen to come out right)")
    if n == total:
        return "on every case"
    return f"on {cases}"


# ---- known mistakes: the reference computed the wrong way ---------------------------------------
def _positions(kind: str, s: int):
    if kind == "strided":
        return lambda h, w: (h * s, w * s)
    if kind == "unstrided":
        return lambda h, w: (h, w)
    if kind == "swapped":
        return lambda h, w: (w * s, h * s)
    raise ValueError(kind)


def conv_forward_variant(A, W, b, s, p, pos="strided", flip=False, bias="once", channel0=False):
    m, H, Wd, C = A.shape
    f, nC = W.shape[0], W.shape[3]
    Ap = np.pad(A, ((0, 0), (p, p), (p, p), (0, 0)))
    n_h, n_w = (H + 2 * p - f) // s + 1, (Wd + 2 * p - f) // s + 1
    K = W[::-1, ::-1] if flip else W
    if channel0:
        K = np.repeat(K[..., :1], nC, axis=3)
    at = _positions(pos, s)
    Z = np.empty((m, n_h, n_w, nC))
    for h in range(n_h):
        for w in range(n_w):
            r, q = at(h, w)
            if r + f > Ap.shape[1] or q + f > Ap.shape[2]:
                return None
            Z[:, h, w, :] = np.tensordot(Ap[:, r:r + f, q:q + f, :], K, axes=([1, 2, 3],
                                                                             [0, 1, 2]))
    bias_v = b.reshape(-1)
    if bias == "once":
        Z += bias_v
    elif bias == "each":
        Z += f * f * C * bias_v
    return Z


def conv_backward_variant(A, W, dZ, s, p, pos="strided", flip=False, assign=False):
    m, H, Wd, C = A.shape
    f = W.shape[0]
    Ap = np.pad(A, ((0, 0), (p, p), (p, p), (0, 0)))
    dAp = np.zeros_like(Ap)
    dW = np.zeros_like(W)
    K = W[::-1, ::-1] if flip else W
    at = _positions(pos, s)
    for h in range(dZ.shape[1]):
        for w in range(dZ.shape[2]):
            r, q = at(h, w)
            if r + f > Ap.shape[1] or q + f > Ap.shape[2]:
                return None
            g = dZ[:, h, w, :]
            contrib = np.einsum("mk,ijck->mijc", g, K)
            if assign:
                dAp[:, r:r + f, q:q + f, :] = contrib
            else:
                dAp[:, r:r + f, q:q + f, :] += contrib
            dW += np.einsum("mijc,mk->ijck", Ap[:, r:r + f, q:q + f, :], g)
    if flip:
        dW = dW[::-1, ::-1]
    return {"dA_prev": dAp[:, p:p + H, p:p + Wd, :], "dW": dW, "db": dZ.sum(axis=(0, 1, 2))}


def pool_forward_variant(A, f, s, mode, pos="strided", reduce=None, divisor=None):
    m, H, Wd, C = A.shape
    n_h, n_w = (H - f) // s + 1, (Wd - f) // s + 1
    at = _positions(pos, s)
    out = np.empty((m, n_h, n_w, C))
    how = reduce or ("max" if mode == "max" else "mean")
    for h in range(n_h):
        for w in range(n_w):
            r, q = at(h, w)
            if r + f > H or q + f > Wd:
                return None
            win = A[:, r:r + f, q:q + f, :]
            if how == "max":
                out[:, h, w, :] = win.max(axis=(1, 2))
            elif how == "min":
                out[:, h, w, :] = win.min(axis=(1, 2))
            else:
                out[:, h, w, :] = win.sum(axis=(1, 2)) / (divisor or f * f)
    return out


def pool_backward_variant(A, dA, f, s, mode, mask_pos="strided", put_pos="strided",
                          route="max", divisor=None, assign=False):
    m, H, Wd, C = A.shape
    out = np.zeros_like(A)
    mask_at, put_at = _positions(mask_pos, s), _positions(put_pos, s)
    for h in range(dA.shape[1]):
        for w in range(dA.shape[2]):
            (r1, q1), (r2, q2) = mask_at(h, w), put_at(h, w)
            if max(r1, r2) + f > H or max(q1, q2) + f > Wd:
                return None
            g = dA[:, h:h + 1, w:w + 1, :]
            if mode == "max":
                win = A[:, r1:r1 + f, q1:q1 + f, :]
                if route == "all":
                    contrib = np.ones_like(win) * g
                else:
                    pick = win.max(axis=(1, 2), keepdims=True) if route == "max" else \
                        win.min(axis=(1, 2), keepdims=True)
                    contrib = (win == pick) * g
            else:
                contrib = np.ones((m, f, f, C)) * g / (divisor or f * f)
            if assign:
                out[:, r2:r2 + f, q2:q2 + f, :] = contrib
            else:
                out[:, r2:r2 + f, q2:q2 + f, :] += contrib
    return out


@dataclass(frozen=True)
class Mistake:
    """A known wrong variant of a function: what it is, the fix, and its outputs on a case."""

    name: str
    what: str
    fix: str
    outputs: Callable[[ConformCase], dict | None]


_STRIDE_FIX = "slide every window by the stride: vert_start = h * stride, horiz_start = w * stride"
_SWAP_FIX = "rows come from h and columns from w: vert_start = h * stride, horiz_start = w * stride"


def _conv_inputs(cc):
    inputs = make_inputs(cc.case)
    return inputs.x, inputs.w, inputs.b.reshape(1, 1, 1, -1), inputs.dy


def _conv_fwd(**kw):
    def outputs(cc):
        A, W, b, _ = _conv_inputs(cc)
        Z = conv_forward_variant(A, W, b, cc.case.stride[0], _hp(cc, "pad"), **kw)
        return None if Z is None else {"Z": Z}
    return outputs


def _conv_fwd_batch(kind):
    def outputs(cc):
        A, W, b, _ = _conv_inputs(cc)
        Z = conv_forward_variant(A, W, b, cc.case.stride[0], _hp(cc, "pad"))
        if kind == "copy":
            Z = np.broadcast_to(Z[:1], Z.shape).copy()
        else:
            Z[1:] = 0
        return {"Z": Z}
    return outputs


def _conv_bwd(**kw):
    def outputs(cc):
        A, W, _, dZ = _conv_inputs(cc)
        return conv_backward_variant(A, W, dZ, cc.case.stride[0], _hp(cc, "pad"), **kw)
    return outputs


def _conv_bwd_edit(kind):
    def outputs(cc):
        A, W, _, dZ = _conv_inputs(cc)
        s, p = cc.case.stride[0], _hp(cc, "pad")
        if kind == "first":
            dZ = dZ.copy()
            dZ[1:] = 0
            return conv_backward_variant(A, W, dZ, s, p)
        ref = conv_backward_variant(A, W, dZ, s, p)
        if kind == "zero-dA":
            return {**ref, "dA_prev": np.zeros_like(A)}
        if kind == "mean":
            m = A.shape[0]
            return {**ref, "dW": ref["dW"] / m, "db": ref["db"] / m}
        if kind == "input":
            return {**ref, "dA_prev": A.copy()}
        raise ValueError(kind)
    return outputs


def _pool_inputs(cc):
    inputs = make_inputs(cc.case)
    return inputs.x, inputs.dy


def _pool_fwd(only=None, **kw):
    def outputs(cc):
        if only and cc.mode != only:
            return None
        A, _ = _pool_inputs(cc)
        mode = kw.get("mode_as", cc.mode)
        args = {k: v for k, v in kw.items() if k != "mode_as"}
        out = pool_forward_variant(A, cc.case.kernel[0], cc.case.stride[0], mode, **args)
        return None if out is None else {"A": out}
    return outputs


def _pool_bwd(only=None, **kw):
    def outputs(cc):
        if only and cc.mode != only:
            return None
        A, dA = _pool_inputs(cc)
        mode = kw.get("mode_as", cc.mode)
        args = {k: v for k, v in kw.items() if k != "mode_as"}
        out = pool_backward_variant(A, dA, cc.case.kernel[0], cc.case.stride[0], mode, **args)
        return None if out is None else {"dA_prev": out}
    return outputs


def _pool_bwd_input(cc):
    A, _ = _pool_inputs(cc)
    return {"dA_prev": A.copy()}


def _f(cc):
    return cc.case.kernel[0]


def _pool_avg_divisor(which, expr):
    def outputs(cc):
        if cc.mode != "average":
            return None
        A, dA = _pool_inputs(cc)
        f, s = _f(cc), cc.case.stride[0]
        d = expr(f)
        if which == "fwd":
            return {"A": pool_forward_variant(A, f, s, "average", divisor=d)}
        return {"dA_prev": pool_backward_variant(A, dA, f, s, "average", divisor=d)}
    return outputs


def _single_step(kind):
    def outputs(cc):
        x = helper_inputs(cc)
        prod = x["a_slice_prev"] * x["W"]
        b = x["b"].item()
        value = {"no-bias": prod.sum(), "each": (prod + b).sum(), "mean": prod.mean() + b,
                 "times": prod.sum() * b}[kind]
        return {"Z": np.array(value)}
    return outputs


def _distribute(kind):
    def outputs(cc):
        dz = helper_inputs(cc)["dz"]
        n_h, n_w = cc.shape
        value = {"sum": dz / (n_h + n_w), "h": dz / n_h, "w": dz / n_w, "none": dz,
                 "times": dz * n_h * n_w, "floor": dz // (n_h * n_w)}[kind]
        return {"a": np.full(cc.shape, value)}
    return outputs


def _mask(kind):
    def outputs(cc):
        x = helper_inputs(cc)["x"]
        mask = {"min": x == x.min(), "not": x != x.max(), "axis0": x == x.max(axis=0),
                "axis1": x == x.max(axis=1, keepdims=True)}[kind]
        return {"mask": mask.astype(np.float64)}
    return outputs


def _zero_pad(mode, **kw):
    def outputs(cc):
        X, p = helper_inputs(cc)["X"], cc.pad
        if p == 0:
            return None
        return {"X_pad": np.pad(X, ((0, 0), (p, p), (p, p), (0, 0)), mode=mode, **kw)}
    return outputs


MISTAKES: dict[str, list[Mistake]] = {
    "conv_forward": [
        Mistake("stride", "the windows slid without the stride (vert_start = h instead of "
                "h * stride)", _STRIDE_FIX, _conv_fwd(pos="unstrided")),
        Mistake("swap", "h and w swapped in the window's corners (vert_start from w, "
                "horiz_start from h)", _SWAP_FIX, _conv_fwd(pos="swapped")),
        Mistake("flip", "the kernel flipped (a true convolution)", "the notebook's "
                "convolution is a correlation: multiply by W as it is, not W[::-1, ::-1]",
                _conv_fwd(flip=True)),
        Mistake("no-bias", "no bias added", "add b[:, :, :, c] once to each output",
                _conv_fwd(bias="none")),
        Mistake("bias-each", "the bias added to every product of the window (f * f * "
                "n_C_prev times) instead of once", "add b after the sum, once per output",
                _conv_fwd(bias="each")),
        Mistake("channel0", "every output channel computed with the first filter",
                "output channel c uses W[:, :, :, c] and b[:, :, :, c]",
                _conv_fwd(channel0=True)),
        Mistake("first-copy", "every example computed from the first one",
                "example i uses A_prev_pad[i]", _conv_fwd_batch("copy")),
        Mistake("first-only", "only the first example computed (the others left 0)",
                "loop over every example, for i in range(m)", _conv_fwd_batch("zero")),
    ],
    "conv_backward": [
        Mistake("stride", "the backward windows slid without the stride (vert_start = h "
                "instead of h * stride), as in the notebook's listing", _STRIDE_FIX,
                _conv_bwd(pos="unstrided")),
        Mistake("swap", "h and w swapped in the window's corners", _SWAP_FIX,
                _conv_bwd(pos="swapped")),
        Mistake("assign", "each window's gradient written with = instead of added with +=, "
                "so overlapping windows overwrite each other",
                "accumulate: da_prev_pad[...] += W[:, :, :, c] * dZ[i, h, w, c]",
                _conv_bwd(assign=True)),
        Mistake("flip", "the kernel flipped", "use W as it is, not W[::-1, ::-1]",
                _conv_bwd(flip=True)),
        Mistake("zero-dA", "an all-zero dA_prev (the gradient accumulated into a copy that "
                "is never written back)", "write each example's cropped da_prev_pad into "
                "dA_prev[i, :, :, :]; a slice of a padded copy is a new array, not a view of "
                "dA_prev", _conv_bwd_edit("zero-dA")),
        Mistake("first", "only the first example's gradient (the others ignored)",
                "loop over every example, for i in range(m), and add its terms to dW and db",
                _conv_bwd_edit("first")),
        Mistake("mean", "dW and db divided by the batch size m", "sum over the batch: "
                "the notebook's gradients are sums, not means", _conv_bwd_edit("mean")),
        Mistake("input", "A_prev returned as dA_prev (the input, not its gradient)",
                "return dA_prev, the gradient", _conv_bwd_edit("input")),
    ],
    "pool_forward": [
        Mistake("stride", "the windows slid without the stride (vert_start = h instead of "
                "h * stride)", _STRIDE_FIX, _pool_fwd(pos="unstrided")),
        Mistake("swap", "h and w swapped in the window's corners", _SWAP_FIX,
                _pool_fwd(pos="swapped")),
        Mistake("mode-max", "max pooling where mode is 'average'", "test mode == "
                "'average', as the notebook spells it (not 'avg' or 'mean')",
                _pool_fwd(only="average", mode_as="max")),
        Mistake("mode-avg", "average pooling where mode is 'max'", "test mode == 'max'",
                _pool_fwd(only="max", mode_as="average")),
        Mistake("min", "the minimum of each window instead of the maximum", "use np.max",
                _pool_fwd(only="max", reduce="min")),
        Mistake("div-f", "the window's sum divided by f instead of f * f",
                "divide by f * f, or use np.mean", _pool_avg_divisor("fwd", lambda f: f)),
        Mistake("div-2f", "the window's sum divided by f + f instead of f * f",
                "divide by f * f, or use np.mean", _pool_avg_divisor("fwd", lambda f: 2 * f)),
        Mistake("sum", "the window's sum, not its mean", "divide by f * f, or use np.mean",
                _pool_avg_divisor("fwd", lambda f: 1)),
    ],
    "pool_backward": [
        Mistake("stride", "the backward windows slid without the stride (vert_start = h "
                "instead of h * stride), as in the notebook's listing", _STRIDE_FIX,
                _pool_bwd(mask_pos="unstrided", put_pos="unstrided")),
        Mistake("mask-stride", "the max mask taken from the window without the stride "
                "(A_prev[i, h:h + f, w:w + f, c]) while the gradient goes into the strided "
                "one", "take a_prev_slice at vert_start = h * stride, horiz_start = w * "
                "stride, the window the gradient goes to", _pool_bwd(
                    only="max", mask_pos="unstrided")),
        Mistake("put-stride", "the gradient put into the window without the stride while the "
                "mask comes from the strided one", _STRIDE_FIX,
                _pool_bwd(only="max", put_pos="unstrided")),
        Mistake("swap", "h and w swapped in the window's corners", _SWAP_FIX,
                _pool_bwd(mask_pos="swapped", put_pos="swapped")),
        Mistake("min", "the gradient routed to the minimum of each window", "the mask is "
                "x == np.max(x)", _pool_bwd(only="max", route="min")),
        Mistake("no-mask", "the whole gradient given to every cell of the window (no mask)",
                "multiply by the mask of the window's maximum", _pool_bwd(only="max",
                                                                         route="all")),
        Mistake("assign", "each window's gradient written with = instead of added with +=, "
                "so overlapping windows overwrite each other", "accumulate: dA_prev[...] += ...",
                _pool_bwd(assign=True)),
        Mistake("mode-max", "the max-pool gradient where mode is 'average'", "test mode == "
                "'average', as the notebook spells it", _pool_bwd(only="average",
                                                                   mode_as="max")),
        Mistake("mode-avg", "the average-pool gradient where mode is 'max'", "test mode == "
                "'max'", _pool_bwd(only="max", mode_as="average")),
        Mistake("div-f", "the average gradient divided by f instead of f * f",
                "distribute dA / (f * f) over the window", _pool_avg_divisor("bwd",
                                                                          lambda f: f)),
        Mistake("div-2f", "the average gradient divided by f + f instead of f * f",
                "distribute dA / (f * f) over the window (distribute_value's n_H * n_W)",
                _pool_avg_divisor("bwd", lambda f: 2 * f)),
        Mistake("div-1", "the average gradient not divided at all", "distribute dA / (f * f)",
                _pool_avg_divisor("bwd", lambda f: 1)),
        Mistake("input", "A_prev returned as dA_prev (the input, not its gradient)",
                "return dA_prev, the gradient", _pool_bwd_input),
    ],
    "conv_single_step": [
        Mistake("no-bias", "no bias added", "add b once: np.sum(s) + b.item()",
                _single_step("no-bias")),
        Mistake("bias-each", "the bias added to every product (f * f * n_C_prev times)",
                "add b after the sum: np.sum(a_slice_prev * W) + b.item()",
                _single_step("each")),
        Mistake("mean", "the mean of the products instead of their sum", "use np.sum",
                _single_step("mean")),
        Mistake("times", "the sum multiplied by b instead of adding it", "add b",
                _single_step("times")),
    ],
    "distribute_value": [
        Mistake("sum", "dz divided by n_H + n_W instead of n_H * n_W (the same only for a "
                "2 x 2 window)", "average = dz / (n_H * n_W)", _distribute("sum")),
        Mistake("h", "dz divided by n_H only", "average = dz / (n_H * n_W)", _distribute("h")),
        Mistake("w", "dz divided by n_W only", "average = dz / (n_H * n_W)", _distribute("w")),
        Mistake("none", "dz itself in every cell, not divided", "average = dz / (n_H * n_W)",
                _distribute("none")),
        Mistake("times", "dz multiplied by n_H * n_W instead of divided",
                "average = dz / (n_H * n_W)", _distribute("times")),
        Mistake("floor", "dz floor-divided (//)", "divide with /", _distribute("floor")),
    ],
    "create_mask_from_window": [
        Mistake("min", "the minimum marked instead of the maximum", "mask = x == np.max(x)",
                _mask("min")),
        Mistake("not", "every cell but the maximum marked", "mask = x == np.max(x)",
                _mask("not")),
        Mistake("axis0", "the maximum of each column marked (np.max(x, axis=0))",
                "the maximum of the whole window: np.max(x)", _mask("axis0")),
        Mistake("axis1", "the maximum of each row marked (np.max(x, axis=1))",
                "the maximum of the whole window: np.max(x)", _mask("axis1")),
    ],
    "zero_pad": [
        Mistake("edge", "the border filled with the edge values (mode 'edge')",
                "np.pad(X, ..., mode='constant', constant_values=0)", _zero_pad("edge")),
        Mistake("reflect", "the border filled by reflection (mode 'reflect')",
                "np.pad(X, ..., mode='constant', constant_values=0)", _zero_pad("reflect")),
        Mistake("ones", "the border filled with ones", "constant_values=0",
                _zero_pad("constant", constant_values=1)),
    ],
}


def _same(got, want) -> bool:
    got, want = np.asarray(got, float), np.asarray(want, float)
    if got.shape != want.shape:
        return got.size == want.size and _same(got.reshape(want.shape), want)
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.abs(got - want) <= 1e-9 * scale + 1e-12)
                    and not np.isnan(got).any())


def match_mistakes(function: str, group: list, passing: list) -> tuple[Mistake | None, list]:
    """The known mistake whose outputs equal the target's on every case of ``group`` (and
    that agrees with the reference on the passing cases), else (None, partial matches)."""
    full, partial = None, []
    for mistake in MISTAKES.get(function, ()):
        matched = applicable = differs = 0
        for o in group:
            try:
                outs = mistake.outputs(conform_case(o.case_id))
            except Exception:  # noqa: BLE001 - a variant that does not apply to the case
                outs = None
            if outs is None:
                continue
            applicable += 1
            if all(k in o.got for k in outs) and all(_same(o.got[k], v) for k, v in
                                                     outs.items()):
                matched += 1
                differs += any(not _same(o.want[k], v) for k, v in outs.items() if k in o.want)
        if not applicable or not matched or not differs:
            continue
        if matched == applicable and matched * 2 > len(group) and _consistent(mistake,
                                                                                 passing):
            full = full or mistake
        elif matched * 2 >= len(group):
            partial.append((mistake, matched))
    return full, partial


def _consistent(mistake: Mistake, passing: list) -> bool:
    """The variant gives the reference's answer on every passing case (else the target,
    which passed them, is not that variant)."""
    for o in passing[:12]:
        try:
            outs = mistake.outputs(conform_case(o.case_id))
        except Exception:  # noqa: BLE001
            continue
        if outs is None:
            continue
        if not all(k in o.want and _same(o.want[k], v) for k, v in outs.items()):
            return False
    return True


def precision(group: list) -> str | None:
    """The failing values are right to float32 (or float16, or integer) precision only."""
    worst = 0.0
    truncated = True
    for o in group:
        for name in o.wrong:
            got, want = o.got.get(name), o.want.get(name)
            if got is None or want is None or np.shape(got) != np.shape(want):
                return None
            with np.errstate(invalid="ignore", divide="ignore"):
                if not np.all(np.isfinite(got)):
                    return None
                scale = max(float(np.max(np.abs(want))), 1e-300)
                worst = max(worst, float(np.max(np.abs(got - want))) / scale)
                truncated &= bool(np.array_equal(got, np.trunc(want)))
    if truncated and worst > 0:
        return ("the values are the reference truncated to integers: an array made with an "
                "integer dtype (np.zeros(shape, dtype=int)) keeps only the integer part; "
                "make it float")
    if 0 < worst <= 2.0 ** -21:
        return ("the values are right to about 7 significant digits only: something is "
                "float32 (an array made with dtype=np.float32, or float32 inputs); "
                "conform works in float64, keep every array float64")
    if 0 < worst <= 2.0 ** -9:
        return ("the values are right to about 3 significant digits only: something is "
                "float16; keep every array float64")
    return None


# ---- targeted extra cases -----------------------------------------------------------------------
#: The small cases extra runs start from, and the one-parameter changes they try:
#: (m, n_H_prev, n_W_prev, n_C_prev, n_C, f, stride, pad) and (m, n_H_prev, n_W_prev, n_C, f,
#: stride).
CONV_BASE = (1, 4, 4, 1, 1, 2, 1, 0)
CONV_CHANGES = {"stride 2": {6: 2}, "pad 1": {7: 1}, "m 2": {0: 2}, "n_W_prev 5": {2: 5},
                "n_C_prev 2": {3: 2}, "n_C 2": {4: 2}, "f 3": {5: 3}}
POOL_BASE = (1, 4, 4, 1, 2, 1)
POOL_CHANGES = {"stride 2": {5: 2}, "m 2": {0: 2}, "n_W_prev 5": {2: 5}, "n_C 2": {3: 2},
                "f 3": {4: 3}}


def _changed(base, changes: dict):
    g = list(base)
    for i, v in changes.items():
        g[i] = v
    return tuple(g)


def extra_cases(function: str, seed: int = 0, modes=("max", "average"),
                base_change: tuple[str, dict] | None = None) -> list[tuple[str, ConformCase]]:
    """(what changed, case) for a small case and each one-parameter change from it.

    ``base_change``: (label, change) applied to the small case first (a second round, from a
    changed case that passed when the smallest one failed).
    """
    out = []
    if function in ("conv_forward", "conv_backward"):
        base, changes, make = CONV_BASE, CONV_CHANGES, notebook_conv_case
        direction = "forward" if function == "conv_forward" else "backward"
        variants = [(None, lambda g: make(direction, *g, seed=seed))]
    elif function in ("pool_forward", "pool_backward"):
        base, changes, make = POOL_BASE, POOL_CHANGES, notebook_pool_case
        direction = "forward" if function == "pool_forward" else "backward"
        variants = [(mode, lambda g, op=("max_pool2d" if mode == "max" else "avg_pool2d"):
                     make(op, direction, *g, seed=seed)) for mode in modes]
    else:
        return []
    prefix = ""
    if base_change is not None:
        prefix = base_change[0] + " and "
        base = _changed(base, base_change[1])
        changes = {k: v for k, v in changes.items() if set(v) - set(base_change[1])}
    for mode, build in variants:
        tail = f", mode '{mode}'" if mode else ""
        todo = [] if base_change else [("the smallest case", {})]
        for label, change in todo + [(prefix + k, v) for k, v in changes.items()]:
            try:
                case = from_case(build(_changed(base, change)))
            except ValueError:
                continue
            out.append((label + tail, case))
    return out


# ---- putting it together ------------------------------------------------------------------------
_FORWARD_OF = {"conv_backward": "conv_forward", "pool_backward": "pool_forward"}
_HELPERS_OF = {"conv_forward": ("zero_pad", "conv_single_step"),
               "pool_backward": ("create_mask_from_window", "distribute_value")}


def _signature(o: CaseOutcome) -> tuple:
    if o.failure == "raised" and o.raised:
        return ("raised", o.raised.get("type"), o.raised.get("where"),
                o.raised.get("function"))
    if o.failure == "values":
        return ("values", tuple(o.wrong))
    if o.failure == "shape":
        return ("shape", tuple(sorted(o.shapes)))
    if o.failure == "mutated":
        return ("mutated", tuple(o.mutated))
    return (o.failure or o.status,)


def _what(sig: tuple, group: list, function: str, outputs: tuple) -> str:
    first = group[0]
    kind = sig[0]
    if kind == "raised":
        r = first.raised
        msg = " ".join(r.get("message", "").split())
        if len(msg) > 100 and ". " in msg:  # NumPy's long messages: their first sentence
            msg = msg.split(". ", 1)[0] + "."
        msg = msg if len(msg) <= 120 else msg[:117] + "..."
        who = f"{r['function']} " if r.get("function") and r["function"] != function else ""
        where = f" at {r['where']}" if r.get("where") else ""
        return f"{who}raises {r['type']} ({msg}){where}".replace("( )", "")
    if kind == "values":
        wrong = list(sig[1])
        right = [o for o in outputs if o not in wrong]
        return (f"wrong values in {_and(wrong)}" + (f" ({_and(right)} right)" if right else ""))
    if kind == "shape":
        names = list(sig[1])
        m = re.search(r"has shape (\(.*?\)), expected (\(.*?\))", first.message)
        example = f" (e.g. {m[1]} instead of {m[2]})" if m else ""
        return f"{_and(names)} of the wrong shape{example}"
    if kind == "mutated":
        return f"modifies its input {_and(list(sig[1]))} in place"
    if kind == "scalar":
        shape = first.shapes.get("Z")
        return (f"returns Z as an array of shape {tuple(shape) if shape else '?'} where the API "
                "says a scalar (its value is right),")
    return first.message.split(":")[0] if first.message else kind


def _and(items: list) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


OUTPUTS = {"conv_backward": ("dA_prev", "dW", "db"), "conv_forward": ("Z",),
           "pool_forward": ("A",), "pool_backward": ("dA_prev",), "zero_pad": ("X_pad",),
           "conv_single_step": ("Z",), "create_mask_from_window": ("mask",),
           "distribute_value": ("a",)}


def diagnose_function(function: str, outcomes: list, *, verdicts: dict | None = None,
                      plan: dict | None = None, extra: list | None = None) -> list[str]:
    """The diagnosis of one function: sentences, most telling first.

    ``outcomes``: its sweep cases' outcomes; ``extra``: (what changed, outcome) of targeted
    extra cases already run; ``verdicts``: every function's verdict (for the sentences that
    name another function); ``plan``: a notebook's plan (for the cells that do not run).
    """
    judged = [o for o in outcomes if o.status == ConformStatus.PASSED or o.status in FAILING]
    failing = [o for o in judged if o.status in FAILING]
    if not failing:
        return _cache_note(function, outcomes)
    extra = extra or []
    passing = [o for o in judged if o.status == ConformStatus.PASSED]
    extra_pass = [o for _, o in extra if o.status == ConformStatus.PASSED]
    preds = predicates(function, [conform_case(o.case_id) for o in judged])
    assigned = (plan or {}).get("assigned_elsewhere", {})
    sentences: list[str] = []
    groups: dict[tuple, list] = {}
    for o in failing:
        groups.setdefault(_signature(o), []).append(o)
    for _, o in extra:  # a failure only the extra cases show (hidden behind another)
        if o.status in FAILING:
            groups.setdefault(_signature(o), [])
    labels = {id(o): label for label, o in extra}
    for sig, group in groups.items():
        extra_group = [o for _, o in extra if o.status in FAILING and _signature(o) == sig]
        pool = passing + extra_pass
        group_cases = [conform_case(o.case_id) for o in group + extra_group]
        pool_cases = [conform_case(o.case_id) for o in pool]
        kind, which = separate(group_cases, pool_cases, preds)
        shown = group or extra_group
        if group:
            scope = scope_phrase(kind, which, len(group), len(judged), group_cases, pool_cases)
            text = f"{_what(sig, shown, function, OUTPUTS.get(function, ()))} {scope}"
            text += _extra_phrase(extra, sig)
        else:
            names = [labels[id(o)] for o in extra_group]
            text = (f"{_what(sig, shown, function, OUTPUTS.get(function, ()))} on the extra "
                    f"case{'s' if len(names) > 1 else ''} {_and(names)}, which the failures "
                    "above hide in the sweep")
            if kind == "every" and len(which) == 1:
                text += f" (every extra case with {which[0].yes} and none with {which[0].no})"
        sentences.append(text)
        group = group + extra_group
        if sig[0] == "values":
            mistake, partial = match_mistakes(function, group, passing + extra_pass)
            if mistake is not None:
                are = "is" if len(sig[1]) == 1 else "are"
                sentences.append(f"{_and(list(sig[1]))} {are} exactly what the reference gives "
                                 f"with {mistake.what}; fix: {mistake.fix}")
            else:
                for m, k in partial[:1]:
                    sentences.append(f"on {k} of these {len(group)} cases they are exactly "
                                     f"what the reference gives with {m.what}; fix: {m.fix}")
                note = precision(group)
                if note:
                    sentences.append(note)
        for o in group:  # the case hints, the notebook's cells named where it helps
            hs = list(o.hints)
            if o.raised and o.raised.get("type") in ("NameError", "UnboundLocalError"):
                hs = [h for h in hs if "global" not in h and "does not define" not in h]
                hs = hints.raised_hints(o.raised, conform_case(o.case_id), assigned) + hs
            for h in hs:
                if h not in sentences:
                    sentences.append(h)
        if sig[0] == "raised" and (which and which[0].name == "nonsquare"
                                   or which and which[0].name == "nonsquare-out"):
            sentences.append("it breaks only on non-square inputs: h and w are probably "
                             "swapped somewhere (a window's corners, or n_H and n_W)")
        if sig[0] == "mutated":
            sentences.append("a function must leave its inputs alone: an in-place operation "
                             "(+=, /=, x[...] = ...) on an argument, or on a view of one "
                             "(A_prev[i] is a view), changes the caller's array; work on a "
                             "new array (dA / (f * f)) or on a .copy()")
    sentences += _cross_function(function, failing, groups, verdicts or {}, len(judged))
    sentences += _cache_note(function, outcomes)
    return list(dict.fromkeys(sentences))


def _extra_phrase(extra: list, sig: tuple) -> str:
    """What the one-parameter-at-a-time extra cases showed about this way of failing."""
    if not extra:
        return ""
    base = [(label, o) for label, o in extra if label.startswith("the smallest case")]
    same = [label for label, o in extra if o.status in FAILING and _signature(o) == sig]
    if base and any(_signature(o) == sig for _, o in base if o.status in FAILING):
        modes = [label.split(", ", 1)[1] for label, o in base if "," in label
                 and o.status in FAILING and _signature(o) == sig]
        return ("; it happens even on the smallest extra case (m = 1, 4 x 4, one channel, "
                f"f = 2, stride 1{', pad 0' if not modes else ''}"
                + (f", {_and(modes)}" if modes else "") + ")")
    changes = sorted({label.split(",")[0] for label in same})
    if not changes:
        return ""
    if base and all(o.status == ConformStatus.PASSED for _, o in base):
        return (f"; on extra cases that change one parameter of a small case that passes, "
                f"only {_and(changes)} fail{'s' if len(changes) == 1 else ''} this way")
    return f"; so do the extra cases with {_and(changes)}"


def _cross_function(function, failing, groups, verdicts, total) -> list[str]:
    out = []
    bad = {name for name, v in verdicts.items() if v.verdict == ConformVerdict.NOT_CONFORMANT}
    if function == "conv_forward" and "conv_single_step" in verdicts:
        single = verdicts["conv_single_step"]
        scalar = any(o.failure == "scalar" or "Z" in o.shapes for o in single.failures)
        seq = any(o.raised and "setting an array element with a sequence"
                  in o.raised.get("message", "") for o in failing)
        if scalar and seq:
            out.append("the cause is conv_single_step: it returns a (1, 1, 1) array (see "
                       "conv_single_step), which NumPy 2 will not store in the one element "
                       "Z[i, h, w, c]; once conv_single_step returns a scalar, conv_forward "
                       "can be judged")
    for helper in _HELPERS_OF.get(function, ()):
        if helper in bad and not (function == "conv_forward" and helper == "conv_single_step"
                                  and out):
            out.append(f"{helper} is not conformant either: if {function} calls it (the "
                       f"notebook's does), fix {helper} first")
    if function == "pool_backward":
        modes = {conform_case(o.case_id).mode for o in failing}
        if modes == {"average"} and "distribute_value" in bad:
            out.append("pool_backward fails only in average mode, where the notebook's "
                       "pool_backward calls distribute_value, which is not conformant")
        if modes == {"max"} and "create_mask_from_window" in bad:
            out.append("pool_backward fails only in max mode, where the notebook's "
                       "pool_backward calls create_mask_from_window, which is not conformant")
    return out


def _cache_note(function, outcomes) -> list[str]:
    """Say which cases of a backward function were judged with the reference's cache (its
    own forward failed on them), and which on its own forward's cache after all."""
    forward = _FORWARD_OF.get(function)
    if not forward:
        return []
    judged = [o for o in outcomes if o.status == ConformStatus.PASSED or o.status in FAILING]
    out = []
    for cache in ("reference", "own"):
        mine = [o for o in judged if o.cache == cache]
        if not mine:
            continue
        problems: dict[str, int] = {}
        for o in mine:
            why = o.note.split(f"the target's {forward} ", 1)[-1].split(" on this case")[0]
            why = re.sub(r"of shape \(.*?\) instead of \(.*?\)", "of the wrong shape", why)
            problems[why] = problems.get(why, 0) + 1
        whys = "; ".join(f"{why} ({n} case{'s' if n != 1 else ''})" if len(problems) > 1
                         else why for why, n in problems.items())
        if cache == "reference":
            layout = mine[0].note.split("(", 1)[1].split(")", 1)[0] if "(" in mine[0].note \
                else ""
            out.append(f"judged on its own, with the reference's cache ({layout}), on "
                       f"{len(mine)} of {len(judged)} cases, where the target's {forward} "
                       f"{whys}; see {forward} for that")
        else:
            out.append(f"judged with its own {forward}'s cache on {len(mine)} of {len(judged)} "
                       f"cases although that {forward} {whys}: {function} does not take the "
                       "notebook's cache, so the reference's could not stand in")
    return out


def needs_extra(function: str, outcomes: list) -> bool:
    """Whether the sweep alone leaves the diagnosis ambiguous: no case passed, or a failure
    group that no single parameter separates from the passing cases."""
    if function not in ("conv_forward", "conv_backward", "pool_forward", "pool_backward"):
        return False
    judged = [o for o in outcomes if o.status == ConformStatus.PASSED or o.status in FAILING]
    failing = [o for o in judged if o.status in FAILING]
    if not failing:
        return False
    passing = [o for o in judged if o.status == ConformStatus.PASSED]
    if not passing:
        return True
    groups: dict[tuple, list] = {}
    for o in failing:
        groups.setdefault(_signature(o), []).append(o)
    preds = predicates(function, [])
    for group in groups.values():
        kind, which = separate([conform_case(o.case_id) for o in group],
                               [conform_case(o.case_id) for o in passing], preds)
        if kind != "every" or len(which) > 1:
            return True
    return False


def run_extra(runner, function: str, spec: str, outcomes: list, seed: int = 0) -> list:
    """Run the targeted extra cases of ``function`` through ``runner``: [(label, outcome)].

    First a small case and each one-parameter change from it; when the small case fails and
    a change passes, a second round from that passing change, so that a bug hidden behind
    another (the notebook's crop at pad 0 hides its ignored stride) still shows.
    """
    modes = sorted({conform_case(o.case_id).mode for o in outcomes if o.status in FAILING}
                   - {None}) or ("max", "average")
    out: list = []

    def run(cases) -> bool:
        for label, cc in cases:
            outcome = runner.check(cc) if hasattr(runner, "check") else run_check(runner, cc,
                                                                                   spec)
            outcome.extra = True
            out.append((label, outcome))
            if outcome.status not in (ConformStatus.PASSED, *FAILING):  # stopped: no more extras
                return False
        return True

    if not run(extra_cases(function, seed, modes)):
        return out
    base_failed = all(o.status in FAILING for label, o in out
                      if label.startswith("the smallest case"))
    changes = CONV_CHANGES if function.startswith("conv") else POOL_CHANGES
    passed = [label.split(",")[0] for label, o in out if o.status == ConformStatus.PASSED
              and not label.startswith("the smallest case")]
    if base_failed and passed:
        first = passed[0]
        run(extra_cases(function, seed, modes, (first, changes[first])))
    return out
