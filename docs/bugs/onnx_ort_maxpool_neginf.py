"""ONNX Runtime's float32 MaxPool answers -FLT_MAX (-3.4028235e38) for windows of -inf cells.

ONNX's MaxPool takes "the maximum of the elements, excluding pad": a window of -inf cells has
maximum -inf. ONNX Runtime's float32 kernel (MLAS, used when the Indices output is not asked
for) starts its running maximum at the lowest finite float, so such windows come back as
-3.4028235e38, in 1-D and 3-D always and in 2-D whenever the window also covers padding. The
same model in float64, or with the Indices output, gives -inf. Related: onnxruntime#24819.

Run: python docs/bugs/onnx_ort_maxpool_neginf.py  (exits 1 while the bug is there)
"""

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper


def max_pool(x, dtype, indices=False, **attrs):
    elem = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE}[dtype]
    outs = ["y", "i"] if indices else ["y"]
    graph = helper.make_graph(
        [helper.make_node("MaxPool", ["x"], outs, **attrs)], "g",
        [helper.make_tensor_value_info("x", elem, x.shape)],
        [helper.make_tensor_value_info("y", elem, None)]
        + ([helper.make_tensor_value_info("i", TensorProto.INT64, None)] if indices else []))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.astype(dtype)})[0]


x = np.array([[[-np.inf, -np.inf, -np.inf, 1.0, 2.0]]])  # (N, C, L)
attrs = dict(kernel_shape=[2], strides=[2], pads=[1, 1])
print("onnxruntime", ort.__version__, "MaxPool k=2 s=2 pads=(1,1) on", x.ravel())
print("  expected           ", [-np.inf, -np.inf, 2.0])
got32 = max_pool(x, np.float32, **attrs).ravel()
print("  float32            ", got32)
print("  float64            ", max_pool(x, np.float64, **attrs).ravel())
print("  float32 + Indices  ", max_pool(x, np.float32, indices=True, **attrs).ravel())
raise SystemExit(1 if np.isfinite(got32[:2]).any() else 0)
