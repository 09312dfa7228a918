"""Judging one case: :func:`run_check` has the target called and returns a :class:`CaseOutcome`.

Shapes first, then values against refcnn in float64 under the rounding-error bounds of
:mod:`crosscheck.tolerance`, then that no input array was modified. All of it runs here, in
the judging process: the target is only *called*, through a runner (a worker process, or
this process for ``--in-process``), which gets the inputs and gives back plain arrays, so
nothing the target does to NumPy, crosscheck or its own copies of the inputs reaches the
reference, the bounds, the comparison or the copies the mutation check compares against.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, fields, replace

import numpy as np

from crosscheck.cases import Case, make_inputs
from crosscheck.compare import Discrepancy, compare
from crosscheck.conform import hints
from crosscheck.conform.sweep import ConformCase
from crosscheck.conform.target import call_steps
from crosscheck.reproduce import conform_snippet
from crosscheck.statuses import ConformStatus
from crosscheck.tolerance import UNIT_ROUNDOFF, Bound, bounds

#: What became of one case: :class:`crosscheck.statuses.ConformStatus` (its docstring says
#: what each means), in report order.
STATUSES = tuple(ConformStatus)
#: The worker was stopped or lost on the case, and replaced for the next function.
STOPPED = (ConformStatus.TIMEOUT, ConformStatus.CRASHED, ConformStatus.EXITED,
           ConformStatus.PROTOCOL_ERROR)
#: Statuses that make the function non-conformant.
FAILING = (ConformStatus.FAILED, *STOPPED, ConformStatus.SYSTEM_EXIT,
           ConformStatus.KEYBOARD_INTERRUPT)
#: The case was never judged, through no fault shown yet: the verdict is incomplete.
NOT_RUN = (ConformStatus.IMPORT_FAILED, ConformStatus.INTERRUPTED)


@dataclass
class CaseOutcome:
    """The result of one conformance case; ``status`` is one of :data:`STATUSES`."""

    function: str
    case_id: str
    status: ConformStatus
    message: str = ""
    params: dict = field(default_factory=dict)
    max_error: float | None = None
    worst_ratio: float | None = None
    discrepancies: list = field(default_factory=list)
    mutated: list = field(default_factory=list)
    convention: str | None = None
    seconds: float = 0.0
    reproduce: str = ""
    #: How it failed: "values", "shape", "raised", "not-array", "unpack", "scalar",
    #: "mutated", or a stopped status; None when it did not fail.
    failure: str | None = None
    #: The exception the target raised: type, message, where (its own file:line), function.
    raised: dict | None = None
    #: The outputs whose values were wrong, and the shapes of those whose shape was.
    wrong: list = field(default_factory=list)
    shapes: dict = field(default_factory=dict)
    #: Plain sentences about this case alone (NumPy 2, removed aliases, a notebook global).
    hints: list = field(default_factory=list)
    #: "reference" when a backward function was judged with the reference's cache (its own
    #: forward raised or was wrong on the case); ``note`` says why.
    cache: str | None = None
    note: str = ""
    #: A targeted extra case run for the diagnosis (it counts in no verdict).
    extra: bool = False
    #: What the target returned, and the reference, by output (for the diagnosis; not JSON).
    got: dict = field(default_factory=dict, repr=False, compare=False)
    want: dict = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("got", "want")}
        d = json.loads(json.dumps(d, default=_plain_json))
        for key in ("max_error", "worst_ratio"):
            if d[key] is not None and not math.isfinite(d[key]):
                d[key] = str(d[key])
        d["shapes"] = {k: list(v) for k, v in self.shapes.items()}
        return d


def _plain_json(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (tuple, np.ndarray)):
        return list(value)
    return str(value)


class Stopped(Exception):
    """The target's process ended or was stopped during a case (raised by a runner's call).

    ``status`` is one of :data:`STOPPED`; ``message`` says what happened, to which call;
    ``detail`` what the process left behind (the target's line in a crash dump).
    """

    def __init__(self, status: ConformStatus, message: str, detail: str = ""):
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail


class _Fail(Exception):
    """A failed check inside :func:`run_check` (the message says what was wrong); ``kind``
    is the outcome's ``failure``, ``function`` the call it was about."""

    def __init__(self, message: str, kind: str = "values", function: str | None = None):
        super().__init__(message)
        self.kind, self.function = kind, function


class _Raised(Exception):
    """The target raised: the plain facts the runner sent back (type, message, file:line)."""

    def __init__(self, info: dict):
        super().__init__(info.get("message", ""))
        self.info = info


# ---- calling the target through a runner --------------------------------------------------------
def _in(name: str) -> dict:
    """An argument: the case's input ``name`` (one object across the steps of a case)."""
    return {"input": name}


def _result(step: int, item: int | None = None) -> dict:
    """An argument: what step ``step`` returned (its ``item``), kept where the target runs."""
    return {"result": [step, item]}


def _arg(a):
    if isinstance(a, dict):
        return a
    if isinstance(a, tuple):
        return {"tuple": [_arg(x) for x in a]}
    return {"value": a}


def _step(function: str, *args, unpack: int | None = None, want=(), label: str | None = None,
          **kwargs) -> dict:
    return {"function": function, "args": [_arg(a) for a in args],
            "kwargs": {k: _arg(v) for k, v in kwargs.items()}, "unpack": unpack,
            "want": list(want), "label": label}


class _Direct:
    """A runner calling ``functions`` in this process (:func:`run_check` given a dict)."""

    def __init__(self, functions: dict):
        self.functions = functions
        self.provided = sorted(functions)

    def call(self, header: dict, arrays: dict):
        return call_steps(self.functions, header, arrays)


class _ForCase:
    """A runner whose calls name the case they belong to (for the runner's messages)."""

    def __init__(self, runner, case_id: str):
        self.runner, self.case_id = runner, case_id
        self.provided = runner.provided

    def call(self, header: dict, arrays: dict):
        return self.runner.call({**header, "case": self.case_id}, arrays)


class _Reply:
    """What the target's calls gave back, read against the copies kept here."""

    def __init__(self, reply: dict, arrays: dict, steps: list, before: dict):
        self.reply, self.arrays, self.steps, self.before = reply, arrays, steps, before

    def output(self, step: int, item, what: str) -> np.ndarray:
        got = self.reply["steps"][step]["outputs"][self.steps[step]["want"].index(item)]
        if "error" in got:
            raise _Fail(f"{what} is not an array of numbers: {got['error']}", "not-array",
                        self.steps[step]["function"])
        return self.arrays[got["array"]]

    @property
    def mutated(self) -> list[str]:
        """The inputs that hold something else after the calls (bit for bit)."""
        changed = []
        for name, old in self.before.items():
            now = self.reply["inputs"][name]
            if "array" in now:
                a = self.arrays[now["array"]]
                same = (isinstance(old, np.ndarray) and a.shape == old.shape
                        and a.dtype == old.dtype and a.tobytes() == old.tobytes())
            else:
                same = "value" in now and now["value"] == old
            if not same:
                changed.append(name)
        return changed


def _call(runner, named: dict, steps: list) -> _Reply:
    """Have the target run ``steps`` on the inputs ``named``; raise _Raised or _Fail (a result
    that cannot be unpacked), or let the runner's Stopped through."""
    arrays = {k: v for k, v in named.items() if isinstance(v, np.ndarray)}
    values = {k: v for k, v in named.items() if not isinstance(v, np.ndarray)}
    # The copies the mutation check compares against: made here, before any call.
    before = {k: (v.copy() if isinstance(v, np.ndarray) else json.loads(json.dumps(v)))
              for k, v in named.items()}
    reply, out = runner.call({"op": "call", "steps": steps, "values": values}, arrays)
    if reply["raised"] is not None:  # only the facts we know, whatever else the reply holds
        info = {k: v for k, v in reply["raised"].items()
                if k in ("step", "kind", "type", "message", "where", "code")}
        inner = reply["raised"].get("in")
        if isinstance(inner, str) and inner.isidentifier():
            info["in"] = inner
        step = info.get("step")
        if isinstance(step, int) and 0 <= step < len(steps):
            info["function"] = steps[step]["function"]
        raise _Raised(info)
    for step, info in zip(steps, reply["steps"]):
        n = step["unpack"]
        if n is not None and info.get("len") != n:
            size = f" of {info['len']}" if info.get("len") is not None else ""
            what = step["function"]
            message = f"{what} must return a tuple of {n}, got a {info['type']}{size}"
            raise _Fail(f"{step['label']}: {message}" if step["label"] else message,
                        "unpack", what)
    return _Reply(reply, out, steps, before)


def run_check(target, cc: ConformCase, spec: str = "TARGET") -> CaseOutcome:
    """Run one conformance case and judge it. Never raises for anything the target does.

    ``target``: a runner (``provided`` and ``call``, as :class:`~crosscheck.conform.worker.
    TargetProcess`), or a dict name -> callable, called in this process.
    """
    runner = _ForCase(target if hasattr(target, "call") else _Direct(target), cc.id)
    start = time.perf_counter()
    outcome = CaseOutcome(cc.function, cc.id, ConformStatus.PASSED, params=cc.params(),
                          reproduce=conform_snippet(spec, cc))
    problems: list[str] = []
    try:
        discs, mutated, convention = _CHECKS[cc.function](runner, cc, outcome, problems)
        outcome.discrepancies = [_without_reproducer(d) for d in discs]
        outcome.mutated = mutated
        finite = [d for d in discs if d.error is None]
        if finite:
            outcome.max_error = max(d.max_abs_error for d in finite)
            outcome.worst_ratio = max(d.worst_ratio for d in finite)
        bad = [d for d in discs if not d.passed]
        if cc.probe:
            outcome.status, outcome.convention = ConformStatus.REPORTED, convention
            outcome.message = convention or ""
        elif bad:
            outcome.status, outcome.failure = ConformStatus.FAILED, "values"
            outcome.wrong = [d.output for d in bad]
            outcome.message = plain(bad[0], outcome.got.get(bad[0].output),
                                    outcome.want.get(bad[0].output))
            if len(bad) > 1:
                outcome.message += "; also " + ", ".join(
                    f"{b.output} ({b.mismatches} of {b.elements} wrong)" for b in bad[1:])
            if problems:
                outcome.message += "; and " + "; ".join(problems)
        elif problems:
            outcome.status, outcome.failure = ConformStatus.FAILED, "scalar"
            outcome.message = "; ".join(problems)
        elif mutated:
            outcome.status, outcome.failure = ConformStatus.FAILED, "mutated"
            outcome.message = (f"modified its input{'s' if len(mutated) > 1 else ''} "
                               f"{', '.join(mutated)} in place (values were right)")
    except _Fail as exc:
        outcome.status = ConformStatus.REPORTED if cc.probe else ConformStatus.FAILED
        outcome.message = str(exc)
        outcome.failure = None if cc.probe else exc.kind
        if cc.probe:
            outcome.convention = f"could not tell: {exc}"
    except _Raised as exc:
        info = exc.info
        outcome.raised = info
        where = f" at {info['where']}" if info.get("where") else ""
        kind = info.get("kind")
        called = info.get("function")
        who = f" in {called}" if called and called != cc.function else ""
        if kind == ConformStatus.SYSTEM_EXIT:
            outcome.status = outcome.failure = ConformStatus.SYSTEM_EXIT
            outcome.message = (f"raised SystemExit({info.get('code')!r}){where}: the target "
                               "tried to end the process (sys.exit or exit() in a function?)")
        elif kind == ConformStatus.KEYBOARD_INTERRUPT:
            outcome.status = outcome.failure = ConformStatus.KEYBOARD_INTERRUPT
            outcome.message = f"raised KeyboardInterrupt{where}: {info['message']}".rstrip(": ")
        else:
            outcome.status = ConformStatus.REPORTED if cc.probe else ConformStatus.FAILED
            outcome.failure = None if cc.probe else "raised"
            outcome.message = f"raised {info['type']}{who}: {info['message']}{where}"
            if cc.probe:
                outcome.convention = f"raised {info['type']}"
    except Stopped as exc:
        outcome.status, outcome.message = exc.status, exc.message
        outcome.failure = exc.status
    if outcome.cache == "reference":
        outcome.reproduce = conform_snippet(spec, cc, reference_cache=True)
        if outcome.status == ConformStatus.FAILED:
            outcome.message += f" ({outcome.note})"
    if outcome.status != ConformStatus.PASSED and not cc.probe:
        outcome.hints = hints.case_hints(cc, outcome)
    outcome.seconds = time.perf_counter() - start
    return outcome


def _without_reproducer(d: Discrepancy) -> dict:
    """A discrepancy as JSON, less ``crosscheck run``'s reproducer (which names a backend
    that a conform target is not); the case's own reproducer is the outcome's."""
    out = d.to_dict()
    out.pop("reproduce", None)
    return out


def plain(d: Discrepancy, got=None, want=None) -> str:
    """``dA_prev: 34 of 48 values wrong (3 of them NaN); at index [0, 1, 2, 0] got 0.51,
    expected 0.23``: the count, the non-finite values among them, and one wrong value."""
    if d.error:
        return f"{d.output}: {d.error}"
    text = f"{d.output}: {d.mismatches} of {d.elements} value{'s' if d.elements != 1 else ''} wrong"
    if d.nonfinite_mismatches and got is not None and want is not None:
        with np.errstate(invalid="ignore"):
            nan = int(np.count_nonzero(np.isnan(got) & ~np.isnan(want)))
            inf = int(np.count_nonzero(np.isinf(got) & (got != want)))
        parts = [f"{nan} of them NaN"] if nan else []
        parts += [f"{inf} infinite"] if inf else []
        if parts:
            text += f" ({', '.join(parts)})"
    got_text, want_text = pair(d.actual_at_worst, d.expected_at_worst)
    where = f"at index {list(d.worst_ratio_index)} " if d.worst_ratio_index else ""
    return f"{text}; {where}got {got_text}, expected {want_text}"


def pair(a, b) -> tuple[str, str]:
    """Two numbers with the fewest significant digits (3 at least) that tell them apart."""
    if a is None or b is None:
        return str(a), str(b)
    for digits in range(3, 18):
        x, y = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if x != y:
            return x, y
    return repr(a), repr(b)


# ---- the checks, one per notebook function ------------------------------------------------------
# Each takes (runner, case, outcome, problems): it records what the target returned and the
# reference in outcome.got and outcome.want, appends to ``problems`` what is wrong besides the
# values (a (1, 1, 1) array where the API says scalar), and returns (discrepancies, mutated
# inputs, convention).
def _check_shape(got: np.ndarray, want: tuple, what: str, hint: str = "",
                 out: CaseOutcome | None = None) -> None:
    if tuple(got.shape) != tuple(want):
        if out is not None:
            out.shapes[what] = tuple(int(n) for n in got.shape)
            out.got[what] = got
        raise _Fail(f"{what} has shape {tuple(got.shape)}, expected {tuple(want)}"
                    + (f" ({hint})" if hint else ""), "shape")


def _out_size_hint(cc: ConformCase) -> str:
    c, hp = cc.case, cc.hparameters()
    pad = hp.get("pad", 0)
    f, s = c.kernel[0], c.stride[0]
    n_h, n_w = c.out_hw()
    return (f"n_H = floor((n_H_prev + 2*pad - f) / stride) + 1 = floor(({c.h} + {2 * pad} - {f})"
            f" / {s}) + 1 = {n_h}; n_W = floor(({c.w} + {2 * pad} - {f}) / {s}) + 1 = {n_w}")


def _compare(spec_output: str, got, want: np.ndarray, allowed, cc: ConformCase,
             out: CaseOutcome | None = None) -> Discrepancy:
    bound = allowed if isinstance(allowed, Bound) else Bound(np.asarray(allowed, float),
                                                             "exact" if np.all(allowed == 0)
                                                             else "float64 rounding bound")
    if out is not None:
        out.got[spec_output], out.want[spec_output] = got, want
    return compare(got, want, bound, case_id=cc.id, backend=cc.function, output=spec_output)


def _reference(case: Case, inputs):
    from crosscheck.runner import reference_outputs

    ref = reference_outputs(case, inputs)
    return ref, bounds(case, inputs, ref)


def helper_inputs(cc: ConformCase) -> dict:
    """The inputs a helper's case hands the target (the same every time: seeded by the case)."""
    if cc.function == "zero_pad":
        return {"X": np.random.default_rng([cc.seed, 11]).standard_normal(cc.shape)}
    if cc.function == "conv_single_step":
        rng = np.random.default_rng([cc.seed, 12])
        a = rng.standard_normal(cc.shape)
        W = rng.standard_normal(cc.shape)
        return {"a_slice_prev": a, "W": W, "b": rng.standard_normal((1, 1, 1))}
    if cc.function == "create_mask_from_window":
        if cc.probe:
            return {"x": np.array([[1.0, 3.0, 2.0], [3.0, 0.0, 3.0], [2.0, 1.0, 0.5]])}
        return {"x": np.random.default_rng([cc.seed, 13]).standard_normal(cc.shape)}
    if cc.function == "distribute_value":
        return {"dz": float(np.random.default_rng([cc.seed, 14]).standard_normal() * 3)}
    raise ValueError(f"{cc.function} is not a helper")


def _check_zero_pad(runner, cc, out, problems):
    X = helper_inputs(cc)["X"]
    p = cc.pad
    want = np.pad(X, ((0, 0), (p, p), (p, p), (0, 0)))
    r = _call(runner, {"X": X}, [_step("zero_pad", _in("X"), p, want=[None])])
    got = r.output(0, None, "X_pad")
    _check_shape(got, want.shape, "X_pad", "pad only the height and width, by pad on each side",
                 out)
    return [_compare("X_pad", got, want, np.zeros(want.shape), cc, out)], r.mutated, None


def _check_single_step(runner, cc, out, problems):
    named = helper_inputs(cc)
    a, W, b = named["a_slice_prev"], named["W"], named["b"]
    products = a * W
    want = np.array(math.fsum(products.ravel()) + b.item())
    r = _call(runner, {"a_slice_prev": a, "W": W, "b": b},
              [_step("conv_single_step", _in("a_slice_prev"), _in("W"), _in("b"), want=[None])])
    got = r.output(0, None, "Z")
    if got.size != 1:
        out.shapes["Z"] = tuple(int(n) for n in got.shape)
        raise _Fail(f"Z must be a single value, got shape {got.shape}", "shape")
    if got.shape != ():
        # The API says "Z -- a scalar value"; an array of one element only looks like one, and
        # conv_forward's Z[i, h, w, c] = conv_single_step(...) refuses it on NumPy 2.
        out.shapes["Z"] = tuple(int(n) for n in got.shape)
        kind = r.reply["steps"][0].get("type", "array")
        problems.append(f"Z is an {kind} of shape {tuple(got.shape)}, not the scalar the API "
                        "says (Z -- a scalar value)")
    k = products.size + 1
    allowed = 2 * UNIT_ROUNDOFF["float64"] * (k * (np.abs(products).sum() + abs(b.item()))
                                              + abs(want.item()))
    return [_compare("Z", got.reshape(()), want, np.array(allowed), cc, out)], r.mutated, None


def _check_mask(runner, cc, out, problems):
    x = helper_inputs(cc)["x"]
    want = (x == np.max(x)).astype(np.float64)
    r = _call(runner, {"x": x}, [_step("create_mask_from_window", _in("x"), want=[None])])
    got = r.output(0, None, "mask")
    _check_shape(got, x.shape, "mask", "the mask has the window's shape", out)
    disc = _compare("mask", got, want, np.zeros(x.shape), cc, out)
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
    return [disc], r.mutated, convention


def _check_distribute(runner, cc, out, problems):
    dz = helper_inputs(cc)["dz"]
    n_h, n_w = cc.shape
    want = np.full(cc.shape, dz / (n_h * n_w))
    r = _call(runner, {}, [_step("distribute_value", dz, tuple(cc.shape), want=[None])])
    got = r.output(0, None, "a")
    _check_shape(got, want.shape, "a", "the matrix has the given shape (n_H, n_W)", out)
    allowed = 4 * UNIT_ROUNDOFF["float64"] * np.abs(want)
    return [_compare("a", got, want, allowed, cc, out)], [], None


def _conv_arrays(cc):
    inputs = make_inputs(cc.case)
    return inputs, inputs.x.copy(), inputs.w.copy(), inputs.b.reshape(1, 1, 1, -1).copy()


_CONV_ARGS = (_in("A_prev"), _in("W"), _in("b"), _in("hparameters"))
_POOL_ARGS = (_in("A_prev"), _in("hparameters"))


def _check_conv_forward(runner, cc, out, problems):
    inputs, A_prev, W, b = _conv_arrays(cc)
    r = _call(runner, {"A_prev": A_prev, "W": W, "b": b, "hparameters": cc.hparameters()},
              [_step("conv_forward", *_CONV_ARGS, unpack=2, want=[0])])
    ref, bnds = _reference(cc.case, inputs)
    Z = r.output(0, 0, "Z")
    _check_shape(Z, ref["y"].shape, "Z", _out_size_hint(cc), out)
    return [_compare("Z", Z, ref["y"], bnds["y"], cc, out)], r.mutated, None


def _judge_backward(runner, cc, out, named_fn, forward, backward, args, kwargs, ref_fwd,
                    backward_step, outputs):
    """The backward of a forward/backward pair, judged on its own.

    With the target's forward provided, the pair runs as the notebook chains it (the
    backward gets the forward's cache, opaque to us). When that forward raises, does not
    return ``(output, cache)``, or returns a wrong output on the case, the backward is judged
    again with the reference's cache (the notebook's tuple), so that its own bugs show; the
    outcome says so (``cache`` "reference", ``note``). Returns the reply and the step whose
    outputs are the backward's.
    """
    if forward not in runner.provided:  # no forward: the notebook's cache layout
        return _call(runner, named_fn(), [backward_step(args)]), 0
    fwd = _step(forward, *args, unpack=2, want=[0], label=f"{forward} (called for its cache)",
                **kwargs)
    problem, own = None, None
    try:
        own = _call(runner, named_fn(), [fwd, backward_step(_result(0, 1))])
        y = own.output(0, 0, "its output")
        want_y, allowed = ref_fwd
        if tuple(y.shape) != tuple(want_y.shape):
            problem = (f"returned an output of shape {tuple(y.shape)} instead of "
                       f"{tuple(want_y.shape)}")
        elif not _compare("y", y, want_y, allowed, cc).passed:
            problem = "returned wrong values"
    except _Raised as exc:
        if exc.info.get("function") != forward:
            raise
        info = exc.info
        where = f" at {info['where']}" if info.get("where") else ""
        problem = f"raised {info['type']}{where}"
    except _Fail as exc:
        if exc.function != forward:
            raise
        problem = str(exc).replace(f"{forward} (called for its cache): ", "")
    if problem is None:
        return own, 1
    layout = ", ".join(outputs)
    out.cache = "reference"
    out.note = (f"judged with the reference's cache ({layout}): the target's {forward} "
                f"{problem} on this case")
    try:
        return _call(runner, named_fn(), [backward_step(args)]), 0
    except (_Raised, _Fail):
        if own is None:
            raise
        # Its backward does not take the notebook's cache: judge it on its own forward's.
        out.cache = "own"
        out.note = (f"the target's {forward} {problem} on this case, and its {backward} does "
                    "not take the notebook's cache; judged with its own forward's cache")
        return own, 1


def _check_conv_backward(runner, cc, out, problems):
    inputs, A_prev, W, b = _conv_arrays(cc)
    hp = cc.hparameters()
    dZ = inputs.dy.copy()

    def named():  # fresh copies for each call: the mutation check compares against these
        return {"A_prev": A_prev.copy(), "W": W.copy(), "b": b.copy(), "hparameters": dict(hp),
                "dZ": dZ.copy()}

    def backward(cache):
        return _step("conv_backward", _in("dZ"), cache, unpack=3, want=[0, 1, 2])

    ref, bnds = _reference(cc.case, inputs)
    fwd_case = replace(cc.case, direction="forward")
    ref_y, bnds_y = _reference(fwd_case, inputs)
    r, last = _judge_backward(runner, cc, out, named, "conv_forward", "conv_backward",
                              _CONV_ARGS, {}, (ref_y["y"], bnds_y["y"]), backward,
                              ("A_prev", "W", "b", "hparameters"))
    dA_prev, dW, db = (r.output(last, 0, "dA_prev"), r.output(last, 1, "dW"),
                       r.output(last, 2, "db"))
    _check_shape(dA_prev, A_prev.shape, "dA_prev", "A_prev's shape: crop the padding "
                 "with da_prev_pad[pad:pad + n_H_prev], which also works for pad=0", out)
    _check_shape(dW, W.shape, "dW", "W's shape", out)
    _check_shape(db, b.shape, "db", "b's shape (1, 1, 1, n_C)", out)
    discs = [_compare("dA_prev", dA_prev, ref["dx"], bnds["dx"], cc, out),
             _compare("dW", dW, ref["dw"], bnds["dw"], cc, out),
             _compare("db", db.reshape(-1), ref["db"], bnds["db"], cc, out)]
    return discs, r.mutated, None


def _pool_inputs(cc):
    inputs = make_inputs(cc.case)
    return inputs, inputs.x.copy()


def _check_pool_forward(runner, cc, out, problems):
    inputs, A_prev = _pool_inputs(cc)
    r = _call(runner, {"A_prev": A_prev, "hparameters": cc.hparameters()},
              [_step("pool_forward", *_POOL_ARGS, mode=cc.mode, unpack=2, want=[0])])
    ref, bnds = _reference(cc.case, inputs)
    A = r.output(0, 0, "A")
    _check_shape(A, ref["y"].shape, "A", _out_size_hint(cc), out)
    disc = _compare("A", A, ref["y"], bnds["y"], cc, out)
    convention = None
    if cc.probe:  # max pooling over windows holding NaN
        nan_out = np.isnan(ref["y"])
        if disc.passed:
            convention = "a window holding NaN gives NaN (refcnn, torch, jax)"
        elif not np.isnan(A[nan_out]).any():
            convention = "a window holding NaN gives the max of the rest (tensorflow's rule)"
        else:
            convention = "NaN handled by neither rule: " + disc.summary()
    return [disc], r.mutated, convention


def _check_pool_backward(runner, cc, out, problems):
    inputs, A_prev = _pool_inputs(cc)
    hp = cc.hparameters()
    dA = inputs.dy.copy()

    def named():
        return {"A_prev": A_prev.copy(), "hparameters": dict(hp), "dA": dA.copy()}

    def backward(cache):
        return _step("pool_backward", _in("dA"), cache, mode=cc.mode, want=[None])

    ref, bnds = _reference(cc.case, inputs)
    fwd_case = replace(cc.case, direction="forward")
    ref_y, bnds_y = _reference(fwd_case, inputs)
    r, last = _judge_backward(runner, cc, out, named, "pool_forward", "pool_backward",
                              _POOL_ARGS, {"mode": cc.mode}, (ref_y["y"], bnds_y["y"]),
                              backward, ("A_prev", "hparameters"))
    got = r.output(last, None, "dA_prev")
    _check_shape(got, A_prev.shape, "dA_prev", "A_prev's shape", out)
    disc = _compare("dA_prev", got, ref["dx"], bnds["dx"], cc, out)
    convention = None
    if cc.probe:
        convention = _pool_backward_convention(cc, inputs, got, disc)
    return [disc], r.mutated, convention


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
