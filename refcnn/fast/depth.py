"""3-D convolution as 2-D convolutions over depth planes, with its gradients.

Output depth ``od`` of a 3-D conv sums its ``k_d`` depth taps: tap ``kd`` is the 2-D
conv of input plane ``od*stride + kd*dilation - before`` with the weights ``w[kd]``
(nothing for a plane in the depth padding). Two ways hand that to the blocked 2-D
conv of :mod:`refcnn.fast.im2col`, each where it gives the wider matrix products:

* by plane (the forward and dw): one 2-D conv over the ``N * D`` input planes whose
  output channels are every tap's, ``(groups, k_d, C_out / groups)``; each output
  depth then adds its taps' channel blocks from their planes. dw is that 2-D conv's
  weight gradient, with dy spread back onto the planes the same way.
* stacked (dx): the ``k_d`` planes an output depth reads, side by side in channels
  ``(groups, k_d, C_in / groups)``, make one image of a 2-D conv over ``N * D_out``
  images; dx is its 2-D input gradient, each tap's channel block added back into its
  plane.

Either way the 2-D products have ``k_h * k_w * C`` patch columns and ``k_d`` times the
channels on the other side, the input is read in place, and the depth padding costs
nothing. What is built per block (the taps' outputs, the spread dy, the stacked dx)
is bounded by the workspace (:func:`_blocks`); the 2-D conv bounds its patches.
"""

from __future__ import annotations

import numpy as np

from refcnn.fast import shared
from refcnn.fast.config import DEFAULT_WORKSPACE_BYTES
from refcnn.fast.im2col import (conv2d_input_grad_planned, conv2d_planned,
                              conv2d_weight_grad_planned)
from refcnn.fast.ndplan import Geometry, acc_dtype, plan2d

__all__ = ["forward", "input_grad", "weight_grad", "backward"]


def forward(geo: Geometry, x, w, b, dtype, accumulate, workspace_bytes, config):
    """``conv(x, w) + b`` of rank 3 in ``dtype`` (see :func:`refcnn.fast.nd.forward`):
    by plane, each output depth adding its taps in the sums' precision."""
    acc = acc_dtype(accumulate, dtype)
    planes = _plane_geometry(geo)
    wp = _plane_weights(w, geo, acc)
    yg = _by_group(np.empty(geo.out_shape, acc), geo)
    bias = 0 if b is None else b.reshape(geo.groups, -1)
    n, d = geo.x_shape[:2]
    blocks = _blocks(n, d, _per_plane(geo, acc), workspace_bytes)
    filled = False
    for blk in blocks:
        n0, n1, d0, d1 = blk
        xb = x[n0:n1, d0:d1].reshape(-1, *geo.x_shape[2:])
        z = conv2d_planned(plan2d(planes, xb.shape, acc), xb, wp, None, accumulate,
                           workspace_bytes, config)
        zt = _by_tap(z, geo, blk)
        pairs = sorted(_tap_pairs(geo, blk), key=lambda t: t[1] != (slice(0, n), slice(
            0, geo.out_shape[1])))
        for k, ys, zs in pairs:
            if not filled and ys == (slice(0, n), slice(0, geo.out_shape[1])):
                # A tap every output reads starts y, with the bias: no pass of its own.
                np.add(zt[zs + (Ellipsis, k, slice(None))], bias, out=yg)
            else:
                if not filled:
                    yg[...] = bias
                yg[ys] += zt[zs + (Ellipsis, k, slice(None))]
            filled = True
    if not filled:  # every tap reads depth padding
        yg[...] = bias
    y = yg.reshape(geo.out_shape)
    return y.astype(dtype, copy=False)


