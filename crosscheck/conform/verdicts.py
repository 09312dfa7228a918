"""Verdicts: run the sweep on a target (:func:`check_target`, case by case through a
:class:`ConformSession`), one verdict per function, and print them (:func:`print_verdicts`)
or write them as JSON (:func:`write_json`).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

from crosscheck.conform.checks import FAILING, NOT_RUN, STOPPED, CaseOutcome
from crosscheck.conform.sweep import ConformCase, conform_case, conformance_cases
from crosscheck.conform.target import FUNCTIONS, TargetError
from crosscheck.conform.worker import InProcessTarget, TargetProcess
from crosscheck.statuses import ConformStatus, ConformVerdict

#: The verdicts (:class:`crosscheck.statuses.ConformVerdict`) under their public names.
CONFORMANT, NOT_CONFORMANT = ConformVerdict.CONFORMANT, ConformVerdict.NOT_CONFORMANT
NOT_PROVIDED, INCOMPLETE = ConformVerdict.NOT_PROVIDED, ConformVerdict.INCOMPLETE


@dataclass
class FunctionVerdict:
    function: str
    verdict: ConformVerdict
    cases: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    not_run: int = 0
    first_failure: CaseOutcome | None = None
    failures: list = field(default_factory=list)
    reported: list = field(default_factory=list)
    first_not_run: CaseOutcome | None = None
    #: Plain sentences naming the cause (:mod:`crosscheck.conform.diagnose`).
    diagnosis: list = field(default_factory=list)
    #: Cases judged with the reference's cache (a backward whose forward failed on them).
    reference_cache: int = 0
    #: The targeted extra cases the diagnosis ran: (what changed, outcome).
    extra: list = field(default_factory=list)
    #: Some cases were judged on the target's own forward's cache although that forward
    #: failed on them (its backward does not take the notebook's cache).
    own_cache: bool = False

    def to_dict(self) -> dict:
        return {"function": self.function, "verdict": self.verdict, "cases": self.cases,
                "passed": self.passed, "failed": self.failed, "skipped": self.skipped,
                "not_run": self.not_run, "diagnosis": list(self.diagnosis),
                "judged_with_reference_cache": self.reference_cache,
                "first_failure": self.first_failure.to_dict() if self.first_failure else None,
                "extra_cases": [{"change": label, "case_id": o.case_id, "status": o.status,
                                 "message": o.message} for label, o in self.extra],
                "conventions": {o.case_id: o.convention for o in self.reported}}


@dataclass(repr=False)
class ConformOutcome:
    target: str
    provided: list
    verdicts: dict
    outcomes: list
    seconds: float
    strict: bool = False
    seed: int = 0
    stopped: str | None = None
    #: For a notebook: what of it ran and what did not (sentences), and its plan's facts.
    notebook: list = field(default_factory=list)

    def __repr__(self) -> str:  # Jupyter shows check()'s return value: keep it one line
        wrong = [n for n, v in self.verdicts.items() if v.verdict == ConformVerdict.NOT_CONFORMANT]
        return (f"<ConformOutcome {self.target}: "
                + ("conformant" if self.conformant else
                   f"not conformant: {', '.join(wrong)}" if wrong else "incomplete") + ">")

    @property
    def conformant(self) -> bool:
        return self.stopped is None and all(
            v.verdict in (ConformVerdict.CONFORMANT, ConformVerdict.NOT_PROVIDED)
            for v in self.verdicts.values())

    def to_dict(self) -> dict:
        from crosscheck.report import versions

        return {"versions": versions(), "target": self.target, "provided": self.provided,
                "strict": self.strict, "seed": self.seed, "seconds": round(self.seconds, 3),
                "complete": self.stopped is None, "stopped": self.stopped,
                "conformant": self.conformant, "notebook": list(self.notebook),
                "summary": {k: v.to_dict() for k, v in self.verdicts.items()},
                "results": [o.to_dict() for o in self.outcomes]}


def verdicts_from(outcomes, provided, functions) -> dict:
    verdicts = {}
    for name in functions:
        if name not in provided:
            verdicts[name] = FunctionVerdict(name, ConformVerdict.NOT_PROVIDED)
            continue
        mine = [o for o in outcomes if o.function == name]
        judged = [o for o in mine if o.status != ConformStatus.REPORTED]
        fails = [o for o in mine if o.status in FAILING]
        not_run = [o for o in mine if o.status in NOT_RUN]
        verdict = (ConformVerdict.NOT_CONFORMANT if fails else
                   ConformVerdict.INCOMPLETE if not_run else ConformVerdict.CONFORMANT)
        verdicts[name] = FunctionVerdict(
            name, verdict, cases=len(judged),
            passed=sum(o.status == ConformStatus.PASSED for o in judged),
            failed=len(fails), skipped=sum(o.status == ConformStatus.SKIPPED for o in judged),
            not_run=len(not_run), first_failure=fails[0] if fails else None, failures=fails,
            reported=[o for o in mine if o.status == ConformStatus.REPORTED],
            first_not_run=not_run[0] if not_run else None,
            reference_cache=sum(o.cache == "reference" for o in judged))
        if any(o.cache == "own" for o in judged):
            verdicts[name].own_cache = True
    return verdicts


def diagnose(verdicts: dict, outcomes: list, session=None, plan: dict | None = None,
             seed: int = 0) -> None:
    """Fill in each non-conformant function's diagnosis (and a note on the backward
    functions judged with the reference's cache); with a ``session``, the functions whose
    sweep leaves the cause ambiguous get targeted extra cases through its runner."""
    from crosscheck.conform import diagnose as dx

    for name, v in verdicts.items():
        mine = [o for o in outcomes if o.function == name]
        if v.verdict != ConformVerdict.NOT_CONFORMANT:
            v.diagnosis = dx.diagnose_function(name, mine, verdicts=verdicts, plan=plan) \
                if v.reference_cache or v.own_cache else []
            continue
        if session is not None and dx.needs_extra(name, mine):
            try:
                v.extra = dx.run_extra(_SessionRunner(session), name, session.spec, mine, seed)
            except Exception:  # noqa: BLE001 - extra evidence only: never lose the verdict
                v.extra = []
        try:
            v.diagnosis = dx.diagnose_function(name, mine, verdicts=verdicts, plan=plan,
                                               extra=v.extra)
        except Exception as exc:  # noqa: BLE001 - a bug in a rule must not cost the verdict
            v.diagnosis = [f"(no diagnosis: crosscheck's diagnosis failed: "
                           f"{type(exc).__name__}: {exc})"]


class _SessionRunner:
    """A session's runner for extra cases: skipped, not run, after a stop of the function."""

    def __init__(self, session):
        self.session = session

    def check(self, cc):
        return self.session.outcome(cc)


