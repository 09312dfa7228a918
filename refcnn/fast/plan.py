"""Validated geometry of one 2-D conv or pool call, shared by the fast path and the loops.

A plan is built once per call from raw arguments; everything downstream
(``refcnn.fast.im2col``, ``refcnn.fast.pool``, ``refcnn.loops``) trusts it.
Building one allocates nothing in proportion to the arguments: a call whose
sizes alone show it invalid or larger than memory (a pad of 10**9, a
10**12-pixel output, no output channels) is refused here, in constant time,
with an error naming the parameter.

A stride longer than the padded input reads one window whatever its value,
and a one-tap kernel reads the same cells whatever its dilation: the plan
stores them as the padded length and 1, so that no index arithmetic
downstream meets an unused value too large for an array index.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from refcnn import geometry
from refcnn._params import as_padding, as_pair, check_array, check_int


@dataclass(frozen=True)
class ConvPlan:
    """Shapes and hyper-parameters of a 2-D convolution in NHWC/HWIO layout."""

    n: int
    in_hw: tuple[int, int]
    c_in: int
    kernel: tuple[int, int]
    c_out: int
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    groups: int
    out_hw: tuple[int, int]

    @property
    def c_in_per_group(self) -> int:
        return self.c_in // self.groups

    @property
    def c_out_per_group(self) -> int:
        return self.c_out // self.groups

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        return (self.n, *self.out_hw, self.c_out)


@dataclass(frozen=True)
class PoolPlan:
    """Shapes and hyper-parameters of a 2-D pooling in NHWC layout."""

    n: int
    in_hw: tuple[int, int]
    c: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    ceil_mode: bool
    count_include_pad: bool
    divisor_override: int | None
    out_hw: tuple[int, int]

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        return (self.n, *self.out_hw, self.c)


def conv_plan(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1,
              x_name="A_prev", w_name="W", b_name="b", pad_name="pad") -> ConvPlan:
    """Check a convolution's arrays and options and work out its geometry."""
    check_array(x, x_name, 4)
    check_array(w, w_name, 4)
    stride = as_pair(stride, "stride")
    dilation = as_pair(dilation, "dilation")
    groups = check_int(groups, "groups")
    n, h, wd, c_in = x.shape
    fh, fw, wc, c_out = w.shape
    if fh < 1 or fw < 1:
        raise ValueError(f"{w_name} must have a kernel of at least 1x1, got shape {w.shape}")
    if c_out < 1:
        raise ValueError(f"{w_name} must have at least one output channel (its last axis, "
                         f"n_C), got shape {w.shape}")
    if c_in % groups or c_out % groups:
        raise ValueError(
            f"groups={groups} must divide both the input channels ({c_in}) and the "
            f"output channels ({c_out})"
        )
    if wc * groups != c_in:
        raise ValueError(
            f"{w_name} must have shape (f_h, f_w, n_C_prev // groups, n_C) = "
            f"(f_h, f_w, {c_in // groups}, n_C) for {x_name} with {c_in} channels and "
            f"groups={groups}, got {w.shape}"
        )
    if b is not None:
        check_array(b, b_name)
        if b.shape not in ((c_out,), (1, 1, 1, c_out)):
            raise ValueError(
                f"{b_name} must have shape (1, 1, 1, {c_out}) or ({c_out},) to match "
                f"{w_name}'s {c_out} output channels, got {b.shape}"
            )
    pads = geometry.resolve_padding(
        as_padding(padding, pad_name), (h, wd), (fh, fw), stride, dilation
    )
    out_hw = tuple(
        geometry.conv_out_size(size, f, s, d, p)
        for size, f, s, d, p in zip((h, wd), (fh, fw), stride, dilation, pads)
    )
    _check_fits(out_hw, (h, wd), f"the kernel {(fh, fw)} of {w_name}", dilation, pads, x_name)
    _check_bytes(w.shape, w.dtype.itemsize, lambda: f"{w_name} of shape {w.shape}")
    padded = (n, h + sum(pads[0]), wd + sum(pads[1]), c_in)
    _check_bytes(padded, x.dtype.itemsize, lambda: _padded_what(x, x_name, pads, pad_name))
    out_shape = (n, *out_hw, c_out)
    _check_bytes(out_shape, np.result_type(x, w).itemsize, lambda: (
        f"the output, of shape {out_shape}, of " + (
            f"{x_name} of shape {x.shape} padded by {pad_name}={pads}"
            if out_hw[0] * out_hw[1] > h * wd else
            f"{w_name} of shape {w.shape} ({c_out} output channels)" if c_out > c_in else
            f"{x_name} of shape {x.shape}")))
    stride, dilation = _unused_steps(padded[1:3], (fh, fw), stride, dilation)
    return ConvPlan(n, (h, wd), c_in, (fh, fw), c_out, stride, dilation, pads, groups, out_hw)


