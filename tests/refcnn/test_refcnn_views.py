"""Every memory layout a caller can hand in gives the result of a contiguous copy, bit for bit.

The fast path once built its patch view from the caller's strides, and NumPy
records any stride at all for an axis of length 1 while calling the array
C-contiguous: a grayscale NCHW batch transposed to NHWC read past the end of
its buffer (values like 6.7e248 instead of 9.0). Here every fast-path function
(the functional core, forward and backward, and the notebook API over it) is
fed each input as a transposed NCHW view, with wild strides on its length-1
axes, with negative strides, in Fortran order, as a non-contiguous slice, as a
read-only array and in an unaligned buffer, and must return exactly what it
returns for ``np.ascontiguousarray`` copies, leave its inputs unchanged and
share no memory with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import refcnn
from refcnn_helpers import rng

# ----------------------------------------------------------------------------- layouts


def nchw_view(a):
    """``a``'s values as the NHWC transpose of a fresh NCHW buffer (with one channel,
    NumPy calls it C-contiguous while its channel stride is the size of an image)."""
    return np.moveaxis(a, -1, 1).copy().transpose(0, 2, 3, 1) if a.ndim == 4 else a.copy()


def odd_unit_strides(a):
    """``a`` with an arbitrary stride on every length-1 axis (NumPy still calls it
    C-contiguous), as ``transpose`` or ``reshape`` may leave one."""
    a = a.copy()
    strides = tuple(s if n != 1 else 7919 * a.itemsize for n, s in zip(a.shape, a.strides))
    return as_strided(a, a.shape, strides, writeable=False)


def negative_strides(a):
    flip = (slice(None, None, -1),) * a.ndim
    return a[flip].copy()[flip]


def fortran(a):
    return np.asfortranarray(a)


def sliced(a):
    """A non-contiguous slice of a larger buffer (every other element on every axis,
    offset by one), the other cells NaN so that a read off the slice shows."""
    big = np.full(tuple(2 * n + 1 for n in a.shape), np.nan, a.dtype)
    sl = tuple(slice(1, 1 + 2 * n, 2) for n in a.shape)
    big[sl] = a
    return big[sl]


def read_only(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def unaligned(a):
    """``a`` in a buffer one byte off the dtype's alignment."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    out = raw[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned or a.itemsize == 1
    return out


LAYOUTS = {f.__name__: f for f in (nchw_view, odd_unit_strides, negative_strides, fortran,
                                   sliced, read_only, unaligned)}


# ----------------------------------------------------------------------------- calls

@dataclass(frozen=True)
class Call:
    """One fast-path call: the input shapes it takes (by role) and how to run it."""

    name: str
    shapes: Callable[[bool], dict]   # single-channel? -> {role: shape}
    run: Callable[[dict], object]
    multi_only: bool = False          # needs more than one channel (groups, depthwise)


