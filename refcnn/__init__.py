"""refcnn: a pure-NumPy reference for 2-D convolution and pooling in NHWC layout.

The notebook API ("Convolutional Neural Networks: Step by Step") extended to
what real networks use, over a small functional core:

* notebook API: :func:`zero_pad`, :func:`conv_single_step`, :func:`conv_forward`,
  :func:`conv_backward`, :func:`pool_forward`, :func:`pool_backward`,
  :func:`create_mask_from_window`, :func:`distribute_value`;
* functional core: :func:`conv2d`, :func:`conv2d_backward`, :func:`max_pool2d`,
  :func:`max_pool2d_backward`, :func:`avg_pool2d`, :func:`avg_pool2d_backward`;
* :mod:`refcnn.loops`: the same notebook API as plain loops (the readable oracle);
* :mod:`refcnn.functional`: conv, transposed conv, max/average and adaptive pooling
  of 1, 2 or 3 spatial dims, over the float64 specification :mod:`refcnn.spec`.

refcnn imports only NumPy.
"""

from refcnn import functional
from refcnn.conv import conv2d, conv2d_backward
from refcnn.notebook import conv_backward, conv_forward, pool_backward, pool_forward
from refcnn.pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward
from refcnn.steps import conv_single_step, create_mask_from_window, distribute_value, zero_pad

__version__ = "0.1.0"

__all__ = [
    "zero_pad", "conv_single_step", "conv_forward", "conv_backward", "pool_forward",
    "pool_backward", "create_mask_from_window", "distribute_value",
    "conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "avg_pool2d",
    "avg_pool2d_backward",
]
