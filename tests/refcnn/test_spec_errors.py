"""refcnn.functional refuses every malformed argument with a TypeError (wrong kind) or a
ValueError (wrong value) whose message names the parameter; refusals depend on sizes
only, so absurd sizes are refused at once instead of being allocated.
"""

from __future__ import annotations

import numpy as np
import pytest

from refcnn import functional as F

X = np.zeros((2, 5, 6, 4))
W = np.zeros((3, 2, 2, 6))  # groups=2 for X
WT = np.zeros((3, 2, 3, 4))  # conv_transpose: (*k, C_out // groups, C_in)
B = np.zeros(6)
Y = F.conv(X, W, B, groups=2)
YT = F.conv_transpose(X, WT, np.zeros(6), groups=2)
P = F.max_pool(X, 2)


def _conv(**kw):
    return lambda: F.conv(X, W, B, **{"groups": 2, **kw})


def _tconv(**kw):
    return lambda: F.conv_transpose(X, WT, None, **{"groups": 2, **kw})


def _max(**kw):
    return lambda: F.max_pool(X, 2, **kw)


def _avg(**kw):
    return lambda: F.avg_pool(X, 2, **kw)


BAD = [
    # x, w, b
    ("x_list", lambda: F.conv(X.tolist(), W, B, groups=2), TypeError, r"^x must be a numpy"),
    ("x_int", lambda: F.max_pool(X.astype(int), 2), TypeError, r"^x must have a floating"),
    ("x_2d", lambda: F.max_pool(X[0, 0], 2), ValueError, r"^x must have shape"),
    ("x_6d", lambda: F.adaptive_avg_pool(X[None, None], 1), ValueError, r"^x must have shape"),
    ("w_rank", lambda: F.conv(X, W[0], B, groups=2), ValueError, r"^w must be 4-dimensional"),
    ("w_empty_kernel", lambda: F.conv(X, W[:0], B, groups=2), ValueError, r"^w must have a"),
    ("w_channels", lambda: F.conv(X, W[:, :, :1], B, groups=2), ValueError,
     r"^w must have shape"),
    ("w_complex", lambda: F.conv(X, W.astype(complex), B, groups=2), TypeError, r"^w must"),
    ("b_shape", lambda: F.conv(X, W, B[:5], groups=2), ValueError, r"^b must have shape"),
    ("b_2d_shape", lambda: F.conv(X, W, B.reshape(1, 6), groups=2), ValueError, r"^b must"),
    ("b_scalar", lambda: F.conv(X, W, 0.5, groups=2), TypeError, r"^b must be a numpy"),
    ("tw_channels", lambda: F.conv_transpose(X, WT[..., :3], groups=2), ValueError,
     r"^w must have shape"),
    ("tb_shape", lambda: F.conv_transpose(X, WT, B[:4], groups=2), ValueError, r"^b must"),
    # groups
    ("groups_zero", _conv(groups=0), ValueError, r"^groups"),
    ("groups_float", _conv(groups=2.0), TypeError, r"^groups"),
    ("groups_not_dividing", lambda: F.conv(X, np.zeros((3, 2, 1, 6)), groups=3), ValueError,
     r"groups=3 must divide"),
    ("tgroups_not_dividing", lambda: F.conv_transpose(X, np.zeros((1, 1, 1, 4)), groups=3),
     ValueError, r"groups=3 must divide"),
    # stride, dilation
    ("stride_zero", _conv(stride=0), ValueError, r"^stride must be an integer >= 1"),
    ("stride_bool", _conv(stride=True), TypeError, r"^stride"),
    ("stride_float", _max(stride=1.5), TypeError, r"^stride"),
    ("stride_str", _tconv(stride="2"), TypeError, r"^stride"),
    ("stride_length", _conv(stride=(1, 1, 1)), ValueError, r"^stride must be an int or a "
     r"sequence of 2 ints"),
    ("stride_entry", _avg(stride=(1, 0)), ValueError, r"^stride\[1\]"),
    ("dilation_zero", _conv(dilation=0), ValueError, r"^dilation"),
    ("dilation_entry", _max(dilation=(1, -1)), ValueError, r"^dilation\[1\]"),
    ("dilation_none", _tconv(dilation=None), TypeError, r"^dilation"),
    # padding
    ("padding_negative", _conv(padding=-1), ValueError, r"^padding"),
    ("padding_float", _max(padding=0.5), TypeError, r"^padding"),
    ("padding_none", _avg(padding=None), TypeError, r"^padding"),
    ("padding_length", _conv(padding=(1, 1, 1)), ValueError, r"^padding must be"),
    ("padding_side_length", _conv(padding=((1, 1, 1), 0)), ValueError, r"^padding\[0\]"),
    ("padding_side_negative", _max(padding=((0, 1), (-1, 0))), ValueError,
     r"^padding\[1\] \(before\)"),
    ("padding_word", _conv(padding="full"), ValueError, r"^padding must be .*'same_lower'"),
    ("padding_word_transpose", _tconv(padding="same"), ValueError, r"^padding must be"),
    ("padding_too_large_pool", _max(padding=5), ValueError,
     r"^padding .* lies entirely in the padding"),
    ("padding_middle_window_in_gap", lambda: F.max_pool(np.zeros((1, 1, 1)), 2, stride=1,
                                                        padding=4, dilation=4),
     ValueError, r"^padding .* window 1 along spatial axis 0"),
    ("kernel_larger", _conv(dilation=(3, 1)), ValueError, r"kernel .* larger than the padded"),
    ("pool_kernel_larger", lambda: F.avg_pool(X, (6, 1)), ValueError, r"larger than the padded"),
    ("transpose_no_output", _tconv(padding=((4, 4), 0)), ValueError,
     r"^padding .* leaves no output"),
    # output_padding
    ("output_padding_stride", _tconv(output_padding=1), ValueError,
     r"^output_padding must be smaller than max\(stride, dilation\)"),
    ("output_padding_axis", _tconv(stride=2, output_padding=(1, 2)), ValueError,
     r"^output_padding"),
    ("output_padding_negative", _tconv(output_padding=-1), ValueError, r"^output_padding"),
    ("output_padding_float", _tconv(output_padding=0.0), TypeError, r"^output_padding"),
    # pooling options
    ("kernel_size_zero", lambda: F.max_pool(X, 0), ValueError, r"^kernel_size"),
    ("kernel_size_length", lambda: F.avg_pool(X, (2, 2, 2)), ValueError, r"^kernel_size"),
    ("kernel_size_none", lambda: F.max_pool(X, None), TypeError, r"^kernel_size"),
    ("ceil_mode_int", _max(ceil_mode=1), TypeError, r"^ceil_mode must be True or False"),
    ("count_include_pad_str", _avg(count_include_pad="yes"), TypeError, r"^count_include_pad"),
    ("divisor_override_zero", _avg(divisor_override=0), ValueError, r"^divisor_override"),
    ("divisor_override_float", _avg(divisor_override=2.5), TypeError, r"^divisor_override"),
    ("return_indices_int", _max(return_indices=1), TypeError, r"^return_indices"),
    ("adaptive_return_indices", lambda: F.adaptive_max_pool(X, 2, return_indices="no"),
     TypeError, r"^return_indices"),
    ("output_size_negative", lambda: F.adaptive_avg_pool(X, -1), ValueError, r"^output_size"),
    ("output_size_length", lambda: F.adaptive_max_pool(X, (2, 2, 2)), ValueError,
     r"^output_size must be an int or a sequence of 2"),
    ("output_size_entry", lambda: F.adaptive_avg_pool(X, (2, 1.5)), TypeError,
     r"^output_size\[1\]"),
    ("output_size_none", lambda: F.adaptive_avg_pool(X, None), TypeError, r"^output_size"),
    ("adaptive_empty_axis", lambda: F.adaptive_avg_pool(X[:, :0], 1), ValueError, r"^x must"),
    # dy
    ("dy_shape", lambda: F.conv_backward(Y[:, :1], X, W, B, groups=2), ValueError,
     r"^dy must have the forward output's shape"),
    ("dy_dtype", lambda: F.conv_transpose_backward(YT.astype(int), X, WT, groups=2), TypeError,
     r"^dy must have a floating"),
    ("dy_pool", lambda: F.max_pool_backward(P[..., :1], X, 2), ValueError, r"^dy"),
    ("dy_avg", lambda: F.avg_pool_backward(P.tolist(), X, 2), TypeError, r"^dy"),
    ("dy_adaptive", lambda: F.adaptive_avg_pool_backward(P, X, 2), ValueError, r"^dy"),
    ("dy_adaptive_max", lambda: F.adaptive_max_pool_backward(P, X, (2, 2)), ValueError, r"^dy"),
    # keyword-only options
    ("conv_positional_stride", lambda: F.conv(X, W, B, 2), TypeError, r"positional"),
    ("pool_positional_stride", lambda: F.max_pool(X, 2, 2), TypeError, r"positional"),
]


