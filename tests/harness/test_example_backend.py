"""The worked example in docs/ (a kernel author's NCHW backend) runs, and is judged honestly."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from crosscheck.runner import run_case
from crosscheck.sweeps import sweep

EXAMPLE = Path(__file__).parents[2] / "docs" / "example_backend.py"


def _example():
    spec = importlib.util.spec_from_file_location("example_backend", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _judge(backend):
    cases = [c for c in sweep("smoke") if c.op == "conv2d"]
    results = [r for c in cases for r in run_case(c, {"mykernel": backend})]
    return {str(r.status) for r in results}, [r for r in results if r.status == "passed"]


def test_the_example_backend_passes_what_it_supports():
    statuses, passed = _judge(_example().MyBackend())
    assert statuses == {"passed", "unsupported"} and passed


def test_a_bug_in_the_example_kernel_is_caught(monkeypatch):
    module = _example()
    kernel = module.my_conv2d_nchw
    # The planted bug: the kernel ignores dilation.
    monkeypatch.setattr(module, "my_conv2d_nchw",
                        lambda x, w, b, s, p, d, g: kernel(x, w, b, s, p, (1, 1), g))
    cases = [c for c in sweep("smoke") if c.op == "conv2d" and c.dilation != (1, 1)
             and c.direction == "forward" and np.prod(c.kernel) > 1]
    statuses = {str(r.status) for c in cases for r in run_case(c, {"mykernel": module.MyBackend()})}
    assert "failed" in statuses
