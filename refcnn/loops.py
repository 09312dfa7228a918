"""The notebook's API written as plainly as the notebook: explicit loops over windows.

This is the readable oracle. It shares argument checking and output sizes with
the vectorized functions (``refcnn.fast.plan``) but computes every value on its
own, one window at a time, including the stride in the backward passes and the
padding crop that the notebook's listings get wrong. It is slow: use it on
small shapes.
"""

from __future__ import annotations

import numpy as np

from refcnn._params import result_dtype
from refcnn.fast.plan import check_grad, conv_plan, pool_plan
from refcnn.notebook import conv_options, pool_options, unpack_conv_cache, unpack_pool_cache
from refcnn.steps import conv_single_step, create_mask_from_window, distribute_value, zero_pad

__all__ = [
    "zero_pad", "conv_single_step", "conv_forward", "conv_backward", "pool_forward",
    "pool_backward", "create_mask_from_window", "distribute_value",
]


def conv_forward(A_prev, W, b, hparameters):
    """Loop version of :func:`refcnn.conv_forward` (same arguments and returns)."""
    plan = conv_plan(A_prev, W, b, **conv_options(hparameters))
    A_pad = zero_pad(A_prev.astype(np.float64), plan.pads)
    W64, b64 = W.astype(np.float64), b.astype(np.float64).reshape(-1)
    Z = np.zeros(plan.out_shape)
    for i in range(plan.n):
        for h in range(plan.out_hw[0]):
            for w in range(plan.out_hw[1]):
                for c in range(plan.c_out):
                    a_slice = A_pad[(i, *_window(plan, h, w), _group_channels(plan, c))]
                    Z[i, h, w, c] = conv_single_step(a_slice, W64[:, :, :, c], b64[c:c + 1])
    return Z.astype(result_dtype(A_prev, W, b)), (A_prev, W, b, hparameters)


def conv_backward(dZ, cache):
    """Loop version of :func:`refcnn.conv_backward` (same arguments and returns)."""
    A_prev, W, b, hparameters = unpack_conv_cache(cache)
    plan = conv_plan(A_prev, W, b, **conv_options(hparameters))
    check_grad(dZ, plan, "dZ")
    A_pad = zero_pad(A_prev.astype(np.float64), plan.pads)
    W64 = W.astype(np.float64)
    dA_pad = np.zeros_like(A_pad)
    dW = np.zeros(W.shape)
    db = np.zeros(plan.c_out)
    for i in range(plan.n):
        for h in range(plan.out_hw[0]):
            for w in range(plan.out_hw[1]):
                for c in range(plan.c_out):
                    where = (i, *_window(plan, h, w), _group_channels(plan, c))
                    dA_pad[where] += W64[:, :, :, c] * dZ[i, h, w, c]
                    dW[:, :, :, c] += A_pad[where] * dZ[i, h, w, c]
                    db[c] += dZ[i, h, w, c]
    (top, _), (left, _) = plan.pads
    dA_prev = dA_pad[:, top:top + plan.in_hw[0], left:left + plan.in_hw[1], :]
    return dA_prev.astype(A_prev.dtype), dW.astype(W.dtype), db.reshape(b.shape).astype(b.dtype)


def pool_forward(A_prev, hparameters, mode="max"):
    """Loop version of :func:`refcnn.pool_forward` (same arguments and returns)."""
    plan = pool_plan(A_prev, **pool_options(hparameters, mode))
    A = np.zeros(plan.out_shape)
    for i in range(plan.n):
        for h in range(plan.out_hw[0]):
            for w in range(plan.out_hw[1]):
                for c in range(plan.c):
                    taps = _pool_taps(plan, h, w)
                    values = [A_prev[i, r, s, c] if real else -np.inf for r, s, real, _ in taps]
                    if mode == "max":
                        A[i, h, w, c] = np.max(values)
                    else:
                        real_sum = sum(float(v) for v, t in zip(values, taps) if t[2])
                        A[i, h, w, c] = real_sum / _divisor(plan, taps)
    return A.astype(A_prev.dtype), (A_prev, hparameters)


def pool_backward(dA, cache, mode="max"):
    """Loop version of :func:`refcnn.pool_backward` (same arguments and returns).

    Max mode scans each window in row-major order and keeps a tap when
    ``value > best or isnan(value)``, torch's rule: the first maximum wins,
    the last NaN wins over everything, and an all -inf window keeps its first
    real cell.
    """
    A_prev, hparameters = unpack_pool_cache(cache)
    plan = pool_plan(A_prev, **pool_options(hparameters, mode))
    check_grad(dA, plan, "dA")
    dA_prev = np.zeros(A_prev.shape)
    for i in range(plan.n):
        for h in range(plan.out_hw[0]):
            for w in range(plan.out_hw[1]):
                for c in range(plan.c):
                    taps = [t for t in _pool_taps(plan, h, w) if t[2]]
                    if mode == "max":
                        best, where = -np.inf, taps[0][:2]
                        for r, s, _, _ in taps:
                            value = A_prev[i, r, s, c]
                            if value > best or np.isnan(value):
                                best, where = value, (r, s)
                        dA_prev[i, where[0], where[1], c] += dA[i, h, w, c]
                    else:
                        # Divide in float64: the result is rounded once, at the end.
                        share = float(dA[i, h, w, c]) / _divisor(plan, _pool_taps(plan, h, w))
                        for r, s, _, _ in taps:
                            dA_prev[i, r, s, c] += share
    return dA_prev.astype(A_prev.dtype)


def _window(plan, h, w):
    """Row and column slices of output (h, w)'s window in the padded input."""
    (sh, sw), (dh, dw), (fh, fw) = plan.stride, plan.dilation, plan.kernel
    return (slice(h * sh, h * sh + dh * (fh - 1) + 1, dh),
            slice(w * sw, w * sw + dw * (fw - 1) + 1, dw))


def _group_channels(plan, c):
    """Input channels that output channel ``c`` reads: those of group ``c // (C_out/G)``."""
    g = c // plan.c_out_per_group
    return slice(g * plan.c_in_per_group, (g + 1) * plan.c_in_per_group)


def _pool_taps(plan, h, w):
    """Taps of output (h, w)'s window as ``(row, col, is_real, in_explicit_pad)``.

    ``row``/``col`` index the unpadded input; ``is_real`` says the tap is on an
    input cell; ``in_explicit_pad`` says it is inside the explicitly padded
    input (not in the overhang that ceil_mode adds).
    """
    (sh, sw), (dh, dw), (fh, fw) = plan.stride, plan.dilation, plan.kernel
    (top, bottom), (left, right) = plan.pads
    (n_h, n_w) = plan.in_hw
    taps = []
    for kh in range(fh):
        for kw in range(fw):
            r = h * sh + kh * dh - top
            s = w * sw + kw * dw - left
            real = 0 <= r < n_h and 0 <= s < n_w
            explicit = r < n_h + bottom and s < n_w + right
            taps.append((r, s, real, explicit))
    return taps


def _divisor(plan, taps):
    if plan.divisor_override is not None:
        return plan.divisor_override
    if plan.count_include_pad:
        return sum(1 for t in taps if t[3])
    return sum(1 for t in taps if t[2])
