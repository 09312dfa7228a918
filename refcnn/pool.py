"""Vectorized 2-D max and average pooling on NHWC inputs, with their gradients.

Conventions (torch's; see ``refcnn.geometry`` and ``shared/semantics.md``):
max pooling pads with -inf and routes each window's gradient to its **first**
maximum in row-major window order; a window holding NaN outputs NaN and routes
its gradient to the last NaN (torch's ``val > max || isnan(val)`` scan); a
window whose real cells are all -inf routes to its first real cell.
"""

from __future__ import annotations

import numpy as np

from refcnn import geometry
from refcnn._plan import PoolPlan, check_grad, pool_plan, tap_slices


def max_pool2d(x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max pooling.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    kernel_size, stride, dilation : int or (int, int); stride defaults to kernel_size
    padding : int, (ph, pw) or ((top, bottom), (left, right)); padded cells are -inf
    ceil_mode : bool

    Returns
    -------
    y : ndarray, shape (N, H_out, W_out, C), x's dtype
    """
    plan = pool_plan(x, kernel_size, stride=stride, padding=padding, dilation=dilation,
                     ceil_mode=ceil_mode, x_name="x")
    return max_planned(plan, x)


def max_planned(plan: PoolPlan, x):
    """:func:`max_pool2d` for arguments already checked into ``plan``."""
    xp = _pad(x, plan, -np.inf)
    y = None
    for _, _, rows, cols in tap_slices(plan):
        # np.maximum propagates NaN, so a window holding NaN outputs NaN, as in torch.
        y = xp[:, rows, cols, :].copy() if y is None else np.maximum(y, xp[:, rows, cols, :])
    return y


def max_pool2d_backward(dy, x, kernel_size, *, stride=None, padding=0, dilation=1,
                        ceil_mode=False):
    """Gradient of :func:`max_pool2d` with respect to x.

    Parameters
    ----------
    dy : ndarray, shape (N, H_out, W_out, C)
    x, kernel_size, stride, padding, dilation, ceil_mode
        As for :func:`max_pool2d`.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C), x's dtype
    """
    plan = pool_plan(x, kernel_size, stride=stride, padding=padding, dilation=dilation,
                     ceil_mode=ceil_mode, x_name="x")
    check_grad(dy, plan, "dy")
    return max_backward_planned(plan, dy, x)


def max_backward_planned(plan: PoolPlan, dy, x):
    """:func:`max_pool2d_backward` for arguments already checked into ``plan``."""
    xp = _pad(x, plan, -np.inf)
    choice = _max_choice(_taps(xp, plan), plan)
    dxp = np.zeros(xp.shape, dtype=np.float64)
    for kh, kw, rows, cols in tap_slices(plan):
        dxp[:, rows, cols, :] += np.where(choice == kh * plan.kernel[1] + kw, dy, 0.0)
    return _crop(dxp, plan).astype(x.dtype)


def avg_pool2d(x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Average pooling, summed in float64.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    kernel_size, stride, dilation : int or (int, int); stride defaults to kernel_size
    padding : int, (ph, pw) or ((top, bottom), (left, right)); padded cells are 0
    ceil_mode : bool
    count_include_pad : bool
        Divide by the taps inside the explicitly padded input (True) or by the
        real input cells only (False). Cells that ceil_mode adds never count.
    divisor_override : int, optional
        Divide by this instead.

    Returns
    -------
    y : ndarray, shape (N, H_out, W_out, C), x's dtype
    """
    plan = pool_plan(x, kernel_size, stride=stride, padding=padding, dilation=dilation,
                     ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                     divisor_override=divisor_override, x_name="x")
    return avg_planned(plan, x)


def avg_planned(plan: PoolPlan, x):
    """:func:`avg_pool2d` for arguments already checked into ``plan``."""
    xp = _pad(x, plan, 0.0, np.float64)
    total = np.zeros(plan.out_shape, dtype=np.float64)
    for _, _, rows, cols in tap_slices(plan):
        total += xp[:, rows, cols, :]
    return (total / divisor(plan)).astype(x.dtype)


