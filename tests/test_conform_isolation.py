"""``crosscheck conform`` judges outside the target: misbehaving targets cannot bend a verdict,
lose one, or leave a process behind.

The targets are ``tests/conform_targets/evil_*.py``, each written to break one promise. Every
test here failed on conform as it was before it judged outside the target (the worker
imported crosscheck's checks next to the target, computed the verdict there and pickled it
back); each docstring says how. Per-case timeouts are 1-3 s, so each test takes seconds.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from crosscheck import conform
from crosscheck.cli import build_parser, main

TARGETS = os.path.join(os.path.dirname(__file__), "conform_targets")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")


def target(name: str) -> str:
    return os.path.join(TARGETS, f"{name}.py")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed and waiting for its parent to reap it, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def still_alive(pids, seconds: float = 5.0) -> list:
    pids, deadline = list(pids), time.monotonic() + seconds
    while True:
        running = [p for p in pids if alive(p)]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.05)


def stop(pids) -> None:
    """Kill what a failing test would otherwise leave running."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(path, seconds: float = 60.0) -> str:
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return open(path).read()


def verdict(outcome, function: str) -> str:
    return outcome.verdicts[function].verdict


# ---- the verdict is the judge's, not the target's -----------------------------------------------
def test_conform_zero_pad_that_poisons_np_pad_is_not_conformant():
    """Before: conformant. The expected value was ``np.pad(...)`` computed in the target's
    process, where ``np.pad`` was the target's own buggy zero_pad."""
    outcome = conform.check_target(target("evil_pad_poison"), timeout=3)
    v = outcome.verdicts["zero_pad"]
    assert v.verdict == conform.NOT_CONFORMANT, v
    assert "X_pad has shape" in v.first_failure.message
    assert v.passed == 1, "only the pad=0 case is right"


def test_conform_target_patching_crosscheck_reference_and_tolerance_is_not_conformant(
        tmp_path, monkeypatch):
    """Before: conformant, garbage and all: the target's import patched the reference and the
    bounds the worker then judged with, and crosscheck's checks were already loaded there."""
    loaded = tmp_path / "loaded.json"
    monkeypatch.setenv("CROSSCHECK_TEST_REPORT", str(loaded))
    outcome = conform.check_target(target("evil_patches_crosscheck"), timeout=3)
    first = outcome.verdicts["conv_forward"].first_failure
    assert verdict(outcome, "conv_forward") == conform.NOT_CONFORMANT
    assert "values wrong" in first.message and "got 42," in first.message
    assert json.loads(loaded.read_text()) == [], "the worker must hold no crosscheck or refcnn"


def test_conform_sees_input_mutation_hidden_by_patching_np_array_equal():
    """Before: conformant: the mutation check ran ``np.array_equal`` in the target's process,
    where it always said True."""
    outcome = conform.check_target(target("evil_hides_mutation"), timeout=3)
    first = outcome.verdicts["conv_forward"].first_failure
    assert verdict(outcome, "conv_forward") == conform.NOT_CONFORMANT
    assert first.message.startswith("modified its input A_prev in place"), first.message
    assert first.mutated == ["A_prev"]


def test_conform_never_unpickles_what_the_target_sends(tmp_path, monkeypatch):
    """Before: the parent unpickled the target's object from the worker's connection, which
    wrote the marker file (and then crashed on the reply)."""
    marker = tmp_path / "code-from-the-target-ran-here"
    monkeypatch.setenv("CROSSCHECK_TEST_MARKER", str(marker))
    outcome = conform.check_target(target("evil_pickle"), timeout=3)
    assert not marker.exists()
    first = outcome.verdicts["conv_forward"].first_failure
    assert first.status == "protocol-error", first.message
    assert "not in crosscheck's format" in first.message and first.case_id in first.message
    assert verdict(outcome, "zero_pad") == conform.CONFORMANT


