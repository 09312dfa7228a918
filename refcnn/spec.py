"""The specification: conv and pooling of any rank (1, 2 or 3 spatial dims), in float64.

This is the reference crosscheck judges every framework with, written to be read:
one window view (:func:`windows`) serves convolution and pooling, each op is a
forward function and its vector-Jacobian product, and every convention is a line
of code (the per-axis sizes and splits are in :mod:`refcnn.geometry`). Layouts
are channels-last: inputs ``(N, *spatial, C)``, conv weights ``(*kernel, C_in //
groups, C_out)``. Arguments are trusted: :mod:`refcnn.functional` checks them and
passes float64 arrays, tuples with one entry per spatial axis, and per-side
padding ``((before, after), ...)``. Conventions are torch's:

* convolution is cross-correlation; output channel ``o`` reads the input channels
  of group ``o // (C_out / groups)``;
* ``conv_transpose`` is the adjoint of ``conv`` with the same weight array;
* max pooling pads with -inf and scans each window in row-major order, keeping a
  tap when ``value > best or isnan(value)``: ties go to the first maximum, a NaN
  wins and the last NaN wins, and a window of -inf keeps its first real cell;
* the average divides by the taps inside the explicitly padded input
  (``count_include_pad``, never ceil_mode's overhang) or on real cells, unless
  ``divisor_override`` is given;
* adaptive bins are ``[floor(i*L/out), ceil((i+1)*L/out))``.

Forward mode and second order follow from each op's structure (the last section):
conv and conv_transpose are bilinear in ``(x, w)`` plus ``b``, and pooling is
linear in ``x`` once its routing (the max's chosen cells, by the scan above) is fixed.
"""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from refcnn import geometry


def windows(x, kernel, stride, dilation, pads, out, fill=0.0, writeable=False):
    """Pad ``x`` and view its windows: the one window helper of the spec.

    ``x`` is copied into a fresh C-contiguous float64 buffer padded by ``pads``
    with ``fill`` (and further on the right where ``out`` windows overhang, as
    ceil_mode's do), so the view never depends on the caller's strides.

    Parameters
    ----------
    x : ndarray, shape (N, *L, C)
    kernel, stride, dilation : tuple of int, one per spatial axis
    pads : tuple of (before, after) pairs
    out : tuple of int, the number of windows per axis
    fill : float
    writeable : bool
        A writeable view, for scattering into the buffer tap by tap (each tap's
        positions are distinct, so ``view[..., *k] += v`` is well defined).

    Returns
    -------
    xp : ndarray, shape (N, *P, C), the padded buffer
    view : ndarray, shape (N, *out, C, *kernel)
        ``view[n, *i, c, *k] = xp[n, *(i * stride + k * dilation), c]``.
    """
    n, *size, c = x.shape
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    padded = [max(lo + m + hi, (o - 1) * s + sp)
              for m, (lo, hi), o, s, sp in zip(size, pads, out, stride, span)]
    xp = np.full((n, *padded, c), fill, dtype=np.float64)
    xp[_inner(pads, size)] = x
    view = sliding_window_view(xp, span, axis=tuple(range(1, len(size) + 1)),
                               writeable=writeable)
    steps = (*(slice(0, o * s, s) for o, s in zip(out, stride)), slice(None),
             *(slice(None, None, d) for d in dilation))
    return xp, view[(slice(None), *steps)]


def _inner(pads, size):
    """Index of the unpadded input inside a padded buffer."""
    return (slice(None), *(slice(lo, lo + m) for (lo, _), m in zip(pads, size)), slice(None))


def _taps(kernel):
    """Kernel taps in row-major order, as index tuples."""
    return np.ndindex(*kernel)


# Convolution --------------------------------------------------------------------------

