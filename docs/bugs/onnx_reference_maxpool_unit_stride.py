"""onnx.reference's MaxPool with all strides and dilations 1: pads ignored off 2-D, wrong Indices.

``op_max_pool.py`` sends unit-stride, unit-dilation MaxPool to an older common pooling
routine (``_op_common_pool.py``) instead of its own loops. That routine (1) applies ``pads``
only when there are exactly 4 of them (2 spatial axes): 1-D and 3-D padded inputs are not
padded and the window loop raises IndexError; (2) computes the Indices output from the
argmax within the window with the *output* shape (``_get_indices(arg, out_shape)``), so
indices are wrong in 2-D and 3-D; (3) pads with NaN and drops every NaN, so NaN inputs are
ignored too; (4) unpacks 2-D pads as ``pad_top, pad_bottom, pad_left, pad_right = pads``,
while ONNX orders them [H_begin, W_begin, H_end, W_end]: H is padded by (H_begin, W_begin)
and W by (H_end, W_end), right only when H_end == W_begin. A window that then covers
padding only is an empty array once the NaN are dropped: np.max raises "zero-size array to
reduction operation maximum"; (5) under ceil_mode adds the pads again to the padded size,
so a padded 2-D node gets extra rows and columns (zeros). The same node with stride 2 is
right.

Run: python docs/bugs/onnx_reference_maxpool_unit_stride.py  (exits 1 while the bug is there)
"""

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator


def reference(x, indices, **attrs):
    outs = ["y", "i"] if indices else ["y"]
    graph = helper.make_graph(
        [helper.make_node("MaxPool", ["x"], outs, **attrs)], "g",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)]
        + ([helper.make_tensor_value_info("i", TensorProto.INT64, None)] if indices else []))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    return ReferenceEvaluator(model).run(None, {"x": x})


wrong = False
# (1) 1-D with pads: [1, 2, 3, 4], k=2, s=1, pads (1, 1) -> [1, 2, 3, 4, 4].
x1 = np.array([[[1.0, 2.0, 3.0, 4.0]]])
try:
    got = reference(x1, False, kernel_shape=[2], strides=[1], pads=[1, 1])[0].ravel()
    verdict, bad = f"got {got}", not np.array_equal(got, [1, 2, 3, 4, 4])
except Exception as exc:  # noqa: BLE001 - the bug shows as an exception here
    verdict, bad = f"raises {type(exc).__name__}: {exc}", True
wrong |= bad
print(f"onnx {onnx.__version__} MaxPool 1-D k=2 s=1 pads=(1,1) on {x1.ravel()}: expected "
      f"[1. 2. 3. 4. 4.], {verdict}")
# (2) 2-D Indices: a 4x4 plane of distinct values, k=2, s=1 (3x3 windows), against brute force.
x2 = np.random.default_rng(0).permutation(16).astype(np.float64).reshape(1, 1, 4, 4)
_, idx = reference(x2, True, kernel_shape=[2, 2], strides=[1, 1])
plane = x2[0, 0]
expected = [max(((r + i) * 4 + (c + j) for i in (0, 1) for j in (0, 1)),
                key=lambda f: plane.flat[f]) for r in range(3) for c in range(3)]
wrong |= not np.array_equal(idx.ravel(), expected)
print(f"onnx {onnx.__version__} MaxPool 2-D k=2 s=1 Indices on a 4x4 plane: expected "
      f"{expected}, got {idx.ravel().tolist()}")
# (4) and (5), 2-D pads against brute force on a 3x4 plane: each kernel and pads (ONNX order),
# with and without ceil_mode (unit strides: ceil_mode changes nothing here).
x3 = np.arange(12.0).reshape(1, 1, 3, 4)
for kernel, pads, ceil in (([2, 2], [0, 1, 0, 1], 0), ([2, 1], [1, 0, 1, 0], 0),
                           ([2, 2], [1, 1, 1, 1], 1)):
    padded = np.pad(x3[0, 0], ((pads[0], pads[2]), (pads[1], pads[3])), constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel)
    expected = windows.max(axis=(2, 3))
    try:
        got = reference(x3, False, kernel_shape=kernel, strides=[1, 1], pads=pads,
                        ceil_mode=ceil)[0][0, 0]
        verdict = f"got shape {got.shape}"
        bad = got.shape != expected.shape or not np.array_equal(got, expected)
    except Exception as exc:  # noqa: BLE001 - the bug shows as an exception here
        verdict, bad = f"raises {type(exc).__name__}: {exc}", True
    wrong |= bad
    print(f"onnx {onnx.__version__} MaxPool 2-D k={kernel} s=1 pads={pads} ceil_mode={ceil} on a "
          f"3x4 plane: expected shape {expected.shape}, {verdict}")
raise SystemExit(1 if wrong else 0)
