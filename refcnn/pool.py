"""The 2-D pooling's public names, which live in :mod:`refcnn.fast.pool`."""

from refcnn.fast.pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"]
