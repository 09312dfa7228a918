"""Convolution and pooling of any rank (1, 2 or 3 spatial dims), channels-last.

The public face of :mod:`refcnn.spec`: each function checks its arguments (a
``TypeError`` for the wrong kind of object, a ``ValueError`` for a wrong value,
naming the parameter and the expected form, from sizes alone and before any
array is allocated), computes in float64 and returns the inputs' promoted
floating dtype (float16, float32 or float64). Caller arrays are never modified;
any strides (views, transposes, read-only arrays) give the same result as a
contiguous copy.

Layouts: inputs ``(N, *spatial, C)``; conv weights ``(*kernel, C_in // groups,
C_out)``; transposed-conv weights ``(*kernel, C_out // groups, C_in)``, the same
array as the conv they transpose. Conventions are torch's (see
:mod:`refcnn.spec` and :mod:`refcnn.geometry`).

Padding forms: an int (every side), a sequence with one entry per spatial axis,
each an int (both sides) or a pair ``(before, after)``, and for conv and pooling
the words ``'same'`` (output ``ceil(L / stride)``, the odd pixel after),
``'same_lower'`` (the odd pixel before) and ``'valid'`` (no padding).

Every op also has its forward-mode derivative ``*_jvp`` (the output's tangent for
tangents of the differentiable inputs: ``tx`` for x, ``tw`` for w, ``tb`` for b) and
its second-order one ``*_double_backward``: the vector-Jacobian product of ``*_backward``
for cotangents of its outputs (``gx`` for dx, ``gw`` for dw, ``gb`` for db), which
gives the gradients with respect to its inputs ``dy`` (``ddy``), and x and w where it
depends on them: ``(ddy, dx, dw)`` for conv, ``(ddy, dx)`` for max pools (dx is zero:
the routing is piecewise constant in x), ``ddy`` alone for average pools (their
backward does not read x). A max pool's tangent takes each window's cell that its
indices name (ties and NaN as in :func:`max_pool`).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refcnn import geometry, spec
from refcnn._checks import (PAD_WORDS, check_fits, check_grad, check_input, conv_geometry,
                            transpose_geometry)
from refcnn._params import as_pads, as_tuple, check_array, check_flag, check_int, promoted

__all__ = [
    "conv", "conv_backward", "conv_transpose", "conv_transpose_backward",
    "max_pool", "max_pool_backward", "avg_pool", "avg_pool_backward",
    "adaptive_avg_pool", "adaptive_avg_pool_backward",
    "adaptive_max_pool", "adaptive_max_pool_backward",
    "conv_jvp", "conv_double_backward", "conv_transpose_jvp", "conv_transpose_double_backward",
    "max_pool_jvp", "max_pool_double_backward", "avg_pool_jvp", "avg_pool_double_backward",
    "adaptive_avg_pool_jvp", "adaptive_avg_pool_double_backward",
    "adaptive_max_pool_jvp", "adaptive_max_pool_double_backward",
]

# Convolution --------------------------------------------------------------------------

def conv(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
    """N-D cross-correlation (what every framework calls convolution), 1 to 3 spatial dims.

    Parameters
    ----------
    x : ndarray, shape (N, *L, C_in)
    w : ndarray, shape (*kernel, C_in // groups, C_out)
    b : ndarray, shape (C_out,) or (1, ..., 1, C_out), optional
    stride, dilation : int or sequence of int, one per spatial axis
    padding : int, per axis, per side, 'same', 'same_lower' or 'valid'
    groups : int
        Output channel ``k`` reads the input channels of group ``k // (C_out / groups)``.

    Returns
    -------
    y : ndarray, shape (N, *L_out, C_out), the inputs' promoted dtype
        ``L_out = floor((L + before + after - dilation*(kernel-1) - 1) / stride) + 1``.
    """
    g = conv_geometry(x, w, b, stride, padding, dilation, groups)
    y = spec.conv(_f64(x), _f64(w), _f64(b), g.stride, g.pads, g.dilation, g.groups)
    return y.astype(promoted(x, w, b), copy=False)


def conv_backward(dy, x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
    """Vector-Jacobian products of :func:`conv` with respect to x, w and b.

    Parameters
    ----------
    dy : ndarray, shape (N, *L_out, C_out)
        Gradient of the loss with respect to the conv output.
    x, w, b, stride, padding, dilation, groups
        As for :func:`conv`.

    Returns
    -------
    dx : ndarray, shape (N, *L, C_in)
    dw : ndarray, shape (*kernel, C_in // groups, C_out)
    db : ndarray in b's shape, or None when b is None
        All in the promoted dtype of dy, x, w (and b).
    """
    g = conv_geometry(x, w, b, stride, padding, dilation, groups)
    check_grad(dy, g.out_shape)
    grads = spec.conv_vjp(_f64(dy), _f64(x), _f64(w), b, g.stride, g.pads, g.dilation,
                          g.groups)
    return _grads(grads, (x.shape, w.shape, None if b is None else b.shape), dy, x, w, b)


def conv_transpose(x, w, b=None, *, stride=1, padding=0, output_padding=0, dilation=1,
                   groups=1):
    """N-D transposed convolution: the adjoint of :func:`conv` with the same weight array.

    Parameters
    ----------
    x : ndarray, shape (N, *L, C_in)
    w : ndarray, shape (*kernel, C_out // groups, C_in)
        The weights of the conv from the output (C_out channels) to x (C_in), as in
        TensorFlow; torch's ``(C_in, C_out // groups, *kernel)`` is
        ``w.transpose(rank + 1, rank, *range(rank))``.
    b : ndarray, shape (C_out,) or (1, ..., 1, C_out), optional
    stride, dilation : int or sequence of int, one per spatial axis
    padding : int, per axis or per side ('valid' means 0)
        Cropped from the full output, as in torch.
    output_padding : int or sequence of int, each < max(stride, dilation) on its axis
        Cells added after the last output position.
    groups : int

    Returns
    -------
    y : ndarray, shape (N, *L_out, C_out), the inputs' promoted dtype
        ``L_out = (L-1)*stride - before - after + dilation*(kernel-1) + output_padding + 1``.
    """
    g = transpose_geometry(x, w, b, stride, padding, output_padding, dilation, groups)
    y = spec.conv_transpose(_f64(x), _f64(w), _f64(b), g.stride, g.pads, g.dilation,
                            g.groups, g.output_padding)
    return y.astype(promoted(x, w, b), copy=False)


def conv_transpose_backward(dy, x, w, b=None, *, stride=1, padding=0, output_padding=0,
                            dilation=1, groups=1):
    """Vector-Jacobian products of :func:`conv_transpose` with respect to x, w and b.

    Parameters
    ----------
    dy : ndarray, shape (N, *L_out, C_out)
    x, w, b, stride, padding, output_padding, dilation, groups
        As for :func:`conv_transpose`.

    Returns
    -------
    dx : ndarray, shape (N, *L, C_in)
    dw : ndarray, shape (*kernel, C_out // groups, C_in)
    db : ndarray in b's shape, or None when b is None
        All in the promoted dtype of dy, x, w (and b).
    """
    g = transpose_geometry(x, w, b, stride, padding, output_padding, dilation, groups)
    check_grad(dy, g.out_shape)
    grads = spec.conv_transpose_vjp(_f64(dy), _f64(x), _f64(w), b, g.stride, g.pads,
                                    g.dilation, g.groups)
    return _grads(grads, (x.shape, w.shape, None if b is None else b.shape), dy, x, w, b)


# Pooling ------------------------------------------------------------------------------

def max_pool(x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False):
    """N-D max pooling, 1 to 3 spatial dims; padding is -inf.

    Parameters
    ----------
    x : ndarray, shape (N, *L, C)
    kernel_size, dilation : int or sequence of int, one per spatial axis
    stride : int, sequence of int or None (default: kernel_size)
    padding : int, per axis, per side, 'same', 'same_lower' or 'valid'
        Any padding such that every window holds at least one input cell.
    ceil_mode : bool
        Round the output size up, dropping a last window that would start in the
        right padding (torch's rule).
    return_indices : bool

    Returns
    -------
    y : ndarray, shape (N, *L_out, C), x's dtype
        A window holding NaN gives NaN; an all -inf window gives -inf.
    indices : ndarray of int64, shape (N, *L_out, C), only with return_indices
        torch's indices: the flat row-major index into each (n, c) input plane of
        the first maximum in row-major window order (the last NaN if any; the
        first input cell of a window of -inf).
    """
    check_flag(return_indices, "return_indices")
    g = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    y, indices = spec.max_pool(_f64(x), g.kernel, g.stride, g.dilation, g.pads, ceil_mode)
    y = y.astype(x.dtype, copy=False)
    return (y, indices) if return_indices else y


def max_pool_backward(dy, x, kernel_size, *, stride=None, padding=0, dilation=1,
                      ceil_mode=False, return_indices=False):
    """Gradient of :func:`max_pool` with respect to x.

    Each window's gradient goes to the cell :func:`max_pool`'s indices name;
    overlapping windows add up.

    Parameters
    ----------
    dy : ndarray, shape (N, *L_out, C)
    x, kernel_size, stride, padding, dilation, ceil_mode
        As for :func:`max_pool`.
    return_indices : bool
        Accepted and ignored, so the forward's options can be passed as they are.

    Returns
    -------
    dx : ndarray, shape (N, *L, C), the promoted dtype of dy and x
    """
    check_flag(return_indices, "return_indices")
    g = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    check_grad(dy, g.out_shape)
    dx = spec.max_pool_vjp(_f64(dy), _f64(x), g.kernel, g.stride, g.dilation, g.pads,
                           ceil_mode)
    return dx.astype(promoted(dy, x), copy=False)


def avg_pool(x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
             count_include_pad=True, divisor_override=None):
    """N-D average pooling, 1 to 3 spatial dims; padding is 0.

    Parameters
    ----------
    x : ndarray, shape (N, *L, C)
    kernel_size, stride, padding, dilation, ceil_mode
        As for :func:`max_pool`.
    count_include_pad : bool
        Divide by the taps inside the explicitly padded input (True) or by the
        taps on input cells (False). The cells ceil_mode adds never count.
    divisor_override : int, optional
        Divide every window by this instead.

    Returns
    -------
    y : ndarray, shape (N, *L_out, C), x's dtype
    """
    g = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode,
                       count_include_pad, divisor_override)
    y = spec.avg_pool(_f64(x), g.kernel, g.stride, g.dilation, g.pads, ceil_mode,
                      count_include_pad, divisor_override)
    return y.astype(x.dtype, copy=False)


def avg_pool_backward(dy, x, kernel_size, *, stride=None, padding=0, dilation=1,
                      ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Gradient of :func:`avg_pool` with respect to x.

    Parameters
    ----------
    dy : ndarray, shape (N, *L_out, C)
    x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override
        As for :func:`avg_pool`.

    Returns
    -------
    dx : ndarray, shape (N, *L, C), the promoted dtype of dy and x
    """
    g = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode,
                       count_include_pad, divisor_override)
    check_grad(dy, g.out_shape)
    dx = spec.avg_pool_vjp(_f64(dy), _f64(x), g.kernel, g.stride, g.dilation, g.pads,
                           ceil_mode, count_include_pad, divisor_override)
    return dx.astype(promoted(dy, x), copy=False)


# Adaptive pooling ---------------------------------------------------------------------

def adaptive_avg_pool(x, output_size):
    """Adaptive average pooling, 1 to 3 spatial dims (output size 1: global pooling).

    Parameters
    ----------
    x : ndarray, shape (N, *L, C)
    output_size : int or sequence of (int or None), one per spatial axis
        None keeps that axis's input size; 0 gives an empty output, as in torch.
        Output position ``i`` of an axis of length L averages the cells
        ``[floor(i*L/out), ceil((i+1)*L/out))``.

    Returns
    -------
    y : ndarray, shape (N, *output_size, C), x's dtype
    """
    out = _adaptive_geometry(x, output_size)
    return spec.adaptive_avg_pool(_f64(x), out).astype(x.dtype, copy=False)


def adaptive_avg_pool_backward(dy, x, output_size):
    """Gradient of :func:`adaptive_avg_pool` with respect to x.

    Parameters
    ----------
    dy : ndarray, shape (N, *output_size, C)
    x, output_size
        As for :func:`adaptive_avg_pool`.

    Returns
    -------
    dx : ndarray, shape (N, *L, C), the promoted dtype of dy and x
    """
    out = _adaptive_geometry(x, output_size)
    check_grad(dy, (x.shape[0], *out, x.shape[-1]))
    return spec.adaptive_avg_pool_vjp(_f64(dy), x.shape).astype(promoted(dy, x), copy=False)


def adaptive_max_pool(x, output_size, return_indices=False):
    """Adaptive max pooling, 1 to 3 spatial dims, with torch's indices.

    Parameters
    ----------
    x : ndarray, shape (N, *L, C)
    output_size : int or sequence of (int or None)
        As for :func:`adaptive_avg_pool`.
    return_indices : bool

    Returns
    -------
    y : ndarray, shape (N, *output_size, C), x's dtype
    indices : ndarray of int64, shape (N, *output_size, C), only with return_indices
        Same rules as :func:`max_pool`'s (first maximum, last NaN).
    """
    check_flag(return_indices, "return_indices")
    out = _adaptive_geometry(x, output_size)
    y, indices = spec.adaptive_max_pool(_f64(x), out)
    y = y.astype(x.dtype, copy=False)
    return (y, indices) if return_indices else y


def adaptive_max_pool_backward(dy, x, output_size):
    """Gradient of :func:`adaptive_max_pool` with respect to x.

    Parameters
    ----------
    dy : ndarray, shape (N, *output_size, C)
    x, output_size
        As for :func:`adaptive_max_pool`.

    Returns
    -------
    dx : ndarray, shape (N, *L, C), the promoted dtype of dy and x
    """
    out = _adaptive_geometry(x, output_size)
    check_grad(dy, (x.shape[0], *out, x.shape[-1]))
    return spec.adaptive_max_pool_vjp(_f64(dy), _f64(x)).astype(promoted(dy, x), copy=False)


# Forward mode and second order --------------------------------------------------------

def conv_jvp(x, w, b, tx, tw, tb=None, *, stride=1, padding=0, dilation=1, groups=1):
    """Forward-mode derivative of :func:`conv`: ``conv(tx, w) + conv(x, tw) + tb``.

    Parameters
    ----------
    x, w, b, stride, padding, dilation, groups
        As for :func:`conv` (b may be None).
    tx : ndarray, x's shape
    tw : ndarray, w's shape
    tb : ndarray in b's shape, optional
        None is a zero tangent; it must be None when b is.

    Returns
    -------
    ty : ndarray, shape (N, *L_out, C_out), the promoted dtype of every array given
    """
    g = conv_geometry(x, w, b, stride, padding, dilation, groups)
    _check_tangents(((tx, "tx", x), (tw, "tw", w), (tb, "tb", b)))
    ty = spec.conv_jvp(_f64(x), _f64(w), _f64(b), _f64(tx), _f64(tw), _bias(tb, g),
                       g.stride, g.pads, g.dilation, g.groups)
    return ty.astype(promoted(x, w, b, tx, tw, tb), copy=False)


def conv_double_backward(dy, x, w, b, gx, gw, gb=None, *, stride=1, padding=0, dilation=1,
                         groups=1):
    """Second-order reverse mode of :func:`conv`: the vector-Jacobian product of
    :func:`conv_backward` at ``(dy, x, w, b)`` with cotangents ``(gx, gw, gb)`` of its
    ``(dx, dw, db)``.

    Parameters
    ----------
    dy, x, w, b, stride, padding, dilation, groups
        As for :func:`conv_backward` (b may be None).
    gx : ndarray, x's shape
    gw : ndarray, w's shape
    gb : ndarray in b's shape, optional
        None is a zero cotangent; it must be None when b is.

    Returns
    -------
    ddy : ndarray, dy's shape
        ``conv(gx, w) + conv(x, gw) + gb``.
    dx : ndarray, x's shape
        :func:`conv_backward`'s dx with gw for w.
    dw : ndarray, w's shape
        :func:`conv_backward`'s dw with gx for x (b appears in no gradient, so there is
        no db). All in the promoted dtype of every array given.
    """
    g = conv_geometry(x, w, b, stride, padding, dilation, groups)
    check_grad(dy, g.out_shape)
    _check_tangents(((gx, "gx", x), (gw, "gw", w), (gb, "gb", b)))
    out = spec.conv_double_vjp(_f64(dy), _f64(x), _f64(w), _f64(b), _f64(gx), _f64(gw),
                               _bias(gb, g), g.stride, g.pads, g.dilation, g.groups)
    return _grads(out, (dy.shape, x.shape, w.shape), dy, x, w, b, gx, gw, gb)


def conv_transpose_jvp(x, w, b, tx, tw, tb=None, *, stride=1, padding=0, output_padding=0,
                       dilation=1, groups=1):
    """Forward-mode derivative of :func:`conv_transpose`:
    ``conv_transpose(tx, w) + conv_transpose(x, tw) + tb``.

    Parameters
    ----------
    x, w, b, stride, padding, output_padding, dilation, groups
        As for :func:`conv_transpose`.
    tx, tw, tb
        Tangents, as for :func:`conv_jvp`.

    Returns
    -------
    ty : ndarray, shape (N, *L_out, C_out), the promoted dtype of every array given
    """
    g = transpose_geometry(x, w, b, stride, padding, output_padding, dilation, groups)
    _check_tangents(((tx, "tx", x), (tw, "tw", w), (tb, "tb", b)))
    ty = spec.conv_transpose_jvp(_f64(x), _f64(w), _f64(b), _f64(tx), _f64(tw), _bias(tb, g),
                                 g.stride, g.pads, g.dilation, g.groups, g.output_padding)
    return ty.astype(promoted(x, w, b, tx, tw, tb), copy=False)


def conv_transpose_double_backward(dy, x, w, b, gx, gw, gb=None, *, stride=1, padding=0,
                                   output_padding=0, dilation=1, groups=1):
    """Second-order reverse mode of :func:`conv_transpose`: the vector-Jacobian product of
    :func:`conv_transpose_backward` with cotangents ``(gx, gw, gb)``.

    Parameters
    ----------
    dy, x, w, b, stride, padding, output_padding, dilation, groups
        As for :func:`conv_transpose_backward`.
    gx, gw, gb
        Cotangents, as for :func:`conv_double_backward`.

    Returns
    -------
    ddy : ndarray, dy's shape
        ``conv_transpose(gx, w) + conv_transpose(x, gw) + gb``.
    dx : ndarray, x's shape
        :func:`conv_transpose_backward`'s dx with gw for w.
    dw : ndarray, w's shape
        :func:`conv_transpose_backward`'s dw with gx for x.
    """
    g = transpose_geometry(x, w, b, stride, padding, output_padding, dilation, groups)
    check_grad(dy, g.out_shape)
    _check_tangents(((gx, "gx", x), (gw, "gw", w), (gb, "gb", b)))
    out = spec.conv_transpose_double_vjp(_f64(dy), _f64(x), _f64(w), _f64(b), _f64(gx),
                                         _f64(gw), _bias(gb, g), g.stride, g.pads, g.dilation,
                                         g.groups, g.output_padding)
    return _grads(out, (dy.shape, x.shape, w.shape), dy, x, w, b, gx, gw, gb)


def max_pool_jvp(x, tx, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
                 return_indices=False):
    """Forward-mode derivative of :func:`max_pool`: each window's tx at the cell
    :func:`max_pool`'s indices name (first maximum, last NaN).

    Parameters
    ----------
    x, kernel_size, stride, padding, dilation, ceil_mode
        As for :func:`max_pool`.
    tx : ndarray, x's shape
    return_indices : bool
        Accepted and ignored (indices have no tangent).

    Returns
    -------
    ty : ndarray, shape (N, *L_out, C), the promoted dtype of x and tx
    """
    check_flag(return_indices, "return_indices")
    g = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    _check_tangents(((tx, "tx", x),))
    ty = spec.max_pool_jvp(_f64(x), _f64(tx), g.kernel, g.stride, g.dilation, g.pads,
                           ceil_mode)
    return ty.astype(promoted(x, tx), copy=False)


def max_pool_double_backward(dy, x, gx, kernel_size, *, stride=None, padding=0, dilation=1,
                             ceil_mode=False, return_indices=False):
    """Second-order reverse mode of :func:`max_pool`: the vector-Jacobian product of
    :func:`max_pool_backward` with cotangent ``gx`` of its dx.

    Parameters
    ----------
    dy, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices
        As for :func:`max_pool_backward`.
    gx : ndarray, x's shape

    Returns
    -------
    ddy : ndarray, dy's shape
        Each window's gx at its chosen cell (:func:`max_pool_jvp` of gx).
    dx : ndarray, x's shape
        Zeros: the routing is piecewise constant in x.
    """
    check_flag(return_indices, "return_indices")
    g = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    check_grad(dy, g.out_shape)
    _check_tangents(((gx, "gx", x),))
    out = spec.max_pool_double_vjp(_f64(dy), _f64(x), _f64(gx), g.kernel, g.stride,
                                   g.dilation, g.pads, ceil_mode)
    return _grads(out, (dy.shape, x.shape), dy, x, gx)


def avg_pool_jvp(x, tx, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
    """Forward-mode derivative of :func:`avg_pool`: the average pool of tx (it is linear).

    Parameters
    ----------
    x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override
        As for :func:`avg_pool`.
    tx : ndarray, x's shape

    Returns
    -------
    ty : ndarray, shape (N, *L_out, C), the promoted dtype of x and tx
    """
    g = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode,
                       count_include_pad, divisor_override)
    _check_tangents(((tx, "tx", x),))
    ty = spec.avg_pool(_f64(tx), g.kernel, g.stride, g.dilation, g.pads, ceil_mode,
                       count_include_pad, divisor_override)
    return ty.astype(promoted(x, tx), copy=False)


def avg_pool_double_backward(dy, x, gx, kernel_size, *, stride=None, padding=0, dilation=1,
                             ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Second-order reverse mode of :func:`avg_pool`: the vector-Jacobian product of
    :func:`avg_pool_backward` with cotangent ``gx`` of its dx.

    Parameters
    ----------
    dy, x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override
        As for :func:`avg_pool_backward`.
    gx : ndarray, x's shape

    Returns
    -------
    ddy : ndarray, dy's shape
        The average pool of gx. avg_pool_backward reads x only for its shape, so there
        is no gradient with respect to x.
    """
    g = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode,
                       count_include_pad, divisor_override)
    check_grad(dy, g.out_shape)
    _check_tangents(((gx, "gx", x),))
    ddy = spec.avg_pool(_f64(gx), g.kernel, g.stride, g.dilation, g.pads, ceil_mode,
                        count_include_pad, divisor_override)
    return ddy.astype(promoted(dy, x, gx), copy=False)


def adaptive_avg_pool_jvp(x, tx, output_size):
    """Forward-mode derivative of :func:`adaptive_avg_pool`: the adaptive average of tx.

    Parameters
    ----------
    x, output_size
        As for :func:`adaptive_avg_pool`.
    tx : ndarray, x's shape

    Returns
    -------
    ty : ndarray, shape (N, *output_size, C), the promoted dtype of x and tx
    """
    out = _adaptive_geometry(x, output_size)
    _check_tangents(((tx, "tx", x),))
    return spec.adaptive_avg_pool(_f64(tx), out).astype(promoted(x, tx), copy=False)


def adaptive_avg_pool_double_backward(dy, x, gx, output_size):
    """Second-order reverse mode of :func:`adaptive_avg_pool`: the vector-Jacobian product
    of :func:`adaptive_avg_pool_backward` with cotangent ``gx`` of its dx.

    Parameters
    ----------
    dy, x, output_size
        As for :func:`adaptive_avg_pool_backward`.
    gx : ndarray, x's shape

    Returns
    -------
    ddy : ndarray, dy's shape
        The adaptive average of gx (no gradient with respect to x, as for
        :func:`avg_pool_double_backward`).
    """
    out = _adaptive_geometry(x, output_size)
    check_grad(dy, (x.shape[0], *out, x.shape[-1]))
    _check_tangents(((gx, "gx", x),))
    return spec.adaptive_avg_pool(_f64(gx), out).astype(promoted(dy, x, gx), copy=False)


def adaptive_max_pool_jvp(x, tx, output_size):
    """Forward-mode derivative of :func:`adaptive_max_pool`: tx at each bin's chosen cell.

    Parameters
    ----------
    x, output_size
        As for :func:`adaptive_max_pool`.
    tx : ndarray, x's shape

    Returns
    -------
    ty : ndarray, shape (N, *output_size, C), the promoted dtype of x and tx
    """
    out = _adaptive_geometry(x, output_size)
    _check_tangents(((tx, "tx", x),))
    ty = spec.adaptive_max_pool_jvp(_f64(x), _f64(tx), out)
    return ty.astype(promoted(x, tx), copy=False)


def adaptive_max_pool_double_backward(dy, x, gx, output_size):
    """Second-order reverse mode of :func:`adaptive_max_pool`: the vector-Jacobian product
    of :func:`adaptive_max_pool_backward` with cotangent ``gx`` of its dx.

    Parameters
    ----------
    dy, x, output_size
        As for :func:`adaptive_max_pool_backward`.
    gx : ndarray, x's shape

    Returns
    -------
    ddy : ndarray, dy's shape
        gx at each bin's chosen cell.
    dx : ndarray, x's shape
        Zeros, as for :func:`max_pool_double_backward`.
    """
    out = _adaptive_geometry(x, output_size)
    check_grad(dy, (x.shape[0], *out, x.shape[-1]))
    _check_tangents(((gx, "gx", x),))
    out = spec.adaptive_max_pool_double_vjp(_f64(dy), _f64(x), _f64(gx))
    return _grads(out, (dy.shape, x.shape), dy, x, gx)


# Argument checks: sizes only, no array is touched -------------------------------------

def _f64(a):
    return None if a is None else np.ascontiguousarray(a, dtype=np.float64)


def _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode,
                   count_include_pad=True, divisor_override=None):
    rank = check_input(x, "x", "(N, *spatial, C)")
    kernel = as_tuple(kernel_size, "kernel_size", rank)
    stride = kernel if stride is None else as_tuple(stride, "stride", rank)
    dilation = as_tuple(dilation, "dilation", rank)
    check_flag(ceil_mode, "ceil_mode")
    check_flag(count_include_pad, "count_include_pad")
    if divisor_override is not None:
        check_int(divisor_override, "divisor_override")
    size = x.shape[1:-1]
    pads = geometry.resolve_pads(as_pads(padding, "padding", rank, PAD_WORDS), size, kernel,
                                 stride, dilation)
    out = tuple(geometry.pool_out_size(m, k, s, d, p, ceil_mode)
                for m, k, s, d, p in zip(size, kernel, stride, dilation, pads))
    check_fits(out, size, kernel, dilation, pads)
    for axis, (m, o, k, s, d, p) in enumerate(zip(size, out, kernel, stride, dilation, pads)):
        # A window made only of padding has no input to take a max or mean of. With
        # dilation, a middle window can fall between real cells, so all are checked.
        window = geometry.empty_window(m, o, k, s, d, p)
        if window is not None:
            raise ValueError(
                f"padding {pads} is too large for kernel_size={kernel}, dilation={dilation}: "
                f"pooling window {window} along spatial axis {axis} lies entirely in the "
                f"padding")
    return SimpleNamespace(kernel=kernel, stride=stride, dilation=dilation, pads=pads,
                     out_shape=(x.shape[0], *out, x.shape[-1]))


def _adaptive_geometry(x, output_size):
    rank = check_input(x, "x", "(N, *spatial, C)")
    size = x.shape[1:-1]
    if min(size) < 1:
        raise ValueError(f"x must have at least one cell on every spatial axis for adaptive "
                         f"pooling, got shape {x.shape}")
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != rank:
            raise ValueError(f"output_size must be an int or a sequence of {rank} entries "
                             f"(int or None, one per spatial axis), got {output_size!r}")
        return tuple(m if o is None else check_int(o, f"output_size[{axis}]", 0)
                     for axis, (o, m) in enumerate(zip(output_size, size)))
    return (check_int(output_size, "output_size", 0),) * rank


def _check_tangents(pairs):
    """Each tangent or second-order cotangent has its primal's shape; one for a missing
    primal (b of a bias-free conv) is refused, and None elsewhere only for b's."""
    for t, name, primal in pairs:
        if t is None:
            if name[1:] != "b":
                raise TypeError(f"{name} must be an array of {name[1:]}'s shape, got None")
            continue
        if primal is None:
            raise ValueError(f"{name} is the {'tangent' if name[0] == 't' else 'cotangent'} "
                             f"of {name[1:]}, which is None: give {name[1:]} too or leave "
                             f"{name} out")
        check_array(t, name)
        if t.shape != primal.shape:
            raise ValueError(f"{name} must have {name[1:]}'s shape {primal.shape}, got "
                             f"{t.shape}")


def _bias(t, g):
    """A bias tangent as the spec takes it: float64 of shape (C_out,), or None."""
    return None if t is None else _f64(t).reshape(g.out_shape[-1])


def _grads(grads, shapes, *arrays):
    """Cast the spec's float64 gradients to the promoted dtype, in their arguments' shapes."""
    dtype = promoted(*arrays)
    return tuple(None if g is None else g.reshape(shape).astype(dtype, copy=False)
                 for g, shape in zip(grads, shapes))
