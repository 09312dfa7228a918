"""Vectorized 2-D convolution on NHWC inputs and HWIO weights, with its gradients.

The convolution is an im2col matrix product: window taps are gathered into a
patch matrix laid out group-major ``(groups, rows, f_h * f_w * C_in/groups)``
so that one batched ``matmul`` serves plain, grouped and depthwise convs.
Patch matrices are built a batch chunk at a time under a workspace limit, so
memory stays bounded whatever the batch size.
"""

from __future__ import annotations

import numpy as np

from refcnn._params import check_accumulate, result_dtype
from refcnn._plan import ConvPlan, check_grad, conv_plan, tap_slices

#: Default cap, in bytes, on the patch matrix built at once (see ``workspace_bytes``).
DEFAULT_WORKSPACE_BYTES = 256 * 2**20


def conv2d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1,
           accumulate="float64", workspace_bytes=None):
    """2-D cross-correlation (what every framework calls convolution).

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C_in)
    w : ndarray, shape (f_h, f_w, C_in // groups, C_out)
    b : ndarray, shape (C_out,) or (1, 1, 1, C_out), optional
    stride, dilation : int or (int, int)
    padding : int, (ph, pw), ((top, bottom), (left, right)), "same" or "valid"
    groups : int
        Output channel ``k`` sees input channels of group ``k // (C_out / groups)``.
    accumulate : {"float64", "native"}
        Sum in float64 (default) or in the inputs' precision (float16 sums in float32).
    workspace_bytes : int, optional
        Cap on the patch matrix built at once; default ``DEFAULT_WORKSPACE_BYTES``.

    Returns
    -------
    y : ndarray, shape (N, H_out, W_out, C_out), the inputs' promoted dtype
    """
    plan = conv_plan(x, w, b, stride=stride, padding=padding, dilation=dilation,
                     groups=groups, x_name="x", w_name="w", b_name="b", pad_name="padding")
    return conv2d_planned(plan, x, w, b, accumulate, workspace_bytes)


def conv2d_planned(plan: ConvPlan, x, w, b, accumulate="float64", workspace_bytes=None):
    """:func:`conv2d` for arguments already checked into ``plan``."""
    out_dtype = result_dtype(x, w) if b is None else result_dtype(x, w, b)
    acc = _acc_dtype(accumulate, out_dtype)
    xp = _pad(x, plan, acc)
    wg = _weights_by_group(w, plan, acc)
    y = np.empty((plan.n, *plan.out_hw, plan.c_out), dtype=acc)
    for lo, hi in _batch_chunks(plan, acc, workspace_bytes):
        cols = _patches(xp[lo:hi], plan)
        out = np.matmul(cols, wg)  # (G, rows, C_out/G)
        y[lo:hi] = _ungroup(out, hi - lo, plan)
    if b is not None:
        y += b.reshape(plan.c_out).astype(acc)
    return y.astype(out_dtype, copy=False)


def conv2d_backward(dy, x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1,
                    accumulate="float64", workspace_bytes=None):
    """Vector-Jacobian products of :func:`conv2d` with respect to x, w and b.

    Parameters
    ----------
    dy : ndarray, shape (N, H_out, W_out, C_out)
        Gradient of the loss with respect to the conv output.
    x, w, b, stride, padding, dilation, groups, accumulate, workspace_bytes
        As for :func:`conv2d`.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C_in), x's dtype
    dw : ndarray, shape (f_h, f_w, C_in // groups, C_out), w's dtype
    db : ndarray, shape (C_out,) (or b's shape when b is given), b's dtype
    """
    plan = conv_plan(x, w, b, stride=stride, padding=padding, dilation=dilation,
                     groups=groups, x_name="x", w_name="w", b_name="b", pad_name="padding")
    check_grad(dy, plan, "dy")
    return conv2d_backward_planned(plan, dy, x, w, b, accumulate, workspace_bytes)


def conv2d_backward_planned(plan: ConvPlan, dy, x, w, b, accumulate="float64",
                            workspace_bytes=None):
    """:func:`conv2d_backward` for arguments already checked into ``plan``."""
    acc = _acc_dtype(accumulate, result_dtype(x, w, dy))
    xp = _pad(x, plan, acc)
    wg = _weights_by_group(w, plan, acc)
    dxp = np.zeros_like(xp)
    dwg = np.zeros_like(wg)
    for lo, hi in _batch_chunks(plan, acc, workspace_bytes):
        dyg = _group(dy[lo:hi].astype(acc, copy=False), plan)  # (G, rows, C_out/G)
        cols = _patches(xp[lo:hi], plan)
        dwg += np.matmul(cols.transpose(0, 2, 1), dyg)
        _scatter_patches(np.matmul(dyg, wg.transpose(0, 2, 1)), dxp[lo:hi], plan)
    (t, _), (left, _) = plan.pads
    h, wd = plan.in_hw
    dx = dxp[:, t:t + h, left:left + wd, :]
    db = dy.sum(axis=(0, 1, 2), dtype=acc)
    return (
        dx.astype(x.dtype),
        _ungroup_weights(dwg, plan).astype(w.dtype),
        db.reshape(b.shape if b is not None else (plan.c_out,)).astype(
            b.dtype if b is not None else dy.dtype
        ),
    )


