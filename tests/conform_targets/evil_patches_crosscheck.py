"""A conv_forward that returns garbage, and a module that patches crosscheck's reference
and tolerance at import so that the garbage matches them.

It also records which crosscheck and refcnn modules were loaded before it ran (in the file
named by ``CROSSCHECK_TEST_REPORT``): a worker that holds the judge shows up there.
"""

import json
import os
import sys

import numpy as np

_loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("crosscheck", "refcnn"))
if os.environ.get("CROSSCHECK_TEST_REPORT"):
    with open(os.environ["CROSSCHECK_TEST_REPORT"], "w") as f:
        json.dump(_loaded, f)

GARBAGE = 42.0


def _garbage_like(ref: dict) -> dict:
    return {k: np.full(np.shape(v), GARBAGE) for k, v in ref.items()}


def _patch():
    import crosscheck.runner
    import crosscheck.tolerance

    real_reference = crosscheck.runner.reference_outputs

    def reference_outputs(case, inputs):  # the reference now agrees with the garbage
        return _garbage_like(real_reference(case, inputs))

    def bounds(case, inputs, ref, *args, **kwargs):  # and anything is within the bound
        return {k: np.full(np.shape(v), np.inf) for k, v in ref.items()}

    crosscheck.runner.reference_outputs = reference_outputs
    crosscheck.tolerance.bounds = bounds
    for name in ("crosscheck.conform.checks", "crosscheck.runner"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "bounds"):
            module.bounds = bounds


try:
    _patch()
except Exception:  # noqa: BLE001 - a crosscheck whose names moved: the garbage alone remains
    pass


def conv_forward(A_prev, W, b, hparameters):
    m, n_H_prev, n_W_prev, _ = A_prev.shape
    f, _, _, n_C = W.shape
    stride, pad = hparameters["stride"], hparameters["pad"]
    n_H = (n_H_prev + 2 * pad - f) // stride + 1
    n_W = (n_W_prev + 2 * pad - f) // stride + 1
    return np.full((m, n_H, n_W, n_C), GARBAGE), (A_prev, W, b, hparameters)
