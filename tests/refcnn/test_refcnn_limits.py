"""Absurd sizes are refused at once: in constant time, before any allocation, naming the parameter.

A pad of 10**9 once made pooling allocate memory in proportion to the pad
(15 GiB asked for) before refusing it, and W with no output channels failed in
NumPy's reshape. Each call here must raise a ValueError whose message names
the parameter, within ``LIMIT_S`` seconds and with less than ``LIMIT_BYTES``
allocated (NumPy reports its allocations to tracemalloc). Where "larger than
memory" is the reason, the machine's memory is pinned to 1 GiB
(``small_memory``) so that the verdict does not depend on the machine; the
sizes of the unpinned cases exceed any machine's memory. Strides and
dilations too large to matter are not refused: they give what a stride of the
padded length and a dilation of 1 give.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

import refcnn
from refcnn import loops
from refcnn.fast import plan

LIMIT_S = 0.1
LIMIT_BYTES = 2**20

X1 = np.ones((1, 5, 5, 1))          # a small single-channel batch
X = np.arange(2 * 5 * 6 * 3, dtype=np.float64).reshape(2, 5, 6, 3) % 7
W = np.ones((3, 3, 3, 4))


@pytest.fixture
def small_memory(monkeypatch):
    monkeypatch.setattr(plan, "memory_bytes", lambda: 2**30)


def refused(fn, match):
    """Run ``fn``: it must raise a ValueError matching ``match``, fast and without
    allocating."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=match) as info:
            fn()
    finally:
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < LIMIT_S, f"refused after {elapsed:.3f} s: {info.value}"
    assert peak < LIMIT_BYTES, f"allocated {peak} bytes before refusing: {info.value}"
    return str(info.value)


def _pool_calls(x, hp, mode):
    """Every entry point of one pooling call: notebook, loops and the functional core."""
    dy = np.ones((1, 1, 1, 1))
    kw = {"kernel_size": hp["f"], "stride": hp.get("stride"), "padding": hp.get("pad", 0),
          "ceil_mode": hp.get("ceil_mode", False)}
    fwd, bwd = ((refcnn.max_pool2d, refcnn.max_pool2d_backward) if mode == "max"
                else (refcnn.avg_pool2d, refcnn.avg_pool2d_backward))
    return {
        "pool_forward": lambda: refcnn.pool_forward(x, hp, mode),
        "pool_backward": lambda: refcnn.pool_backward(dy, (x, hp), mode),
        "loops.pool_forward": lambda: loops.pool_forward(x, hp, mode),
        "pool2d": lambda: fwd(x, **kw),            # max_pool2d or avg_pool2d
        "pool2d_backward": lambda: bwd(dy, x, **kw),
    }


def _conv_calls(x, w, padding, **kw):
    dy = np.ones((1, 1, 1, 1))
    b = np.zeros((1, 1, 1, w.shape[3]))
    hp = {"stride": kw.get("stride", 1), "pad": padding, "dilation": kw.get("dilation", 1)}
    return {
        "conv_forward": lambda: refcnn.conv_forward(x, w, b, hp),
        "conv_backward": lambda: refcnn.conv_backward(dy, (x, w, b, hp)),
        "loops.conv_forward": lambda: loops.conv_forward(x, w, b, hp),
        "conv2d": lambda: refcnn.conv2d(x, w, padding=padding, **kw),
        "conv2d_backward": lambda: refcnn.conv2d_backward(dy, x, w, padding=padding, **kw),
    }


def _pad_name(entry):
    """The padding parameter's name: ``pad`` in hparameters, ``padding`` in the core."""
    return r"\bpad\b" if entry.startswith(("pool_", "conv_", "loops.")) else r"\bpadding\b"


# ----------------------------------------------------------------------------- pooling pads

POOL_PADS = {
    "pad_1e9": {"f": 2, "stride": 1, "pad": 10**9},
    "pad_1e9_after_only": {"f": 2, "stride": 1, "pad": ((0, 0), (0, 10**9))},
    "pad_1e9_before_only_ceil": {"f": 3, "stride": 2, "pad": ((10**9, 0), (0, 0)),
                                 "ceil_mode": True},
    "pad_1e18_stride_1e9": {"f": 2, "stride": 10**9, "pad": 10**18},
}


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("case", POOL_PADS)
@pytest.mark.parametrize("entry", list(_pool_calls(X1, POOL_PADS["pad_1e9"], "max")))
def test_pool_pad_that_leaves_a_window_in_padding_is_refused_at_once(entry, case, mode):
    call = _pool_calls(X1, POOL_PADS[case], mode)[entry]
    msg = refused(call, _pad_name(entry))
    assert "lies entirely in the padding" in msg


