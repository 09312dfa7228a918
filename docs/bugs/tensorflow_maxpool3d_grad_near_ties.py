"""TensorFlow's 3-D max-pool gradient gives every cell within 1e-5 of a window's max its gradient.

MaxPool3DGrad on CPU (LaunchMaxPooling3dGradOp in tensorflow/core/kernels/pooling_ops_3d.cc)
does not route a window's gradient to one maximum: it adds the window's gradient to every cell
with |x - max| < 1e-5, an absolute threshold. Tied maxima all get the full gradient (the
gradient's total exceeds the output's), and so do distinct values within 1e-5 of the max,
which for inputs of magnitude 1e-5 or less is most of the window. The 2-D and 1-D max-pool
gradients route each window to one cell (its first maximum).

Run: python docs/bugs/tensorflow_maxpool3d_grad_near_ties.py  (exits 1 while the bug is there)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def max_pool_grad(row, rank):
    x = tf.constant(np.array(row).reshape((1,) * rank + (len(row), 1)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        pool = tf.nn.max_pool3d if rank == 3 else tf.nn.max_pool2d
        y = pool(x, [1] * (rank - 1) + [2], [1] * rank, "VALID")
    return tape.gradient(y, x).numpy().ravel()


row = [1.0, 1.000005, 0.0, 2e-6, 1e-6]  # no two values equal
print(f"tensorflow {tf.__version__}, float32 x = {row}, window 2, stride 1 (4 windows)")
print("  max_pool2d gradient:", max_pool_grad(row, 2), "(each window to its max)")
got = max_pool_grad(row, 3)
print("  max_pool3d gradient:", got, "expected [0, 2, 0, 2, 0]")
raise SystemExit(1 if got.sum() != 4 else 0)
