"""crosscheck.layouts: round trips, index mappings, ambiguous shapes, no aliasing."""

import numpy as np
import pytest

from crosscheck import layouts

# (N, H, W, C) data shapes, including the ambiguous ones where a shape alone cannot tell
# NHWC from NCHW: C == 1, H == W == 1, and C == H == W (pytorch#82060).
DATA_SHAPES = [(2, 3, 4, 5), (2, 3, 4, 1), (2, 1, 1, 5), (1, 3, 3, 3), (1, 1, 1, 1), (0, 2, 3, 4)]
# (f_h, f_w, C_in/groups, C_out) weight shapes, same idea.
WEIGHT_SHAPES = [(3, 2, 4, 5), (3, 3, 1, 1), (1, 1, 4, 4), (2, 2, 2, 2), (3, 3, 1, 8)]


def _distinct(shape, seed=0):
    """Distinct values, so a wrong transpose of equal-size axes cannot go unseen."""
    rng = np.random.default_rng(seed)
    return rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64)


@pytest.mark.parametrize("shape", DATA_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_data_round_trip_nhwc_nchw(shape):
    x = _distinct(shape)
    y = layouts.nhwc_to_nchw(x)
    assert y.shape == (shape[0], shape[3], shape[1], shape[2])
    np.testing.assert_array_equal(layouts.nchw_to_nhwc(y), x)
    # And the other way round, starting from NCHW.
    z = _distinct(y.shape, seed=1)
    np.testing.assert_array_equal(layouts.nhwc_to_nchw(layouts.nchw_to_nhwc(z)), z)


@pytest.mark.parametrize("shape", WEIGHT_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_weight_round_trip_hwio_oihw(shape):
    w = _distinct(shape)
    o = layouts.hwio_to_oihw(w)
    assert o.shape == (shape[3], shape[2], shape[0], shape[1])
    np.testing.assert_array_equal(layouts.oihw_to_hwio(o), w)
    z = _distinct(o.shape, seed=1)
    np.testing.assert_array_equal(layouts.hwio_to_oihw(layouts.oihw_to_hwio(z)), z)


@pytest.mark.parametrize("shape", DATA_SHAPES[:-1], ids=lambda s: "x".join(map(str, s)))
def test_data_index_mapping(shape):
    x = _distinct(shape)
    y = layouts.nhwc_to_nchw(x)
    for n, h, w, c in np.ndindex(*shape):
        assert y[n, c, h, w] == x[n, h, w, c], f"nhwc_to_nchw moved x[{n},{h},{w},{c}]"
    back = layouts.nchw_to_nhwc(y)
    for n, c, h, w in np.ndindex(*y.shape):
        assert back[n, h, w, c] == y[n, c, h, w], f"nchw_to_nhwc moved y[{n},{c},{h},{w}]"


@pytest.mark.parametrize("shape", WEIGHT_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_weight_index_mapping(shape):
    w = _distinct(shape)
    o = layouts.hwio_to_oihw(w)
    for kh, kw, i, oc in np.ndindex(*shape):
        assert o[oc, i, kh, kw] == w[kh, kw, i, oc], f"hwio_to_oihw moved w[{kh},{kw},{i},{oc}]"


def test_known_values_c_equals_h_equals_w():
    # pytorch#82060: with C == H == W a shape check cannot catch a wrong permutation.
    x = np.arange(27.0).reshape(1, 3, 3, 3)  # x[0, h, w, c] = 9h + 3w + c
    y = layouts.nhwc_to_nchw(x)
    assert y[0, 2, 0, 1] == 2 + 3 * 1  # c=2, h=0, w=1
    assert y[0, 0, 1, 2] == 9 + 6
    np.testing.assert_array_equal(y[0, 1], np.arange(27.0).reshape(3, 3, 3)[..., 1])
    # HWIO -> OIHW with every axis of length 2.
    w = np.arange(16.0).reshape(2, 2, 2, 2)  # w[kh, kw, i, o] = 8kh + 4kw + 2i + o
    o = layouts.hwio_to_oihw(w)
    assert o[1, 0, 0, 1] == 4 + 1
    assert o[0, 1, 1, 0] == 8 + 2


def test_bias_shapes():
    b = np.array([1.0, 2.0, 3.0])
    nhwc = layouts.bias_to_nhwc(b)
    nchw = layouts.bias_to_nchw(b)
    assert nhwc.shape == (1, 1, 1, 3) and nchw.shape == (1, 3, 1, 1)
    np.testing.assert_array_equal(layouts.bias_from_nhwc(nhwc), b)
    np.testing.assert_array_equal(layouts.bias_from_nchw(nchw), b)
    # Broadcasting adds the bias on the channel axis of each layout.
    x = np.zeros((2, 4, 5, 3))
    np.testing.assert_array_equal(layouts.nhwc_to_nchw(x + nhwc), layouts.nhwc_to_nchw(x) + nchw)
    one = np.array([7.0])  # C == 1
    assert layouts.bias_to_nchw(one).shape == (1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"\(1, 1, 1, C\)"):
        layouts.bias_from_nhwc(nchw)
    with pytest.raises(ValueError, match=r"\(1, C, 1, 1\)"):
        layouts.bias_from_nchw(nhwc)


def test_pads():
    pads = ((1, 2), (3, 4))
    assert layouts.pads_to_torch_pad(pads) == (3, 4, 1, 2)
    assert layouts.pads_to_torch_symmetric(pads) is None
    assert layouts.pads_to_torch_symmetric(((1, 1), (2, 2))) == (1, 2)
    assert layouts.pads_to_torch_symmetric(((1, 1), (2, 3))) is None
    assert layouts.pads_to_jax(pads) == [(1, 2), (3, 4)]
    with pytest.raises(ValueError, match="per-side pairs"):
        layouts.pads_to_jax("same")


def test_pads_match_numpy_and_torch_pad_order():
    # F.pad's (left, right, top, bottom) must pad W by (left, right) and H by (top, bottom).
    torch = pytest.importorskip("torch")
    x = _distinct((1, 2, 3, 4))  # NCHW
    pads = ((1, 2), (3, 0))
    got = torch.nn.functional.pad(torch.from_numpy(x), layouts.pads_to_torch_pad(pads)).numpy()
    want = np.pad(x, ((0, 0), (0, 0), *pads))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fn, ndim", [
    (layouts.nhwc_to_nchw, 4), (layouts.nchw_to_nhwc, 4), (layouts.hwio_to_oihw, 4),
    (layouts.oihw_to_hwio, 4), (layouts.bias_to_nhwc, 1), (layouts.bias_to_nchw, 1),
], ids=lambda v: getattr(v, "__name__", str(v)))
def test_inputs_not_modified_and_outputs_contiguous_copies(fn, ndim):
    a = _distinct((2, 3, 4, 5)[:ndim])
    a.flags.writeable = False  # any in-place write would raise
    before = a.copy()
    out = fn(a)
    np.testing.assert_array_equal(a, before)
    assert out.flags.c_contiguous and out.flags.writeable
    assert not np.shares_memory(out, a), f"{fn.__name__} returned a view of its input"


def test_identity_shaped_transpose_still_copies():
    # (1, 1, 1, C) -> NCHW is a no-op transpose in memory; the result must still be a copy.
    a = _distinct((1, 1, 1, 4))
    out = layouts.nhwc_to_nchw(a)
    out[...] = -1
    assert (a >= 0).all()


def test_wrong_ndim_is_refused():
    with pytest.raises(ValueError, match="4-dimensional"):
        layouts.nhwc_to_nchw(np.zeros((3, 4, 5)))
