"""Every malformed argument is refused with a ValueError (right kind, wrong value) or a
TypeError (wrong kind), and the message names the parameter.

Each notebook-API case runs against the vectorized API and the loop oracle.
"""

import numpy as np
import pytest

import refcnn
from refcnn import loops

IMPLS = [pytest.param(refcnn, id="vectorized"), pytest.param(loops, id="loops")]


def _x(shape=(2, 5, 5, 4), dtype=np.float64):
    return np.arange(np.prod(shape), dtype=np.float64).reshape(shape).astype(dtype) / 10


X = _x()
W = _x((3, 3, 4, 6))
B = _x((1, 1, 1, 6))
HP = {"stride": 1, "pad": 1}
POOL_HP = {"f": 2, "stride": 2}


def _hp(**kw):
    hp = dict(HP, **kw)
    return {k: v for k, v in hp.items() if v is not _DROP}


def _php(**kw):
    hp = dict(POOL_HP, **kw)
    return {k: v for k, v in hp.items() if v is not _DROP}


_DROP = object()

# (id, A_prev, W, b, hparameters, exception, message regex)
CONV_FORWARD_BAD = [
    ("A_prev_ndim3", X[0], W, B, HP, ValueError, r"A_prev must be 4-dimensional"),
    ("A_prev_ndim5", X[None], W, B, HP, ValueError, r"A_prev must be 4-dimensional"),
    ("A_prev_list", X.tolist(), W, B, HP, TypeError, r"A_prev must be a numpy.ndarray"),
    ("W_ndim3", X, W[..., 0], B, HP, ValueError, r"W must be 4-dimensional"),
    ("W_empty_kernel", X, W[:0], B, HP, ValueError, r"\bW\b"),
    ("channel_mismatch", X, W[:, :, :3], B, HP, ValueError, r"W must have shape"),
    ("bias_channels", X, W, B[..., :5], HP, ValueError, r"b must have shape"),
    ("bias_shape_1x6", X, W, B.reshape(1, 6), HP, ValueError, r"b must have shape"),
    ("bias_not_array", X, W, 0.5, HP, TypeError, r"b must be a numpy.ndarray"),
    ("groups_not_dividing", X, _x((3, 3, 1, 6)), B, _hp(groups=3), ValueError, r"groups"),
    ("groups_zero", X, W, B, _hp(groups=0), ValueError, r"groups"),
    ("groups_float", X, W, B, _hp(groups=1.0), TypeError, r"groups"),
    ("groups_W_channels", X, W, B, _hp(groups=2), ValueError, r"W must have shape.*groups"),
    ("stride_zero", X, W, B, _hp(stride=0), ValueError, r"stride"),
    ("stride_negative", X, W, B, _hp(stride=-1), ValueError, r"stride"),
    ("stride_float", X, W, B, _hp(stride=1.5), TypeError, r"stride"),
    ("stride_float_integral", X, W, B, _hp(stride=2.0), TypeError, r"stride"),
    ("stride_bool", X, W, B, _hp(stride=True), TypeError, r"stride"),
    ("stride_str", X, W, B, _hp(stride="2"), TypeError, r"stride"),
    ("stride_none", X, W, B, _hp(stride=None), TypeError, r"stride"),
    ("stride_pair_zero", X, W, B, _hp(stride=(1, 0)), ValueError, r"stride\[1\]"),
    ("stride_triple", X, W, B, _hp(stride=(1, 1, 1)), ValueError, r"stride"),
    ("dilation_zero", X, W, B, _hp(dilation=0), ValueError, r"dilation"),
    ("dilation_float", X, W, B, _hp(dilation=1.0), TypeError, r"dilation"),
    ("dilation_pair_neg", X, W, B, _hp(dilation=(-1, 1)), ValueError, r"dilation\[0\]"),
    ("pad_negative", X, W, B, _hp(pad=-1), ValueError, r"pad"),
    ("pad_pair_negative", X, W, B, _hp(pad=(1, -1)), ValueError, r"pad"),
    ("pad_side_negative", X, W, B, _hp(pad=((0, 1), (-1, 0))), ValueError, r"pad"),
    ("pad_float", X, W, B, _hp(pad=1.5), TypeError, r"pad"),
    ("pad_none", X, W, B, _hp(pad=None), TypeError, r"pad"),
    ("pad_triple", X, W, B, _hp(pad=(1, 1, 1)), ValueError, r"pad"),
    ("pad_side_triple", X, W, B, _hp(pad=((1, 1, 1), (0, 0))), ValueError, r"pad"),
    ("pad_word_full", X, W, B, _hp(pad="full"), ValueError, r"pad"),
    ("pad_word_empty", X, W, B, _hp(pad=""), ValueError, r"pad"),
    ("hparameters_unknown_key", X, W, B, _hp(padding=1), ValueError, r"hparameters.*padding"),
    ("hparameters_missing_stride", X, W, B, _hp(stride=_DROP), ValueError,
     r"hparameters.*stride"),
    ("hparameters_missing_pad", X, W, B, _hp(pad=_DROP), ValueError, r"hparameters.*pad"),
    ("hparameters_not_dict", X, W, B, [("stride", 1), ("pad", 1)], TypeError, r"hparameters"),
    ("kernel_larger_than_padded", X, _x((8, 3, 4, 6)), B, HP, ValueError,
     r"kernel.*larger than the padded input"),
    ("dilated_kernel_too_large", X, W, B, _hp(dilation=3, pad=0), ValueError,
     r"kernel.*larger than the padded input"),
    ("A_prev_int", X.astype(np.int64), W, B, HP, TypeError, r"A_prev must have a floating dtype"),
    ("A_prev_bool", X > 0, W, B, HP, TypeError, r"A_prev must have a floating dtype"),
    ("A_prev_complex", X.astype(np.complex128), W, B, HP, TypeError,
     r"A_prev must have a floating dtype"),
    ("A_prev_object", X.astype(object), W, B, HP, TypeError, r"A_prev must have a floating dtype"),
    ("W_int", X, W.astype(np.int32), B, HP, TypeError, r"W must have a floating dtype"),
    ("W_complex", X, W.astype(np.complex64), B, HP, TypeError, r"W must have a floating dtype"),
    ("b_int", X, W, B.astype(np.int64), HP, TypeError, r"b must have a floating dtype"),
    ("b_object", X, W, B.astype(object), HP, TypeError, r"b must have a floating dtype"),
]


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("A_prev, W_, b, hp, exc, match",
                         [c[1:] for c in CONV_FORWARD_BAD], ids=[c[0] for c in CONV_FORWARD_BAD])
