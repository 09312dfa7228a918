"""Properties that need no oracle, and the documented examples of docs/semantics.md.

Each holds for any correct conv/pool: linearity, delta kernels, stride as
subsampling, groups as concatenation, average pooling as a depthwise conv,
'same' output sizes, ceil_mode sizes, -inf max-pool padding, and torch's
gradient routing for ties, NaN and -inf.
"""

import numpy as np
import pytest

import refcnn
from refcnn import geometry, loops
from refcnn_helpers import ConvCase, rng

IMPLS = [pytest.param(refcnn, id="vectorized"), pytest.param(loops, id="loops")]
TOL = dict(rtol=1e-12, atol=1e-12)


def _conv(x, w, b=None, **kw):
    return refcnn.conv2d(x, w, b, **kw)


# ----------------------------------------------------------------------------- linearity

LIN_CASES = [
    ConvCase(2, 5, 5, 3, (3, 3), 4, stride=2, pad=1),
    ConvCase(1, 6, 5, 4, (2, 3), 2, stride=(1, 2), pad="same", dilation=(2, 1), groups=2),
]


@pytest.mark.parametrize("case", LIN_CASES, ids=[c.id for c in LIN_CASES])
def test_conv_is_linear_in_x(case):
    x1, w, b = case.arrays()
    x2, _, _ = case.arrays(tag="x2")
    lhs = _conv(2.5 * x1 - 0.75 * x2, w, **case.core_kwargs)
    rhs = 2.5 * _conv(x1, w, **case.core_kwargs) - 0.75 * _conv(x2, w, **case.core_kwargs)
    np.testing.assert_allclose(lhs, rhs, **TOL, err_msg=f"{case.id}: conv(a x1 + b x2)")


@pytest.mark.parametrize("case", LIN_CASES, ids=[c.id for c in LIN_CASES])
def test_conv_is_linear_in_w(case):
    x, w1, b = case.arrays()
    _, w2, _ = case.arrays(tag="w2")
    lhs = _conv(x, -1.5 * w1 + 3.0 * w2, **case.core_kwargs)
    rhs = -1.5 * _conv(x, w1, **case.core_kwargs) + 3.0 * _conv(x, w2, **case.core_kwargs)
    np.testing.assert_allclose(lhs, rhs, **TOL, err_msg=f"{case.id}: conv(a w1 + b w2)")


@pytest.mark.parametrize("case", LIN_CASES, ids=[c.id for c in LIN_CASES])
def test_conv_bias_is_added_per_output_channel(case):
    x, w, b = case.arrays()
    np.testing.assert_allclose(_conv(x, w, b, **case.core_kwargs),
                               _conv(x, w, **case.core_kwargs) + b.reshape(-1), **TOL)


# ----------------------------------------------------------------------------- delta kernels

@pytest.mark.parametrize("tap", [(0, 0), (1, 2), (2, 1)], ids=lambda t: f"tap{t[0]}{t[1]}")
@pytest.mark.parametrize("stride, dilation, pad", [
    (1, 1, 0), (2, 1, 1), (1, 2, ((0, 1), (2, 0))), ((2, 3), (2, 1), (1, 2)),
], ids=["s1_d1_p0", "s2_d1_p1", "s1_d2_pside", "s2x3_d2x1_p1x2"])
def test_conv_delta_kernel_is_a_crop(tap, stride, dilation, pad):
    """A kernel that is 1 at one tap (identity over channels) copies a strided crop of the
    zero-padded input."""
    x = rng("delta").standard_normal((2, 7, 8, 2))
    w = np.zeros((3, 3, 2, 2))
    w[tap[0], tap[1]] = np.eye(2)
    y = _conv(x, w, stride=stride, padding=pad, dilation=dilation)
    (sh, sw), (dh, dw) = [(v, v) if isinstance(v, int) else v for v in (stride, dilation)]
    pads = pad if isinstance(pad, tuple) and isinstance(pad[0], tuple) else \
        ((pad, pad), (pad, pad)) if isinstance(pad, int) else ((pad[0],) * 2, (pad[1],) * 2)
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    ho, wo = y.shape[1:3]
    r0, c0 = tap[0] * dh, tap[1] * dw
    want = xp[:, r0:r0 + sh * (ho - 1) + 1:sh, c0:c0 + sw * (wo - 1) + 1:sw]
    np.testing.assert_array_equal(y, want)


