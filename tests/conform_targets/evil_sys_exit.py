"""A conv_forward that calls ``sys.exit(0)`` and a pool_forward that raises
KeyboardInterrupt (a notebook's habits, in a function); zero_pad is right."""

import sys

from notebook_loops import NotebookCNN

_impl = NotebookCNN()
zero_pad = _impl.zero_pad


def conv_forward(A_prev, W, b, hparameters):
    sys.exit(0)


def pool_forward(A_prev, hparameters, mode="max"):
    raise KeyboardInterrupt("stop")
