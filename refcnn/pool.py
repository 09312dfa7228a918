"""Vectorized 2-D max and average pooling on NHWC inputs, with their gradients.

Conventions (torch's; see ``refcnn.geometry`` and ``shared/semantics.md``):
max pooling pads with -inf and routes each window's gradient to its **first**
maximum in row-major window order; a window holding NaN outputs NaN and routes
its gradient to the last NaN (torch's ``val > max || isnan(val)`` scan); a
window whose real cells are all -inf routes to its first real cell.

Every function works a block of whole images at a time (see ``_image_blocks``),
padding the block into a small buffer that stays in cache while each window tap
is read, instead of padding the whole batch. Average pooling sums in float64
and separably (the taps along the width, then along the height); the max-pool
gradient routes by comparing taps with the block's maxima, one tap at a time,
so it never stacks the f_h * f_w taps of the whole input.
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
                     ceil_mode=ceil_mode, x_name="x", f_name="kernel_size", pad_name="padding")
    return max_planned(plan, x)


def max_planned(plan: PoolPlan, x):
    """:func:`max_pool2d` for arguments already checked into ``plan``."""
    y = np.empty(plan.out_shape, dtype=x.dtype)
    for n0, n1 in _image_blocks(plan, x.dtype.itemsize):
        xp = _pad(x[n0:n1], plan, -np.inf)
        yb = y[n0:n1]
        for k, (_, _, rows, cols) in enumerate(tap_slices(plan)):
            # np.maximum propagates NaN, so a window holding NaN outputs NaN, as in torch.
            if k == 0:
                yb[...] = xp[:, rows, cols, :]
            else:
                np.maximum(yb, xp[:, rows, cols, :], out=yb)
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
                     ceil_mode=ceil_mode, x_name="x", f_name="kernel_size", pad_name="padding")
    check_grad(dy, plan, "dy")
    return max_backward_planned(plan, dy, x)


def max_backward_planned(plan: PoolPlan, dy, x):
    """:func:`max_pool2d_backward` for arguments already checked into ``plan``.

    Replays torch's scan literally: ``best`` starts at -inf and the chosen tap at
    the window's first real cell; a tap replaces them when ``value > best`` or
    when it is NaN. So ties keep the first maximum, the last NaN wins, and an all
    -inf window keeps its first real cell (padding is -inf and never wins). The
    chosen taps then receive ``dy`` through one ``np.bincount`` over flat indices.
    """
    dx = np.empty(x.shape, dtype=x.dtype)
    _, hp, wp, c = _padded_shape(plan)
    (sh, sw), (dh, dw), (fh, fw) = plan.stride, plan.dilation, plan.kernel
    ho, wo = plan.out_hw
    # Flat offset (in the padded block) of every tap, and of each window's start.
    tap_offset = [(kh * dh * wp + kw * dw) * c for kh in range(fh) for kw in range(fw)]
    start = ((np.arange(ho)[:, None, None] * sh * wp + np.arange(wo)[None, :, None] * sw) * c
             + np.arange(c)[None, None, :])
    first_real = np.asarray(tap_offset)[np.argmax(_real_taps(plan), axis=-1)][:, :, None]
    for n0, n1 in _image_blocks(plan, 8):
        nb = n1 - n0
        xp = _pad(x[n0:n1], plan, -np.inf)
        has_nan = bool(np.isnan(x[n0:n1]).any())
        best = np.full((nb, ho, wo, c), -np.inf, dtype=x.dtype)
        chosen = np.broadcast_to(first_real, best.shape).astype(np.int32)
        wins = np.empty(best.shape, dtype=bool)
        step = np.empty(best.shape, dtype=np.int32)
        for offset, (_, _, rows, cols) in zip(tap_offset, tap_slices(plan)):
            tap = xp[:, rows, cols, :]
            np.greater(tap, best, out=wins)
            if has_nan:
                wins |= np.isnan(tap)
            # The running value is max(best, tap) (NaN sticks, as in torch's scan);
            # np.copyto(..., where=) would be several times slower than these.
            np.maximum(best, tap, out=best)
            # chosen = where(wins, offset, chosen), as arithmetic: masked selects with a
            # random mask run about six times slower than these three passes.
            np.subtract(np.int32(offset), chosen, out=step)
            step *= wins
            chosen += step
        flat = chosen.astype(np.intp)
        flat += start
        flat += (np.arange(nb) * (hp * wp * c))[:, None, None, None]
        dxp = np.bincount(flat.ravel(), weights=dy[n0:n1].ravel().astype(np.float64),
                          minlength=nb * hp * wp * c).reshape(nb, hp, wp, c)
        dx[n0:n1] = _crop(dxp, plan)
    return dx


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
                     divisor_override=divisor_override, x_name="x", f_name="kernel_size", pad_name="padding")
    return avg_planned(plan, x)


def avg_planned(plan: PoolPlan, x):
    """:func:`avg_pool2d` for arguments already checked into ``plan``."""
    y = np.empty(plan.out_shape, dtype=x.dtype)
    div = divisor(plan)
    rows_at, cols_at = _axis_slices(plan)
    for n0, n1 in _image_blocks(plan, 8):
        xp = _pad(x[n0:n1], plan, 0.0, np.float64)
        # Separable sum: the width taps first, then the height taps of those sums.
        across = None
        for cols in cols_at:
            if across is None:
                across = xp[:, :, cols, :].copy()
            else:
                across += xp[:, :, cols, :]
        total = None
        for rows in rows_at:
            if total is None:
                total = across[:, rows].copy()
            else:
                total += across[:, rows]
        total /= div
        y[n0:n1] = total
    return y


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
                     divisor_override=divisor_override, x_name="x", f_name="kernel_size", pad_name="padding")
    check_grad(dy, plan, "dy")
    return avg_backward_planned(plan, dy, x)


def avg_backward_planned(plan: PoolPlan, dy, x):
    """:func:`avg_pool2d_backward` for arguments already checked into ``plan``."""
    dx = np.empty(x.shape, dtype=x.dtype)
    div = divisor(plan)
    if _tiles(plan):
        # Windows tile the input exactly: every cell gets one window's share, no sums.
        (fh, fw), (ho, wo) = plan.kernel, plan.out_hw
        share = dy.astype(np.float64) / div
        dx.reshape(plan.n, ho, fh, wo, fw, plan.c)[...] = share[:, :, None, :, None, :]
        return dx
    rows_at, cols_at = _axis_slices(plan)
    shape = _padded_shape(plan)
    for n0, n1 in _image_blocks(plan, 8):
        share = dy[n0:n1].astype(np.float64)
        share /= div
        # Adjoint of the separable sum: spread along the height, then along the width.
        down = np.zeros((n1 - n0, shape[1], plan.out_hw[1], plan.c))
        for rows in rows_at:
            down[:, rows] += share
        dxp = np.zeros((n1 - n0, *shape[1:]))
        for cols in cols_at:
            dxp[:, :, cols, :] += down
        dx[n0:n1] = _crop(dxp, plan)
    return dx


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
    xp = np.full((len(x), *_padded_shape(plan)[1:]), fill, dtype=dtype or x.dtype)
    (t, _), (left, _) = plan.pads
    xp[:, t:t + plan.in_hw[0], left:left + plan.in_hw[1], :] = x
    return xp


#: Bytes of padded input per block: small enough to stay in cache while every tap reads it.
_BLOCK_BYTES = 512 * 2**10


def _image_blocks(plan: PoolPlan, itemsize):
    """``(n0, n1)`` ranges of whole images, about ``_BLOCK_BYTES`` of padded input each."""
    _, hp, wp, c = _padded_shape(plan)
    step = max(1, _BLOCK_BYTES // max(hp * wp * c * itemsize, 1))
    return [(lo, min(lo + step, plan.n)) for lo in range(0, plan.n, step)]


def _tiles(plan: PoolPlan) -> bool:
    """Windows neither overlap nor leave gaps nor reach into padding."""
    return (plan.stride == plan.kernel and plan.dilation == (1, 1)
            and plan.pads == ((0, 0), (0, 0))
            and all(o * f == size for o, f, size in zip(plan.out_hw, plan.kernel, plan.in_hw)))


def _axis_slices(plan: PoolPlan):
    """Per axis, the slice of the padded input each kernel tap reads for every output."""
    return tuple(
        [slice(k * d, k * d + s * (out - 1) + 1, s) for k in range(f)]
        for f, s, d, out in zip(plan.kernel, plan.stride, plan.dilation, plan.out_hw)
    )


def _crop(xp, plan: PoolPlan):
    (t, _), (left, _) = plan.pads
    return xp[:, t:t + plan.in_hw[0], left:left + plan.in_hw[1], :]


def _real_taps(plan: PoolPlan):
    """Boolean (H_out, W_out, f_h * f_w): which taps of each window are real input cells."""
    axes = []
    for size, out, f, s, d, p in zip(plan.in_hw, plan.out_hw, plan.kernel, plan.stride,
                                     plan.dilation, plan.pads):
        pos = np.arange(out)[:, None] * s + np.arange(f)[None, :] * d
        axes.append((pos >= p[0]) & (pos < p[0] + size))
    real = axes[0][:, None, :, None] & axes[1][None, :, None, :]
    return real.reshape(*plan.out_hw, -1)
