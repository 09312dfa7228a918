"""onnx.reference's GlobalMaxPool reduces the wrong axes unless the input has 2 spatial axes.

``_global_max_pool`` takes the maximum over ``range(ndim - 2, ndim)``: right for (N, C, H, W), but
over C and L for (N, C, L) and over H and W only (not D) for (N, C, D, H, W). ONNX's
GlobalMaxPool reduces every spatial axis and keeps N and C. Upstream: onnx#7682 (the 1-D case),
fixed by onnx PR #8383, which reduces ``range(2, ndim)``.

Run: python docs/bugs/onnx_reference_globalmaxpool_rank.py  (exits 1 while the bug is there)
"""

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

wrong = False
for shape in [(2, 3, 5), (1, 3, 4, 5), (1, 2, 3, 4, 5)]:
    x = np.random.default_rng(0).standard_normal(shape)
    graph = helper.make_graph([helper.make_node("GlobalMaxPool", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.DOUBLE, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    got = ReferenceEvaluator(model).run(None, {"x": x})[0]
    expected = x.max(axis=tuple(range(2, x.ndim)), keepdims=True)
    ok = got.shape == expected.shape and np.array_equal(got, expected)
    wrong |= not ok
    print(f"onnx {onnx.__version__} GlobalMaxPool {shape}: got shape {got.shape}, expected "
          f"{expected.shape}: {'ok' if ok else 'WRONG'}")
raise SystemExit(1 if wrong else 0)
