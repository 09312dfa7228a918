"""Run cases on backends, compare with the float64 reference, name the odd one out.

The reference is refcnn in float64 on the case's inputs (already rounded to
the case's dtype), so every dtype is judged against exact-ish arithmetic on
the very same numbers. Each output is judged element by element under its bound
(charged to the accumulator the backend declares, :mod:`crosscheck.accumulation`) and
as a whole (bias and RMS of error/bound, :mod:`crosscheck.statistics`). Each backend
is called through :mod:`crosscheck.isolation`: on its own read-only copies of the
inputs (out-of-tree backends in a worker process with a timeout); the verdict is always
reached here. Statuses
(:class:`crosscheck.statuses.Status`):

* ``passed``: every output within its bound;
* ``failed``: an output outside its bound or missing, an exception, a modified
  input, an output that is a view of an input, or a declared divergence that
  did not show (the backend no longer follows what it declares);
* ``divergent``: disagrees with refcnn on a case probing a known difference
  where the backend declares another convention (:mod:`crosscheck.semantics`);
* ``mistrusted``: would have passed, but the reference is degenerate
  (:mod:`crosscheck.trust`): never a pass;
* ``unsupported``: the backend cannot express the case (with its reason);
* ``crashed``, ``exited``, ``timeout``, ``system-exit``, ``keyboard-interrupt``,
  ``protocol-error``: the backend gave no answer (the reason says how).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from crosscheck import accumulation, isolation, semantics, tolerance, trust
from crosscheck.backends import Backend, output_names
from crosscheck.cases import Case, Inputs, make_inputs
from crosscheck.compare import Discrepancy, compare
from crosscheck.reproduce import run_snippet
from crosscheck.statuses import STATUSES, Status

__all__ = ["STATUSES", "Status", "CaseResult", "reference_outputs", "prepared", "run_backend",
           "run_case", "run_cases"]

@dataclass
class CaseResult:
    """One backend on one case."""

    case: Case
    backend: str
    status: str
    discrepancies: list[Discrepancy] = field(default_factory=list)
    reason: str | None = None
    odd_one_out: str | None = None
    seconds: float = 0.0
    #: Inputs the backend changed (its own copies: nobody else saw the change).
    modified_inputs: list[str] = field(default_factory=list)
    #: Outputs that are views of an input, as ``"y (a view of x)"``.
    aliased_outputs: list[str] = field(default_factory=list)
    #: For a disagreement (failed or divergent): the other backends whose outputs agree
    #: with this one's within twice the bound (the reference is not among them).
    agrees_with: list[str] = field(default_factory=list)
    #: The backend's outputs, kept so that naming the odd one out need not rerun it.
    outputs: dict | None = field(default=None, repr=False, compare=False)
    #: What ``--backends`` takes to rerun it when ``backend`` is its ``name`` instead: the
    #: ``module:Class`` of an out-of-tree backend (None: ``backend`` itself).
    target: str | None = None

    @property
    def worst_ratio(self) -> float:
        return max((d.worst_ratio for d in self.discrepancies), default=0.0)

    def summary(self) -> str:
        head = f"[{self.status}] {self.backend} {self.case.id}"
        if self.reason:
            head += f": {self.reason.splitlines()[0]}"
        lines = [head] + ["  " + d.summary() for d in self.discrepancies if not d.passed]
        if self.odd_one_out:
            lines.append(f"  odd one out: {self.odd_one_out}")
        return "\n".join(lines)

    def to_dict(self, slim: bool = False) -> dict:
        """Every field; with ``slim``, a passed or unsupported result drops its case's spec and
        its reproducers (its case id reruns it: ``crosscheck run --case ID``)."""
        d = {
            "case": self.case.id, "op": self.case.op, "direction": self.case.direction,
            "dtype": self.case.dtype, "tier": self.case.tier, "backend": self.backend,
            "status": self.status,
            "reason": self.reason, "odd_one_out": self.odd_one_out,
            "agrees_with": list(self.agrees_with),
            "worst_ratio": _finite_or_text(self.worst_ratio), "seconds": self.seconds,
            "modified_inputs": list(self.modified_inputs),
            "aliased_outputs": list(self.aliased_outputs),
            "spec": self.case.to_dict(),
            "discrepancies": [d.to_dict() for d in self.discrepancies],
        }
        if self.target and self.target != self.backend:
            d["target"] = self.target
        if slim and self.status in (Status.PASSED, Status.UNSUPPORTED):
            del d["spec"]
            for x in d["discrepancies"]:
                del x["reproduce"]
        return d


def reference_outputs(case: Case, inputs: Inputs) -> dict[str, np.ndarray]:
    """refcnn's spec in float64 on ``inputs`` (which hold values exact in ``case.dtype``)."""
    out = case.entry.reference(case, inputs)
    return {k: np.asarray(out[k], dtype=np.int64 if k == "indices" else np.float64)
            for k in case.output_names()}


