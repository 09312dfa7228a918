"""Loop oracle (``refcnn.loops``) against the vectorized API and the functional core,
over a sweep of shapes, strides, pads, dilations, groups, pooling options and dtypes.

The loop and vectorized versions share argument checking and output sizes
(``refcnn._plan``); the values they compute are independent. In float16/float32
the vectorized result is compared with the loop oracle run on the same values
upcast to float64 and rounded once to the dtype (the exact answer, rounded): the
two may differ by about one unit in the last place. That the loop oracle run in
float16/float32 itself rounds only once is checked separately
(``test_loops_round_once``). An independent
naive conv/pool (``refcnn_helpers``), which works out 'same' padding on its own,
checks the geometry they share.
"""

import numpy as np
import pytest

import refcnn
from refcnn import loops
from refcnn_helpers import (CONV_CASES, DTYPE_IDS, DTYPES, POOL_CASES, POOL_MODES, PoolCase,
                            assert_close,
                            conv_magnitude, naive_conv2d, naive_pool2d, rng)

conv_cases = pytest.mark.parametrize("case", CONV_CASES, ids=[c.id for c in CONV_CASES])
pool_cases = pytest.mark.parametrize("case", POOL_CASES, ids=[c.id for c in POOL_CASES])
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
modes = pytest.mark.parametrize("mode", POOL_MODES)



def _f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


# ----------------------------------------------------------------------------- conv

@conv_cases
@dtypes
def test_conv_forward_loops_vs_vectorized(case, dtype):
    x, w, b = case.arrays(dtype)
    z_loop = loops.conv_forward(*_f64(x, w, b), case.hparameters)[0].astype(dtype)
    z_vec, _ = refcnn.conv_forward(x, w, b, case.hparameters)
    assert z_loop.shape == (case.n, *case.out_hw, case.c_out), f"{case.id}: loop output shape"
    assert_close(z_vec, z_loop, dtype, conv_magnitude(x, w, b), f"{case.id} conv_forward")


@conv_cases
@dtypes
def test_conv_backward_loops_vs_vectorized(case, dtype):
    x, w, b = case.arrays(dtype)
    _, cache = refcnn.conv_forward(x, w, b, case.hparameters)
    dz = rng(case.id, "dZ").standard_normal((case.n, *case.out_hw, case.c_out)).astype(dtype)
    loop = [g.astype(dtype) for g in loops.conv_backward(*_f64(dz), (*_f64(x, w, b), cache[3]))]
    vec = refcnn.conv_backward(dz, cache)
    fan_out = case.f[0] * case.f[1] * case.c_out
    scales = (fan_out * np.abs(w).max() * np.abs(dz).max(),
              dz.shape[0] * dz.shape[1] * dz.shape[2] * np.abs(x).max() * np.abs(dz).max(),
              dz.size * np.abs(dz).max())
    for name, got, want, arr, scale in zip(("dA_prev", "dW", "db"), vec, loop, (x, w, b), scales):
        assert want.shape == arr.shape, f"{case.id}: loop {name} shape"
        assert_close(got, want, dtype, float(scale), f"{case.id} conv_backward {name}")


@conv_cases
def test_conv_forward_vs_naive_reference(case):
    """Independent geometry: explicit per-side pads, 'same' worked out from semantics.md."""
    x, w, b = case.arrays(np.float64)
    z, _ = refcnn.conv_forward(x, w, b, case.hparameters)
    want = naive_conv2d(x, w, b, case.stride, case.pads, case.dilation, case.groups)
    assert z.shape == want.shape, f"{case.id}: output shape {z.shape}, expected {want.shape}"
    assert_close(z, want, np.float64, conv_magnitude(x, w, b), f"{case.id} vs naive conv")


