"""``crosscheck conform TARGET``: check any implementation of the notebook's API against refcnn.

A target is an importable module, a path to a ``.py`` file, or ``module:object``
(``path.py:object`` too; a class is instantiated) providing any subset of
:data:`FUNCTIONS` with the notebook's signatures: NHWC arrays, ``hparameters``
with ``stride``/``pad`` (conv) or ``f``/``stride`` (pool), and caches that are
opaque to us, passed back to the target's own backward functions.

Each provided function runs over a conformance sweep chosen to expose the bugs
people really make (strides 1-3 with sizes where ``n_H + 2*pad - f`` is not a
multiple of the stride, pad 0, non-square inputs, ``n_C_prev != n_C``, batches
above 1, overlapping, touching and gapped pooling windows). Each case checks the
output shapes first, then the values against refcnn in float64 under the
rounding-error bounds of :mod:`crosscheck.tolerance`, then that no input array
was modified. Inputs are continuous random values, so ties never decide a
verdict; ``strict`` adds probes that *report* the tie and NaN conventions the
target follows (they never fail it).

The target runs in a worker process (:class:`TargetProcess`): a case that takes
longer than ``timeout`` seconds is stopped with a clear message, the worker is
restarted and the function's remaining cases are skipped.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import io
import json
import math
import os
import re
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field

import numpy as np

from crosscheck.cases import Case, make_inputs
from crosscheck.compare import Discrepancy, compare
from crosscheck.tolerance import UNIT_ROUNDOFF, Bound, bounds

FUNCTIONS = ("zero_pad", "conv_single_step", "conv_forward", "conv_backward", "pool_forward",
             "pool_backward", "create_mask_from_window", "distribute_value")

CONFORMANT, NOT_CONFORMANT, NOT_PROVIDED = "conformant", "not conformant", "not provided"


class TargetError(Exception):
    """The target cannot be imported, or provides none of the requested functions."""


# ---- the conformance sweep -------------------------------------------------------------------------
#: Conv geometries (m, n_H_prev, n_W_prev, n_C_prev, n_C, f, stride, pad). The comment says
#: which bug each one is there to catch; (n + 2*pad - f) % stride != 0 marks a dropped remainder.
CONV_GEOMETRIES = (
    (1, 4, 4, 1, 1, 2, 1, 0),   # the simplest case: a wrong answer here is not about geometry
    (2, 5, 7, 3, 2, 3, 1, 1),   # non-square, n_C_prev != n_C, pad 1 (the da_prev_pad crop)
    (2, 8, 6, 3, 4, 3, 2, 0),   # stride 2, pad 0 (pad:-pad crops to nothing), 5 % 2 and 3 % 2
    (3, 10, 8, 2, 3, 3, 2, 1),  # stride 2 with a remainder on both axes, batch 3
    (2, 10, 9, 4, 2, 2, 3, 0),  # stride 3 > f: gaps between windows, remainders 2 and 1
    (2, 7, 11, 3, 5, 4, 3, 2),  # stride 3, even f, pad 2, remainders 1 and 2
    (1, 6, 5, 2, 3, 5, 1, 2),   # large kernel, 'same'-like pad
    (2, 6, 5, 3, 2, 1, 2, 0),   # 1x1 kernel with stride 2
    (3, 4, 7, 5, 4, 2, 2, 1),   # even kernel, pad 1, stride 2 with a remainder on W
    (2, 5, 6, 2, 2, 3, 1, 3),   # pad larger than f - 1: whole windows of zeros
    (1, 3, 3, 2, 4, 3, 1, 0),   # a 1x1 output
)

#: Pool geometries (m, n_H_prev, n_W_prev, n_C, f, stride), each in max and average mode.
POOL_GEOMETRIES = (
    (2, 4, 4, 3, 2, 2),   # touching windows (stride == f), no remainder
    (2, 5, 7, 2, 3, 1),   # overlapping windows, non-square
    (3, 7, 8, 2, 3, 2),   # overlapping, stride 2, remainder on W
    (2, 9, 6, 3, 2, 3),   # gaps between windows (stride > f), remainders on both axes
    (1, 8, 5, 1, 4, 3),   # overlapping, stride 3, remainders
    (2, 6, 9, 4, 3, 3),   # touching 3x3 windows
    (2, 5, 6, 2, 1, 2),   # 1x1 windows with stride 2
    (2, 7, 7, 3, 5, 1),   # large overlapping windows
)

ZERO_PAD_SHAPES = (((2, 3, 4, 2), 1), ((1, 4, 4, 3), 0), ((3, 2, 5, 1), 3), ((2, 5, 3, 4), 2))
SINGLE_STEP_SHAPES = ((3, 4), (1, 1), (2, 3), (5, 2))      # (f, n_C_prev)
MASK_SHAPES = ((2, 2), (3, 3), (2, 3), (4, 1), (5, 5))
DISTRIBUTE_SHAPES = ((2, 2), (3, 3), (2, 3), (4, 1), (1, 5), (3, 4))


@dataclass(frozen=True)
class ConformCase:
    """One call (or forward-then-backward pair) of one notebook function.

    ``case`` is the refcnn case for conv and pool functions (float64, square
    kernel, equal strides, symmetric int padding); the helpers use ``shape``,
    ``pad`` and ``seed``. ``probe`` names a strict-only convention probe.
    """

    function: str
    id: str
    case: Case | None = None
    shape: tuple[int, ...] = ()
    pad: int = 0
    seed: int = 0
    probe: str | None = None

    @property
    def mode(self) -> str | None:
        if self.case is None or self.case.is_conv:
            return None
        return "max" if self.case.op == "max_pool2d" else "average"

    def hparameters(self) -> dict:
        c = self.case
        if c.is_conv:
            return {"stride": int(c.stride[0]), "pad": int(c.padding[0][0])}
        return {"f": int(c.kernel[0]), "stride": int(c.stride[0])}

    def params(self) -> dict:
        """The parameters a person needs to picture the case."""
        c = self.case
        if c is None:
            p = {"shape": list(self.shape), "seed": self.seed}
            if self.function == "zero_pad":
                p["pad"] = self.pad
            return p
        p = {"A_prev": [c.n, c.h, c.w, c.c_in]}
        if c.is_conv:
            p["W"] = [c.kernel[0], c.kernel[1], c.c_in, c.c_out]
        else:
            p["mode"] = self.mode
        p.update(self.hparameters())
        p["out"] = list(c.out_hw())
        if c.inputs != "random":
            p["inputs"] = c.inputs
        return p


def _conv_case(direction, m, h, w, c_prev, c, f, stride, pad, inputs="random") -> Case:
    return Case("conv2d", direction, m, h, w, c_prev, c, (f, f), (stride, stride),
                ((pad, pad), (pad, pad)), inputs=inputs)


def _pool_case(op, direction, m, h, w, c, f, stride, inputs="random") -> Case:
    return Case(op, direction, m, h, w, c, c, (f, f), (stride, stride), inputs=inputs)


def from_case(case: Case) -> ConformCase:
    """The conformance case for a refcnn case the notebook API can express (else ValueError)."""
    problems = []
    if case.kernel[0] != case.kernel[1]:
        problems.append("the notebook's f is square")
    if case.stride[0] != case.stride[1]:
        problems.append("the notebook's stride is one int")
    if case.dilation != (1, 1):
        problems.append("the notebook has no dilation")
    if case.dtype != "float64":
        problems.append("conformance runs in float64")
    if case.is_conv:
        pads = case.padding
        if isinstance(pads, str) or len({*pads[0], *pads[1]}) != 1:
            problems.append("the notebook's pad is one symmetric int")
        if case.groups != 1 or not case.bias:
            problems.append("the notebook's conv has one group and a bias")
    else:
        if case.padding != ((0, 0), (0, 0)) or case.ceil_mode or case.divisor_override:
            problems.append("the notebook's pooling has no padding, ceil_mode or divisor")
    if problems:
        raise ValueError(f"case {case.id} cannot be expressed in the notebook API: "
                         + "; ".join(problems))
    if case.is_conv:
        function = "conv_forward" if case.direction == "forward" else "conv_backward"
    else:
        function = "pool_forward" if case.direction == "forward" else "pool_backward"
    probe = None if case.inputs == "random" else f"{case.op} {case.direction} on {case.inputs}"
    return ConformCase(function, case.id, case, probe=probe)


def _helper_case(function: str, shape, seed: int = 0, pad: int = 0, probe=None) -> ConformCase:
    dims = "x".join(str(s) for s in shape)
    if function == "zero_pad":
        m, h, w, c = shape
        case_id = f"zero_pad-n{m}h{h}w{w}c{c}-p{pad}-s{seed}"
    elif function == "conv_single_step":
        f, c = shape[0], shape[2]
        case_id = f"conv_single_step-k{f}x{f}c{c}-s{seed}"
    else:
        case_id = f"{function}-{dims}" + ("-ties" if probe else "") + f"-s{seed}"
    return ConformCase(function, case_id, shape=tuple(shape), pad=pad, seed=seed, probe=probe)


_HELPER_RE = re.compile(
    r"zero_pad-n(?P<m>\d+)h(?P<h>\d+)w(?P<w>\d+)c(?P<c>\d+)-p(?P<pad>\d+)-s(?P<seed>\d+)"
    r"|conv_single_step-k(?P<f>\d+)x\d+c(?P<fc>\d+)-s(?P<fseed>\d+)"
    r"|(?P<fn>create_mask_from_window|distribute_value)-(?P<dims>\d+x\d+)(?P<ties>-ties)?"
    r"-s(?P<hseed>\d+)")


def conform_case(case_id: str) -> ConformCase:
    """Parse a conformance case id (a refcnn case id, or a helper's id) back into the case."""
    m = _HELPER_RE.fullmatch(case_id)
    if m is None:
        return from_case(Case.from_id(case_id))
    g = m.groupdict()
    if g["m"]:
        return _helper_case("zero_pad", tuple(int(g[k]) for k in "mhwc"), int(g["seed"]),
                            pad=int(g["pad"]))
    if g["f"]:
        f = int(g["f"])
        return _helper_case("conv_single_step", (f, f, int(g["fc"])), int(g["fseed"]))
    dims = tuple(int(v) for v in g["dims"].split("x"))
    probe = "ties" if g["ties"] else None
    return _helper_case(g["fn"], dims, int(g["hseed"]), probe=probe)


def conformance_cases(functions=None, strict: bool = False) -> list[ConformCase]:
    """The conformance sweep, function by function in :data:`FUNCTIONS` order (deterministic)."""
    wanted = set(functions or FUNCTIONS)
    out: list[ConformCase] = []
    if "zero_pad" in wanted:
        out += [_helper_case("zero_pad", s, i, pad=p) for i, (s, p) in enumerate(ZERO_PAD_SHAPES)]
    if "conv_single_step" in wanted:
        out += [_helper_case("conv_single_step", (f, f, c), i)
                for i, (f, c) in enumerate(SINGLE_STEP_SHAPES)]
    for function, direction in (("conv_forward", "forward"), ("conv_backward", "backward")):
        if function in wanted:
            out += [from_case(_conv_case(direction, *g)) for g in CONV_GEOMETRIES]
    for function, direction in (("pool_forward", "forward"), ("pool_backward", "backward")):
        if function in wanted:
            out += [from_case(_pool_case(op, direction, *g))
                    for op in ("max_pool2d", "avg_pool2d") for g in POOL_GEOMETRIES]
            if strict:
                probe = (2, 6, 6, 2, 3, 1)   # overlapping windows: ties are shared
                kinds = ("ties", "nan") if direction == "backward" else ("nan",)
                out += [from_case(_pool_case("max_pool2d", direction, *probe, inputs=k))
                        for k in kinds]
    if "create_mask_from_window" in wanted:
        out += [_helper_case("create_mask_from_window", s, i) for i, s in enumerate(MASK_SHAPES)]
        if strict:
            out.append(_helper_case("create_mask_from_window", (3, 3), 0, probe="ties"))
    if "distribute_value" in wanted:
        out += [_helper_case("distribute_value", s, i) for i, s in enumerate(DISTRIBUTE_SHAPES)]
    return out


# ---- loading a target --------------------------------------------------------------------------
_PATH_RE = re.compile(r"(?P<path>.+\.py)(?::(?P<attr>[A-Za-z_][\w.]*))?")


class Target:
    """A loaded target: its functions by name, and how it was named."""

    def __init__(self, spec: str, obj):
        self.spec = spec
        self.obj = obj
        self.functions = {name: getattr(obj, name) for name in FUNCTIONS
                          if callable(getattr(obj, name, None))}

    def __getattr__(self, name):
        if name in FUNCTIONS:
            try:
                return self.__dict__["functions"][name]
            except KeyError:
                raise AttributeError(f"{self.spec} does not provide {name}") from None
        raise AttributeError(name)


def load_target(spec: str) -> Target:
    """Import ``spec`` (module, ``file.py``, ``module:object`` or ``file.py:object``).

    Raises TargetError, with the reason, when it cannot be imported.
    """
    m = _PATH_RE.fullmatch(spec)
    try:
        if m and (os.path.exists(m["path"]) or os.sep in m["path"] or "/" in m["path"]):
            path = os.path.abspath(m["path"])
            if not os.path.isfile(path):
                raise TargetError(f"cannot import {spec}: no file {path}")
            module = _import_path(path)
            attr = m["attr"]
        else:
            name, _, attr = spec.partition(":")
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())  # as `python -c` would: the current directory
            module = importlib.import_module(name)
        obj = module
        for part in (attr.split(".") if attr else []):
            obj = getattr(obj, part)
        if inspect.isclass(obj):
            obj = obj()
    except TargetError:
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a script's top level too
        lines = traceback.format_exception_only(type(exc), exc)
        raise TargetError(f"cannot import {spec}: {''.join(lines).strip()}") from exc
    return Target(spec, obj)


