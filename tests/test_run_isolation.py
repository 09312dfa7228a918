"""``crosscheck run`` against backends that misbehave: the culprit alone is blamed.

The backends are ``tests/conform_targets/evil_backends.py`` (``evil_backends:Class``),
each run next to refcnn and torch through ``crosscheck run --backends ... --timeout 2
--json ...``. Every test checks the verdict (the culprit's status, the innocent
backends passing), that every case is in the JSON, JSONL, JUnit and Markdown reports,
the exit code, and that no process the run started is left.

Each test fails on crosscheck as it was before the isolation work (runner and CLI at
commit 26409ea, run without ``--timeout``, which did not exist), for the reason its
docstring gives; the tests of the worker itself test what did not exist.
"""

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from crosscheck import isolation, runner
from crosscheck.backends.refcnn_backend import RefcnnBackend
from crosscheck.cases import Case
from crosscheck.cli import EXIT_DISCREPANCY, EXIT_INTERRUPTED, EXIT_NOTHING_JUDGED, main

TARGETS = os.path.join(os.path.dirname(__file__), "conform_targets")
sys.path.insert(0, TARGETS)
import evil_backends  # noqa: E402

#: Forward max pool with a 1x1 window: y == x, so a view of x is the right values. The evil
#: backends misbehave on it (evil_backends.misbehaves) and behave on GOOD.
BAD = "max_pool2d-fwd-n1h4w4c2-k1x1-s1x1-p0.0.0.0-d1x1-float64-s0"
GOOD = "conv2d-bwd-n2h7w5c4o6-k3x3-s2x1-p1.1.0.2-d1x1-g2-float32-s0"

pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _environment(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(TARGETS)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("CROSSCHECK_JAX_CACHE", "none")
    monkeypatch.setenv("CROSSCHECK_EVIL_PIDS", str(tmp_path / "pids"))


class Reports:
    """The four reports of one run, read back."""

    def __init__(self, tmp_path):
        self.paths = {k: tmp_path / f"r.{k}" for k in ("json", "md", "xml")}
        self.jsonl = tmp_path / "r.jsonl"

    def args(self):
        return ["--json", str(self.paths["json"]), "--markdown", str(self.paths["md"]),
                "--junit", str(self.paths["xml"])]

    @property
    def data(self):
        return json.loads(self.paths["json"].read_text())

    def status(self):
        """(case, target) -> result: a module:Class is reported by its name, and keeps its
        module:Class as the result's target."""
        return {(r["case"], target(r)): r for r in self.data["results"]}

    def assert_every_result_reported(self, cases, backends):
        expected = {(c, b) for c in cases for b in backends}
        data = self.data
        labels = {spec: label for label, spec in data["targets"].items()}
        assert {(r["case"], target(r)) for r in data["results"]} == expected
        lines = [json.loads(line) for line in self.jsonl.read_text().splitlines()]
        logged = [(r["case"], target(r)) for r in lines if r["type"] == "result"]
        assert sorted(logged) == sorted(expected), "the JSONL log misses results"
        root = ET.parse(self.paths["xml"]).getroot()
        junit = [(t.get("name"), suite.get("name").removeprefix("crosscheck."))
                 for suite in root.iter("testsuite") for t in suite.iter("testcase")]
        assert sorted(junit) == sorted((c, labels[b]) for c, b in expected)
        md = self.paths["md"].read_text()
        total = next(line for line in md.splitlines() if line.startswith("| **total**"))
        assert total.split("|")[4].strip() == str(len(expected)), total
        for (case, _), r in self.status().items():
            if r["status"] not in ("passed", "unsupported"):
                backend = r["backend"]
                assert f"`{case}` on {backend}" in md, f"{case} on {backend} not in Markdown"


def target(r: dict) -> str:
    """What --backends named: a result's target, else its backend."""
    return r.get("target", r["backend"])


def run_cli(reports, backends, *cases, timeout=2):
    return main(["run", "--backends", ",".join(backends), *(a for c in cases for a in
                                                             ("--case", c)),
                 "--timeout", str(timeout), "--no-progress", *reports.args()])


def recorded_pids(tmp_path) -> list[int]:
    path = tmp_path / "pids"
    return [int(line.split()[0]) for line in path.read_text().splitlines()] \
        if path.exists() else []


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def assert_none_alive(pids, within=5.0):
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if alive(p)], f"left behind: {[p for p in pids if alive(p)]}"