def test_conv_forward_refuses(api, A_prev, W_, b, hp, exc, match):
    with pytest.raises(exc, match=match):
        api.conv_forward(A_prev, W_, b, hp)


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("A_prev, W_, b, hp, exc, match",
                         [c[1:] for c in CONV_FORWARD_BAD], ids=[c[0] for c in CONV_FORWARD_BAD])
def test_conv_backward_refuses_a_bad_cache_content(api, A_prev, W_, b, hp, exc, match):
    """The same checks run on what the cache holds."""
    with pytest.raises(exc, match=match):
        api.conv_backward(np.zeros((2, 5, 5, 6)), (A_prev, W_, b, hp))


def _good_conv_cache():
    return refcnn.conv_forward(X, W, B, HP)


CONV_BACKWARD_BAD = [
    ("dZ_shape", lambda z: z[:, :4], ValueError, r"dZ must have the forward output's shape"),
    ("dZ_channels", lambda z: z[..., :5], ValueError, r"dZ must have the forward output's shape"),
    ("dZ_ndim3", lambda z: z[0], ValueError, r"dZ must be 4-dimensional"),
    ("dZ_int", lambda z: z.astype(np.int64), TypeError, r"dZ must have a floating dtype"),
    ("dZ_complex", lambda z: z.astype(np.complex128), TypeError, r"dZ must have a floating dtype"),
    ("dZ_list", lambda z: z.tolist(), TypeError, r"dZ must be a numpy.ndarray"),
]


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("bad, exc, match", [c[1:] for c in CONV_BACKWARD_BAD],
                         ids=[c[0] for c in CONV_BACKWARD_BAD])
