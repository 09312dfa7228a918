"""Memory layouts the fast path relies on, made here rather than read from callers.

A caller's array may be any view: transposed, sliced, reversed, Fortran
ordered, read-only or unaligned, and NumPy calls an array C-contiguous while
recording any stride at all for an axis of length 1. The fast path therefore
computes on :func:`c_array` results only, and builds its strided window views
with :func:`window_view`, whose strides come from the array's shape, never
from ``.strides``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def c_strides(shape) -> tuple[int, ...]:
    """Strides, in elements, of a C-ordered array of ``shape``."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def c_array(a, dtype=None) -> np.ndarray:
    """``a`` in ``dtype`` (default its own), C-contiguous, aligned and with C strides.

    A view of ``a`` when it already is so (whatever stride NumPy records for its
    length-1 axes: the view carries the C strides), else a fresh copy. Either
    way the values are laid out as in ``np.ascontiguousarray(a)``, so every
    computation on the result sees the same memory whatever the caller passed.
    """
    dtype = a.dtype if dtype is None else np.dtype(dtype)
    if a.dtype == dtype and a.flags.c_contiguous and a.flags.aligned:
        # Reshaping a C-contiguous array to 1-D and back gives it the C strides
        # (checked, as a view is only as good as its strides).
        v = a.reshape(-1).reshape(a.shape)
        if v.strides == tuple(s * dtype.itemsize for s in c_strides(a.shape)):
            return v
    return np.array(a, dtype=dtype, order="C")


def window_view(a, start, shape, steps, writeable=False) -> np.ndarray:
    """A strided view of the C-contiguous array ``a`` (one :func:`c_array` made, or
    a fresh one): element ``i`` of the view is ``a.flat[start + sum(i * steps)]``.

    ``start`` and ``steps`` count elements of ``a`` in C order; they are checked to
    stay inside ``a``, so a view can never reach past its buffer. Axes of length 1
    get step 0: they are never stepped along, and a huge unused step (a stride
    longer than the input) cannot overflow.
    """
    if not (a.flags.c_contiguous and a.flags.aligned):
        raise AssertionError("window_view needs a C-contiguous, aligned array")
    if min(shape, default=1) == 0:
        return np.empty(shape, a.dtype)
    steps = tuple(0 if n == 1 else s for n, s in zip(shape, steps))
    last = start + sum((n - 1) * s for n, s in zip(shape, steps))
    if start < 0 or min(steps, default=0) < 0 or last >= a.size:
        raise AssertionError(f"window view {shape} at {start} + {steps} leaves its buffer "
                             f"of {a.size} elements")
    flat = a.reshape(-1)[start:]
    return as_strided(flat, shape=shape, strides=tuple(s * a.itemsize for s in steps),
                      writeable=writeable)