# ---- one misbehaviour each: the culprit alone is blamed, the run goes on ---------------------
MISBEHAVIOURS = [
    ("Segfaults", "crashed", "killed by signal SIGSEGV"),
    ("ExitsThree", "exited", "exit code 3"),
    ("SysExitZero", "system-exit", "raised SystemExit(0)"),
    ("Hangs", "timeout", "no answer within 2 s"),
    ("RaisesKeyboardInterrupt", "keyboard-interrupt", "raised KeyboardInterrupt"),
    ("WritesInputs", "failed", "modified its input x"),
    ("ReturnsView", "failed", "returned a view of its inputs: y (a view of x)"),
]


@pytest.mark.parametrize("culprit, status, reason", MISBEHAVIOURS,
                         ids=[m[0] for m in MISBEHAVIOURS])
def test_run_misbehaving_backend_alone_is_blamed_and_the_run_goes_on(
        culprit, status, reason, tmp_path, capsys):
    """Before: a segfault or os._exit killed the whole run (no report), sys.exit(0) ended it
    with exit 0, a hang never ended, KeyboardInterrupt stopped the run, and the input-writer
    and the view-returner passed (the writer, first here, made refcnn and torch fail and be
    named the odd ones out instead)."""
    name = f"evil_backends:{culprit}"
    backends = [name, "refcnn", "torch"] if culprit == "WritesInputs" else \
        ["refcnn", "torch", name]
    reports = Reports(tmp_path)
    code = run_cli(reports, backends, BAD, GOOD)
    out = capsys.readouterr().out
    assert code == EXIT_DISCREPANCY, out
    results = reports.status()
    blamed = results[(BAD, name)]
    assert blamed["status"] == status and reason in blamed["reason"], blamed
    assert BAD in blamed["reason"] or status in ("failed",)
    # The worker was replaced: the culprit's next case ran and passed.
    assert results[(GOOD, name)]["status"] == "passed", results[(GOOD, name)]
    for innocent in ("refcnn", "torch"):
        for case in (BAD, GOOD):
            r = results[(case, innocent)]
            assert r["status"] == "passed" and not r["odd_one_out"], r
    assert reports.data["complete"] is True and reports.data["exit_code"] == code
    reports.assert_every_result_reported([BAD, GOOD], backends)
    assert f"{status.upper()} {BAD} on evil" in out  # its name (evil_backends._Evil.name)
    assert_none_alive(recorded_pids(tmp_path))


def test_run_backend_writing_inputs_in_process_changes_only_its_own_copies():
    """Before: every backend got the same arrays, which own their memory, so a backend could
    set them writeable: refcnn after the writer failed, and the writer passed."""
    case = Case.from_id(BAD)
    results = runner.run_case(case, {"writer": evil_backends.WritesInputs(),
                                     "refcnn": RefcnnBackend()})
    writer, ref = results
    assert ref.status == "passed", ref.summary()
    assert writer.status == "failed" and writer.modified_inputs == ["x"], writer.summary()
    assert np.isfinite(runner.prepared(case)[0].x).all() and \
        (runner.prepared(case)[0].x != 1e6).all(), "the pristine inputs were changed"


def test_run_backend_returning_a_view_in_process_is_blamed():
    """Before: a view of the input, with the right values, passed."""
    (r,) = runner.run_case(Case.from_id(BAD), {"viewer": evil_backends.ReturnsView()})
    assert r.status == "failed" and r.aliased_outputs == ["y (a view of x)"], r.summary()


# ---- bad outputs: the odd-one-out logic never breaks ---------------------------------------
def test_run_two_backends_returning_nothing_are_blamed_not_crash_the_run(tmp_path, capsys):
    """Before: with both independent backends failing, the odd-one-out logic compared their
    outputs (``{}`` and ``None``) and raised (KeyError/TypeError): exit 3, and the case was
    missing from every report."""
    backends = ["refcnn", "evil_backends:ReturnsEmpty", "evil_backends:ReturnsNone"]
    reports = Reports(tmp_path)
    code = run_cli(reports, backends, GOOD, BAD)
    out = capsys.readouterr().out
    assert code == EXIT_DISCREPANCY, out
    results = reports.status()
    for case in (GOOD, BAD):
        assert results[(case, "refcnn")]["status"] == "passed"
        for name in backends[1:]:
            r = results[(case, name)]
            assert r["status"] == "failed" and r["odd_one_out"].startswith(
                "evil_backends:ReturnsEmpty, evil_backends:ReturnsNone (disagrees with"), r
    errors = {d["error"] for r in reports.data["results"] for d in r["discrepancies"]
              if d["error"]}
    assert "returned NoneType None, not a dict of arrays" in errors
    assert "returned no 'y' (its keys: [])" in errors
    reports.assert_every_result_reported([GOOD, BAD], backends)
    assert_none_alive(recorded_pids(tmp_path))


