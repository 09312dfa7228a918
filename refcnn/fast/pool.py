"""Vectorized 2-D max and average pooling on NHWC inputs, with their gradients.

Conventions (torch's; see ``refcnn.geometry`` and ``docs/semantics.md``):
max pooling pads with -inf and routes each window's gradient to its **first**
maximum in row-major window order; a window holding NaN outputs NaN and routes
its gradient to the last NaN (torch's ``val > max || isnan(val)`` scan); a
window whose real cells are all -inf routes to its first real cell. The same
cell is what ``return_indices=True`` names, in torch's form: the flat
row-major index into the window's (n, c) input plane, as int64.

Every function works a block of whole images at a time (see ``_image_blocks``),
padding the block into a small buffer that stays in cache while each window tap
is read, instead of padding the whole batch. The max pool's indices come from
one pass per tap that keeps each window's running maximum and the tap that
first reached it (:func:`_argmax_taps`); given those indices, the gradient is a
scatter of ``dy`` (:class:`_Scatter`) and searches nothing. Without them the
gradient finds each window's first maximum separably (see
:class:`_SeparableRouter`), so it never stacks the f_h * f_w taps of the whole
input. Average pooling sums separably: the taps along the height, then along
the width.

``accumulate`` says what sums run in: ``"float64"`` (the default) sums in
float64 and rounds once into the output; ``"native"`` sums in the input's
precision (float16 in float32), as torch does, so results may differ from the
default's in the last bits where several terms meet. A max is no sum: its
forward is exact either way, and so is a gradient whose windows never overlap.

Block sizes are knobs of :class:`refcnn.fast.FastConfig`, passed as
``config=``; pooling runs in the caller's thread whatever ``config.threads``:
its blocks are short NumPy calls, whose hand-offs of the GIL cost more than a
second core gives, and ``np.add.at``, the gradient's scatter, holds the GIL.

Nothing here builds a strided view: every tap is a basic slice, so any input
layout (views, negative strides, read-only or unaligned buffers) is read as
NumPy's indexing reads it.
"""

from __future__ import annotations

import numpy as np

from refcnn import geometry
from refcnn._params import acc_dtype, check_accumulate, check_flag
from refcnn.fast.config import DEFAULT_CONFIG, check_config
from refcnn.fast.plan import PoolPlan, check_grad, pool_plan, tap_slices

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "max_planned", "max_indices_planned", "max_backward_planned",
           "max_scatter_planned", "check_indices", "avg_planned", "avg_backward_planned"]


def _core_plan(x, kernel_size, **options) -> PoolPlan:
    """:func:`pool_plan` with the core API's argument names in its messages (the notebook's
    are its defaults)."""
    return pool_plan(x, kernel_size, x_name="x", f_name="kernel_size", pad_name="padding",
                     **options)


# Max pooling -----------------------------------------------------------------------------

def max_pool2d(x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, accumulate="float64", config=DEFAULT_CONFIG):
    """Max pooling.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    kernel_size, stride, dilation : int or (int, int); stride defaults to kernel_size
    padding : int, (ph, pw) or ((top, bottom), (left, right)); padded cells are -inf
    ceil_mode : bool
    return_indices : bool
        Also return each window's chosen cell, for :func:`max_pool2d_backward`'s
        ``indices``.
    accumulate : {"float64", "native"}
        Checked and otherwise unused (a max sums nothing), so that one set of
        options serves the forward and :func:`max_pool2d_backward`.
    config : FastConfig, optional
        Block sizes (see :class:`refcnn.fast.FastConfig`).

    Returns
    -------
    y : ndarray, shape (N, H_out, W_out, C), x's dtype
        A window holding NaN gives NaN. Where -0.0 and 0.0 tie, either may be
        returned (NumPy's maximum does not order signed zeros); the indices follow
        torch's scan all the same.
    indices : ndarray of int64, shape (N, H_out, W_out, C), only with return_indices
        torch's indices: the flat row-major index ``h * W + w`` into each (n, c)
        input plane of the window's first maximum in row-major window order (its
        last NaN if it holds any; its first input cell if all its cells are -inf),
        as :func:`refcnn.functional.max_pool` gives them.
    """
    plan = _core_plan(x, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      ceil_mode=ceil_mode)
    check_flag(return_indices, "return_indices")
    check_accumulate(accumulate)
    if return_indices:
        return max_indices_planned(plan, x, config)
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


