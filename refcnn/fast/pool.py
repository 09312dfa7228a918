"""Vectorized 2-D max and average pooling on NHWC inputs, with their gradients.

Conventions (torch's; see ``refcnn.geometry`` and ``docs/semantics.md``):
max pooling pads with -inf and routes each window's gradient to its **first**
maximum in row-major window order; a window holding NaN outputs NaN and routes
its gradient to the last NaN (torch's ``val > max || isnan(val)`` scan); a
window whose real cells are all -inf routes to its first real cell.

Every function works a block of whole images at a time (see ``_image_blocks``),
padding the block into a small buffer that stays in cache while each window tap
is read, instead of padding the whole batch. Average pooling sums in float64
and separably (the taps along the height, then along the width); the max-pool
gradient finds each window's first maximum separably too (see
:class:`_SeparableRouter`), so it never stacks the f_h * f_w taps of the whole
input. Block sizes and threads are the knobs of :class:`refcnn.fast.FastConfig`,
passed as ``config=``.

Nothing here builds a strided view: every tap is a basic slice, so any input
layout (views, negative strides, read-only or unaligned buffers) is read as
NumPy's indexing reads it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from refcnn import geometry
from refcnn.fast.config import DEFAULT_CONFIG, check_config
from refcnn.fast.plan import PoolPlan, check_grad, pool_plan, tap_slices

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "max_planned", "max_backward_planned", "avg_planned", "avg_backward_planned"]


def _core_plan(x, kernel_size, **options) -> PoolPlan:
    """:func:`pool_plan` with the core API's argument names in its messages (the notebook's
    are its defaults)."""
    return pool_plan(x, kernel_size, x_name="x", f_name="kernel_size", pad_name="padding",
                     **options)


def _parallel_map(fn, items, threads):
    """``[fn(chunk) for chunk in chunks]`` over ``threads`` contiguous chunks of the list
    ``items``, run concurrently on a pool made for this call; one chunk runs inline."""
    k = min(threads, len(items))
    if k <= 1:
        return [fn(items)]
    bounds = [len(items) * i // k for i in range(k + 1)]
    chunks = [items[a:b] for a, b in zip(bounds, bounds[1:])]
    with ThreadPoolExecutor(k, thread_name_prefix="refcnn") as executor:
        return list(executor.map(fn, chunks))


def max_pool2d(x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
               config=DEFAULT_CONFIG):
    """Max pooling.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    kernel_size, stride, dilation : int or (int, int); stride defaults to kernel_size
    padding : int, (ph, pw) or ((top, bottom), (left, right)); padded cells are -inf
    ceil_mode : bool
    config : FastConfig, optional
        Block sizes and threads (see :class:`refcnn.fast.FastConfig`).

    Returns
    -------
    y : ndarray, shape (N, H_out, W_out, C), x's dtype
    """
    plan = _core_plan(x, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      ceil_mode=ceil_mode)
    return max_planned(plan, x, config)


def max_planned(plan: PoolPlan, x, config=DEFAULT_CONFIG):
    """:func:`max_pool2d` for arguments already checked into ``plan``."""
    check_config(config)
    y = np.empty(plan.out_shape, dtype=x.dtype)
    for n0, n1 in _image_blocks(plan, x.dtype.itemsize, config):
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
                        ceil_mode=False, config=DEFAULT_CONFIG):
    """Gradient of :func:`max_pool2d` with respect to x.

    Parameters
    ----------
    dy : ndarray, shape (N, H_out, W_out, C)
    x, kernel_size, stride, padding, dilation, ceil_mode, config
        As for :func:`max_pool2d`.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C), x's dtype
    """
    plan = _core_plan(x, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      ceil_mode=ceil_mode)
    check_grad(dy, plan, "dy")
    return max_backward_planned(plan, dy, x, config)


def max_backward_planned(plan: PoolPlan, dy, x, config=DEFAULT_CONFIG):
    """:func:`max_pool2d_backward` for arguments already checked into ``plan``.

    Routes separably (see :class:`_SeparableRouter`); a block whose windows hold
    NaN, or whose ``dy`` is not finite, is routed by :func:`_route_by_scan`. Blocks
    of images run on ``config.threads`` threads.
    """
    check_config(config)
    dx = np.empty(x.shape, dtype=x.dtype)
    (t, _), (left, _) = plan.pads
    h, w = plan.in_hw

    def run(blocks):
        nb = blocks[0][1] - blocks[0][0]
        # One padded buffer for all these blocks: its -inf border is written once.
        xp = np.full((nb, *_padded_shape(plan)[1:]), -np.inf, x.dtype)
        router = _SeparableRouter(plan, nb)
        for n0, n1 in blocks:
            xpb = xp[:n1 - n0]
            xpb[:, t:t + h, left:left + w] = x[n0:n1]
            if not router.route(xpb, dy[n0:n1], dx[n0:n1]):
                dx[n0:n1] = _route_by_scan(plan, xpb, dy[n0:n1])

    blocks = _image_blocks(plan, x.dtype.itemsize, config)
    if blocks:
        _parallel_map(run, blocks, config.threads)
    return dx


class _SeparableRouter:
    """Routes each window's ``dy`` to its first maximum in row-major order, separably.

    A vertical pass over whole padded rows (long contiguous runs, so NumPy's inner
    loops are long) finds, for every output row and padded column, the column
    segment's maximum and the first row reaching it. A horizontal pass takes each
    window's maximum over its column segments; the row-major first maximum is then,
    among the segments reaching it, the one with the least ``row * f_w + column``
    (a small integer key: int8 arithmetic costs a fraction of float arithmetic).
    The gradient reaches the chosen cells by one ``np.add.at`` over flat indices,
    summed in float64 (where several windows route to one cell, a sum in x's dtype
    could be an ulp off the correctly rounded one) and rounded once into dx.

    Holds what every block of up to ``nb`` images shares: flat window origins, scratch.
    """

    def __init__(self, plan: PoolPlan, nb):
        self.plan = plan
        self.rows_at, self.cols_at = _axis_slices(plan)
        self.first_rows = _first_real_taps(plan)[0]
        self.pad_cols = _padding_columns(plan)
        (fh, fw), c = plan.kernel, plan.c
        (sh, sw), (dh, dw) = plan.stride, plan.dilation
        (top, _), (left, _) = plan.pads
        h, w = plan.in_hw
        ho, wo = plan.out_hw
        # Keys reach 3 * f_h * f_w (a key plus two "never wins" flags).
        self.key_type = np.int8 if 3 * fh * fw < 128 else np.int32
        # Flat index, in an unpadded block, of each window's first (maybe padded) tap.
        # The chosen cell is real, so origin + row * row_step + col * col_step is in range.
        self.origin = (((np.arange(nb)[:, None, None, None] * h
                         + np.arange(ho)[:, None, None] * sh - top) * w
                        + np.arange(wo)[:, None] * sw - left) * c + np.arange(c))
        self.row_step, self.col_step = np.intp(dh * w * c), np.intp(dw * c)
        self.flat = np.empty(self.origin.shape, dtype=np.intp)
        self.acc = np.empty((nb, h * w * c), np.float64)
        self.share = np.empty(self.origin.shape, np.float64)

    def route(self, xp, dy, dx) -> bool:
        """Write the gradient of the block ``xp`` (padded with -inf) into ``dx``.

        Returns False, writing nothing, when a window holds NaN (torch then routes to
        its last NaN) or ``dy`` holds NaN or inf (which no 0/1 trick may spread).
        """
        plan, kt = self.plan, self.key_type
        fh, fw = plan.kernel
        nb = len(xp)
        seg_max, seg_row = _first_max([xp[:, rows] for rows in self.rows_at], self.first_rows,
                                      axis=1)
        segs = [seg_max[:, :, cols] for cols in self.cols_at]
        win_max = segs[0].copy()
        for seg in segs[1:]:
            np.maximum(win_max, seg, out=win_max)
        # np.maximum propagates NaN, so a window holding NaN has a NaN maximum.
        if np.isnan(np.max(win_max)):
            return False
        share = self.share[:nb]
        share[...] = dy
        if not np.isfinite(np.sum(share)):
            return False
        # key = row * f_w + column, plus `big` where the segment is below the window's
        # maximum and again where it lies in the padding: the least key wins.
        big = kt(fh * fw)
        # Horizontal taps are strided views (short inner loops): touch each once per tap.
        seg_key = np.multiply(seg_row, kt(fw), dtype=kt)
        best = np.full(win_max.shape, 3 * big, dtype=kt)
        key = np.empty(win_max.shape, dtype=kt)
        flag = np.empty(win_max.shape, dtype=kt)
        below = np.empty(win_max.shape, dtype=bool)
        for k, (seg, cols) in enumerate(zip(segs, self.cols_at)):
            np.less(seg, win_max, out=below)
            np.multiply(below.view(np.int8), big, out=flag)
            flag += kt(k)
            np.add(seg_key[:, :, cols], flag, out=key)
            for j in np.flatnonzero(self.pad_cols[:, k]):
                key[:, :, j] += big
            np.minimum(best, key, out=best)
        # Back to (row, column): row counts the row starts at or below the key
        # (compares, cheaper than integer division).
        row = np.zeros(best.shape, dtype=kt)
        for m in range(1, fh):
            np.greater_equal(best, kt(m * fw), out=below)
            row += below.view(np.int8) if kt == np.int8 else below
        col = best
        col -= row * kt(fw)
        flat = self.flat[:nb]
        np.multiply(row, self.row_step, out=flat)
        flat += self.origin[:nb]
        flat += np.multiply(col, self.col_step)
        acc = self.acc[:nb]
        acc.fill(0.0)
        np.add.at(acc.reshape(-1), flat.reshape(-1), share.reshape(-1))
        dx.reshape(acc.shape)[...] = acc
        return True


def _padding_columns(plan: PoolPlan):
    """Boolean (W_out, f_w): which column taps of each window lie in the padding."""
    size, out, f, s, d, p = (plan.in_hw[1], plan.out_hw[1], plan.kernel[1], plan.stride[1],
                             plan.dilation[1], plan.pads[1])
    pos = np.arange(out)[:, None] * s + np.arange(f)[None, :] * d
    return (pos < p[0]) | (pos >= p[0] + size)


def _first_max(taps, first_real, axis):
    """Maximum of equally shaped ``taps`` and the index of the first tap that reaches it.

    The index counts the running maxima still below the final one: the first
    maximum's index is the number of taps before it. Where every tap is -inf,
    the index is ``first_real`` (per position along ``axis``), as torch starts
    its scan at a window's first real cell and padding (-inf) never beats it.
    """
    running = [taps[0]]
    for tap in taps[1:]:
        running.append(np.maximum(running[-1], tap))
    top = running[-1]
    arg = np.zeros(top.shape, dtype=np.int8 if len(taps) < 128 else np.intp)
    below = np.empty(top.shape, dtype=bool)
    for r in running[:-1]:
        np.less(r, top, out=below)
        arg += below.view(np.int8) if arg.dtype == np.int8 else below
    # Elsewhere the first maximum is a real cell, at or after the first real one.
    for pos in np.flatnonzero(first_real):
        sl = (slice(None),) * axis + (pos,)
        np.maximum(arg[sl], first_real[pos], out=arg[sl])
    return top, arg


def _first_real_taps(plan: PoolPlan):
    """Per axis, the index of each window's first tap that is a real input cell."""
    return [geometry.first_real_taps(size, out, f, s, d, p)
            for size, out, f, s, d, p in zip(plan.in_hw, plan.out_hw, plan.kernel,
                                             plan.stride, plan.dilation, plan.pads)]


