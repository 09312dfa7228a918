"""Argument checks and geometry of one rank-generic call (1 to 3 spatial dims), shared by
:mod:`refcnn.functional` and the fast path (:mod:`refcnn.fast.nd`,
:mod:`refcnn.fast.transpose`), so that both refuse the same arguments in the same words.

Everything here works on sizes alone: no array is read or allocated. Each check raises a
``TypeError`` for the wrong kind of object or a ``ValueError`` for a wrong value, naming
the parameter and the expected form.
"""

from __future__ import annotations

from types import SimpleNamespace

from refcnn import geometry
from refcnn._params import as_pads, as_tuple, check_array, check_int

__all__ = ["check_input", "check_grad", "check_bias", "check_weights", "check_fits",
           "conv_geometry", "transpose_geometry", "PAD_WORDS"]

#: The padding words a conv or pool accepts (a transposed conv: 'valid' alone).
PAD_WORDS = ("same", "same_lower", "valid")


def check_input(x, name, layout):
    """x is a floating array with 1 to 3 spatial dims; returns that number (its rank)."""
    check_array(x, name)
    if not 3 <= x.ndim <= 5:
        raise ValueError(f"{name} must have shape {layout} with 1 to 3 spatial dims "
                         f"(3 to 5 dimensions), got shape {x.shape}")
    return x.ndim - 2


def check_grad(dy, shape):
    """dy is a floating array of the forward output's shape."""
    check_array(dy, "dy")
    if dy.shape != tuple(shape):
        raise ValueError(f"dy must have the forward output's shape {tuple(shape)}, "
                         f"got {dy.shape}")


def check_bias(b, c_out, rank):
    if b is None:
        return
    check_array(b, "b")
    if b.shape not in ((c_out,), (1,) * (rank + 1) + (c_out,)):
        raise ValueError(f"b must have shape ({c_out},) or {(1,) * (rank + 1) + (c_out,)} to "
                         f"match the {c_out} output channels, got {b.shape}")


def check_weights(w, rank, layout):
    check_array(w, "w")
    if w.ndim != rank + 2:
        raise ValueError(f"w must be {rank + 2}-dimensional {layout} for x with {rank} "
                         f"spatial dims, got shape {w.shape}")
    if min(w.shape[:-2]) < 1:
        raise ValueError(f"w must have a kernel of at least 1 on every axis, got shape "
                         f"{w.shape}")


def check_fits(out, size, kernel, dilation, pads):
    if min(out) < 1:
        raise ValueError(f"the kernel {kernel} with dilation {dilation} is larger than the "
                         f"padded input: x spatial size {size} padded by {pads}")


def conv_geometry(x, w, b, stride, padding, dilation, groups):
    """A conv call's normalised options and output shape: ``stride``, ``pads`` (per side),
    ``dilation`` (tuples, one entry per spatial axis), ``groups`` and ``out_shape``."""
    rank = check_input(x, "x", "(N, *spatial, C_in)")
    layout = "(*kernel, C_in // groups, C_out)"
    check_weights(w, rank, layout)
    groups = check_int(groups, "groups")
    size, c_in = x.shape[1:-1], x.shape[-1]
    kernel, (cg, c_out) = w.shape[:-2], w.shape[-2:]
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide both the input channels ({c_in}) "
                         f"and the output channels ({c_out})")
    if cg * groups != c_in:
        raise ValueError(f"w must have shape {layout} = (*kernel, {c_in // groups}, C_out) "
                         f"for x with {c_in} channels and groups={groups}, got {w.shape}")
    check_bias(b, c_out, rank)
    stride = as_tuple(stride, "stride", rank)
    dilation = as_tuple(dilation, "dilation", rank)
    pads = geometry.resolve_pads(as_pads(padding, "padding", rank, PAD_WORDS), size, kernel,
                                 stride, dilation)
    out = tuple(geometry.conv_out_size(m, k, s, d, p)
                for m, k, s, d, p in zip(size, kernel, stride, dilation, pads))
    check_fits(out, size, kernel, dilation, pads)
    return SimpleNamespace(stride=stride, pads=pads, dilation=dilation, groups=groups,
                     out_shape=(x.shape[0], *out, c_out))


def transpose_geometry(x, w, b, stride, padding, output_padding, dilation, groups):
    """A transposed conv call's normalised options and output shape, as
    :func:`conv_geometry`'s plus ``output_padding``."""
    rank = check_input(x, "x", "(N, *spatial, C_in)")
    layout = "(*kernel, C_out // groups, C_in)"
    check_weights(w, rank, layout)
    groups = check_int(groups, "groups")
    size, c_in = x.shape[1:-1], x.shape[-1]
    kernel, c_out = w.shape[:-2], w.shape[-2] * groups
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide the input channels ({c_in})")
    if w.shape[-1] != c_in:
        raise ValueError(f"w must have shape {layout} = (*kernel, C_out // groups, {c_in}) "
                         f"for x with {c_in} channels, got {w.shape}")
    check_bias(b, c_out, rank)
    stride = as_tuple(stride, "stride", rank)
    dilation = as_tuple(dilation, "dilation", rank)
    output_padding = as_tuple(output_padding, "output_padding", rank, 0)
    for axis, (q, s, d) in enumerate(zip(output_padding, stride, dilation)):
        if q >= max(s, d):
            raise ValueError(f"output_padding must be smaller than max(stride, dilation) on "
                             f"every axis, got output_padding={output_padding} with "
                             f"stride={stride}, dilation={dilation} (spatial axis {axis})")
    pads = geometry.resolve_pads(as_pads(padding, "padding", rank, ("valid",)), size, kernel,
                                 stride, dilation)
    out = tuple(geometry.conv_transpose_out_size(m, k, s, d, p, q) for m, k, s, d, p, q in
                zip(size, kernel, stride, dilation, pads, output_padding))
    if min(out) < 1:
        raise ValueError(f"padding {pads} leaves no output: conv_transpose of x spatial size "
                         f"{size} with kernel {kernel}, stride {stride}, dilation {dilation} "
                         f"and output_padding {output_padding} gives size {out}")
    return SimpleNamespace(stride=stride, pads=pads, dilation=dilation, groups=groups,
                     output_padding=output_padding, out_shape=(x.shape[0], *out, c_out))
