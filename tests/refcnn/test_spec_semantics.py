"""The spec's conventions without any framework: the documented examples, the adjoint
identities that tie forward and backward together, and the per-axis geometry helpers
against brute force.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from refcnn import functional as F
from refcnn import geometry

NAN, INF = np.nan, np.inf


def _row(values):
    """A 1-D input (N=1, L, C=1)."""
    return np.asarray(values, dtype=np.float64).reshape(1, -1, 1)


# Documented examples -------------------------------------------------------------------

@pytest.mark.parametrize("size, f, s, p, out", [(5, 2, 2, 1, 3), (12, 1, 2, 0, 6),
                                                (9, 4, 4, 2, 3)])
def test_ceil_mode_drops_a_last_window_starting_in_the_padding(size, f, s, p, out):
    y = F.max_pool(np.zeros((1, size, 1)), f, stride=s, padding=p, ceil_mode=True)
    assert y.shape == (1, out, 1)


@pytest.mark.parametrize("size, f, s, pads", [(16, 7, 2, (2, 3)), (8, 3, 2, (0, 1))])
def test_same_puts_the_odd_pixel_after_and_same_lower_before(size, f, s, pads):
    assert geometry.same_pads(size, f, s, 1) == pads
    assert geometry.same_pads(size, f, s, 1, lower=True) == pads[::-1]
    x, w = np.random.default_rng(0).standard_normal((1, size, 2)), np.ones((f, 2, 1))
    for word, p in (("same", pads), ("same_lower", pads[::-1])):
        y = F.conv(x, w, stride=s, padding=word)
        assert y.shape == (1, -(-size // s), 1)
        np.testing.assert_allclose(y, F.conv(x, w, stride=s, padding=(p,)))


def test_ties_route_to_the_first_maximum():
    x = _row([1, 3, 3, 1, 3])
    y, index = F.max_pool(x, 3, stride=1, return_indices=True)
    np.testing.assert_array_equal(index.ravel(), [1, 1, 2])
    dx = F.max_pool_backward(np.ones_like(y), x, 3, stride=1)
    np.testing.assert_array_equal(dx.ravel(), [0, 2, 1, 0, 0])


def test_nan_wins_and_the_last_nan_takes_the_gradient():
    x = _row([1, NAN, 3, NAN, 2])
    for y, index in (F.max_pool(x, 5, return_indices=True),
                     F.adaptive_max_pool(x, 1, return_indices=True)):
        assert np.isnan(y).all() and index.ravel().tolist() == [3]
    np.testing.assert_array_equal(F.max_pool_backward(np.ones((1, 1, 1)), x, 5).ravel(),
                                  [0, 0, 0, 1, 0])


def test_max_pool_pads_with_minus_infinity():
    x = -np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    y = F.max_pool(x, 2, stride=2, padding=1)
    np.testing.assert_array_equal(y.ravel(), [-1, -2, -4, -5])


def test_a_window_of_minus_infinity_picks_its_first_input_cell():
    # Window 0 covers padding and cell 0; with dilation 3, window 1 starts in the padding
    # and reaches cell 2 first.
    x = _row([-INF] * 4)
    y, index = F.max_pool(x, 2, stride=1, padding=1, dilation=3, return_indices=True)
    assert (y == -INF).all()
    np.testing.assert_array_equal(index.ravel(), [2, 0, 1, 2][:y.shape[1]])
    dx = F.max_pool_backward(np.ones_like(y), x, 2, stride=1, padding=1, dilation=3)
    np.testing.assert_array_equal(dx.ravel(), np.bincount(index.ravel(), minlength=4))
    x3 = np.full((1, 3, 3, 3, 1), -INF)
    _, index = F.max_pool(x3, 2, stride=2, padding=1, return_indices=True)
    np.testing.assert_array_equal(index.ravel(), [0, 1, 3, 4, 9, 10, 12, 13])


def test_average_divisor_counts_explicit_padding_never_ceil_overhang():
    # L=4, f=3, s=2, p=1, ceil: windows start at -1, 1, 3 (the last overhangs by one cell).
    x = _row([1, 2, 3, 4])
    y = F.avg_pool(x, 3, stride=2, padding=1, ceil_mode=True)
    np.testing.assert_allclose(y.ravel(), [3 / 3, 9 / 3, 4 / 2])
    y = F.avg_pool(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_allclose(y.ravel(), [3 / 2, 9 / 3, 4 / 1])
    y = F.avg_pool(x, 3, stride=2, padding=1, ceil_mode=True, divisor_override=5)
    np.testing.assert_allclose(y.ravel(), [3 / 5, 9 / 5, 4 / 5])


def test_adaptive_bins_are_torchs():
    np.testing.assert_array_equal(geometry.adaptive_bins(5, 3), ([0, 1, 3], [2, 4, 5]))
    x = _row([1, 2, 3, 4, 5])
    np.testing.assert_allclose(F.adaptive_avg_pool(x, 3).ravel(), [1.5, 3, 4.5])
    np.testing.assert_allclose(F.adaptive_avg_pool(x, 1).ravel(), [3])
    x2 = np.arange(12.0).reshape(1, 3, 4, 1)
    assert F.adaptive_max_pool(x2, (None, 2)).shape == (1, 3, 2, 1)


def test_groups_map_output_channels_to_consecutive_input_groups():
    # groups=2, one input channel per group: output channel k reads input channel k // 2.
    x = np.array([[[1.0, 10.0]]])  # (N=1, L=1, C=2)
    w = np.ones((1, 1, 4))
    np.testing.assert_array_equal(F.conv(x, w, groups=2).ravel(), [1, 1, 10, 10])


def test_conv_transpose_output_size_is_torchs():
    # (L-1)*s - before - after + d*(k-1) + output_padding + 1
    x, w = np.ones((1, 4, 1)), np.ones((3, 1, 1))
    assert F.conv_transpose(x, w, stride=3, padding=((1, 0),), output_padding=2,
                            dilation=2).shape == (1, 3 * 3 - 1 + 4 + 2 + 1, 1)


# Adjoint identities --------------------------------------------------------------------

def _dot(a, b):
    return float(np.vdot(a, b))


def _conv_geometries(rng, count):
    for _ in range(count):
        rank = int(rng.integers(1, 4))
        groups = int(rng.integers(1, 3))
        size = tuple(int(v) for v in rng.integers(3, 7, rank))
        kernel = tuple(int(v) for v in rng.integers(1, 4, rank))
        stride = tuple(int(v) for v in rng.integers(1, 4, rank))
        dilation = tuple(int(v) for v in rng.integers(1, 3, rank))
        pads = tuple((int(a), int(b)) for a, b in rng.integers(0, 3, (rank, 2)))
        if any(n + lo + hi < d * (k - 1) + 1 for n, k, d, (lo, hi)
               in zip(size, kernel, dilation, pads)):
            continue
        yield rank, groups, size, kernel, stride, dilation, pads


@pytest.mark.parametrize("seed", range(6))
def test_conv_transpose_is_the_adjoint_of_conv(seed):
    """<conv(x, w), y> == <x, conv_transpose(y, w)> with the same w; the output_padding
    that gives back x's size is the remainder the strided conv dropped."""
    rng = np.random.default_rng(seed)
    for rank, groups, size, kernel, stride, dilation, pads in _conv_geometries(rng, 8):
        x = rng.standard_normal((2, *size, 2 * groups))
        w = rng.standard_normal((*kernel, 2, 3 * groups))
        kw = {"stride": stride, "padding": pads, "dilation": dilation, "groups": groups}
        y = F.conv(x, w, **kw)
        extra = [(n + lo + hi - d * (k - 1) - 1) % s
                 for n, k, s, d, (lo, hi) in zip(size, kernel, stride, dilation, pads)]
        dy = rng.standard_normal(y.shape)
        back = F.conv_transpose(dy, w, output_padding=tuple(extra), **kw)
        assert back.shape == x.shape
        assert math.isclose(_dot(y, dy), _dot(x, back), rel_tol=1e-11, abs_tol=1e-11)
        # The VJPs are the same maps: conv's dx is conv_transpose, and back.
        dx, dw, _ = F.conv_backward(dy, x, w, **kw)
        np.testing.assert_allclose(dx, back, rtol=1e-12, atol=1e-12)
        tdx, tdw, _ = F.conv_transpose_backward(x, dy, w, output_padding=tuple(extra), **kw)
        np.testing.assert_allclose(tdx, y, rtol=1e-12, atol=1e-12)
        # Linear in w: <dw, v> == <dy, conv(x, v)>; for conv_transpose <tdw, v> ==
        # <x, conv_transpose(dy, v)>.
        v = rng.standard_normal(w.shape)
        assert math.isclose(_dot(dw, v), _dot(dy, F.conv(x, v, **kw)), rel_tol=1e-11,
                            abs_tol=1e-11)
        assert math.isclose(_dot(tdw, v), _dot(x, F.conv_transpose(
            dy, v, output_padding=tuple(extra), **kw)), rel_tol=1e-11, abs_tol=1e-11)


