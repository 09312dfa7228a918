"""Layout adapters between the canonical NHWC/HWIO layout and the frameworks' own.

Pure NumPy. Every function leaves its input untouched and returns a new,
C-contiguous array (never a view), so a backend can hand the result to a
framework that assumes contiguity, or modify it, without aliasing the case's
inputs.

Axis maps (canonical -> framework):

* data: NHWC ``(N, H, W, C)`` -> NCHW ``(N, C, H, W)``: ``transpose(0, 3, 1, 2)``
* conv weights: HWIO ``(f_h, f_w, C_in/groups, C_out)`` -> OIHW
  ``(C_out, C_in/groups, f_h, f_w)``: ``transpose(3, 2, 0, 1)``
* bias: ``(C,)`` <-> ``(1, 1, 1, C)`` (NHWC broadcast, the notebook's form) <->
  ``(1, C, 1, 1)`` (NCHW broadcast)

Padding is per-side ``((top, bottom), (left, right))`` in canonical form.
"""

from __future__ import annotations

import numpy as np

Pads = tuple[tuple[int, int], tuple[int, int]]


def _copy(a) -> np.ndarray:
    # np.ascontiguousarray returns its argument when it is already contiguous;
    # an explicit copy guarantees the caller never aliases the input.
    return np.array(a, copy=True, order="C")


def _check_ndim(a: np.ndarray, ndim: int, name: str, layout: str) -> None:
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional ({layout}), got shape {a.shape}")


# ---- data -----------------------------------------------------------------------------------
def nhwc_to_nchw(x) -> np.ndarray:
    """NHWC data to NCHW.

    Parameters
    ----------
    x : array_like, shape (N, H, W, C)

    Returns
    -------
    ndarray, shape (N, C, H, W), C-contiguous copy; ``out[n, c, h, w] == x[n, h, w, c]``
    """
    x = np.asarray(x)
    _check_ndim(x, 4, "x", "NHWC")
    return _copy(x.transpose(0, 3, 1, 2))


def nchw_to_nhwc(x) -> np.ndarray:
    """NCHW data to NHWC.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)

    Returns
    -------
    ndarray, shape (N, H, W, C), C-contiguous copy; ``out[n, h, w, c] == x[n, c, h, w]``
    """
    x = np.asarray(x)
    _check_ndim(x, 4, "x", "NCHW")
    return _copy(x.transpose(0, 2, 3, 1))


# ---- conv weights -----------------------------------------------------------------------------
def hwio_to_oihw(w) -> np.ndarray:
    """HWIO conv weights to OIHW (torch's ``weight`` layout).

    Parameters
    ----------
    w : array_like, shape (f_h, f_w, C_in/groups, C_out)

    Returns
    -------
    ndarray, shape (C_out, C_in/groups, f_h, f_w), C-contiguous copy;
    ``out[o, i, kh, kw] == w[kh, kw, i, o]``
    """
    w = np.asarray(w)
    _check_ndim(w, 4, "w", "HWIO")
    return _copy(w.transpose(3, 2, 0, 1))


def oihw_to_hwio(w) -> np.ndarray:
    """OIHW conv weights to HWIO.

    Parameters
    ----------
    w : array_like, shape (C_out, C_in/groups, f_h, f_w)

    Returns
    -------
    ndarray, shape (f_h, f_w, C_in/groups, C_out), C-contiguous copy;
    ``out[kh, kw, i, o] == w[o, i, kh, kw]``
    """
    w = np.asarray(w)
    _check_ndim(w, 4, "w", "OIHW")
    return _copy(w.transpose(2, 3, 1, 0))


# ---- bias -----------------------------------------------------------------------------------
def bias_to_nhwc(b) -> np.ndarray:
    """Bias ``(C,)`` to its NHWC broadcast shape ``(1, 1, 1, C)`` (the notebook's ``b``)."""
    b = np.asarray(b)
    _check_ndim(b, 1, "b", "(C,)")
    return _copy(b.reshape(1, 1, 1, -1))