# ---- crashes, exits and hangs: each its own status, the run goes on ------------------------------
def test_conform_segfault_is_a_crash_naming_signal_case_and_line():
    """Before: status "timeout" ("the target's process died ... (exit code -11)")."""
    outcome = conform.check_target(target("evil_segfault"), timeout=3)
    first = outcome.verdicts["conv_forward"].first_failure
    assert first.status == "crashed"
    assert "SIGSEGV" in first.message and "timed out" not in first.message
    assert f"conv_forward on {first.case_id}" in first.message
    assert "evil_segfault.py:" in first.message, "faulthandler's frame of the target"
    skipped = [o for o in outcome.outcomes if o.status == "skipped"]
    assert skipped and {o.function for o in skipped} == {"conv_forward"}
    assert "crashed" in skipped[0].message
    # The cases before the crash keep their verdict; the next function gets a new worker.
    assert verdict(outcome, "zero_pad") == conform.CONFORMANT
    assert verdict(outcome, "pool_forward") == conform.CONFORMANT


def test_conform_os_exit_is_an_exit_with_its_code():
    """Before: status "timeout" ("... (exit code 3)")."""
    outcome = conform.check_target(target("evil_os_exit"), timeout=3)
    first = outcome.verdicts["conv_forward"].first_failure
    assert first.status == "exited"
    assert "exited with code 3" in first.message and first.case_id in first.message
    assert verdict(outcome, "pool_forward") == conform.CONFORMANT


def test_conform_sys_exit_and_keyboard_interrupt_in_the_target_are_statuses():
    """Before: SystemExit(0) ended the worker, reported as a "timeout"."""
    outcome = conform.check_target(target("evil_sys_exit"), timeout=3)
    conv = outcome.verdicts["conv_forward"]
    pool = outcome.verdicts["pool_forward"]
    assert conv.verdict == pool.verdict == conform.NOT_CONFORMANT
    assert {o.status for o in conv.failures} == {"system-exit"}
    assert conv.failed == conv.cases, "the worker survives a SystemExit: every case ran"
    assert "SystemExit(0)" in conv.first_failure.message
    assert "evil_sys_exit.py:" in conv.first_failure.message
    assert {o.status for o in pool.failures} == {"keyboard-interrupt"}
    assert verdict(outcome, "zero_pad") == conform.CONFORMANT


def test_conform_in_process_sys_exit_is_a_verdict_not_exit_0(capsys):
    """Before: the target's SystemExit(0) left main() (``crosscheck conform`` exited 0 with
    no verdict)."""
    assert main(["conform", target("evil_sys_exit"), "--in-process",
                 "--function", "conv_forward"]) == 1
    out = capsys.readouterr().out
    assert "NOT CONFORMANT" in out and "SystemExit(0)" in out
    # A KeyboardInterrupt the target raises is its case's result, not an interrupted run.
    assert main(["conform", target("evil_sys_exit"), "--in-process",
                 "--function", "pool_forward"]) == 1
    assert "keyboard-interrupt" in capsys.readouterr().out


def test_conform_hang_is_a_timeout_and_leaves_no_process(tmp_path, monkeypatch):
    """Before: the worker was killed, the process the target had started lived on."""
    pids = tmp_path / "pids"
    monkeypatch.setenv("CROSSCHECK_TEST_PIDS", str(pids))
    outcome = conform.check_target(target("evil_hang"), timeout=1)
    started = [int(p) for p in pids.read_text().split()]
    try:
        assert still_alive(started) == [], "the process the target started outlived the run"
    finally:
        stop(started)
    first = outcome.verdicts["conv_forward"].first_failure
    assert first.status == "timeout" and "timed out" in first.message
    assert verdict(outcome, "zero_pad") == conform.CONFORMANT


