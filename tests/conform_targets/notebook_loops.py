"""A correct plain-loop implementation of the notebook API, written the notebook's way.

The methods live on a class so that each planted-bug target in this folder can
override exactly one of them (and inherit the rest, including the helpers the
other methods call through ``self``). The module also exports the functions of
one instance, so ``crosscheck conform tests/conform_targets/notebook_loops.py``
works like a plain notebook module.
"""

import numpy as np


class NotebookCNN:
    def zero_pad(self, X, pad):
        return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="constant",
                      constant_values=0)

    def conv_single_step(self, a_slice_prev, W, b):
        s = np.multiply(a_slice_prev, W)
        Z = np.sum(s)
        return Z + float(np.asarray(b).reshape(()))

    def out_size(self, n_prev, f, stride, pad):
        return int((n_prev + 2 * pad - f) / stride) + 1

    def conv_forward(self, A_prev, W, b, hparameters):
        (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
        (f, f, n_C_prev, n_C) = W.shape
        stride = hparameters["stride"]
        pad = hparameters["pad"]
        n_H = self.out_size(n_H_prev, f, stride, pad)
        n_W = self.out_size(n_W_prev, f, stride, pad)
        Z = np.zeros((m, n_H, n_W, n_C))
        A_prev_pad = self.zero_pad(A_prev, pad)
        for i in range(m):
            a_prev_pad = A_prev_pad[i]
            for h in range(n_H):
                for w in range(n_W):
                    for c in range(n_C):
                        vert_start = h * stride
                        horiz_start = w * stride
                        a_slice_prev = a_prev_pad[vert_start:vert_start + f,
                                                  horiz_start:horiz_start + f, :]
                        Z[i, h, w, c] = self.conv_single_step(a_slice_prev, W[:, :, :, c],
                                                              b[:, :, :, c])
        cache = (A_prev, W, b, hparameters)
        return Z, cache

    def conv_backward(self, dZ, cache):
        (A_prev, W, b, hparameters) = cache
        (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
        (f, f, n_C_prev, n_C) = W.shape
        stride = hparameters["stride"]
        pad = hparameters["pad"]
        (m, n_H, n_W, n_C) = dZ.shape
        dA_prev = np.zeros((m, n_H_prev, n_W_prev, n_C_prev))
        dW = np.zeros((f, f, n_C_prev, n_C))
        db = np.zeros((1, 1, 1, n_C))
        A_prev_pad = self.zero_pad(A_prev, pad)
        dA_prev_pad = self.zero_pad(dA_prev, pad)
        for i in range(m):
            a_prev_pad = A_prev_pad[i]
            da_prev_pad = dA_prev_pad[i]
            for h in range(n_H):
                for w in range(n_W):
                    for c in range(n_C):
                        vert_start = h * stride
                        vert_end = vert_start + f
                        horiz_start = w * stride
                        horiz_end = horiz_start + f
                        a_slice = a_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :]
                        da_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :] += (
                            W[:, :, :, c] * dZ[i, h, w, c])
                        dW[:, :, :, c] += a_slice * dZ[i, h, w, c]
                        db[:, :, :, c] += dZ[i, h, w, c]
            dA_prev[i, :, :, :] = self.crop(da_prev_pad, pad, n_H_prev, n_W_prev)
        return dA_prev, dW, db

    def crop(self, da_prev_pad, pad, n_H_prev, n_W_prev):
        return da_prev_pad[pad:pad + n_H_prev, pad:pad + n_W_prev, :]

    def pool_forward(self, A_prev, hparameters, mode="max"):
        (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
        f = hparameters["f"]
        stride = hparameters["stride"]
        n_H = int(1 + (n_H_prev - f) / stride)
        n_W = int(1 + (n_W_prev - f) / stride)
        n_C = n_C_prev
        A = np.zeros((m, n_H, n_W, n_C))
        for i in range(m):
            for h in range(n_H):
                for w in range(n_W):
                    for c in range(n_C):
                        vert_start = h * stride
                        horiz_start = w * stride
                        a_prev_slice = A_prev[i, vert_start:vert_start + f,
                                              horiz_start:horiz_start + f, c]
                        if mode == "max":
                            A[i, h, w, c] = np.max(a_prev_slice)
                        elif mode == "average":
                            A[i, h, w, c] = self.average(a_prev_slice)
        cache = (A_prev, hparameters)
        return A, cache

    def average(self, a_prev_slice):
        return np.mean(a_prev_slice)

    def create_mask_from_window(self, x):
        return x == np.max(x)

    def distribute_value(self, dz, shape):
        (n_H, n_W) = shape
        average = dz / (n_H * n_W)
        return np.ones(shape) * average

    def pool_backward(self, dA, cache, mode="max"):
        (A_prev, hparameters) = cache
        stride = hparameters["stride"]
        f = hparameters["f"]
        m, n_H, n_W, n_C = dA.shape
        dA_prev = np.zeros(A_prev.shape)
        for i in range(m):
            a_prev = A_prev[i]
            for h in range(n_H):
                for w in range(n_W):
                    for c in range(n_C):
                        vert_start = h * stride
                        vert_end = vert_start + f
                        horiz_start = w * stride
                        horiz_end = horiz_start + f
                        if mode == "max":
                            a_prev_slice = a_prev[vert_start:vert_end, horiz_start:horiz_end, c]
                            mask = self.create_mask_from_window(a_prev_slice)
                            dA_prev[i, vert_start:vert_end, horiz_start:horiz_end, c] += (
                                np.multiply(mask, dA[i, h, w, c]))
                        elif mode == "average":
                            da = dA[i, h, w, c]
                            dA_prev[i, vert_start:vert_end, horiz_start:horiz_end, c] += (
                                self.distribute_value(da, (f, f)))
        return dA_prev


def export(impl):
    """The notebook functions of ``impl`` as a dict, for a module's globals()."""
    names = ("zero_pad", "conv_single_step", "conv_forward", "conv_backward", "pool_forward",
             "pool_backward", "create_mask_from_window", "distribute_value")
    return {name: getattr(impl, name) for name in names}


globals().update(export(NotebookCNN()))