def test_conv_same_centered_delta_is_identity():
    x = rng("delta-same").standard_normal((1, 6, 5, 3))
    w = np.zeros((3, 3, 3, 3))
    w[1, 1] = np.eye(3)
    np.testing.assert_array_equal(_conv(x, w, padding="same"), x)


# ----------------------------------------------------------------------------- stride = subsampling

STRIDE_CASES = [
    ((2, 2), 1, (3, 3)), ((3, 2), ((1, 0), (2, 1)), (2, 3)), ((2, 3), (0, 1), (3, 2)),
]
STRIDE_IDS = ["s2_p1_f3", "s3x2_pside_f2x3", "s2x3_p0x1_f3x2"]


@pytest.mark.parametrize("stride, pad, f", STRIDE_CASES, ids=STRIDE_IDS)
@pytest.mark.parametrize("dilation", [1, 2], ids=["d1", "d2"])
def test_conv_stride_is_stride1_subsampled(stride, pad, f, dilation):
    g = rng("stride", stride, pad, f)
    x = g.standard_normal((2, 9, 10, 2))
    w = g.standard_normal((*f, 2, 3))
    full = _conv(x, w, padding=pad, dilation=dilation)
    strided = _conv(x, w, stride=stride, padding=pad, dilation=dilation)
    np.testing.assert_allclose(strided, full[:, ::stride[0], ::stride[1]], **TOL)


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("stride, pad, f", STRIDE_CASES, ids=STRIDE_IDS)
def test_conv_backward_stride_is_stride1_with_upsampled_grad(stride, pad, f, api):
    """The gradient of a strided conv equals the stride-1 gradient of dZ scattered onto the
    stride-1 grid (zeros between)."""
    g = rng("stride-grad", stride, pad, f)
    x = g.standard_normal((2, 9, 10, 2))
    w = g.standard_normal((*f, 2, 3))
    b = g.standard_normal((1, 1, 1, 3))
    hp1 = {"stride": 1, "pad": pad}
    hps = {"stride": stride, "pad": pad}
    z1, cache1 = refcnn.conv_forward(x, w, b, hp1)
    zs, caches = refcnn.conv_forward(x, w, b, hps)
    dzs = g.standard_normal(zs.shape)
    dz1 = np.zeros(z1.shape)
    dz1[:, ::stride[0], ::stride[1]] = dzs
    for name, got, want in zip(("dA_prev", "dW", "db"), api.conv_backward(dzs, caches),
                               api.conv_backward(dz1, cache1)):
        np.testing.assert_allclose(got, want, **TOL, err_msg=name)


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("stride", [(2, 2), (3, 2)], ids=["s2", "s3x2"])
def test_pool_stride_is_stride1_subsampled(stride, mode, api):
    x = rng("pool-stride", stride).standard_normal((2, 9, 8, 2))
    hp1 = {"f": 3, "stride": 1, "pad": 1}
    hps = {"f": 3, "stride": stride, "pad": 1}
    a1, cache1 = api.pool_forward(x, hp1, mode)
    as_, caches = api.pool_forward(x, hps, mode)
    np.testing.assert_allclose(as_, a1[:, ::stride[0], ::stride[1]], **TOL)
    das = rng("pool-stride-g", stride).standard_normal(as_.shape)
    da1 = np.zeros(a1.shape)
    da1[:, ::stride[0], ::stride[1]] = das
    np.testing.assert_allclose(api.pool_backward(das, caches, mode),
                               api.pool_backward(da1, cache1, mode), **TOL)


# ----------------------------------------------------------------------------- groups