def pool_plan(x, kernel_size, *, stride=None, padding=0, dilation=1, ceil_mode=False,
              count_include_pad=True, divisor_override=None,
              x_name="A_prev", f_name="f", pad_name="pad") -> PoolPlan:
    """Check a pooling's input and options and work out its geometry.

    ``stride=None`` means the kernel size, as in torch.
    """
    check_array(x, x_name, 4)
    kernel = as_pair(kernel_size, f_name)
    stride = kernel if stride is None else as_pair(stride, "stride")
    dilation = as_pair(dilation, "dilation")
    for flag, name in ((ceil_mode, "ceil_mode"), (count_include_pad, "count_include_pad")):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    if divisor_override is not None:
        divisor_override = check_int(divisor_override, "divisor_override")
    n, h, wd, c = x.shape
    pads = geometry.resolve_padding(as_padding(padding, pad_name), (h, wd), kernel, stride,
                                    dilation)
    out_hw = tuple(
        geometry.pool_out_size(size, f, s, d, p, ceil_mode)
        for size, f, s, d, p in zip((h, wd), kernel, stride, dilation, pads)
    )
    _check_fits(out_hw, (h, wd), f"the kernel {f_name}={kernel}", dilation, pads, x_name)
    for axis, size, f, s, d, p, out in zip(
        ("height", "width"), (h, wd), kernel, stride, dilation, pads, out_hw
    ):
        # A window made only of padding has no input to take a max or mean of.
        if geometry.empty_window(size, out, f, s, d, p) is not None:
            raise ValueError(
                f"{pad_name} {pads} is too large for {f_name}={kernel}, dilation={dilation}: "
                f"a pooling window along the {axis} lies entirely in the padding"
            )
    # The padded input, extended where ceil_mode's last window overhangs it.
    padded = (n, *(max(size + p[0] + p[1], (out - 1) * s + d * (f - 1) + 1)
                   for size, out, f, s, d, p in zip((h, wd), out_hw, kernel, stride, dilation,
                                                    pads)), c)
    _check_bytes(padded, x.dtype.itemsize,
                 lambda: _padded_what(x, x_name, pads, f"{pad_name} (for {f_name}={kernel})"))
    _check_bytes((n, *out_hw, c), x.dtype.itemsize,
                 lambda: f"the output, of shape {(n, *out_hw, c)}, of {x_name} of shape "
                         f"{x.shape} padded by {pad_name}={pads}")
    # Window counts and padding flags: an 8-byte entry per window and tap on each axis
    # (a kernel can be far longer than the input when padding makes room for it).
    _check_bytes((sum(o * f for o, f in zip(out_hw, kernel)),), 8,
                 lambda: f"{f_name}={kernel} over {out_hw} windows, in tables of every tap,")
    stride, dilation = _unused_steps(padded[1:3], kernel, stride, dilation)
    return PoolPlan(n, (h, wd), c, kernel, stride, dilation, pads, ceil_mode,
                    count_include_pad, divisor_override, out_hw)


def _check_fits(out_hw, in_hw, kernel, dilation, pads, x_name):
    if min(out_hw) < 1:
        raise ValueError(
            f"{kernel} with dilation {dilation} is larger than the padded input: "
            f"{x_name} spatial size {in_hw} padded by {pads}"
        )


def memory_bytes() -> int:
    """This machine's physical memory in bytes; no array a call needs may be larger
    (without a way to read it, the largest size an array index can reach)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return int(np.iinfo(np.intp).max)


def _check_bytes(shape, itemsize, what):
    """Refuse an array of ``shape`` that would not fit in memory; ``what()`` names it."""
    nbytes = math.prod(shape) * itemsize
    limit = memory_bytes()
    if nbytes > limit:
        raise ValueError(f"{what()} would take {_gib(nbytes)}, more than this machine's "
                         f"memory ({_gib(limit)})")


def _gib(nbytes) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def _padded_what(x, x_name, pads, pad_name) -> str:
    if pads == ((0, 0), (0, 0)):  # a broadcast view can be larger than memory
        return f"{x_name} of shape {x.shape}"
    return f"{x_name} of shape {x.shape} padded by {pad_name}={pads}"


def _unused_steps(padded_hw, kernel, stride, dilation):
    """Stride and dilation with the values that cannot matter made small (see the
    module docstring): a stride past the padded length, a dilation of one tap."""
    return (tuple(min(s, p) for s, p in zip(stride, padded_hw)),
            tuple(d if f > 1 else 1 for d, f in zip(dilation, kernel)))


def check_grad(dy, plan, name: str):
    """``dy`` must be a floating array with the forward output's shape."""
    check_array(dy, name, 4)
    if dy.shape != plan.out_shape:
        raise ValueError(
            f"{name} must have the forward output's shape {plan.out_shape}, got {dy.shape}"
        )


def tap_slices(plan):
    """Yield ``(kh, kw, rows, cols)``: the slices of the padded input that kernel tap
    ``(kh, kw)`` reads for every output position (row-major tap order)."""
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    ho, wo = plan.out_hw
    for kh in range(plan.kernel[0]):
        for kw in range(plan.kernel[1]):
            yield (kh, kw, slice(kh * dh, kh * dh + sh * (ho - 1) + 1, sh),
                   slice(kw * dw, kw * dw + sw * (wo - 1) + 1, sw))
