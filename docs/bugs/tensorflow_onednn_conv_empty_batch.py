"""TensorFlow's oneDNN Conv1D/Conv2D/Conv3D return the input's shape for an empty batch.

With oneDNN on (TF_ENABLE_ONEDNN_OPTS defaults on in x86 CPU wheels), a float32, float16 or
bfloat16 convolution of a (0, *spatial, C_in) input returns a (0, *spatial, C_in) tensor
instead of (0, *out, C_out), in 1-D, 2-D and 3-D alike: oneDNN's zero-element early return
allocates the input's shape. The next op then fails or silently broadcasts wrong
(tf.nn.bias_add: "Must provide as many biases as the last dimension"). float64 (Eigen) and
TF_ENABLE_ONEDNN_OPTS=0 give the right shape. tensorflow PR #30968 fixed Conv3D's empty
output in 2019; it is wrong again here. PR #112639 (closed) proposed the fix for Conv2D.

Run: python docs/bugs/tensorflow_onednn_conv_empty_batch.py  (exits 1 while the bug is there)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# (op, x shape, w shape, expected y shape): VALID, stride 1, 3 taps per axis, 6 -> 3 channels.
CALLS = (
    ("conv1d", (0, 12, 6), (3, 6, 3), (0, 10, 3)),
    ("conv2d", (0, 12, 12, 6), (3, 3, 6, 3), (0, 10, 10, 3)),
    ("conv3d", (0, 8, 8, 8, 6), (3, 3, 3, 6, 3), (0, 6, 6, 6, 3)),
)
bad = False
for name, x_shape, w_shape, expected in CALLS:
    for dtype in (tf.float32, tf.float16, tf.float64):
        x, w = tf.zeros(x_shape, dtype), tf.ones(w_shape, dtype)
        strides = [1] * len(x_shape) if name == "conv3d" else 1  # conv3d wants all five
        y = getattr(tf.nn, name)(x, w, strides, "VALID")
        wrong = tuple(y.shape) != expected
        bad |= wrong
        print(f"tensorflow {tf.__version__} {name} {dtype.name}: x {x_shape}, w {w_shape}"
              f" -> y {tuple(y.shape)}, expected {expected}{'  WRONG' if wrong else ''}")
raise SystemExit(1 if bad else 0)