def max_indices_planned(plan: PoolPlan, x, config=DEFAULT_CONFIG):
    """:func:`max_pool2d` with ``return_indices=True``, for arguments already checked into
    ``plan``: ``(y, indices)``."""
    check_config(config)
    y = np.empty(plan.out_shape, dtype=x.dtype)
    indices = np.empty(plan.out_shape, dtype=np.int64)
    blocks = _image_blocks(plan, x.dtype.itemsize, config)
    if not blocks:
        return y, indices
    taps = _TapIndex(plan)
    for n0, n1 in blocks:
        xp = _pad(x[n0:n1], plan, -np.inf)
        taps.plane_indices(_argmax_taps(plan, xp, y[n0:n1], taps.first), indices[n0:n1])
    return y, indices


def _argmax_taps(plan: PoolPlan, xp, best, first):
    """Each window's maximum (written into ``best``) and its chosen tap, by torch's scan.

    The taps are read in row-major order, each window keeping its running maximum
    and the number ``k = kh * f_w + kw`` of the tap that set it: a tap replaces it
    when ``value > best`` (so ties keep the first maximum) or, in a block holding
    NaN, when it is NaN (so the last NaN wins). A window whose cells are all -inf
    keeps tap 0, which may be padding: ``first`` (each window's first real tap)
    is a lower bound on the chosen tap elsewhere (real cells form a grid, so
    every real tap comes at or after the first one), so taking the larger of the
    two fixes those windows alone. The NaN test costs a pass per tap, so it runs
    only on a block whose maxima turned out to hold NaN, which is scanned again.

    Parameters
    ----------
    xp : ndarray, shape (nb, H_p, W_p, C), a block padded with -inf
    best : ndarray, shape (nb, H_out, W_out, C), written
    first : ndarray of the tap dtype, shape (H_out, W_out, 1)

    Returns
    -------
    chosen : ndarray, shape (nb, H_out, W_out, C), of the smallest integer dtype
        that holds every tap number
    """
    slices = [(rows, cols) for _, _, rows, cols in tap_slices(plan)]
    kt = first.dtype.type
    chosen = np.empty(best.shape, kt)
    wins = np.empty(best.shape, bool)
    step = np.empty(best.shape, kt)
    for nan in (False, True):
        best[...] = xp[:, slices[0][0], slices[0][1]]
        chosen.fill(0)
        for k, (rows, cols) in enumerate(slices[1:], 1):
            tap = xp[:, rows, cols]
            np.greater(tap, best, out=wins)
            if nan:
                wins |= np.isnan(tap)
            # The running value is max(best, tap) (NaN sticks, as in torch's scan), and
            # chosen = where(wins, k, chosen) as arithmetic: masked selects with a
            # random mask run several times slower than these three small passes.
            np.maximum(tap, best, out=best)
            np.subtract(kt(k), chosen, out=step)
            step *= wins
            chosen += step
        # np.max propagates NaN: one NaN anywhere in the block shows in its maximum.
        if nan or not best.size or not np.isnan(np.max(best)):
            break
    np.maximum(chosen, first, out=chosen)
    return chosen


class _TapIndex:
    """Turns tap numbers into torch's plane indices: ``h * W + w`` of the tap's cell.

    Window ``(i, j)``'s tap ``(kh, kw)`` reads input cell ``(i * s_h - top + kh *
    d_h, j * s_w - left + kw * d_w)``, so its plane index is a per-window base plus a
    per-tap offset (either may be negative alone; their sum, for a chosen tap, is a
    real cell).
    """

    def __init__(self, plan: PoolPlan):
        (fh, fw), (sh, sw), (dh, dw) = plan.kernel, plan.stride, plan.dilation
        (top, _), (left, _) = plan.pads
        w = plan.in_hw[1]
        ho, wo = plan.out_hw
        kt = np.min_scalar_type(-(fh * fw))
        self.offset = (np.arange(fh)[:, None] * (dh * w) + np.arange(fw) * dw).reshape(-1)
        self.offset = self.offset.astype(np.int64)
        base = (np.arange(ho, dtype=np.int64)[:, None] * sh - top) * w + np.arange(wo) * sw - left
        # As a whole (H_out, W_out, C) array: adding it runs one long loop, where a
        # broadcast (H_out, W_out, 1) runs loops of C.
        self.base = np.broadcast_to(base[:, :, None], (ho, wo, plan.c)).copy()
        first_row, first_col = _first_real_taps(plan)
        self.first = (first_row[:, None] * fw + first_col)[:, :, None].astype(kt)

    def plane_indices(self, chosen, out):
        """Write the plane index of each window's tap ``chosen`` into ``out`` (int64)."""
        np.take(self.offset, chosen, out=out, mode="clip")
        out += self.base