@conv_cases
@pytest.mark.parametrize("bias", ["b_none", "b_vector", "b_notebook"])
def test_conv2d_core_matches_notebook_api(case, bias):
    x, w, b = case.arrays(np.float64)
    z_nb, cache = refcnn.conv_forward(x, w, b, case.hparameters)
    dz = rng(case.id, "dZ").standard_normal(z_nb.shape)
    bb = {"b_none": None, "b_vector": b.reshape(-1), "b_notebook": b}[bias]
    y = refcnn.conv2d(x, w, bb, **case.core_kwargs)
    want = z_nb if bb is not None else z_nb - b.reshape(-1)
    assert_close(y, want, np.float64, conv_magnitude(x, w, b), f"{case.id} conv2d")
    dx, dw, db = refcnn.conv2d_backward(dz, x, w, bb, **case.core_kwargs)
    dA, dW, db_nb = refcnn.conv_backward(dz, cache)
    np.testing.assert_allclose(dx, dA, rtol=1e-12, atol=1e-12, err_msg=f"{case.id} dx")
    np.testing.assert_allclose(dw, dW, rtol=1e-12, atol=1e-12, err_msg=f"{case.id} dw")
    assert db.shape == (bb.shape if bb is not None else (case.c_out,)), f"{case.id}: db shape"
    np.testing.assert_allclose(db.reshape(-1), db_nb.reshape(-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("workspace_bytes", [1, 2000, None], ids=["ws1", "ws2000", "wsdefault"])
def test_conv2d_batch_chunking_does_not_change_results(workspace_bytes):
    case = CONV_CASES[12]  # grouped, n=2
    x, w, b = case.arrays(np.float64)
    x = np.concatenate([x, x[::-1], 2 * x])  # n = 6, several chunks
    y = refcnn.conv2d(x, w, b, workspace_bytes=workspace_bytes, **case.core_kwargs)
    want = naive_conv2d(x, w, b, case.stride, case.pads, case.dilation, case.groups)
    assert_close(y, want, np.float64, conv_magnitude(x, w, b), f"workspace={workspace_bytes}")
    dz = rng("chunk").standard_normal(y.shape)
    ref = refcnn.conv2d_backward(dz, x, w, b, **case.core_kwargs)
    got = refcnn.conv2d_backward(dz, x, w, b, workspace_bytes=workspace_bytes, **case.core_kwargs)
    for name, g, r in zip(("dx", "dw", "db"), got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES[:2], ids=DTYPE_IDS[:2])
def test_conv2d_native_accumulation_is_close(dtype):
    case = CONV_CASES[1]
    x, w, b = case.arrays(dtype)
    y64 = refcnn.conv2d(x, w, b, **case.core_kwargs)
    y = refcnn.conv2d(x, w, b, accumulate="native", **case.core_kwargs)
    assert y.dtype == dtype
    fan_in = w.shape[0] * w.shape[1] * w.shape[2]
    np.testing.assert_allclose(y.astype(float), y64.astype(float), rtol=0,
                               atol=4 * fan_in * np.finfo(dtype).eps * conv_magnitude(x, w, b))


# ----------------------------------------------------------------------------- pool

@pool_cases
@modes
@dtypes
def test_pool_forward_loops_vs_vectorized(case, mode, dtype):
    x = case.array(dtype)
    hp = case.hparameters_for(mode)
    a_loop = loops.pool_forward(*_f64(x), hp, mode=mode)[0].astype(dtype)
    a_vec, _ = refcnn.pool_forward(x, hp, mode=mode)
    if mode == "max":  # a max is exact
        assert a_vec.dtype == dtype
        np.testing.assert_array_equal(a_vec, a_loop, err_msg=f"{case.id} max forward")
    else:
        assert_close(a_vec, a_loop, dtype, float(np.abs(x).max()), f"{case.id} avg forward")
    y = getattr(refcnn, "max_pool2d" if mode == "max" else "avg_pool2d")(x, **case.core_kwargs(mode))
    np.testing.assert_array_equal(y, a_vec, err_msg=f"{case.id}: core vs notebook API")


@pool_cases
@modes
@dtypes
def test_pool_backward_loops_vs_vectorized(case, mode, dtype):
    x = case.array(dtype)
    hp = case.hparameters_for(mode)
    a, cache = refcnn.pool_forward(x, hp, mode=mode)
    da = rng(case.id, "dA").standard_normal(a.shape).astype(dtype)
    d_loop = loops.pool_backward(*_f64(da), (*_f64(x), hp), mode=mode).astype(dtype)
    d_vec = refcnn.pool_backward(da, cache, mode=mode)
    assert d_loop.shape == x.shape
    # Both add the same float64 terms, in different orders.
    assert_close(d_vec, d_loop, dtype, float(da.size * np.abs(da).max()), f"{case.id} {mode}")
    core = getattr(refcnn, "max_pool2d_backward" if mode == "max" else "avg_pool2d_backward")
    np.testing.assert_array_equal(core(da, x, **case.core_kwargs(mode)), d_vec,
                                  err_msg=f"{case.id}: core vs notebook API")


LOOPS_ROUND_ONCE = [
    pytest.param("conv_forward", id="conv_forward"),
    pytest.param("conv_backward", id="conv_backward"),
    pytest.param("max_forward", id="max_forward"),
    pytest.param("max_backward", id="max_backward"),
    pytest.param("average_forward", id="average_forward"),
    pytest.param("average_backward", id="average_backward"),
]


@pytest.mark.parametrize("what", LOOPS_ROUND_ONCE)
@pytest.mark.parametrize("dtype", DTYPES[:2], ids=DTYPE_IDS[:2])
def test_loops_round_once(what, dtype):
    """refcnn.loops in float16/float32 computes in float64 and rounds once at the end:
    within one ulp of the same loops run on the values upcast to float64."""
    if what.startswith("conv"):
        case = CONV_CASES[1]
        x, w, b = case.arrays(dtype)
        z, cache = loops.conv_forward(x, w, b, case.hparameters)
        z64, cache64 = loops.conv_forward(*_f64(x, w, b), case.hparameters)
        if what == "conv_forward":
            got, want = [z], [z64]
        else:
            dz = rng("round-once").standard_normal(z.shape).astype(dtype)
            got = loops.conv_backward(dz, cache)
            want = loops.conv_backward(*_f64(dz), cache64)
    else:
        mode, direction = what.split("_")
        case = PoolCase(4, 5, 5, 4, 3, 2, pad=1, count_include_pad=False)  # divisors 4, 6, 9
        x = case.array(dtype)
        a, cache = loops.pool_forward(x, case.hparameters_for(mode), mode)
        a64, cache64 = loops.pool_forward(*_f64(x), case.hparameters_for(mode), mode)
        if direction == "forward":
            got, want = [a], [a64]
        else:
            da = rng("round-once").standard_normal(a.shape).astype(dtype)
            got = [loops.pool_backward(da, cache, mode)]
            want = [loops.pool_backward(*_f64(da), cache64, mode)]
    for g, w64 in zip(got, want):
        assert g.dtype == dtype, f"{what}: loops output dtype {g.dtype}, expected {dtype}"
        np.testing.assert_array_max_ulp(g, w64.astype(dtype), maxulp=1)


@pytest.mark.parametrize("case", [c for c in POOL_CASES if not c.ceil_mode and c.dilation == 1
                                  and c.count_include_pad and c.divisor_override is None
                                  and not isinstance(c.pad, str)],
                         ids=lambda c: c.id)
@modes
def test_pool_forward_vs_naive_reference(case, mode):
    x = case.array(np.float64)
    pads = case.pad if isinstance(case.pad, tuple) and isinstance(case.pad[0], tuple) else \
        ((case.pad, case.pad), (case.pad, case.pad))
    a, _ = refcnn.pool_forward(x, case.hparameters_for(mode), mode=mode)
    want = naive_pool2d(x, case.f, case.stride, pads, mode)
    np.testing.assert_allclose(a, want, rtol=1e-14, atol=1e-14, err_msg=f"{case.id} {mode}")


@pytest.mark.parametrize("f", [2, (3, 2)], ids=["f2", "f3x2"])
def test_pool_core_stride_defaults_to_kernel(f):
    x = rng("stride-default").standard_normal((1, 6, 6, 2))
    for fwd in (refcnn.max_pool2d, refcnn.avg_pool2d):
        np.testing.assert_array_equal(fwd(x, f), fwd(x, f, stride=f), err_msg=fwd.__name__)