_ENDED = {ConformStatus.TIMEOUT: "timed out", ConformStatus.CRASHED: "crashed",
          ConformStatus.EXITED: "ended the process",
          ConformStatus.PROTOCOL_ERROR: "broke crosscheck's pipe"}


class ConformSession:
    """The target behind a runner, case by case: what ``check_target`` and the pytest plugin
    share. After a case on which the worker was stopped (a timeout or crash), the rest of that
    function is skipped; the next function gets a new worker, and when importing the target
    again fails, that function's cases are marked ``import-failed`` (each later function
    tries once more) while every verdict already reached stands.
    """

    def __init__(self, spec: str, timeout: float = 10.0, in_process: bool = False,
                 plan: dict | None = None):
        self.spec = spec
        self.runner = (InProcessTarget(spec, plan=plan) if in_process else
                       TargetProcess(spec, timeout, plan=plan))
        self.provided: list[str] = []
        self._ended: dict[str, CaseOutcome] = {}
        self._unimported: dict[str, str] = {}

    def start(self) -> list[str]:
        """Import the target (TargetError when it cannot be)."""
        self.runner.__enter__()
        self.provided = self.runner.start()
        return self.provided

    @property
    def plan(self) -> dict | None:
        """The notebook's plan, when the target is one (read at :meth:`start`)."""
        return self.runner.plan

    def notebook(self) -> list[str]:
        """What of the notebook ran, what was dropped and which imports were skipped."""
        from crosscheck.conform.notebook import describe

        return describe(self.runner.plan, self.runner.skipped) if self.runner.plan else []

    def outcome(self, cc: ConformCase) -> CaseOutcome:
        ended = self._ended.get(cc.function)
        if ended is not None:
            return CaseOutcome(cc.function, cc.id, ConformStatus.SKIPPED,
                               f"skipped: an earlier case of this function ({ended.case_id}) "
                               f"{_ENDED[ended.status]}", cc.params())
        if cc.function in self._unimported:
            return CaseOutcome(cc.function, cc.id, ConformStatus.IMPORT_FAILED,
                               self._unimported[cc.function], cc.params())
        try:
            outcome = self.runner.check(cc)
        except TargetError as exc:  # a new worker, after a timeout or crash, could not import
            last = next(reversed(self._ended.values()), None)
            after = (f" after {last.function} {_ENDED[last.status]} on {last.case_id}"
                     if last else "")
            self._unimported[cc.function] = (f"not run: importing the target again{after} "
                                             f"failed: {exc}")
            return self.outcome(cc)
        if outcome.status in STOPPED:
            self._ended[cc.function] = outcome
        return outcome

    def close(self, graceful: bool = True) -> None:
        self.runner.close(graceful)
        self.runner.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.close(graceful=exc_type is None)
        return False


