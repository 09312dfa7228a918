"""Tests of the case specification: ids, JSON, deterministic inputs, dtype rounding."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crosscheck.cases import Case, make_inputs, round_to
from crosscheck.sweeps import sweep

pads = st.one_of(st.sampled_from(["same", "valid"]),
                 st.tuples(st.tuples(st.integers(0, 3), st.integers(0, 3)),
                           st.tuples(st.integers(0, 3), st.integers(0, 3))))
pair = st.tuples(st.integers(1, 4), st.integers(1, 4))


@st.composite
def cases(draw):
    op = draw(st.sampled_from(["conv2d", "max_pool2d", "avg_pool2d"]))
    c = draw(st.integers(1, 6))
    return Case.legacy_2d(op, draw(st.sampled_from(["forward", "backward"])), draw(st.integers(0, 3)),
                draw(st.integers(1, 12)), draw(st.integers(1, 12)), c,
                draw(st.integers(1, 6)) if op == "conv2d" else c, draw(pair), draw(pair),
                draw(pads) if op == "conv2d" else draw(pads.filter(lambda p: p != "same")),
                draw(pair), bias=draw(st.booleans()), ceil_mode=draw(st.booleans()),
                count_include_pad=draw(st.booleans()),
                divisor_override=draw(st.none() | st.integers(1, 9)) if op == "avg_pool2d"
                else None,
                dtype=draw(st.sampled_from(["float64", "float32", "float16", "bfloat16"])),
                seed=draw(st.integers(0, 99)),
                inputs=draw(st.sampled_from(["random", "ties", "nan", "neginf", "offset"])))


@given(cases())
def test_id_and_json_round_trip(case):
    assert Case.from_id(case.id) == case
    assert Case.from_json(case.to_json()) == case


def test_every_sweep_id_is_unique_and_parses():
    all_cases = sweep("default")
    assert len({c.id for c in all_cases}) == len(all_cases)
    assert all(Case.from_id(c.id) == c for c in all_cases[:: 37])


def test_sweep_is_deterministic_and_large_enough():
    assert [c.id for c in sweep("smoke")] == [c.id for c in sweep.__wrapped__("smoke")]
    assert len(sweep("default")) >= 2000


def test_inputs_are_deterministic_and_differ_by_seed():
    case = Case.legacy_2d("conv2d", "backward", 2, 5, 6, 3, 4, (3, 3), (2, 1), ((1, 0), (0, 2)))
    a, b = make_inputs(case), make_inputs(case)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.dy, b.dy)
    assert not np.array_equal(a.x, make_inputs(case.with_(seed=1)).x)
    assert a.dy.shape == (2, 2, 6, 4)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_inputs_are_exact_in_their_dtype(dtype):
    x = make_inputs(Case.legacy_2d("max_pool2d", "forward", 1, 6, 6, 2, 2, (2, 2), dtype=dtype)).x
    assert np.array_equal(round_to(x, dtype), x)


def test_bfloat16_rounding_matches_torch():
    torch = pytest.importorskip("torch")
    values = np.random.default_rng(0).standard_normal(1000) * 100
    expected = torch.tensor(values, dtype=torch.float32).to(torch.bfloat16).double().numpy()
    assert np.array_equal(round_to(values, "bfloat16"), expected)


def test_invalid_case_fields_are_refused():
    with pytest.raises(ValueError, match="op must be"):
        Case.legacy_2d("conv4d", "forward", 1, 2, 2, 1, 1, (1, 1))
    with pytest.raises(ValueError, match="dtype must be"):
        Case.legacy_2d("conv2d", "forward", 1, 2, 2, 1, 1, (1, 1), dtype="int8")
    with pytest.raises(ValueError, match="not a case id"):
        Case.from_id("conv2d-nonsense")


def test_case_without_output_is_refused_clearly():
    with pytest.raises(ValueError, match="kernel is larger"):
        make_inputs(Case.legacy_2d("conv2d", "forward", 1, 2, 2, 1, 1, (4, 4)))
