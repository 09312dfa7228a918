"""Planted bug: conv_forward's window corners take the row from w and the column from h (right
on square outputs only, a slice off the edge otherwise)."""

import numpy as np

from notebook_loops import NotebookCNN, export


class Impl(NotebookCNN):
    def conv_forward(self, A_prev, W, b, hparameters):
        (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
        (f, f, n_C_prev, n_C) = W.shape
        stride, pad = hparameters["stride"], hparameters["pad"]
        n_H = self.out_size(n_H_prev, f, stride, pad)
        n_W = self.out_size(n_W_prev, f, stride, pad)
        Z = np.zeros((m, n_H, n_W, n_C))
        A_prev_pad = self.zero_pad(A_prev, pad)
        for i in range(m):
            for h in range(n_H):
                for w in range(n_W):
                    vert_start, horiz_start = w * stride, h * stride  # BUG: h and w swapped
                    a_slice = A_prev_pad[i, vert_start:vert_start + f,
                                         horiz_start:horiz_start + f, :]
                    for c in range(n_C):
                        Z[i, h, w, c] = self.conv_single_step(a_slice, W[:, :, :, c],
                                                              b[:, :, :, c])
        return Z, (A_prev, W, b, hparameters)


globals().update(export(Impl()))