def test_conv_backward_refuses_dZ(api, bad, exc, match):
    Z, cache = _good_conv_cache()
    with pytest.raises(exc, match=match):
        api.conv_backward(bad(Z), cache)


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("cache", [
    None, {"A_prev": X}, (X, W, B), (X, W, B, HP, None), X, "cache",
], ids=["none", "dict", "3-tuple", "5-tuple", "array", "str"])
def test_conv_backward_refuses_a_non_cache(api, cache):
    with pytest.raises(TypeError, match=r"cache must be the \(A_prev, W, b, hparameters\)"):
        api.conv_backward(np.zeros((2, 5, 5, 6)), cache)


# ----------------------------------------------------------------------------- pooling

PX = _x((2, 5, 5, 3))

POOL_BAD = [
    ("A_prev_ndim3", PX[0], POOL_HP, ValueError, r"A_prev must be 4-dimensional"),
    ("A_prev_list", PX.tolist(), POOL_HP, TypeError, r"A_prev must be a numpy.ndarray"),
    ("A_prev_int", PX.astype(np.int32), POOL_HP, TypeError, r"A_prev must have a floating dtype"),
    ("A_prev_complex", PX.astype(np.complex64), POOL_HP, TypeError,
     r"A_prev must have a floating dtype"),
    ("A_prev_object", PX.astype(object), POOL_HP, TypeError, r"A_prev must have a floating dtype"),
    ("f_zero", PX, _php(f=0), ValueError, r"\bf\b"),
    ("f_negative", PX, _php(f=-2), ValueError, r"\bf\b"),
    ("f_float", PX, _php(f=2.0), TypeError, r"\bf\b"),
    ("f_pair_zero", PX, _php(f=(2, 0)), ValueError, r"f\[1\]"),
    ("stride_zero", PX, _php(stride=0), ValueError, r"stride"),
    ("stride_float", PX, _php(stride=1.5), TypeError, r"stride"),
    ("dilation_zero", PX, _php(dilation=0), ValueError, r"dilation"),
    ("dilation_float", PX, _php(dilation=2.5), TypeError, r"dilation"),
    ("pad_negative", PX, _php(pad=-1), ValueError, r"pad"),
    ("pad_side_negative", PX, _php(pad=((0, -1), (0, 0))), ValueError, r"pad"),
    ("pad_word", PX, _php(pad="full"), ValueError, r"pad"),
    ("pad_float", PX, _php(pad=0.5), TypeError, r"pad"),
    ("pad_window_all_padding", PX, _php(pad=2), ValueError, r"pad.*entirely in the padding"),
    ("kernel_larger_than_padded", PX, _php(f=6), ValueError,
     r"kernel.*larger than the padded input"),
    ("hparameters_unknown_key", PX, _php(padding=1), ValueError, r"hparameters.*padding"),
    ("hparameters_conv_key", PX, _php(groups=1), ValueError, r"hparameters.*groups"),
    ("hparameters_missing_f", PX, _php(f=_DROP), ValueError, r"hparameters.*\bf\b"),
    ("hparameters_missing_stride", PX, _php(stride=_DROP), ValueError, r"hparameters.*stride"),
    ("hparameters_not_dict", PX, None, TypeError, r"hparameters"),
    ("ceil_mode_int", PX, _php(ceil_mode=1), TypeError, r"ceil_mode"),
    ("ceil_mode_str", PX, _php(ceil_mode="yes"), TypeError, r"ceil_mode"),
]
POOL_AVG_BAD = [
    ("count_include_pad_int", PX, _php(count_include_pad=0), TypeError, r"count_include_pad"),
    ("divisor_override_zero", PX, _php(divisor_override=0), ValueError, r"divisor_override"),
    ("divisor_override_float", PX, _php(divisor_override=2.0), TypeError, r"divisor_override"),
]


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("A_prev, hp, exc, match", [c[1:] for c in POOL_BAD],
                         ids=[c[0] for c in POOL_BAD])
