"""onnx.reference's AveragePool with ceil_mode moves windows or raises.

ONNX (opset 22 on) and torch agree: with ceil_mode the output is
``ceil((L + pads - k) / s) + 1``, less one if the last window would start in the right
padding, and the cells that the last window reaches past ``L + pads`` are not counted. The
reference evaluator (``op_pool_common.py``) pads the input for those extra cells, but puts
half of them *before* the input (``pads[dim] += extra_pad // 2``), so every window moves
left when the overhang is 2 or more; and its window loop still counts the dropped last
window, so it writes past the output and raises IndexError whenever a window is dropped.
Related: onnx#4958 (ceil_mode AveragePool odd in the reference evaluator).

Run: python docs/bugs/onnx_reference_avgpool_ceil.py  (exits 1 while the bug is there)
"""

import math
import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator


def avg_pool_1d(x, k, s, pads, count_include_pad):
    """torch's and ONNX's ceil_mode average pooling of one axis, by its definition."""
    length = x.shape[-1]
    out = math.ceil((length + sum(pads) - k) / s) + 1
    if (out - 1) * s >= length + pads[0]:
        out -= 1
    y = np.empty(x.shape[:-1] + (out,))
    for o in range(out):
        start = o * s - pads[0]
        real = range(max(start, 0), min(start + k, length))
        counted = min(start + k, length + pads[1]) - start if count_include_pad else len(real)
        y[..., o] = x[..., real.start:real.stop].sum(-1) / counted
    return y


def reference(x, k, s, pads, count_include_pad):
    graph = helper.make_graph(
        [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[k], strides=[s],
                          pads=list(pads), ceil_mode=1,
                          count_include_pad=int(count_include_pad))], "g",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    return ReferenceEvaluator(model).run(None, {"x": x})[0]


warnings.simplefilter("ignore", RuntimeWarning)  # the evaluator averages empty windows
x = np.arange(1.0, 8.0)[None, None]  # (1, 1, 7): 1 .. 7
wrong = False
for length, k, s, pads, cip, what in [
        (5, 4, 3, (0, 0), False, "overhang 2: windows move one cell left"),
        (7, 2, 1, (1, 2), False, "the last window is dropped: IndexError")]:
    xi = x[..., :length]
    expected = avg_pool_1d(xi, k, s, pads, cip)
    try:
        got = reference(xi, k, s, pads, cip)
        ok = got.shape == expected.shape and np.allclose(got, expected)
        verdict = f"got {got.ravel()}, expected {expected.ravel()}"
    except Exception as exc:  # noqa: BLE001 - the bug shows as an exception on these shapes
        ok, verdict = False, f"raises {type(exc).__name__}: {exc}"
    wrong |= not ok
    print(f"onnx {onnx.__version__} AveragePool L={length} k={k} s={s} pads={pads} ceil_mode=1 "
          f"count_include_pad={int(cip)} ({what}): {verdict}")
raise SystemExit(1 if wrong else 0)
