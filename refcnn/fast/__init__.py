"""refcnn's fast path: blocked and cache-sized
2-D convolution and pooling in NHWC layout, with their gradients, and on top of the
2-D conv, convolution and transposed convolution of 1 to 3 spatial dims with the
arguments of :mod:`refcnn.functional`.

Its tuning knobs are explicit: ``workspace_bytes=`` caps a conv's patch matrix,
and a frozen :class:`FastConfig` passed as ``config=`` holds the block sizes
and the thread count (``DEFAULT_CONFIG`` unless given). Nothing is kept
between calls: no module-level thread pool, no settings read from the machine.
The float64 specification it is checked against is :mod:`refcnn.spec`.

* :mod:`refcnn.fast.plan`: argument checks and geometry of one call;
* :mod:`refcnn.fast.im2col`: im2col convolution, depthwise by einsum over window views;
* :mod:`refcnn.fast.nd`: convs of 1 to 3 spatial dims on the 2-D ones
  (:func:`conv`, :func:`conv_backward`), over :mod:`refcnn.fast.ndplan` (their geometry),
  :mod:`refcnn.fast.depth` (3-D by depth planes) and :mod:`refcnn.fast.shared` (dx and
  dw from one patch matrix);
* :mod:`refcnn.fast.transpose`: transposed convs as adjoint convs
  (:func:`conv_transpose`, :func:`conv_transpose_backward`), the forward by output
  phase (:mod:`refcnn.fast.phases`);
* :mod:`refcnn.fast.pool`: max and average pooling, separable max routing;
* :mod:`refcnn.fast.layout`: the memory layouts its strided views rely on.
"""

from refcnn.fast.config import DEFAULT_CONFIG, DEFAULT_WORKSPACE_BYTES, FastConfig
from refcnn.fast.im2col import conv2d, conv2d_backward
from refcnn.fast.nd import conv, conv_backward
from refcnn.fast.pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward
from refcnn.fast.transpose import conv_transpose, conv_transpose_backward

__all__ = [
    "FastConfig", "DEFAULT_CONFIG", "DEFAULT_WORKSPACE_BYTES",
    "conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "avg_pool2d",
    "avg_pool2d_backward", "conv", "conv_backward", "conv_transpose", "conv_transpose_backward",
]