def test_pool_forward_refuses(api, mode, A_prev, hp, exc, match):
    with pytest.raises(exc, match=match):
        api.pool_forward(A_prev, hp, mode)


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("A_prev, hp, exc, match", [c[1:] for c in POOL_AVG_BAD],
                         ids=[c[0] for c in POOL_AVG_BAD])
def test_avg_pool_forward_refuses(api, A_prev, hp, exc, match):
    with pytest.raises(exc, match=match):
        api.pool_forward(A_prev, hp, "average")


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("A_prev, hp, exc, match", [c[1:] for c in POOL_BAD],
                         ids=[c[0] for c in POOL_BAD])
def test_pool_backward_refuses_a_bad_cache_content(api, mode, A_prev, hp, exc, match):
    with pytest.raises(exc, match=match):
        api.pool_backward(np.zeros((2, 2, 2, 3)), (A_prev, hp), mode)


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("mode", ["min", "MAX", "avg", "", None, 0],
                         ids=["min", "MAX", "avg", "empty", "none", "zero"])
def test_pool_refuses_an_unknown_mode(api, mode):
    with pytest.raises(ValueError, match=r"mode must be \"max\" or \"average\""):
        api.pool_forward(PX, POOL_HP, mode)
    A, cache = refcnn.pool_forward(PX, POOL_HP)
    with pytest.raises(ValueError, match=r"mode must be \"max\" or \"average\""):
        api.pool_backward(A, cache, mode)


POOL_BACKWARD_BAD = [
    ("dA_shape", lambda a: a[:, :1], ValueError, r"dA must have the forward output's shape"),
    ("dA_channels", lambda a: a[..., :2], ValueError, r"dA must have the forward output's shape"),
    ("dA_ndim3", lambda a: a[0], ValueError, r"dA must be 4-dimensional"),
    ("dA_int", lambda a: a.astype(np.int64), TypeError, r"dA must have a floating dtype"),
    ("dA_object", lambda a: a.astype(object), TypeError, r"dA must have a floating dtype"),
]


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("bad, exc, match", [c[1:] for c in POOL_BACKWARD_BAD],
                         ids=[c[0] for c in POOL_BACKWARD_BAD])
def test_pool_backward_refuses_dA(api, mode, bad, exc, match):
    A, cache = refcnn.pool_forward(PX, POOL_HP, mode)
    with pytest.raises(exc, match=match):
        api.pool_backward(bad(A), cache, mode)


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("cache", [None, (PX,), (PX, POOL_HP, "max"), PX, {"A_prev": PX}],
                         ids=["none", "1-tuple", "3-tuple", "array", "dict"])
def test_pool_backward_refuses_a_non_cache(api, cache):
    with pytest.raises(TypeError, match=r"cache must be the \(A_prev, hparameters\)"):
        api.pool_backward(np.zeros((2, 2, 2, 3)), cache)


# ----------------------------------------------------------------------------- single steps