def _acc_dtype(accumulate, out_dtype):
    if check_accumulate(accumulate) == "float64":
        return np.dtype(np.float64)
    # NumPy's float16 matmul is unusably slow and no framework sums in float16 either.
    return np.promote_types(out_dtype, np.float32)


def _pad(x, plan: ConvPlan, dtype):
    """Zero-padded copy of x in ``dtype`` (never a view of the caller's array)."""
    (t, b), (left, r) = plan.pads
    xp = np.zeros((plan.n, plan.in_hw[0] + t + b, plan.in_hw[1] + left + r, plan.c_in), dtype)
    xp[:, t:t + plan.in_hw[0], left:left + plan.in_hw[1], :] = x
    return xp


def _patches(xp, plan: ConvPlan):
    """Patch matrix of shape (G, nb * H_out * W_out, f_h * f_w * C_in/G)."""
    nb = xp.shape[0]
    g, cg = plan.groups, plan.c_in_per_group
    ho, wo = plan.out_hw
    fh, fw = plan.kernel
    cols = np.empty((g, nb, ho, wo, fh, fw, cg), dtype=xp.dtype)
    for kh, kw, rows, cols_ in tap_slices(plan):
        tap = xp[:, rows, cols_, :].reshape(nb, ho, wo, g, cg)
        cols[:, :, :, :, kh, kw, :] = tap.transpose(3, 0, 1, 2, 4)
    return cols.reshape(g, nb * ho * wo, fh * fw * cg)


def _scatter_patches(dcols, dxp, plan: ConvPlan):
    """Adjoint of :func:`_patches`: add patch gradients back into ``dxp`` in place."""
    nb = dxp.shape[0]
    g, cg = plan.groups, plan.c_in_per_group
    ho, wo = plan.out_hw
    fh, fw = plan.kernel
    dcols = dcols.reshape(g, nb, ho, wo, fh, fw, cg)
    for kh, kw, rows, cols_ in tap_slices(plan):
        tap = dcols[:, :, :, :, kh, kw, :].transpose(1, 2, 3, 0, 4)
        dxp[:, rows, cols_, :] += tap.reshape(nb, ho, wo, g * cg)


def _weights_by_group(w, plan: ConvPlan, dtype):
    """HWIO weights as (G, f_h * f_w * C_in/G, C_out/G)."""
    fh, fw = plan.kernel
    g, cg, og = plan.groups, plan.c_in_per_group, plan.c_out_per_group
    wg = w.astype(dtype, copy=False).reshape(fh, fw, cg, g, og).transpose(3, 0, 1, 2, 4)
    return np.ascontiguousarray(wg.reshape(g, fh * fw * cg, og))


def _ungroup_weights(wg, plan: ConvPlan):
    fh, fw = plan.kernel
    g, cg, og = plan.groups, plan.c_in_per_group, plan.c_out_per_group
    return wg.reshape(g, fh, fw, cg, og).transpose(1, 2, 3, 0, 4).reshape(fh, fw, cg, g * og)


def _group(y, plan: ConvPlan):
    """(nb, H_out, W_out, C_out) -> (G, rows, C_out/G)."""
    g, og = plan.groups, plan.c_out_per_group
    return y.reshape(-1, g, og).transpose(1, 0, 2)


def _ungroup(out, nb, plan: ConvPlan):
    """(G, rows, C_out/G) -> (nb, H_out, W_out, C_out)."""
    return out.transpose(1, 0, 2).reshape(nb, *plan.out_hw, plan.c_out)


def _batch_chunks(plan: ConvPlan, dtype, workspace_bytes):
    """Batch ranges whose patch matrix fits the workspace (at least one image each)."""
    limit = DEFAULT_WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes
    per_image = (plan.out_hw[0] * plan.out_hw[1] * plan.kernel[0] * plan.kernel[1]
                 * plan.c_in_per_group * plan.groups * np.dtype(dtype).itemsize)
    step = max(1, int(limit // max(per_image, 1)))
    return [(lo, min(lo + step, plan.n)) for lo in range(0, plan.n, step)]