def weight_grad(geo: Geometry, dy, x, dtype, accumulate, workspace_bytes, config):
    """dw of rank 3 in ``dtype`` (see :func:`refcnn.fast.nd.weight_grad`): the plane conv's
    2-D weight gradient, dy spread onto the planes its taps read."""
    acc = acc_dtype(accumulate, dtype)
    planes = _plane_geometry(geo)
    dwp = None
    n, d = geo.x_shape[:2]
    dyg = _by_group(dy, geo)
    for blk in _blocks(n, d, _per_plane(geo, acc), workspace_bytes):
        n0, n1, d0, d1 = blk
        xb = x[n0:n1, d0:d1].reshape(-1, *geo.x_shape[2:])
        dz = np.zeros((len(xb), *geo.out_shape[2:-1], planes.w_shape[-1]), acc)
        dzt = _by_tap(dz, geo, blk)
        for k, ys, zs in _tap_pairs(geo, blk):
            dzt[zs + (Ellipsis, k, slice(None))] = dyg[ys]
        part = conv2d_weight_grad_planned(plan2d(planes, xb.shape, acc), dz, xb, acc,
                                          accumulate, workspace_bytes, config)
        dwp = part if dwp is None else np.add(dwp, part, out=dwp)
    return _unplane_weights(dwp, geo).astype(dtype)


def input_grad(geo: Geometry, dy, w, dtype, accumulate, workspace_bytes, config):
    """dx of rank 3 in ``dtype`` (see :func:`refcnn.fast.nd.input_grad`): the stacked
    conv's 2-D input gradient, each tap's block added back into its plane."""
    acc = acc_dtype(accumulate, dtype)
    stacked = _stacked_geometry(geo)
    ws = _stack_weights(w, geo)
    n, do = geo.out_shape[:2]
    (h, wd), c, kd = geo.x_shape[2:-1], geo.x_shape[-1], geo.w_shape[0]
    dy2 = dy.reshape(-1, *dy.shape[2:])
    dx = np.zeros(geo.x_shape, acc)
    for blk in _blocks(n, do, h * wd * kd * c * acc.itemsize, workspace_bytes):
        n0, n1, o0, o1 = blk
        i0, i1 = n0 * do + o0, (n1 - 1) * do + o1
        shape = (i1 - i0, h, wd, kd * c)
        dxs = conv2d_input_grad_planned(plan2d(stacked, shape, acc), dy2[i0:i1], ws, acc,
                                        accumulate, workspace_bytes, config)
        _unstack_depth(dxs, dx, geo, blk)
    return dx.astype(dtype, copy=False)


def backward(geo: Geometry, dy, x, w, dtype, accumulate, workspace_bytes, config):
    """``(dx, dw)`` of rank 3 in ``dtype``. Where the stacked conv's dx is a plain
    stride-1 correlation (:func:`refcnn.fast.shared.flipped`), its patch matrix of dy
    also gives the stacked dw against the stacked x (:mod:`refcnn.fast.shared`): one
    gather for both. Otherwise :func:`input_grad` and :func:`weight_grad`."""
    stacked = _stacked_geometry(geo)
    if shared.flipped(stacked) is None:
        return (input_grad(geo, dy, w, dtype, accumulate, workspace_bytes, config),
                weight_grad(geo, dy, x, dtype, accumulate, workspace_bytes, config))
    acc = acc_dtype(accumulate, dtype)
    wf = shared.flip(_stack_weights(w, geo))
    n, do = geo.out_shape[:2]
    (h, wd), c, kd = geo.x_shape[2:-1], geo.x_shape[-1], geo.w_shape[0]
    dy2 = dy.reshape(-1, *dy.shape[2:])
    dx = np.zeros(geo.x_shape, acc)
    dws = None
    for blk in _blocks(n, do, 2 * h * wd * kd * c * acc.itemsize, workspace_bytes):
        n0, n1, o0, o1 = blk
        i0, i1 = n0 * do + o0, (n1 - 1) * do + o1
        xs = _stack_depth(x, geo, blk, acc)
        back = shared.flipped(_stacked_geometry(geo, i1 - i0))
        dxs, dwf = shared.forward_and_weight_grad(back, dy2[i0:i1], wf, xs, acc, accumulate,
                                                  workspace_bytes, config)
        _unstack_depth(dxs, dx, geo, blk)
        dws = dwf if dws is None else np.add(dws, dwf, out=dws)
    dw = _unstack_weights(shared.flip(dws), geo)
    return dx.astype(dtype, copy=False), dw.astype(dtype)