def test_conform_failed_reimport_keeps_every_verdict(tmp_path, monkeypatch, capsys):
    """Before: the re-import's TargetError left check_target: exit 2, every verdict lost."""
    monkeypatch.setenv("CROSSCHECK_TEST_LOCK", str(tmp_path / "lock"))
    report = tmp_path / "conform.json"
    assert main(["conform", target("evil_lock"), "--timeout", "1", "--json", str(report)]) == 1
    out = capsys.readouterr().out
    data = json.loads(report.read_text())
    summary = data["summary"]
    assert summary["zero_pad"]["verdict"] == "conformant"
    assert summary["conv_forward"]["verdict"] == "not conformant"
    assert summary["pool_forward"]["verdict"] == "incomplete"
    pool = [r for r in data["results"] if r["function"] == "pool_forward"]
    assert pool and {r["status"] for r in pool} == {"import-failed"}
    assert "importing the target again after conv_forward timed out" in pool[0]["message"]
    assert "is held by another process" in pool[0]["message"]
    assert data["conformant"] is False and "INCOMPLETE" in out


# ---- killing conform kills its worker ------------------------------------------------------------
def _conform_on_hang(tmp_path, *extra):
    """``crosscheck conform`` on evil_hang, once its conv_forward spins: (process, [worker pid,
    pid of the process the target started])."""
    env = dict(os.environ, CROSSCHECK_TEST_PIDS=str(tmp_path / "pids"),
               PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    # Output to files: a worker left behind would hold a pipe open.
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "crosscheck.cli", "conform",
                                 target("evil_hang"), "--timeout", "60", *extra], cwd=REPO,
                                env=env, stdout=out, stderr=err)
    try:
        pids = [int(p) for p in wait_for(tmp_path / "pids").split()]
    except BaseException:
        proc.kill()
        raise
    return proc, pids


def test_sigterm_to_conform_stops_its_worker_and_keeps_what_was_judged(tmp_path):
    """Before: SIGTERM ended conform at once; its worker spun on at 100% CPU, no report."""
    report = tmp_path / "conform.json"
    proc, pids = _conform_on_hang(tmp_path, "--json", str(report))
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert still_alive(pids) == [], "the worker or the process it started outlived conform"
    finally:
        stop(pids)
    assert proc.returncode == 130, (tmp_path / "err").read_text()
    data = json.loads(report.read_text())
    assert data["complete"] is False and data["conformant"] is False
    assert data["summary"]["zero_pad"]["verdict"] == "conformant"
    assert {r["status"] for r in data["results"] if r["function"] == "conv_forward"} == {
        "interrupted"}


def test_conform_killed_outright_takes_its_worker_with_it(tmp_path):
    """Before: the worker outlived a SIGKILLed conform. (The kernel kills the worker; a
    process the target started itself is beyond reach then, so the test stops it.)"""
    if not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux's")
    proc, (worker, child) = _conform_on_hang(tmp_path)
    try:
        proc.kill()
        proc.wait(timeout=30)
        assert still_alive([worker]) == []
    finally:
        stop([worker, child])


# ---- fresh inputs, and the help's warning -------------------------------------------------------
def test_conform_seed_catches_a_target_replaying_recorded_answers(tmp_path, monkeypatch, capsys):
    """Before: there was no seed; every run drew the same inputs."""
    monkeypatch.setenv("CROSSCHECK_TEST_ANSWERS", str(tmp_path / "answers"))
    spec = target("evil_replays")
    for _ in range(2):  # records, then replays: the same inputs every run cannot tell
        assert conform.check_target(spec, functions=["zero_pad"], in_process=True).conformant
    fresh = conform.check_target(spec, functions=["zero_pad"], in_process=True, seed=12345)
    assert verdict(fresh, "zero_pad") == conform.NOT_CONFORMANT
    assert all(o.case_id.endswith(f"-s{12345 + i}") for i, o in enumerate(fresh.outcomes))
    # --seed without a value draws one and says which, so the run can be redone.
    assert main(["conform", spec, "--function", "zero_pad", "--in-process", "--seed"]) == 1
    seed = int(capsys.readouterr().err.split("rerun with --seed ")[1].split(")")[0])
    assert seed > 0


def test_conform_in_process_help_says_it_trusts_the_target():
    """Before: the help said only "no timeout; for debugging"."""
    conform_parser = build_parser()._subparsers._group_actions[0].choices["conform"]
    text = conform_parser.format_help()
    assert "trust the target" in " ".join(text.split())
