"""Seen in the wild: pool_forward makes its output with dtype=np.float, removed in NumPy 1.24."""

import numpy as np

from notebook_loops import NotebookCNN, export


class Impl(NotebookCNN):
    def pool_forward(self, A_prev, hparameters, mode="max"):
        (m, n_H_prev, n_W_prev, n_C) = A_prev.shape
        f, stride = hparameters["f"], hparameters["stride"]
        n_H = int(1 + (n_H_prev - f) / stride)
        n_W = int(1 + (n_W_prev - f) / stride)
        A = np.zeros((m, n_H, n_W, n_C), dtype=np.float)  # np.float: gone since NumPy 1.24
        for h in range(n_H):
            for w in range(n_W):
                win = A_prev[:, h * stride:h * stride + f, w * stride:w * stride + f, :]
                A[:, h, w, :] = win.max(axis=(1, 2)) if mode == "max" else win.mean(axis=(1, 2))
        return A, (A_prev, hparameters)


globals().update(export(Impl()))