def check_target(spec: str, *, functions=None, case_ids=None, strict: bool = False,
                 timeout: float = 10.0, in_process: bool = False, seed: int = 0,
                 progress=None, plan: dict | None = None,
                 diagnosis: bool = True) -> ConformOutcome:
    """Run the conformance sweep (or ``case_ids``) on ``spec``; TargetError if it cannot load.

    ``seed`` draws other inputs than the default sweep's (the ids carry it). Interrupted
    (Ctrl-C, or SIGTERM where the caller turns it into KeyboardInterrupt), it returns what was
    judged, the rest ``interrupted`` and ``stopped`` set, after stopping the worker.
    """
    start = time.perf_counter()
    if case_ids:
        try:
            cases = [conform_case(i) for i in case_ids]
        except ValueError as exc:
            raise TargetError(f"bad --case: {exc}") from None
        if functions:
            cases = [c for c in cases if c.function in functions]
    else:
        cases = conformance_cases(functions, strict, seed=seed)
    wanted = list(functions or FUNCTIONS)
    if case_ids:
        wanted = [f for f in wanted if any(c.function == f for c in cases)]
    outcomes: list[CaseOutcome] = []
    stopped = None
    with ConformSession(spec, timeout, in_process, plan=plan) as session:
        provided = session.start()
        notebook = session.notebook()
        if not provided:
            raise TargetError(f"{spec} provides none of the notebook functions "
                              f"({', '.join(FUNCTIONS)})")
        if not set(provided) & set(wanted):
            raise TargetError(f"{spec} provides none of the requested functions "
                              f"({', '.join(wanted)}); it provides {', '.join(provided)}")
        mine = [cc for cc in cases if cc.function in provided]
        if progress is not None:
            for line in notebook:
                print(f"crosscheck conform {spec}: {line}", file=progress)
            print(f"crosscheck conform {spec}: provides {', '.join(provided)}; "
                  f"{len(mine)} cases" + (f", seed {seed} (rerun with --seed {seed})"
                                           if seed and not case_ids else ""), file=progress)
        try:
            for cc in mine:
                outcomes.append(session.outcome(cc))
        except KeyboardInterrupt:
            stopped = ConformStatus.INTERRUPTED
            session.close(graceful=False)
            outcomes += [CaseOutcome(cc.function, cc.id, ConformStatus.INTERRUPTED,
                                     "not run: crosscheck conform was interrupted", cc.params())
                         for cc in mine[len(outcomes):]]
        verdicts = verdicts_from(outcomes, provided, wanted)
        if diagnosis:
            try:
                diagnose(verdicts, outcomes, None if stopped or case_ids else session,
                         session.plan, seed)
            except KeyboardInterrupt:
                stopped = ConformStatus.INTERRUPTED
    return ConformOutcome(spec, provided, verdicts, outcomes, time.perf_counter() - start,
                          strict, seed, stopped, notebook)