@pytest.mark.parametrize("seed", range(4))
def test_average_pools_are_linear_and_their_backward_is_the_adjoint(seed):
    rng = np.random.default_rng(100 + seed)
    for rank in (1, 2, 3):
        x = rng.standard_normal((2, *rng.integers(2, 7, rank), 3))
        kernel = tuple(int(v) for v in rng.integers(1, 4, rank))
        for kw in ({"stride": 2, "padding": "same", "ceil_mode": True},
                   {"stride": 1, "padding": 1, "dilation": 2, "count_include_pad": False},
                   {"padding": "valid", "ceil_mode": True, "divisor_override": 2}):
            try:
                y = F.avg_pool(x, kernel, **kw)
            except ValueError:
                continue
            dy = rng.standard_normal(y.shape)
            assert math.isclose(_dot(y, dy), _dot(x, F.avg_pool_backward(dy, x, kernel, **kw)),
                                rel_tol=1e-11, abs_tol=1e-11)
        out = tuple(int(v) for v in rng.integers(1, 5, rank))
        y = F.adaptive_avg_pool(x, out)
        dy = rng.standard_normal(y.shape)
        assert math.isclose(_dot(y, dy), _dot(x, F.adaptive_avg_pool_backward(dy, x, out)),
                            rel_tol=1e-11, abs_tol=1e-11)


