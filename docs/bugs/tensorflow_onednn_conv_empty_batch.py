"""TensorFlow's oneDNN Conv2D (and conv1d through it) returns the input's shape for an empty batch.

With oneDNN on (TF_ENABLE_ONEDNN_OPTS defaults on in x86 CPU wheels), a float32, float16 or
bfloat16 convolution of a (0, H, W, C_in) input returns a (0, H, W, C_in) tensor instead of
(0, H_out, W_out, C_out): oneDNN's zero-element early return allocates the input's shape. The
next op then fails or silently broadcasts wrong (tf.nn.bias_add: "Must provide as many biases
as the last dimension"). float64 (Eigen) and TF_ENABLE_ONEDNN_OPTS=0 give the right shape;
Conv3D was fixed the same way in tensorflow PR #30968; PR #112639 (closed) proposed the fix.

Run: python docs/bugs/tensorflow_onednn_conv_empty_batch.py  (exits 1 while the bug is there)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

x = tf.zeros((0, 12, 12, 6))
w = tf.ones((3, 3, 6, 3))
bad = False
for dtype in (tf.float32, tf.float64):
    y = tf.nn.conv2d(tf.cast(x, dtype), tf.cast(w, dtype), strides=1, padding="VALID")
    print(f"tensorflow {tf.__version__} conv2d {dtype.name}: x {tuple(x.shape)}, w {tuple(w.shape)}"
          f" -> y {tuple(y.shape)}, expected (0, 10, 10, 3)")
    bad |= tuple(y.shape) != (0, 10, 10, 3)
y = tf.nn.conv1d(tf.zeros((0, 12, 6)), tf.ones((3, 6, 3)), stride=1, padding="VALID")
print(f"  conv1d float32: -> y {tuple(y.shape)}, expected (0, 10, 3)")
raise SystemExit(1 if bad else 0)
