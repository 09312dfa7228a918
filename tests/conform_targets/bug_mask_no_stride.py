"""Planted bug: the max-pool mask is taken from an unstrided window, the gradient put in the right one."""

import numpy as np

from notebook_loops import NotebookCNN, export


class Impl(NotebookCNN):
    def pool_backward(self, dA, cache, mode="max"):
        (A_prev, hparameters) = cache
        stride = hparameters["stride"]
        f = hparameters["f"]
        m, n_H, n_W, n_C = dA.shape
        dA_prev = np.zeros(A_prev.shape)
        for i in range(m):
            for h in range(n_H):
                for w in range(n_W):
                    for c in range(n_C):
                        vs, hs = h * stride, w * stride
                        if mode == "max":
                            a_prev_slice = A_prev[i, h:h + f, w:w + f, c]  # BUG: no stride
                            mask = self.create_mask_from_window(a_prev_slice)
                            dA_prev[i, vs:vs + f, hs:hs + f, c] += mask * dA[i, h, w, c]
                        else:
                            dA_prev[i, vs:vs + f, hs:hs + f, c] += self.distribute_value(
                                dA[i, h, w, c], (f, f))
        return dA_prev


globals().update(export(Impl()))