def _route_by_scan(plan: PoolPlan, xp, dy):
    """Max-pool gradient of one padded block by replaying torch's scan literally.

    ``best`` starts at -inf and the chosen tap at the window's first real cell; a
    tap replaces them when ``value > best`` or when it is NaN. So ties keep the
    first maximum, the last NaN wins, and an all -inf window keeps its first real
    cell (padding is -inf and never wins). The chosen taps then receive ``dy``
    through one ``np.bincount`` over flat indices. Handles any input, slowly.
    """
    nb, hp, wp, c = xp.shape
    (sh, sw), (dh, dw), (fh, fw) = plan.stride, plan.dilation, plan.kernel
    ho, wo = plan.out_hw
    # Flat offset (in the padded block) of every tap, and of each window's start.
    tap_offset = [(kh * dh * wp + kw * dw) * c for kh in range(fh) for kw in range(fw)]
    start = ((np.arange(ho)[:, None, None] * sh * wp + np.arange(wo)[None, :, None] * sw) * c
             + np.arange(c)[None, None, :])
    # Real cells form a grid, so a window's first real tap (row-major) is its first real
    # row and, in it, its first real column.
    first_row, first_col = _first_real_taps(plan)
    first_real = np.asarray(tap_offset)[first_row[:, None] * fw + first_col[None, :]][:, :, None]
    has_nan = bool(np.isnan(xp).any())
    best = np.full((nb, ho, wo, c), -np.inf, dtype=xp.dtype)
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
    dxp = np.bincount(flat.ravel(), weights=dy.ravel().astype(np.float64),
                      minlength=nb * hp * wp * c).reshape(nb, hp, wp, c)
    return _crop(dxp, plan)