def _import_path(path: str):
    """Import a .py file by path, with its directory on sys.path (for its sibling imports)."""
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    stem = os.path.splitext(os.path.basename(path))[0]
    name = "crosscheck_target_" + re.sub(r"\W", "_", stem)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


# ---- checking one case -------------------------------------------------------------------------
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


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


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


# ---- reproduction snippets ---------------------------------------------------------------------
def reproduction(spec: str, cc: ConformCase) -> str:
    """The CLI line and a self-contained snippet that redo this case by hand."""
    head = (f"# crosscheck conform {spec} --case {cc.id}\n"
            "import numpy as np\nimport refcnn\n"
            "from crosscheck.conform import load_target\n"
            f"impl = load_target({spec!r})\n")
    if cc.case is None:
        return head + (f"from crosscheck.conform import conform_case, run_check\n"
                       f"print(run_check(impl.functions, conform_case({cc.id!r})))\n")
    head += ("from crosscheck.cases import Case, make_inputs\n"
             f"inputs = make_inputs(Case.from_id({cc.case.id!r}))\n")
    hp = cc.hparameters()
    if cc.case.is_conv:
        body = ("A_prev, W, b = inputs.x, inputs.w, inputs.b.reshape(1, 1, 1, -1)\n"
                f"hparameters = {hp!r}\n"
                "Z, cache = impl.conv_forward(A_prev, W, b, hparameters)\n"
                "Z_ref, cache_ref = refcnn.conv_forward(A_prev, W, b, hparameters)\n")
        if cc.function == "conv_forward":
            return head + body + "print(np.shape(Z), Z_ref.shape, np.abs(Z - Z_ref).max())\n"
        return head + body + (
            "dZ = inputs.dy\n"
            "got = impl.conv_backward(dZ, cache)\n"
            "want = refcnn.conv_backward(dZ, cache_ref)\n"
            "for name, g, r in zip(('dA_prev', 'dW', 'db'), got, want):\n"
            "    print(name, np.shape(g), r.shape, np.abs(g - r).max())\n")
    body = ("A_prev = inputs.x\n"
            f"hparameters = {hp!r}\n"
            f"A, cache = impl.pool_forward(A_prev, hparameters, mode={cc.mode!r})\n"
            f"A_ref, cache_ref = refcnn.pool_forward(A_prev, hparameters, mode={cc.mode!r})\n")
    if cc.function == "pool_forward":
        return head + body + "print(np.shape(A), A_ref.shape, np.abs(A - A_ref).max())\n"
    return head + body + (
        f"got = impl.pool_backward(inputs.dy, cache, mode={cc.mode!r})\n"
        f"want = refcnn.pool_backward(inputs.dy, cache_ref, mode={cc.mode!r})\n"
        "print(np.shape(got), want.shape, np.abs(got - want).max())\n")