def print_verdicts(outcome: ConformOutcome, stream=None, all_failures: bool = False,
                   verbose: bool = False) -> None:
    """The verdicts, each non-conformant one with its diagnosis under it, then the first
    failing case of each function (every one with ``all_failures``) in plain words; the
    error-to-bound figures too with ``verbose``."""
    import textwrap

    stream = stream or sys.stdout
    width = max(len(f) for f in outcome.verdicts) if outcome.verdicts else 10
    print(f"crosscheck conform {outcome.target} ({outcome.seconds:.1f} s)", file=stream)
    for line in outcome.notebook:
        print(textwrap.fill(line, 100, initial_indent="  ", subsequent_indent="    "),
              file=stream)
    for name, v in outcome.verdicts.items():
        detail = ""
        cache = (f"; {v.reference_cache} judged with the reference's cache"
                 if v.reference_cache else "")
        if v.verdict == ConformVerdict.CONFORMANT:
            detail = f"  ({v.passed}/{v.cases} cases{cache})"
        elif v.verdict == ConformVerdict.NOT_CONFORMANT:
            ended = next((o for o in v.failures if o.status in STOPPED), None)
            detail = f"  ({v.failed}/{v.cases} cases failed" + (
                f", {v.skipped} skipped after it {_ENDED[ended.status]}" if v.skipped and ended
                else "") + f"{cache})"
        elif v.verdict == ConformVerdict.INCOMPLETE:
            detail = f"  ({v.passed}/{v.cases} cases passed, {v.not_run} not run)"
        shown = (v.verdict if v.verdict in (ConformVerdict.CONFORMANT, ConformVerdict.NOT_PROVIDED)
                 else v.verdict.upper())
        print(f"  {name.ljust(width)}  {shown}{detail}", file=stream)
        for sentence in v.diagnosis:
            print(textwrap.fill(sentence, 100, initial_indent=" " * (width + 6) + "- ",
                                subsequent_indent=" " * (width + 8)), file=stream)
    for name, v in outcome.verdicts.items():
        if v.first_not_run is not None:
            print(f"\n{name}: {v.not_run} cases {v.first_not_run.message}", file=stream)
        for o in (v.failures if all_failures else v.failures[:1]):
            status = f" ({o.status})" if o.status != ConformStatus.FAILED else ""
            print(f"\n{name}: {'first failing' if not all_failures else 'failing'} case "
                  f"{o.case_id}{status}", file=stream)
            print(f"  parameters: {_params_text(o.params)}", file=stream)
            print(f"  {o.message}", file=stream)
            if verbose:
                if o.max_error is not None:
                    print(f"  max error {o.max_error:.3g}; worst error/bound "
                          f"{_ratio(o.worst_ratio)}", file=stream)
                for d in o.discrepancies:
                    if not d.get("passed"):
                        print(f"  {d['output']}: worst error/bound {d['worst_ratio']} at "
                              f"{d['worst_ratio_index']} (allowed +-{d['allowed_at_worst']}); "
                              f"bound: {d['bound']}", file=stream)
            print("  reproduce:", file=stream)
            for line in o.reproduce.rstrip().splitlines():
                print(f"    {line}", file=stream)
    reported = [o for v in outcome.verdicts.values() for o in v.reported]
    if reported:
        print("\nconventions (--strict; reported, never a failure):", file=stream)
        for o in reported:
            print(f"  {o.function} [{o.case_id}]: {o.convention}", file=stream)
    if outcome.stopped:
        verdict = f"{outcome.stopped}: no verdict on what did not run"
    elif any(v.verdict == ConformVerdict.NOT_CONFORMANT for v in outcome.verdicts.values()):
        verdict = "NOT conformant"
    else:
        verdict = "conformant" if outcome.conformant else "INCOMPLETE: not every case ran"
    print(f"\n{outcome.target}: {verdict}", file=stream)


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v!r}" for k, v in params.items())


def _ratio(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}"


def write_json(path, outcome: ConformOutcome) -> None:
    from crosscheck.report import atomic_write

    atomic_write(path, json.dumps(outcome.to_dict(), indent=1, default=str))
