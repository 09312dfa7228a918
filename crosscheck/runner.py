"""Run cases on backends, compare with the float64 reference, name the odd one out.

The reference is refcnn in float64 on the case's inputs (already rounded to
the case's dtype), so every dtype is judged against exact-ish arithmetic on
the very same numbers. Statuses:

* ``passed``: every output within its bound;
* ``failed``: an output outside its bound, a crash, or a declared divergence
  that did not show (the backend no longer follows what it declares);
* ``divergent``: disagrees with refcnn on a case probing a known difference
  where the backend declares another convention (:mod:`crosscheck.semantics`);
* ``unsupported``: the backend cannot express the case (with its reason).
"""

from __future__ import annotations

import functools
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from crosscheck import semantics, tolerance
from crosscheck.backends import Backend, Unsupported, output_names
from crosscheck.cases import Case, Inputs, make_inputs
from crosscheck.compare import Discrepancy, compare
from crosscheck.statuses import STATUSES, Status

__all__ = ["STATUSES", "Status", "CaseResult", "reference_outputs", "prepared", "run_backend",
           "run_case", "run_cases"]

REFERENCE = "refcnn spec float64"


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
    #: The backend's outputs, kept so that naming the odd one out need not rerun it.
    outputs: dict | None = field(default=None, repr=False, compare=False)

    @property
    def worst_ratio(self) -> float:
        return max((d.worst_ratio for d in self.discrepancies), default=0.0)

    def summary(self) -> str:
        head = f"[{self.status}] {self.backend} {self.case.id}"
        if self.reason:
            head += f": {self.reason.splitlines()[-1] if self.reason else ''}"
        lines = [head] + ["  " + d.summary() for d in self.discrepancies if not d.passed]
        if self.odd_one_out:
            lines.append(f"  odd one out: {self.odd_one_out}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "case": self.case.id, "op": self.case.op, "direction": self.case.direction,
            "dtype": self.case.dtype, "backend": self.backend, "status": self.status,
            "reason": self.reason, "odd_one_out": self.odd_one_out,
            "worst_ratio": _finite_or_text(self.worst_ratio), "seconds": self.seconds,
            "spec": self.case.to_dict(),
            "discrepancies": [d.to_dict() for d in self.discrepancies],
        }


def reference_outputs(case: Case, inputs: Inputs) -> dict[str, np.ndarray]:
    """refcnn's spec in float64 on ``inputs`` (which hold values exact in ``case.dtype``)."""
    out = case.entry.reference(case, inputs)
    return {k: np.asarray(out[k], dtype=np.int64 if k == "indices" else np.float64)
            for k in case.output_names()}


@functools.lru_cache(maxsize=256)
def prepared(case: Case, mode: str = "bound"):
    """(inputs, reference outputs, bounds) for a case, cached per process."""
    inputs = make_inputs(case)
    ref = reference_outputs(case, inputs)
    return inputs, ref, tolerance.bounds(case, inputs, ref, mode)


def run_backend(case: Case, name: str, backend: Backend, mode: str = "bound") -> CaseResult:
    """Run one backend on one case and judge it. Never raises."""
    start = time.perf_counter()
    try:
        reason = backend.unsupported(case)
        if reason:
            return CaseResult(case, name, Status.UNSUPPORTED, reason=reason)
        inputs, ref, bnds = prepared(case, mode)
        out = backend.run(case, inputs)
    except Unsupported as exc:
        return CaseResult(case, name, Status.UNSUPPORTED, reason=str(exc))
    except Exception:  # noqa: BLE001 - a crashing backend is a failed case, the run goes on
        return CaseResult(case, name, Status.FAILED, reason="crashed: " + traceback.format_exc(),
                          seconds=time.perf_counter() - start)
    discs = [
        compare(out.get(k) if isinstance(out, dict) else None, ref[k], bnds[k],
                case_id=case.id, backend=name, output=k)
        for k in output_names(case)
    ]
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
    return CaseResult(case, name, status, discs, reason, seconds=time.perf_counter() - start,
                      outputs=out)


def run_case(case: Case, backends: dict[str, Backend], mode: str = "bound") -> list[CaseResult]:
    """Every backend on one case, with the odd one out named where they disagree."""
    results = [run_backend(case, name, be, mode) for name, be in backends.items()]
    _name_odd_one_out(case, results, mode)
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
    Otherwise the failing backends are.
    """
    # Only real disagreements: a backend that agreed although it declares a divergence
    # failed for another reason (its declaration is out of date).
    failed = [r for r in results if r.status == Status.FAILED and r.discrepancies
              and not all(d.passed for d in r.discrepancies)]
    if not failed:
        return
    independent = [r for r in results if semantics.family(r.backend) != "refcnn"
                   and r.status in (Status.PASSED, Status.FAILED) and r.discrepancies]
    verdict = None
    if len(independent) >= 2 and all(r.status == Status.FAILED for r in independent):
        if _agree(case, independent, mode):
            verdict = f"refcnn (the reference): {', '.join(r.backend for r in independent)} " \
                      "agree with each other and not with it"
    if verdict is None:
        agreeing = ["refcnn float64"] + [r.backend for r in results if r.status == Status.PASSED]
        verdict = ", ".join(r.backend for r in failed) + \
            f" (disagrees with {', '.join(agreeing)})"
    for r in failed:
        r.odd_one_out = verdict


def _agree(case, results, mode) -> bool:
    _, _, bnds = prepared(case, mode)
    outs = [r.outputs for r in results]
    first = outs[0]
    for other in outs[1:]:
        for k in output_names(case):
            # Two backends may each err by up to the bound: allow twice it between them.
            doubled = tolerance.Bound(2 * bnds[k].allowed, bnds[k].description)
            if not compare(other[k], first[k], doubled).passed:
                return False
    return True


def _finite_or_text(value: float):
    return value if np.isfinite(value) else str(value)
