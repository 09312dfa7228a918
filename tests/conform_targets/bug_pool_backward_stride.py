"""Planted bug: pool_backward ignores the stride for its windows (``vert_start = h``)."""

import numpy as np

from notebook_loops import NotebookCNN, export


class Impl(NotebookCNN):
    def pool_backward(self, dA, cache, mode="max"):
        (A_prev, hparameters) = cache
        f = hparameters["f"]
        m, n_H, n_W, n_C = dA.shape
        dA_prev = np.zeros(A_prev.shape)
        for i in range(m):
            for h in range(n_H):
                for w in range(n_W):
                    for c in range(n_C):
                        vert_start, horiz_start = h, w  # BUG: should be h * stride, w * stride
                        window = (i, slice(vert_start, vert_start + f),
                                  slice(horiz_start, horiz_start + f), c)
                        if mode == "max":
                            mask = self.create_mask_from_window(A_prev[window])
                            dA_prev[window] += mask * dA[i, h, w, c]
                        else:
                            dA_prev[window] += self.distribute_value(dA[i, h, w, c], (f, f))
        return dA_prev


globals().update(export(Impl()))
