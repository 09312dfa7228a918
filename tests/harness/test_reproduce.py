"""``crosscheck run``'s reproducers, pasted: each failed result's snippet runs on its own and
shows the same failure (conform's are run in tests/test_conform*.py)."""

import os
import subprocess
import sys

import pytest

from crosscheck.backends import get_backend
from crosscheck.cases import Case
from crosscheck.reproduce import result_snippet
from crosscheck.runner import run_backend

TARGETS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "conform_targets")
CONV = "conv2d-bwd-n2h7w5c4o6-k3x3-s2x1-p1.1.0.2-d1x1-g2-float32-s0"
POOL = "max_pool2d-fwd-n2h7w6c3-k3x3-s2x2-p1.1.1.1-d1x1-float64-s0"


def _failed_result(monkeypatch, backend: str, case_id: str):
    monkeypatch.syspath_prepend(TARGETS)
    result = run_backend(Case.from_id(case_id), backend, get_backend(backend))
    assert result.status == "failed", result.summary()
    return result


def _paste(snippet: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TARGETS, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True,
                          timeout=120, env=env, cwd=TARGETS)


@pytest.mark.parametrize("backend", ["fake_backends:Perturbed", "evil_backends:WrongShapes"])
@pytest.mark.parametrize("case_id", [CONV, POOL])
def test_a_failed_comparison_s_snippet_prints_the_same_verdict(monkeypatch, backend, case_id):
    result = _failed_result(monkeypatch, backend, case_id)
    bad = next(d for d in result.discrepancies if not d.passed)
    snippet = result_snippet(result)
    assert snippet.startswith(f"# crosscheck run --case {case_id} --backends {backend}\n")
    out = _paste(snippet)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == bad.summary()


@pytest.mark.parametrize("backend, case_id, error", [
    ("fake_backends:CrashesOnConv", CONV, "RuntimeError: simulated crash in conv2d"),
    ("evil_backends:WrongKeys", CONV, "KeyError: 'dx'"),
])
def test_a_failure_without_a_comparison_s_snippet_raises_the_backend_s_error(
        monkeypatch, backend, case_id, error):
    result = _failed_result(monkeypatch, backend, case_id)
    out = _paste(result_snippet(result))
    assert out.returncode != 0 and error in out.stderr, out.stderr[-2000:]
