"""Output sizes, 'same' padding and pooling divisors: the conventions refcnn follows.

Everything here is per spatial axis, so it serves 1-, 2- and 3-D alike; the
checks (output sizes, :func:`empty_window`) work on sizes alone, in constant time,
before any array is allocated.
refcnn follows torch wherever frameworks differ (see ``docs/semantics.md``):

* 'same' puts the odd padding pixel at the end (bottom/right), as TF, JAX
  ``'SAME'`` and ONNX ``SAME_UPPER`` do, for any stride and dilation;
  ``'same_lower'`` (JAX ``'SAME_LOWER'``, ONNX ``SAME_LOWER``) puts it first.
* ceil_mode rounds the output size up, then drops the last window if it would
  start in the right padding (pytorch PR #120335).
* The average-pool divisor with ``count_include_pad=True`` counts explicit
  padding but never the cells past ``H + pad`` that ceil_mode adds.
"""

from __future__ import annotations

import numpy as np

from refcnn._params import as_padding


def same_pads(size: int, f: int, stride: int, dilation: int,
              lower: bool = False) -> tuple[int, int]:
    """Padding ``(before, after)`` that gives ``ceil(size / stride)`` outputs.

    The total is ``max((out - 1) * stride + dilation * (f - 1) + 1 - size, 0)``;
    the odd pixel goes after (bottom/right), as in TF and JAX ``'SAME'``, or
    before with ``lower`` (JAX ``'SAME_LOWER'``).
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (f - 1) + 1 - size, 0)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


def resolve_pads(padding, sizes, kernel, stride, dilation) -> tuple[tuple[int, int], ...]:
    """Per-side padding, one ``(before, after)`` per axis, of any rank.

    ``padding`` is what :func:`refcnn._params.as_pads` returns: ``"same"``,
    ``"same_lower"``, ``"valid"`` or per-side pairs (returned as they are).
    """
    if padding == "valid":
        return ((0, 0),) * len(sizes)
    if padding in ("same", "same_lower"):
        return tuple(same_pads(n, f, s, d, lower=padding == "same_lower")
                     for n, f, s, d in zip(sizes, kernel, stride, dilation))
    return tuple(padding)


def resolve_padding(padding, in_hw, kernel, stride, dilation):
    """Per-side padding ``((top, bottom), (left, right))`` for any 2-D padding spec."""
    return resolve_pads(as_padding(padding), in_hw, kernel, stride, dilation)


def conv_out_size(size: int, f: int, stride: int, dilation: int, pads) -> int:
    """``floor((size + before + after - dilation*(f-1) - 1) / stride) + 1`` (may be <= 0)."""
    span = dilation * (f - 1) + 1
    return (size + pads[0] + pads[1] - span) // stride + 1


def pool_out_size(size: int, f: int, stride: int, dilation: int, pads, ceil_mode: bool) -> int:
    """Pooling output size, with torch's ceil_mode rule.

    With ``ceil_mode`` the size rounds up, and the last window is dropped when it
    would start in the right padding: ``(out - 1) * stride >= size + before``.
    """
    span = dilation * (f - 1) + 1
    extent = size + pads[0] + pads[1] - span
    if not ceil_mode:
        return extent // stride + 1
    out = -(-extent // stride) + 1
    if (out - 1) * stride >= size + pads[0]:
        out -= 1
    return out


def conv_transpose_out_size(size: int, f: int, stride: int, dilation: int, pads,
                            output_padding: int = 0) -> int:
    """torch's rule: ``(size-1)*stride - before - after + dilation*(f-1) + output_padding + 1``.

    It is the input size of the conv whose output has ``size`` positions, the
    ``output_padding`` extra cells (``< max(stride, dilation)``) choosing among
    the input sizes that a strided conv maps to the same output size.
    """
    return (size - 1) * stride - pads[0] - pads[1] + dilation * (f - 1) + output_padding + 1


def empty_window(size: int, out: int, f: int, stride: int, dilation: int, pads) -> int | None:
    """The index of a window with no tap on a real input cell, or None if there is none.

    Real cells are ``[before, before + size)`` of the padded axis. Windows move
    monotonically, so the first and the last window bound the answer, except that
    with ``dilation > size`` a middle window can step over every real cell. The
    middle windows then are checked one by one, but only those that start at or
    before the first real cell, and the loop ends at the first failure: passing
    windows start on distinct residues modulo ``dilation`` inside a range of
    ``size`` values, so it runs at most ``size + 1`` times whatever the padding.
    """
    if out < 1:
        return None
    if (out - 1) * stride - pads[0] > size - 1:
        return out - 1
    if pads[0] > (f - 1) * dilation:
        return 0
    if size >= dilation:
        return None
    for i in range(min(pads[0] // stride, out - 1) + 1):
        # Window i starts ``pads[0] - i*stride`` cells before the first real one; its
        # only tap that can reach a real cell is the first at or after that cell.
        if (i * stride - pads[0]) % dilation > size - 1:
            return i
    return None


def first_real_taps(size: int, out: int, f: int, stride: int, dilation: int, pads) -> np.ndarray:
    """Per window on one axis, the index of its first tap on a real input cell, shape (out,).

    torch's max pooling starts its scan there, so that is the index of a window
    whose real cells are all -inf. Every window must have one (:func:`empty_window`).
    """
    start = np.arange(out) * stride - pads[0]
    return np.maximum(0, -(start // dilation))


def adaptive_bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """torch's adaptive bins on one axis: ``[floor(i*size/out), ceil((i+1)*size/out))``.

    Returns
    -------
    starts, ends : ndarray of int64, shape (out,)
    """
    i = np.arange(out, dtype=np.int64)
    return (i * size) // out, -((-(i + 1) * size) // out)


def tap_positions(out: int, f: int, stride: int, dilation: int) -> np.ndarray:
    """Padded-input position of every tap of every window on one axis, shape (out, f)."""
    return np.arange(out)[:, None] * stride + np.arange(f)[None, :] * dilation


def real_taps(size: int, out: int, f: int, stride: int, dilation: int, pads) -> np.ndarray:
    """Which taps of each window lie on a real input cell ``[before, before + size)``.

    Returns
    -------
    ndarray of bool, shape (out, f)
    """
    taps = tap_positions(out, f, stride, dilation)
    return (taps >= pads[0]) & (taps < pads[0] + size)


def window_counts(
    size: int,
    out: int,
    f: int,
    stride: int,
    dilation: int,
    pads,
    count_include_pad: bool,
) -> np.ndarray:
    """Number of window taps the average divides by, per output position on one axis.

    With ``count_include_pad`` a tap counts when it lies inside the explicitly
    padded input ``[0, size + before + after)``; otherwise when it lies on a
    real input cell ``[before, before + size)``. The 2-D divisor is the outer
    product of the two axes' counts.

    Returns
    -------
    ndarray of shape (out,), float64
    """
    if count_include_pad:
        inside = tap_positions(out, f, stride, dilation) < size + pads[0] + pads[1]
    else:
        inside = real_taps(size, out, f, stride, dilation, pads)
    return inside.sum(axis=1).astype(np.float64)
