"""A conv_forward with the right values that scales the caller's A_prev in place, and a
module that replaces ``np.array_equal`` so that a mutation check in this process sees
nothing changed."""

import numpy as np

from notebook_loops import NotebookCNN

_impl = NotebookCNN()


def conv_forward(A_prev, W, b, hparameters):
    Z, cache = _impl.conv_forward(A_prev, W, b, hparameters)
    A_prev *= 0.5  # BUG: modifies the caller's array (Z was right)
    return Z, cache


np.array_equal = lambda a1, a2, equal_nan=False: True
