"""The fast max pool's indices and the gradient that scatters through them.

``refcnn.max_pool2d(..., return_indices=True)`` must give torch's indices exactly as
the spec does (``refcnn.functional.max_pool``): first of tied maxima, last NaN, first
real cell of a window of -inf, over every geometry; ``max_pool2d_backward(...,
indices=...)`` must equal the search path (bit for bit in float64, within a few ulps
when summing natively) and refuse bad indices naming them; the notebook's max-pool
cache carries the forward's indices into ``pool_backward``. Inputs are built to make
those rules matter: values drawn from a few integers (ties in most windows), NaN
and -inf planted in some windows.
"""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

import refcnn
from refcnn import functional, loops
from refcnn.fast import FastConfig
from refcnn.notebook import PoolCache
from refcnn_helpers import DTYPE_IDS, DTYPES, rng


def _valid(size, f, s, d, pads, ceil_mode):
    """Whether refcnn accepts the geometry (some leave a window in the padding only)."""
    try:
        functional.max_pool(np.zeros((1, *size, 1)), f, stride=s, padding=pads, dilation=d,
                            ceil_mode=ceil_mode)
    except ValueError:
        return False
    return True


def _geometries():
    sizes = [(1, 1), (5, 7), (6, 4)]
    kernels = [(1, 1), (2, 2), (3, 3), (2, 3), (3, 1)]
    strides = [1, 2, (3, 2)]
    pads = [0, 1, ((1, 0), (0, 2)), ((0, 1), (2, 1))]
    dilations = [1, (2, 1)]
    out = []
    for size, f, s, p, d, ceil in itertools.product(sizes, kernels, strides, pads, dilations,
                                                    (False, True)):
        if _valid(size, f, s, d, p, ceil):
            out.append(pytest.param(size, f, s, p, d, ceil,
                                    id=f"hw{size}-k{f}-s{s}-p{p}-d{d}-ceil{int(ceil)}"
                                    .replace(" ", "")))
    return out


GEOMETRIES = _geometries()
VALUES = ["ties", "nan", "neginf"]


def _input(size, dtype, values, *key, n=3, c=4):
    """Few distinct values (ties nearly everywhere), with NaN or -inf planted."""
    g = rng("pool-indices", size, values, *key)
    x = g.integers(-2, 3, (n, *size, c)).astype(dtype)
    if values == "nan":
        # Sparse NaN (some windows hold one, some two or more) and a whole image of NaN.
        x[g.random(x.shape) < 0.15] = np.nan
        x[-1] = np.nan
    elif values == "neginf":
        # -inf in many cells and whole planes of it, so windows of -inf only occur
        # next to the padding (where tap 0 is padding) as well as inside.
        x[g.random(x.shape) < 0.4] = -np.inf
        x[0, ..., 0] = -np.inf
        x[1] = -np.inf
        x[2, :, :1] = -np.inf
    return x


def _opts(f, s, p, d, ceil):
    return dict(stride=s, padding=p, dilation=d, ceil_mode=ceil)


@pytest.mark.parametrize("size, f, s, p, d, ceil", GEOMETRIES)
@pytest.mark.parametrize("values", VALUES)
def test_max_pool2d_indices_equal_the_spec(size, f, s, p, d, ceil, values):
    x = _input(size, np.float64, values, f, s, p, d, ceil)
    y, idx = refcnn.max_pool2d(x, f, return_indices=True, **_opts(f, s, p, d, ceil))
    y_spec, idx_spec = functional.max_pool(x, f, return_indices=True, **_opts(f, s, p, d, ceil))
    assert idx.dtype == np.int64 and idx.shape == idx_spec.shape, \
        f"indices {idx.dtype}{idx.shape}, the spec's {idx_spec.dtype}{idx_spec.shape}"
    np.testing.assert_array_equal(idx, idx_spec, err_msg="max_pool2d indices != the spec's")
    np.testing.assert_array_equal(y, y_spec, err_msg="max_pool2d y != the spec's")
    np.testing.assert_array_equal(refcnn.max_pool2d(x, f, **_opts(f, s, p, d, ceil)), y,
                                  err_msg="return_indices changed y")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("values", VALUES)