STEP_BAD = [
    ("zero_pad_ndim3", lambda m: m.zero_pad(X[0], 1), ValueError, r"X must be 4-dimensional"),
    ("zero_pad_int", lambda m: m.zero_pad(X.astype(int), 1), TypeError, r"X must have a floating"),
    ("zero_pad_list", lambda m: m.zero_pad(X.tolist(), 1), TypeError, r"X must be a numpy"),
    ("zero_pad_negative", lambda m: m.zero_pad(X, -1), ValueError, r"pad"),
    ("zero_pad_float", lambda m: m.zero_pad(X, 1.5), TypeError, r"pad"),
    ("zero_pad_word", lambda m: m.zero_pad(X, "same"), ValueError, r"pad"),
    ("zero_pad_side_negative", lambda m: m.zero_pad(X, ((1, 1), (0, -2))), ValueError, r"pad"),
    ("single_step_shapes", lambda m: m.conv_single_step(W[..., 0], W[:2, :, :, 0], B[..., :1]),
     ValueError, r"a_slice_prev and W must have the same shape"),
    ("single_step_bias_size", lambda m: m.conv_single_step(W[..., 0], W[..., 1], B),
     ValueError, r"b must hold exactly one value"),
    ("single_step_int_slice", lambda m: m.conv_single_step(W[..., 0].astype(int), W[..., 1],
                                                           B[..., :1]),
     TypeError, r"a_slice_prev must have a floating dtype"),
    ("single_step_complex_W", lambda m: m.conv_single_step(W[..., 0], W[..., 1].astype(complex),
                                                           B[..., :1]),
     TypeError, r"W must have a floating dtype"),
    ("single_step_int_b", lambda m: m.conv_single_step(W[..., 0], W[..., 1],
                                                       np.ones((1, 1, 1), int)),
     TypeError, r"b must have a floating dtype"),
    ("mask_int", lambda m: m.create_mask_from_window(np.eye(2, dtype=int)), TypeError,
     r"x must have a floating dtype"),
    ("mask_list", lambda m: m.create_mask_from_window([[1.0, 2.0]]), TypeError,
     r"x must be a numpy"),
    ("mask_empty", lambda m: m.create_mask_from_window(np.zeros((0, 2))), ValueError,
     r"x must not be empty"),
    ("distribute_dz_str", lambda m: m.distribute_value("2", (2, 2)), TypeError, r"dz"),
    ("distribute_dz_complex", lambda m: m.distribute_value(1j, (2, 2)), TypeError, r"dz"),
    ("distribute_dz_bool", lambda m: m.distribute_value(True, (2, 2)), TypeError, r"dz"),
    ("distribute_dz_vector", lambda m: m.distribute_value(np.ones(2), (2, 2)), TypeError, r"dz"),
    ("distribute_shape_1d", lambda m: m.distribute_value(1.0, (4,)), ValueError, r"shape"),
    ("distribute_shape_int", lambda m: m.distribute_value(1.0, 4), ValueError, r"shape"),
    ("distribute_shape_zero", lambda m: m.distribute_value(1.0, (0, 2)), ValueError,
     r"shape\[0\]"),
    ("distribute_shape_float", lambda m: m.distribute_value(1.0, (2, 1.5)), TypeError,
     r"shape\[1\]"),
]


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("call, exc, match", [c[1:] for c in STEP_BAD],
                         ids=[c[0] for c in STEP_BAD])
def test_single_step_helpers_refuse(api, call, exc, match):
    with pytest.raises(exc, match=match):
        call(api)


# ----------------------------------------------------------------------------- functional core

CX, CW, CB = X, W, B.reshape(-1)

