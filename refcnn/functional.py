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
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refcnn import geometry, spec
from refcnn._params import as_pads, as_tuple, check_array, check_int

__all__ = [
    "conv", "conv_backward", "conv_transpose", "conv_transpose_backward",
    "max_pool", "max_pool_backward", "avg_pool", "avg_pool_backward",
    "adaptive_avg_pool", "adaptive_avg_pool_backward",
    "adaptive_max_pool", "adaptive_max_pool_backward",
]

_WORDS = ("same", "same_lower", "valid")


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
    g = _conv_geometry(x, w, b, stride, padding, dilation, groups)
    y = spec.conv(_f64(x), _f64(w), _f64(b), g.stride, g.pads, g.dilation, g.groups)
    return y.astype(_dtype(x, w, b), copy=False)


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
    g = _conv_geometry(x, w, b, stride, padding, dilation, groups)
    _check_grad(dy, g.out_shape)
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
    g = _transpose_geometry(x, w, b, stride, padding, output_padding, dilation, groups)
    y = spec.conv_transpose(_f64(x), _f64(w), _f64(b), g.stride, g.pads, g.dilation,
                            g.groups, g.output_padding)
    return y.astype(_dtype(x, w, b), copy=False)


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
    g = _transpose_geometry(x, w, b, stride, padding, output_padding, dilation, groups)
    _check_grad(dy, g.out_shape)
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
    _check_flag(return_indices, "return_indices")
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
    _check_flag(return_indices, "return_indices")
    g = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    _check_grad(dy, g.out_shape)
    dx = spec.max_pool_vjp(_f64(dy), _f64(x), g.kernel, g.stride, g.dilation, g.pads,
                           ceil_mode)
    return dx.astype(_dtype(dy, x), copy=False)


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
    _check_grad(dy, g.out_shape)
    dx = spec.avg_pool_vjp(_f64(dy), _f64(x), g.kernel, g.stride, g.dilation, g.pads,
                           ceil_mode, count_include_pad, divisor_override)
    return dx.astype(_dtype(dy, x), copy=False)


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
    _check_grad(dy, (x.shape[0], *out, x.shape[-1]))
    return spec.adaptive_avg_pool_vjp(_f64(dy), x.shape).astype(_dtype(dy, x), copy=False)


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
    _check_flag(return_indices, "return_indices")
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
    _check_grad(dy, (x.shape[0], *out, x.shape[-1]))
    return spec.adaptive_max_pool_vjp(_f64(dy), _f64(x)).astype(_dtype(dy, x), copy=False)


# Argument checks: sizes only, no array is touched -------------------------------------

def _f64(a):
    return None if a is None else np.ascontiguousarray(a, dtype=np.float64)


def _dtype(*arrays):
    return np.result_type(*[a for a in arrays if a is not None])


def _check_input(x, name, layout):
    check_array(x, name)
    if not 3 <= x.ndim <= 5:
        raise ValueError(f"{name} must have shape {layout} with 1 to 3 spatial dims "
                         f"(3 to 5 dimensions), got shape {x.shape}")
    return x.ndim - 2


def _check_flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _check_grad(dy, shape):
    check_array(dy, "dy")
    if dy.shape != tuple(shape):
        raise ValueError(f"dy must have the forward output's shape {tuple(shape)}, "
                         f"got {dy.shape}")


def _check_bias(b, c_out, rank):
    if b is None:
        return
    check_array(b, "b")
    if b.shape not in ((c_out,), (1,) * (rank + 1) + (c_out,)):
        raise ValueError(f"b must have shape ({c_out},) or {(1,) * (rank + 1) + (c_out,)} to "
                         f"match the {c_out} output channels, got {b.shape}")


def _check_weights(w, rank, layout):
    check_array(w, "w")
    if w.ndim != rank + 2:
        raise ValueError(f"w must be {rank + 2}-dimensional {layout} for x with {rank} "
                         f"spatial dims, got shape {w.shape}")
    if min(w.shape[:-2]) < 1:
        raise ValueError(f"w must have a kernel of at least 1 on every axis, got shape "
                         f"{w.shape}")


def _check_fits(out, size, kernel, dilation, pads):
    if min(out) < 1:
        raise ValueError(f"the kernel {kernel} with dilation {dilation} is larger than the "
                         f"padded input: x spatial size {size} padded by {pads}")


