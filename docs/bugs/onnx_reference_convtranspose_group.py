"""onnx.reference's ConvTranspose is wrong for group > 1 (raises, or returns wrong values).

ONNX's ConvTranspose weight is (C, M/group, *k): input channels first. For group > 1,
``op_conv_transpose.py`` (1) slices W by output channels (``W[g*M/group:(g+1)*M/group]``),
which is the wrong block whenever C != M, (2) writes each group's M/group output channels
into one channel slot (``final[n, g:g+1] = ...``: raises "could not broadcast" or "cannot
reshape" when M/group > 1) and (3) adds B[0] to every group's output, since it hands the
whole bias to each per-group call. Only the depthwise case C == M == group without bias
comes out right. Upstream: onnx PR #8446 fixes (2); (1) and (3) remain in the version below.

Run: python docs/bugs/onnx_reference_convtranspose_group.py  (exits 1 while the bug is there)
"""

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator


def conv_transpose_1d(x, w, b, group, stride):
    """The definition: y[n, g*Mg+m, o*stride + t] += x[n, g*Cg+c, o] * w[g*Cg+c, m, t]."""
    n, c, length = x.shape
    cg, mg, k = c // group, w.shape[1], w.shape[2]
    y = np.zeros((n, group * mg, (length - 1) * stride + k))
    for g in range(group):
        for ci in range(cg):
            for m in range(mg):
                for o in range(length):
                    y[:, g * mg + m, o * stride:o * stride + k] += \
                        x[:, g * cg + ci, o, None] * w[g * cg + ci, m]
    return y + b[None, :, None]


def reference(x, w, b, group, stride):
    graph = helper.make_graph(
        [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], group=group,
                          strides=[stride], kernel_shape=[w.shape[2]])], "g",
        [helper.make_tensor_value_info(n, TensorProto.DOUBLE, a.shape)
         for n, a in (("x", x), ("w", w), ("b", b))],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    return ReferenceEvaluator(model).run(None, {"x": x, "w": w, "b": b})[0]


rng = np.random.default_rng(0)
wrong = False
for c, m, group in [(4, 4, 4), (4, 6, 2), (2, 4, 2)]:
    x = rng.standard_normal((1, c, 3))
    w = rng.standard_normal((c, m // group, 2))
    b = rng.standard_normal(m)
    expected = conv_transpose_1d(x, w, b, group, stride=2)
    try:
        got = reference(x, w, b, group, stride=2)
        verdict = f"max error {np.abs(got - expected).max():.3g}"
        wrong |= not np.allclose(got, expected)
    except Exception as exc:  # noqa: BLE001 - the bug shows as an exception on these shapes
        verdict, wrong = f"raises {type(exc).__name__}: {exc}", True
    print(f"onnx {onnx.__version__} ConvTranspose C={c} M={m} group={group}: {verdict}")
raise SystemExit(1 if wrong else 0)
