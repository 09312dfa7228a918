"""Planted bug: distribute_value divides by n_H + n_W instead of n_H * n_W (right for f=2 only)."""

import numpy as np

from notebook_loops import NotebookCNN, export


class Impl(NotebookCNN):
    def distribute_value(self, dz, shape):
        (n_H, n_W) = shape
        average = dz / (n_H + n_W)  # BUG: the count is n_H * n_W
        return np.ones(shape) * average


globals().update(export(Impl()))
