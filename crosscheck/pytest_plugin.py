"""pytest plugin (registered through the ``pytest11`` entry point); inert unless its options are used.

``pytest --crosscheck-impl TARGET`` adds the conformance checks of
:mod:`crosscheck.conform` as ordinary test items, one per (function, case):
``--junitxml``, ``-k`` and ``-n auto`` work on them, and collection is the same
in every process (it does not depend on the target, which is loaded only when
the first item runs; items of functions the target lacks are skipped). The
target runs in a worker process with a per-case timeout, and is judged in the
pytest process, which never imports it, as in ``crosscheck conform`` (a ``.ipynb`` target
too). A failing item shows the case's hints; without xdist, the run ends with a
"crosscheck diagnosis" section naming each failing function's cause.

Nothing heavy is imported at module import: this module is loaded by every
pytest run in an environment where the package is installed.
"""

from __future__ import annotations

import pytest

from crosscheck.statuses import ConformStatus

_KEY_OPTION = "crosscheck_impl"


def pytest_addoption(parser):
    group = parser.getgroup("crosscheck", "crosscheck conformance checks")
    group.addoption("--crosscheck-impl", dest=_KEY_OPTION, metavar="TARGET", default=None,
                    help="run crosscheck's conformance checks on TARGET (a module, a .py file "
                         "or module:object implementing the notebook API) as test items")
    group.addoption("--crosscheck-function", dest="crosscheck_function", action="append",
                    default=[], metavar="NAME",
                    help="only check this notebook function (repeatable)")
    group.addoption("--crosscheck-strict", dest="crosscheck_strict", action="store_true",
                    help="add the tie and NaN convention probes (reported, never failing)")
    group.addoption("--crosscheck-timeout", dest="crosscheck_timeout", type=float, default=10.0,
                    metavar="SECONDS", help="per-case time limit for the target (default 10)")


def _target(config) -> str | None:
    return config.getoption(_KEY_OPTION, default=None)


def pytest_configure(config):
    if _target(config):
        config.addinivalue_line("markers", "crosscheck_conform: a crosscheck conformance case")


def pytest_report_header(config):
    target = _target(config)
    if not target:
        return None
    from crosscheck.backends import BUILTIN
    from crosscheck.report import versions

    v = versions()
    # Versions come from package metadata: importing torch or jax for a header line would
    # cost seconds. A backend's distribution is the first part of its name.
    installed = ", ".join(f"{name} {v[name.split('.')[0]]}" for name in BUILTIN
                          if v.get(name.split(".")[0]))
    return [f"crosscheck: conformance of {target} against refcnn {v['refcnn']} (float64); "
            f"numpy {v['numpy']}",
            f"crosscheck backends installed: {installed}"]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    """Append the conformance items before -k/-m deselection (which runs later) sees them."""
    target = _target(config)
    if not target:
        return
    from crosscheck import conform

    functions = config.getoption("crosscheck_function") or None
    unknown = sorted(set(functions or ()) - set(conform.FUNCTIONS))
    if unknown:
        raise pytest.UsageError(f"--crosscheck-function: unknown {', '.join(unknown)}; choose "
                                f"from {', '.join(conform.FUNCTIONS)}")
    collector = ConformCollector.from_parent(session, name="crosscheck-conform")
    # genitems sends the collect reports, so "collected N items" and -k's counts include these.
    items.extend(session.genitems(collector))


class ConformCollector(pytest.Collector):
    """The conformance cases of one target, in the sweep's (deterministic) order."""

    def collect(self):
        from crosscheck import conform

        config = self.config
        cases = conform.conformance_cases(config.getoption("crosscheck_function") or None,
                                          strict=config.getoption("crosscheck_strict"))
        for cc in cases:
            yield ConformItem.from_parent(self, name=f"{cc.function}[{cc.id}]", case=cc)


