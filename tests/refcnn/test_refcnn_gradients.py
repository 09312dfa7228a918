"""Gradients: central finite differences in float64, and the adjoint identities
``<conv(x), g> == <x, dconv_x(g)>`` and ``<conv(x; w), g> == <w, dconv_w(g)>``.

Finite differences always differentiate the vectorized forward pass; the
backward pass under test is the vectorized one or the loop oracle.
"""

import numpy as np
import pytest

import refcnn
from refcnn import loops
from refcnn_helpers import CONV_CASES, POOL_CASES, ConvCase, PoolCase, rng

IMPLS = [pytest.param(refcnn, id="vectorized"), pytest.param(loops, id="loops")]

FD_CONV_CASES = [
    ConvCase(2, 4, 4, 2, (2, 2), 3, stride=2, pad=1),
    ConvCase(1, 5, 4, 2, (3, 2), 2, stride=(2, 1), pad=((0, 2), (1, 0)), dilation=(1, 2)),
    ConvCase(1, 5, 5, 4, (3, 3), 4, stride=2, pad="same", groups=2),
    ConvCase(1, 5, 5, 3, (3, 3), 3, stride=3, pad=1, groups=3),
    ConvCase(1, 8, 8, 1, (3, 3), 2, stride=2, pad="same"),
]
FD_POOL_CASES = [
    PoolCase(1, 5, 5, 2, 2, 2, pad=1, ceil_mode=True),
    PoolCase(1, 5, 5, 2, 3, 2, pad=1, count_include_pad=False),
    PoolCase(1, 6, 6, 1, 3, 2, pad=1, ceil_mode=True, divisor_override=4),
    PoolCase(1, 7, 7, 1, 3, 1, pad=2, dilation=2),
    PoolCase(1, 6, 7, 2, (2, 3), (1, 2), pad=((1, 0), (0, 1))),
]

STEP = 1e-6


def _numeric_grad(f, arr, step=STEP):
    """Central differences of the scalar ``f()`` with respect to every entry of ``arr``
    (perturbed in place on a private copy)."""
    grad = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + step
        up = f()
        arr[idx] = old - step
        down = f()
        arr[idx] = old
        grad[idx] = (up - down) / (2 * step)
    return grad


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("case", FD_CONV_CASES, ids=[c.id for c in FD_CONV_CASES])
def test_conv_backward_matches_finite_differences(case, api):
    x, w, b = case.arrays(np.float64)
    hp = case.hparameters
    z, _ = refcnn.conv_forward(x, w, b, hp)
    g = rng(case.id, "g").standard_normal(z.shape)

    def loss():
        return float(np.sum(refcnn.conv_forward(x, w, b, hp)[0] * g))

    dA, dW, db = api.conv_backward(g, (x.copy(), w.copy(), b.copy(), hp))
    for name, analytic, arr in (("dA_prev", dA, x), ("dW", dW, w), ("db", db, b)):
        numeric = _numeric_grad(loss, arr)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-6,
                                   err_msg=f"{case.id}: {name} vs central differences")


def _separated(shape, key):
    """Values at least 0.1 apart (no ties within 2 * STEP), in random order."""
    n = int(np.prod(shape))
    return (rng(key).permutation(n) * 0.1 - n * 0.05).reshape(shape).astype(np.float64)


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("case", FD_POOL_CASES, ids=[c.id for c in FD_POOL_CASES])
def test_pool_backward_matches_finite_differences(case, mode, api):
    x = _separated((case.n, case.h, case.w, case.c), case.id)
    hp = case.hparameters_for(mode)
    a, _ = refcnn.pool_forward(x, hp, mode)
    g = rng(case.id, "g").standard_normal(a.shape)

    def loss():
        return float(np.sum(refcnn.pool_forward(x, hp, mode)[0] * g))

    analytic = api.pool_backward(g, (x.copy(), hp), mode)
    numeric = _numeric_grad(loss, x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-6,
                               err_msg=f"{case.id} {mode}: dA_prev vs central differences")


# ----------------------------------------------------------------------------- adjoint identities

@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("case", CONV_CASES, ids=[c.id for c in CONV_CASES])
def test_conv_adjoint_identity(case, api):
    """conv is linear in x (and in w) once the bias is zero: its backward pass is the adjoint."""
    x, w, b = case.arrays(np.float64)
    zero_b = np.zeros_like(b)
    z, cache = refcnn.conv_forward(x, w, zero_b, case.hparameters)
    g = rng(case.id, "g").standard_normal(z.shape)
    dA, dW, db = api.conv_backward(g, cache)
    lhs = float(np.vdot(z, g))
    scale = float(np.abs(z).sum() * np.abs(g).max()) + 1.0
    assert abs(lhs - float(np.vdot(x, dA))) <= 1e-12 * scale, \
        f"{case.id}: <conv(x), g> = {lhs} != <x, dA_prev(g)> = {np.vdot(x, dA)}"
    assert abs(lhs - float(np.vdot(w, dW))) <= 1e-12 * scale, \
        f"{case.id}: <conv(w), g> = {lhs} != <w, dW(g)> = {np.vdot(w, dW)}"
    np.testing.assert_allclose(db.reshape(-1), g.sum(axis=(0, 1, 2)), rtol=1e-12, atol=1e-12,
                               err_msg=f"{case.id}: db must be dZ summed over batch and space")


@pytest.mark.parametrize("case", CONV_CASES[:8], ids=[c.id for c in CONV_CASES[:8]])
def test_conv2d_core_adjoint_identity(case):
    x, w, _ = case.arrays(np.float64)
    y = refcnn.conv2d(x, w, **case.core_kwargs)
    g = rng(case.id, "g").standard_normal(y.shape)
    dx, dw, db = refcnn.conv2d_backward(g, x, w, **case.core_kwargs)
    scale = float(np.abs(y).sum() * np.abs(g).max()) + 1.0
    assert abs(np.vdot(y, g) - np.vdot(x, dx)) <= 1e-12 * scale, f"{case.id}: dx adjoint"
    assert abs(np.vdot(y, g) - np.vdot(w, dw)) <= 1e-12 * scale, f"{case.id}: dw adjoint"
    assert db.shape == (case.c_out,)


@pytest.mark.parametrize("api", IMPLS)
@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[c.id for c in POOL_CASES])
def test_pool_adjoint_identity(case, mode, api):
    """Average pooling is linear; max pooling is linear on the selected cells:
    both satisfy <pool(x), g> == <x, dpool(g)>."""
    x = case.array(np.float64)
    hp = case.hparameters_for(mode)
    a, cache = refcnn.pool_forward(x, hp, mode)
    g = rng(case.id, "g").standard_normal(a.shape)
    dx = api.pool_backward(g, cache, mode)
    lhs, rhs = float(np.vdot(a, g)), float(np.vdot(x, dx))
    assert abs(lhs - rhs) <= 1e-12 * (float(np.abs(a).sum() * np.abs(g).max()) + 1.0), \
        f"{case.id} {mode}: <pool(x), g> = {lhs} != <x, dpool(g)> = {rhs}"