def max_pool2d_backward(dy, x, kernel_size, *, stride=None, padding=0, dilation=1,
                        ceil_mode=False, indices=None, accumulate="float64",
                        config=DEFAULT_CONFIG):
    """Gradient of :func:`max_pool2d` with respect to x.

    Parameters
    ----------
    dy : ndarray, shape (N, H_out, W_out, C)
    x, kernel_size, stride, padding, dilation, ceil_mode, config
        As for :func:`max_pool2d`.
    indices : ndarray of integers, shape (N, H_out, W_out, C), optional
        The forward's indices (``max_pool2d(..., return_indices=True)``): each
        window's ``dy`` goes to the cell they name, without searching x. Each
        must lie in ``[0, H * W)``. Without them, each window's first maximum is
        found again (the same cells, for the same x).
    accumulate : {"float64", "native"}
        Where windows overlap, the gradients reaching one cell are summed in
        float64 and rounded once (the default) or summed in x's precision.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C), x's dtype
    """
    plan = _core_plan(x, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      ceil_mode=ceil_mode)
    check_grad(dy, plan, "dy")
    check_accumulate(accumulate)
    if indices is not None:
        check_indices(indices, plan, "indices")
        return max_scatter_planned(plan, dy, x, indices, config, accumulate)
    return max_backward_planned(plan, dy, x, config, accumulate)


