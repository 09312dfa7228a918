"""Property tests: the loop oracle against the vectorized API over random parameters.

The oracle runs on the inputs upcast to float64 and its result is rounded once to
the dtype, as in test_refcnn_loops_vs_vectorized. Example counts come from the
hypothesis profiles in the repository's conftest.py (derandomized under CI).
"""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import refcnn  # noqa: E402
from refcnn import loops  # noqa: E402
from refcnn_helpers import (DTYPES, POOL_MODES, assert_close, conv_magnitude,  # noqa: E402
                            explicit_pads)


def _f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


_pads = st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2)),
                  st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                            st.tuples(st.integers(0, 2), st.integers(0, 2))),
                  st.sampled_from(["same", "valid"]))


@settings(max_examples=25)
@given(h=st.integers(1, 6), w=st.integers(1, 6), fh=st.integers(1, 3), fw=st.integers(1, 3),
       groups=st.sampled_from([1, 2]), cpg=st.integers(1, 2), opg=st.integers(1, 2),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)), pad=_pads,
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_conv_loops_vs_vectorized_property(h, w, fh, fw, groups, cpg, opg, stride, dilation, pad,
                                           dtype, seed):
    pads = explicit_pads(pad, (h, w), (fh, fw), stride, dilation)
    out = [(n + p[0] + p[1] - d * (f - 1) - 1) // s + 1
           for n, p, f, s, d in zip((h, w), pads, (fh, fw), stride, dilation)]
    assume(min(out) >= 1)
    g = np.random.default_rng(seed)
    x = g.standard_normal((2, h, w, groups * cpg)).astype(dtype)
    wt = g.standard_normal((fh, fw, cpg, groups * opg)).astype(dtype)
    b = g.standard_normal((1, 1, 1, groups * opg)).astype(dtype)
    hp = {"stride": stride, "pad": pad, "dilation": dilation, "groups": groups}
    z_vec, cache = refcnn.conv_forward(x, wt, b, hp)
    z_loop = loops.conv_forward(*_f64(x, wt, b), hp)[0].astype(dtype)
    assert z_vec.shape == (2, *out, groups * opg)
    assert_close(z_vec, z_loop, dtype, conv_magnitude(x, wt, b), "forward")
    dz = g.standard_normal(z_vec.shape).astype(dtype)
    for name, got, want in zip(("dA", "dW", "db"), refcnn.conv_backward(dz, cache),
                               loops.conv_backward(*_f64(dz), (*_f64(x, wt, b), hp))):
        assert_close(got, want.astype(dtype), dtype, 50.0 * conv_magnitude(x, wt, b), name)


@settings(max_examples=25)
@given(h=st.integers(1, 7), w=st.integers(1, 7), f=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       pad=st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                     st.tuples(st.integers(0, 2), st.integers(0, 2))),
       ceil_mode=st.booleans(), count_include_pad=st.booleans(),
       divisor_override=st.one_of(st.none(), st.integers(1, 5)),
       mode=st.sampled_from(POOL_MODES), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_pool_loops_vs_vectorized_property(h, w, f, stride, dilation, pad, ceil_mode,
                                           count_include_pad, divisor_override, mode, dtype, seed):
    hp = {"f": f, "stride": stride, "pad": pad, "dilation": dilation, "ceil_mode": ceil_mode}
    if mode == "average":
        hp.update(count_include_pad=count_include_pad, divisor_override=divisor_override)
    # A window of padding only (possible between the first and last with dilation) is a
    # known refcnn bug, pinned by test_pool_refuses_a_middle_window_all_padding: skip it here.
    for size, k, s, d, p in zip((h, w), f, stride, dilation, pad):
        span = d * (k - 1) + 1
        out = (size + p[0] + p[1] - span) // s + 1
        if ceil_mode:
            out = -(-(size + p[0] + p[1] - span) // s) + 1
            out -= (out - 1) * s >= size + p[0]
        assume(all(any(p[0] <= i * s + t * d < p[0] + size for t in range(k))
                   for i in range(max(out, 0))))
    g = np.random.default_rng(seed)
    x = g.standard_normal((2, h, w, 2)).astype(dtype)
    try:
        a_vec, cache = refcnn.pool_forward(x, hp, mode=mode)
    except ValueError as e:  # geometry refused (kernel too large, window all padding)
        assume("padding" not in str(e) and "padded input" not in str(e))
        raise
    a_loop = loops.pool_forward(*_f64(x), hp, mode=mode)[0].astype(dtype)
    assert_close(a_vec, a_loop, dtype, float(np.abs(x).max()), "forward")
    da = g.standard_normal(a_vec.shape).astype(dtype)
    d_loop = loops.pool_backward(*_f64(da), (*_f64(x), hp), mode).astype(dtype)
    assert_close(refcnn.pool_backward(da, cache, mode=mode), d_loop, dtype, float(da.size * np.abs(da).max()), "backward")
