"""A conv_forward that segfaults (as a native kernel reading out of bounds does); zero_pad
and pool_forward are right, so the run must go on past the crash."""

import ctypes

from notebook_loops import NotebookCNN

_impl = NotebookCNN()
zero_pad = _impl.zero_pad
pool_forward = _impl.pool_forward


def conv_forward(A_prev, W, b, hparameters):
    return ctypes.string_at(0)  # reads address 0: SIGSEGV
