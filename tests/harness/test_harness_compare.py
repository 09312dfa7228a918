"""Tests of the comparison itself: fields, non-finite handling, never raising."""

import numpy as np
import pytest

from crosscheck.compare import assert_close, compare
from crosscheck.tolerance import Bound


def _bound(shape, value=1e-6):
    return Bound(np.full(shape, value), f"fixed {value}")


def test_identical_arrays_pass_with_zero_ratio():
    a = np.arange(24.0).reshape(1, 2, 3, 4)
    d = compare(a.copy(), a, _bound(a.shape))
    assert d.passed and d.mismatches == 0 and d.worst_ratio == 0.0


def test_worst_element_is_located_in_nhwc():
    ref = np.zeros((2, 3, 4, 5))
    got = ref.copy()
    got[1, 2, 0, 3] = 5e-6
    got[0, 0, 1, 1] = 2e-6
    d = compare(got, ref, _bound(ref.shape), case_id="c", backend="b", output="y")
    assert not d.passed
    assert d.mismatches == 2
    assert d.worst_ratio_index == (1, 2, 0, 3) and d.max_abs_index == (1, 2, 0, 3)
    assert d.worst_ratio == pytest.approx(5.0)
    assert d.actual_at_worst == 5e-6 and d.expected_at_worst == 0.0
    assert "(1, 2, 0, 3)" in d.summary() and "Case.from_id('c')" in d.reproduce


def test_error_within_bound_passes_and_just_outside_fails():
    ref = np.ones((1, 1, 1, 3))
    assert compare(ref + 0.9e-6, ref, _bound(ref.shape)).passed
    assert not compare(ref + 1.1e-6, ref, _bound(ref.shape)).passed


def test_nan_matches_nan_and_same_infinity_matches():
    ref = np.array([np.nan, np.inf, -np.inf, 1.0])
    d = compare(ref.copy(), ref, _bound(ref.shape))
    assert d.passed and d.nonfinite_mismatches == 0


@pytest.mark.parametrize("got", [[1.0, np.inf, -np.inf, 1.0], [np.nan, -np.inf, -np.inf, 1.0],
                                 [np.nan, np.inf, -np.inf, np.nan]])
def test_nonfinite_disagreements_are_mismatches(got):
    ref = np.array([np.nan, np.inf, -np.inf, 1.0])
    d = compare(np.array(got), ref, _bound(ref.shape))
    assert not d.passed and d.nonfinite_mismatches == 1 and d.worst_ratio == np.inf


def test_shape_mismatch_is_reported_not_raised():
    d = compare(np.zeros((1, 2, 2, 1)), np.zeros((1, 2, 3, 1)), _bound((1, 2, 3, 1)))
    assert not d.passed and "shape (1, 2, 2, 1)" in d.error


@pytest.mark.parametrize("junk", [None, "text", object(), [[1, 2], [3]]])
def test_compare_never_raises(junk):
    d = compare(junk, np.zeros((2, 2)), _bound((2, 2)))
    assert not d.passed and d.error


def test_discrepancy_serialises_to_json():
    import json

    ref = np.array([np.nan, 1.0])
    d = compare(np.array([1.0, 1.0]), ref, _bound(ref.shape))
    json.dumps(d.to_dict(), allow_nan=False)


def test_assert_close_message_carries_summary_and_reproduction():
    ref = np.zeros((1, 1, 1, 1))
    with pytest.raises(AssertionError, match="(?s)worst error/bound .*from_id"):
        assert_close(ref + 1, ref, _bound(ref.shape), case_id="conv2d-x")