def avg_pool2d_backward(dy, x, kernel_size, *, stride=None, padding=0, dilation=1,
                        ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Gradient of :func:`avg_pool2d` with respect to x.

    Parameters
    ----------
    dy : ndarray, shape (N, H_out, W_out, C)
    x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override
        As for :func:`avg_pool2d`.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C), x's dtype
    """
    plan = pool_plan(x, kernel_size, stride=stride, padding=padding, dilation=dilation,
                     ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                     divisor_override=divisor_override, x_name="x")
    check_grad(dy, plan, "dy")
    return avg_backward_planned(plan, dy, x)


def avg_backward_planned(plan: PoolPlan, dy, x):
    """:func:`avg_pool2d_backward` for arguments already checked into ``plan``."""
    share = dy.astype(np.float64) / divisor(plan)
    dxp = np.zeros(_padded_shape(plan), dtype=np.float64)
    for _, _, rows, cols in tap_slices(plan):
        dxp[:, rows, cols, :] += share
    return _crop(dxp, plan).astype(x.dtype)


def divisor(plan: PoolPlan) -> np.ndarray:
    """The average's divisor per output position, shape (H_out, W_out, 1)."""
    if plan.divisor_override is not None:
        return np.full((*plan.out_hw, 1), float(plan.divisor_override))
    counts = [
        geometry.window_counts(size, out, f, s, d, p, plan.count_include_pad)
        for size, out, f, s, d, p in zip(
            plan.in_hw, plan.out_hw, plan.kernel, plan.stride, plan.dilation, plan.pads
        )
    ]
    return np.multiply.outer(counts[0], counts[1])[:, :, None]


def _padded_shape(plan: PoolPlan):
    """Padded input, extended past the bottom/right pad where ceil_mode windows overhang."""
    ext = []
    for size, out, f, s, d, p in zip(plan.in_hw, plan.out_hw, plan.kernel, plan.stride,
                                     plan.dilation, plan.pads):
        ext.append(max(size + p[0] + p[1], (out - 1) * s + d * (f - 1) + 1))
    return (plan.n, ext[0], ext[1], plan.c)


def _pad(x, plan: PoolPlan, fill, dtype=None):
    xp = np.full(_padded_shape(plan), fill, dtype=dtype or x.dtype)
    (t, _), (left, _) = plan.pads
    xp[:, t:t + plan.in_hw[0], left:left + plan.in_hw[1], :] = x
    return xp


def _crop(xp, plan: PoolPlan):
    (t, _), (left, _) = plan.pads
    return xp[:, t:t + plan.in_hw[0], left:left + plan.in_hw[1], :]


def _taps(xp, plan: PoolPlan):
    """Window taps stacked last: shape (N, H_out, W_out, C, f_h * f_w)."""
    return np.stack([xp[:, rows, cols, :] for _, _, rows, cols in tap_slices(plan)], axis=-1)


def _real_taps(plan: PoolPlan):
    """Boolean (H_out, W_out, f_h * f_w): which taps of each window are real input cells."""
    axes = []
    for size, out, f, s, d, p in zip(plan.in_hw, plan.out_hw, plan.kernel, plan.stride,
                                     plan.dilation, plan.pads):
        pos = np.arange(out)[:, None] * s + np.arange(f)[None, :] * d
        axes.append((pos >= p[0]) & (pos < p[0] + size))
    real = axes[0][:, None, :, None] & axes[1][None, :, None, :]
    return real.reshape(*plan.out_hw, -1)


def _max_choice(taps, plan: PoolPlan):
    """Index of the tap each window routes its gradient to, torch's rule.

    Returns
    -------
    ndarray of int, shape (N, H_out, W_out, C)
    """
    k = taps.shape[-1]
    nan = np.isnan(taps)
    last_nan = k - 1 - np.argmax(nan[..., ::-1], axis=-1)
    # np.argmax returns the first occurrence: the first maximum in window order.
    first_max = np.argmax(np.where(nan, -np.inf, taps), axis=-1)
    first_real = np.argmax(_real_taps(plan), axis=-1)[None, :, :, None]
    all_neg_inf = np.all(np.where(nan, -np.inf, taps) == -np.inf, axis=-1)
    choice = np.where(all_neg_inf, first_real, first_max)
    return np.where(nan.any(axis=-1), last_nan, choice)
