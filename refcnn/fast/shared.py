"""A conv and its weight gradient from one patch matrix, for backward passes.

Two backward passes are such a pair, which computed apart (by :mod:`refcnn.fast.nd`)
gather the same patch matrix twice:

* a transposed conv's dx is the forward of its adjoint conv applied to dy, and its dw
  that conv's weight gradient with dy as the input: ``patches(dy) @ w`` and
  ``patches(dy).T @ x``;
* with stride 1, a conv's dx is the correlation of dy with the flipped kernel
  (:func:`flipped`, :func:`flip`), whose patch matrix also gives dw:
  ``dx = patches(dy) @ flip(w)`` and ``flip(dw) = patches(dy).T @ x``.

Here each block of the matrix is gathered once and both products read it while it
is in cache. Plain (ungrouped) 1-D and 2-D convs only; :func:`applies` says which.
Blocks of output rows are sized as the 2-D path sizes its own (``workspace_bytes``
and ``config.block_target_bytes``).
"""

from __future__ import annotations

import numpy as np

from refcnn.fast.config import DEFAULT_WORKSPACE_BYTES
from refcnn.fast.layout import c_strides, window_view
from refcnn.fast.ndplan import Geometry, acc_dtype, lift

__all__ = ["applies", "forward_and_weight_grad", "flipped", "flip"]


def applies(geo: Geometry) -> bool:
    """Whether :func:`forward_and_weight_grad` serves ``geo``: an ungrouped conv of rank
    1 or 2 with something to sum."""
    return geo.rank < 3 and geo.groups == 1 and not geo.empty


def flipped(geo: Geometry):
    """The conv whose forward is ``geo``'s input gradient: dy (padded by each kernel's
    reach less the forward padding) correlated with :func:`flip` of the weights, stride
    1. None where it is not a plain conv: a stride above 1 or a forward padding beyond
    the kernel's reach (a negative padding), or what :func:`applies` refuses."""
    if set(geo.stride) != {1} or not applies(geo):
        return None
    reach = [(k - 1) * d for k, d in zip(geo.w_shape[:-2], geo.dilation)]
    pads = tuple((r - p0, r - p1) for r, (p0, p1) in zip(reach, geo.pads))
    if min(min(p) for p in pads) < 0:
        return None
    *kernel, c_in, c_out = geo.w_shape
    return Geometry(geo.out_shape, (*kernel, c_out, c_in), geo.stride, pads, geo.dilation,
                    1, geo.x_shape)


def flip(w):
    """Weights ``(*kernel, A, B)`` reversed along every kernel axis, as ``(*kernel, B, A)``:
    the flipped conv's weights from the forward's, and its weight gradient back (flip is
    its own inverse). A view."""
    rank = w.ndim - 2
    return w[(slice(None, None, -1),) * rank].swapaxes(-1, -2)


def forward_and_weight_grad(geo: Geometry, x, w, cot, dtype, accumulate, workspace_bytes,
                            config):
    """``conv(x, w)`` and the gradient of ``<cot, conv(x, w)>`` with respect to w.

    Parameters
    ----------
    geo : refcnn.fast.ndplan.Geometry
        With :func:`applies` true.
    x : ndarray, shape ``geo.x_shape``
    w : ndarray, shape ``geo.w_shape``
    cot : ndarray, shape ``geo.out_shape``
        The cotangent of the conv's output.
    dtype : dtype of both results (at least the promotion of x, w and cot)

    Returns
    -------
    y : ndarray, shape ``geo.out_shape``
    dw : ndarray, shape ``geo.w_shape``
    """
    acc = acc_dtype(accumulate, dtype)
    (n, h, wd, c), (fh, fw, _, c_out) = lift(geo.x_shape, 1), lift(geo.w_shape, 0)
    grow = (lambda t, one: t if len(t) == 2 else (t[0], one))
    (sh, sw), (dh, dwl) = grow(geo.stride, 1), grow(geo.dilation, 1)
    (t, b), (left, r) = grow(geo.pads, (0, 0))
    _, ho, wo, _ = lift(geo.out_shape, 1)
    xp = np.zeros((n, h + t + b, wd + left + r, c), acc)
    xp[:, t:t + h, left:left + wd] = lift(x, 1)
    wm = lift(w, 0).astype(acc).reshape(fh * fw * c, c_out)
    cotm = lift(cot, 1)
    y = np.empty((n, ho, wo, c_out), dtype)
    dw = np.zeros((fh * fw * c, c_out), acc)
    k = fh * fw * c
    limit = DEFAULT_WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes
    per_row = wo * k * acc.itemsize
    rows = max(1, min(limit, config.block_target_bytes) // per_row)
    blocks = ([(i, min(i + rows // ho, n), 0, ho) for i in range(0, n, rows // ho)]
              if rows >= ho else
              [(i, i + 1, o, min(o + rows, ho)) for i in range(n) for o in range(0, ho, rows)])
    s0, s1, s2, s3 = c_strides(xp.shape)
    buf = np.empty(len(range(*blocks[0][:2])) * (blocks[0][3] - blocks[0][2]) * wo * k, acc)
    for n0, n1, r0, r1 in blocks:
        m = (n1 - n0) * (r1 - r0) * wo
        cols = buf[:m * k].reshape(n1 - n0, r1 - r0, wo, fh, fw, c)
        if dwl == 1:
            # A window's row segment of f_w * C cells is contiguous: one strided copy.
            view = window_view(xp, n0 * s0 + sh * r0 * s1, (n1 - n0, r1 - r0, wo, fh, fw * c),
                               (s0, sh * s1, sw * s2, dh * s1, s3))
            np.copyto(cols.reshape(*cols.shape[:4], fw * c), view)
        else:
            view = window_view(xp, n0 * s0 + sh * r0 * s1, cols.shape,
                               (s0, sh * s1, sw * s2, dh * s1, dwl * s2, s3))
            np.copyto(cols, view)
        cols = cols.reshape(m, k)
        dest = y[n0:n1, r0:r1].reshape(m, c_out)  # a view: blocks are contiguous
        if acc == dtype:
            np.matmul(cols, wm, out=dest)
        else:
            dest[...] = cols @ wm
        dw += cols.T @ cotm[n0:n1, r0:r1].reshape(m, c_out).astype(acc, copy=False)
    return y.reshape(geo.out_shape), dw.reshape(geo.w_shape).astype(dtype)