# ---- running the target in a worker process ----------------------------------------------------
def _worker_main(conn, cwd: str) -> None:
    """Worker loop: load the target, then run checks on request until told to stop."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    target = None
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        kind, payload = message
        if kind == "stop":
            return
        if kind == "load":
            try:
                target = load_target(payload)
                conn.send(("loaded", sorted(target.functions)))
            except TargetError as exc:
                conn.send(("error", str(exc)))
        elif kind == "check":
            spec, case_id = payload
            conn.send(("outcome", run_check(target.functions, conform_case(case_id), spec)))


class TargetProcess:
    """The target, loaded in a worker process that is killed when a call takes too long."""

    def __init__(self, spec: str, timeout: float, load_timeout: float | None = None):
        self.spec, self.timeout = spec, timeout
        self.load_timeout = load_timeout if load_timeout is not None else max(60.0, timeout)
        self.provided: list[str] = []
        self._process = self._conn = None

    def start(self) -> list[str]:
        import multiprocessing

        # spawn: the caller may hold threads (pytest with torch loaded), fork would be unsafe.
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        # Look the worker function up by name: pickling it for spawn needs the object that
        # sys.modules holds now (pytester, for one, re-imports modules between runs).
        worker = importlib.import_module(__name__)._worker_main
        self._process = ctx.Process(target=worker, args=(child, os.getcwd()),
                                    name="crosscheck-conform-target", daemon=True)
        self._process.start()
        child.close()
        self._conn.send(("load", self.spec))
        if not self._conn.poll(self.load_timeout):
            self.close()
            raise TargetError(f"cannot import {self.spec}: the import did not finish in "
                              f"{self.load_timeout:g} s")
        try:
            kind, payload = self._conn.recv()
        except EOFError:
            self.close()
            raise TargetError(f"cannot import {self.spec}: the worker process died while "
                              "importing it") from None
        if kind == "error":
            self.close()
            raise TargetError(payload)
        self.provided = payload
        return payload

    def check(self, cc: ConformCase) -> CaseOutcome:
        if self._process is None:
            self.start()
        self._conn.send(("check", (self.spec, cc.id)))
        start = time.perf_counter()
        if self._conn.poll(self.timeout):
            try:
                return self._conn.recv()[1]
            except EOFError:
                message = "the target's process died (a crash in native code?)"
        else:
            message = (f"timed out: no answer after {self.timeout:g} s; the target was stopped "
                       "(does it loop forever? raise --timeout for a slow implementation)")
        code = self._process.exitcode
        self.close()
        if code not in (None, 0):
            message += f" (exit code {code})"
        return CaseOutcome(cc.function, cc.id, "timeout", message, cc.params(),
                           seconds=time.perf_counter() - start,
                           reproduce=reproduction(self.spec, cc))

    def close(self) -> None:
        if self._process is not None:
            if self._process.is_alive():
                try:
                    self._conn.send(("stop", None))
                except (OSError, BrokenPipeError):
                    pass
                self._process.join(0.5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(2)
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class InProcessTarget:
    """The target called directly (no timeout): for debugging and for speed."""

    def __init__(self, spec: str):
        self.spec = spec
        self.target: Target | None = None
        self.provided: list[str] = []

    def start(self) -> list[str]:
        self.target = load_target(self.spec)
        self.provided = sorted(self.target.functions)
        return self.provided

    def check(self, cc: ConformCase) -> CaseOutcome:
        if self.target is None:
            self.start()
        return run_check(self.target.functions, cc, self.spec)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ---- verdicts ----------------------------------------------------------------------------------
@dataclass
class FunctionVerdict:
    function: str
    verdict: str
    cases: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    first_failure: CaseOutcome | None = None
    failures: list = field(default_factory=list)
    reported: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"function": self.function, "verdict": self.verdict, "cases": self.cases,
                "passed": self.passed, "failed": self.failed, "skipped": self.skipped,
                "first_failure": self.first_failure.to_dict() if self.first_failure else None,
                "conventions": {o.case_id: o.convention for o in self.reported}}


@dataclass
class ConformOutcome:
    target: str
    provided: list
    verdicts: dict
    outcomes: list
    seconds: float
    strict: bool = False

    @property
    def conformant(self) -> bool:
        return all(v.verdict in (CONFORMANT, NOT_PROVIDED) for v in self.verdicts.values())

    def to_dict(self) -> dict:
        from crosscheck.report import versions

        return {"versions": versions(), "target": self.target, "provided": self.provided,
                "strict": self.strict, "seconds": round(self.seconds, 3),
                "conformant": self.conformant,
                "summary": {k: v.to_dict() for k, v in self.verdicts.items()},
                "results": [o.to_dict() for o in self.outcomes]}


def verdicts_from(outcomes, provided, functions) -> dict:
    verdicts = {}
    for name in functions:
        if name not in provided:
            verdicts[name] = FunctionVerdict(name, NOT_PROVIDED)
            continue
        mine = [o for o in outcomes if o.function == name]
        judged = [o for o in mine if o.status != "reported"]
        fails = [o for o in judged if o.status in ("failed", "timeout")]
        v = FunctionVerdict(name, NOT_CONFORMANT if fails else CONFORMANT, cases=len(judged),
                            passed=sum(o.status == "passed" for o in judged), failed=len(fails),
                            skipped=sum(o.status == "skipped" for o in judged),
                            first_failure=fails[0] if fails else None, failures=fails,
                            reported=[o for o in mine if o.status == "reported"])
        verdicts[name] = v
    return verdicts


def check_target(spec: str, *, functions=None, case_ids=None, strict: bool = False,
                 timeout: float = 10.0, in_process: bool = False, progress=None) -> ConformOutcome:
    """Run the conformance sweep (or ``case_ids``) on ``spec``; TargetError if it cannot load."""
    start = time.perf_counter()
    if case_ids:
        try:
            cases = [conform_case(i) for i in case_ids]
        except ValueError as exc:
            raise TargetError(f"bad --case: {exc}") from None
        if functions:
            cases = [c for c in cases if c.function in functions]
    else:
        cases = conformance_cases(functions, strict)
    wanted = list(functions or FUNCTIONS)
    if case_ids:
        wanted = [f for f in wanted if any(c.function == f for c in cases)]
    runner = InProcessTarget(spec) if in_process else TargetProcess(spec, timeout)
    outcomes: list[CaseOutcome] = []
    with runner:
        provided = runner.start()
        if not provided:
            raise TargetError(f"{spec} provides none of the notebook functions "
                              f"({', '.join(FUNCTIONS)})")
        if not set(provided) & set(wanted):
            raise TargetError(f"{spec} provides none of the requested functions "
                              f"({', '.join(wanted)}); it provides {', '.join(provided)}")
        if progress is not None:
            print(f"crosscheck conform {spec}: provides {', '.join(provided)}; "
                  f"{sum(c.function in provided for c in cases)} cases", file=progress)
        stopped: set[str] = set()
        for cc in cases:
            if cc.function not in provided:
                continue
            if cc.function in stopped:
                outcomes.append(CaseOutcome(cc.function, cc.id, "skipped",
                                            "skipped: an earlier case of this function timed "
                                            "out", cc.params()))
                continue
            outcome = runner.check(cc)
            outcomes.append(outcome)
            if outcome.status == "timeout":
                stopped.add(cc.function)
    return ConformOutcome(spec, provided, verdicts_from(outcomes, provided, wanted), outcomes,
                          time.perf_counter() - start, strict)


def print_verdicts(outcome: ConformOutcome, stream=None, all_failures: bool = False) -> None:
    stream = stream or sys.stdout
    width = max(len(f) for f in outcome.verdicts) if outcome.verdicts else 10
    print(f"crosscheck conform {outcome.target} ({outcome.seconds:.1f} s)", file=stream)
    for name, v in outcome.verdicts.items():
        detail = ""
        if v.verdict == CONFORMANT:
            detail = f"  ({v.passed}/{v.cases} cases)"
        elif v.verdict == NOT_CONFORMANT:
            detail = f"  ({v.failed}/{v.cases} cases failed" + (
                f", {v.skipped} skipped after a timeout)" if v.skipped else ")")
        shown = v.verdict.upper() if v.verdict == NOT_CONFORMANT else v.verdict
        print(f"  {name.ljust(width)}  {shown}{detail}", file=stream)
    for name, v in outcome.verdicts.items():
        for o in (v.failures if all_failures else v.failures[:1]):
            print(f"\n{name}: {'first failing' if not all_failures else 'failing'} case "
                  f"{o.case_id}", file=stream)
            print(f"  parameters: {_params_text(o.params)}", file=stream)
            print(f"  {o.message}", file=stream)
            if o.max_error is not None:
                print(f"  max error {o.max_error:.3g}; worst error/bound "
                      f"{_ratio(o.worst_ratio)}", file=stream)
            print("  reproduce:", file=stream)
            for line in o.reproduce.rstrip().splitlines():
                print(f"    {line}", file=stream)
    reported = [o for v in outcome.verdicts.values() for o in v.reported]
    if reported:
        print("\nconventions (--strict; reported, never a failure):", file=stream)
        for o in reported:
            print(f"  {o.function} [{o.case_id}]: {o.convention}", file=stream)
    verdict = ("conformant" if outcome.conformant else "NOT conformant")
    print(f"\n{outcome.target}: {verdict}", file=stream)


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v!r}" for k, v in params.items())


def _ratio(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}"


def write_json(path, outcome: ConformOutcome) -> None:
    from crosscheck.report import _atomic_write

    _atomic_write(path, json.dumps(outcome.to_dict(), indent=1, default=str))


__all__ = ["FUNCTIONS", "ConformCase", "CaseOutcome", "ConformOutcome", "FunctionVerdict",
           "TargetError", "TargetProcess", "InProcessTarget", "check_target", "conform_case",
           "conformance_cases", "load_target", "print_verdicts", "reproduction", "run_check",
           "write_json"]
