"""The frameworks' geometry, per axis and for any rank, written independently of refcnn.

Every framework backend and the case type take output sizes, 'same' splits and
adaptive bins from here and never from refcnn, so a geometry bug in refcnn (the
reference) shows up as a disagreement instead of being shared by every side.
The facts and their sources are in ``docs/semantics.md``.
"""

from __future__ import annotations

import math


def same_pads(size: int, k: int, stride: int, dilation: int,
              lower: bool = False) -> tuple[int, int]:
    """'same' padding ``(before, after)`` of one axis: ``ceil(size / stride)`` outputs.

    The odd pixel goes at the end (TF, JAX ``'SAME'``, ONNX ``SAME_UPPER``) or, with
    ``lower``, at the start (JAX ``'SAME_LOWER'``, ONNX ``SAME_LOWER``).
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (k - 1) + 1 - size, 0)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


def explicit_pads(case) -> tuple[tuple[int, int], ...]:
    """Per-side pads ``((before, after), ...)``, one pair per spatial axis, for any padding form."""
    padding = case.padding
    if padding == "valid":
        return ((0, 0),) * case.rank
    if padding in ("same", "same_lower"):
        return tuple(same_pads(n, k, s, d, lower=padding == "same_lower") for n, k, s, d in
                     zip(case.spatial, case.kernel, case.stride, case.dilation))
    return tuple(tuple(p) for p in padding)


def conv_out(size: int, k: int, stride: int, dilation: int, pads) -> int:
    """``floor((size + before + after - dilation*(k-1) - 1) / stride) + 1`` (may be <= 0)."""
    return (size + pads[0] + pads[1] - dilation * (k - 1) - 1) // stride + 1


def conv_transpose_out(size: int, k: int, stride: int, dilation: int, pads,
                       output_padding: int) -> int:
    """torch's rule: ``(size-1)*stride - before - after + dilation*(k-1) + output_padding + 1``."""
    return (size - 1) * stride - pads[0] - pads[1] + dilation * (k - 1) + output_padding + 1


def pool_out(size: int, k: int, stride: int, dilation: int, pads, ceil_mode: bool) -> int:
    """Pooling output size; ceil_mode rounds up, then drops a window starting in the right pad."""
    extent = size + pads[0] + pads[1] - (dilation * (k - 1) + 1)
    if not ceil_mode:
        return extent // stride + 1
    out = math.ceil(extent / stride) + 1
    if (out - 1) * stride >= size + pads[0]:
        out -= 1
    return out


def pool_overhang(size: int, k: int, stride: int, dilation: int, pads, ceil_mode: bool) -> int:
    """Cells past ``size + before + after`` that ceil_mode's last window reaches (never counted)."""
    out = pool_out(size, k, stride, dilation, pads, ceil_mode)
    needed = (out - 1) * stride + dilation * (k - 1) + 1
    return max(needed - (size + pads[0] + pads[1]), 0)


def adaptive_bins(size: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive-pooling bins of one axis: ``[floor(i*size/out), ceil((i+1)*size/out))``."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def out_spatial(case) -> tuple[int, ...]:
    """Output spatial shape of ``case`` (any op of the table, any rank)."""
    family = case.family
    if family.startswith("adaptive"):
        return tuple(case.output_size)
    pads = explicit_pads(case)
    if family == "conv":
        return tuple(conv_out(n, k, s, d, p) for n, k, s, d, p in
                     zip(case.spatial, case.kernel, case.stride, case.dilation, pads))
    if family == "conv_transpose":
        return tuple(conv_transpose_out(n, k, s, d, p, q) for n, k, s, d, p, q in
                     zip(case.spatial, case.kernel, case.stride, case.dilation, pads,
                         case.output_padding))
    return tuple(pool_out(n, k, s, d, p, case.ceil_mode) for n, k, s, d, p in
                 zip(case.spatial, case.kernel, case.stride, case.dilation, pads))
