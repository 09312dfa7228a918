"""A conv's input gradient (the adjoint of the conv, which a transposed conv is) as one
stride-1 conv, by output phase (the sub-pixel decomposition), any rank.

The adjoint of a conv with stride s, dilation d and kernel k scatters each input
cell's taps into an output s times finer. Per spatial axis, with ``q`` a position of
the padded output, ``q = j*s + r``, only the taps ``t`` with ``t*d = r (mod s)`` reach
phase ``r``; they are ``t0 + u*s'`` (``s' = s / gcd(s, d)``) and read input cell
``j - e0 - u*d'`` (``d' = d / gcd(s, d)``). So each phase is a stride-1 correlation of
the input, dilation ``d'``, with its taps in reverse order, and the phases differ only
in their taps and in where their windows start. Padding every phase's taps to the
longest with zeros, one conv with a column block per phase computes all of them over
the union of their window positions (:func:`refcnn.fast.nd.forward`: a single patch
matrix and matrix product, as wide as the number of phases times the output channels),
and each phase's cells are then copied into their places, one strided copy per phase.
Nothing is scattered, and the work is the adjoint's own but for the zero taps and the
few extra window positions of the union.

Phases no tap reaches (``gcd(s, d)`` not dividing ``r``, or ``t0 >= k``) are zero and
get no column block; only phases some output cell lies in are computed, so an axis
has at most ``min(stride, kernel, output length)`` of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from refcnn.fast import nd
from refcnn.fast.ndplan import Geometry

__all__ = ["input_grad"]


@dataclass(frozen=True)
class _Axis:
    """One spatial axis's decomposition.

    ``taps[p]`` lists, for phase ``p`` of ``phases``, the kernel tap at each position
    of the common window of ``window`` taps (``k``, the zero tap past the kernel, where
    the phase has fewer); ``first[p]`` and ``count[p]`` are the phase's first output
    cell and number of cells (every ``stride``-th from ``first``); ``start[p]`` is the
    union window position of its first cell. The union conv reads the input from
    ``crop`` (a slice), padded by ``pads``, and has ``positions`` windows.
    """

    stride: int
    dilation: int
    window: int
    taps: tuple
    first: tuple
    count: tuple
    start: tuple
    crop: slice
    pads: tuple
    positions: int

    @property
    def phases(self) -> int:
        return len(self.taps)


def input_grad(geo: Geometry, dy, w, dtype, bias, accumulate, workspace_bytes, config):
    """dx of the conv ``geo`` (``geo.x_shape``, in ``dtype``), plus ``bias`` if given:
    :func:`refcnn.fast.nd.input_grad` computed by phase.

    Parameters
    ----------
    geo : refcnn.fast.ndplan.Geometry
        The conv from x to dy.
    dy : ndarray, shape ``geo.out_shape``
    w : ndarray, shape ``geo.w_shape`` = (*kernel, C_in // groups, C_out)
    bias : ndarray of shape (C_in,) or None
        Added to every cell of dx (a transposed conv's bias), in the sums' precision.

    Returns
    -------
    dx : ndarray, shape ``geo.x_shape``, ``dtype``
    """
    axes = [_axis(m, o, k, s, d, p0) for m, o, k, s, d, (p0, _) in zip(
        geo.out_shape[1:-1], geo.x_shape[1:-1], geo.w_shape[:-2], geo.stride, geo.dilation,
        geo.pads)]
    reached = not geo.empty and min(a.phases for a in axes) > 0
    dx = np.empty(geo.x_shape, dtype)
    if not reached or any(sum(a.count) < o for a, o in zip(axes, geo.x_shape[1:-1])):
        # Some cells lie in no phase (no tap reaches them): the bias alone, exact in
        # dtype (which holds the bias's).
        dx[...] = 0 if bias is None else bias
    if reached:
        _phase_cells(dx, axes, geo, dy, w, bias, accumulate, workspace_bytes, config)
    return dx


def _phase_cells(dx, axes, geo, dy, w, bias, accumulate, workspace_bytes, config):
    """Compute every phase with one conv (the bias tiled over the phases' channels, so
    it is added before the sums are rounded) and copy its cells into ``dx``."""
    g, cg = geo.groups, geo.x_shape[-1] // geo.groups
    phases = [a.phases for a in axes]
    wp = _phase_weights(w, axes, geo)
    union = Geometry(
        (dy.shape[0], *(a.crop.stop - a.crop.start for a in axes), dy.shape[-1]), wp.shape,
        (1,) * len(axes), tuple(a.pads for a in axes), tuple(a.dilation for a in axes), g,
        (dy.shape[0], *(a.positions for a in axes), wp.shape[-1]))
    tiled = None if bias is None else np.broadcast_to(
        bias.reshape(g, *(1,) * len(axes), cg), (g, *phases, cg)).reshape(-1)
    z = nd.forward(union, dy[(slice(None), *(a.crop for a in axes))], wp, tiled, dx.dtype,
                   accumulate, workspace_bytes, config)
    z = z.reshape(*z.shape[:-1], g, *phases, cg)
    for p in np.ndindex(*phases):
        cells = tuple(slice(a.first[i], None, a.stride) for a, i in zip(axes, p))
        src = tuple(slice(a.start[i], a.start[i] + a.count[i]) for a, i in zip(axes, p))
        dst = dx[(slice(None), *cells)]
        dst[...] = z[(slice(None), *src, slice(None), *p)].reshape(dst.shape)


def _axis(m, out, k, s, d, before) -> _Axis:
    """The decomposition of one axis: the conv reads ``out`` cells (x, padded by
    ``before`` first) into ``m`` windows; its adjoint writes ``out`` cells from ``m``."""
    gcd = math.gcd(s, d)
    s1, d1 = s // gcd, d // gcd
    inv = pow(d1, -1, s1) if s1 > 1 else 0
    phases = []
    # A phase is the output cells o = first, first + s, ...; only the first s cells (or
    # fewer) start one, so a huge stride costs nothing.
    for first in range(min(s, out)):
        r = (first + before) % s
        if r % gcd:
            continue
        t0 = (r // gcd) * inv % s1
        if t0 >= k:
            continue
        taps = tuple(range(t0, k, s1))
        e0 = (t0 * d - r) // s  # input cell j - e0 reaches q = j*s + r through tap t0
        j = (first + before - r) // s  # first's q = j*s + r
        phases.append((first, taps, j - e0, len(range(first, out, s))))
    if not phases:
        return _Axis(s, d1, 0, (), (), (), (), slice(0, 0), (0, 0), 0)
    window = max(len(t) for _, t, _, _ in phases)
    # Phase taps in reverse, so that the window reads upward: its first tap, on input
    # cell j - e0 - (window - 1)*d', holds the phase's last tap (or the zero tap).
    starts = [j_e - (window - 1) * d1 for _, _, j_e, _ in phases]
    lo = min(starts)
    hi = max(st + c - 1 for st, (_, _, _, c) in zip(starts, phases))
    span = (window - 1) * d1 + 1
    # Windows lo..hi read input cells lo .. hi + span - 1; outside [0, m) they read zeros.
    a, b = max(lo, 0), min(hi + span, m)
    b = max(a, b)
    pads = (a - lo, hi + span - lo - (b - a) - (a - lo))
    taps = tuple(tuple([k] * (window - len(t)) + list(t[::-1])) for _, t, _, _ in phases)
    return _Axis(s, d1, window, taps, tuple(f for f, _, _, _ in phases),
                 tuple(c for _, _, _, c in phases), tuple(st - lo for st in starts),
                 slice(a, b), pads, hi - lo + 1)


def _phase_weights(w, axes, geo):
    """The union conv's weights ``(*window, C_out / G, G * phases * C_in / G)`` from the
    conv's ``(*kernel, C_in / G, C_out)``: output channels by group, then phase, then
    channel, so each group's stay together."""
    rank, g = len(axes), geo.groups
    cig, c_out = w.shape[-2:]
    wz = np.pad(w, [(0, 1)] * rank + [(0, 0), (0, 0)])  # the zero tap k on each axis
    index = []
    for i, a in enumerate(axes):
        shape = [1] * (2 * rank)
        shape[i], shape[rank + i] = a.phases, a.window
        index.append(np.array(a.taps).reshape(shape))
    phases, window = [a.phases for a in axes], [a.window for a in axes]
    sub = wz[tuple(index)].reshape(*phases, *window, cig, g, c_out // g)
    order = (*range(rank, 2 * rank), 2 * rank + 2, 2 * rank + 1, *range(rank), 2 * rank)
    return np.ascontiguousarray(sub.transpose(order)).reshape(
        *window, c_out // g, g * math.prod(phases) * cig)
