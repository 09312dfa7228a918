"""``crosscheck run``'s reproducers, pasted: each failed result's snippet runs on its own and
prints the same verdict (conform's are run in tests/test_conform*.py)."""

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


def _paste(snippet: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TARGETS, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True,
                          timeout=120, env=env, cwd=TARGETS)


@pytest.mark.parametrize("backend, case_id, error", [
    ("fake_backends:Perturbed", CONV, None),        # values outside the bound
    ("fake_backends:Perturbed", POOL, None),
    ("evil_backends:WrongShapes", CONV, None),      # a wrong shape
    ("evil_backends:WrongShapes", POOL, None),
    ("evil_backends:WrongKeys", CONV, None),        # a missing output
    ("fake_backends:CrashesOnConv", CONV, "RuntimeError: simulated crash in conv2d"),
])
def test_a_failed_result_s_snippet_prints_its_verdict(monkeypatch, backend, case_id, error):
    monkeypatch.syspath_prepend(TARGETS)
    result = run_backend(Case.from_id(case_id), backend, get_backend(backend))
    assert result.status == "failed", result.summary()
    snippet = result_snippet(result)
    assert snippet.startswith(f"# crosscheck run --case {case_id} --backends {backend}\n")
    out = _paste(snippet)
    assert out.stdout.strip() == result.summary(), out.stderr[-2000:]
    if error is None:
        assert out.returncode == 0, out.stderr[-2000:]
    else:  # the snippet goes on to call the backend, which raises as it did in the run
        assert out.returncode != 0 and error in out.stderr, out.stderr[-2000:]
