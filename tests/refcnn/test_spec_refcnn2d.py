"""refcnn.functional on 2-D inputs against the existing 2-D functions (refcnn.conv2d,
conv2d_backward, max_pool2d, max_pool2d_backward, avg_pool2d, avg_pool2d_backward).

These take the padding forms torch cannot (per side with ceil_mode, beyond half the
kernel with count_include_pad False, dilated average pooling), so they check the
spec where the torch tests cannot. The 2-D padding forms are int, (ph, pw), per-side
pairs, 'same' and 'valid'.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import refcnn
from refcnn import functional as F


def _pads(padding, size, kernel, stride, dilation):
    if padding == "valid":
        return [(0, 0), (0, 0)]
    if padding == "same":
        out = []
        for n, k, s, d in zip(size, kernel, stride, dilation):
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            out.append((total // 2, total - total // 2))
        return out
    if isinstance(padding, int):
        return [(padding, padding)] * 2
    return [p if isinstance(p, tuple) else (p, p) for p in padding]


def _padding(rng, high):
    form = rng.choice(["int", "axis", "side", "same", "valid"])
    if form == "int":
        return int(rng.integers(0, high + 1))
    if form == "axis":
        return tuple(int(p) for p in rng.integers(0, high + 1, 2))
    if form == "side":
        return tuple((int(a), int(b)) for a, b in rng.integers(0, high + 1, (2, 2)))
    return str(form)


def _pair(rng, low, high):
    return tuple(int(v) for v in rng.integers(low, high + 1, 2))


def _conv_cases(rng, count):
    cases = []
    while len(cases) < count:
        groups = int(rng.integers(1, 4))
        x_shape = (int(rng.integers(0, 3)), *_pair(rng, 1, 7), groups * int(rng.integers(1, 3)))
        kernel, stride, dilation = _pair(rng, 1, 3), _pair(rng, 1, 3), _pair(rng, 1, 2)
        padding = _padding(rng, 2)
        pads = _pads(padding, x_shape[1:3], kernel, stride, dilation)
        if any(n + lo + hi < d * (k - 1) + 1 for n, k, d, (lo, hi) in
               zip(x_shape[1:3], kernel, dilation, pads)):
            continue
        w_shape = (*kernel, x_shape[3] // groups, groups * int(rng.integers(1, 3)))
        kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        cases.append(pytest.param(x_shape, w_shape, kw, id=f"x{x_shape}-w{w_shape}-{kw}"))
    return cases


def _pool_cases(rng, count):
    cases = []
    while len(cases) < count:
        x_shape = (int(rng.integers(0, 3)), *_pair(rng, 1, 7), int(rng.integers(1, 4)))
        kernel = _pair(rng, 1, 4)
        kw = {"stride": None if rng.random() < 0.2 else _pair(rng, 1, 3),
              "padding": _padding(rng, 3), "dilation": _pair(rng, 1, 2),
              "ceil_mode": bool(rng.integers(0, 2))}
        try:  # keep the geometries the 2-D functions accept
            refcnn.max_pool2d(np.zeros((1, *x_shape[1:3], 1)), kernel, **kw)
        except ValueError:
            continue
        data = str(rng.choice(["ties", "nan", "inf"]))
        cases.append(pytest.param(x_shape, kernel, kw, data,
                                  id=f"x{x_shape}-k{kernel}-{kw}-{data}"))
    return cases


_RNG = np.random.default_rng(7)
CONV_CASES = _conv_cases(_RNG, 40)
POOL_CASES = _pool_cases(_RNG, 60)


def _rng(*parts):
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


def _pool_data(rng, shape, kind):
    x = rng.integers(-2, 3, shape).astype(np.float64)
    if kind in ("nan", "inf"):
        x[rng.random(shape) < 0.1] = np.nan
    if kind == "inf":
        x[rng.random(shape) < 0.3] = -np.inf
        x[..., 0] = -np.inf
    return x


@pytest.mark.parametrize("x_shape, w_shape, kw", CONV_CASES)
def test_conv_matches_conv2d(x_shape, w_shape, kw):
    rng = _rng(x_shape, w_shape, kw)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[-1])
    y = F.conv(x, w, b, **kw)
    np.testing.assert_allclose(y, refcnn.conv2d(x, w, b, **kw), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    for got, want in zip(F.conv_backward(dy, x, w, b, **kw),
                         refcnn.conv2d_backward(dy, x, w, b, **kw)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, kernel, kw, data", POOL_CASES)
def test_max_pool_matches_max_pool2d(x_shape, kernel, kw, data):
    rng = _rng(x_shape, kernel, kw, data)
    x = _pool_data(rng, x_shape, data)
    y = F.max_pool(x, kernel, **kw)
    np.testing.assert_array_equal(y, refcnn.max_pool2d(x, kernel, **kw))
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(F.max_pool_backward(dy, x, kernel, **kw),
                               refcnn.max_pool2d_backward(dy, x, kernel, **kw),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, kernel, kw, data", POOL_CASES[::2])
@pytest.mark.parametrize("count_include_pad, divisor_override", [(True, None), (False, None),
                                                                 (False, 3)])
def test_avg_pool_matches_avg_pool2d(x_shape, kernel, kw, data, count_include_pad,
                                     divisor_override):
    kw = dict(kw, count_include_pad=count_include_pad, divisor_override=divisor_override)
    rng = _rng(x_shape, kernel, kw)
    x = rng.standard_normal(x_shape)
    y = F.avg_pool(x, kernel, **kw)
    np.testing.assert_allclose(y, refcnn.avg_pool2d(x, kernel, **kw), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(F.avg_pool_backward(dy, x, kernel, **kw),
                               refcnn.avg_pool2d_backward(dy, x, kernel, **kw),
                               rtol=1e-12, atol=1e-12)


def test_pool_refusals_match_the_2d_functions():
    """The same geometries are refused: windows lying entirely in the padding, kernels
    larger than the padded input."""
    rng = np.random.default_rng(11)
    refused = 0
    for _ in range(300):
        size, kernel = _pair(rng, 1, 5), _pair(rng, 1, 4)
        kw = {"stride": _pair(rng, 1, 3), "padding": _padding(rng, 5),
              "dilation": _pair(rng, 1, 4), "ceil_mode": bool(rng.integers(0, 2))}
        x = np.zeros((1, *size, 1))
        try:
            refcnn.max_pool2d(x, kernel, **kw)
        except ValueError:
            refused += 1
            with pytest.raises(ValueError, match="padding|kernel"):
                F.max_pool(x, kernel, **kw)
        else:
            F.max_pool(x, kernel, **kw)
    assert refused > 30
