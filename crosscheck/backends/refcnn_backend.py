"""refcnn as a backend: the vectorized functional core, and the loop oracle."""

from __future__ import annotations

import numpy as np

import refcnn
from crosscheck.backends.base import output_names
from crosscheck.cases import Case, Inputs

_NUMPY_DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16}


class RefcnnBackend:
    """refcnn's vectorized functional core (``refcnn.conv2d`` and friends).

    ``accumulate="native"`` sums in the inputs' precision (issue: speed option).
    """

    name = "refcnn"

    def __init__(self, accumulate: str = "float64"):
        self.accumulate = accumulate
        if accumulate != "float64":
            self.name = f"refcnn.{accumulate}"

    def version(self) -> str:
        return refcnn.__version__

    def unsupported(self, case: Case) -> str | None:
        if case.dtype not in _NUMPY_DTYPES:
            return f"NumPy has no {case.dtype} dtype"
        return None

    def run(self, case: Case, inputs: Inputs) -> dict[str, np.ndarray]:
        dt = _NUMPY_DTYPES[case.dtype]
        x = inputs.x.astype(dt)
        opts = case.options()
        if case.is_conv:
            w = inputs.w.astype(dt)
            b = None if inputs.b is None else inputs.b.astype(dt)
            if case.direction == "forward":
                return {"y": _f64(refcnn.conv2d(x, w, b, accumulate=self.accumulate, **opts))}
            dx, dw, db = refcnn.conv2d_backward(inputs.dy.astype(dt), x, w, b,
                                                accumulate=self.accumulate, **opts)
            out = {"dx": _f64(dx), "dw": _f64(dw), "db": _f64(db)}
            return {k: out[k] for k in output_names(case)}
        fwd, bwd = {
            "max_pool2d": (refcnn.max_pool2d, refcnn.max_pool2d_backward),
            "avg_pool2d": (refcnn.avg_pool2d, refcnn.avg_pool2d_backward),
        }[case.op]
        if case.direction == "forward":
            return {"y": _f64(fwd(x, **opts))}
        return {"dx": _f64(bwd(inputs.dy.astype(dt), x, **opts))}


class LoopsBackend:
    """``refcnn.loops``: the notebook API as explicit loops, through its hparameters."""

    name = "refcnn.loops"

    def version(self) -> str:
        return refcnn.__version__

    def unsupported(self, case: Case) -> str | None:
        if case.dtype not in _NUMPY_DTYPES:
            return f"NumPy has no {case.dtype} dtype"
        outputs = case.n * case.h * case.w * case.c_out * case.reduction_length()
        if outputs > 200_000:
            return "too large for the loop oracle (it is for small shapes)"
        return None

    def run(self, case: Case, inputs: Inputs) -> dict[str, np.ndarray]:
        from refcnn import loops

        dt = _NUMPY_DTYPES[case.dtype]
        x = inputs.x.astype(dt)
        hp = case.hparameters()
        if case.is_conv:
            w = inputs.w.astype(dt)
            # The notebook API always has a bias; a zero bias gives a bias-free conv.
            b = (inputs.b if inputs.b is not None else np.zeros(case.c_out)).astype(dt)
            z, cache = loops.conv_forward(x, w, b.reshape(1, 1, 1, -1), hp)
            if case.direction == "forward":
                return {"y": _f64(z)}
            dx, dw, db = loops.conv_backward(inputs.dy.astype(dt), cache)
            out = {"dx": _f64(dx), "dw": _f64(dw), "db": _f64(db).reshape(-1)}
            return {k: out[k] for k in output_names(case)}
        mode = "max" if case.op == "max_pool2d" else "average"
        a, cache = loops.pool_forward(x, hp, mode=mode)
        if case.direction == "forward":
            return {"y": _f64(a)}
        return {"dx": _f64(loops.pool_backward(inputs.dy.astype(dt), cache, mode=mode))}


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)
