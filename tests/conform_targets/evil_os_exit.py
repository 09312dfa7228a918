"""A conv_forward that ends its process with ``os._exit(3)``; zero_pad and pool_forward are
right."""

import os

from notebook_loops import NotebookCNN

_impl = NotebookCNN()
zero_pad = _impl.zero_pad
pool_forward = _impl.pool_forward


def conv_forward(A_prev, W, b, hparameters):
    os._exit(3)
