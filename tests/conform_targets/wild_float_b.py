"""Seen in the wild: conv_single_step casts b with float(), as the notebook's comment says.

NumPy 2 refuses float() of the (1, 1, 1) array b ("only 0-dimensional arrays can be converted
to Python scalars"), so conv_single_step raises, and conv_forward with it.
"""

import numpy as np

from notebook_loops import NotebookCNN, export


class Impl(NotebookCNN):
    def conv_single_step(self, a_slice_prev, W, b):
        s = np.multiply(a_slice_prev, W)
        Z = np.sum(s)
        Z = Z + float(b)  # the notebook's "Cast b to a float()": refused on NumPy 2
        return Z


globals().update(export(Impl()))
