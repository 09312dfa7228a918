"""A worked example: an NCHW convolution kernel checked by crosscheck in about 40 lines.

Pretend :func:`my_conv2d_nchw` is your kernel (a C extension, a GPU kernel behind
a Python binding, ...): NCHW data, OIHW weights, symmetric padding, groups. The
backend below is all the plumbing crosscheck needs; the driver moves channels
first, casts to the case's dtype, refuses what the table lacks with a reason,
and reads the outputs back. Run it with::

    crosscheck run --backends refcnn,docs.example_backend:MyBackend --ops conv2d --cases smoke

(from the repository root, so that ``docs`` imports as a package directory).
"""

from __future__ import annotations

import numpy as np

from crosscheck.backends.driver import OpImpl, TableBackend


def my_conv2d_nchw(x, w, b, stride, padding, dilation, groups):
    """The kernel under test: direct convolution, one multiply-add per tap."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, o, oh, ow), x.dtype)
    per = o // groups
    for k in range(o):
        g = k // per
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg, i * dh:i * dh + sh * oh:sh,
                           j * dw:j * dw + sw * ow:sw]
                y[:, k] += np.einsum("nchw,c->nhw", patch, w[k, :, i, j])
    return y if b is None else y + b[None, :, None, None]


def _conv(case, x, w, b):
    pads = case.padding
    return my_conv2d_nchw(x, w, b, case.stride, tuple(p for p, _ in pads), case.dilation,
                          case.groups)


def _conv_unsupported(case):
    if case.rank != 2:
        return "my kernel is 2-D only"
    if isinstance(case.padding, str) or any(a != b for a, b in case.padding):
        return "my kernel takes symmetric explicit padding only"
    return None


class MyBackend(TableBackend):
    """The example kernel as a crosscheck backend (forward only: no vjp)."""

    name = "mykernel"
    channels_first = True
    dtypes = {"float64": np.float64, "float32": np.float32}
    ops = {"conv": OpImpl(_conv, unsupported=_conv_unsupported)}

    def version(self) -> str:
        return "0.1-example"

    def to_framework(self, a, dtype):
        return np.array(a, dtype=dtype, copy=True)
