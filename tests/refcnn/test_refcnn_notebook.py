"""The notebook's worked examples ("Convolutional Neural Networks: Step by Step"), each with
its own input set-up, against the printed expected outputs.

Every example runs on the vectorized API (``refcnn``) and on the loop oracle
(``refcnn.loops``). The notebook prints 8 to 12 significant digits; the
tolerances below are the printed precision.
"""

import numpy as np
import pytest

import refcnn
from refcnn import loops

IMPLS = [pytest.param(refcnn, id="vectorized"), pytest.param(loops, id="loops")]


@pytest.mark.parametrize("api", IMPLS)
def test_zero_pad_example(api):
    np.random.seed(1)
    x = np.random.randn(4, 3, 3, 2)
    x_pad = api.zero_pad(x, 2)
    assert x.shape == (4, 3, 3, 2)
    assert x_pad.shape == (4, 7, 7, 2), "zero_pad(x, 2) must add 2 on every side"
    np.testing.assert_allclose(
        x[1, 1], [[0.90085595, -0.68372786], [-0.12289023, -0.93576943],
                  [-0.26788808, 0.53035547]], atol=1e-8)
    np.testing.assert_array_equal(x_pad[1, 1], np.zeros((7, 2)))
    np.testing.assert_array_equal(x_pad[:, 2:5, 2:5, :], x, err_msg="interior must be x itself")
    border = x_pad.copy()
    border[:, 2:5, 2:5, :] = 0
    assert not border.any(), "padding cells must be zero"


@pytest.mark.parametrize("api", IMPLS)
def test_conv_single_step_example(api):
    np.random.seed(1)
    a_slice_prev = np.random.randn(4, 4, 3)
    W = np.random.randn(4, 4, 3)
    b = np.random.randn(1, 1, 1)
    Z = api.conv_single_step(a_slice_prev, W, b)
    assert np.ndim(Z) == 0, f"conv_single_step must return a scalar, got shape {np.shape(Z)}"
    np.testing.assert_allclose(float(Z), -6.99908945068, atol=1e-10)


def _conv_example():
    np.random.seed(1)
    A_prev = np.random.randn(10, 4, 4, 3)
    W = np.random.randn(2, 2, 3, 8)
    b = np.random.randn(1, 1, 1, 8)
    hparameters = {"pad": 2, "stride": 2}
    return A_prev, W, b, hparameters


@pytest.mark.parametrize("api", IMPLS)
def test_conv_forward_example(api):
    A_prev, W, b, hparameters = _conv_example()
    Z, cache_conv = api.conv_forward(A_prev, W, b, hparameters)
    assert Z.shape == (10, 4, 4, 8)
    np.testing.assert_allclose(np.mean(Z), 0.0489952035289, atol=1e-12)
    np.testing.assert_allclose(
        Z[3, 2, 1], [-0.61490741, -6.7439236, -2.55153897, 1.75698377, 3.56208902, 0.53036437,
                     5.18531798, 8.75898442], atol=1e-8)
    np.testing.assert_allclose(cache_conv[0][1][2][3], [-0.20075807, 0.18656139, 0.41005165],
                               atol=1e-8)
    A_c, W_c, b_c, hp_c = cache_conv
    assert A_c is A_prev and W_c is W and b_c is b and hp_c is hparameters, \
        "the cache must be the notebook's (A_prev, W, b, hparameters)"
    assert hparameters == {"pad": 2, "stride": 2}, "conv_forward changed the caller's hparameters"