def test_max_pool2d_indices_in_every_dtype(dtype, values):
    x = _input((7, 6), dtype, values, "dtype")
    opts = dict(stride=2, padding=((1, 0), (1, 1)), ceil_mode=True)
    y, idx = refcnn.max_pool2d(x, 3, return_indices=True, **opts)
    y_spec, idx_spec = functional.max_pool(x, 3, return_indices=True, **opts)
    assert y.dtype == dtype
    np.testing.assert_array_equal(idx, idx_spec)
    np.testing.assert_array_equal(y, y_spec)


@pytest.mark.parametrize("n", [0, 1, 5])
def test_max_pool2d_indices_empty_and_small_batches(n):
    x = _input((5, 5), np.float32, "ties", "batch", n, n=n)
    y, idx = refcnn.max_pool2d(x, 2, stride=1, padding=1, return_indices=True)
    _, idx_spec = functional.max_pool(x, 2, stride=1, padding=1, return_indices=True)
    assert idx.shape == idx_spec.shape == (n, 6, 6, 4) and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, idx_spec)
    dx = refcnn.max_pool2d_backward(np.ones_like(y), x, 2, stride=1, padding=1, indices=idx)
    assert dx.shape == x.shape and dx.dtype == x.dtype


def test_max_pool2d_indices_with_a_large_kernel():
    """More than 127 taps: tap numbers no longer fit the int8 the small kernels use."""
    x = _input((13, 12), np.float32, "ties", "large", n=2, c=2)
    opts = dict(stride=(2, 3), padding=(1, 2))
    _, idx = refcnn.max_pool2d(x, (12, 11), return_indices=True, **opts)
    _, idx_spec = functional.max_pool(x, (12, 11), return_indices=True, **opts)
    np.testing.assert_array_equal(idx, idx_spec)


@pytest.mark.parametrize("config", [FastConfig(threads=1), FastConfig(threads=3),
                                    FastConfig(pool_block_bytes=1, threads=2)],
                         ids=["threads1", "threads3", "block1_threads2"])
def test_threads_and_blocks_never_change_indices_or_scatter(config):
    x = _input((9, 10), np.float32, "nan", "config", n=7)
    y, idx = refcnn.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    got_y, got_idx = refcnn.max_pool2d(x, 3, stride=2, padding=1, return_indices=True,
                                       config=config)
    assert got_y.tobytes() == y.tobytes() and got_idx.tobytes() == idx.tobytes()
    dy = rng("pool-indices", "config-dy").standard_normal(y.shape).astype(np.float32)
    for acc in ("float64", "native"):
        want = refcnn.max_pool2d_backward(dy, x, 3, stride=2, padding=1, indices=idx,
                                          accumulate=acc)
        got = refcnn.max_pool2d_backward(dy, x, 3, stride=2, padding=1, indices=idx,
                                         accumulate=acc, config=config)
        assert got.tobytes() == want.tobytes(), f"accumulate={acc}"


# ----------------------------------------------------------------------------- backward

def _assert_native_close(native, exact, absum, what, terms=9):
    """A native sum against the float64 one rounded once: summing ``terms`` terms in the
    accumulator (float32 for float16 and float32) errs by at most ``terms - 1`` unit
    roundoffs of their absolute sum ``absum``, and each result is rounded once more
    (ulps alone would not do: where terms cancel, the result's ulp is tiny)."""
    acc = np.promote_types(native.dtype, np.float32)
    err = np.abs(native.astype(np.float64) - exact.astype(np.float64))
    bound = (terms - 1) * np.finfo(acc).eps / 2 * absum + np.spacing(np.abs(exact))
    assert (err <= bound).all(), f"{what}: native sums off by {np.max(err - bound)} past " \
                                 "their bound"


