"""Smoke check: the torch, jax and jax.nchw backends agree with the refcnn backend.

A fixed list of cases (conv with groups, dilation, strides, asymmetric pads,
'same'/'valid'; max and average pooling with ceil_mode, count_include_pad and
divisor_override; float64 and float32), each run by every framework backend.
A backend that cannot express a case skips it with its own reason; the cases
each backend is expected to refuse are pinned in ``test_unsupported_reasons``.
Plain ``assert_allclose`` tolerances: the bound-aware comparison lives elsewhere.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from crosscheck import Case, Inputs, make_inputs
from crosscheck.backends import get_backend
from sweep_helpers import load_backend

FRAMEWORKS = {"torch": "torch", "jax": "jax", "jax.nchw": "jax"}
RTOL = {"float64": 1e-10, "float32": 1e-4}


def _conv(direction, n, h, w, c, o, k, s=(1, 1), p=((0, 0), (0, 0)), d=(1, 1), g=1,
          dtype="float64", **kw):
    return Case.legacy_2d("conv2d", direction, n, h, w, c, o, k, s, p, d, g, dtype=dtype, **kw)


def _pool(op, direction, n, h, w, c, k, s, p=((0, 0), (0, 0)), d=(1, 1), dtype="float64", **kw):
    return Case.legacy_2d(op, direction, n, h, w, c, c, k, s, p, d, dtype=dtype, **kw)


def _max(*a, **kw):
    return _pool("max_pool2d", *a, **kw)


def _avg(*a, **kw):
    return _pool("avg_pool2d", *a, **kw)


P1 = ((1, 1), (1, 1))
CASES = [
    # ---- conv2d ---------------------------------------------------------------------------
    _conv("forward", 2, 7, 5, 4, 6, (3, 3), (2, 1), ((1, 0), (0, 2)), g=2),
    _conv("backward", 2, 7, 5, 4, 6, (3, 3), (2, 1), ((1, 0), (0, 2)), g=2),
    _conv("forward", 1, 6, 7, 3, 4, (3, 3), p="same"),
    _conv("backward", 2, 8, 9, 2, 3, (3, 3), p="same", d=(2, 2)),
    _conv("forward", 1, 9, 8, 2, 3, (4, 2), p="same"),  # even kernel: odd pad at end
    _conv("forward", 1, 16, 9, 2, 2, (7, 3), (2, 2), "same"),            # strided 'same'
    _conv("backward", 2, 9, 8, 3, 4, (3, 2), (2, 2), "valid", dtype="float32"),
    _conv("backward", 1, 8, 8, 4, 8, (3, 3), p=P1, d=(2, 1), g=4),       # depthwise x2
    _conv("forward", 2, 10, 11, 3, 5, (3, 2), (1, 2), ((2, 2), (1, 1)), (2, 3), dtype="float32"),
    _conv("backward", 1, 6, 6, 3, 2, (2, 2), p=((0, 1), (1, 0)), bias=False),
    _conv("forward", 3, 5, 4, 6, 4, (1, 1), dtype="float32"),
    _conv("backward", 2, 9, 7, 4, 4, (3, 3), (2, 2), ((2, 0), (1, 2)), dtype="float32"),
    _conv("backward", 2, 16, 16, 8, 16, (3, 3), p=P1, dtype="float32"),
    _conv("forward", 1, 11, 9, 3, 5, (5, 3), (3, 2), ((2, 2), (1, 1)), (1, 2), dtype="float32"),
    _conv("backward", 1, 7, 7, 6, 9, (2, 3), p="valid", g=3, dtype="float32"),
    # ---- max_pool2d -----------------------------------------------------------------------
    _max("forward", 2, 6, 6, 3, (2, 2), (2, 2)),
    _max("backward", 2, 7, 6, 3, (3, 3), (2, 2), P1),
    _max("forward", 1, 5, 5, 2, (2, 2), (2, 2), P1, ceil_mode=True),        # L=5,f=2,s=2,p=1 -> 3
    _max("backward", 1, 9, 9, 2, (4, 4), (4, 4), ((2, 2), (2, 2)), ceil_mode=True),  # drops one
    _max("forward", 1, 9, 8, 2, (3, 3), (1, 2), P1, (2, 2)),
    _max("backward", 1, 8, 8, 2, (2, 2), (1, 1), d=(2, 2)),               # JAX: no VJP
    _max("backward", 2, 7, 6, 3, (3, 2), (2, 2), ((1, 0), (0, 1)), dtype="float32"),  # asym
    _max("forward", 1, 7, 7, 2, (3, 3), (2, 2), "same"),
    _max("forward", 1, 6, 5, 2, (3, 3), (1, 1), ((2, 2), (2, 2))),        # pad > kernel//2
    _max("backward", 2, 8, 7, 3, (3, 3), (1, 1), P1, dtype="float32"),
    _max("forward", 1, 7, 7, 2, (2, 2), (2, 2), ((0, 1), (1, 0)), ceil_mode=True),
    _max("forward", 1, 10, 7, 3, (3, 3), (2, 2), P1, ceil_mode=True, dtype="float32"),
    _max("backward", 1, 9, 9, 2, (3, 3), (1, 1), ((2, 2), (2, 2)), (2, 2)),  # pytorch#7541
    # ---- avg_pool2d -----------------------------------------------------------------------
    _avg("forward", 2, 6, 6, 3, (2, 2), (2, 2)),
    _avg("backward", 2, 7, 6, 3, (3, 3), (2, 2), P1),
    _avg("backward", 2, 7, 6, 3, (3, 3), (2, 2), P1, count_include_pad=False),
    _avg("forward", 1, 5, 5, 2, (2, 2), (2, 2), P1, ceil_mode=True),
    _avg("backward", 1, 9, 9, 2, (4, 4), (4, 4), ((2, 2), (2, 2)), ceil_mode=True,
         count_include_pad=False),
    _avg("forward", 1, 6, 6, 2, (3, 3), (2, 2), P1, ceil_mode=True),       # ceil adds cells
    _avg("forward", 1, 7, 6, 2, (3, 3), (2, 2), P1, divisor_override=3),
    _avg("backward", 1, 6, 7, 2, (3, 3), (2, 2), P1, ceil_mode=True, divisor_override=5),
    _avg("backward", 2, 7, 6, 3, (3, 2), (2, 1), ((1, 0), (0, 1)), dtype="float32"),  # asym
    _avg("forward", 1, 7, 6, 2, (3, 2), (2, 1), ((1, 0), (0, 1)), count_include_pad=False),
    _avg("forward", 1, 8, 8, 2, (2, 2), (1, 1), d=(2, 2)),
    _avg("forward", 1, 8, 9, 2, (3, 3), (2, 2), "same"),
    _avg("backward", 2, 10, 10, 3, (3, 3), (3, 3), P1, ceil_mode=True, dtype="float32"),
]

#: (backend, case id) -> a word its unsupported() reason must contain.
EXPECTED_UNSUPPORTED = {
    ("torch", "max_pool2d-fwd-n1h7w7c2-k2x2-s2x2-p0.1.1.0-d1x1-ceil-float64-s0"): "ceil_mode",
    ("torch", "avg_pool2d-fwd-n1h7w6c2-k3x2-s2x1-p1.0.0.1-d1x1-excl-float64-s0"):
        "count_include_pad=False",
    ("torch", "avg_pool2d-fwd-n1h8w8c2-k2x2-s1x1-p0.0.0.0-d2x2-float64-s0"): "dilation",
    **{(jax_name, case_id): "dilation" for jax_name in ("jax", "jax.nchw") for case_id in (
        "max_pool2d-bwd-n1h8w8c2-k2x2-s1x1-p0.0.0.0-d2x2-float64-s0",
        "max_pool2d-bwd-n1h9w9c2-k3x3-s1x1-p2.2.2.2-d2x2-float64-s0")},
}


def _backend(name):
    pytest.importorskip(FRAMEWORKS.get(name, name))
    return load_backend(name)


@functools.lru_cache(maxsize=None)
def _reference(case: Case):
    inputs = make_inputs(case)
    return inputs, get_backend("refcnn").run(case, inputs)


def _check(backend, case: Case, inputs: Inputs, want: dict):
    got = backend.run(case, inputs)
    assert sorted(got) == sorted(want), f"{backend.name} {case.id}: outputs {sorted(got)}"
    rtol = RTOL[case.dtype]
    for key, ref in want.items():
        out = got[key]
        assert out.dtype == np.float64, f"{backend.name} {case.id}: {key} is {out.dtype}"
        assert out.shape == ref.shape, (
            f"{backend.name} {case.id}: {key} shape {out.shape}, refcnn {ref.shape}")
        # rtol, with an absolute floor scaled to the output's size for values near zero.
        atol = rtol * max(float(np.max(np.abs(ref), initial=0.0)), 1.0)
        np.testing.assert_allclose(
            out, ref, rtol=rtol, atol=atol,
            err_msg=f"{backend.name} vs refcnn on {key}; rerun: Case.from_id({case.id!r})")


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_agrees_with_refcnn(name, case):
    backend = _backend(name)
    reason = backend.unsupported(case)
    if reason:
        pytest.skip(f"{name} unsupported: {reason}")
    inputs, want = _reference(case)
    _check(backend, case, inputs, want)


@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_unsupported_reasons(name):
    backend = _backend(name)
    ids = {case.id for case in CASES}
    assert {i for _, i in EXPECTED_UNSUPPORTED} <= ids, "EXPECTED_UNSUPPORTED names unknown cases"
    for case in CASES:
        reason = backend.unsupported(case)
        expected = EXPECTED_UNSUPPORTED.get((name, case.id))
        if expected is None:
            assert reason is None, f"{name} unexpectedly refuses {case.id}: {reason}"
        else:
            assert reason and expected in reason, (
                f"{name} on {case.id}: reason {reason!r} should mention {expected!r}")


# ---- max-pool ties and NaN, with hand-made inputs ------------------------------------------
def _row_case(length, k, dtype="float64"):
    return Case.legacy_2d("max_pool2d", "backward", 1, 1, length, 1, 1, (1, k), (1, 1), dtype=dtype)


def _row_inputs(row, out_len):
    x = np.asarray(row, dtype=np.float64).reshape(1, 1, -1, 1)
    return Inputs(x=x, w=None, b=None, dy=np.ones((1, 1, out_len, 1)))


@pytest.mark.parametrize("name", ["refcnn", *FRAMEWORKS])
def test_max_pool_ties_route_to_first_maximum(name):
    # semantics.md: row [1,3,3,1,3], window 3, stride 1: gradient of the sum is [0,2,1,0,0].
    backend = _backend(name) if name != "refcnn" else get_backend(name)
    case = _row_case(5, 3)
    dx = backend.run(case, _row_inputs([1, 3, 3, 1, 3], 3))["dx"].ravel()
    np.testing.assert_array_equal(dx, [0, 2, 1, 0, 0], err_msg=f"{name} tie routing")


@pytest.mark.parametrize("name, row, want_y, want_dx", [
    # torch: NaN wins (the last NaN in window order takes the gradient).
    ("torch", [1, np.nan, 3, 1, 3], [np.nan, np.nan, 3], [0, 2, 1, 0, 0]),
    ("torch", [np.nan, 2, np.nan, 1, 0], [np.nan, np.nan, np.nan], [0, 0, 3, 0, 0]),
    # JAX: NaN output, but the VJP's select (keep current iff current >= next) forgets
    # everything up to a NaN: the gradient goes to the first maximum after the last NaN,
    # or to that NaN when it ends the window. Not simply "the largest non-NaN".
    ("jax", [1, np.nan, 3, 1, 3], [np.nan, np.nan, 3], [0, 0, 3, 0, 0]),
    ("jax", [np.nan, 2, np.nan, 1, 0], [np.nan, np.nan, np.nan], [0, 0, 1, 2, 0]),
    ("refcnn", [1, np.nan, 3, 1, 3], [np.nan, np.nan, 3], [0, 2, 1, 0, 0]),
    ("refcnn", [np.nan, 2, np.nan, 1, 0], [np.nan, np.nan, np.nan], [0, 0, 3, 0, 0]),
])
def test_max_pool_nan_routing(name, row, want_y, want_dx):
    backend = _backend(name) if name != "refcnn" else get_backend(name)
    case = _row_case(len(row), 3)
    inputs = _row_inputs(row, len(want_y))
    y = backend.run(case.with_(direction="forward"), inputs)["y"].ravel()
    np.testing.assert_array_equal(y, want_y, err_msg=f"{name} NaN forward")
    dx = backend.run(case, inputs)["dx"].ravel()
    np.testing.assert_array_equal(dx, want_dx, err_msg=f"{name} NaN routing")


def test_jax_max_pool_dilation_gradient_really_is_missing():
    # Pins the reason JaxBackend.unsupported gives: if JAX gains this VJP, drop the refusal.
    pytest.importorskip("jax")
    import jax
    from jax import lax

    x = np.arange(8.0).reshape(1, 8, 1, 1)
    f = lambda x: lax.reduce_window(x, -np.inf, lax.max, (1, 2, 1, 1), (1, 1, 1, 1),  # noqa: E731
                                    "VALID", window_dilation=(1, 2, 1, 1))
    with pytest.raises(NotImplementedError, match="dilation"):
        jax.vjp(f, x)[1](np.ones((1, 6, 1, 1)))


@pytest.mark.parametrize("name, want_dx", [
    # torch starts each window's scan at its first *real* cell; so does refcnn.
    ("refcnn", [2, 0]), ("torch", [2, 0]),
    # JAX's select starts at the first tap, padding included: a window whose first tap is
    # padding keeps it (-inf >= -inf), so that window's gradient is lost.
    ("jax", [1, 0]), ("jax.nchw", [1, 0]),
])
def test_max_pool_all_minus_inf_window(name, want_dx):
    backend = _backend(name) if name != "refcnn" else get_backend(name)
    case = Case.legacy_2d("max_pool2d", "backward", 1, 1, 2, 1, 1, (1, 3), (1, 1), ((0, 0), (1, 1)))
    inputs = Inputs(x=np.full((1, 1, 2, 1), -np.inf), w=None, b=None, dy=np.ones((1, 1, 2, 1)))
    y = backend.run(case.with_(direction="forward"), inputs)["y"].ravel()
    np.testing.assert_array_equal(y, [-np.inf, -np.inf], err_msg=f"{name} all -inf forward")
    dx = backend.run(case, inputs)["dx"].ravel()
    np.testing.assert_array_equal(dx, want_dx, err_msg=f"{name} all -inf routing")
