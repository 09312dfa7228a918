"""Convolution of any rank (1, 2 or 3 spatial dims) on the blocked 2-D path, channels-last,
with its gradients.

Every rank is brought to the 2-D functions of :mod:`refcnn.fast.im2col`, so that one
set of blocked kernels serves all of them:

* 1-D: the length becomes the height of an image one cell wide, a view without a
  copy (:func:`refcnn.fast.ndplan.lift`);
* 2-D: as it is;
* 3-D: 2-D convs over depth planes, their depth taps as channels
  (:mod:`refcnn.fast.depth`).

:func:`forward`, :func:`input_grad` and :func:`weight_grad` compute on a
:class:`refcnn.fast.ndplan.Geometry` and serve :mod:`refcnn.fast.transpose` and
:mod:`refcnn.fast.phases` too (a transposed conv is the adjoint of a conv).
Arguments and result dtypes are :mod:`refcnn.functional`'s, checked by the same code
(:mod:`refcnn._checks`).
"""

from __future__ import annotations

import numpy as np

from refcnn._checks import check_grad, conv_geometry
from refcnn.fast import depth, shared
from refcnn.fast.config import DEFAULT_CONFIG
from refcnn.fast.im2col import (channel_sums, conv2d_input_grad_planned, conv2d_planned,
                              conv2d_weight_grad_planned)
from refcnn.fast.ndplan import Geometry, acc_dtype, check_knobs, lift, plan2d, promoted

__all__ = ["conv", "conv_backward", "forward", "input_grad", "weight_grad", "bias_grad"]


def conv(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1, accumulate="float64",
         workspace_bytes=None, config=DEFAULT_CONFIG):
    """N-D cross-correlation, 1 to 3 spatial dims: :func:`refcnn.functional.conv` on the
    fast path.

    Parameters
    ----------
    x : ndarray, shape (N, *L, C_in)
    w : ndarray, shape (*kernel, C_in // groups, C_out)
    b : ndarray, shape (C_out,) or (1, ..., 1, C_out), optional
    stride, dilation : int or sequence of int, one per spatial axis
    padding : int, per axis, per side, 'same', 'same_lower' or 'valid'
    groups : int
    accumulate : {"float64", "native"}
        Sum in float64 (default) or in the inputs' precision (float16 sums in float32).
    workspace_bytes : int, optional
        Cap on the patch matrix built at once, and for 3-D on the taps' outputs (or
        inputs) built at once, at least one output row's or plane's worth; default
        ``DEFAULT_WORKSPACE_BYTES``.
    config : FastConfig, optional
        Block sizes (see :class:`refcnn.fast.FastConfig`).

    Returns
    -------
    y : ndarray, shape (N, *L_out, C_out), the inputs' promoted dtype
    """
    geo = Geometry.of(x, w, conv_geometry(x, w, b, stride, padding, dilation, groups))
    check_knobs(accumulate, workspace_bytes, config)
    return forward(geo, x, w, b, promoted(x, w, b), accumulate, workspace_bytes, config)


def conv_backward(dy, x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1,
                  accumulate="float64", workspace_bytes=None, config=DEFAULT_CONFIG):
    """Vector-Jacobian products of :func:`conv` with respect to x, w and b.

    Parameters
    ----------
    dy : ndarray, shape (N, *L_out, C_out)
    x, w, b, stride, padding, dilation, groups, accumulate, workspace_bytes, config
        As for :func:`conv`.

    Returns
    -------
    dx : ndarray, shape (N, *L, C_in)
    dw : ndarray, shape (*kernel, C_in // groups, C_out)
    db : ndarray in b's shape, or None when b is None
        All in the promoted dtype of dy, x, w (and b).
    """
    geo = Geometry.of(x, w, conv_geometry(x, w, b, stride, padding, dilation, groups))
    check_grad(dy, geo.out_shape)
    check_knobs(accumulate, workspace_bytes, config)
    dtype = promoted(dy, x, w, b)
    back = shared.flipped(geo)
    if back is not None:  # dx and dw from one patch matrix of dy
        dx, dwf = shared.forward_and_weight_grad(back, dy, shared.flip(w), x, dtype,
                                                 accumulate, workspace_bytes, config)
        dw = np.ascontiguousarray(shared.flip(dwf))
    elif geo.rank == 3 and not geo.empty:
        dx, dw = depth.backward(geo, dy, x, w, dtype, accumulate, workspace_bytes, config)
    else:
        dx = input_grad(geo, dy, w, dtype, accumulate, workspace_bytes, config)
        dw = weight_grad(geo, dy, x, dtype, accumulate, workspace_bytes, config)
    return dx, dw, bias_grad(dy, b, dtype, accumulate)


def forward(geo: Geometry, x, w, b, dtype, accumulate, workspace_bytes, config):
    """``y = conv(x, w) + b``, shape ``geo.out_shape``, in ``dtype`` (at least the
    promotion of x, w and b), the bias added before the one rounding to it."""
    if geo.empty:
        y = np.zeros(geo.out_shape, dtype)
        if b is not None:
            y += b.reshape(-1)
        return y
    if geo.rank == 3:
        return depth.forward(geo, x, w, b, dtype, accumulate, workspace_bytes, config)
    if promoted(x, w, b) != dtype:  # the 2-D path returns the promotion of its inputs
        x = x.astype(dtype)
    y = conv2d_planned(plan2d(geo, geo.x_shape, dtype), lift(x, 1), lift(w, 0),
                       None if b is None else b.reshape(-1), accumulate, workspace_bytes,
                       config)
    return y.reshape(geo.out_shape)


def input_grad(geo: Geometry, dy, w, dtype, accumulate, workspace_bytes, config):
    """dx, shape ``geo.x_shape``, in ``dtype``: the adjoint of ``x -> conv(x, w)``
    applied to ``dy``."""
    if geo.empty:
        return np.zeros(geo.x_shape, dtype)
    if geo.rank == 3:
        return depth.input_grad(geo, dy, w, dtype, accumulate, workspace_bytes, config)
    dx = conv2d_input_grad_planned(plan2d(geo, geo.x_shape, dtype), lift(dy, 1), lift(w, 0),
                                   dtype, accumulate, workspace_bytes, config)
    return dx.reshape(geo.x_shape)


def weight_grad(geo: Geometry, dy, x, dtype, accumulate, workspace_bytes, config):
    """dw, shape ``geo.w_shape``, in ``dtype``: the gradient of ``<dy, conv(x, w)>``
    with respect to w."""
    if geo.empty:
        return np.zeros(geo.w_shape, dtype)
    if geo.rank == 3:
        return depth.weight_grad(geo, dy, x, dtype, accumulate, workspace_bytes, config)
    dw = conv2d_weight_grad_planned(plan2d(geo, geo.x_shape, dtype), lift(dy, 1),
                                    lift(x, 1), dtype, accumulate, workspace_bytes, config)
    return dw.reshape(geo.w_shape)


def bias_grad(dy, b, dtype, accumulate):
    """db: dy summed over every axis but the channels, in b's shape and ``dtype``; None
    without b."""
    if b is None:
        return None
    db = channel_sums(dy, acc_dtype(accumulate, dtype))
    return db.reshape(b.shape).astype(dtype, copy=False)
