"""refcnn.functional leaves its callers' arrays alone, gives the same result whatever the
inputs' strides (views, transposes, negative strides, read-only arrays), returns the
inputs' promoted floating dtype, and handles empty batches.
"""

from __future__ import annotations

import numpy as np
import pytest

from refcnn import functional as F


def _calls(rng, rank, dtype=np.float64, n=2):
    """Every public function once, as (name, args, kwargs), for one rank."""
    size = (5, 6, 4)[:rank]
    x = rng.standard_normal((n, *size, 4)).astype(dtype)
    w = rng.standard_normal((*(3, 2, 2)[:rank], 2, 6)).astype(dtype)
    wt = rng.standard_normal((*(3, 2, 2)[:rank], 3, 4)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    conv_kw = {"stride": 2, "padding": "same", "dilation": 1, "groups": 2}
    tconv_kw = {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}
    pool_kw = {"stride": 2, "padding": 1, "ceil_mode": True}
    avg_kw = dict(pool_kw, count_include_pad=False)
    y = F.conv(x, w, b, **conv_kw)
    yt = F.conv_transpose(x, wt, b, **tconv_kw)
    p = F.max_pool(x, 3, **pool_kw)
    a = F.adaptive_max_pool(x, 3)

    def g(shape):
        return rng.standard_normal(shape).astype(dtype)

    return [
        ("conv", (x, w, b), conv_kw),
        ("conv_backward", (g(y.shape), x, w, b), conv_kw),
        ("conv_transpose", (x, wt, b), tconv_kw),
        ("conv_transpose_backward", (g(yt.shape), x, wt, b), tconv_kw),
        ("max_pool", (x, 3), dict(pool_kw, return_indices=True)),
        ("max_pool_backward", (g(p.shape), x, 3), pool_kw),
        ("avg_pool", (x, 3), avg_kw),
        ("avg_pool_backward", (g(p.shape), x, 3), avg_kw),
        ("adaptive_avg_pool", (x, 3), {}),
        ("adaptive_avg_pool_backward", (g(a.shape), x, 3), {}),
        ("adaptive_max_pool", (x, (3, None, 2)[:rank]), {"return_indices": True}),
        ("adaptive_max_pool_backward", (g(a.shape), x, 3), {}),
        ("conv_jvp", (x, w, b, g(x.shape), g(w.shape), g(b.shape)), conv_kw),
        ("conv_double_backward", (g(y.shape), x, w, b, g(x.shape), g(w.shape), g(b.shape)),
         conv_kw),
        ("conv_transpose_jvp", (x, wt, b, g(x.shape), g(wt.shape), g(b.shape)), tconv_kw),
        ("conv_transpose_double_backward",
         (g(yt.shape), x, wt, b, g(x.shape), g(wt.shape), g(b.shape)), tconv_kw),
        ("max_pool_jvp", (x, g(x.shape), 3), pool_kw),
        ("max_pool_double_backward", (g(p.shape), x, g(x.shape), 3), pool_kw),
        ("avg_pool_jvp", (x, g(x.shape), 3), avg_kw),
        ("avg_pool_double_backward", (g(p.shape), x, g(x.shape), 3), avg_kw),
        ("adaptive_avg_pool_jvp", (x, g(x.shape), 3), {}),
        ("adaptive_avg_pool_double_backward", (g(a.shape), x, g(x.shape), 3), {}),
        ("adaptive_max_pool_jvp", (x, g(x.shape), 3), {}),
        ("adaptive_max_pool_double_backward", (g(a.shape), x, g(x.shape), 3), {}),
    ]


def _results(out):
    return out if isinstance(out, tuple) else (out,)


def _assert_same(got, want, where):
    got, want = _results(got), _results(want)
    assert len(got) == len(want), where
    for g, w in zip(got, want):
        if w is None:
            assert g is None, where
            continue
        assert g.shape == w.shape and g.dtype == w.dtype, where
        np.testing.assert_array_equal(g, w, err_msg=where)


NAMES = [name for name, _, _ in _calls(np.random.default_rng(0), 2)]


def test_every_public_function_is_covered():
    assert sorted(NAMES) == sorted(F.__all__)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_caller_arrays_are_unchanged(rank):
    for name, args, kw in _calls(np.random.default_rng(rank), rank):
        before = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        getattr(F, name)(*args, **kw)
        for a, b in zip(args, before):
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b, err_msg=name)


