"""Planted bug: conv_backward ignores the stride (the notebook listing's ``vert_start = h``)."""

import numpy as np

from notebook_loops import NotebookCNN, export


class Impl(NotebookCNN):
    def conv_backward(self, dZ, cache):
        (A_prev, W, b, hparameters) = cache
        (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
        (f, f, n_C_prev, n_C) = W.shape
        pad = hparameters["pad"]
        (m, n_H, n_W, n_C) = dZ.shape
        dA_prev = np.zeros((m, n_H_prev, n_W_prev, n_C_prev))
        dW = np.zeros((f, f, n_C_prev, n_C))
        db = np.zeros((1, 1, 1, n_C))
        A_prev_pad = self.zero_pad(A_prev, pad)
        dA_prev_pad = self.zero_pad(dA_prev, pad)
        for i in range(m):
            for h in range(n_H):
                for w in range(n_W):
                    for c in range(n_C):
                        vert_start, horiz_start = h, w  # BUG: should be h * stride, w * stride
                        window = (i, slice(vert_start, vert_start + f),
                                  slice(horiz_start, horiz_start + f))
                        dA_prev_pad[window] += W[:, :, :, c] * dZ[i, h, w, c]
                        dW[:, :, :, c] += A_prev_pad[window] * dZ[i, h, w, c]
                        db[:, :, :, c] += dZ[i, h, w, c]
        dA_prev = dA_prev_pad[:, pad:pad + n_H_prev, pad:pad + n_W_prev, :]
        return dA_prev, dW, db


globals().update(export(Impl()))