GROUP_CASES = [
    ConvCase(2, 5, 5, 4, (3, 3), 6, stride=2, pad=1, groups=2),
    ConvCase(1, 6, 5, 6, (2, 3), 6, pad="same", dilation=2, groups=3),
    ConvCase(1, 5, 5, 3, (3, 3), 3, groups=3),   # depthwise
    ConvCase(1, 5, 4, 2, (2, 2), 6, stride=(1, 2), groups=2),  # depthwise, multiplier 3
]


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("case", GROUP_CASES, ids=[c.id for c in GROUP_CASES])
def test_groups_equal_per_group_convs_concatenated(case, api):
    x, w, b = case.arrays()
    G = case.groups
    cg, og = case.c_in // G, case.c_out // G
    hp = dict(case.hparameters, groups=1)
    z, cache = api.conv_forward(x, w, b, case.hparameters)
    g = rng(case.id, "g").standard_normal(z.shape)
    dA, dW, db = api.conv_backward(g, cache)
    parts = []
    for k in range(G):
        xs, ws, bs = x[..., k * cg:(k + 1) * cg], w[..., k * og:(k + 1) * og], \
            b[..., k * og:(k + 1) * og]
        zk, ck = api.conv_forward(xs, ws, bs, hp)
        parts.append(zk)
        dAk, dWk, dbk = api.conv_backward(g[..., k * og:(k + 1) * og], ck)
        np.testing.assert_allclose(dA[..., k * cg:(k + 1) * cg], dAk, **TOL, err_msg=f"dA g{k}")
        np.testing.assert_allclose(dW[..., k * og:(k + 1) * og], dWk, **TOL, err_msg=f"dW g{k}")
        np.testing.assert_allclose(db[..., k * og:(k + 1) * og], dbk, **TOL, err_msg=f"db g{k}")
    np.testing.assert_allclose(z, np.concatenate(parts, axis=-1), **TOL)


# ----------------------------------------------------------------------------- avg pool = depthwise conv

@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("f, stride, pad", [
    (2, 2, 0), (3, 2, 1), ((2, 3), (1, 2), ((1, 0), (0, 1))), (3, 1, "same"),
], ids=["f2_s2_p0", "f3_s2_p1", "f2x3_s1x2_pside", "f3_s1_same"])
def test_avg_pool_is_depthwise_conv_with_constant_kernel(f, stride, pad, api):
    """With count_include_pad=True (zeros padded and counted) and no ceil_mode."""
    c = 3
    x = rng("avg-dw", f, stride).standard_normal((2, 7, 6, c))
    fh, fw = (f, f) if isinstance(f, int) else f
    w = np.full((fh, fw, 1, c), 1.0 / (fh * fw))
    b = np.zeros((1, 1, 1, c))
    a, pcache = api.pool_forward(x, {"f": f, "stride": stride, "pad": pad}, "average")
    z, ccache = api.conv_forward(x, w, b, {"stride": stride, "pad": pad, "groups": c})
    np.testing.assert_allclose(a, z, **TOL)
    g = rng("avg-dw-g").standard_normal(a.shape)
    np.testing.assert_allclose(api.pool_backward(g, pcache, "average"),
                               api.conv_backward(g, ccache)[0], **TOL)


# ----------------------------------------------------------------------------- 'same' padding

SAME_SIZE = [(1, 1, 1), (2, 1, 1), (3, 1, 1), (4, 1, 1), (3, 2, 1), (2, 2, 1), (4, 3, 1),
             (3, 2, 2), (2, 3, 2), (5, 4, 1)]


@pytest.mark.parametrize("f, stride, dilation", SAME_SIZE,
                         ids=[f"f{f}_s{s}_d{d}" for f, s, d in SAME_SIZE])