CORE_BAD = [
    ("conv2d_x_ndim", lambda: refcnn.conv2d(CX[0], CW, CB), ValueError, r"\bx must be 4-dim"),
    ("conv2d_x_int", lambda: refcnn.conv2d(CX.astype(int), CW, CB), TypeError,
     r"\bx must have a floating"),
    ("conv2d_w_channels", lambda: refcnn.conv2d(CX, CW[:, :, :2], CB), ValueError,
     r"\bw must have shape"),
    ("conv2d_b_channels", lambda: refcnn.conv2d(CX, CW, CB[:3]), ValueError,
     r"\bb must have shape"),
    ("conv2d_padding_negative", lambda: refcnn.conv2d(CX, CW, padding=-1), ValueError,
     r"padding"),
    ("conv2d_padding_word", lambda: refcnn.conv2d(CX, CW, padding="full"), ValueError,
     r"padding"),
    ("conv2d_stride_zero", lambda: refcnn.conv2d(CX, CW, stride=0), ValueError, r"stride"),
    ("conv2d_dilation_float", lambda: refcnn.conv2d(CX, CW, dilation=1.5), TypeError,
     r"dilation"),
    ("conv2d_groups", lambda: refcnn.conv2d(CX, CW, groups=5), ValueError, r"groups"),
    ("conv2d_accumulate", lambda: refcnn.conv2d(CX, CW, accumulate="float32"), ValueError,
     r"accumulate"),
    ("conv2d_too_large", lambda: refcnn.conv2d(CX, _x((6, 6, 4, 1))), ValueError,
     r"larger than the padded input"),
    ("conv2d_backward_dy_shape", lambda: refcnn.conv2d_backward(np.zeros((2, 3, 3, 5)), CX, CW),
     ValueError, r"\bdy must have the forward output's shape"),
    ("conv2d_backward_dy_int",
     lambda: refcnn.conv2d_backward(np.zeros((2, 3, 3, 6), int), CX, CW), TypeError,
     r"\bdy must have a floating"),
    ("conv2d_backward_accumulate",
     lambda: refcnn.conv2d_backward(np.zeros((2, 3, 3, 6)), CX, CW, accumulate="fast"),
     ValueError, r"accumulate"),
    ("max_pool2d_x_ndim", lambda: refcnn.max_pool2d(PX[0], 2), ValueError, r"\bx must be 4-dim"),
    ("max_pool2d_x_complex", lambda: refcnn.max_pool2d(PX.astype(complex), 2), TypeError,
     r"\bx must have a floating"),
    ("max_pool2d_stride_zero", lambda: refcnn.max_pool2d(PX, 2, stride=0), ValueError,
     r"stride"),
    ("max_pool2d_ceil_mode", lambda: refcnn.max_pool2d(PX, 2, ceil_mode=None), TypeError,
     r"ceil_mode"),
    ("avg_pool2d_count_include_pad", lambda: refcnn.avg_pool2d(PX, 2, count_include_pad="no"),
     TypeError, r"count_include_pad"),
    ("avg_pool2d_divisor_override", lambda: refcnn.avg_pool2d(PX, 2, divisor_override=-1),
     ValueError, r"divisor_override"),
    ("max_pool2d_backward_dy", lambda: refcnn.max_pool2d_backward(np.zeros((2, 3, 3, 3)), PX, 2),
     ValueError, r"\bdy must have the forward output's shape"),
    ("avg_pool2d_backward_dy", lambda: refcnn.avg_pool2d_backward(np.zeros((2, 2, 2, 3), int),
                                                                 PX, 2),
     TypeError, r"\bdy must have a floating"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in CORE_BAD],
                         ids=[c[0] for c in CORE_BAD])
def test_functional_core_refuses(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


POOL_CORE_NAMES = [
    ("max_kernel_size_zero", lambda: refcnn.max_pool2d(PX, 0), ValueError, r"kernel_size"),
    ("avg_kernel_size_float", lambda: refcnn.avg_pool2d(PX, 2.0), TypeError, r"kernel_size"),
    ("max_backward_kernel_size", lambda: refcnn.max_pool2d_backward(PX, PX, (1, 0)), ValueError,
     r"kernel_size"),
    ("max_padding_negative", lambda: refcnn.max_pool2d(PX, 2, padding=-1), ValueError,
     r"padding"),
    ("avg_padding_word", lambda: refcnn.avg_pool2d(PX, 2, padding="full"), ValueError,
     r"padding"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in POOL_CORE_NAMES],
                         ids=[c[0] for c in POOL_CORE_NAMES])
def test_pool_core_messages_name_its_own_parameters(call, exc, match):
    """max_pool2d/avg_pool2d take ``kernel_size`` and ``padding``: the message must say so
    (the notebook API's names are ``f`` and ``pad``)."""
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("mode", ["max", "average"])
def test_pool_refuses_a_middle_window_all_padding(api, mode):
    """With dilation a window between the first and the last can hold only padding:
    W=1, pad 3 each side, f=2, dilation 3 -> windows tap (0,3) (1,4) (2,5) (3,6) of a
    padded row whose only real cell is 3. Windows 1 and 2 have no input to pool."""
    x = np.array([5.0]).reshape(1, 1, 1, 1)
    hp = {"f": (1, 2), "stride": 1, "pad": ((0, 0), (3, 3)), "dilation": (1, 3)}
    with pytest.raises(ValueError, match=r"pad.*entirely in the padding"):
        api.pool_forward(x, hp, mode)
    with pytest.raises(ValueError, match=r"pad.*entirely in the padding"):
        api.pool_backward(np.ones((1, 1, 4, 1)), (x, hp), mode)