def _dy(shape, dtype, *key):
    return rng("pool-indices-dy", shape, *key).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("size, f, s, p, d, ceil", GEOMETRIES)
@pytest.mark.parametrize("values", VALUES)
def test_backward_with_indices_equals_the_search(size, f, s, p, d, ceil, values):
    """float64 accumulation: bit for bit the search path; native: within a few ulps."""
    opts = _opts(f, s, p, d, ceil)
    x = _input(size, np.float32, values, "bwd", f, s, p, d, ceil)
    y, idx = refcnn.max_pool2d(x, f, return_indices=True, **opts)
    dy = _dy(y.shape, np.float32, f, s, p, d, ceil)
    search = refcnn.max_pool2d_backward(dy, x, f, **opts)
    got = refcnn.max_pool2d_backward(dy, x, f, indices=idx, **opts)
    assert got.dtype == x.dtype and got.tobytes() == search.tobytes(), \
        "float64: the scatter through indices differs from the search path"
    native = refcnn.max_pool2d_backward(dy, x, f, indices=idx, accumulate="native", **opts)
    native_search = refcnn.max_pool2d_backward(dy, x, f, accumulate="native", **opts)
    assert native.tobytes() == native_search.tobytes(), "native: scatter != search"
    absum = refcnn.max_pool2d_backward(np.abs(dy).astype(np.float64), x.astype(np.float64),
                                       f, indices=idx, **opts)
    _assert_native_close(native, search, absum, "max_pool2d_backward")
    want = functional.max_pool_backward(dy.astype(np.float64), x.astype(np.float64), f, **opts)
    np.testing.assert_array_equal(got, want.astype(np.float32),
                                  err_msg="float64 scatter != the spec rounded once")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_backward_with_indices_in_every_dtype(dtype):
    # Stride 1 and a 3x3 kernel: up to 9 windows add into one cell.
    x = _input((6, 7), dtype, "ties", "bwd-dtype")
    y, idx = refcnn.max_pool2d(x, 3, stride=1, padding=1, return_indices=True)
    dy = _dy(y.shape, dtype, "dtype")
    for acc in ("float64", "native"):
        got = refcnn.max_pool2d_backward(dy, x, 3, stride=1, padding=1, indices=idx,
                                         accumulate=acc)
        want = refcnn.max_pool2d_backward(dy, x, 3, stride=1, padding=1, accumulate=acc)
        assert got.dtype == dtype and got.tobytes() == want.tobytes(), f"accumulate={acc}"


def test_backward_routes_through_the_given_indices():
    """The scatter follows the indices it is given, not x: with x changed after the
    forward, the gradient still goes where the forward's maxima were."""
    x = rng("pool-indices", "follow").standard_normal((2, 6, 6, 3))
    y, idx = refcnn.max_pool2d(x, 2, return_indices=True)
    dy = _dy(y.shape, np.float64, "follow")
    flipped = -x
    got = refcnn.max_pool2d_backward(dy, flipped, 2, indices=idx)
    np.testing.assert_array_equal(got, refcnn.max_pool2d_backward(dy, x, 2))
    assert not np.array_equal(got, refcnn.max_pool2d_backward(dy, flipped, 2))


def test_indices_of_any_integer_dtype_or_layout_give_the_same_gradient():
    x = _input((6, 6), np.float64, "ties", "int32")
    y, idx = refcnn.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    dy = _dy(y.shape, np.float64, "int32")
    want = refcnn.max_pool2d_backward(dy, x, 3, stride=2, padding=1, indices=idx)
    for other in (idx.astype(np.int32), idx.astype(np.uint16), idx.astype(">i8"),
                  np.asfortranarray(idx), idx[::-1].copy()[::-1]):
        got = refcnn.max_pool2d_backward(dy, x, 3, stride=2, padding=1, indices=other)
        assert got.tobytes() == want.tobytes()