@pytest.mark.parametrize("call, error, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_argument_is_refused_naming_it(call, error, message):
    with pytest.raises(error, match=message):
        call()


HUGE = 10**15


@pytest.mark.parametrize("call", [
    lambda: F.max_pool(X, 2, padding=HUGE),
    lambda: F.avg_pool(X, 3, stride=1, padding=((0, HUGE), 0)),
    lambda: F.max_pool(X, 2, dilation=HUGE),
    lambda: F.conv(X, W, groups=2, dilation=HUGE),
    lambda: F.conv_transpose(X, WT, groups=2, padding=HUGE),
    lambda: F.conv_transpose(X, WT, groups=2, stride=HUGE, output_padding=HUGE),
], ids=["pool_padding", "pool_one_side", "pool_dilation", "conv_dilation", "transpose_padding",
        "transpose_output_padding"])
def test_absurd_sizes_are_refused_from_the_sizes_alone(call):
    with pytest.raises(ValueError):
        call()


def test_accepted_forms():
    """Each documented form is accepted, and the equivalent forms agree."""
    x = np.random.default_rng(0).standard_normal((1, 5, 6, 2))
    w = np.random.default_rng(1).standard_normal((3, 2, 2, 3))
    same = [F.conv(x, w, padding=p) for p in (1, (1, 1), [1, (1, 1)], ((1, 1), (1, 1)),
                                              np.int64(1))]
    for y in same[1:]:
        np.testing.assert_array_equal(y, same[0])
    np.testing.assert_array_equal(F.conv(x, w, padding="VALID"), F.conv(x, w))
    np.testing.assert_array_equal(F.conv_transpose(x, w.transpose(0, 1, 3, 2), padding="valid"),
                                  F.conv_transpose(x, w.transpose(0, 1, 3, 2)))
    b = np.arange(3.0)
    _, _, db = F.conv_backward(F.conv(x, w), x, w, b.reshape(1, 1, 1, 3))
    assert db.shape == (1, 1, 1, 3)
    assert F.conv_backward(F.conv(x, w), x, w)[2] is None
    np.testing.assert_array_equal(F.max_pool(x, (2, 3), stride=None), F.max_pool(x, (2, 3),
                                                                                  stride=(2, 3)))
    np.testing.assert_array_equal(
        F.max_pool_backward(F.max_pool(x, 2), x, 2, return_indices=True),
        F.max_pool_backward(F.max_pool(x, 2), x, 2))
    assert F.adaptive_avg_pool(x, (None, 2)).shape == (1, 5, 2, 2)
    assert F.adaptive_max_pool(x, [3, None]).shape == (1, 3, 6, 2)
