"""TensorFlow's tf.nn.max_pool sends a window's gradient to a NaN that its forward ignored.

The forward (Eigen's SpatialMaxPooling, or oneDNN) skips NaN: a window [nan, 3, 1] outputs 3.
The gradient (MaxPoolGrad on CPU) does not use that output: it recomputes each window's argmax
with SpatialMaxPoolWithArgMaxHelper, whose scan takes the first cell unconditionally and then
replaces it only when `output < input`, which is false for a NaN. A window that starts with NaN
therefore routes its whole gradient to the NaN, although the output does not depend on it, and
the cell that produced the output gets nothing. Same in float64 (Eigen) and float32 (oneDNN).

Run: python docs/bugs/tensorflow_maxpool_nan_gradient.py  (exits 1 while the bug is there)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

failed = False
for dtype in (tf.float32, tf.float64):
    x = tf.constant(np.array([1.0, np.nan, 3.0, 1.0, 3.0]).reshape(1, 5, 1), dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.nn.max_pool1d(x, ksize=3, strides=1, padding="VALID")
    dx = tape.gradient(y, x).numpy().ravel()
    print(f"tensorflow {tf.__version__} {dtype.name}: x = {x.numpy().ravel()}, window 3, stride 1")
    print("  y  =", y.numpy().ravel(), "(every NaN ignored)")
    print("  dx =", dx, "expected [0, 0, 3, 0, 0] (each window's output is x[2] = 3)")
    failed |= dx[1] != 0
raise SystemExit(1 if failed else 0)
