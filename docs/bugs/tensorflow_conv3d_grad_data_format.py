"""TensorFlow's tf.nn.convolution on 5-D input has no gradient unless data_format is given.

tf.nn.convolution's data_format defaults to None ("channels last"). For 2-D inputs the None
becomes "NHWC" before the op is built; for 5-D inputs the eager fast path records Conv3D with
the attribute data_format=None, and its registered gradient (_Conv3DGrad in
tensorflow/python/ops/nn_grad.py) calls op.get_attr("data_format").decode(): AttributeError
'NoneType' object has no attribute 'decode'. Passing data_format="NDHWC", the default it
stands for, works. (Dilated convolutions take another path and are not affected.)

Run: python docs/bugs/tensorflow_conv3d_grad_data_format.py  (exits 1 while the bug is there)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

x = tf.ones((1, 5, 5, 5, 2))
w = tf.ones((2, 2, 2, 2, 3))
print("tensorflow", tf.__version__)
for data_format in ("NDHWC", None):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.nn.convolution(x, w, padding="VALID", data_format=data_format)
    try:
        dx = tape.gradient(y, x)
        print(f"  data_format={data_format!r}: dx {tuple(dx.shape)}")
    except AttributeError as exc:
        print(f"  data_format={data_format!r}: AttributeError: {exc}")
        raise SystemExit(1)