# By plane: the taps' outputs as channels ---------------------------------------------

def _plane_geometry(geo: Geometry) -> Geometry:
    """The 2-D conv over input planes (their number set per block) with every depth
    tap's output channels: height and width options of ``geo``."""
    kd, kh, kw, cg, c_out = geo.w_shape
    n, d, *hw, c = geo.x_shape
    return Geometry((n * d, *hw, c), (kh, kw, cg, kd * c_out), geo.stride[1:], geo.pads[1:],
                    geo.dilation[1:], geo.groups, (n * d, *geo.out_shape[2:-1], kd * c_out))


def _plane_weights(w, geo: Geometry, dtype):
    """``(k_d, k_h, k_w, C_in/G, C_out)`` as ``(k_h, k_w, C_in/G, G * k_d * C_out/G)``:
    output channels by group, then tap, so each group's stay together."""
    kd, kh, kw, cg, c_out = geo.w_shape
    g = geo.groups
    wp = w.astype(dtype, copy=False).reshape(kd, kh, kw, cg, g, c_out // g)
    return np.ascontiguousarray(wp.transpose(1, 2, 3, 4, 0, 5)).reshape(kh, kw, cg,
                                                                       kd * c_out)


def _unplane_weights(wp, geo: Geometry):
    """The inverse of :func:`_plane_weights`."""
    kd, kh, kw, cg, c_out = geo.w_shape
    g = geo.groups
    return wp.reshape(kh, kw, cg, g, kd, c_out // g).transpose(4, 0, 1, 2, 3, 5).reshape(
        geo.w_shape)


def _per_plane(geo: Geometry, dtype):
    """Bytes of one plane's tap outputs (or spread dy)."""
    ho, wo = geo.out_shape[2:-1]
    return ho * wo * geo.w_shape[0] * geo.out_shape[-1] * np.dtype(dtype).itemsize


def _by_group(a, geo: Geometry):
    """Output-like ``(N, D, H, W, C)`` as ``(N, D, H, W, G, C/G)``, a view."""
    return a.reshape(*a.shape[:-1], geo.groups, a.shape[-1] // geo.groups)


def _by_tap(z, geo: Geometry, blk):
    """A block's plane conv output ``(planes, H_out, W_out, G * k_d * C_out/G)`` as
    ``(images, planes, H_out, W_out, G, k_d, C_out/G)``, a view."""
    n0, n1, d0, d1 = blk
    kd, g = geo.w_shape[0], geo.groups
    return z.reshape(n1 - n0, d1 - d0, *z.shape[1:-1], g, kd, geo.out_shape[-1] // g)


def _tap_pairs(geo: Geometry, blk):
    """``(kd, y_index, z_index)`` for each depth tap with an output depth whose plane lies
    in plane block ``blk``: the output depths (of :func:`_by_group` views) and the
    block's planes (of :func:`_by_tap` views) that tap joins."""
    n0, n1, d0, d1 = blk
    s = geo.stride[0]
    for k in range(geo.w_shape[0]):
        lo, hi, first = _tap_range(geo, k, 0, geo.out_shape[1], d0, d1)
        if hi > lo:
            yield (k, (slice(n0, n1), slice(lo, hi)),
                   (slice(None), slice(first - d0, first - d0 + s * (hi - lo - 1) + 1, s)))


# Stacked: the taps' inputs as channels -----------------------------------------------

def _stacked_geometry(geo: Geometry, images=None) -> Geometry:
    """The 2-D conv over ``images`` stacked images (default all, ``N * D_out``): height
    and width options of ``geo`` and weights of ``k_d * C_in / groups`` input channels."""
    kd, kh, kw, cg, c_out = geo.w_shape
    n, do, *out_hw, _ = geo.out_shape
    m = n * do if images is None else images
    return Geometry((m, *geo.x_shape[2:-1], kd * geo.x_shape[-1]),
                    (kh, kw, kd * cg, c_out), geo.stride[1:], geo.pads[1:],
                    geo.dilation[1:], geo.groups, (m, *out_hw, c_out))


def _stack_weights(w, geo: Geometry):
    """``(k_d, k_h, k_w, C_in/G, C_out)`` as ``(k_h, k_w, k_d * C_in/G, C_out)``: the
    taps outside each group's channels, as the stacked images hold them."""
    kd, kh, kw, cg, c_out = geo.w_shape
    return np.ascontiguousarray(w.transpose(1, 2, 0, 3, 4)).reshape(kh, kw, kd * cg, c_out)


def _unstack_weights(ws, geo: Geometry):
    """The inverse of :func:`_stack_weights`."""
    kd, kh, kw, cg, c_out = geo.w_shape
    return ws.reshape(kh, kw, kd, cg, c_out).transpose(2, 0, 1, 3, 4)


def _stack_depth(x, geo: Geometry, blk, dtype):
    """The stacked images of output depth block ``blk`` (see :func:`_blocks`), in
    ``dtype``: ``(images, H, W, k_d * C_in)``, zero where a tap reads depth padding."""
    n0, n1, o0, o1 = blk
    kd, g = geo.w_shape[0], geo.groups
    (h, w), c, s = geo.x_shape[2:-1], geo.x_shape[-1], geo.stride[0]
    buf = np.zeros((n1 - n0, o1 - o0, h, w, g, kd, c // g), dtype)
    for k in range(kd):
        lo, hi, first = _tap_range(geo, k, o0, o1, 0, geo.x_shape[1])
        if hi > lo:
            buf[:, lo - o0:hi - o0, :, :, :, k] = _by_group(
                x[n0:n1, first:first + s * (hi - lo - 1) + 1:s], geo)
    return buf.reshape(-1, h, w, kd * c)


def _unstack_depth(dxs, dx, geo: Geometry, blk):
    """The adjoint of :func:`_stack_depth`: add the stacked images' gradient ``dxs`` back
    into ``dx`` (N, D, H, W, C_in), each tap's block into the planes it read."""
    n0, n1, o0, o1 = blk
    kd, g = geo.w_shape[0], geo.groups
    (h, w), c, s = geo.x_shape[2:-1], geo.x_shape[-1], geo.stride[0]
    d7 = dxs.reshape(n1 - n0, o1 - o0, h, w, g, kd, c // g)
    dxg = _by_group(dx, geo)
    for k in range(kd):
        lo, hi, first = _tap_range(geo, k, o0, o1, 0, geo.x_shape[1])
        if hi > lo:
            # One tap's output depths read distinct planes, so += is well defined.
            dst = dxg[n0:n1, first:first + s * (hi - lo - 1) + 1:s]
            dst += d7[:, lo - o0:hi - o0, :, :, :, k, :]


# Shared ------------------------------------------------------------------------------

def _tap_range(geo: Geometry, k, o0, o1, d0, d1):
    """For depth tap ``k``: the output depths ``[lo, hi)`` within ``[o0, o1)`` whose tap
    reads a plane within ``[d0, d1)`` (never the depth padding), and the plane of ``lo``;
    the others follow every ``stride`` planes."""
    s, dil, (before, _) = geo.stride[0], geo.dilation[0], geo.pads[0]
    off = k * dil - before  # the plane output depth 0's tap k reads
    d0, d1 = max(d0, 0), min(d1, geo.x_shape[1])
    lo = max(o0, -((off - d0) // s))  # od*s + off >= d0
    hi = min(o1, -((off - d1) // s))  # od*s + off < d1
    return lo, max(hi, lo), lo * s + off


def _blocks(n, length, per_item, workspace_bytes):
    """``(n0, n1, i0, i1)`` blocks of items (planes or output depths, ``length`` per
    volume) of ``per_item`` bytes each that fit the workspace: whole volumes when one
    fits, else items of one volume (at least one each). Fewer, larger blocks keep the
    2-D conv's products long; it cuts its own patch matrices to cache size."""
    limit = DEFAULT_WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes
    count = max(1, limit // max(per_item, 1))
    if count >= length:
        step = count // length
        return [(lo, min(lo + step, n), 0, length) for lo in range(0, n, step)]
    return [(i, i + 1, o, min(o + count, length)) for i in range(n)
            for o in range(0, length, count)]