@pytest.mark.parametrize("api", IMPLS)
def test_conv_backward_example(api):
    A_prev, W, b, hparameters = _conv_example()
    Z, cache_conv = api.conv_forward(A_prev, W, b, hparameters)
    np.random.seed(1)
    dA, dW, db = api.conv_backward(Z, cache_conv)
    assert (dA.shape, dW.shape, db.shape) == (A_prev.shape, W.shape, b.shape)
    # The printed values come from a stride-aware backward pass (stride 2 here).
    np.testing.assert_allclose(np.mean(dA), 1.45243777754, atol=1e-10)
    np.testing.assert_allclose(np.mean(dW), 1.72699145831, atol=1e-10)
    np.testing.assert_allclose(np.mean(db), 7.83923256462, atol=1e-10)
    assert hparameters == {"pad": 2, "stride": 2}, "conv_backward changed the caller's hparameters"


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("mode, expected", [
    ("max", [[[[1.74481176, 0.86540763, 1.13376944]]],
             [[[1.13162939, 1.51981682, 2.18557541]]]]),
    ("average", [[[[0.02105773, -0.20328806, -0.40389855]]],
                 [[[-0.22154621, 0.51716526, 0.48155844]]]]),
])
def test_pool_forward_example(api, mode, expected):
    np.random.seed(1)
    A_prev = np.random.randn(2, 4, 4, 3)
    hparameters = {"stride": 2, "f": 3}
    A, cache = api.pool_forward(A_prev, hparameters, mode=mode)
    assert A.shape == (2, 1, 1, 3)
    np.testing.assert_allclose(A, expected, atol=1e-8)
    assert cache[0] is A_prev and cache[1] is hparameters
    assert hparameters == {"stride": 2, "f": 3}, "pool_forward changed the caller's hparameters"


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("mode, expected", [
    ("max", [[0.0, 0.0], [5.05844394, -1.68282702], [0.0, 0.0]]),
    ("average", [[0.08485462, 0.2787552], [1.26461098, -0.25749373],
                 [1.17975636, -0.53624893]]),
])
def test_pool_backward_example(api, mode, expected):
    np.random.seed(1)
    A_prev = np.random.randn(5, 5, 3, 2)
    hparameters = {"stride": 1, "f": 2}
    A, cache = api.pool_forward(A_prev, hparameters)
    dA = np.random.randn(5, 4, 2, 2)
    np.testing.assert_allclose(np.mean(dA), 0.145713902729, atol=1e-11)
    dA_prev = api.pool_backward(dA, cache, mode=mode)
    assert dA_prev.shape == A_prev.shape
    np.testing.assert_allclose(dA_prev[1, 1], expected, atol=1e-8)


@pytest.mark.parametrize("api", IMPLS)
def test_create_mask_from_window_example(api):
    np.random.seed(1)
    x = np.random.randn(2, 3)
    np.testing.assert_allclose(x, [[1.62434536, -0.61175641, -0.52817175],
                                   [-1.07296862, 0.86540763, -2.3015387]], atol=1e-8)
    mask = api.create_mask_from_window(x)
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, [[True, False, False], [False, False, False]])


@pytest.mark.parametrize("api", IMPLS)
def test_create_mask_from_window_figure(api):
    # The notebook's figure: X = [[1, 3], [4, 2]] -> M = [[0, 0], [1, 0]].
    np.testing.assert_array_equal(api.create_mask_from_window(np.array([[1.0, 3.0], [4.0, 2.0]])),
                                  [[False, False], [True, False]])


def test_create_mask_from_window_marks_every_tie():
    # Documented notebook behaviour (x == max): every tie is marked, unlike pool_backward.
    np.testing.assert_array_equal(refcnn.create_mask_from_window(np.array([[3.0, 1.0], [3.0, 2.0]])),
                                  [[True, False], [True, False]])


@pytest.mark.parametrize("api", IMPLS)
def test_distribute_value_example(api):
    a = api.distribute_value(2, (2, 2))
    assert a.shape == (2, 2)
    np.testing.assert_array_equal(a, [[0.5, 0.5], [0.5, 0.5]])


@pytest.mark.parametrize("dz, shape, value", [
    (3.0, (1, 3), 1.0), (-6, (2, 3), -1.0), (np.float32(1.0), (4, 1), 0.25),
    (np.array(8.0), (2, 2), 2.0),
], ids=["float_1x3", "int_2x3", "np_float32_4x1", "0d_array_2x2"])
def test_distribute_value_spreads_evenly(dz, shape, value):
    a = refcnn.distribute_value(dz, shape)
    assert a.shape == shape and a.dtype == np.float64
    np.testing.assert_allclose(a, np.full(shape, value))
    np.testing.assert_allclose(a.sum(), float(dz))


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("pad, sides", [
    (0, ((0, 0), (0, 0))), (1, ((1, 1), (1, 1))), ((2, 0), ((2, 2), (0, 0))),
    (((0, 1), (2, 3)), ((0, 1), (2, 3))), (np.int64(1), ((1, 1), (1, 1))),
], ids=["int0", "int1", "pair", "per_side", "np_int"])
def test_zero_pad_forms(api, pad, sides):
    x = np.arange(1, 2 * 3 * 4 * 2 + 1, dtype=np.float32).reshape(2, 3, 4, 2)
    (t, b), (left, r) = sides
    got = api.zero_pad(x, pad)
    assert got.dtype == x.dtype and got.shape == (2, 3 + t + b, 4 + left + r, 2)
    np.testing.assert_array_equal(got, np.pad(x, ((0, 0), (t, b), (left, r), (0, 0))))
    assert not np.shares_memory(got, x), "zero_pad must return a new array"