def test_same_output_size_is_ceil_h_over_stride(f, stride, dilation):
    for h in range(1, 11):
        x = np.ones((1, h, h + 1, 1))
        w = np.ones((f, f, 1, 1))
        y = refcnn.conv2d(x, w, stride=stride, padding="same", dilation=dilation)
        want = (-(-h // stride), -(-(h + 1) // stride))
        assert y.shape[1:3] == want, \
            f"H={h}, W={h + 1}, f={f}, stride={stride}, dilation={dilation}: 'same' gave " \
            f"{y.shape[1:3]}, expected ceil(H/stride) = {want}"
        if dilation > 1:  # dilated 'same' pooling may leave a window all padding (refused)
            continue
        p, _ = refcnn.pool_forward(x, {"f": f, "stride": stride, "pad": "same"})
        assert p.shape[1:3] == want, f"max pool 'same' H={h}: {p.shape[1:3]} != {want}"


@pytest.mark.parametrize("h, f, s, pads", [(16, 7, 2, (2, 3)), (8, 3, 2, (0, 1))],
                         ids=["H16_f7_s2", "H8_f3_s2"])
def test_same_pads_semantics_examples(h, f, s, pads):
    """semantics.md: the odd padding pixel goes at the end (bottom/right)."""
    assert geometry.same_pads(h, f, s, 1) == pads
    x = rng("same", h).standard_normal((1, h, h, 2))
    w = rng("same-w", h).standard_normal((f, f, 2, 2))
    y = refcnn.conv2d(x, w, stride=s, padding="same")
    np.testing.assert_array_equal(y, refcnn.conv2d(x, w, stride=s, padding=(pads, pads)))
    flipped = refcnn.conv2d(x, w, stride=s, padding=(pads[::-1], pads[::-1]))
    assert not np.allclose(y, flipped), "'same' must differ from the odd pixel at the start"
    hp = {"stride": s, "pad": "same"}
    z, _ = loops.conv_forward(x, w, np.zeros((1, 1, 1, 2)), hp)
    np.testing.assert_allclose(z, y, **TOL, err_msg="loops 'same'")
    for mode in ("max", "average"):
        a, _ = refcnn.pool_forward(x, {"f": f, "stride": s, "pad": "same"}, mode)
        want, _ = refcnn.pool_forward(x, {"f": f, "stride": s, "pad": (pads, pads)}, mode)
        np.testing.assert_array_equal(a, want, err_msg=f"{mode} pool 'same'")


# ----------------------------------------------------------------------------- ceil_mode

@pytest.mark.parametrize("L, f, s, p, expected", [
    (5, 2, 2, 1, 3), (12, 1, 2, 0, 6), (9, 4, 4, 2, 3),
    (5, 2, 2, 0, 3), (4, 3, 2, 1, 3),
], ids=["L5_f2_s2_p1", "L12_f1_s2", "L9_f4_s4_p2", "L5_f2_s2_p0", "L4_f3_s2_p1"])
@pytest.mark.parametrize("mode", ["max", "average"])
def test_ceil_mode_output_size(L, f, s, p, expected, mode):
    """ceil, then drop the last window if it would start in the right padding."""
    x = rng("ceil", L).standard_normal((1, L, 3, 1))
    hp = {"f": (f, 1), "stride": (s, 1), "pad": ((p, p), (0, 0)), "ceil_mode": True}
    a, cache = refcnn.pool_forward(x, hp, mode)
    assert a.shape == (1, expected, 3, 1), f"L={L}, f={f}, s={s}, p={p}: {a.shape[1]} windows"
    a_loop, _ = loops.pool_forward(x, hp, mode)
    assert a_loop.shape == a.shape
    floor = refcnn.pool_forward(x, dict(hp, ceil_mode=False), mode)[0]
    assert floor.shape[1] == (L + 2 * p - f) // s + 1


def test_avg_pool_divisor_counts_padding_but_not_ceil_overhang():
    """L=4, f=3, s=2, p=1, ceil_mode: windows start at 0, 2, 4 in padded coordinates;
    the last one covers [x3, pad, overhang]: divisor 2 with count_include_pad, 1 without."""
    x = np.ones((1, 4, 4, 1))
    hp = {"f": 3, "stride": 2, "pad": 1, "ceil_mode": True}
    per_axis = np.array([2 / 3, 1.0, 1 / 2])
    for api in (refcnn, loops):
        incl = api.pool_forward(x, hp, "average")[0][0, :, :, 0]
        np.testing.assert_allclose(incl, np.outer(per_axis, per_axis), rtol=1e-15,
                                   err_msg=f"{api.__name__}: count_include_pad=True")
        excl = api.pool_forward(x, dict(hp, count_include_pad=False), "average")[0]
        np.testing.assert_allclose(excl, np.ones((1, 3, 3, 1)), rtol=1e-15,
                                   err_msg=f"{api.__name__}: count_include_pad=False")
        sums = api.pool_forward(x, dict(hp, divisor_override=1), "average")[0][0, :, :, 0]
        cells = np.array([2.0, 3.0, 1.0])
        np.testing.assert_allclose(sums, np.outer(cells, cells), rtol=1e-15,
                                   err_msg=f"{api.__name__}: divisor_override=1")
        sums_excl = api.pool_forward(x, dict(hp, divisor_override=1, count_include_pad=False),
                                     "average")[0][0, :, :, 0]
        np.testing.assert_allclose(sums_excl, sums, rtol=1e-15,
                                   err_msg="divisor_override must win over count_include_pad")


# ----------------------------------------------------------------------------- max pool specials

@pytest.mark.parametrize("api", IMPLS)
def test_max_pool_pads_with_minus_infinity(api):
    x = -np.arange(1, 10, dtype=np.float64).reshape(1, 3, 3, 1)
    a, _ = api.pool_forward(x, {"f": 2, "stride": 2, "pad": 1})
    np.testing.assert_array_equal(a.ravel(), [-1, -2, -4, -5])


def _row_pool_grad(api, row, f, dtype=np.float64, pad=0):
    x = np.asarray(row, dtype=dtype).reshape(1, 1, -1, 1)
    hp = {"f": (1, f), "stride": 1, "pad": (0, pad)}
    a, cache = api.pool_forward(x, hp)
    return a.ravel(), api.pool_backward(np.ones_like(a), cache).ravel()


@pytest.mark.parametrize("api", IMPLS)
def test_max_pool_ties_route_to_first_maximum(api):
    _, dx = _row_pool_grad(api, [1, 3, 3, 1, 3], 3)
    np.testing.assert_array_equal(dx, [0, 2, 1, 0, 0])


@pytest.mark.parametrize("api", IMPLS)
def test_max_pool_rounding_ties_route_to_first(api):
    row = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32) + np.float32(1e8)
    assert len(set(row.tolist())) == 1, "float32 rounding must make these equal"
    a, dx = _row_pool_grad(api, row, 4, np.float32)
    assert a.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_array_equal(dx, [1, 0, 0, 0])


@pytest.mark.parametrize("api", IMPLS)
def test_max_pool_nan_outputs_nan_and_routes_to_last_nan(api):
    a, dx = _row_pool_grad(api, [1.0, np.nan, 5.0, np.nan, 2.0], 5)
    assert np.isnan(a).all()
    np.testing.assert_array_equal(dx, [0, 0, 0, 1, 0])
    a, dx = _row_pool_grad(api, [7.0, np.nan, 5.0, 1.0], 2)  # windows [7,nan] [nan,5] [5,1]
    assert np.isnan(a[:2]).all() and a[2] == 5.0
    np.testing.assert_array_equal(dx, [0, 2, 1, 0])


@pytest.mark.parametrize("api", IMPLS)
def test_max_pool_all_minus_inf_window_routes_to_first_real_cell(api):
    a, dx = _row_pool_grad(api, [-np.inf] * 3, 3, pad=1)  # [pad x0 x1] [x0 x1 x2] [x1 x2 pad]
    np.testing.assert_array_equal(a, [-np.inf] * 3)
    np.testing.assert_array_equal(dx, [2, 1, 0])
    _, dx = _row_pool_grad(api, [-np.inf, -np.inf, 1.0], 2, pad=1)
    np.testing.assert_array_equal(dx, [2, 0, 2])  # [pad x0] [x0 x1] [x1 x2] [x2 pad]


@pytest.mark.parametrize("api", IMPLS)
def test_max_pool_all_minus_inf_window_beside_nan(api):
    """A NaN anywhere in the block sends the fast path to its scan fallback: its all -inf
    windows must still route to their first real cell (here x[0, 0], not the padding)."""
    x = np.array([[-np.inf, -np.inf, 1.0, np.nan],
                  [-np.inf, -np.inf, 2.0, 3.0],
                  [0.0, 5.0, -1.0, 4.0]]).reshape(1, 3, 4, 1)
    a, cache = api.pool_forward(x, {"f": 2, "stride": 2, "pad": 1})
    np.testing.assert_array_equal(a.ravel(), [-np.inf, 1, np.nan, 0, 5, 4])
    dA = np.arange(1.0, a.size + 1).reshape(a.shape)
    np.testing.assert_array_equal(api.pool_backward(dA, cache)[0, :, :, 0],
                                  [[1, 0, 2, 3], [0, 0, 0, 0], [4, 5, 0, 6]])


@pytest.mark.parametrize("api", IMPLS)
def test_max_pool_gradient_is_not_duplicated_on_ties(api):
    """Unlike the notebook's create_mask_from_window, each window's gradient goes to one cell."""
    x = np.ones((2, 4, 4, 3))
    a, cache = api.pool_forward(x, {"f": 2, "stride": 1})
    dA = rng("mass").standard_normal(a.shape)
    dx = api.pool_backward(dA, cache)
    np.testing.assert_allclose(dx.sum(), dA.sum(), rtol=1e-12)
    assert (dx[:, -1, :, :] == 0).all() and (dx[:, :, -1, :] == 0).all(), \
        "ties must route to each window's first (top-left) cell"