def _conv_geometry(x, w, b, stride, padding, dilation, groups):
    rank = _check_input(x, "x", "(N, *spatial, C_in)")
    layout = "(*kernel, C_in // groups, C_out)"
    _check_weights(w, rank, layout)
    groups = check_int(groups, "groups")
    size, c_in = x.shape[1:-1], x.shape[-1]
    kernel, (cg, c_out) = w.shape[:-2], w.shape[-2:]
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide both the input channels ({c_in}) "
                         f"and the output channels ({c_out})")
    if cg * groups != c_in:
        raise ValueError(f"w must have shape {layout} = (*kernel, {c_in // groups}, C_out) "
                         f"for x with {c_in} channels and groups={groups}, got {w.shape}")
    _check_bias(b, c_out, rank)
    stride = as_tuple(stride, "stride", rank)
    dilation = as_tuple(dilation, "dilation", rank)
    pads = geometry.resolve_pads(as_pads(padding, "padding", rank, _WORDS), size, kernel,
                                 stride, dilation)
    out = tuple(geometry.conv_out_size(m, k, s, d, p)
                for m, k, s, d, p in zip(size, kernel, stride, dilation, pads))
    _check_fits(out, size, kernel, dilation, pads)
    return SimpleNamespace(stride=stride, pads=pads, dilation=dilation, groups=groups,
                     out_shape=(x.shape[0], *out, c_out))


def _transpose_geometry(x, w, b, stride, padding, output_padding, dilation, groups):
    rank = _check_input(x, "x", "(N, *spatial, C_in)")
    layout = "(*kernel, C_out // groups, C_in)"
    _check_weights(w, rank, layout)
    groups = check_int(groups, "groups")
    size, c_in = x.shape[1:-1], x.shape[-1]
    kernel, c_out = w.shape[:-2], w.shape[-2] * groups
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide the input channels ({c_in})")
    if w.shape[-1] != c_in:
        raise ValueError(f"w must have shape {layout} = (*kernel, C_out // groups, {c_in}) "
                         f"for x with {c_in} channels, got {w.shape}")
    _check_bias(b, c_out, rank)
    stride = as_tuple(stride, "stride", rank)
    dilation = as_tuple(dilation, "dilation", rank)
    output_padding = as_tuple(output_padding, "output_padding", rank, 0)
    for axis, (q, s, d) in enumerate(zip(output_padding, stride, dilation)):
        if q >= max(s, d):
            raise ValueError(f"output_padding must be smaller than max(stride, dilation) on "
                             f"every axis, got output_padding={output_padding} with "
                             f"stride={stride}, dilation={dilation} (spatial axis {axis})")
    pads = geometry.resolve_pads(as_pads(padding, "padding", rank, ("valid",)), size, kernel,
                                 stride, dilation)
    out = tuple(geometry.conv_transpose_out_size(m, k, s, d, p, q) for m, k, s, d, p, q in
                zip(size, kernel, stride, dilation, pads, output_padding))
    if min(out) < 1:
        raise ValueError(f"padding {pads} leaves no output: conv_transpose of x spatial size "
                         f"{size} with kernel {kernel}, stride {stride}, dilation {dilation} "
                         f"and output_padding {output_padding} gives size {out}")
    return SimpleNamespace(stride=stride, pads=pads, dilation=dilation, groups=groups,
                     output_padding=output_padding, out_shape=(x.shape[0], *out, c_out))


def _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode,
                   count_include_pad=True, divisor_override=None):
    rank = _check_input(x, "x", "(N, *spatial, C)")
    kernel = as_tuple(kernel_size, "kernel_size", rank)
    stride = kernel if stride is None else as_tuple(stride, "stride", rank)
    dilation = as_tuple(dilation, "dilation", rank)
    _check_flag(ceil_mode, "ceil_mode")
    _check_flag(count_include_pad, "count_include_pad")
    if divisor_override is not None:
        check_int(divisor_override, "divisor_override")
    size = x.shape[1:-1]
    pads = geometry.resolve_pads(as_pads(padding, "padding", rank, _WORDS), size, kernel,
                                 stride, dilation)
    out = tuple(geometry.pool_out_size(m, k, s, d, p, ceil_mode)
                for m, k, s, d, p in zip(size, kernel, stride, dilation, pads))
    _check_fits(out, size, kernel, dilation, pads)
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
    rank = _check_input(x, "x", "(N, *spatial, C)")
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


def _grads(grads, shapes, *arrays):
    """Cast the spec's float64 gradients to the promoted dtype, in their arguments' shapes."""
    dtype = _dtype(*arrays)
    return tuple(None if g is None else g.reshape(shape).astype(dtype, copy=False)
                 for g, shape in zip(grads, shapes))