X_BAD = rng("pool-indices", "bad").standard_normal((2, 5, 5, 3))
_, IDX_BAD = refcnn.max_pool2d(X_BAD, 2, return_indices=True)
DY_BAD = np.ones((2, 2, 2, 3))


def _with(idx, at, value):
    idx = idx.copy()
    idx[at] = value
    return idx


@pytest.mark.parametrize("indices, error, match", [
    (IDX_BAD.tolist(), TypeError, r"indices must be a numpy.ndarray"),
    (IDX_BAD.astype(np.float64), TypeError, r"indices must have an integer dtype"),
    (IDX_BAD > 3, TypeError, r"indices must have an integer dtype"),
    (IDX_BAD[:1], ValueError, r"indices must have the forward output's shape \(2, 2, 2, 3\)"),
    (IDX_BAD[..., None], ValueError, r"indices must have the forward output's shape"),
    (_with(IDX_BAD, (1, 1, 0, 2), -1), ValueError, r"indices must be flat indices into the "
                                                   r"5x5 input plane, in \[0, 25\), got "
                                                   r"values from -1 to"),
    (_with(IDX_BAD, (0, 0, 0, 0), 25), ValueError, r"in \[0, 25\), got values from 0 to 25"),
    (_with(IDX_BAD.astype(np.uint8), (1, 0, 1, 1), 255), ValueError, r"in \[0, 25\)"),
    (_with(IDX_BAD.astype(">i8"), (0, 1, 1, 0), -3), ValueError, r"values from -3 to"),
], ids=["list", "float", "bool", "batch", "rank", "negative", "past_end", "uint8",
        "big_endian"])
def test_bad_indices_are_refused_naming_them(indices, error, match):
    with pytest.raises(error, match=match):
        refcnn.max_pool2d_backward(DY_BAD, X_BAD, 2, indices=indices)


@pytest.mark.parametrize("call", [
    lambda: refcnn.max_pool2d(X_BAD, 2, accumulate="float32"),
    lambda: refcnn.max_pool2d_backward(DY_BAD, X_BAD, 2, accumulate="fast"),
    lambda: refcnn.max_pool2d_backward(DY_BAD, X_BAD, 2, indices=IDX_BAD, accumulate=None),
    lambda: refcnn.avg_pool2d(X_BAD, 2, accumulate="double"),
    lambda: refcnn.avg_pool2d_backward(DY_BAD, X_BAD, 2, accumulate=64),
], ids=["max_pool2d", "max_pool2d_backward", "max_pool2d_backward-indices", "avg_pool2d",
        "avg_pool2d_backward"])
def test_a_bad_accumulate_is_refused_naming_it(call):
    with pytest.raises(ValueError, match="accumulate must be"):
        call()


@pytest.mark.parametrize("value", [1, None, "yes"])
def test_return_indices_must_be_a_bool(value):
    with pytest.raises(TypeError, match="return_indices must be True or False"):
        refcnn.max_pool2d(X_BAD, 2, return_indices=value)


def test_indices_path_never_modifies_its_arguments():
    x = _input((7, 7), np.float32, "nan", "hygiene")
    opts = dict(stride=2, padding=1, ceil_mode=True)
    x_before = x.copy()
    x.flags.writeable = False
    y, idx = refcnn.max_pool2d(x, 3, return_indices=True, **opts)
    dy = _dy(y.shape, np.float32, "hygiene")
    before = (dy.copy(), idx.copy())
    for a in (dy, idx):
        a.flags.writeable = False  # any write, even one undone later, raises
    for acc in ("float64", "native"):
        dx = refcnn.max_pool2d_backward(dy, x, 3, indices=idx, accumulate=acc, **opts)
        for out in (dx,):
            assert not any(np.shares_memory(out, a) for a in (x, dy, idx))
    for got, want in zip((x, dy, idx), (x_before, *before)):
        np.testing.assert_array_equal(got, want)
    assert not np.shares_memory(y, x) and not np.shares_memory(idx, x)