@pytest.mark.parametrize("seed", range(4))
def test_max_pools_pick_the_indexed_cell_and_route_there(seed):
    """y is x at the index in each (n, c) plane; the backward is the adjoint of that pick."""
    rng = np.random.default_rng(200 + seed)
    for rank in (1, 2, 3):
        x = rng.integers(-3, 4, (2, *rng.integers(2, 7, rank), 3)).astype(np.float64)
        kernel = tuple(int(v) for v in rng.integers(1, 4, rank))
        plane = x.reshape(2, -1, 3)
        calls = [(F.max_pool, F.max_pool_backward, (kernel,),
                  {"stride": 1, "padding": "same_lower", "dilation": 2}),
                 (F.adaptive_max_pool, F.adaptive_max_pool_backward, ((3,) * rank,), {})]
        for fwd, bwd, args, kw in calls:
            y, index = fwd(x, *args, return_indices=True, **kw)
            picked = np.take_along_axis(plane, index.reshape(2, -1, 3), axis=1)
            np.testing.assert_array_equal(picked.reshape(y.shape), y)
            dy = rng.standard_normal(y.shape)
            assert math.isclose(_dot(y, dy), _dot(x, bwd(dy, x, *args, **kw)),
                                rel_tol=1e-11, abs_tol=1e-11)


# Geometry helpers against brute force --------------------------------------------------

def test_empty_window_and_first_real_taps_against_brute_force():
    for size, f, s, d, lo, hi, ceil in itertools.product(range(0, 6), range(1, 5), range(1, 4),
                                                         range(1, 6), range(0, 9), range(0, 5),
                                                         (False, True)):
        out = geometry.pool_out_size(size, f, s, d, (lo, hi), ceil)
        if out < 1:
            continue
        taps = np.arange(out)[:, None] * s + np.arange(f) * d
        real = (taps >= lo) & (taps < lo + size)
        found = geometry.empty_window(size, out, f, s, d, (lo, hi))
        assert (found is None) == real.any(axis=1).all(), (size, f, s, d, lo, hi, ceil)
        if found is None:
            np.testing.assert_array_equal(
                geometry.first_real_taps(size, out, f, s, d, (lo, hi)), real.argmax(axis=1))
        else:
            assert not real[found].any()


def test_empty_window_is_quick_for_huge_padding():
    assert geometry.empty_window(3, 10**15, 2, 1, 10**12, (10**12, 10**12)) is not None
    # dilation > size: middle windows are checked one by one, but only until one fails.
    pads = (10**6, 10**6)
    out = geometry.pool_out_size(2, 2, 1, 10**6, pads, False)
    assert geometry.empty_window(2, out, 2, 1, 10**6, pads) == 2


def test_conv_transpose_size_inverts_conv_size():
    for n, k, s, d, lo, hi in itertools.product(range(1, 8), range(1, 4), range(1, 4),
                                                range(1, 3), range(3), range(3)):
        out = geometry.conv_out_size(n, k, s, d, (lo, hi))
        if out < 1:
            continue
        extra = (n + lo + hi - d * (k - 1) - 1) % s
        assert geometry.conv_transpose_out_size(out, k, s, d, (lo, hi), extra) == n


def test_adaptive_bins_cover_the_axis():
    for size, out in itertools.product(range(1, 12), range(1, 12)):
        start, end = geometry.adaptive_bins(size, out)
        i = np.arange(out)
        np.testing.assert_array_equal(start, np.floor(i * size / out))
        np.testing.assert_array_equal(end, np.ceil((i + 1) * size / out))
        assert start[0] == 0 and end[-1] == size and (end > start).all()