# Backends run case after case (and the pytest sweep keeps a case's backends together), so
# a few entries suffice; real network layers make each entry up to hundreds of MB.
@functools.lru_cache(maxsize=8)
def prepared(case: Case, mode: str = "bound"):
    """(inputs, reference outputs, bounds) for a case, cached per process."""
    inputs = make_inputs(case)
    ref = reference_outputs(case, inputs)
    return inputs, ref, tolerance.bounds(case, inputs, ref, mode)


# Bound arrays are as large as the outputs, and an entry keeps prepared()'s alive after it
# has dropped them: a few cases' worth (one entry per accumulator declared), like prepared().
@functools.lru_cache(maxsize=32)
def _bounds(case: Case, mode: str, accumulator_key) -> dict:
    """The bounds of ``case`` for a backend declaring ``accumulator_key``
    (:func:`accumulation.key`), from the cached plain ones."""
    inputs, ref, plain = prepared(case, mode)
    if accumulator_key is None or mode != "bound":
        return plain
    return tolerance.with_accumulator(case, inputs, ref, plain,
                                      accumulation.from_key(accumulator_key))


@functools.lru_cache(maxsize=256)
def _degenerate(case: Case, mode: str) -> str | None:
    inputs, ref, _ = prepared(case, mode)
    return trust.degenerate(case, ref, inputs)


def run_backend(case: Case, name: str, backend: Backend, mode: str = "bound") -> CaseResult:
    """Run one backend on one case and judge it. Never raises (but passes on Ctrl-C)."""
    try:
        accumulator = accumulation.declared(backend, name, case)
    except Exception:  # noqa: BLE001 - a declaration that fails declares nothing
        accumulator = None
    if getattr(backend, "isolated", False):
        try:
            inputs = prepared(case, mode)[0]
        except Exception as exc:  # noqa: BLE001 - crosscheck's problem, named as such
            return CaseResult(case, name, Status.FAILED, reason="crosscheck could not make the "
                              f"inputs: {type(exc).__name__}: {exc}")
        answer = backend.call(case, inputs)
    else:
        answer = isolation.call_in_process(backend, case, lambda: prepared(case, mode)[0])
    return judge(case, name, answer, mode, accumulator)


def judge(case: Case, name: str, answer: isolation.Answer, mode: str = "bound",
          accumulator=None, expected=None) -> CaseResult:
    """The verdict on what one backend did with one case (:class:`isolation.Answer`).

    ``accumulator`` is what the backend declares it sums in (:mod:`crosscheck.accumulation`);
    ``expected``, when given, is ``(reference, bounds, mistrusted reason or None)`` to judge
    by instead of recomputing them (a corpus's frozen arrays, :mod:`crosscheck.corpus`).
    """
    if answer.unsupported is not None:
        return CaseResult(case, name, Status.UNSUPPORTED, reason=answer.unsupported,
                          seconds=answer.seconds)
    problems = []
    if answer.modified:
        problems.append(f"modified its input{'s' if len(answer.modified) > 1 else ''} "
                        f"{', '.join(answer.modified)} (it is handed read-only copies: it made "
                        "them writeable and wrote to them)")
    if answer.aliased:
        problems.append("returned a view of its inputs: " + ", ".join(answer.aliased))
    extra = dict(seconds=answer.seconds, modified_inputs=list(answer.modified),
                 aliased_outputs=list(answer.aliased))
    if answer.status is not None:
        return CaseResult(case, name, answer.status, reason=answer.reason, **extra)
    if answer.error is not None:
        reason = answer.error if not problems else "; ".join(problems) + "\n" + answer.error
        return CaseResult(case, name, Status.FAILED, reason=reason, **extra)
    if expected is None:
        ref, bnds = prepared(case, mode)[1], _bounds(case, mode, accumulation.key(accumulator))
    else:
        ref, bnds = expected[0], expected[1]
    out = answer.outputs
    discs = [_compare_output(case, name, out, k, ref[k], bnds[k]) for k in output_names(case)]
    status = Status.PASSED if all(d.passed for d in discs) else Status.FAILED
    reason = None
    diff = semantics.declared_divergence(case, name)
    if diff is not None:
        if status == Status.FAILED:
            status, reason = Status.DIVERGENT, f"declared difference {diff.key}: " + \
                diff.conventions[semantics.family(name)]
        else:
            status, reason = Status.FAILED, (f"declares {diff.key} = "
                                        f"{diff.conventions[semantics.family(name)]!r} but "
                                        "agreed with refcnn: the declaration is out of date")
    bug = semantics.known_bug(case, name) if status == Status.FAILED and reason is None else None
    if bug is not None:
        status, reason = Status.DIVERGENT, f"known bug {bug.key}: {'; '.join(bug.sources)}"
    if status == Status.PASSED:
        why = _degenerate(case, mode) if expected is None else expected[2]
        if why:
            status, reason = Status.MISTRUSTED, f"degenerate reference: {why}"
    if problems:
        status = Status.FAILED
        reason = "; ".join(problems) + ("\n" + reason if reason else "")
    return CaseResult(case, name, status, discs, reason, outputs=out, **extra)