# ----------------------------------------------------------------------------- accumulate

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("opts", [dict(kernel_size=2, stride=2),
                                  dict(kernel_size=3, stride=1, padding=1),
                                  dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0),
                                       ceil_mode=True, count_include_pad=False),
                                  dict(kernel_size=2, stride=2, divisor_override=3)],
                         ids=["tiles", "k3s1p1", "k3x2-ceil-nopad", "tiles-divisor3"])
def test_avg_pool_native_is_within_its_bound_of_float64(dtype, opts):
    x = rng("avg-native", dtype, repr(opts)).standard_normal((3, 8, 6, 5)).astype(dtype)
    y64 = refcnn.avg_pool2d(x, **opts)
    y = refcnn.avg_pool2d(x, accumulate="native", **opts)
    assert y.dtype == dtype
    _assert_native_close(y, y64, refcnn.avg_pool2d(np.abs(x).astype(np.float64), **opts),
                         "avg_pool2d")
    dy = rng("avg-native-dy", dtype, repr(opts)).standard_normal(y.shape).astype(dtype)
    dx64 = refcnn.avg_pool2d_backward(dy, x, **opts)
    dx = refcnn.avg_pool2d_backward(dy, x, accumulate="native", **opts)
    assert dx.dtype == dtype
    absum = refcnn.avg_pool2d_backward(np.abs(dy).astype(np.float64), x.astype(np.float64),
                                       **opts)
    _assert_native_close(dx, dx64, absum, "avg_pool2d_backward")
    if "padding" not in opts:  # windows tile x: one share per cell, no sums
        np.testing.assert_array_max_ulp(dx, dx64, maxulp=1)


def test_avg_pool_float64_sums_once_and_native_does_not():
    """The accumulate option is live: a sum whose float32 running total loses a small
    term (1 + 2**-24 + 2**-24 + 0: float32 rounds each partial sum back to 1) keeps it
    in float64, and rounding once then gives the larger neighbour of 0.25."""
    x = np.zeros((1, 2, 2, 1), np.float32)
    x[0, 0, 0], x[0, 0, 1], x[0, 1, 0] = 1.0, 2.0 ** -24, 2.0 ** -24
    y64 = refcnn.avg_pool2d(x, 2)[0, 0, 0, 0]
    native = refcnn.avg_pool2d(x, 2, accumulate="native")[0, 0, 0, 0]
    assert native == np.float32(0.25)
    assert y64 == np.float32((1 + 2.0 ** -23) / 4), y64


# ----------------------------------------------------------------------------- notebook

HP = {"f": 3, "stride": 2, "pad": 1, "ceil_mode": True}


def test_pool_forward_cache_unpacks_and_carries_the_indices():
    x = _input((7, 6), np.float64, "nan", "cache")
    a, cache = refcnn.pool_forward(x, HP)
    assert isinstance(cache, tuple) and len(cache) == 2
    a_prev, hp = cache
    assert a_prev is x and hp is HP
    unpacked = refcnn.notebook.unpack_pool_cache(cache)
    assert len(unpacked) == 2 and unpacked[0] is x and unpacked[1] is HP
    _, idx = refcnn.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(cache.indices, idx)
    _, avg_cache = refcnn.pool_forward(x, HP, mode="average")
    assert isinstance(avg_cache, PoolCache) and avg_cache.indices is None


@pytest.mark.parametrize("values", VALUES)
def test_pool_backward_through_the_cache_equals_the_search(values):
    x = _input((7, 6), np.float32, values, "nb")
    a, cache = refcnn.pool_forward(x, HP)
    da = _dy(a.shape, np.float32, "nb", values)
    got = refcnn.pool_backward(da, cache)
    assert got.tobytes() == refcnn.pool_backward(da, (x, HP)).tobytes()
    # The loop oracle takes the same cache (it searches on its own).
    np.testing.assert_array_equal(loops.pool_backward(da, cache), got)
    np.testing.assert_array_equal(refcnn.pool_backward(da, cache, mode="average"),
                                  refcnn.pool_backward(da, (x, HP), mode="average"))


