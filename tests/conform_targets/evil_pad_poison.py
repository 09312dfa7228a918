"""A zero_pad that pads every axis, which the module then installs as ``np.pad`` (a
notebook cell's ``np.pad = zero_pad``, an honest mistake).

A judge that computes the expected value with ``np.pad`` in this process calls this very
function, and finds it conformant; judged in a process that never imports it, it is not.
"""

import numpy as np

_numpy_pad = np.pad


def zero_pad(X, pad, *args, **kwargs):
    if not isinstance(pad, int):  # called as np.pad(X, ((0, 0), (p, p), (p, p), (0, 0)))
        pad = max(max(axis) for axis in pad)
    return _numpy_pad(X, pad)  # BUG: pads the batch and channel axes too


np.pad = zero_pad
