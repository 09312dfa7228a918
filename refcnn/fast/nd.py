"""Convolution of any rank (1, 2 or 3 spatial dims) on the blocked 2-D path, channels-last,
with its gradients.

Every rank is brought to the 2-D functions of :mod:`refcnn.fast.conv`, so that one
set of blocked kernels serves all of them:

* 1-D: the length becomes the height of an image one cell wide, a view without a
  copy. The height, not the width, because the 2-D path blocks by output rows: a
  long sequence is then still cut into blocks that fit the workspace.
* 2-D: as it is.
* 3-D: the kernel's depth taps are stacked into channels. Output depth ``od`` reads
  input depths ``od*stride + kd*dilation`` (``kd < k_d``) of the depth-padded input;
  those ``k_d`` slices side by side make one image of ``k_d * C_in`` channels,
  ordered ``(groups, k_d, C_in / groups)`` so that each group's channels stay
  together, and one 2-D conv over the ``N * D_out`` stacked images, with the weights
  reordered to ``(k_h, k_w, k_d * C_in / groups, C_out)``, is the 3-D conv. The
  stacked images are built with their height and width padding, so the 2-D conv
  reads them without another copy. The input gradient is the 2-D input gradient
  of the stacked images, added back along depth (the adjoint of the stacking); the
  weight gradient is the 2-D one, reordered back. The stacked images are built a
  block of volumes or depths at a time (see :func:`_depth_blocks`), so memory stays
  bounded by the workspace.

:class:`Geometry` describes one conv; :func:`forward`, :func:`input_grad` and
:func:`weight_grad` compute on it and serve :mod:`refcnn.fast.transpose` too (a
transposed conv is the adjoint of a conv). Arguments and result dtypes are
:mod:`refcnn.functional`'s, checked by the same code (:mod:`refcnn._checks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refcnn._checks import check_grad, conv_geometry
from refcnn._params import check_accumulate, check_int
from refcnn.fast.config import DEFAULT_CONFIG, DEFAULT_WORKSPACE_BYTES, check_config
from refcnn.fast.conv import (conv2d_input_grad_planned, conv2d_planned,
                              conv2d_weight_grad_planned)
from refcnn.fast.layout import c_array
from refcnn.fast.plan import conv_plan

__all__ = ["conv", "conv_backward", "Geometry", "forward", "input_grad", "weight_grad",
           "bias_grad", "acc_dtype", "promoted", "check_knobs"]


def conv(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1, accumulate="float64",
         workspace_bytes=None, config=DEFAULT_CONFIG):
    """N-D cross-correlation, 1 to 3 spatial dims: :func:`refcnn.functional.conv` on the
    fast path.

    Parameters
    ----------
    x : ndarray, shape (N, *L, C_in)
    w : ndarray, shape (*kernel, C_in // groups, C_out)
    b : ndarray, shape (C_out,) or (1, ..., 1, C_out), optional
    stride, dilation : int or sequence of int, one per spatial axis
    padding : int, per axis, per side, 'same', 'same_lower' or 'valid'
    groups : int
    accumulate : {"float64", "native"}
        Sum in float64 (default) or in the inputs' precision (float16 sums in float32).
    workspace_bytes : int, optional
        Cap on the patch matrix, and for 3-D on the stacked input, built at once (at
        least one output row's worth is built); default ``DEFAULT_WORKSPACE_BYTES``.
    config : FastConfig, optional
        Block sizes (see :class:`refcnn.fast.FastConfig`).

    Returns
    -------
    y : ndarray, shape (N, *L_out, C_out), the inputs' promoted dtype
    """
    geo = Geometry.of(x, w, conv_geometry(x, w, b, stride, padding, dilation, groups))
    check_knobs(accumulate, workspace_bytes, config)
    return forward(geo, x, w, b, promoted(x, w, b), accumulate, workspace_bytes, config)


def conv_backward(dy, x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1,
                  accumulate="float64", workspace_bytes=None, config=DEFAULT_CONFIG):
    """Vector-Jacobian products of :func:`conv` with respect to x, w and b.

    Parameters
    ----------
    dy : ndarray, shape (N, *L_out, C_out)
    x, w, b, stride, padding, dilation, groups, accumulate, workspace_bytes, config
        As for :func:`conv`.

    Returns
    -------
    dx : ndarray, shape (N, *L, C_in)
    dw : ndarray, shape (*kernel, C_in // groups, C_out)
    db : ndarray in b's shape, or None when b is None
        All in the promoted dtype of dy, x, w (and b).
    """
    geo = Geometry.of(x, w, conv_geometry(x, w, b, stride, padding, dilation, groups))
    check_grad(dy, geo.out_shape)
    check_knobs(accumulate, workspace_bytes, config)
    dtype = promoted(dy, x, w, b)
    dx = input_grad(geo, dy, w, dtype, accumulate, workspace_bytes, config)
    dw = weight_grad(geo, dy, x, dtype, accumulate, workspace_bytes, config)
    return dx, dw, bias_grad(dy, b, dtype, accumulate)


@dataclass(frozen=True)
class Geometry:
    """Shapes and options of one conv, any rank, channels-last.

    ``x_shape`` is ``(N, *L, C_in)``, ``w_shape`` ``(*kernel, C_in // groups, C_out)``
    and ``out_shape`` ``(N, *L_out, C_out)``; ``stride``, ``dilation`` and ``pads``
    (``(before, after)`` pairs) have one entry per spatial axis.
    """

    x_shape: tuple
    w_shape: tuple
    stride: tuple
    pads: tuple
    dilation: tuple
    groups: int
    out_shape: tuple

    @classmethod
    def of(cls, x, w, g):
        """The geometry of ``x`` and ``w`` under ``g``, a :func:`conv_geometry` result."""
        return cls(x.shape, w.shape, g.stride, g.pads, g.dilation, g.groups, g.out_shape)

    @property
    def rank(self) -> int:
        return len(self.x_shape) - 2

    @property
    def empty(self) -> bool:
        """Nothing to sum: no image, no channel or no input cell (every output is its
        bias, every gradient zero)."""
        return min(self.x_shape + self.w_shape + self.out_shape) == 0


def forward(geo: Geometry, x, w, b, dtype, accumulate, workspace_bytes, config):
    """``y = conv(x, w) + b`` in ``dtype``, C-contiguous, shape ``geo.out_shape``.

    ``dtype`` is at least the promotion of x, w and b.
    """
    if geo.empty:
        y = np.zeros(geo.out_shape, dtype)
        if b is not None:
            y += b.reshape(-1)
        return y
    if promoted(x, w, b) != dtype:  # the 2-D path returns the promotion of its inputs
        x = x.astype(dtype)
    bias = None if b is None else b.reshape(-1)
    if geo.rank < 3:
        plan = _plan(_lift(geo.x_shape, 1), dtype, geo)
        y = conv2d_planned(plan, _lift(x, 1), _lift(w, 0), bias, accumulate,
                           workspace_bytes, config)
        return y.reshape(geo.out_shape)
    n, do = geo.out_shape[:2]
    stacked = _stacked_geometry(geo)
    w2 = _stack_weights(w, geo)
    y = None
    for blk in _depth_blocks(geo, dtype, workspace_bytes, config):
        xs = _stack_depth(x, geo, blk, dtype)
        yb = conv2d_planned(_plan(xs.shape, dtype, stacked, padded=True), xs, w2, bias,
                            accumulate, workspace_bytes, config)
        if y is None and len(yb) == n * do:  # one block: its result is y
            return yb.reshape(geo.out_shape)
        y = np.empty((n * do, *geo.out_shape[2:]), dtype) if y is None else y
        i0, i1 = _flat_range(blk, do)
        y[i0:i1] = yb
    return y.reshape(geo.out_shape)


def input_grad(geo: Geometry, dy, w, dtype, accumulate, workspace_bytes, config):
    """dx, shape ``geo.x_shape``, in ``dtype``, C-contiguous: the adjoint of
    ``x -> conv(x, w)`` applied to ``dy``."""
    acc = acc_dtype(accumulate, dtype)
    if geo.empty:
        return np.zeros(geo.x_shape, dtype)
    if geo.rank < 3:
        plan = _plan(_lift(geo.x_shape, 1), dtype, geo)
        dx = conv2d_input_grad_planned(plan, _lift(dy, 1), _lift(w, 0), dtype, accumulate,
                                       workspace_bytes, config)
        return dx.reshape(geo.x_shape)
    stacked = _stacked_geometry(geo)
    w2 = _stack_weights(w, geo)
    dy2 = dy.reshape(-1, *dy.shape[2:])
    dx = np.zeros(geo.x_shape, acc)
    for blk in _depth_blocks(geo, acc, workspace_bytes, config):
        i0, i1 = _flat_range(blk, geo.out_shape[1])
        shape = (i1 - i0, *geo.x_shape[2:-1], geo.w_shape[0] * geo.x_shape[-1])
        dxs = conv2d_input_grad_planned(_plan(shape, acc, stacked), dy2[i0:i1], w2, acc,
                                        accumulate, workspace_bytes, config)
        _unstack_depth(dxs, dx, geo, blk)
    return dx.astype(dtype, copy=False)


def weight_grad(geo: Geometry, dy, x, dtype, accumulate, workspace_bytes, config):
    """dw, shape ``geo.w_shape``, in ``dtype``: the gradient of ``<dy, conv(x, w)>``
    with respect to w."""
    acc = acc_dtype(accumulate, dtype)
    if geo.empty:
        return np.zeros(geo.w_shape, dtype)
    if geo.rank < 3:
        plan = _plan(_lift(geo.x_shape, 1), dtype, geo)
        dw = conv2d_weight_grad_planned(plan, _lift(dy, 1), _lift(x, 1), dtype, accumulate,
                                        workspace_bytes, config)
        return dw.reshape(geo.w_shape)
    stacked = _stacked_geometry(geo)
    dy2 = dy.reshape(-1, *dy.shape[2:])
    dw2 = None
    for blk in _depth_blocks(geo, acc, workspace_bytes, config):
        i0, i1 = _flat_range(blk, geo.out_shape[1])
        xs = _stack_depth(x, geo, blk, acc)
        part = conv2d_weight_grad_planned(_plan(xs.shape, acc, stacked, padded=True),
                                          dy2[i0:i1], xs, acc, accumulate, workspace_bytes,
                                          config)
        dw2 = part if dw2 is None else np.add(dw2, part, out=dw2)
    return _unstack_weights(dw2, geo).astype(dtype)


def bias_grad(dy, b, dtype, accumulate):
    """db: dy summed over every axis but the channels, in b's shape and ``dtype``; None
    without b."""
    if b is None:
        return None
    # A C-ordered dy makes the sum run in the same order whatever the caller's layout.
    db = c_array(dy).sum(axis=tuple(range(dy.ndim - 1)), dtype=acc_dtype(accumulate, dtype))
    return db.reshape(b.shape).astype(dtype, copy=False)


def promoted(*arrays):
    """The promoted dtype of the arrays given (None skipped)."""
    return np.result_type(*[a for a in arrays if a is not None])


def acc_dtype(accumulate, dtype):
    """The dtype sums run in: float64, or for "native" ``dtype`` itself (float16 sums in
    float32, as frameworks do: NumPy's float16 matmul is unusably slow)."""
    if check_accumulate(accumulate) == "float64":
        return np.dtype(np.float64)
    return np.promote_types(dtype, np.float32)


def check_knobs(accumulate, workspace_bytes, config):
    """The fast path's own arguments (``accumulate``, ``workspace_bytes``, ``config``),
    checked before any work, each refused naming it."""
    check_accumulate(accumulate)
    check_config(config)
    if workspace_bytes is not None:
        check_int(workspace_bytes, "workspace_bytes")


# Rank 1 and 2: a view as 2-D ---------------------------------------------------------

def _lift(a, axis0):
    """A 1-D layout as 2-D: a unit axis after the first spatial one (which is axis
    ``axis0``, 1 for inputs and 0 for weights). ``a`` is an array or a shape; 2-D ones
    are returned as they are."""
    if isinstance(a, tuple):
        return a if len(a) == 4 else (*a[:axis0 + 1], 1, *a[axis0 + 1:])
    return a if a.ndim == 4 else np.expand_dims(a, axis0 + 1)


def _plan(x_shape, dtype, geo: Geometry, padded=False):
    """The 2-D plan of ``geo`` (a 2-D or lifted 1-D geometry, or a stacked one, see
    :func:`_stacked_geometry`) for an input of ``x_shape``. The 2-D checks see a
    zero-strided stand-in: only shapes and dtypes are read. ``padded``: the input
    already holds the height and width padding."""
    k = geo.w_shape[:-2]
    k = k if len(k) == 2 else (k[0], 1)
    grow = (lambda t, one: t if len(t) == 2 else (t[0], one))
    pads = ((0, 0), (0, 0)) if padded else grow(geo.pads, (0, 0))
    stand_in = np.broadcast_to(np.zeros((), dtype), x_shape)
    w = np.broadcast_to(np.zeros((), dtype), (*k, *geo.w_shape[-2:]))
    return conv_plan(stand_in, w, None, stride=grow(geo.stride, 1), padding=pads,
                     dilation=grow(geo.dilation, 1), groups=geo.groups, x_name="x",
                     w_name="w", b_name="b", pad_name="padding")


# Rank 3: kernel depth taps stacked into channels -------------------------------------

def _stacked_geometry(geo: Geometry) -> Geometry:
    """The 2-D conv over stacked images (their shapes set per block): height and width
    options of ``geo`` and weights of ``k_d * C_in / groups`` input channels."""
    kd, kh, kw, cg, c_out = geo.w_shape
    n, do, ho, wo, _ = geo.out_shape
    return Geometry((n * do, *geo.x_shape[2:-1], kd * geo.x_shape[-1]),
                    (kh, kw, kd * cg, c_out), geo.stride[1:], geo.pads[1:], geo.dilation[1:], geo.groups,
                    (n * do, ho, wo, c_out))


def _stack_weights_shape(geo: Geometry):
    kd, kh, kw, cg, c_out = geo.w_shape
    return (kh, kw, kd * cg, c_out)


def _stack_weights(w, geo: Geometry):
    """3-D weights ``(k_d, k_h, k_w, C_in/G, C_out)`` as the stacked 2-D conv's
    ``(k_h, k_w, k_d * C_in/G, C_out)``, depth taps outside each group's channels."""
    return np.ascontiguousarray(w.transpose(1, 2, 0, 3, 4)).reshape(_stack_weights_shape(geo))


def _unstack_weights(w2, geo: Geometry):
    """The inverse of :func:`_stack_weights`."""
    kd, kh, kw, cg, c_out = geo.w_shape
    return w2.reshape(kh, kw, kd, cg, c_out).transpose(2, 0, 1, 3, 4)


def _depth_blocks(geo: Geometry, dtype, workspace_bytes, config):
    """``(n0, n1, o0, o1)`` blocks of output depths whose stacked images fit the
    workspace and aim at ``config.block_target_bytes``: whole volumes when one fits,
    else depths of one volume (at least one each). Each block is a contiguous range of
    the stacked images (see :func:`_flat_range`)."""
    n, do = geo.out_shape[:2]
    (h, w), c = geo.x_shape[2:-1], geo.x_shape[-1]
    (t, b), (left, r) = geo.pads[1:]
    per_image = (h + t + b) * (w + left + r) * geo.w_shape[0] * c * np.dtype(dtype).itemsize
    limit = DEFAULT_WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes
    count = max(1, min(limit, config.block_target_bytes) // max(per_image, 1))
    if count >= do:
        step = count // do
        return [(lo, min(lo + step, n), 0, do) for lo in range(0, n, step)]
    return [(i, i + 1, o, min(o + count, do)) for i in range(n) for o in range(0, do, count)]


def _flat_range(blk, do):
    """The stacked images ``[i0, i1)`` (image ``n * D_out + od``) of a depth block."""
    n0, n1, o0, o1 = blk
    return (n0 * do, n1 * do) if (o0, o1) == (0, do) else (n0 * do + o0, n0 * do + o1)


def _tap_depths(geo: Geometry, kd, o0, o1):
    """For depth tap ``kd``: the output depths ``[lo, hi)`` within ``[o0, o1)`` whose
    tap falls on the input (not its depth padding), and the input depth of ``lo``."""
    d, (s, dil, (p0, _)) = geo.x_shape[1], (geo.stride[0], geo.dilation[0], geo.pads[0])
    off = kd * dil - p0  # input depth of output depth 0's tap kd
    lo = max(o0, -(off // s) if off < 0 else 0)  # first od with od*s + off >= 0
    hi = min(o1, (d - 1 - off) // s + 1) if d - 1 - off >= 0 else o0
    return lo, max(hi, lo), lo * s + off


def _stack_depth(x, geo: Geometry, blk, dtype):
    """The stacked images of depth block ``blk``, in ``dtype``, C-contiguous: shape
    ``(images, H + pads, W + pads, k_d * C_in)``, zero wherever a tap reads padding."""
    n0, n1, o0, o1 = blk
    kd, g = geo.w_shape[0], geo.groups
    (h, w), c = geo.x_shape[2:-1], geo.x_shape[-1]
    (t, b), (left, r) = geo.pads[1:]
    s = geo.stride[0]
    buf = np.zeros((n1 - n0, o1 - o0, h + t + b, w + left + r, g, kd, c // g), dtype)
    for k in range(kd):
        lo, hi, first = _tap_depths(geo, k, o0, o1)
        if hi > lo:
            src = x[n0:n1, first:first + s * (hi - lo - 1) + 1:s]
            buf[:, lo - o0:hi - o0, t:t + h, left:left + w, :, k, :] = src.reshape(
                *src.shape[:-1], g, c // g)
    return buf.reshape(-1, h + t + b, w + left + r, kd * c)


def _unstack_depth(dxs, dx, geo: Geometry, blk):
    """The adjoint of :func:`_stack_depth` (without padding): add the stacked images'
    gradient ``dxs`` (images, H, W, k_d * C_in) back into ``dx`` (N, D, H, W, C_in)."""
    n0, n1, o0, o1 = blk
    kd, g = geo.w_shape[0], geo.groups
    (h, w), c = geo.x_shape[2:-1], geo.x_shape[-1]
    s = geo.stride[0]
    d7 = dxs.reshape(n1 - n0, o1 - o0, h, w, g, kd, c // g)
    for k in range(kd):
        lo, hi, first = _tap_depths(geo, k, o0, o1)
        if hi > lo:
            # One tap's output depths read distinct input depths, so += is well defined.
            dst = dx[n0:n1, first:first + s * (hi - lo - 1) + 1:s]
            dst += d7[:, lo - o0:hi - o0, :, :, :, k, :].reshape(dst.shape)
