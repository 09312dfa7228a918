"""JAX as a backend: ``lax.conv_general_dilated`` and ``lax.reduce_window``, jitted.

Two layouts: :class:`JaxBackend` works in NHWC/HWIO directly, and
:class:`JaxNchwBackend` goes through :mod:`crosscheck.layouts` to NCHW/OIHW, so
the adapters and JAX's dimension_numbers are checked too (JAX assumes NCHW/OIHW
when dimension_numbers is left out, jax#11632).

This module is an independent oracle: it works out 'same' padding, the pooling
output size (torch's ceil_mode rule) and the average-pool divisor itself and
never imports refcnn (nor calls ``Case.resolved_pads``/``Case.out_hw``).

Performance: XLA compiles every new shape (about 0.3 s), so each case's
computation (forward, or forward and VJP together for backward cases) is one
jitted function, cached by every static parameter; the cache key lists them.
"""

from __future__ import annotations

import functools
import math

import numpy as np

import jax

# The float64 cases need real float64; set before any array is made.
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from crosscheck import layouts  # noqa: E402
from crosscheck.backends.base import Unsupported, output_names  # noqa: E402
from crosscheck.cases import Case, Inputs  # noqa: E402

_JAX_DTYPES = {
    "float64": jnp.float64,
    "float32": jnp.float32,
    "float16": jnp.float16,
    "bfloat16": jnp.bfloat16,
}

#: Convolution precision: HIGHEST makes float32 mean float32 on GPU/TPU (no-op on CPU).
PRECISION = lax.Precision.HIGHEST


# ---- geometry, worked out here (not from refcnn) ---------------------------------------------
def _pool_out(size: int, f: int, stride: int, dilation: int, pads, ceil_mode: bool) -> int:
    """Pooling output size; ceil_mode rounds up, then drops a window starting in the right pad."""
    extent = size + pads[0] + pads[1] - (dilation * (f - 1) + 1)
    if not ceil_mode:
        return extent // stride + 1
    out = math.ceil(extent / stride) + 1
    if (out - 1) * stride >= size + pads[0]:
        out -= 1
    return out


def _pool_axis(size, f, stride, dilation, pads, ceil_mode):
    """``(out, extra)``: output size and the cells past the explicit padding that it needs.

    ceil_mode's last window may run past ``size + before + after``; ``extra`` such
    cells are added as further padding at the end (they never count in a divisor).
    """
    out = _pool_out(size, f, stride, dilation, pads, ceil_mode)
    needed = (out - 1) * stride + dilation * (f - 1) + 1
    return out, max(needed - (size + pads[0] + pads[1]), 0)


# ---- the jitted computations, cached by their static parameters -----------------------------
# Layout-dependent pieces: where H and W sit, and the conv dimension numbers.
_LAYOUTS = {
    "NHWC": {"spatial": (1, 2), "dn": ("NHWC", "HWIO", "NHWC"), "bias": (1, 1, 1, -1)},
    "NCHW": {"spatial": (2, 3), "dn": ("NCHW", "OIHW", "NCHW"), "bias": (1, -1, 1, 1)},
}


def _window(layout: str, hw, fill=1):
    """A 4-tuple with ``hw`` on the spatial axes of ``layout`` and ``fill`` elsewhere."""
    t = [fill] * 4
    for axis, v in zip(_LAYOUTS[layout]["spatial"], hw):
        t[axis] = v
    return tuple(t)


@functools.lru_cache(maxsize=None)
def _conv_fn(layout, stride, pads, dilation, groups, has_bias):
    """Jitted conv forward and VJP together: ``f(x, w, b, dy) -> (y, grads)``; ``b`` may be None.

    Forward and backward cases of one geometry share this one compiled function, which
    halves the number of (slow) compilations in a sweep.
    """
    dn = _LAYOUTS[layout]["dn"]
    bias_shape = _LAYOUTS[layout]["bias"]

    def forward(x, w, b):
        y = lax.conv_general_dilated(
            x, w, window_strides=stride, padding=[tuple(p) for p in pads],
            rhs_dilation=dilation, dimension_numbers=dn, feature_group_count=groups,
            precision=PRECISION)
        return y + b.reshape(bias_shape) if has_bias else y

    def both(x, w, b, dy):
        if has_bias:
            y, vjp = jax.vjp(forward, x, w, b)
        else:
            y, vjp = jax.vjp(lambda x, w: forward(x, w, None), x, w)
        return y, vjp(dy)

    return jax.jit(both)


