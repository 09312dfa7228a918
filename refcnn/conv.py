"""The 2-D convolution's public names, which live in :mod:`refcnn.fast.conv`."""

from refcnn.fast.conv import DEFAULT_WORKSPACE_BYTES, conv2d, conv2d_backward

__all__ = ["conv2d", "conv2d_backward", "DEFAULT_WORKSPACE_BYTES"]
