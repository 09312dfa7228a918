"""Statistics over each output: a kernel inside every element's bound but biased is caught."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crosscheck import statistics
from crosscheck.cases import Case, round_to
from crosscheck.compare import compare
from crosscheck.runner import prepared, reference_outputs, run_backend
from crosscheck.sweeps import sweep
from crosscheck.tolerance import Bound

CASE = Case.of("conv", 2, "forward", n=2, spatial=(12, 10), c_in=4, c_out=6, kernel=3,
               padding=1, dtype="float32")


def test_the_limits_follow_the_docstring_derivation():
    assert statistics.bias_limit(100) == pytest.approx(math.sqrt(2 * math.log(2e6) / 100))
    assert statistics.bias_limit(100) == pytest.approx(0.539, abs=1e-3)
    assert statistics.bias_limit(10**6) == statistics.BIAS_FLOOR
    assert statistics.rms_limit(100) == pytest.approx(0.772, abs=1e-3)
    assert statistics.rms_limit(10**9) == pytest.approx(1 / math.sqrt(3), abs=1e-3)
    # A bias of 0.6 fails wherever the checks apply.
    assert statistics.bias_limit(statistics.MIN_ELEMENTS) < 0.6


class Shifted:
    """The reference plus ``fraction`` of each element's allowed error, on a side ``sign``
    gives: every element inside its bound."""

    def __init__(self, fraction, sign="same"):
        self.name, self.fraction, self.sign = "shifted", fraction, sign

    def version(self):
        return "planted"

    def unsupported(self, case):
        return None

    def run(self, case, inputs):
        _, ref, bounds = prepared(case)
        out = {}
        for name, r in reference_outputs(case, inputs).items():
            side = np.ones(r.shape)
            if self.sign == "alternate":
                side = np.where(np.arange(r.size).reshape(r.shape) % 2, 1.0, -1.0)
            out[name] = r + self.fraction * side * bounds[name].allowed
        return out


def test_a_kernel_always_at_60_percent_of_the_bound_on_one_side_fails():
    result = run_backend(CASE, "shifted", Shifted(0.6))
    (d,) = result.discrepancies
    assert result.status == "failed" and d.mismatches == 0 and d.worst_ratio <= 0.61
    assert d.bias == pytest.approx(0.6, abs=0.01) and d.stat_elements == d.elements == 1440
    assert "biased" in d.statistics and "biased" in d.summary()
    assert d.to_dict()["bias_limit"] == pytest.approx(statistics.bias_limit(1440))


def test_the_same_errors_with_alternating_signs_pass():
    result = run_backend(CASE, "shifted", Shifted(0.3, "alternate"))
    (d,) = result.discrepancies
    assert result.status == "passed", result.summary()
    assert abs(d.bias) < 0.01 and d.rms == pytest.approx(0.3, abs=0.01)


def test_errors_near_the_bound_everywhere_fail_the_rms_test():
    result = run_backend(CASE, "shifted", Shifted(0.9, "alternate"))
    (d,) = result.discrepancies
    assert result.status == "failed" and d.mismatches == 0
    assert "RMS" in d.statistics


def test_outputs_too_small_to_judge_are_left_to_the_per_element_bound():
    small = CASE.with_(n=1, spatial=(3, 3), c_out=2)  # 18 elements
    result = run_backend(small, "shifted", Shifted(0.9))
    (d,) = result.discrepancies
    assert result.status == "passed" and d.stat_elements < statistics.MIN_ELEMENTS
    assert d.statistics is None


def test_compare_leaves_statistics_out_unless_asked():
    ref = np.linspace(1, 2, 500)
    bound = Bound(np.full(500, 1e-3), "test")
    assert compare(ref + 6e-4, ref, bound).passed
    assert not compare(ref + 6e-4, ref, bound, statistics=True).passed
    assert compare(ref, ref, bound, statistics=True).bias == 0.0


def test_exact_and_non_finite_elements_are_not_counted():
    ref = np.concatenate([np.full(300, np.nan), np.ones(300)])
    allowed = np.concatenate([np.ones(300), np.zeros(300)])
    d = compare(ref.copy(), ref, Bound(allowed, "test"), statistics=True)
    assert d.passed and d.stat_elements == 0


def test_a_correctly_rounded_kernel_passes_on_the_smoke_sweep():
    """refcnn's float64 result rounded once to the dtype: the best a kernel can do."""

    class Rounded(Shifted):
        def run(self, case, inputs):
            return {k: v if k == "indices" else round_to(v, case.dtype)
                    for k, v in reference_outputs(case, inputs).items()}

    worst = 0.0
    for case in sweep("smoke")[::3]:
        result = run_backend(case, "rounded", Rounded(0))
        assert result.status in ("passed", "unsupported", "divergent"), result.summary()
        worst = max([worst] + [abs(d.bias) / d.bias_limit for d in result.discrepancies
                               if d.stat_elements >= statistics.MIN_ELEMENTS])
    assert worst < 0.5