def conv(x, w, b, stride, pads, dilation, groups, out=None):
    """``y[n, *i, o] = b[o] + sum_{k, c} xp[n, *(i*stride + k*dilation), g*Cg + c] * w[*k, c, o]``
    with ``g = o // (C_out / groups)``, ``Cg = C_in / groups`` and ``xp`` zero padded.

    ``out`` (default: :func:`refcnn.geometry.conv_out_size` per axis) keeps the
    first ``out`` windows. Returns y of shape (N, *out, C_out).
    """
    kernel, (cg, c_out) = w.shape[:-2], w.shape[-2:]
    if out is None:
        out = tuple(geometry.conv_out_size(m, k, s, d, p)
                    for m, k, s, d, p in zip(x.shape[1:-1], kernel, stride, dilation, pads))
    _, view = windows(x, kernel, stride, dilation, pads, out)
    rows = x.shape[0] * math.prod(out)
    wg = w.reshape(*kernel, cg, groups, c_out // groups)
    y = np.zeros((groups, rows, c_out // groups))
    for k in _taps(kernel):
        xk = view[(..., *k)].reshape(rows, groups, cg).transpose(1, 0, 2)  # (G, rows, Cg)
        y += xk @ wg[k].transpose(1, 0, 2)
    y = y.transpose(1, 0, 2).reshape(x.shape[0], *out, c_out)
    return y if b is None else y + b.reshape(c_out)


def conv_vjp(dy, x, w, b, stride, pads, dilation, groups):
    """Gradients ``(dx, dw, db)`` of :func:`conv`; db is None without b."""
    dx = _conv_dx(dy, w, x.shape, stride, pads, dilation, groups)
    dw = _conv_dw(dy, x, w.shape, stride, pads, dilation, groups)
    return dx, dw, None if b is None else dy.sum(axis=tuple(range(dy.ndim - 1)))


def _conv_dx(dy, w, x_shape, stride, pads, dilation, groups):
    """The adjoint of ``x -> conv(x, w)``: each tap scatters ``dy @ w[k].T`` into the
    padded input positions it read; the padding is then cropped."""
    kernel, (cg, c_out) = w.shape[:-2], w.shape[-2:]
    n, *out, _ = dy.shape
    dxp, view = windows(np.zeros(x_shape), kernel, stride, dilation, pads, out, writeable=True)
    dyg = dy.reshape(-1, groups, c_out // groups).transpose(1, 0, 2)  # (G, rows, C_out/G)
    wg = w.reshape(*kernel, cg, groups, c_out // groups)
    for k in _taps(kernel):
        dxk = dyg @ wg[k].transpose(1, 2, 0)  # (G, rows, Cg)
        view[(..., *k)] += dxk.transpose(1, 0, 2).reshape(n, *out, groups * cg)
    return dxp[_inner(pads, x_shape[1:-1])]


def _conv_dw(dy, x, w_shape, stride, pads, dilation, groups):
    """``dw[*k, c, o] = sum_{n, i} xp[n, *(i*stride + k*dilation), g*Cg + c] * dy[n, *i, o]``."""
    kernel, (cg, c_out) = w_shape[:-2], w_shape[-2:]
    _, view = windows(x, kernel, stride, dilation, pads, dy.shape[1:-1])
    dyg = dy.reshape(-1, groups, c_out // groups).transpose(1, 0, 2)  # (G, rows, C_out/G)
    dw = np.zeros(w_shape)
    for k in _taps(kernel):
        xk = view[(..., *k)].reshape(-1, groups, cg).transpose(1, 2, 0)  # (G, Cg, rows)
        dw[k] = (xk @ dyg).transpose(1, 0, 2).reshape(cg, c_out)
    return dw


def conv_transpose(x, w, b, stride, pads, dilation, groups, output_padding):
    """The adjoint of ``z -> conv(z, w)`` applied to ``x``, plus b.

    ``w`` has shape ``(*kernel, C_out // groups, C_in)``: the conv it transposes maps
    the output's ``C_out`` channels to x's ``C_in``. The output size per axis is
    torch's (:func:`refcnn.geometry.conv_transpose_out_size`).
    """
    kernel, c_out = w.shape[:-2], w.shape[-2] * groups
    size = tuple(geometry.conv_transpose_out_size(m, k, s, d, p, q) for m, k, s, d, p, q in
                 zip(x.shape[1:-1], kernel, stride, dilation, pads, output_padding))
    z = _conv_dx(x, w, (x.shape[0], *size, c_out), stride, pads, dilation, groups)
    return z if b is None else z + b.reshape(c_out)


def conv_transpose_vjp(dy, x, w, b, stride, pads, dilation, groups):
    """Gradients ``(dx, dw, db)`` of :func:`conv_transpose`: dx is the conv of dy (its
    first windows, one per x position) and dw is the conv's weight gradient with
    the roles of input and output exchanged; db is None without b."""
    dx = conv(dy, w, None, stride, pads, dilation, groups, out=x.shape[1:-1])
    dw = _conv_dw(x, dy, w.shape, stride, pads, dilation, groups)
    return dx, dw, None if b is None else dy.sum(axis=tuple(range(dy.ndim - 1)))


# Pooling ------------------------------------------------------------------------------

def pool_out(x_shape, kernel, stride, dilation, pads, ceil_mode):
    """Output size per axis, with torch's ceil rule (:func:`refcnn.geometry.pool_out_size`)."""
    return tuple(geometry.pool_out_size(m, k, s, d, p, ceil_mode)
                 for m, k, s, d, p in zip(x_shape[1:-1], kernel, stride, dilation, pads))


def max_pool(x, kernel, stride, dilation, pads, ceil_mode):
    """Max pooling and torch's indices, by torch's scan.

    Returns
    -------
    y : ndarray, shape (N, *out, C)
    indices : ndarray of int64, shape (N, *out, C)
        The chosen tap's flat index into its (n, c) input plane, row-major.
    """
    size = x.shape[1:-1]
    out = pool_out(x.shape, kernel, stride, dilation, pads, ceil_mode)
    _, view = windows(x, kernel, stride, dilation, pads, out, fill=-np.inf)
    # Input position of every tap of every window, per axis: (out, kernel).
    pos = [geometry.tap_positions(o, k, s, d) - p[0]
           for o, k, s, d, p in zip(out, kernel, stride, dilation, pads)]
    first = [np.take_along_axis(q, geometry.first_real_taps(m, o, k, s, d, p)[:, None], 1)[:, 0]
             for q, m, o, k, s, d, p in zip(pos, size, out, kernel, stride, dilation, pads)]
    taps = ((view[(..., *k)], _flat([q[:, j] for q, j in zip(pos, k)], size))
            for k in _taps(kernel))
    return _scan_max(taps, (x.shape[0], *out, x.shape[-1]), _flat(first, size))


def max_pool_vjp(dy, x, kernel, stride, dilation, pads, ceil_mode):
    """Gradient of :func:`max_pool`: each window's dy goes to the tap its scan chose;
    overlapping windows add up."""
    return _route(dy, max_pool(x, kernel, stride, dilation, pads, ceil_mode)[1], x.shape)


def avg_pool(x, kernel, stride, dilation, pads, ceil_mode, count_include_pad,
             divisor_override):
    """Average pooling: the window sums of the zero-padded input over :func:`_divisor`."""
    out = pool_out(x.shape, kernel, stride, dilation, pads, ceil_mode)
    _, view = windows(x, kernel, stride, dilation, pads, out)
    total = view.sum(axis=tuple(range(-len(kernel), 0)))
    return total / _divisor(x.shape, out, kernel, stride, dilation, pads, count_include_pad,
                            divisor_override)


def avg_pool_vjp(dy, x, kernel, stride, dilation, pads, ceil_mode, count_include_pad,
                 divisor_override):
    """Gradient of :func:`avg_pool`: each window spreads ``dy / divisor`` over its taps."""
    out = dy.shape[1:-1]
    share = dy / _divisor(x.shape, out, kernel, stride, dilation, pads, count_include_pad,
                          divisor_override)
    dxp, view = windows(np.zeros(x.shape), kernel, stride, dilation, pads, out, writeable=True)
    for k in _taps(kernel):
        view[(..., *k)] += share
    return dxp[_inner(pads, x.shape[1:-1])]


def _divisor(x_shape, out, kernel, stride, dilation, pads, count_include_pad, divisor_override):
    """The average's divisor per window, shape (1, *out, 1): the product of the per-axis
    tap counts (:func:`refcnn.geometry.window_counts`), or ``divisor_override``."""
    if divisor_override is not None:
        return float(divisor_override)
    counts = [geometry.window_counts(m, o, k, s, d, p, count_include_pad)
              for m, o, k, s, d, p in zip(x_shape[1:-1], out, kernel, stride, dilation, pads)]
    return reduce(np.multiply.outer, counts).reshape(1, *out, 1)


# Adaptive pooling ---------------------------------------------------------------------

def adaptive_avg_pool(x, out):
    """Mean over each adaptive bin (:func:`refcnn.geometry.adaptive_bins`); a bin is a
    product of per-axis ranges, so its sum is taken one axis at a time."""
    # Slices, not the 0/1 bin matrices of the VJP: a product with a matrix would spread a
    # NaN or an infinity (0 * inf is NaN) to every bin of its axis.
    _, counts = _bin_matrices(x.shape[1:-1], out)
    for axis, (m, o) in enumerate(zip(x.shape[1:-1], out)):
        start, end = geometry.adaptive_bins(m, o)
        shape = list(x.shape)
        shape[axis + 1] = o
        binned = np.empty(shape)
        for i, (s, e) in enumerate(zip(start, end)):
            index = (slice(None),) * (axis + 1)
            binned[index + (i,)] = x[index + (slice(s, e),)].sum(axis=axis + 1)
        x = binned
    return x / reduce(np.multiply.outer, counts).reshape(1, *out, 1)


def adaptive_avg_pool_vjp(dy, x_shape):
    """Gradient of :func:`adaptive_avg_pool`: each bin spreads ``dy / count`` over its cells."""
    out = dy.shape[1:-1]
    sums, counts = _bin_matrices(x_shape[1:-1], out)
    g = dy / reduce(np.multiply.outer, counts).reshape(1, *out, 1)
    for axis, m in enumerate(sums):
        g = np.moveaxis(np.tensordot(m.T, g, axes=([1], [axis + 1])), 0, axis + 1)
    return g


def adaptive_max_pool(x, out):
    """Adaptive max pooling and torch's indices, by the same scan as :func:`max_pool`,
    over taps ``start + k`` of each bin (cells past a bin's end are -inf)."""
    size = x.shape[1:-1]
    bins = [geometry.adaptive_bins(m, o) for m, o in zip(size, out)]
    longest = [int((end - start).max(initial=0)) for start, end in bins]

    def taps():
        for k in _taps(longest):
            pos = [start + j for (start, _), j in zip(bins, k)]
            inside = reduce(np.logical_and.outer, [q < end for q, (_, end) in zip(pos, bins)])
            cells = np.ix_(*[np.minimum(q, m - 1) for q, m in zip(pos, size)])
            value = np.where(inside[None, ..., None], x[(slice(None), *cells)], -np.inf)
            yield value, _flat(pos, size)

    return _scan_max(taps(), (x.shape[0], *out, x.shape[-1]),
                     _flat([start for start, _ in bins], size))


def adaptive_max_pool_vjp(dy, x):
    """Gradient of :func:`adaptive_max_pool`: each bin's dy goes to the cell its scan chose."""
    return _route(dy, adaptive_max_pool(x, dy.shape[1:-1])[1], x.shape)


def _bin_matrices(size, out):
    """Per axis, the 0/1 matrix (out, L) summing each bin, and the bin lengths."""
    sums, counts = [], []
    for m, o in zip(size, out):
        start, end = geometry.adaptive_bins(m, o)
        cells = np.arange(m)
        sums.append(((cells >= start[:, None]) & (cells < end[:, None])).astype(np.float64))
        counts.append((end - start).astype(np.float64))
    return sums, counts


# Max-pool machinery shared by the strided and the adaptive windows ---------------------

def _scan_max(taps, shape, start):
    """torch's max scan over ``(value, flat_index)`` pairs in row-major window order.

    ``best`` starts at -inf and the index at ``start`` (each window's first real
    cell); a tap wins when ``value > best`` or ``isnan(value)``. So the first of
    tied maxima wins, NaN sticks and the last NaN wins, and -inf (the padding)
    never wins, leaving an all -inf window at its first real cell.
    """
    best = np.full(shape, -np.inf)
    index = np.broadcast_to(start, shape).astype(np.int64)
    for value, at in taps:
        wins = (value > best) | np.isnan(value)
        best = np.where(wins, value, best)
        index = np.where(wins, at, index)
    return best, index


def _flat(pos, size):
    """Row-major flat index in an input plane of shape ``size`` of the per-axis positions
    ``pos`` (one (out_a,) array per axis), broadcast to shape (1, *out, 1)."""
    rank = len(size)
    flat = np.zeros((1,) * (rank + 2), dtype=np.int64)
    for axis, (q, step) in enumerate(zip(pos, _plane_strides(size))):
        shape = [1] * (rank + 2)
        shape[axis + 1] = -1
        flat = flat + (np.asarray(q, dtype=np.int64) * step).reshape(shape)
    return flat


def _plane_strides(size):
    return [math.prod(size[axis + 1:]) for axis in range(len(size))]


def _route(dy, index, x_shape):
    """Add each ``dy`` entry into the input cell ``index`` names in its (n, c) plane."""
    n, *size, c = x_shape
    plane = math.prod(size)
    batch = np.arange(n).reshape(-1, *[1] * (dy.ndim - 1))
    flat = (batch * plane + index) * c + np.arange(c)
    dx = np.bincount(flat.ravel(), weights=dy.ravel(), minlength=n * plane * c)
    return dx.reshape(x_shape)


# Forward mode and second order --------------------------------------------------------
#
# A bilinear op ``y = B(x, w) + b`` has the JVP ``B(tx, w) + B(x, tw) + tb``. Its VJP is
# ``(dx, dw, db) = (B_x^T(dy; w), B_w^T(dy; x), sum dy)``, and the VJP of that with
# cotangents ``(gx, gw, gb)`` differentiates ``<dy, B(gx, w) + B(x, gw) + gb>``: with
# respect to dy it is the JVP with tangents ``(gx, gw, gb)``, with respect to x the first
# dx with ``gw`` for ``w``, with respect to w the first dw with ``gx`` for ``x``; b does
# not appear. A pool is ``y = P(x) x`` with ``P`` fixed by the routing: its JVP is the
# pool of the tangent through the forward's routing, its second-order dy term the same
# pool of ``gx``; the routing of a max is piecewise constant in x, so its x term is zero.

def conv_jvp(x, w, b, tx, tw, tb, stride, pads, dilation, groups):
    """Tangent of :func:`conv` at ``(x, w, b)`` along ``(tx, tw, tb)`` (tb None: none)."""
    return conv(tx, w, tb, stride, pads, dilation, groups) + \
        conv(x, tw, None, stride, pads, dilation, groups)


def conv_double_vjp(dy, x, w, b, gx, gw, gb, stride, pads, dilation, groups):
    """VJP of :func:`conv_vjp` at ``(dy, x, w)`` with cotangents ``(gx, gw, gb)`` of its
    ``(dx, dw, db)``: ``(ddy, dx, dw)``, the gradients with respect to dy, x and w."""
    ddy = conv_jvp(x, w, b, gx, gw, gb, stride, pads, dilation, groups)
    dx = _conv_dx(dy, gw, x.shape, stride, pads, dilation, groups)
    dw = _conv_dw(dy, gx, w.shape, stride, pads, dilation, groups)
    return ddy, dx, dw


def conv_transpose_jvp(x, w, b, tx, tw, tb, stride, pads, dilation, groups, output_padding):
    """Tangent of :func:`conv_transpose` at ``(x, w, b)`` along ``(tx, tw, tb)``."""
    return conv_transpose(tx, w, tb, stride, pads, dilation, groups, output_padding) + \
        conv_transpose(x, tw, None, stride, pads, dilation, groups, output_padding)


def conv_transpose_double_vjp(dy, x, w, b, gx, gw, gb, stride, pads, dilation, groups,
                              output_padding):
    """VJP of :func:`conv_transpose_vjp` with cotangents ``(gx, gw, gb)``: ``(ddy, dx, dw)``."""
    ddy = conv_transpose_jvp(x, w, b, gx, gw, gb, stride, pads, dilation, groups,
                             output_padding)
    dx = conv(dy, gw, None, stride, pads, dilation, groups, out=x.shape[1:-1])
    dw = _conv_dw(gx, dy, w.shape, stride, pads, dilation, groups)
    return ddy, dx, dw


def max_pool_jvp(x, tx, kernel, stride, dilation, pads, ceil_mode):
    """Tangent of :func:`max_pool`: each window's ``tx`` at the cell its scan chose."""
    return _gather(tx, max_pool(x, kernel, stride, dilation, pads, ceil_mode)[1])


def max_pool_double_vjp(dy, x, gx, kernel, stride, dilation, pads, ceil_mode):
    """VJP of :func:`max_pool_vjp` with cotangent ``gx`` of its dx: ``(ddy, dx)``, ``gx`` at
    the chosen cells and zeros (the routing does not move under small changes of x)."""
    return max_pool_jvp(x, gx, kernel, stride, dilation, pads, ceil_mode), np.zeros(x.shape)


def adaptive_max_pool_jvp(x, tx, out):
    """Tangent of :func:`adaptive_max_pool`: ``tx`` at each bin's chosen cell."""
    return _gather(tx, adaptive_max_pool(x, out)[1])


def adaptive_max_pool_double_vjp(dy, x, gx):
    """VJP of :func:`adaptive_max_pool_vjp` with cotangent ``gx``: ``(ddy, dx)``, as for
    :func:`max_pool_double_vjp`."""
    return adaptive_max_pool_jvp(x, gx, dy.shape[1:-1]), np.zeros(x.shape)


# Average pools are linear in x: their JVP is the pool of tx, and their VJP reads x only
# for its shape, so its VJP is the pool of gx alone (there is no x term at all).

def _gather(t, index):
    """Each window's entry of ``t`` at the flat plane index ``index`` names: the adjoint of
    :func:`_route`."""
    n, *size, c = t.shape
    batch = np.arange(n).reshape(-1, *[1] * (index.ndim - 1))
    flat = (batch * math.prod(size) + index) * c + np.arange(c)
    return t.reshape(-1)[flat]
