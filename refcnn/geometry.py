"""Output sizes, 'same' padding and pooling divisors: the conventions refcnn follows.

refcnn follows torch wherever frameworks differ (see ``shared/semantics.md``):

* 'same' puts the odd padding pixel at the end (bottom/right), as TF, JAX
  ``'SAME'`` and ONNX ``SAME_UPPER`` do, for any stride and dilation.
* ceil_mode rounds the output size up, then drops the last window if it would
  start in the right padding (pytorch PR #120335).
* The average-pool divisor with ``count_include_pad=True`` counts explicit
  padding but never the cells past ``H + pad`` that ceil_mode adds.
"""

from __future__ import annotations

import numpy as np

from refcnn._params import as_padding


def same_pads(size: int, f: int, stride: int, dilation: int) -> tuple[int, int]:
    """Padding ``(before, after)`` that gives ``ceil(size / stride)`` outputs.

    The total is ``max((out - 1) * stride + dilation * (f - 1) + 1 - size, 0)``;
    the odd pixel goes after (bottom/right), as in TF and JAX ``'SAME'``.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (f - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_padding(padding, in_hw, kernel, stride, dilation):
    """Per-side padding ``((top, bottom), (left, right))`` for any padding spec."""
    padding = as_padding(padding)
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        return tuple(
            same_pads(n, f, s, d) for n, f, s, d in zip(in_hw, kernel, stride, dilation)
        )
    return padding


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