def avg_pool2d(x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
               count_include_pad=True, divisor_override=None, config=DEFAULT_CONFIG):
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
    config : FastConfig, optional
        Block sizes (see :class:`refcnn.fast.FastConfig`).

    Returns
    -------
    y : ndarray, shape (N, H_out, W_out, C), x's dtype
    """
    plan = _core_plan(x, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                      divisor_override=divisor_override)
    return avg_planned(plan, x, config)


def avg_planned(plan: PoolPlan, x, config=DEFAULT_CONFIG):
    """:func:`avg_pool2d` for arguments already checked into ``plan``."""
    check_config(config)
    y = np.empty(plan.out_shape, dtype=x.dtype)
    div = divisor(plan)
    rows_at, cols_at = _axis_slices(plan)
    # Without padding (or ceil_mode overhang) the taps read x itself: no padded copy.
    unpadded = _padded_shape(plan) == x.shape
    for n0, n1 in _image_blocks(plan, 8, config):
        xp = x[n0:n1] if unpadded else _pad(x[n0:n1], plan, 0.0)
        # Separable float64 sum: the height taps first, as they read whole padded rows
        # (long contiguous runs, so NumPy's inner loops are long), then the width taps
        # of those sums. The first tap is converted to float64 as it is copied.
        down = xp[:, rows_at[0]].astype(np.float64)
        for rows in rows_at[1:]:
            down += xp[:, rows]
        if len(cols_at) == 1:
            total = down[:, :, cols_at[0]]
        else:
            total = np.add(down[:, :, cols_at[0]], down[:, :, cols_at[1]])
            for cols in cols_at[2:]:
                total += down[:, :, cols]
        # Divided in float64, rounded once into y.
        np.divide(total, div, out=y[n0:n1], casting="unsafe")
    return y


def avg_pool2d_backward(dy, x, kernel_size, *, stride=None, padding=0, dilation=1,
                        ceil_mode=False, count_include_pad=True, divisor_override=None,
                        config=DEFAULT_CONFIG):
    """Gradient of :func:`avg_pool2d` with respect to x.

    Parameters
    ----------
    dy : ndarray, shape (N, H_out, W_out, C)
    x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override,
    config
        As for :func:`avg_pool2d`.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C), x's dtype
    """
    plan = _core_plan(x, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                      divisor_override=divisor_override)
    check_grad(dy, plan, "dy")
    return avg_backward_planned(plan, dy, x, config)


def avg_backward_planned(plan: PoolPlan, dy, x, config=DEFAULT_CONFIG):
    """:func:`avg_pool2d_backward` for arguments already checked into ``plan``."""
    check_config(config)
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
    for n0, n1 in _image_blocks(plan, 8, config):
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


def _image_blocks(plan: PoolPlan, itemsize, config):
    """``(n0, n1)`` ranges of whole images, about ``config.pool_block_bytes`` of padded
    input each."""
    _, hp, wp, c = _padded_shape(plan)
    step = max(1, config.pool_block_bytes // max(hp * wp * c * itemsize, 1))
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
