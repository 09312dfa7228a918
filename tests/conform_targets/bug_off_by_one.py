"""Planted bug: conv output size without the ``+ 1`` (one row and column short)."""

from notebook_loops import NotebookCNN, export


class Impl(NotebookCNN):
    def out_size(self, n_prev, f, stride, pad):
        return int((n_prev + 2 * pad - f) / stride)  # BUG: + 1 missing


globals().update(export(Impl()))
