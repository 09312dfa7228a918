"""Transposed convolution of any rank (1, 2 or 3 spatial dims) on the fast path, with its
gradients.

A transposed conv with weights ``w`` is the adjoint of the conv ``z -> x`` with the same
weights (:func:`refcnn.spec.conv_transpose`), whose input z has the transposed conv's
output shape. So each direction is a piece of that conv (the "adjoint conv", on
:mod:`refcnn.fast.nd`):

* forward: the adjoint conv's input gradient, with x as its output gradient;
* dx: the adjoint conv's forward applied to dy;
* dw: the adjoint conv's weight gradient, with dy as its input and x as its output
  gradient; db: dy summed.

The adjoint conv must have exactly one window per x position. torch's
``output_padding`` (``< max(stride, dilation)``) can make the output longer than
those windows reach: the cells past the last window's reach read no x (they hold
the bias alone), so the adjoint conv runs on the cells they do reach (see
:func:`_adjoint`), with its after-padding trimmed to match.
"""

from __future__ import annotations

import numpy as np

from refcnn._checks import check_grad, transpose_geometry
from refcnn.fast import nd, phases, shared
from refcnn.fast.config import DEFAULT_CONFIG
from refcnn.fast.ndplan import Geometry, check_knobs, promoted

__all__ = ["conv_transpose", "conv_transpose_backward"]


def conv_transpose(x, w, b=None, *, stride=1, padding=0, output_padding=0, dilation=1,
                   groups=1, accumulate="float64", workspace_bytes=None,
                   config=DEFAULT_CONFIG):
    """N-D transposed convolution, 1 to 3 spatial dims: :func:`refcnn.functional.conv_transpose`
    on the fast path.

    Parameters
    ----------
    x : ndarray, shape (N, *L, C_in)
    w : ndarray, shape (*kernel, C_out // groups, C_in)
        The weights of the conv from the output (C_out channels) to x (C_in).
    b : ndarray, shape (C_out,) or (1, ..., 1, C_out), optional
    stride, dilation : int or sequence of int, one per spatial axis
    padding : int, per axis or per side ('valid' means 0)
        Cropped from the full output, as in torch.
    output_padding : int or sequence of int, each < max(stride, dilation) on its axis
    groups : int
    accumulate, workspace_bytes, config
        As for :func:`refcnn.fast.nd.conv`.

    Returns
    -------
    y : ndarray, shape (N, *L_out, C_out), the inputs' promoted dtype
        ``L_out = (L-1)*stride - before - after + dilation*(kernel-1) + output_padding + 1``.
    """
    g = transpose_geometry(x, w, b, stride, padding, output_padding, dilation, groups)
    check_knobs(accumulate, workspace_bytes, config)
    dtype = promoted(x, w, b)
    adj, used = _adjoint(g, x.shape, w.shape)
    bias = None if b is None else b.reshape(-1)
    if adj is not None and used == g.out_shape[1:-1]:
        return phases.input_grad(adj, x, w, dtype, bias, accumulate, workspace_bytes, config)
    # Cells past every window's reach hold the bias alone (exact in dtype, which holds b's).
    y = np.zeros(g.out_shape, dtype)
    if bias is not None:
        y[...] = bias
    if adj is not None:
        y[(slice(None), *map(slice, used))] = phases.input_grad(
            adj, x, w, dtype, bias, accumulate, workspace_bytes, config)
    return y


def conv_transpose_backward(dy, x, w, b=None, *, stride=1, padding=0, output_padding=0,
                            dilation=1, groups=1, accumulate="float64", workspace_bytes=None,
                            config=DEFAULT_CONFIG):
    """Vector-Jacobian products of :func:`conv_transpose` with respect to x, w and b.

    Parameters
    ----------
    dy : ndarray, shape (N, *L_out, C_out)
    x, w, b, stride, padding, output_padding, dilation, groups, accumulate, workspace_bytes, config
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
    check_knobs(accumulate, workspace_bytes, config)
    dtype = promoted(dy, x, w, b)
    adj, used = _adjoint(g, x.shape, w.shape)
    if adj is None:
        dx, dw = np.zeros(x.shape, dtype), np.zeros(w.shape, dtype)
    else:
        # The output cells past the windows' reach (see _adjoint) touch neither x nor w.
        dyu = dy[(slice(None), *map(slice, used))]
        if shared.applies(adj):  # both products from one patch matrix of dy
            dx, dw = shared.forward_and_weight_grad(adj, dyu, w, x, dtype, accumulate,
                                                    workspace_bytes, config)
        else:
            dx = nd.forward(adj, dyu, w, None, dtype, accumulate, workspace_bytes, config)
            dw = nd.weight_grad(adj, x, dyu, dtype, accumulate, workspace_bytes, config)
    return dx, dw, nd.bias_grad(dy, b, dtype, accumulate)


def _adjoint(g, x_shape, w_shape):
    """The adjoint conv of a transposed conv's geometry ``g`` (a
    :func:`refcnn._checks.transpose_geometry` result), and the output cells it covers.

    Per axis: x's ``m`` positions are the adjoint conv's windows, which read the first
    ``(m - 1) * stride + dilation * (kernel - 1) + 1`` cells of its padded input. Of the
    ``L_out`` output cells, those before that reach less the before-padding are its
    input (``used``); its after-padding makes up the rest of the reach. Returns
    ``(None, used)`` when some axis has no used cell (every output is the bias alone).

    Returns
    -------
    adj : refcnn.fast.ndplan.Geometry or None
        The conv from ``(N, *used, C_out)`` to x's shape, weights ``w_shape``.
    used : tuple of int, one per spatial axis
    """
    kernel, size, out = w_shape[:-2], x_shape[1:-1], g.out_shape[1:-1]
    used, pads = [], []
    for m, o, k, s, d, (before, _) in zip(size, out, kernel, g.stride, g.dilation, g.pads):
        reach = (m - 1) * s + d * (k - 1) + 1
        u = min(o, reach - before)
        used.append(u)
        pads.append((before, reach - before - u))
    used = tuple(used)
    if min(used) < 1:
        return None, tuple(max(u, 0) for u in used)
    adj = Geometry((x_shape[0], *used, g.out_shape[-1]), w_shape, g.stride, tuple(pads),
                      g.dilation, g.groups, x_shape)
    return adj, used

