"""Tests of the runner: statuses, crashes, odd one out, declared divergences."""

import numpy as np
import pytest

from crosscheck import runner
from crosscheck.backends.refcnn_backend import RefcnnBackend
from crosscheck.cases import Case

CASE = Case.legacy_2d("conv2d", "backward", 2, 6, 5, 3, 4, (3, 3), (2, 1), ((1, 0), (1, 2)))


class Shifted(RefcnnBackend):
    """A backend that is wrong by a planted amount in one output."""

    def __init__(self, name, output="dx", delta=1e-3):
        super().__init__()
        self.name, self.output, self.delta = name, output, delta

    def run(self, case, inputs):
        out = super().run(case, inputs)
        out[self.output] = out[self.output] + self.delta
        return out


class Crashes(RefcnnBackend):
    name = "crashes"

    def run(self, case, inputs):
        raise RuntimeError("kernel exploded")


class Refuses(RefcnnBackend):
    name = "refuses"

    def unsupported(self, case):
        return "cannot do this"


def test_a_correct_backend_passes():
    (r,) = runner.run_case(CASE, {"refcnn": RefcnnBackend()})
    # refcnn's fast path against the spec: within the bound, not bit for bit.
    assert r.status == "passed" and r.worst_ratio < 1.0


def test_a_wrong_backend_fails_and_is_the_odd_one_out():
    results = runner.run_case(CASE, {"refcnn": RefcnnBackend(), "good": RefcnnBackend(),
                                     "bad": Shifted("bad")})
    bad = next(r for r in results if r.backend == "bad")
    assert bad.status == "failed"
    assert bad.odd_one_out.startswith("bad")
    failing = [d for d in bad.discrepancies if not d.passed]
    assert [d.output for d in failing] == ["dx"]


def test_reference_is_named_when_independent_backends_agree_against_it():
    results = runner.run_case(CASE, {"refcnn": RefcnnBackend(), "torchlike": Shifted("t"),
                                     "jaxlike": Shifted("j")})
    odd = {r.odd_one_out for r in results if r.status == "failed"}
    assert len(odd) == 1 and odd.pop().startswith("refcnn (the reference)")


def test_a_crash_is_a_failed_case_with_its_error_and_the_run_goes_on():
    results = list(runner.run_cases([CASE, CASE.with_(seed=1)],
                                    {"crashes": Crashes(), "refcnn": RefcnnBackend()}))
    assert [r.status for r in results] == ["failed", "passed", "failed", "passed"]
    assert "kernel exploded" in results[0].reason


def test_unsupported_is_reported_with_reason():
    (r,) = runner.run_case(CASE, {"refuses": Refuses()})
    assert r.status == "unsupported" and r.reason == "cannot do this"


def test_declared_divergence_is_divergent_not_pass_or_fail():
    probe = Case.legacy_2d("max_pool2d", "backward", 1, 1, 5, 1, 1, (1, 3), (1, 1), inputs="nan")

    class JaxLike(Shifted):
        pass

    # "jax" declares another NaN routing: a disagreement there is the declared divergence...
    (r,) = runner.run_case(probe, {"jax": JaxLike("jax", delta=1.0)})
    assert r.status == "divergent" and "maxpool_nan_gradient" in r.reason
    # ...and agreeing with refcnn means the declaration is out of date.
    (r,) = runner.run_case(probe, {"jax": RefcnnBackend()})
    assert r.status == "failed" and "out of date" in r.reason


def test_result_serialises():
    import json

    (r,) = runner.run_case(CASE, {"bad": Shifted("bad")})
    json.dumps(r.to_dict(), allow_nan=False)


@pytest.mark.parametrize("delta_in_ulps", [4096])
def test_the_bound_catches_a_small_planted_float32_error(delta_in_ulps):
    """An error of a few thousand float32 ulps on one element is outside the bound."""
    case = Case.legacy_2d("conv2d", "forward", 1, 6, 6, 8, 8, (3, 3), dtype="float32")
    inputs, ref, bounds = runner.prepared(case)
    got = ref["y"].copy()
    got[0, 2, 3, 1] += delta_in_ulps * np.spacing(np.float32(abs(got[0, 2, 3, 1])))
    from crosscheck.compare import compare

    d = compare(got, ref["y"], bounds["y"])
    assert not d.passed and d.worst_ratio_index == (0, 2, 3, 1)