def test_pool_backward_uses_the_forwards_choice():
    """Through the cache the gradient goes where the forward's maxima were, even if
    A_prev changed since; a tuple built by hand searches the A_prev it holds."""
    x = rng("pool-indices", "nb-follow").standard_normal((2, 6, 6, 3))
    a, cache = refcnn.pool_forward(x.copy(), {"f": 2, "stride": 2})
    da = _dy(a.shape, np.float64, "nb-follow")
    want = refcnn.pool_backward(da, (x, {"f": 2, "stride": 2}))
    cache[0][...] = -x
    np.testing.assert_array_equal(refcnn.pool_backward(da, cache), want)
    assert not np.array_equal(refcnn.pool_backward(da, tuple(cache)), want)


def test_pool_backward_searches_when_the_hparameters_changed():
    x = _input((7, 7), np.float64, "ties", "nb-hp")
    hp = {"f": 2, "stride": 2, "pad": 1}
    a, cache = refcnn.pool_forward(x, hp)
    # The same output shape (4x4 windows), other windows: the cached indices are stale.
    hp.update(pad=0, ceil_mode=True)
    da = _dy(a.shape, np.float64, "nb-hp")
    got = refcnn.pool_backward(da, cache)
    np.testing.assert_array_equal(got, refcnn.pool_backward(da, (x, dict(hp))))
    assert not np.array_equal(got, refcnn.pool_backward(da, (x, {"f": 2, "stride": 2,
                                                                 "pad": 1})))


def test_pool_cache_pickles_with_its_indices():
    x = _input((5, 5), np.float64, "ties", "pickle")
    a, cache = refcnn.pool_forward(x, HP)
    back = pickle.loads(pickle.dumps(cache))
    assert isinstance(back, PoolCache) and len(back) == 2
    np.testing.assert_array_equal(back.indices, cache.indices)
    da = _dy(a.shape, np.float64, "pickle")
    np.testing.assert_array_equal(refcnn.pool_backward(da, back), refcnn.pool_backward(da, cache))


# ----------------------------------------------------------------------------- crosscheck

def test_the_refcnn_backend_runs_the_users_max_pool_paths(monkeypatch):
    """crosscheck's refcnn backend (what every sweep judges against the spec) runs the
    fast forward with indices, and the 2-D gradient through the forward's indices."""
    from crosscheck.backends.refcnn_backend import RefcnnBackend
    from crosscheck.cases import Case
    from refcnn.fast import pool

    calls = []
    for name in ("max_indices_planned", "max_scatter_planned", "max_backward_planned"):
        real = getattr(pool, name)
        monkeypatch.setattr(pool, name, lambda *a, _real=real, _name=name, **k:
                            calls.append(_name) or _real(*a, **k))
    backend = RefcnnBackend()
    x = _input((6, 6), np.float64, "ties", "backend", n=1, c=2)
    params = dict(n=1, spatial=(6, 6), c_in=2, kernel=(3, 3), stride=(2, 2),
                  padding=((1, 1), (1, 1)), dilation=(1, 1), ceil_mode=False)
    fwd = Case.of("max_pool", 2, "forward", return_indices=True, **params)
    y, idx = backend.ops["max_pool"].forward(fwd, x, None, None)
    assert calls == ["max_indices_planned"]
    np.testing.assert_array_equal(idx, functional.max_pool(x, 3, stride=2, padding=1,
                                                           return_indices=True)[1])
    bwd = Case.of("max_pool", 2, "backward", **params)
    dx = backend.ops["max_pool"].backward(bwd, np.ones_like(y), x, None, None)["dx"]
    assert calls[1:] == ["max_indices_planned", "max_scatter_planned"], calls
    np.testing.assert_array_equal(dx, functional.max_pool_backward(np.ones_like(y), x, 3,
                                                                   stride=2, padding=1))
