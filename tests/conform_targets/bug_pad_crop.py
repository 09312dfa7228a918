"""Planted bug: the notebook's hint ``da_prev_pad[pad:-pad, pad:-pad, :]``, empty when pad == 0."""

from notebook_loops import NotebookCNN, export


class Impl(NotebookCNN):
    def crop(self, da_prev_pad, pad, n_H_prev, n_W_prev):
        return da_prev_pad[pad:-pad, pad:-pad, :]  # BUG: [0:-0] is empty


globals().update(export(Impl()))