BAD_OUTPUTS = [evil_backends.ReturnsEmpty, evil_backends.ReturnsEmptyToo,
               evil_backends.ReturnsNone, evil_backends.WrongKeys, evil_backends.WrongShapes,
               evil_backends.NotArrays]


@pytest.mark.parametrize("size", [2, 3])
def test_odd_one_out_survives_every_combination_of_bad_outputs(size):
    """Before: any pair among these raised in runner._agree (KeyError: 'y', TypeError), so
    run_case raised and the case was lost."""
    case = Case.from_id(GOOD)
    for combo in itertools.combinations(BAD_OUTPUTS, size):
        backends = {"refcnn": RefcnnBackend(),
                    **{f"bad{i}.{cls.__name__}": cls() for i, cls in enumerate(combo)}}
        results = runner.run_case(case, backends)
        assert [r.backend for r in results] == list(backends)
        assert results[0].status == "passed"
        for r in results[1:]:
            assert r.status == "failed", r.summary()
            assert r.odd_one_out and r.odd_one_out.startswith(
                ", ".join(list(backends)[1:])), r.odd_one_out
    # ... and keeps the rule: independent backends that agree outvote refcnn.
    import fake_backends

    results = runner.run_case(Case.from_id(BAD), {
        "refcnn": RefcnnBackend(), "a": fake_backends.Perturbed(),
        "b": fake_backends.PerturbedToo()})
    assert results[1].odd_one_out.startswith("refcnn (the reference)")


# ---- nothing judged -----------------------------------------------------------------------
def test_run_backend_that_supports_nothing_exits_4_with_counts(tmp_path, capsys):
    """Before: a run in which a requested backend judged nothing exited 0 ("No failures.")."""
    backends = ["refcnn", "torch", "evil_backends:SupportsNothing"]
    reports = Reports(tmp_path)
    code = run_cli(reports, backends, BAD, GOOD)
    captured = capsys.readouterr()
    assert code == EXIT_NOTHING_JUDGED == 4
    note = "backend evil had no case judged (2 cases: 2 unsupported)"  # by its name
    assert note in captured.out
    data = reports.data
    assert data["exit_code"] == 4
    assert data["unjudged"]["evil"]["unsupported"] == 2
    assert data["summary"]["evil"]["unsupported"] == 2
    assert note in reports.paths["md"].read_text()
    reports.assert_every_result_reported([BAD, GOOD], backends)


def test_run_failure_wins_over_nothing_judged(tmp_path, capsys):
    """1 (a failure) is reported over 4 (a backend judged nothing). Before: exit 0 was
    impossible here too, but nothing said that the unsupported backend judged nothing."""
    backends = ["refcnn", "evil_backends:SupportsNothing", "evil_backends:ReturnsNone"]
    reports = Reports(tmp_path)
    assert run_cli(reports, backends, BAD) == EXIT_DISCREPANCY
    assert "SupportsNothing had no case judged" in capsys.readouterr().out


def test_run_with_jobs_a_segfault_is_that_case_s_result(tmp_path, capsys):
    """Before: with -j 2, the segfault killed a pool worker: BrokenProcessPool, exit 3, the
    crash attributed to nothing."""
    reports = Reports(tmp_path)
    backends = ["refcnn", "evil_backends:Segfaults"]
    code = main(["run", "--backends", ",".join(backends), "--cases", "smoke", "--ops",
                 "max_pool2d", "--dtypes", "float64", "--jobs", "2", "--timeout", "30",
                 "--no-progress", *reports.args()])
    assert code == EXIT_DISCREPANCY, capsys.readouterr().out
    results = reports.data["results"]
    assert len({r["case"] for r in results}) > 4
    for r in results:
        if target(r) == backends[1] and r["direction"] == "forward":
            assert r["status"] == "crashed" and "SIGSEGV" in r["reason"], r
        else:  # refcnn, and the culprit on the cases it behaves on (a new worker each time)
            assert r["status"] in ("passed", "unsupported"), r
    assert sum(r["status"] == "passed" and target(r) == backends[1] for r in results) > 2
    assert_none_alive(recorded_pids(tmp_path))


