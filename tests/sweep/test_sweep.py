"""The cross-framework sweep: every case on every backend, judged by the rounding bound.

The case list is ``crosscheck.sweeps.sweep(size)`` with the size from
``CROSSCHECK_SWEEP`` (smoke by default; default, full, networks); one parametrized test covers every
op of the table in every direction. Ids are ``backend-caseid``, so ``-k jax``
selects JAX and ``-k conv2d-bwd`` the 2-D conv gradients. A declared divergence
is an xfail that names it, an unsupported case a skip that says why.
"""

from __future__ import annotations

import pytest

from crosscheck.backends import available_backends
from crosscheck.runner import run_backend, run_case
from crosscheck.sweeps import size_from_env, sweep
from sweep_helpers import SWEEP_BACKENDS, case_params, load_backend

# The smoke sweep by default, so the README's test command stays a few minutes on two cores;
# `crosscheck run` (CI's main job) judges the default sweep, CROSSCHECK_SWEEP picks another.
CASES = sweep(size_from_env("smoke"))


@pytest.mark.parametrize(("case", "backend_name"), case_params(CASES))
def test_op_agrees_with_reference(case, backend_name, record_property):
    backend = load_backend(backend_name)
    result = run_backend(case, backend_name, backend)
    record_property("crosscheck", {"backend": backend_name, "dtype": case.dtype,
                                   "op": case.op, "direction": case.direction,
                                   "status": str(result.status),
                                   "worst_ratio": result.worst_ratio})
    if result.status == "unsupported":
        pytest.skip(f"{backend_name} cannot express this case: {result.reason}")
    if result.status == "divergent":
        pytest.xfail(f"declared divergence: {result.reason}")
    if result.status != "passed":
        # Rerun the case on every installed backend to name the odd one out.
        others = {n: b for n, b in available_backends(SWEEP_BACKENDS).items()
                  if not isinstance(b, str)}
        verdict = next((r.odd_one_out for r in run_case(case, others)
                        if r.backend == backend_name), None)
        pytest.fail(f"{result.summary()}\nodd one out: {verdict}\n"
                    f"rerun: crosscheck run --case {case.id} --backends {backend_name}",
                    pytrace=False)