@pytest.mark.parametrize("entry", list(_pool_calls(X1, POOL_PADS["pad_1e9"], "max")))
def test_pool_kernel_of_1e9_is_refused_at_once(entry):
    name = r"\bf\b" if entry.startswith(("pool_", "loops.")) else r"\bkernel_size\b"
    refused(_pool_calls(X1, {"f": 10**9, "stride": 1}, "max")[entry], name)


@pytest.mark.parametrize("entry", list(_pool_calls(X1, POOL_PADS["pad_1e9"], "max")))
def test_pool_kernel_of_1e9_with_same_padding_is_refused_at_once(entry):
    """'same' pads by half the kernel: every window holds the input, but the padded
    input has 10**18 cells."""
    msg = refused(_pool_calls(X1, {"f": 10**9, "stride": 1, "pad": "same"}, "max")[entry],
                  _pad_name(entry))
    assert "memory" in msg


@pytest.mark.usefixtures("small_memory")
@pytest.mark.parametrize("entry", list(_pool_calls(X1, POOL_PADS["pad_1e9"], "max")))
def test_pool_long_kernel_in_room_made_by_padding_is_refused_at_once(entry):
    """A (2*10**8 + 1) x 1 kernel with pads of 10**8: every window holds the input and
    the padded input (1.6 GB) is refused against a 1 GiB memory."""
    hp = {"f": (2 * 10**8 + 1, 1), "stride": 1, "pad": ((10**8, 10**8), (0, 0))}
    refused(_pool_calls(X1, hp, "max")[entry], _pad_name(entry))


@pytest.mark.usefixtures("small_memory")
def test_pool_kernel_whose_tap_tables_exceed_memory_is_refused_at_once():
    """The padded float16 input fits (0.2 GiB) but one 8-byte entry per window and tap
    (5 windows of 10**8 + 1 taps, twice) does not."""
    x = np.ones((1, 5, 1, 1), np.float16)
    hp = {"f": (10**8 + 1, 1), "stride": 1, "pad": "same"}
    msg = refused(lambda: refcnn.pool_forward(x, hp), r"\bf\b")
    assert "memory" in msg


# ----------------------------------------------------------------------------- conv pads and outputs

@pytest.mark.parametrize("entry", list(_conv_calls(X1, np.ones((3, 3, 1, 1)), 0)))
def test_conv_pad_of_1e9_is_refused_at_once(entry):
    """A conv may read padding alone, but an output of 4 * 10**18 pixels fits no memory."""
    msg = refused(_conv_calls(X1, np.ones((3, 3, 1, 1)), 10**9)[entry], _pad_name(entry))
    assert "memory" in msg


@pytest.mark.parametrize("entry", list(_conv_calls(X1, np.ones((3, 3, 1, 1)), 0)))
def test_conv_output_of_1e12_pixels_is_refused_at_once(entry):
    msg = refused(_conv_calls(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), 5 * 10**5)[entry],
                  _pad_name(entry))
    assert "memory" in msg


@pytest.mark.parametrize("entry", list(_conv_calls(X1, np.ones((3, 3, 1, 1)), 0)))
def test_conv_dilation_1e9_with_same_padding_is_refused_at_once(entry):
    msg = refused(_conv_calls(X1, np.ones((3, 3, 1, 1)), "same", dilation=10**9)[entry],
                  _pad_name(entry))
    assert "memory" in msg


@pytest.mark.parametrize("entry", list(_conv_calls(X1, np.ones((3, 3, 1, 1)), 0)))
def test_conv_kernel_of_1e9_is_refused_at_once(entry):
    w = np.broadcast_to(np.ones(1), (10**9, 1, 1, 1))
    refused(_conv_calls(X1, w, 0)[entry], "kernel")


def test_conv_with_1e12_output_channels_is_refused_naming_w():
    w = np.broadcast_to(np.ones(1), (1, 1, 1, 10**12))
    msg = refused(lambda: refcnn.conv2d(X1, w), r"\bw\b")
    assert "memory" in msg


def test_conv_weights_larger_than_memory_are_refused_naming_w():
    """A broadcast view can be larger than memory; the fast path copies the weights."""
    x = np.broadcast_to(np.ones(1), (1, 3, 3, 10**7))
    w = np.broadcast_to(np.ones(1), (3, 3, 10**7, 10**6))
    refused(lambda: refcnn.conv2d(x, w), r"\bw\b")


