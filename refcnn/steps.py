"""The notebook's single-step helpers, shared by the vectorized API and ``refcnn.loops``."""

from __future__ import annotations

import numbers

import numpy as np

from refcnn._params import as_padding, check_array, check_int


def zero_pad(X, pad):
    """Pad the height and width of a batch of images with zeros.

    Parameters
    ----------
    X : ndarray, shape (m, n_H, n_W, n_C)
    pad : int, (ph, pw) or ((top, bottom), (left, right))

    Returns
    -------
    X_pad : ndarray, shape (m, n_H + top + bottom, n_W + left + right, n_C), a new array
    """
    check_array(X, "X", 4)
    (t, b), (left, r) = as_padding(pad, "pad", words=False)
    return np.pad(X, ((0, 0), (t, b), (left, r), (0, 0)), mode="constant", constant_values=0)


def conv_single_step(a_slice_prev, W, b):
    """One output value: ``sum(a_slice_prev * W) + b``, summed in float64.

    Parameters
    ----------
    a_slice_prev : ndarray, shape (f_h, f_w, n_C_prev)
    W : ndarray, shape (f_h, f_w, n_C_prev)
    b : ndarray of one element, shape (1, 1, 1) in the notebook

    Returns
    -------
    Z : numpy.float64 scalar
    """
    check_array(a_slice_prev, "a_slice_prev")
    check_array(W, "W")
    check_array(b, "b")
    if a_slice_prev.shape != W.shape:
        raise ValueError(
            f"a_slice_prev and W must have the same shape, got {a_slice_prev.shape} and {W.shape}"
        )
    if b.size != 1:
        raise ValueError(f"b must hold exactly one value (shape (1, 1, 1)), got shape {b.shape}")
    total = np.sum(a_slice_prev.astype(np.float64) * W.astype(np.float64))
    return np.float64(total + np.float64(b.reshape(())))


def create_mask_from_window(x):
    """The notebook's mask ``x == max(x)``: True at **every** maximum.

    On ties this marks every maximum, so a gradient spread with it is counted
    once per tie. Frameworks (and ``refcnn.pool_backward``) route a window's
    gradient to the first maximum in row-major order instead; that is why
    ``pool_backward`` does not use this function.

    Parameters
    ----------
    x : ndarray, shape (f, f) (any shape is accepted)

    Returns
    -------
    mask : ndarray of bool, x's shape
    """
    check_array(x, "x")
    if x.size == 0:
        raise ValueError("x must not be empty")
    return x == np.max(x)


def distribute_value(dz, shape):
    """Spread ``dz`` evenly over a matrix of the given shape.

    Parameters
    ----------
    dz : real scalar
    shape : (n_H, n_W) of positive ints

    Returns
    -------
    a : ndarray, shape ``shape``, float64, every entry ``dz / (n_H * n_W)``
    """
    if isinstance(dz, np.ndarray) and dz.ndim == 0:
        dz = dz[()]
    if isinstance(dz, (bool, np.bool_)) or not isinstance(dz, numbers.Real):
        raise TypeError(f"dz must be a real scalar, got {dz!r}")
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"shape must be a pair (n_H, n_W), got {shape!r}")
    n_h = check_int(shape[0], "shape[0]")
    n_w = check_int(shape[1], "shape[1]")
    return np.full((n_h, n_w), float(dz) / (n_h * n_w))