def _conv_shapes(f, groups=1, depthwise=False):
    def shapes(single):
        n, c = (1, 1) if single else (2, 4)
        c_out = c if depthwise else (1 if single else 6)
        g = c if depthwise else groups
        return {"x": (n, 7, 6, c), "w": (f, f, c // g, c_out), "b": (1, 1, 1, c_out)}
    return shapes


def _with_dy(shapes, forward):
    def with_dy(single):
        s = shapes(single)
        y = forward({r: np.zeros(shape) for r, shape in s.items()})
        y = y[0] if isinstance(y, tuple) else y
        return {**s, "dy": y.shape}
    return with_dy


def _conv_calls(tag, f, opts, groups=1, depthwise=False):
    shapes = _conv_shapes(f, groups, depthwise)
    opts = dict(opts, groups=shapes(False)["x"][3] if depthwise else groups)

    def acc(a):
        return "native" if a["x"].dtype == np.float32 else "float64"

    def fwd(a):
        return refcnn.conv2d(a["x"], a["w"], a["b"].reshape(-1), accumulate=acc(a), **opts)

    def bwd(a):
        return refcnn.conv2d_backward(a["dy"], a["x"], a["w"], a["b"].reshape(-1),
                                      accumulate=acc(a), **opts)

    multi = groups > 1 or depthwise
    return [Call(f"conv2d-{tag}", shapes, fwd, multi),
            Call(f"conv2d_backward-{tag}", _with_dy(shapes, fwd), bwd, multi)]


def _pool_shapes(single):
    return {"x": (1, 7, 6, 1) if single else (2, 7, 6, 3)}


def _pool_calls(tag, mode, opts):
    fwd_fn, bwd_fn = ((refcnn.max_pool2d, refcnn.max_pool2d_backward) if mode == "max"
                      else (refcnn.avg_pool2d, refcnn.avg_pool2d_backward))

    def fwd(a):
        return fwd_fn(a["x"], **opts)

    def bwd(a):
        return bwd_fn(a["dy"], a["x"], **opts)

    return [Call(f"{fwd_fn.__name__}-{tag}", _pool_shapes, fwd),
            Call(f"{bwd_fn.__name__}-{tag}", _with_dy(_pool_shapes, fwd), bwd)]


def _notebook_calls(tag, f, hp):
    shapes = _conv_shapes(f)

    def fwd(a):
        return refcnn.conv_forward(a["x"], a["w"], a["b"], hp)[0]

    def bwd(a):
        return refcnn.conv_backward(a["dy"], (a["x"], a["w"], a["b"], hp))

    return [Call(f"conv_forward-{tag}", shapes, fwd),
            Call(f"conv_backward-{tag}", _with_dy(shapes, fwd), bwd)]


def _notebook_pool_calls(mode, hp):
    def fwd(a):
        return refcnn.pool_forward(a["x"], hp, mode)[0]

    def bwd(a):
        return refcnn.pool_backward(a["dy"], (a["x"], hp), mode)

    return [Call(f"pool_forward-{mode}", _pool_shapes, fwd),
            Call(f"pool_backward-{mode}", _with_dy(_pool_shapes, fwd), bwd)]


CALLS = [
    # Unpadded convs read x (and, for the stride-1 gradient, dy) in place: the bug's path.
    *_conv_calls("f1", 1, {}),
    *_conv_calls("f3", 3, {}),
    *_conv_calls("f3_pad1", 3, {"padding": 1}),
    *_conv_calls("f3_s2_d2_same", 3, {"stride": 2, "dilation": 2, "padding": "same"}),
    *_conv_calls("f3_s2_pad1", 3, {"stride": 2, "padding": 1}),
    *_conv_calls("f3_groups2", 3, {"padding": 1}, groups=2),
    *_conv_calls("depthwise_f3", 3, {}, depthwise=True),
    *_conv_calls("depthwise_f3_s2_pad1", 3, {"stride": 2, "padding": 1}, depthwise=True),
    *_pool_calls("f3_s2_pad1", "max", {"kernel_size": 3, "stride": 2, "padding": 1}),
    *_pool_calls("f2_ceil", "max", {"kernel_size": 2, "ceil_mode": True}),
    *_pool_calls("f3_s1_pad1_nopad", "avg", {"kernel_size": 3, "stride": 1, "padding": 1,
                                              "count_include_pad": False}),
    *_pool_calls("f2_tiles", "avg", {"kernel_size": 2, "stride": 2}),
    *_pool_calls("f3_s1", "avg", {"kernel_size": 3, "stride": 1}),
    *_notebook_calls("f3_s1_pad0", 3, {"stride": 1, "pad": 0}),
    *_notebook_calls("f3_s2_pad1", 3, {"stride": 2, "pad": 1}),
    *_notebook_pool_calls("max", {"f": 3, "stride": 2, "pad": 1}),
    *_notebook_pool_calls("average", {"f": 2, "stride": 1}),
]

DTYPES = {"f64": np.float64, "f32": np.float32, "f16": np.float16}


def _params():
    for call in CALLS:
        for channels in ("c1", "multi"):
            if call.multi_only and channels == "c1":
                continue
            for layout in LAYOUTS:
                for dt in DTYPES:
                    yield pytest.param(call, channels == "c1", layout, DTYPES[dt],
                                       id=f"{call.name}-{channels}-{layout}-{dt}")


def _outputs(result):
    return result if isinstance(result, tuple) else (result,)


def _inputs(call, single, dtype):
    g = rng("views", call.name, single, np.dtype(dtype).name)
    return {role: g.standard_normal(shape).astype(dtype)
            for role, shape in call.shapes(single).items()}


@pytest.mark.parametrize("call, single, layout, dtype", list(_params()))
def test_any_layout_gives_the_contiguous_result_bit_for_bit(call, single, layout, dtype):
    arrays = _inputs(call, single, dtype)
    want = _outputs(call.run({r: np.ascontiguousarray(a) for r, a in arrays.items()}))
    views = {r: LAYOUTS[layout](a) for r, a in arrays.items()}
    for r, v in views.items():
        assert np.array_equal(v, arrays[r]), f"the {layout} layout changed {r}'s values"
    before = {r: v.copy() for r, v in views.items()}
    got = _outputs(call.run(views))
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        what = f"{call.name} output {i} with {layout} inputs"
        assert g.shape == w.shape and g.dtype == w.dtype, \
            f"{what}: {g.shape} {g.dtype}, contiguous {w.shape} {w.dtype}"
        if g.tobytes() != w.tobytes():
            bad = np.flatnonzero(np.ascontiguousarray(g).view(np.uint8).reshape(g.size, -1)
                                 != np.ascontiguousarray(w).view(np.uint8).reshape(w.size, -1))
            pytest.fail(f"{what} differs from the contiguous result at {bad.size} bytes, "
                        f"e.g. {g.ravel()[bad[0] // g.itemsize]!r} vs "
                        f"{w.ravel()[bad[0] // w.itemsize]!r}")
        for r, v in views.items():
            assert not np.may_share_memory(g, v), f"{what} shares memory with input {r}"
    for r, v in views.items():
        assert np.array_equal(v, before[r]), f"{call.name} changed its input {r}"


def test_transposed_grayscale_batch_issue_example():
    """The report's example: a single-channel NCHW batch transposed to NHWC."""
    x = np.ones((1, 1, 5, 5)).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(refcnn.conv2d(x, np.ones((3, 3, 1, 1))), np.full((1, 3, 3, 1), 9.0))


def test_large_transposed_grayscale_image_reads_only_its_buffer():
    """The report's crash: on a large image the bad gather ran off the mapped memory.
    Values must be exact sums of the image's own cells."""
    x = np.arange(512 * 512, dtype=np.float64).reshape(1, 1, 512, 512) % 7
    got = refcnn.conv2d(x.transpose(0, 2, 3, 1), np.ones((3, 3, 1, 1)))
    want = refcnn.conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ones((3, 3, 1, 1)))
    assert got.tobytes() == want.tobytes()
    assert got.max() <= 9 * 6