@pytest.mark.usefixtures("small_memory")
@pytest.mark.parametrize("entry", list(_conv_calls(X1, np.ones((3, 3, 1, 1)), 0)))
def test_conv_padded_input_larger_than_memory_is_refused_at_once(entry):
    """2 * 10**8 rows of padding on a one-column image: 1.6 GB padded, 1 GiB of memory."""
    refused(_conv_calls(X1[:, :, :1], np.ones((1, 1, 1, 1)), ((10**8, 10**8), (0, 0)))[entry],
            _pad_name(entry))


@pytest.mark.usefixtures("small_memory")
@pytest.mark.parametrize("workspace_bytes", [None, 1], ids=["default_blocks", "row_blocks"])
def test_padding_far_wider_than_the_input_fits_and_computes(workspace_bytes):
    """Not refused, and right: blocks lying wholly in the top padding once sliced the
    input with a negative end (ValueError: could not broadcast)."""
    x = np.arange(2 * 20 * 20 * 2, dtype=np.float64).reshape(2, 20, 20, 2) % 5
    w = np.arange(3 * 3 * 2 * 3, dtype=np.float64).reshape(3, 3, 2, 3) % 4
    pads = ((300, 7), (3, 300))
    got = refcnn.conv2d(x, w, padding=pads, workspace_bytes=workspace_bytes)
    want = refcnn.conv2d(np.pad(x, ((0, 0), *pads, (0, 0))), w,
                         workspace_bytes=workspace_bytes)
    np.testing.assert_array_equal(got, want)
    assert refcnn.max_pool2d(x, 3, stride=1, padding=1).shape == x.shape


# ----------------------------------------------------------------------------- no output channels

@pytest.mark.parametrize("module", [refcnn, loops], ids=["fast", "loops"])
def test_conv_forward_with_zero_output_channels_names_W(module):
    w, b = np.ones((3, 3, 1, 0)), np.ones((1, 1, 1, 0))
    msg = refused(lambda: module.conv_forward(X1, w, b, {"stride": 1, "pad": 0}), r"\bW\b")
    assert "output channel" in msg


def test_conv2d_and_backward_with_zero_output_channels_name_w():
    w = np.ones((3, 3, 1, 0))
    refused(lambda: refcnn.conv2d(X1, w), r"\bw\b.*output channel")
    refused(lambda: refcnn.conv2d_backward(np.ones((1, 3, 3, 0)), X1, w),
            r"\bw\b.*output channel")


# ----------------------------------------------------------------------------- steps too large to matter

@pytest.mark.parametrize("stride", [10**18, 10**30], ids=["1e18", "1e30"])
def test_a_stride_past_the_input_reads_one_window(stride):
    """One window whatever the stride: the result of a stride of the padded length."""
    dy = np.arange(4.0).reshape(1, 1, 1, 4)
    w = np.ones((3, 3, 3, 4))
    assert np.array_equal(refcnn.conv2d(X, w, stride=stride), refcnn.conv2d(X, w, stride=6))
    for got, want in zip(refcnn.conv2d_backward(np.ones((2, 1, 1, 4)), X, w, stride=stride),
                         refcnn.conv2d_backward(np.ones((2, 1, 1, 4)), X, w, stride=6)):
        assert np.array_equal(got, want)
    for fwd, bwd in ((refcnn.max_pool2d, refcnn.max_pool2d_backward),
                     (refcnn.avg_pool2d, refcnn.avg_pool2d_backward)):
        assert np.array_equal(fwd(X, 2, stride=stride), fwd(X, 2, stride=6))
        assert np.array_equal(bwd(dy[:, :, :, :3].repeat(2, 0), X, 2, stride=stride),
                              bwd(dy[:, :, :, :3].repeat(2, 0), X, 2, stride=6))


def test_a_dilation_of_a_one_tap_kernel_changes_nothing():
    w1 = np.arange(12.0).reshape(1, 1, 3, 4)
    assert np.array_equal(refcnn.conv2d(X, w1, dilation=10**18), refcnn.conv2d(X, w1))
    dy = np.ones((2, 5, 6, 3))
    wd = np.arange(3.0).reshape(1, 1, 1, 3)
    for got, want in zip(refcnn.conv2d_backward(dy, X, wd, groups=3, dilation=10**18),
                         refcnn.conv2d_backward(dy, X, wd, groups=3)):
        assert np.array_equal(got, want)
    assert np.array_equal(refcnn.max_pool2d_backward(dy, X, 1, dilation=10**18),
                          refcnn.max_pool2d_backward(dy, X, 1))