def check_indices(indices, plan: PoolPlan, name: str):
    """``indices`` must be an integer array of the forward output's shape.

    Their range (``[0, H * W)``) is checked block by block as they are used, by
    :func:`max_scatter_planned`; everything here is constant time.
    """
    if not isinstance(indices, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of integers (the forward's "
                        f"return_indices), got {type(indices).__name__}")
    if not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype (the forward's int64 indices), "
                        f"got {indices.dtype}")
    if indices.shape != plan.out_shape:
        raise ValueError(f"{name} must have the forward output's shape {plan.out_shape}, "
                         f"got {indices.shape}")


def _check_range(indices, plan: PoolPlan, name: str):
    """Refuse an index outside ``[0, H * W)``, in one pass: seen as unsigned, a negative
    index is larger than any plane."""
    if not indices.size:
        return
    h, w = plan.in_hw
    unsigned = indices.view(np.dtype(f"u{indices.dtype.itemsize}"))
    if int(np.max(unsigned)) >= h * w:
        raise ValueError(
            f"{name} must be flat indices into the {h}x{w} input plane, in [0, {h * w}), "
            f"got values from {int(np.min(indices))} to {int(np.max(indices))}")


def max_scatter_planned(plan: PoolPlan, dy, x, indices, config=DEFAULT_CONFIG,
                        accumulate="float64"):
    """:func:`max_pool2d_backward` with ``indices`` (checked by :func:`check_indices`, their
    range checked here), for arguments already checked into ``plan``."""
    check_config(config)
    acc = acc_dtype(accumulate, x.dtype)
    if not indices.dtype.isnative:
        # The range check reads the bits as unsigned integers of this machine's order.
        indices = indices.astype(indices.dtype.newbyteorder("="))
    dx = np.empty(x.shape, dtype=x.dtype)
    blocks = _image_blocks(plan, acc.itemsize, config)
    if blocks:
        scatter = _Scatter(plan, blocks[0][1] - blocks[0][0], acc, dx.dtype)
        for n0, n1 in blocks:
            scatter(indices[n0:n1], dy[n0:n1], dx[n0:n1], check="indices")
    return dx


class _Scatter:
    """Adds each window's ``dy`` into the input cell its plane index names, for blocks of
    up to ``nb`` images.

    One ``np.add.at`` over flat NHWC indices, in window order (so the sums reaching a
    cell are formed in the same order whatever found the indices): straight into dx
    when the sums run in its dtype, else into a buffer of the accumulator's dtype,
    rounded once into dx. ``dy`` is cast to the accumulator first: ``np.add.at`` is
    many times slower when it must cast as it goes. The block of dx (or the buffer)
    is zeroed just before the scatter, so that it is still in cache when the scatter
    writes it (zeroing all of dx first would send it to memory and back).
    """

    def __init__(self, plan: PoolPlan, nb, acc, dtype):
        h, w = plan.in_hw
        self.plan, self.c, self.plane = plan, plan.c, h * w * plan.c
        # Each output's channel, as a whole array: adding it to index * C runs one
        # long loop, where adding a broadcast (C,) row runs loops of C.
        self.channel = np.broadcast_to(np.arange(plan.c, dtype=np.intp),
                                       (*plan.out_hw, plan.c)).copy()
        self.image = np.arange(nb, dtype=np.intp)[:, None, None, None] * self.plane
        self.flat = np.empty((nb, *plan.out_hw, plan.c), dtype=np.intp)
        self.acc = acc
        self.buffer = None if acc == dtype else np.empty(nb * self.plane, acc)

    def __call__(self, indices, dy, dx, check=None):
        """Write the gradient of one block into ``dx``; with ``check`` (the name of the
        indices), refuse indices outside the plane first."""
        nb = len(dy)
        flat = self.flat[:nb]
        np.multiply(indices, self.c, out=flat, casting="unsafe")
        if check is not None:
            # After the multiply, which brought the indices into cache.
            _check_range(indices, self.plan, check)
        flat += self.channel
        if nb > 1:
            flat += self.image[:nb]
        values = dy.astype(self.acc, copy=False).reshape(-1)
        target = dx.reshape(-1) if self.buffer is None else self.buffer[:nb * self.plane]
        target.fill(0)
        np.add.at(target, flat.reshape(-1), values)
        if self.buffer is not None:
            dx.reshape(-1)[...] = target


def max_backward_planned(plan: PoolPlan, dy, x, config=DEFAULT_CONFIG, accumulate="float64"):
    """:func:`max_pool2d_backward` without indices, for arguments already checked into
    ``plan``.

    Routes separably (see :class:`_SeparableRouter`); a block whose windows hold
    NaN, or whose ``dy`` is not finite, is routed by torch's scan
    (:func:`_argmax_taps`) and a scatter.
    """
    check_config(config)
    acc = acc_dtype(accumulate, x.dtype)
    dx = np.empty(x.shape, dtype=x.dtype)
    (t, _), (left, _) = plan.pads
    h, w = plan.in_hw
    blocks = _image_blocks(plan, x.dtype.itemsize, config)
    if not blocks:
        return dx
    taps = _TapIndex(plan)
    nb = blocks[0][1] - blocks[0][0]
    # One padded buffer for all the blocks: its -inf border is written once.
    xp = np.full((nb, *_padded_shape(plan)[1:]), -np.inf, x.dtype)
    router = _SeparableRouter(plan, nb, acc)
    scatter = None
    for n0, n1 in blocks:
        xpb = xp[:n1 - n0]
        xpb[:, t:t + h, left:left + w] = x[n0:n1]
        if not router.route(xpb, dy[n0:n1], dx[n0:n1]):
            scatter = scatter or _Scatter(plan, nb, acc, dx.dtype)
            best = np.empty((n1 - n0, *plan.out_shape[1:]), x.dtype)
            index = np.empty(best.shape, np.int64)
            taps.plane_indices(_argmax_taps(plan, xpb, best, taps.first), index)
            scatter(index, dy[n0:n1], dx[n0:n1])
    return dx


class _SeparableRouter:
    """Routes each window's ``dy`` to its first maximum in row-major order, separably.

    A vertical pass over whole padded rows (long contiguous runs, so NumPy's inner
    loops are long) finds, for every output row and padded column, the column
    segment's maximum and the first row reaching it. A horizontal pass takes each
    window's maximum over its column segments; the row-major first maximum is then,
    among the segments reaching it, the one with the least ``row * f_w + column``
    (a small integer key: int8 arithmetic costs a fraction of float arithmetic).
    The gradient reaches the chosen cells by one ``np.add.at`` over flat indices, in
    window order as :class:`_Scatter`'s, summed in ``acc`` (where several windows
    route to one cell, a sum in x's dtype could be an ulp off the correctly rounded
    one) and rounded once into dx.

    Holds what every block of up to ``nb`` images shares: flat window origins, scratch.
    """

    def __init__(self, plan: PoolPlan, nb, acc=np.float64):
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
        self.acc = np.empty((nb, h * w * c), acc)
        self.share = np.empty(self.origin.shape, acc)

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


# Average pooling -------------------------------------------------------------------------

def avg_pool2d(x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
               count_include_pad=True, divisor_override=None, accumulate="float64",
               config=DEFAULT_CONFIG):
    """Average pooling.

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
    accumulate : {"float64", "native"}
        Sum and divide in float64, rounding once (the default), or in x's
        precision (float16 in float32), as torch does.
    config : FastConfig, optional
        Block sizes (see :class:`refcnn.fast.FastConfig`).

    Returns
    -------
    y : ndarray, shape (N, H_out, W_out, C), x's dtype
    """
    plan = _core_plan(x, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                      divisor_override=divisor_override)
    return avg_planned(plan, x, config, accumulate)


def avg_planned(plan: PoolPlan, x, config=DEFAULT_CONFIG, accumulate="float64"):
    """:func:`avg_pool2d` for arguments already checked into ``plan``."""
    check_config(config)
    acc = acc_dtype(accumulate, x.dtype)
    y = np.empty(plan.out_shape, dtype=x.dtype)
    div = _divisor_in(plan, acc)
    rows_at, cols_at = _axis_slices(plan)
    # Without padding (or ceil_mode overhang) the taps read x itself: no padded copy.
    unpadded = _padded_shape(plan) == x.shape
    for n0, n1 in _image_blocks(plan, acc.itemsize, config):
        xp = x[n0:n1] if unpadded else _pad(x[n0:n1], plan, 0.0)
        # Separable sum: the height taps first, as they read whole padded rows (long
        # contiguous runs, so NumPy's inner loops are long), then the width taps of
        # those sums, which are a fraction of the input.
        down = _sum_taps([xp[:, rows] for rows in rows_at], acc)
        total = _sum_taps([down[:, :, cols] for cols in cols_at], acc)
        # Divided in the accumulator's dtype, rounded once into y.
        np.divide(total, div, out=y[n0:n1], casting="unsafe")
    return y


def _sum_taps(taps, acc):
    """The sum of equally shaped ``taps``, in ``acc``, left to right (a fresh array, or
    the one tap itself when it is already in ``acc``)."""
    if len(taps) == 1:
        return taps[0].astype(acc, copy=False)
    total = np.add(taps[0], taps[1], dtype=acc)
    for tap in taps[2:]:
        total += tap
    return total


def avg_pool2d_backward(dy, x, kernel_size, *, stride=None, padding=0, dilation=1,
                        ceil_mode=False, count_include_pad=True, divisor_override=None,
                        accumulate="float64", config=DEFAULT_CONFIG):
    """Gradient of :func:`avg_pool2d` with respect to x.

    Parameters
    ----------
    dy : ndarray, shape (N, H_out, W_out, C)
    x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override,
    config
        As for :func:`avg_pool2d`.
    accumulate : {"float64", "native"}
        Each window's share ``dy / divisor``, and the shares that overlapping
        windows add into one cell, in float64 rounded once (the default) or in
        x's precision.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C), x's dtype
    """
    plan = _core_plan(x, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                      divisor_override=divisor_override)
    check_grad(dy, plan, "dy")
    return avg_backward_planned(plan, dy, x, config, accumulate)


def avg_backward_planned(plan: PoolPlan, dy, x, config=DEFAULT_CONFIG, accumulate="float64"):
    """:func:`avg_pool2d_backward` for arguments already checked into ``plan``."""
    check_config(config)
    acc = acc_dtype(accumulate, x.dtype)
    dx = np.empty(x.shape, dtype=x.dtype)
    div = _divisor_in(plan, acc)
    if _tiles(plan):
        # Windows tile the input exactly: every cell gets one window's share, no sums.
        (fh, fw), (ho, wo) = plan.kernel, plan.out_hw
        share = np.divide(dy, div, dtype=acc)
        tiles = dx.reshape(plan.n, ho, fh, wo, fw, plan.c)
        # The first row of each tile from the shares, the other rows copies of it:
        # long contiguous runs where a broadcast over both axes has runs of C.
        tiles[:, :, 0] = share[:, :, :, None, :]
        tiles[:, :, 1:] = tiles[:, :, :1]
        return dx
    rows_at, cols_at = _axis_slices(plan)
    shape = _padded_shape(plan)
    for n0, n1 in _image_blocks(plan, acc.itemsize, config):
        share = np.divide(dy[n0:n1], div, dtype=acc)
        # Adjoint of the separable sum: spread along the height, then along the width.
        down = np.zeros((n1 - n0, shape[1], plan.out_hw[1], plan.c), acc)
        for rows in rows_at:
            down[:, rows] += share
        dxp = np.zeros((n1 - n0, *shape[1:]), acc)
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


def _divisor_in(plan: PoolPlan, acc):
    """:func:`divisor` in ``acc``: one scalar where every window has the same (a scalar
    divides faster than a broadcast array, and gives the same values)."""
    div = divisor(plan).astype(acc)
    return div.flat[0] if div.size and (div == div.flat[0]).all() else div


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