def _compare_output(case, name, out, key, ref, bound) -> Discrepancy:
    """compare() on one output, or a failed Discrepancy saying why there is nothing to compare."""
    if not isinstance(out, dict):
        error = f"returned {isolation.describe(out)}, not a dict of arrays"
    elif key not in out:
        error = f"returned no {key!r} (its keys: {sorted(map(str, out))})"
    elif isinstance(out[key], isolation.NotAnArray):
        error = f"returned {isolation.describe(out[key])} as {key!r}, not an array"
    else:
        return compare(out[key], ref, bound, case_id=case.id, backend=name, output=key,
                       statistics=True)
    return Discrepancy(case_id=case.id, backend=name, output=key, passed=False, error=error,
                       bound=bound.description, reproduce=run_snippet(case.id, name, key))


def run_case(case: Case, backends: dict[str, Backend], mode: str = "bound") -> list[CaseResult]:
    """Every backend on one case, with the odd one out named where they disagree."""
    results = [run_backend(case, name, be, mode) for name, be in backends.items()]
    _name_odd_one_out(case, results, mode)
    _name_agreeing(case, results, mode)
    for r in results:
        r.outputs = None  # a sweep keeps thousands of results: keep the verdicts, not arrays
    return results


def run_cases(cases, backends: dict[str, Backend], mode: str = "bound", progress=None):
    """Yield results case by case (so nothing computed is lost if a later case breaks)."""
    for case in cases:
        results = run_case(case, backends, mode)
        if progress is not None:
            progress(case, results)
        yield from results


def _name_odd_one_out(case, results, mode):
    """When backends disagree with the reference, say who is the odd one out.

    If two or more independent backends (not refcnn's own) ran, all of them
    failed, and they agree with each other, the reference is the odd one out.
    Otherwise the failing backends are. Naming is an aid to the reader: whatever
    the backends returned, it never raises, so no case loses its results.
    """
    # Only real disagreements: a backend that agreed although it declares a divergence
    # failed for another reason (its declaration is out of date).
    failed = [r for r in results if r.status == Status.FAILED and r.discrepancies
              and not all(d.passed for d in r.discrepancies)]
    if not failed:
        return
    try:
        verdict = _odd_one_out(case, results, failed, mode)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        verdict = f"not named ({type(exc).__name__}: {exc})"
    for r in failed:
        r.odd_one_out = verdict


def _name_agreeing(case, results, mode):
    """For each failed or divergent result, the other backends whose outputs agree with it."""
    judged = [r for r in results if r.outputs is not None
              and r.status in (Status.PASSED, Status.FAILED, Status.DIVERGENT)]
    for r in judged:
        if r.status == Status.PASSED:
            continue
        try:
            r.agrees_with = [o.backend for o in judged if o is not r and _agree(case, [r, o], mode)]
        except Exception:  # noqa: BLE001 - an aid to the reader, never a reason to lose a case
            r.agrees_with = []


def _odd_one_out(case, results, failed, mode) -> str:
    independent = [r for r in results if semantics.family(r.backend) != "refcnn"
                   and r.status in (Status.PASSED, Status.FAILED) and r.discrepancies]
    if len(independent) >= 2 and all(r.status == Status.FAILED for r in independent):
        if _agree(case, independent, mode):
            return f"refcnn (the reference): {', '.join(r.backend for r in independent)} " \
                   "agree with each other and not with it"
    agreeing = ["refcnn float64"] + [r.backend for r in results if r.status == Status.PASSED]
    return ", ".join(r.backend for r in failed) + f" (disagrees with {', '.join(agreeing)})"


def _agree(case, results, mode) -> bool:
    """Whether every result has every output, of the reference's shape, within twice the bound
    of the first result's. Missing, odd or misshapen outputs agree with nothing."""
    _, ref, bnds = prepared(case, mode)
    names = output_names(case)
    outs = []
    for r in results:
        arrays = {k: _as_output(r.outputs, k, ref[k].shape) for k in names}
        if any(a is None for a in arrays.values()):
            return False
        outs.append(arrays)
    first = outs[0]
    for other in outs[1:]:
        for k in names:
            # Two backends may each err by up to the bound: allow twice it between them.
            doubled = tolerance.Bound(2 * bnds[k].allowed, bnds[k].description)
            if not compare(other[k], first[k], doubled).passed:
                return False
    return True


def _as_output(outputs, key, shape):
    if not isinstance(outputs, dict) or key not in outputs:
        return None
    try:
        a = np.asarray(outputs[key], dtype=np.float64)
    except Exception:  # noqa: BLE001 - not numbers: agrees with nothing
        return None
    return a if a.shape == shape else None


def _finite_or_text(value: float):
    return value if np.isfinite(value) else str(value)
