"""The 2-D convolution's public names, which live in :mod:`refcnn.fast.im2col`."""

from refcnn.fast.im2col import DEFAULT_WORKSPACE_BYTES, conv2d, conv2d_backward

__all__ = ["conv2d", "conv2d_backward", "DEFAULT_WORKSPACE_BYTES"]