class ConformItem(pytest.Item):
    def __init__(self, *, case, **kwargs):
        super().__init__(**kwargs)
        self.case = case
        self.add_marker("crosscheck_conform")

    def runtest(self):
        session = _session_target(self.config)
        if self.case.function not in session.provided:
            pytest.skip(f"{session.spec} does not provide {self.case.function}")
        outcome = session.check(self.case)
        # A plain str: xdist's serialiser refuses str subclasses such as the enum.
        self.user_properties.append(("crosscheck_status", str(outcome.status)))
        if outcome.status == ConformStatus.SKIPPED:  # an earlier case timed out or crashed
            pytest.skip(outcome.message)
        if outcome.max_error is not None:
            self.user_properties.append(("crosscheck_max_error", repr(outcome.max_error)))
        if outcome.status == ConformStatus.REPORTED:
            self.user_properties.append(("crosscheck_convention", outcome.convention or ""))
            return
        if outcome.status != ConformStatus.PASSED:
            raise ConformFailure(outcome)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ConformFailure):
            o = excinfo.value.outcome
            params = ", ".join(f"{k}={v}" for k, v in o.params.items())
            hints = "".join(f"  - {h}\n" for h in o.hints)
            return (f"{o.function} is not conformant on {o.case_id}\n"
                    f"  parameters: {params}\n  {o.message}\n{hints}\nreproduce:\n"
                    f"{o.reproduce}")
        if isinstance(excinfo.value, _LoadFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"crosscheck conform {self.case.function} {self.case.id}"


class ConformFailure(Exception):
    def __init__(self, outcome):
        super().__init__(outcome.message)
        self.outcome = outcome


class _LoadFailure(Exception):
    """The target could not be loaded: every item fails with this one message."""


class _Session:
    """The target's worker process, shared by the items of one pytest process."""

    def __init__(self, spec: str, timeout: float):
        from crosscheck import conform

        self.spec = spec
        self.session = conform.ConformSession(spec, timeout)
        self.error: str | None = None
        self.outcomes: list = []  # what this process judged, for the diagnosis at the end
        try:
            self.provided = self.session.start()
        except conform.TargetError as exc:
            self.provided, self.error = [], str(exc)
        else:
            if not self.provided:
                self.error = (f"{spec} provides none of the notebook functions "
                              f"({', '.join(conform.FUNCTIONS)})")

    def check(self, cc):
        outcome = self.session.outcome(cc)
        self.outcomes.append(outcome)
        return outcome

    def close(self):
        self.session.close()


_SESSION_KEY = pytest.StashKey["_Session"]()


def _session_target(config) -> _Session:
    session = config.stash.get(_SESSION_KEY, None)
    if session is None:
        session = _Session(_target(config), config.getoption("crosscheck_timeout"))
        config.stash[_SESSION_KEY] = session
    if session.error:
        raise _LoadFailure(f"crosscheck: {session.error}")
    return session


def pytest_terminal_summary(terminalreporter, config):
    """The diagnosis of each function that failed here (one process: under xdist each worker
    sees only some cases, so this section is left to ``crosscheck conform``)."""
    session = config.stash.get(_SESSION_KEY, None)
    if session is None or session.error or not session.outcomes:
        return
    from crosscheck.conform.checks import FAILING
    from crosscheck.conform.verdicts import diagnose, verdicts_from

    if not any(o.status in FAILING for o in session.outcomes):
        return
    functions = list(dict.fromkeys(o.function for o in session.outcomes))
    verdicts = verdicts_from(session.outcomes, session.provided, functions)
    diagnose(verdicts, session.outcomes, session.session, session.session.plan)
    tr = terminalreporter
    tr.section("crosscheck diagnosis")
    for line in session.session.notebook():
        tr.write_line(line)
    for name, v in verdicts.items():
        if v.diagnosis:
            tr.write_line(f"{name}: {v.verdict} ({v.failed}/{v.cases} cases failed)")
            for sentence in v.diagnosis:
                tr.write_line(f"  - {sentence}")


def pytest_unconfigure(config):
    session = config.stash.get(_SESSION_KEY, None)
    if session is not None:
        session.close()
        del config.stash[_SESSION_KEY]