def _views(a):
    """The same values behind other strides: a read-only copy, a transposed copy seen
    through a transpose, a negative-stride view and a strided slice of a larger array."""
    ro = a.copy()
    ro.setflags(write=False)
    yield "readonly", ro
    yield "fortran", np.asfortranarray(a)
    flipped = np.flip(a, axis=0).copy()
    yield "negative_strides", np.flip(flipped, axis=0)
    big = np.zeros((*a.shape[:-1], 2 * a.shape[-1] + 1), a.dtype)
    big[..., 1::2] = a
    yield "strided_slice", big[..., 1::2]


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_any_strides_give_the_contiguous_result(rank):
    for name, args, kw in _calls(np.random.default_rng(10 + rank), rank):
        want = getattr(F, name)(*args, **kw)
        for i, a in enumerate(args):
            if not isinstance(a, np.ndarray) or a.ndim == 0:
                continue
            for how, view in _views(a):
                changed = list(args)
                changed[i] = view
                _assert_same(getattr(F, name)(*changed, **kw), want, f"{name} arg {i} {how}")


def test_a_transposed_view_matches_its_copy():
    x = np.ones((1, 1, 5, 5)).transpose(0, 2, 3, 1)  # channels moved last by a view
    x[...] = np.arange(25.0).reshape(1, 5, 5, 1) % 7
    w = np.ones((3, 3, 1, 2))
    c = np.ascontiguousarray(x)
    _assert_same(F.conv(x, w, padding=1), F.conv(c, w, padding=1), "conv")
    _assert_same(F.max_pool(x, 2, return_indices=True), F.max_pool(c, 2, return_indices=True),
                 "max_pool")
    _assert_same(F.avg_pool_backward(np.ones((1, 2, 2, 1)), x, 2),
                 F.avg_pool_backward(np.ones((1, 2, 2, 1)), c, 2), "avg_pool_backward")
    _assert_same(F.conv_transpose(x, w.transpose(0, 1, 3, 2)),
                 F.conv_transpose(c, w.transpose(0, 1, 3, 2)), "conv_transpose")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_results_have_the_input_dtype(dtype):
    for name, args, kw in _calls(np.random.default_rng(20), 2, dtype):
        for r in _results(getattr(F, name)(*args, **kw)):
            if r is not None and r.dtype.kind == "f":
                assert r.dtype == dtype, name
            elif r is not None:
                assert r.dtype == np.int64, name


def test_mixed_dtypes_promote():
    rng = np.random.default_rng(21)
    x = rng.standard_normal((1, 5, 5, 2)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 2))
    assert F.conv(x, w).dtype == np.float64
    assert F.conv(x, w.astype(np.float16)).dtype == np.float32
    dx, dw, db = F.conv_backward(np.ones((1, 3, 3, 2), np.float16), x, w.astype(np.float32),
                                 np.zeros(2, np.float32))
    assert dx.dtype == dw.dtype == db.dtype == np.float32
    assert F.max_pool_backward(np.ones((1, 2, 2, 2)), x, 2).dtype == np.float64


def test_float16_is_computed_in_float64():
    # In float16, 2048 + 1 rounds back to 2048, so a float16 sum of [2048, 1, 1] is 2048;
    # the float64 sum 2050 is a float16.
    x = np.array([2048, 1, 1], np.float16).reshape(1, 3, 1)
    y = F.avg_pool(x, 3, divisor_override=1)
    assert y.dtype == np.float16 and float(y[0, 0, 0]) == 2050.0
    assert float(F.conv(x, np.ones((3, 1, 1), np.float16))[0, 0, 0]) == 2050.0


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_empty_batch(rank):
    """Outputs and input gradients have no images; weight and bias gradients are zero."""
    for name, args, kw in _calls(np.random.default_rng(30), rank, n=0):
        results = _results(getattr(F, name)(*args, **kw))
        if name in ("conv_backward", "conv_transpose_backward"):
            dx, dw, db = results
            assert dx.shape == args[1].shape and dw.shape == args[2].shape, name
            assert not dw.any() and not db.any(), name
        elif name in ("conv_double_backward", "conv_transpose_double_backward"):
            ddy, dx, dw = results
            assert ddy.shape[0] == 0 and dx.shape == args[1].shape, name
            assert dw.shape == args[2].shape and not dw.any(), name
        else:
            assert all(r.shape[0] == 0 for r in results), name
