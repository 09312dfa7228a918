"""Verdicts: run the sweep on a target (:func:`check_target`), one verdict per function, and
print them (:func:`print_verdicts`) or write them as JSON (:func:`write_json`).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

from crosscheck.conform.checks import CaseOutcome
from crosscheck.conform.sweep import conform_case, conformance_cases
from crosscheck.conform.target import FUNCTIONS, TargetError
from crosscheck.conform.worker import InProcessTarget, TargetProcess

CONFORMANT, NOT_CONFORMANT, NOT_PROVIDED = "conformant", "not conformant", "not provided"


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
