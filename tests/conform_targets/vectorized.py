"""A correct vectorized implementation: NumPy stride tricks and einsum, no Python loops over pixels."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def zero_pad(X, pad):
    return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def conv_single_step(a_slice_prev, W, b):
    return float(np.sum(a_slice_prev * W) + np.sum(b))


def _windows(A, f, stride):
    """(m, n_H, n_W, C, f, f) strided windows of A (m, H, W, C)."""
    return sliding_window_view(A, (f, f), axis=(1, 2))[:, ::stride, ::stride]


def conv_forward(A_prev, W, b, hparameters):
    stride, pad = hparameters["stride"], hparameters["pad"]
    f = W.shape[0]
    win = _windows(zero_pad(A_prev, pad), f, stride)
    Z = np.einsum("mhwcij,ijco->mhwo", win, W) + b.reshape(1, 1, 1, -1)
    return Z, {"A_prev": A_prev, "W": W, "b": b, "stride": stride, "pad": pad}


def conv_backward(dZ, cache):
    A_prev, W, stride, pad = cache["A_prev"], cache["W"], cache["stride"], cache["pad"]
    f = W.shape[0]
    m, n_H, n_W, _ = dZ.shape
    A_pad = zero_pad(A_prev, pad)
    dW = np.einsum("mhwcij,mhwo->ijco", _windows(A_pad, f, stride), dZ)
    db = dZ.sum(axis=(0, 1, 2)).reshape(1, 1, 1, -1)
    dA_pad = np.zeros_like(A_pad, dtype=float)
    for i in range(f):
        for j in range(f):
            dA_pad[:, i:i + stride * n_H:stride, j:j + stride * n_W:stride, :] += np.einsum(
                "mhwo,co->mhwc", dZ, W[i, j])
    H, Wd = A_prev.shape[1:3]
    return dA_pad[:, pad:pad + H, pad:pad + Wd, :], dW, db


def pool_forward(A_prev, hparameters, mode="max"):
    f, stride = hparameters["f"], hparameters["stride"]
    win = _windows(A_prev, f, stride)
    A = win.max(axis=(4, 5)) if mode == "max" else win.mean(axis=(4, 5))
    return A, (A_prev, dict(hparameters))


def create_mask_from_window(x):
    return x == np.max(x)


def distribute_value(dz, shape):
    return np.full(shape, dz / (shape[0] * shape[1]))


def pool_backward(dA, cache, mode="max"):
    A_prev, hp = cache
    f, stride = hp["f"], hp["stride"]
    m, n_H, n_W, C = dA.shape
    dA_prev = np.zeros(A_prev.shape)
    for i in range(f):
        for j in range(f):
            rows = slice(i, i + stride * n_H, stride)
            cols = slice(j, j + stride * n_W, stride)
            if mode == "max":
                win = _windows(A_prev, f, stride)[:, :n_H, :n_W]
                mask = A_prev[:, rows, cols, :] == win.max(axis=(4, 5))
                dA_prev[:, rows, cols, :] += mask * dA
            else:
                dA_prev[:, rows, cols, :] += dA / (f * f)
    return dA_prev