@functools.lru_cache(maxsize=None)
def _pool_fn(layout, op, direction, in_hw, kernel, stride, pads, dilation, ceil_mode,
             count_include_pad, divisor_override):
    """Jitted pool forward, or forward and VJP together: ``f(x, dy)``.

    Where the VJP exists, forward and backward cases share one compiled function.
    """
    axes = [_pool_axis(n, f, s, d, p, ceil_mode)
            for n, f, s, d, p in zip(in_hw, kernel, stride, dilation, pads)]
    out_hw = tuple(a[0] for a in axes)
    # reduce_window pads with its init value: explicit pads, then ceil_mode's extra cells.
    full_pads = _window(layout, [(p[0], p[1] + extra) for p, (_, extra) in zip(pads, axes)],
                        (0, 0))
    win = dict(window_dimensions=_window(layout, kernel), window_strides=_window(layout, stride),
               padding=full_pads, window_dilation=_window(layout, dilation))

    def crop(y):
        # ceil_mode can give fewer windows than the padded extent holds (a last window that
        # would start in the right padding is dropped): keep the first out_hw.
        index = [slice(None)] * 4
        for axis, n in zip(_LAYOUTS[layout]["spatial"], out_hw):
            index[axis] = slice(0, n)
        return y[tuple(index)]

    def forward(x):
        if op == "max_pool2d":
            return crop(lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, **win))
        total = crop(lax.reduce_window(x, np.array(0, x.dtype), lax.add, **win))
        if divisor_override is not None:
            return total / jnp.array(divisor_override, x.dtype)
        # Divisor: a window sum over a mask that is one on the cells that count: the
        # explicitly padded input (count_include_pad) or the real cells only; ceil_mode's
        # extra cells are reduce_window padding, hence zero, and never count.
        mask_shape = _window(layout, in_hw)
        ones = jnp.ones(mask_shape, x.dtype)
        mask = jnp.pad(ones, _window(layout, pads, (0, 0)),
                       constant_values=1 if count_include_pad else 0)
        mask_win = dict(win, padding=_window(layout, [(0, extra) for _, extra in axes], (0, 0)))
        count = crop(lax.reduce_window(mask, np.array(0, x.dtype), lax.add, **mask_win))
        return total / count

    if direction == "forward":
        return jax.jit(lambda x, dy: (forward(x), None))

    def both(x, dy):
        y, vjp = jax.vjp(forward, x)
        return y, vjp(dy)

    return jax.jit(both)


# ---- the backends ---------------------------------------------------------------------------
class JaxBackend:
    """JAX ``lax`` on the default device, NHWC/HWIO (dimension_numbers given explicitly)."""

    name = "jax"
    layout = "NHWC"

    def version(self) -> str:
        return f"jax {jax.__version__} ({jax.default_backend()})"

    def settings(self) -> dict:
        """Precision-relevant settings in force (for reports)."""
        return {"jax_enable_x64": bool(jax.config.read("jax_enable_x64")),
                "conv_precision": str(PRECISION), "layout": self.layout,
                "platform": jax.default_backend()}

    def unsupported(self, case: Case) -> str | None:
        if case.op == "max_pool2d" and case.direction == "backward" and case.dilation != (1, 1):
            return (f"JAX has no max-pool gradient with window dilation (dilation="
                    f"{case.dilation}): select_and_gather VJP raises NotImplementedError")
        return None

    # Layout adapters; the NCHW subclass overrides these.
    def _to_data(self, a):
        return a

    def _from_data(self, a):
        return a

    def _to_weight(self, a):
        return a

    def _from_weight(self, a):
        return a

    def run(self, case: Case, inputs: Inputs) -> dict[str, np.ndarray]:
        reason = self.unsupported(case)
        if reason:
            raise Unsupported(reason)
        dt = _JAX_DTYPES[case.dtype]
        backward = case.direction == "backward"
        # The values are exact in dt (Inputs guarantees it), so the casts are exact.
        x = jnp.asarray(self._to_data(inputs.x), dtype=dt)
        dy = jnp.asarray(self._to_data(inputs.dy), dtype=dt)
        pads = layouts.explicit_pads(case)
        if case.is_conv:
            w = jnp.asarray(self._to_weight(inputs.w), dtype=dt)
            has_bias = inputs.b is not None
            b = jnp.asarray(inputs.b, dtype=dt) if has_bias else None
            fn = _conv_fn(self.layout, case.stride, pads, case.dilation, case.groups, has_bias)
            y, grads = fn(x, w, b, dy)
            if not backward:
                return {"y": self._from_data(_numpy(y))}
            out = {"dx": self._from_data(_numpy(grads[0])),
                   "dw": self._from_weight(_numpy(grads[1]))}
            if has_bias:
                out["db"] = _numpy(grads[2])
            return {k: out[k] for k in output_names(case)}
        # Max pooling with window dilation has no VJP: compile its forward alone.
        no_vjp = case.op == "max_pool2d" and case.dilation != (1, 1)
        fn = _pool_fn(self.layout, case.op, "forward" if no_vjp else "both", (case.h, case.w),
                      case.kernel, case.stride, pads, case.dilation, case.ceil_mode,
                      case.count_include_pad, case.divisor_override)
        y, grads = fn(x, dy)
        if not backward:
            return {"y": self._from_data(_numpy(y))}
        return {"dx": self._from_data(_numpy(grads[0]))}


class JaxNchwBackend(JaxBackend):
    """The same JAX calls in NCHW/OIHW, through :mod:`crosscheck.layouts`."""

    name = "jax.nchw"
    layout = "NCHW"

    def _to_data(self, a):
        return layouts.nhwc_to_nchw(a)

    def _from_data(self, a):
        return layouts.nchw_to_nhwc(a)

    def _to_weight(self, a):
        return layouts.hwio_to_oihw(a)

    def _from_weight(self, a):
        return layouts.oihw_to_hwio(a)


def _numpy(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)