# ---- crosscheck itself stopped ------------------------------------------------------------
def _start_run(tmp_path, backends, *cases, timeout=60):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TARGETS, os.environ.get(
        "PYTHONPATH", "")]), CROSSCHECK_EVIL_PIDS=str(tmp_path / "pids"))
    reports = Reports(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "crosscheck.cli", "run", "--backends", ",".join(backends),
         *(a for c in cases for a in ("--case", c)), "--timeout", str(timeout),
         "--no-progress", *reports.args()],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    hanging = tmp_path / "pids.hanging"
    deadline = time.monotonic() + 120
    while not hanging.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the backend never started hanging"
        time.sleep(0.05)
    return proc, reports


def test_run_sigterm_while_a_backend_hangs_writes_incomplete_reports(tmp_path):
    """Before: no JSONL; the hang ran in crosscheck's own process and the SIGTERM became a
    plain 'interrupted'; and the process the backend started outlived the run."""
    backends = ["refcnn", "torch", "evil_backends:Hangs"]
    proc, reports = _start_run(tmp_path, backends, GOOD, BAD)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    data = reports.data
    assert data["complete"] is False and data["stopped"] == "terminated"
    assert "SIGTERM" in data["stop_reason"] and f"case {BAD} in flight" in data["stop_reason"]
    # The finished case is in every report; the one in flight in none.
    assert {(r["case"], target(r)) for r in data["results"]} == \
        {(GOOD, b) for b in backends}
    lines = [json.loads(line) for line in reports.jsonl.read_text().splitlines()]
    assert [r["case"] for r in lines if r["type"] == "result"] == [GOOD] * 3
    assert lines[-1]["type"] == "end" and lines[-1]["complete"] is False
    assert "Incomplete run" in reports.paths["md"].read_text()
    assert len(ET.parse(reports.paths["xml"]).getroot().findall(".//testcase")) == 3
    assert "did not complete" in out
    assert_none_alive(recorded_pids(tmp_path))


def test_run_sigkill_of_crosscheck_leaves_no_worker_and_keeps_the_jsonl(tmp_path):
    """Before: no JSONL (the JSON was written every 60 s), and the hanging backend's child
    process outlived crosscheck (in the new design the worker's guardian kills its group)."""
    backends = ["refcnn", "evil_backends:Hangs"]
    proc, reports = _start_run(tmp_path, backends, GOOD, BAD)
    pids = recorded_pids(tmp_path)
    assert pids and all(alive(p) for p in pids)
    proc.kill()
    proc.communicate(timeout=60)
    assert_none_alive(pids)
    lines = [json.loads(line) for line in reports.jsonl.read_text().splitlines()]
    assert [(r["case"], target(r)) for r in lines if r["type"] == "result"] == \
        [(GOOD, b) for b in backends]


# ---- the worker itself ----------------------------------------------------------------------
def test_isolated_backend_keeps_the_protocol_and_sends_no_pickle():
    """The worker's answers are npy arrays read with allow_pickle=False and JSON."""
    backend = isolation.IsolatedBackend("fake_backends:Perturbed", timeout=30)
    try:
        case = Case.from_id(GOOD)
        inputs = runner.prepared(case)[0]
        assert backend.version() == "0.0-test" and backend.unsupported(case) is None
        out = backend.run(case, inputs)
        assert set(out) == {"dx", "dw", "db"} and all(type(v) is np.ndarray
                                                        for v in out.values())
        assert out["dx"].shape == inputs.x.shape
    finally:
        backend.close()
    assert backend.pid is None


def test_pickled_object_array_on_the_wire_is_refused():
    """An npy blob holding pickled objects (a worker the backend took over) does not load."""
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"payload": 1}], dtype=object), allow_pickle=True)
    blob = buf.getvalue()
    head = json.dumps({"kind": "outputs", "arrays": [["y", len(blob)]]}).encode()
    with pytest.raises(isolation.WireError, match="pickle"):
        isolation._decode(head, lambda n: blob[:n])
