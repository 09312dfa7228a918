"""Validated geometry of one conv or pool call, shared by the vectorized and loop versions.

A plan is built once per call from raw arguments; everything downstream
(``refcnn.conv``, ``refcnn.pool``, ``refcnn.loops``) trusts it.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    _check_fits(out_hw, (h, wd), (fh, fw), dilation, pads, x_name)
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
    _check_fits(out_hw, (h, wd), kernel, dilation, pads, x_name)
    for axis, size, f, s, d, p, out in zip(
        ("height", "width"), (h, wd), kernel, stride, dilation, pads, out_hw
    ):
        # A window made only of padding has no input to take a max or mean of. With
        # dilation, a middle window can fall between real cells, so check them all.
        if not geometry.real_taps(size, out, f, s, d, p).any(axis=1).all():
            raise ValueError(
                f"{pad_name} {pads} is too large for {f_name}={kernel}, dilation={dilation}: "
                f"a pooling window along the {axis} lies entirely in the padding"
            )
    return PoolPlan(n, (h, wd), c, kernel, stride, dilation, pads, ceil_mode,
                    count_include_pad, divisor_override, out_hw)


def _check_fits(out_hw, in_hw, kernel, dilation, pads, x_name):
    if min(out_hw) < 1:
        raise ValueError(
            f"the kernel {kernel} with dilation {dilation} is larger than the padded input: "
            f"{x_name} spatial size {in_hw} padded by {pads}"
        )


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
