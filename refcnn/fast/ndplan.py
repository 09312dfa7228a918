"""The geometry of one conv of any rank on the fast path, and the 2-D plans it runs on.

:class:`Geometry` holds a conv's shapes and options, one entry per spatial axis;
:func:`plan2d` turns a 2-D geometry (or a 1-D one lifted to 2-D, or the 2-D conv a
3-D one is made of) into the :class:`refcnn.fast.plan.ConvPlan` of the planned 2-D
functions, through their own checks. Also the dtype rules every rank shares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refcnn._params import acc_dtype, check_accumulate, check_int, promoted
from refcnn.fast.config import check_config
from refcnn.fast.plan import conv_plan

__all__ = ["Geometry", "plan2d", "lift", "acc_dtype", "promoted", "check_knobs"]


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
        """The geometry of ``x`` and ``w`` under ``g``, a
        :func:`refcnn._checks.conv_geometry` result."""
        return cls(x.shape, w.shape, g.stride, g.pads, g.dilation, g.groups, g.out_shape)

    @property
    def rank(self) -> int:
        return len(self.x_shape) - 2

    @property
    def empty(self) -> bool:
        """Nothing to sum: no image, no channel or no input cell (every output is its
        bias, every gradient zero)."""
        return min(self.x_shape + self.w_shape + self.out_shape) == 0


def plan2d(geo: Geometry, x_shape, dtype):
    """The 2-D plan of ``geo`` (2-D, or 1-D: then lifted, see :func:`lift`) for an input
    of ``x_shape`` (the images of one block). The 2-D checks see zero-strided
    stand-ins: only shapes and dtypes are read."""
    grow = (lambda t, one: t if len(t) == 2 else (t[0], one))
    kernel = grow(geo.w_shape[:-2], 1)
    stand_in = np.broadcast_to(np.zeros((), dtype), lift(tuple(x_shape), 1))
    w = np.broadcast_to(np.zeros((), dtype), (*kernel, *geo.w_shape[-2:]))
    return conv_plan(stand_in, w, None, stride=grow(geo.stride, 1),
                     padding=grow(geo.pads, (0, 0)), dilation=grow(geo.dilation, 1),
                     groups=geo.groups, x_name="x", w_name="w", b_name="b",
                     pad_name="padding")


def lift(a, axis0):
    """A 1-D layout as 2-D: a unit axis after the first spatial one (axis ``axis0``: 1
    for inputs and outputs, 0 for weights), a view. ``a`` is an array or a shape; 2-D
    ones are returned as they are.

    The length becomes the height, not the width, because the 2-D path blocks by
    output rows: a long sequence is then still cut into blocks that fit the workspace.
    """
    if isinstance(a, tuple):
        return a if len(a) == 4 else (*a[:axis0 + 1], 1, *a[axis0 + 1:])
    return a if a.ndim == 4 else np.expand_dims(a, axis0 + 1)


def check_knobs(accumulate, workspace_bytes, config):
    """The fast path's own arguments (``accumulate``, ``workspace_bytes``, ``config``),
    checked before any work, each refused naming it."""
    check_accumulate(accumulate)
    check_config(config)
    if workspace_bytes is not None:
        check_int(workspace_bytes, "workspace_bytes")
