"""The rounding bound: safe where rounding underflows, and still tight enough to fail."""

from __future__ import annotations

import numpy as np

from crosscheck import tolerance
from crosscheck.cases import Case, Inputs
from crosscheck.compare import compare
from crosscheck.runner import reference_outputs

# One float16 product whose exact value, 0.75 * 2**-24, lies below float16's smallest
# subnormal: the correctly rounded answer, 2**-24, is off by 2**-26.
CASE = Case.of("conv", 2, n=1, spatial=(1, 1), c_in=1, c_out=1, kernel=1, bias=False,
               dtype="float16")
INPUTS = Inputs(np.full((1, 1, 1, 1), 2.0**-24), np.full((1, 1, 1, 1), 0.75), None,
                np.ones((1, 1, 1, 1)))


def _bound():
    ref = reference_outputs(CASE, INPUTS)["y"]
    return ref, tolerance.bounds(CASE, INPUTS, {"y": ref})["y"]


def test_rounding_a_subnormal_output_to_float16_is_within_the_bound():
    ref, bound = _bound()
    rounded = ref.astype(np.float16).astype(np.float64)
    assert rounded[0, 0, 0, 0] == 2.0**-24 and ref[0, 0, 0, 0] == 0.75 * 2.0**-24
    assert compare(rounded, ref, bound).passed


def test_an_error_of_a_few_subnormal_steps_is_still_caught():
    ref, bound = _bound()
    assert not compare(ref + 4 * 2.0**-24, ref, bound).passed
