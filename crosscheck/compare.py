"""The one comparison: actual vs reference under a per-element bound, as a structured result.

:func:`compare` never raises: a wrong shape, a non-array or anything odd comes
back as a failed :class:`Discrepancy` that says what went wrong.
:func:`assert_close` is the thin assertion on top, for tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from crosscheck.reproduce import run_snippet
from crosscheck.tolerance import Bound


@dataclass(frozen=True)
class Discrepancy:
    """How one output of one backend differs from the reference on one case.

    Indices are into the canonical layout (NHWC for data, HWIO for weights).
    ``worst_ratio`` is the largest ``|actual - ref| / allowed``: at most 1 passes.
    With ``compare(..., statistics=True)``, ``stat_elements`` elements were judged as a
    whole (:mod:`crosscheck.statistics`): ``bias`` (mean signed error/bound) and ``rms``
    against ``bias_limit`` and ``rms_limit``; ``statistics`` says what failed (None:
    nothing, or too few elements to judge).
    """

    case_id: str
    backend: str
    output: str
    passed: bool
    shape: tuple[int, ...] | None = None
    elements: int = 0
    mismatches: int = 0
    nonfinite_mismatches: int = 0
    max_abs_error: float = 0.0
    max_abs_index: tuple[int, ...] | None = None
    max_rel_error: float = 0.0
    max_rel_index: tuple[int, ...] | None = None
    worst_ratio: float = 0.0
    worst_ratio_index: tuple[int, ...] | None = None
    actual_at_worst: float | None = None
    expected_at_worst: float | None = None
    allowed_at_worst: float | None = None
    bound: str = ""
    error: str | None = None
    reproduce: str = ""
    stat_elements: int = 0
    bias: float | None = None
    rms: float | None = None
    bias_limit: float | None = None
    rms_limit: float | None = None
    statistics: str | None = None

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))

    def summary(self) -> str:
        """One line a person can read on its own."""
        head = f"{self.backend} {self.output} on {self.case_id}"
        if self.error:
            return f"{head}: {self.error}"
        if self.passed:
            return f"{head}: ok (worst error/bound {self.worst_ratio:.3g})"
        if self.statistics and not self.mismatches:
            return (f"{head}: every element within its bound (worst error/bound "
                    f"{self.worst_ratio:.3g}), but {self.statistics}; bound: {self.bound}")
        return (
            f"{head}: {self.mismatches}/{self.elements} elements outside the bound "
            f"({self.nonfinite_mismatches} non-finite); worst error/bound {self.worst_ratio:.3g} "
            f"at NHWC index {self.worst_ratio_index} (got {self.actual_at_worst!r}, expected "
            f"{self.expected_at_worst!r}, allowed +-{self.allowed_at_worst:.3g}); max abs error "
            f"{self.max_abs_error:.3g} at {self.max_abs_index}; bound: {self.bound}"
        )


def compare(actual, expected: np.ndarray, bound: Bound, *, case_id: str = "?",
            backend: str = "?", output: str = "?", statistics: bool = False) -> Discrepancy:
    """Compare ``actual`` with ``expected`` element by element under ``bound``.

    NaN matches NaN and an infinity matches the same infinity; any other
    non-finite disagreement is a mismatch with an infinite ratio.

    Parameters
    ----------
    actual : array-like, expected's shape
    expected : ndarray (float64 reference)
    bound : Bound, allowed absolute error per element (expected's shape)
    statistics : also judge the output as a whole (bias and RMS of error/bound,
        :mod:`crosscheck.statistics`); a failure there fails the comparison

    Returns
    -------
    Discrepancy (never raises)
    """
    base = dict(case_id=case_id, backend=backend, output=output, bound=bound.description,
                reproduce=run_snippet(case_id, backend, output))
    try:
        got = np.asarray(actual, dtype=np.float64)
        if got.shape != expected.shape:
            return Discrepancy(passed=False, shape=tuple(got.shape), elements=got.size,
                               error=f"shape {tuple(got.shape)} but the reference has shape "
                                     f"{tuple(expected.shape)}", **base)
        return _compare_values(got, np.asarray(expected, dtype=np.float64),
                               np.broadcast_to(bound.allowed, expected.shape), base,
                               statistics)
    except Exception as exc:  # noqa: BLE001 - compare must report, never raise
        return Discrepancy(passed=False, error=f"could not compare: {exc!r}", **base)


def _compare_values(got, ref, allowed, base, statistics=False) -> Discrepancy:
    both_nan = np.isnan(got) & np.isnan(ref)
    same_inf = np.isinf(got) & np.isinf(ref) & (got == ref)
    matched_nonfinite = both_nan | same_inf
    finite = np.isfinite(got) & np.isfinite(ref)
    nonfinite_bad = ~finite & ~matched_nonfinite
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        err = np.where(finite, np.abs(got - ref), 0.0)
        rel = np.where(finite & (ref != 0), err / np.abs(ref), np.where(err > 0, np.inf, 0.0))
        ratio = np.where(err == 0, 0.0, err / allowed)
    ratio = np.where(nonfinite_bad, np.inf, ratio)
    bad = (ratio > 1.0) | nonfinite_bad
    fields = dict(shape=tuple(ref.shape), elements=int(ref.size), mismatches=int(bad.sum()),
                  nonfinite_mismatches=int(nonfinite_bad.sum()))
    if ref.size:
        i_abs = np.unravel_index(int(np.argmax(err)), ref.shape)
        i_rel = np.unravel_index(int(np.argmax(rel)), ref.shape)
        i_ratio = np.unravel_index(int(np.argmax(ratio)), ref.shape)
        fields.update(
            max_abs_error=float(err[i_abs]), max_abs_index=_index(i_abs),
            max_rel_error=float(rel[i_rel]), max_rel_index=_index(i_rel),
            worst_ratio=float(ratio[i_ratio]), worst_ratio_index=_index(i_ratio),
            actual_at_worst=float(got[i_ratio]), expected_at_worst=float(ref[i_ratio]),
            allowed_at_worst=float(allowed[i_ratio]),
        )
    passed = not bad.any()
    if statistics:
        from crosscheck.statistics import figures

        stats = figures(got, ref, allowed)
        fields.update(stat_elements=stats.elements, bias=stats.bias, rms=stats.rms,
                      bias_limit=stats.bias_limit, rms_limit=stats.rms_limit,
                      statistics=stats.problem)
        passed = passed and stats.problem is None
    return Discrepancy(passed=passed, **fields, **base)


def assert_close(actual, expected, bound: Bound, **names) -> Discrepancy:
    """Assert that :func:`compare` passes; the message is the discrepancy's summary."""
    d = compare(actual, expected, bound, **names)
    assert d.passed, d.summary() + "\n" + d.reproduce
    return d


def _index(i) -> tuple[int, ...]:
    return tuple(int(v) for v in i)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj
