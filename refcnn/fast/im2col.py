"""Vectorized 2-D convolution on NHWC inputs and HWIO weights, with its gradients.

The convolution is an im2col matrix product: window taps are gathered into a
patch matrix laid out group-major ``(groups, rows, f_h * f_w * C_in/groups)``
so that one ``matmul`` serves plain and grouped convs. Patch matrices are built
a block of output rows at a time (whole images when they fit, else rows of one
image) under a workspace limit, so memory stays bounded whatever the batch
size; blocks also aim at a cache-sized target, which is faster than one big
product. Convs with one input channel per group (depthwise) skip the patch
matrix: a matrix product per channel would be 1 x taps, so one ``einsum`` per
block multiplies and adds the taps over a strided view of the input's windows
(with unit column stride a window row's columns and channels form one long
contiguous axis, so each tap is one pass with long inner loops).

With ``accumulate="float64"`` (the default) every sum runs in float64 whatever
the inputs' dtype; ``"native"`` keeps float32 in float32 (float16 in float32),
as frameworks do, and never makes a float64 copy of anything.

Block sizes are the knobs of :class:`refcnn.fast.FastConfig`, passed as
``config=``. Strided views are made only by :func:`refcnn.fast.layout.window_view`,
on buffers made here or on an input already in C order (re-viewed with C
strides, :func:`refcnn.fast.layout.c_array`), with steps worked out from
shapes, so no caller's strides are ever stepped along; an input in another
layout is read through padded slabs, which give the same patches.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from refcnn._params import acc_dtype, result_dtype
from refcnn.fast.config import DEFAULT_CONFIG, DEFAULT_WORKSPACE_BYTES, check_config
from refcnn.fast.layout import c_array, c_strides, window_view
from refcnn.fast.plan import ConvPlan, check_grad, conv_plan
from refcnn.fast.threads import parallel_chunks, parallel_map, split_whole_images

__all__ = ["conv2d", "conv2d_backward", "conv2d_planned", "conv2d_backward_planned",
           "conv2d_input_grad_planned", "conv2d_weight_grad_planned", "DEFAULT_WORKSPACE_BYTES"]


def conv2d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1,
           accumulate="float64", workspace_bytes=None, config=DEFAULT_CONFIG):
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
        Cap on the patch matrix built at once (at least one output row's patches
        are built); default ``DEFAULT_WORKSPACE_BYTES`` (256 MiB).
    config : FastConfig, optional
        Block sizes (see :class:`refcnn.fast.FastConfig`).

    Returns
    -------
    y : ndarray, shape (N, H_out, W_out, C_out), the inputs' promoted dtype
    """
    plan = conv_plan(x, w, b, stride=stride, padding=padding, dilation=dilation,
                     groups=groups, x_name="x", w_name="w", b_name="b", pad_name="padding")
    return conv2d_planned(plan, x, w, b, accumulate, workspace_bytes, config)


def conv2d_planned(plan: ConvPlan, x, w, b, accumulate="float64", workspace_bytes=None,
                   config=DEFAULT_CONFIG):
    """:func:`conv2d` for arguments already checked into ``plan``."""
    check_config(config)
    out_dtype = result_dtype(x, w) if b is None else result_dtype(x, w, b)
    acc = acc_dtype(accumulate, out_dtype)
    w = c_array(w)
    bias = None if b is None else b.reshape(plan.c_out).astype(acc)
    if _channelwise(plan):
        y = _channelwise_correlate(plan, x, c_array(w, acc), acc, config, bias)
        return y.astype(out_dtype, copy=False)
    y = _correlate(plan, x, _weights_by_group(w, plan, acc), acc, out_dtype, config, bias,
                   workspace_bytes)
    return y


def conv2d_backward(dy, x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1,
                    accumulate="float64", workspace_bytes=None, config=DEFAULT_CONFIG):
    """Vector-Jacobian products of :func:`conv2d` with respect to x, w and b.

    Parameters
    ----------
    dy : ndarray, shape (N, H_out, W_out, C_out)
        Gradient of the loss with respect to the conv output.
    x, w, b, stride, padding, dilation, groups, accumulate, workspace_bytes, config
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
    return conv2d_backward_planned(plan, dy, x, w, b, accumulate, workspace_bytes, config)


def conv2d_backward_planned(plan: ConvPlan, dy, x, w, b, accumulate="float64",
                            workspace_bytes=None, config=DEFAULT_CONFIG):
    """:func:`conv2d_backward` for arguments already checked into ``plan``."""
    check_config(config)
    acc = acc_dtype(accumulate, result_dtype(x, w, dy))
    # A C-ordered dy makes db's sum run in the same order whatever the caller's layout.
    dy, w = c_array(dy), c_array(w)
    if _channelwise(plan):
        dx, dw = _channelwise_backward(plan, dy, x, w, acc, config)
    else:
        dx, dw = _patch_backward(plan, dy, x, w, acc, config, workspace_bytes)
    db = channel_sums(dy, acc)
    return (
        # A fresh contiguous dx (the depthwise path's) needs no copy; a crop does.
        dx.astype(x.dtype, copy=not dx.flags.c_contiguous),
        dw.astype(w.dtype),
        db.reshape(b.shape if b is not None else (plan.c_out,)).astype(
            b.dtype if b is not None else dy.dtype
        ),
    )


def channel_sums(dy, acc):
    """``dy`` (channels last) summed over every axis but the channels, in ``acc``, shape
    (C,): a product with a row of ones, which sums every channel's column in one pass
    over dy (a reduction over the leading axes runs loops of only C). The sum runs in
    the same order whatever dy's layout (it reads a C-ordered copy when needed)."""
    rows = c_array(dy, acc).reshape(int(np.prod(dy.shape[:-1])), dy.shape[-1])
    return np.ones(len(rows), acc) @ rows


def conv2d_input_grad_planned(plan: ConvPlan, dy, w, out_dtype, accumulate="float64",
                              workspace_bytes=None, config=DEFAULT_CONFIG):
    """The dx of :func:`conv2d_backward` alone, for arguments already checked into
    ``plan`` (no input needed: a transposed conv's forward).

    Parameters
    ----------
    dy : ndarray, shape ``plan.out_shape``
    w : ndarray, shape (f_h, f_w, C_in // groups, C_out)
    out_dtype : dtype of the result

    Returns
    -------
    dx : ndarray, shape (N, H, W, C_in), ``out_dtype``, C-contiguous
    """
    check_config(config)
    acc = acc_dtype(accumulate, np.result_type(out_dtype, dy, w))
    dy, w = c_array(dy), c_array(w)
    if _channelwise(plan):
        dx = _channelwise_input_grad(plan, dy, w, acc, config)
    else:
        dx = _patch_input_grad(plan, dy, w, acc, out_dtype, config, workspace_bytes)
    return np.ascontiguousarray(dx, dtype=out_dtype)


def conv2d_weight_grad_planned(plan: ConvPlan, dy, x, out_dtype, accumulate="float64",
                               workspace_bytes=None, config=DEFAULT_CONFIG):
    """The dw of :func:`conv2d_backward` alone, for arguments already checked into
    ``plan``.

    Parameters
    ----------
    dy : ndarray, shape ``plan.out_shape``
    x : ndarray, shape (N, H, W, C_in)
    out_dtype : dtype of the result

    Returns
    -------
    dw : ndarray, shape (f_h, f_w, C_in // groups, C_out), ``out_dtype``
    """
    check_config(config)
    acc = acc_dtype(accumulate, np.result_type(out_dtype, dy, x))
    dy = c_array(dy)
    if _channelwise(plan):
        dw = _channelwise_weight_grad(plan, dy, x, acc, config)
    else:
        dw = _patch_weight_grad(plan, dy, x, acc, config, workspace_bytes)
    return dw.astype(out_dtype)


def _correlate(plan: ConvPlan, x, wg, acc, out_dtype, config, bias=None,
               workspace_bytes=None):
    """Cross-correlation of ``x`` (unpadded) with grouped weights ``wg`` (see
    :func:`_weights_by_group`) plus ``bias``, summed in ``acc``, returned in
    ``out_dtype``: im2col and one matrix product a block of output rows at a time.

    Each block's output ``y[n0:n1, r0:r1]`` is contiguous, so the product writes it in
    place (summing in float64 for a float32 result, each block is rounded into y as it
    is done, so no float64 copy of the whole output is ever held). With few taps per
    output the bias rides along the product, as a column of ones in the patch matrix
    against a row of biases, instead of costing a pass of its own over the output.
    """
    y = np.empty(plan.out_shape, dtype=out_dtype)
    g, k = plan.groups, wg.shape[1]
    fold = bias is not None and g == 1 and k < config.fold_bias_max_k
    if fold:
        wg = np.concatenate([wg, bias.reshape(1, 1, -1)], axis=1)
    kk = k + fold
    buf = obuf = None
    for blk, src, sblk in _padded_blocks(x, plan, acc, config, workspace_bytes):
        n0, n1, r0, r1 = blk
        m = (n1 - n0) * (r1 - r0) * plan.out_hw[1]
        if buf is None:
            buf = np.empty(g * m * kk, acc)  # the first block is the largest
            if fold:
                buf.reshape(m, kk)[:, k] = 1
        mat = buf[:g * m * kk].reshape(g, m, kk)
        _patches(src, plan, sblk, mat[:, :, :k])
        dest = y[n0:n1, r0:r1].reshape(-1, plan.c_out)  # a view: blocks are contiguous
        if acc == out_dtype:
            out = dest
        else:
            obuf = np.empty(dest.shape, acc) if obuf is None else obuf
            out = obuf[:len(dest)]
        if g == 1:
            np.matmul(mat[0], wg[0], out=out)
        else:
            out.reshape(-1, g, plan.c_out_per_group)[...] = (
                np.matmul(mat, wg).transpose(1, 0, 2))
        if bias is not None and not fold:
            out += bias
        if out is not dest:
            dest[...] = out
    return y


def _patch_backward(plan: ConvPlan, dy, x, w, acc, config, workspace_bytes):
    """dx (unpadded; in x's dtype on the stride-1 path, else in ``acc``) and dw (in
    ``acc``) of a conv with a patch matrix: :func:`_patch_input_grad` and
    :func:`_patch_weight_grad`."""
    dw = _patch_weight_grad(plan, dy, x, acc, config, workspace_bytes)
    return _patch_input_grad(plan, dy, w, acc, x.dtype, config, workspace_bytes), dw


def _back_pads(plan: ConvPlan):
    """Padding of ``dy`` that makes dx a stride-1 correlation: the kernel's reach less
    the forward padding, per side (negative where the forward padded more than that)."""
    reach = [(f - 1) * d for f, d in zip(plan.kernel, plan.dilation)]
    return tuple((r - p0, r - p1) for r, (p0, p1) in zip(reach, plan.pads))


def _patch_weight_grad(plan: ConvPlan, dy, x, acc, config, workspace_bytes):
    """dw of a conv with a patch matrix, in ``acc``: ``patches.T @ dy`` summed over
    blocks."""
    g, og = plan.groups, plan.c_out_per_group
    k = plan.kernel[0] * plan.kernel[1] * plan.c_in_per_group
    dwg = np.zeros((g, k, og), acc)
    buf = None
    for blk, src, sblk in _padded_blocks(x, plan, acc, config, workspace_bytes):
        n0, n1, r0, r1 = blk
        m = (n1 - n0) * (r1 - r0) * plan.out_hw[1]
        if buf is None:  # the first block is the largest
            buf = np.empty(g * m * k, acc)
        cols = _patches(src, plan, sblk, buf[:g * m * k].reshape(g, m, k))
        dyb = dy[n0:n1, r0:r1].astype(acc, copy=False).reshape(-1, plan.c_out)
        if g == 1:
            dwg[0] += cols[0].T @ dyb
        else:
            dwg += np.matmul(cols.transpose(0, 2, 1), dyb.reshape(-1, g, og).transpose(1, 0, 2))
    return _ungroup_weights(dwg, plan)


def _patch_input_grad(plan: ConvPlan, dy, w, acc, out_dtype, config, workspace_bytes):
    """dx (unpadded) of a conv with a patch matrix.

    For an ungrouped conv with stride 1 it is the correlation of ``dy``, padded by the
    kernel's reach less the forward padding, with the flipped kernel (input and output
    channels swapped): one im2col and product that write each dx once, in
    ``out_dtype``. Otherwise each block's patch gradient ``dy @ w.T`` is added back
    into a padded dx in ``acc`` (see :func:`_scatter_patches`), returned cropped.
    """
    g, og = plan.groups, plan.c_out_per_group
    back_pads = _back_pads(plan)
    if g == 1 and plan.stride == (1, 1) and min(min(p) for p in back_pads) >= 0:
        back = dataclasses.replace(plan, in_hw=plan.out_hw, c_in=plan.c_out, c_out=plan.c_in,
                                   pads=back_pads, out_hw=plan.in_hw)
        wb = _weights_by_group(w[::-1, ::-1].transpose(0, 1, 3, 2), back, acc)
        return _correlate(back, dy, wb, acc, out_dtype, config, None, workspace_bytes)
    wgt = c_array(_weights_by_group(w, plan, acc).transpose(0, 2, 1))
    dxp = np.zeros((plan.n, plan.in_hw[0] + sum(plan.pads[0]),
                    plan.in_hw[1] + sum(plan.pads[1]), plan.c_in), dtype=acc)
    k = wgt.shape[2]
    dbuf = None
    for blk in _patch_blocks(plan, acc, config, workspace_bytes):
        n0, n1, r0, r1 = blk
        m = (n1 - n0) * (r1 - r0) * plan.out_hw[1]
        if dbuf is None:  # the first block is the largest
            dbuf = np.empty(g * m * k, acc)
        dcols = dbuf[:g * m * k].reshape(g, m, k)
        dyb = dy[n0:n1, r0:r1].astype(acc, copy=False).reshape(-1, plan.c_out)
        if g == 1:
            np.matmul(dyb, wgt[0], out=dcols[0])
        else:
            np.matmul(dyb.reshape(-1, g, og).transpose(1, 0, 2), wgt, out=dcols)
        _scatter_patches(dcols, dxp, plan, blk)
    (t, _), (left, _) = plan.pads
    h, wd = plan.in_hw
    return dxp[:, t:t + h, left:left + wd, :]


def _padded_blocks(x, plan: ConvPlan, acc, config, workspace_bytes):
    """:func:`_slabs` of the patch blocks (see :func:`_patch_blocks`)."""
    return _slabs(x, plan, _patch_blocks(plan, acc, config, workspace_bytes), acc)


def _slabs(x, plan: ConvPlan, blocks, acc):
    """``(block, src, src_block)`` for each of ``blocks`` (the first the largest):
    ``src`` holds the zero-padded input, in ``acc``, that the block reads, with the
    block's coordinates in it.

    ``src`` is x itself (as a view with C strides, see
    :func:`refcnn.fast.layout.c_array`) when that needs no copy, else a slab of just
    the rows the block reads, padded into a buffer reused across blocks (see
    :func:`_padded_slab`): no padded copy of the whole input is made, nor a copy of an
    x in another layout, and the slab is still in cache when the patches are gathered
    from it. Both give the same windows, so the same patch matrices.
    """
    (t, b), (left, r) = plan.pads
    if (t == b == left == r == 0 and x.dtype == acc and x.flags.c_contiguous
            and x.flags.aligned):
        src = c_array(x)
        for blk in blocks:
            yield blk, src, blk
        return
    if not blocks:
        return
    n0, n1, r0, r1 = blocks[0]  # the largest
    buf = _SlabBuffer(n1 - n0, _slab_rows(plan, r1 - r0), plan.in_hw[1] + left + r,
                      plan.c_in, acc)
    for blk in blocks:
        n0, n1, r0, r1 = blk
        yield blk, _padded_slab(x, plan, n0, n1, r0, r1, buf), (0, n1 - n0, 0, r1 - r0)


def _channelwise_correlate(plan: ConvPlan, x, w, acc, config, bias=None):
    """Depthwise cross-correlation (plus ``bias``) of ``x`` (unpadded) with HWIO weights
    ``w`` (one input channel per group), in ``acc``: one ``einsum`` per block of output
    rows over a strided view holding every tap of every window (see
    :func:`_tap_window_view`), which multiplies and adds each tap in one pass without a
    product array in between. Each block reads x in place when it needs no padding, else
    pads just the input rows it reads into a small buffer (see :func:`_slabs`), so the
    block and its input stay in cache and no padded copy of the whole input is made.
    Blocks write disjoint outputs, so they run on ``config.threads`` threads."""
    y = np.empty(plan.out_shape, dtype=acc)
    wt = _tiled_taps(w, plan, acc)
    # The bias as one output row (W_out * C), matching the einsum's output rows.
    row_bias = None if bias is None else np.tile(bias.astype(acc, copy=False), plan.out_hw[1])
    blocks = _channelwise_blocks(plan, acc, config)
    if not blocks:
        return y

    def run(chunk):
        for (n0, n1, r0, r1), src, sblk in _slabs(x, plan, chunk, acc):
            taps, spec = _tap_window_view(src, plan, *sblk)
            out = y[n0:n1, r0:r1].reshape(taps.shape[:2] + taps.shape[4:])
            np.einsum(f"nhab{spec},ab{spec}->nh{spec}", taps, wt.reshape(taps.shape[2:]),
                      out=out)
            if row_bias is not None:
                out += row_bias.reshape(taps.shape[4:])

    parallel_map(run, blocks, config.threads)
    return y


def _tap_window_view(xp, plan: ConvPlan, n0, n1, r0, r1):
    """``(view, spec)``: the windows of output rows ``r0:r1`` of images ``n0:n1`` of the
    padded, C-ordered ``xp`` (a source and block of :func:`_slabs`), as ``(images, rows,
    f_h, f_w, *spec)`` with ``spec`` ``"x"`` (one axis of W_out * C: with unit column
    stride a window row's columns and channels are contiguous, so einsum runs one long
    inner loop per tap) or ``"wc"`` (the W_out and C axes)."""
    (sh, sw), (dh, dwl) = plan.stride, plan.dilation
    wo, c = plan.out_hw[1], plan.c_in
    s0, s1, s2, s3 = c_strides(xp.shape)
    start = n0 * s0 + sh * r0 * s1
    head = (n1 - n0, r1 - r0, *plan.kernel)
    steps = (s0, sh * s1, dh * s1, dwl * s2)
    if sw == 1:
        return window_view(xp, start, head + (wo * c,), steps + (s3,)), "x"
    return window_view(xp, start, head + (wo, c), steps + (sw * s2, s3)), "wc"


def _channelwise_blocks(plan: ConvPlan, acc, config):
    """Blocks of output rows of about ``config.channelwise_block_bytes`` each (see
    ``_blocks``)."""
    return _blocks(plan, plan.out_hw[1] * plan.c_out,
                   config.channelwise_block_bytes // np.dtype(acc).itemsize)


def _slab_rows(plan: ConvPlan, out_rows):
    """Padded input rows that ``out_rows`` consecutive output rows read."""
    return plan.stride[0] * (out_rows - 1) + plan.dilation[0] * (plan.kernel[0] - 1) + 1


class _SlabBuffer:
    """Room for padded slabs of up to ``n`` images by ``rows`` padded rows: each slab
    handed out is C-contiguous (a prefix of one flat buffer), so strided views of it
    take their strides from its shape."""

    def __init__(self, n, rows, width, c, dtype):
        self.flat = np.empty(n * rows * width * c, dtype)
        self.width, self.c = width, c

    def slab(self, n, rows):
        return self.flat[:n * rows * self.width * self.c].reshape(n, rows, self.width, self.c)


def _padded_slab(x, plan: ConvPlan, n0, n1, r0, r1, buf):
    """The zero-padded rows of images ``n0:n1`` that output rows ``r0:r1`` read (all
    padded columns), written into a slab of ``buf`` (a :class:`_SlabBuffer`, in its
    dtype) and returned, C-contiguous."""
    (t, _), (left, _) = plan.pads
    h, w = plan.in_hw
    p0 = plan.stride[0] * r0
    slab = buf.slab(n1 - n0, _slab_rows(plan, r1 - r0))
    # Input rows a:b fall inside the slab; the rest of it is padding. A slab lying in
    # the top padding has b < a (never a negative b, which would index from the end).
    a = max(p0 - t, 0)
    b = max(min(p0 + len(slab[0]) - t, h), a)
    top, bottom = a + t - p0, max(b + t - p0, a + t - p0)
    slab[:, :top] = 0
    slab[:, bottom:] = 0
    slab[:, top:bottom, :left] = 0
    slab[:, top:bottom, left + w:] = 0
    slab[:, top:bottom, left:left + w] = x[n0:n1, a:b]
    return slab


def _channelwise_backward(plan: ConvPlan, dy, x, w, acc, config):
    """dx (unpadded) and dw of a depthwise conv, in ``acc``: :func:`_channelwise_input_grad`
    and :func:`_channelwise_weight_grad`, which read the same dy and nothing the other
    writes: with ``config.threads`` of 2 or more they run concurrently, on half the
    threads each."""
    dyc = dy.astype(acc, copy=False)
    jobs = [lambda cfg: _channelwise_input_grad(plan, dyc, w, acc, cfg),
            lambda cfg: _channelwise_weight_grad(plan, dyc, x, acc, cfg)]
    if config.threads < 2:
        return tuple(job(config) for job in jobs)
    half = dataclasses.replace(config, threads=config.threads // 2)
    return tuple(parallel_chunks(lambda chunk: chunk[0](half), [[job] for job in jobs]))


def _channelwise_weight_grad(plan: ConvPlan, dy, x, acc, config):
    """dw of a depthwise conv of ``x`` (unpadded), in ``acc``: one ``einsum`` per block
    over the windows' view (see :func:`_tap_window_view`) of the block's padded input
    rows (see :func:`_slabs`), which multiplies and sums without a product array
    in between. With unit column stride it sums each tap over images and rows only, per
    output column and channel (long inner loops), and the columns last; chunks of
    blocks run on ``config.threads`` threads, each summing its own dw."""
    fh, fw = plan.kernel
    c, wo = plan.c_out, plan.out_hw[1]
    dyc = dy.astype(acc, copy=False)
    merged = plan.stride[1] == 1
    part_shape = (fh, fw, wo * c) if merged else (fh, fw, c)

    def run(chunk):
        dwt = np.zeros(part_shape, dtype=acc)
        for (n0, n1, r0, r1), src, sblk in _slabs(x, plan, chunk, acc):
            taps, spec = _tap_window_view(src, plan, *sblk)
            dyb = dyc[n0:n1, r0:r1].reshape(taps.shape[:2] + taps.shape[4:])
            dwt += np.einsum(f"nhab{spec},nh{spec}->ab{'x' if merged else 'c'}", taps, dyb)
        return dwt

    parts = parallel_map(run, _channelwise_blocks(plan, acc, config), config.threads)
    dwt = np.zeros(part_shape, dtype=acc)
    for part in parts:
        dwt += part
    if merged:
        dwt = dwt.reshape(fh, fw, wo, c).sum(axis=2)
    return dwt.reshape(fh, fw, 1, c)


def _channelwise_input_grad(plan: ConvPlan, dy, w, acc, config):
    """dx (unpadded) of a depthwise conv, in ``acc``.

    With stride 1 it is the correlation of ``dy``, padded by the kernel's reach less
    the forward padding, with the flipped kernel: the forward routine, which writes
    each output once instead of adding every tap into a padded dx. Otherwise each
    tap's ``dy * w`` is added into a padded dx, whole images per thread (blocks of
    one image's rows add into overlapping padded rows).
    """
    dyc = dy.astype(acc, copy=False)
    back_pads = _back_pads(plan)
    if plan.stride == (1, 1) and min(min(p) for p in back_pads) >= 0:
        back = dataclasses.replace(plan, in_hw=plan.out_hw, pads=back_pads, out_hw=plan.in_hw)
        return _channelwise_correlate(back, dyc, w[::-1, ::-1], acc, config)
    wt = _tiled_taps(w, plan, acc)
    dxp = np.zeros((plan.n, plan.in_hw[0] + sum(plan.pads[0]),
                    plan.in_hw[1] + sum(plan.pads[1]), plan.c_in), dtype=acc)

    def run(chunk):
        n0, n1, r0, r1 = chunk[0]
        tmp = np.empty((n1 - n0, r1 - r0, *plan.out_shape[2:]), acc)
        for n0, n1, r0, r1 in chunk:
            dyb = dyc[n0:n1, r0:r1]
            t = tmp[:n1 - n0, :r1 - r0]
            for k, (rows, cols) in enumerate(_tap_views(plan, r0, r1)):
                np.multiply(dyb, wt[k], out=t)
                dxv = dxp[n0:n1, rows, cols]
                np.add(dxv, t, out=dxv)

    blocks = _channelwise_blocks(plan, acc, config)
    parallel_chunks(run, split_whole_images(blocks, config.threads))
    (t0, _), (left, _) = plan.pads
    h, wd = plan.in_hw
    return dxp[:, t0:t0 + h, left:left + wd, :]


def _channelwise(plan: ConvPlan) -> bool:
    """One input and one output channel per group (depthwise): no matrix product to make."""
    return plan.groups > 1 and plan.c_in_per_group == 1 and plan.c_out_per_group == 1


def _tiled_taps(w, plan: ConvPlan, dtype):
    """Depthwise weights as (f_h * f_w, W_out, C): one tap's weights repeated along the
    output row, so that multiplying a (rows, W_out, C) view runs one long inner loop."""
    taps = w.astype(dtype, copy=False).reshape(-1, 1, plan.c_out)
    return np.ascontiguousarray(np.broadcast_to(
        taps, (taps.shape[0], plan.out_hw[1], plan.c_out)))


def _tap_views(plan: ConvPlan, r0, r1):
    """``(rows, cols)`` slices of the padded input that each kernel tap reads for output
    rows ``r0:r1`` (all output columns), in row-major tap order."""
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    wo = plan.out_hw[1]
    for kh in range(plan.kernel[0]):
        top = kh * dh + sh * r0
        rows = slice(top, top + sh * (r1 - r0 - 1) + 1, sh)
        for kw in range(plan.kernel[1]):
            yield rows, slice(kw * dw, kw * dw + sw * (wo - 1) + 1, sw)


def _blocks(plan: ConvPlan, per_row, target):
    """``(n0, n1, r0, r1)`` blocks of output rows, about ``target`` units each when one
    output row costs ``per_row``: whole images when one fits, else rows of one image.
    Each block's output ``y[n0:n1, r0:r1]`` is contiguous."""
    ho = plan.out_hw[0]
    rows = max(1, int(target // max(per_row, 1)))
    if rows >= ho:
        step = rows // ho
        return [(lo, min(lo + step, plan.n), 0, ho) for lo in range(0, plan.n, step)]
    return [(n, n + 1, r, min(r + rows, ho)) for n in range(plan.n) for r in range(0, ho, rows)]


def _patch_blocks(plan: ConvPlan, dtype, config, workspace_bytes):
    """Blocks whose patch matrix fits the workspace (at least one output row each)."""
    limit = DEFAULT_WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes
    per_row = (plan.out_hw[1] * plan.kernel[0] * plan.kernel[1] * plan.c_in
               * np.dtype(dtype).itemsize)
    return _blocks(plan, per_row, min(limit, config.block_target_bytes))


def _patches(xp, plan: ConvPlan, block, out):
    """Patch matrix of output rows ``block`` of the padded input ``xp`` (C-ordered),
    written into ``out``, shape (G, rows, f_h * f_w * C_in/G) (its last axis may be
    strided), and returned."""
    n0, n1, r0, r1 = block
    nb, rh = n1 - n0, r1 - r0
    g, cg = plan.groups, plan.c_in_per_group
    wo = plan.out_hw[1]
    fh, fw = plan.kernel
    cols = out
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    if g == 1 and dw == 1:
        # A window's row segment xp[n, row, s*ow : s*ow + f_w, :] is contiguous, so one
        # strided view holds the whole patch matrix and one copy gathers it.
        s0, s1, s2, s3 = c_strides(xp.shape)
        view = window_view(xp, n0 * s0 + sh * r0 * s1, (nb, rh, wo, fh, fw * plan.c_in),
                           (s0, sh * s1, sw * s2, dh * s1, s3))
        np.copyto(cols.reshape(nb, rh, wo, fh, fw * plan.c_in), view)
        return cols
    c7 = cols.reshape(g, nb, rh, wo, fh, fw, cg)
    for t, (rows, cols_) in enumerate(_tap_views(plan, r0, r1)):
        tap = xp[n0:n1, rows, cols_, :].reshape(nb, rh, wo, g, cg)
        c7[:, :, :, :, t // fw, t % fw, :] = tap.transpose(3, 0, 1, 2, 4)
    return cols


def _scatter_patches(dcols, dxp, plan: ConvPlan, block):
    """Adjoint of :func:`_patches`: add patch gradients back into ``dxp`` in place."""
    n0, n1, r0, r1 = block
    nb, rh = n1 - n0, r1 - r0
    g, cg = plan.groups, plan.c_in_per_group
    wo = plan.out_hw[1]
    fh, fw = plan.kernel
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    if g == 1 and dw == 1:
        # Windows whose columns differ by a multiple of q = ceil(f_w / s_w) do not overlap,
        # so each residue class of columns adds its contiguous row segments in one go.
        q = -(-fw // sw)
        seg = fw * plan.c_in
        d5 = dcols.reshape(nb, rh, wo, fh, seg)
        s0, s1, s2, s3 = c_strides(dxp.shape)  # dxp is a fresh array
        for kh in range(fh):
            for r in range(min(q, wo)):
                count = len(range(r, wo, q))
                view = window_view(dxp, n0 * s0 + (sh * r0 + kh * dh) * s1 + sw * r * s2,
                                   (nb, rh, count, seg), (s0, sh * s1, q * sw * s2, s3),
                                   writeable=True)
                np.add(view, d5[:, :, r::q, kh, :], out=view)
        return
    d7 = dcols.reshape(g, nb, rh, wo, fh, fw, cg)
    for t, (rows, cols_) in enumerate(_tap_views(plan, r0, r1)):
        tap = d7[:, :, :, :, t // fw, t % fw, :].transpose(1, 2, 3, 0, 4)
        dxp[n0:n1, rows, cols_, :] += tap.reshape(nb, rh, wo, g * cg)


def _weights_by_group(w, plan: ConvPlan, dtype):
    """HWIO weights as (G, f_h * f_w * C_in/G, C_out/G)."""
    fh, fw = plan.kernel
    g, cg, og = plan.groups, plan.c_in_per_group, plan.c_out_per_group
    wg = w.astype(dtype, copy=False).reshape(fh, fw, cg, g, og).transpose(3, 0, 1, 2, 4)
    return c_array(wg.reshape(g, fh * fw * cg, og))


def _ungroup_weights(wg, plan: ConvPlan):
    fh, fw = plan.kernel
    g, cg, og = plan.groups, plan.c_in_per_group, plan.c_out_per_group
    return wg.reshape(g, fh, fw, cg, og).transpose(1, 2, 3, 0, 4).reshape(fh, fw, cg, g * og)
