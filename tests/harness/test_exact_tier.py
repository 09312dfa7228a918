"""The exact tier: integer inputs under the safe-accumulation rule, judged bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from crosscheck import exact
from crosscheck.cases import Case, make_inputs, round_to
from crosscheck.runner import prepared, reference_outputs, run_backend
from crosscheck.sweeps import sweep
from crosscheck.tolerance import EXACT_TIER

CONV = Case.of("conv", 2, "backward", n=2, spatial=(7, 5), c_in=4, c_out=6, kernel=3, stride=2,
               padding=1, groups=2, dtype="float32", inputs="exact")
# A bfloat16 weight gradient over 3*16*16 = 768 rows of dy*x: more terms than 2**8 allows
# dense, so the data must be sparse.
LONG = Case.of("conv", 2, "backward", n=3, spatial=(16, 16), c_in=2, c_out=2, kernel=1,
               dtype="bfloat16", inputs="exact")


def test_an_exact_case_id_carries_its_tier_and_parses_back():
    assert CONV.id.endswith("-exact-float32-s0") and CONV.tier == "exact"
    assert Case.from_id(CONV.id) == CONV
    assert CONV.with_(inputs="random").tier == "random"
    assert CONV.compile_key == CONV.with_(inputs="random").compile_key  # no new compilation


def test_exact_inputs_are_integers_drawn_deterministically_and_read_only():
    a, b = make_inputs(CONV), make_inputs(CONV)
    for role in ("x", "w", "b", "dy"):
        arr = getattr(a, role)
        assert np.array_equal(arr, getattr(b, role)) and not arr.flags.writeable, role
        assert np.array_equal(arr, np.round(arr)) and np.abs(arr).max() <= 8, role


@pytest.mark.parametrize("case", [CONV, LONG, LONG.with_(direction="forward"),
                                  CONV.with_(direction="jvp"),
                                  CONV.with_(direction="double_backward")], ids=str)
def test_every_partial_sum_stays_within_the_dtype_exact_integers(case):
    inputs = make_inputs(case)
    limit = 2.0 ** exact.DIGITS[case.dtype]
    for name, (_, magnitude) in case.entry.magnitudes(case, inputs).items():
        assert magnitude.max() <= limit, f"{case.id} {name}: A = {magnitude.max()} > {limit}"
    # Under the rule the reference is an exact integer in the dtype, whatever the order.
    for name, ref in reference_outputs(case, inputs).items():
        assert np.array_equal(ref, round_to(ref, case.dtype)), name


def test_long_reductions_get_sparse_data_beyond_the_dense_limit():
    inputs = make_inputs(LONG)
    density = np.count_nonzero(inputs.dy) / inputs.dy.size
    assert density < 0.75, density  # 768 dense +-1 terms would exceed 2**8


def test_the_bound_is_zero_and_says_so():
    _, ref, bounds = prepared(CONV)
    for name, bound in bounds.items():
        assert not bound.allowed.any() and bound.description == EXACT_TIER, name
    assert "bit for bit" in EXACT_TIER


def test_average_pools_take_the_tier_only_with_power_of_two_divisors():
    even = Case.of("avg_pool", 2, "backward", n=1, spatial=(8, 8), c_in=2, kernel=2,
                   dtype="bfloat16", inputs="exact")
    assert exact.divisors(even) == {4} and exact.applies(even) is None
    inputs = make_inputs(even)
    assert np.array_equal(inputs.x, np.round(inputs.x))
    odd = even.with_(kernel=3, stride=3, spatial=(9, 9))
    assert "power of two" in exact.applies(odd)
    with pytest.raises(ValueError, match="power of two"):
        make_inputs(odd)
    # count_include_pad=False counts 2 real cells in the padded corner windows.
    assert exact.divisors(even.with_(padding=1, count_include_pad=False)) == {1, 2, 4}
    assert exact.divisors(even.with_(divisor_override=3)) == {3}


class OneUlpOff:
    """The reference, correctly rounded to the dtype, with one element one ulp off."""

    name = "one-ulp-off"

    def version(self):
        return "planted"

    def unsupported(self, case):
        return None

    def run(self, case, inputs):
        out = {}
        for name, ref in reference_outputs(case, inputs).items():
            got = round_to(ref, case.dtype)
            flat = got.reshape(-1)
            if flat.size and name != "indices":
                i = int(np.argmax(np.abs(flat)))
                flat[i] = _next_up(flat[i], case.dtype)
            out[name] = got
        return out


def _next_up(v: float, dtype: str) -> float:
    if dtype == "bfloat16":
        bits = np.array(v, np.float32).view(np.uint32) + np.uint32(1 << 16)
        return float(bits.view(np.float32))
    return float(np.nextafter(np.array(v, dtype), np.array(np.inf, dtype)))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_one_ulp_off_is_caught_on_the_exact_tier_alone(dtype):
    case = CONV.with_(dtype=dtype, direction="forward")
    caught = run_backend(case, "one-ulp-off", OneUlpOff())
    assert caught.status == "failed", caught.summary()
    assert "exact tier" in caught.discrepancies[0].bound
    # The same kernel on the same geometry's random inputs is within the rounding bound.
    random = run_backend(case.with_(inputs="random"), "one-ulp-off", OneUlpOff())
    assert random.status == "passed", random.summary()


def test_results_name_their_tier():
    result = run_backend(CONV.with_(direction="forward"), "one-ulp-off", OneUlpOff())
    assert result.to_dict()["tier"] == "exact"
    assert run_backend(CONV.with_(inputs="random"), "x", OneUlpOff()).to_dict()["tier"] == \
        "random"


def test_the_sweeps_carry_exact_cases_on_existing_geometries():
    for size in ("smoke", "default"):
        cases = sweep(size)
        keys = {c.compile_key for c in cases if c.tier != "exact"}
        exact_cases = [c for c in cases if c.tier == "exact"]
        assert exact_cases and all(c.compile_key in keys for c in exact_cases), size
        assert {c.family for c in exact_cases} >= {"conv", "max_pool", "avg_pool"}, size
    smoke_2d = [c for c in sweep("smoke") if c.tier == "exact" and c.rank == 2
                and c.family in ("conv", "max_pool", "avg_pool")]
    assert {c.family for c in smoke_2d} == {"conv", "max_pool", "avg_pool"}


def test_refcnn_loops_passes_the_smoke_sweeps_exact_cases():
    from crosscheck.backends import get_backend

    loops = get_backend("refcnn.loops")
    results = [run_backend(c, "refcnn.loops", loops) for c in sweep("smoke") if c.tier == "exact"]
    judged = [r for r in results if r.status != "unsupported"]
    assert judged and all(r.status == "passed" for r in judged), \
        [r.summary() for r in judged if r.status != "passed"]
