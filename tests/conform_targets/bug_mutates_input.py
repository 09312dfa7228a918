"""Planted bug: average pool_backward scales dA in place (right values, but the caller's dA changes)."""

import numpy as np

from notebook_loops import NotebookCNN, export


class Impl(NotebookCNN):
    def pool_backward(self, dA, cache, mode="max"):
        if mode != "average":
            return super().pool_backward(dA, cache, mode)
        (A_prev, hparameters) = cache
        stride = hparameters["stride"]
        f = hparameters["f"]
        dA /= f * f  # BUG: modifies the caller's array
        m, n_H, n_W, n_C = dA.shape
        dA_prev = np.zeros(A_prev.shape)
        for h in range(n_H):
            for w in range(n_W):
                vs, hs = h * stride, w * stride
                dA_prev[:, vs:vs + f, hs:hs + f, :] += dA[:, h:h + 1, w:w + 1, :]
        return dA_prev


globals().update(export(Impl()))