def bias_to_nchw(b) -> np.ndarray:
    """Bias ``(C,)`` to its NCHW broadcast shape ``(1, C, 1, 1)``."""
    b = np.asarray(b)
    _check_ndim(b, 1, "b", "(C,)")
    return _copy(b.reshape(1, -1, 1, 1))


def bias_from_nhwc(b) -> np.ndarray:
    """Bias of shape ``(1, 1, 1, C)`` back to ``(C,)``."""
    b = np.asarray(b)
    if b.ndim != 4 or b.shape[:3] != (1, 1, 1):
        raise ValueError(f"b must have shape (1, 1, 1, C), got {b.shape}")
    return _copy(b.reshape(-1))


def bias_from_nchw(b) -> np.ndarray:
    """Bias of shape ``(1, C, 1, 1)`` back to ``(C,)``."""
    b = np.asarray(b)
    if b.ndim != 4 or b.shape[0] != 1 or b.shape[2:] != (1, 1):
        raise ValueError(f"b must have shape (1, C, 1, 1), got {b.shape}")
    return _copy(b.reshape(-1))


# ---- padding --------------------------------------------------------------------------------
def _check_pads(pads) -> Pads:
    try:
        (top, bottom), (left, right) = pads
    except (TypeError, ValueError):
        raise ValueError(
            f"pads must be per-side pairs ((top, bottom), (left, right)), got {pads!r}"
        ) from None
    return (int(top), int(bottom)), (int(left), int(right))


def pads_to_torch_pad(pads) -> tuple[int, int, int, int]:
    """Per-side pads to ``torch.nn.functional.pad`` order for the last two (H, W) axes.

    ``F.pad`` lists the last axis first: ``(left, right, top, bottom)``.

    Parameters
    ----------
    pads : ((top, bottom), (left, right))

    Returns
    -------
    (left, right, top, bottom)
    """
    (top, bottom), (left, right) = _check_pads(pads)
    return (left, right, top, bottom)


def pads_to_torch_symmetric(pads) -> tuple[int, int] | None:
    """Per-side pads to torch's ``padding=(ph, pw)`` when both axes are symmetric, else None.

    Parameters
    ----------
    pads : ((top, bottom), (left, right))

    Returns
    -------
    (ph, pw) when ``top == bottom`` and ``left == right``; None otherwise.
    """
    (top, bottom), (left, right) = _check_pads(pads)
    if top == bottom and left == right:
        return (top, left)
    return None


def pads_to_jax(pads) -> list[tuple[int, int]]:
    """Per-side pads to JAX's explicit ``padding=[(top, bottom), (left, right)]``.

    Parameters
    ----------
    pads : ((top, bottom), (left, right))

    Returns
    -------
    list of two (low, high) pairs, spatial axes in order (H, W), a new list.
    """
    (top, bottom), (left, right) = _check_pads(pads)
    return [(top, bottom), (left, right)]


__all__ = [
    "nhwc_to_nchw", "nchw_to_nhwc", "hwio_to_oihw", "oihw_to_hwio",
    "bias_to_nhwc", "bias_to_nchw", "bias_from_nhwc", "bias_from_nchw",
    "pads_to_torch_pad", "pads_to_torch_symmetric", "pads_to_jax",
]


def same_pads(size: int, f: int, stride: int, dilation: int) -> tuple[int, int]:
    """'same' padding ``(before, after)`` for one axis: ``ceil(size / stride)`` outputs,
    the odd pixel at the end (TF, JAX 'SAME', ONNX SAME_UPPER).

    Written here, not taken from refcnn, so the framework backends stay independent
    oracles of refcnn's geometry.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (f - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def explicit_pads(case) -> tuple[tuple[int, int], tuple[int, int]]:
    """Per-side pads ``((top, bottom), (left, right))`` for any padding spec of a case."""
    if case.padding == "valid":
        return ((0, 0), (0, 0))
    if case.padding == "same":
        return tuple(same_pads(n, f, s, d) for n, f, s, d in
                     zip((case.h, case.w), case.kernel, case.stride, case.dilation))
    return tuple(tuple(p) for p in case.padding)
