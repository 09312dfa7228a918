"""JAX as a backend: ``lax`` convolutions and ``reduce_window`` pooling, 1 to 3 spatial dims, jitted.

Two layouts: :class:`JaxBackend` works channels-last (``NWC/WIO``, ``NHWC/HWIO``,
``NDHWC/DHWIO``) and :class:`JaxNchwBackend` channels-first (``NCW/OIW``, ...), both
with ``dimension_numbers`` given explicitly, so JAX's layout handling is checked
too (it assumes channels-first when they are left out, jax#11632).

How each op reaches JAX:

* conv: ``lax.conv_general_dilated`` with ``feature_group_count``; 'same',
  'same_lower' and 'valid' as JAX's own ``'SAME'``, ``'SAME_LOWER'``, ``'VALID'``
  (its padding rule is under test), explicit pads otherwise.
* conv_transpose, the adjoint of conv with the same weight array: ``lax.conv_transpose``
  with ``transpose_kernel=True`` (without it the kernel is not flipped, jax#14337);
  it has no ``feature_group_count``, so grouped cases are a ``conv_general_dilated``
  with ``lhs_dilation`` and the groups moved into the kernel's output axis, as JAX's
  own input gradient does. ``output_padding`` adds cells at the end.
* max/avg pooling: ``lax.reduce_window``; ceil_mode (which JAX lacks) is extra
  padding at the end and a crop, the average divisor a window sum over a mask.
* max-pool indices and adaptive pooling, which JAX lacks: composed from a window
  gather and an argmax with torch's choice (the last NaN, else the first maximum,
  never padding), and torch's adaptive bins. The max-pool gradient stays JAX's own
  (``reduce_window``'s VJP, whose NaN routing differs from torch's: see
  :mod:`crosscheck.semantics`); the adaptive max-pool gradient flows through the gather.

Gradients are ``jax.vjp``, forward-mode derivatives ``jax.jvp`` and second-order ones
the ``jax.vjp`` of the function that ``jax.vjp`` gives. Geometry comes from
:mod:`crosscheck.geometry`, never refcnn.

Compiling dominates a sweep, and every live executable holds a few memory maps
(``vm.max_map_count`` is finite), so one jitted function per compile key serves
forward, backward and every seed of a geometry (and ``jvp`` and ``double_backward``
once a case of the key asks for them: the sweeps ask first, so the four share one
compilation), and those functions live in one bounded LRU shared by both layouts;
:meth:`JaxBackend.clear_compiled` drops them.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict

import numpy as np

import jax

# The float64 cases need real float64; set before any array is made.
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from crosscheck import geometry  # noqa: E402
from crosscheck.backends.driver import (OpImpl, TableBackend, gradients, named_forward,  # noqa: E402
                                        second_order, tangents)
from crosscheck.ops import DIRECTIONS, HIGHER_ORDER  # noqa: E402

#: Convolution precision: HIGHEST makes float32 mean float32 on GPU/TPU (no-op on CPU).
PRECISION = lax.Precision.HIGHEST
#: The case's padding words as JAX spells them.
_NATIVE_PADDING = {"same": "SAME", "same_lower": "SAME_LOWER", "valid": "VALID"}
#: Compiled functions kept alive at most (each holds an executable and its memory maps).
MAX_COMPILED = 256


# ---- layouts ----------------------------------------------------------------------------------
class _Layout:
    """Where the channel axis sits, for one spatial rank."""

    def __init__(self, channels_first: bool, rank: int):
        self.channels_first, self.rank = channels_first, rank
        s = "DHW"[3 - rank:]
        if channels_first:
            self.dn = ("NC" + s, "OI" + s, "NC" + s)
            self.spatial_axes = tuple(range(2, 2 + rank))
        else:
            self.dn = ("N" + s + "C", s + "IO", "N" + s + "C")
            self.spatial_axes = tuple(range(1, 1 + rank))
        self.ndim = rank + 2

    def window(self, per_axis, fill=1) -> tuple:
        """A full-rank tuple with ``per_axis`` on the spatial axes and ``fill`` elsewhere."""
        t = [fill] * self.ndim
        for axis, v in zip(self.spatial_axes, per_axis):
            t[axis] = v
        return tuple(t)

    def bias_shape(self) -> tuple:
        return (1, -1) + (1,) * self.rank if self.channels_first else (1,) * (self.rank + 1) + (-1,)

    def crop(self, y, sizes):
        """The first ``sizes`` cells of each spatial axis."""
        index = [slice(None)] * self.ndim
        for axis, n in zip(self.spatial_axes, sizes):
            index[axis] = slice(0, n)
        return y[tuple(index)]


# ---- convolutions -----------------------------------------------------------------------------
def _conv(channels_first: bool):
    def forward(case, x, w, b):
        lay = _Layout(channels_first, case.rank)
        padding = _NATIVE_PADDING.get(case.padding) if isinstance(case.padding, str) \
            else list(case.padding)
        y = lax.conv_general_dilated(
            x, w, window_strides=case.stride, padding=padding, rhs_dilation=case.dilation,
            dimension_numbers=lay.dn, feature_group_count=case.groups, precision=PRECISION)
        return y if b is None else y + b.reshape(lay.bias_shape())
    return OpImpl(forward)


def _conv_transpose(channels_first: bool):
    def forward(case, x, w, b):
        lay = _Layout(channels_first, case.rank)
        # The adjoint of a conv with pads (lo, hi) pads the stride-dilated input by
        # d*(k-1) - lo before and d*(k-1) - hi + output_padding after (may be negative: a crop).
        pads = [(d * (k - 1) - lo, d * (k - 1) - hi + op) for k, d, (lo, hi), op in
                zip(case.kernel, case.dilation, geometry.explicit_pads(case),
                    case.output_padding)]
        if case.groups == 1:
            y = lax.conv_transpose(x, w, strides=case.stride, padding=pads,
                                   rhs_dilation=case.dilation, dimension_numbers=lay.dn,
                                   transpose_kernel=True, precision=PRECISION)
        else:
            y = lax.conv_general_dilated(
                x, _grouped_transpose_kernel(w, case.groups, lay), window_strides=(1,) * lay.rank,
                padding=pads, lhs_dilation=case.stride, rhs_dilation=case.dilation,
                dimension_numbers=lay.dn, feature_group_count=case.groups, precision=PRECISION)
        return y if b is None else y + b.reshape(lay.bias_shape())
    return OpImpl(forward)


def _grouped_transpose_kernel(w, groups: int, lay: _Layout):
    """The conv kernel whose conv is the transposed conv of ``w`` with ``groups`` groups.

    ``w`` is ``(*k, C_out/g, C_in)`` (channels-first ``(C_in, C_out/g, *k)``): the kernel
    of the conv this op is the adjoint of. The result is ``(*k, C_in/g, C_out)``
    (channels-first ``(C_out, C_in/g, *k)``), spatially flipped, group ``gi``'s block
    ``w[..., :, gi*C_in/g:(gi+1)*C_in/g]`` transposed into output channels
    ``gi*C_out/g ...``.
    """
    r = lay.rank
    if lay.channels_first:
        c_in, per_out = w.shape[0], w.shape[1]
        t = w.reshape(groups, c_in // groups, per_out, *w.shape[2:])
        t = t.transpose(0, 2, 1, *range(3, 3 + r))
        t = t.reshape(groups * per_out, c_in // groups, *w.shape[2:])
        return jnp.flip(t, axis=tuple(range(2, 2 + r)))
    per_out, c_in = w.shape[-2], w.shape[-1]
    t = w.reshape(*w.shape[:r], per_out, groups, c_in // groups)
    t = t.transpose(*range(r), r + 2, r + 1, r)
    t = t.reshape(*w.shape[:r], c_in // groups, groups * per_out)
    return jnp.flip(t, axis=tuple(range(r)))


# ---- pooling ----------------------------------------------------------------------------------
def _pool_windows(case, lay: _Layout) -> tuple[dict, tuple[int, ...], tuple, list[int]]:
    """``reduce_window`` arguments, output sizes, explicit pads and ceil_mode's extra cells.

    ceil_mode's last window may reach past the explicit padding: those cells are
    further padding at the end (they never count in a divisor), and a crop drops
    windows that ceil_mode does not keep.
    """
    pads = geometry.explicit_pads(case)
    axes = list(zip(case.spatial, case.kernel, case.stride, case.dilation, pads))
    out = tuple(geometry.pool_out(*a, case.ceil_mode) for a in axes)
    extra = [geometry.pool_overhang(*a, case.ceil_mode) for a in axes]
    win = dict(window_dimensions=lay.window(case.kernel), window_strides=lay.window(case.stride),
               padding=lay.window([(lo, hi + e) for (lo, hi), e in zip(pads, extra)], (0, 0)),
               window_dilation=lay.window(case.dilation))
    return win, out, pads, extra


def _max_pool(channels_first: bool):
    def forward(case, x, w, b):
        lay = _Layout(channels_first, case.rank)
        win, out, pads, _ = _pool_windows(case, lay)
        # A concrete -inf init makes this reduce_window_max, the primitive with a VJP.
        y = lay.crop(lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, **win), out)
        if not case.return_indices:
            return y
        taps = [_taps(n, o, k, s, d, lo) for n, o, k, s, d, (lo, _) in
                zip(case.spatial, out, case.kernel, case.stride, case.dilation, pads)]
        return y, _window_argmax(x, taps, case.spatial, lay)[1]

    def unsupported(case):
        if case.direction == "backward" and any(d != 1 for d in case.dilation):
            return (f"JAX has no max-pool gradient with window dilation (dilation="
                    f"{case.dilation}): the VJP of reduce_window max raises NotImplementedError")
        if case.direction == "double_backward" and any(d != 1 for d in case.dilation):
            return (f"JAX has no max-pool double backward with window dilation (dilation="
                    f"{case.dilation}): the VJP of select_and_gather raises NotImplementedError")
        return None
    return OpImpl(forward, unsupported=unsupported)


def _avg_pool(channels_first: bool):
    def forward(case, x, w, b):
        lay = _Layout(channels_first, case.rank)
        win, out, pads, extra = _pool_windows(case, lay)
        total = lay.crop(lax.reduce_window(x, np.array(0, x.dtype), lax.add, **win), out)
        # A divisor need not be exact in a half type: divide in at least float32, round once.
        wide = jnp.promote_types(x.dtype, jnp.float32)
        if case.divisor_override is not None:
            return (total.astype(wide) / np.array(case.divisor_override, wide)).astype(x.dtype)
        # The divisor is a window sum over a mask that is one on the cells that count: the
        # explicitly padded input (count_include_pad) or its real cells only. ceil_mode's
        # extra cells are reduce_window padding, hence zero: they never count.
        mask = jnp.pad(jnp.ones(lay.window(case.spatial), wide),
                       lay.window(pads, (0, 0)), constant_values=1 if case.count_include_pad else 0)
        count = lay.crop(lax.reduce_window(
            mask, np.array(0, wide), lax.add,
            **dict(win, padding=lay.window([(0, e) for e in extra], (0, 0)))), out)
        return (total.astype(wide) / count).astype(x.dtype)
    return OpImpl(forward)


def _adaptive_avg_pool(channels_first: bool):
    def forward(case, x, w, b):
        lay = _Layout(channels_first, case.rank)
        # torch's bins are a product of per-axis intervals: sum one axis at a time, each bin
        # by a slice (a product with a 0/1 membership matrix would spread a NaN or an
        # infinity over every bin of the axis: 0 * inf is NaN), then divide by the count.
        counts = np.ones((1,) * lay.ndim)
        for axis, n, o in zip(lay.spatial_axes, case.spatial, case.output_size):
            bins = geometry.adaptive_bins(n, o)
            x = jnp.stack([lax.slice_in_dim(x, s, e, axis=axis).sum(axis=axis)
                           for s, e in bins], axis=axis)
            counts = counts * np.array([e - s for s, e in bins], float).reshape(
                _axis_shape(lay, axis, o))
        # A bin's cell count need not be exact in a half type (257 is not in bfloat16):
        # divide in at least float32, then round once.
        wide = jnp.promote_types(x.dtype, jnp.float32)
        return (x.astype(wide) / counts.astype(wide)).astype(x.dtype)
    return OpImpl(forward)


def _axis_shape(lay: _Layout, axis: int, size: int) -> tuple:
    shape = [1] * lay.ndim
    shape[axis] = size
    return tuple(shape)


def _adaptive_max_pool(channels_first: bool):
    def forward(case, x, w, b):
        lay = _Layout(channels_first, case.rank)
        taps = [_bin_taps(n, o) for n, o in zip(case.spatial, case.output_size)]
        y, idx = _window_argmax(x, taps, case.spatial, lay)
        return (y, idx) if case.return_indices else y
    return OpImpl(forward)


# ---- window gather and torch's argmax (max-pool indices, adaptive max pooling) ----------------
def _taps(n, out, k, s, d, lo) -> tuple[np.ndarray, np.ndarray]:
    """Input cells ``(out, k)`` each pooling window reads on one axis, and which are real."""
    cells = np.arange(out)[:, None] * s - lo + np.arange(k)[None, :] * d
    return cells, (cells >= 0) & (cells < n)


def _bin_taps(n, out) -> tuple[np.ndarray, np.ndarray]:
    """Input cells of torch's adaptive bins on one axis, padded to the longest bin."""
    bins = geometry.adaptive_bins(n, out)
    length = max(e - s for s, e in bins)
    cells = np.array([[s + j for j in range(length)] for s, _ in bins])
    ends = np.array([e for _, e in bins])[:, None]
    return cells, cells < ends


def _window_argmax(x, taps, spatial, lay: _Layout):
    """Each window's chosen value and its flat input index, torch's way.

    ``taps`` holds, per spatial axis, the cells ``(out, L)`` of each window and whether
    each is real. The choice is torch's scan (``val > max || isnan(val)``): the last NaN
    of the window in row-major order, else its first maximum among real cells (so a
    window of -inf picks its first real cell). The value is gathered from ``x``, so its
    gradient goes to the chosen cell.
    """
    r = len(taps)
    outs = [c.shape[0] for c, _ in taps]
    lengths = [c.shape[1] for c, _ in taps]
    # Index arrays broadcasting to (*out, *L): axis a's windows on a, its taps on r + a.
    index, valid, flat = [], np.ones(outs + lengths, bool), np.zeros(outs + lengths, np.int64)
    for a, (cells, real) in enumerate(taps):
        shape = [1] * (2 * r)
        shape[a], shape[r + a] = cells.shape
        clamped = np.clip(cells, 0, spatial[a] - 1).reshape(shape)
        index.append(clamped)
        valid = valid & real.reshape(shape)
        flat = flat + clamped * math.prod(spatial[a + 1:])
    window = math.prod(lengths)
    valid = valid.reshape(*outs, window)
    flat = flat.reshape(*outs, window)
    if lay.channels_first:
        vals = x[(slice(None), slice(None), *index)]            # (N, C, *out, *L)
        vals = vals.reshape(*vals.shape[:2 + r], window)        # window last
        axis, valid_b, flat_b = -1, valid, flat
    else:
        vals = x[(slice(None), *index, slice(None))]            # (N, *out, *L, C)
        vals = vals.reshape(vals.shape[0], *outs, window, vals.shape[-1])
        axis, valid_b, flat_b = -2, valid[..., None], flat[..., None]
    neg_inf = np.array(-np.inf, x.dtype)
    real = jnp.where(valid_b, vals, neg_inf)
    nan = jnp.isnan(real)
    last_nan = window - 1 - jnp.argmax(jnp.flip(nan, axis), axis=axis, keepdims=True)
    finite = jnp.where(nan, neg_inf, real)
    best = jnp.max(finite, axis=axis, keepdims=True)
    first_max = jnp.argmax(valid_b & (finite == best), axis=axis, keepdims=True)
    pos = jnp.where(jnp.any(nan, axis=axis, keepdims=True), last_nan, first_max)
    y = jnp.take_along_axis(vals, pos, axis=axis).squeeze(axis)
    idx = jnp.take_along_axis(jnp.broadcast_to(jnp.asarray(flat_b), vals.shape), pos,
                              axis=axis).squeeze(axis)
    return y, idx


# ---- compiled functions: one per compile key, in a bounded LRU shared by both layouts --------
_compiled: OrderedDict = OrderedDict()
_compiled_lock = threading.Lock()


def _jax_vjp(fn, primals, cotangent):
    _, pull = jax.vjp(fn, *primals)
    return list(pull(cotangent))


def _jax_jvp(fn, primals, tangents_):
    return jax.jvp(fn, tuple(primals), tuple(tangents_))[1]


def _jax_double_vjp(fn, primals, cotangent, cotangents):
    def first(dy, *primals_):
        return _jax_vjp(fn, list(primals_), dy)

    _, pull = jax.vjp(first, cotangent, *primals)
    found = pull(list(cotangents))
    return found[0], list(found[1:])


#: The arrays in a compiled function's last three slots, per direction: the tangents, the
#: second-order cotangents (the same shapes), or, where nothing reads them, the primals.
_SLOTS = {"jvp": ("tx", "tw", "tb"), "double_backward": ("gx", "gw", "gb")}


def _fused(impl: OpImpl, case, parts: tuple[str, ...]):
    """One jitted ``(x, w, b, dy, t_x, t_w, t_b) -> {direction: {output: array}}`` for the
    directions ``parts``, so the cases of a geometry share one compilation. The ``t``
    slots hold jvp's tangents or double_backward's cotangents (whichever the call's case
    needs: both directions read them from the same slots)."""
    def run(x, w, b, dy, tx, tw, tb):
        arrays = dict(x=x, w=w, b=b, dy=dy, tx=tx, tw=tw, tb=tb, gx=tx, gw=tw, gb=tb)
        found = {}
        if "forward" in parts:
            found["forward"] = named_forward(impl.forward(case, x, w, b))
        if "backward" in parts:
            found["backward"] = gradients(case, _jax_vjp, impl.forward, x, w, b, dy)
        if "jvp" in parts:
            found["jvp"] = tangents(case, _jax_jvp, impl.forward, arrays)
        if "double_backward" in parts:
            found["double_backward"] = second_order(case, _jax_double_vjp, impl.forward, arrays)
        return found
    return jax.jit(run)


# ---- the backends ---------------------------------------------------------------------------
def _table(channels_first: bool) -> dict[str, OpImpl]:
    return {"conv": _conv(channels_first), "conv_transpose": _conv_transpose(channels_first),
            "max_pool": _max_pool(channels_first), "avg_pool": _avg_pool(channels_first),
            "adaptive_avg_pool": _adaptive_avg_pool(channels_first),
            "adaptive_max_pool": _adaptive_max_pool(channels_first)}


def _device():
    """The device ``crosscheck run --device`` asks for (:data:`~crosscheck.backends.DEVICE_ENV`:
    ``cuda`` is JAX's ``gpu`` platform), or None for JAX's default;
    :class:`~crosscheck.backends.DeviceUnavailable` when JAX has no such device."""
    from crosscheck.backends import DeviceUnavailable, requested_device

    wanted = requested_device()
    if wanted is None:
        return None
    kind, index = wanted
    platform = "gpu" if kind == "cuda" else "cpu"
    try:
        devices = jax.devices(platform)
    except RuntimeError as exc:
        present = sorted({d.platform for d in jax.devices()})
        raise DeviceUnavailable(
            f"--device {kind}: JAX {jax.__version__} has no {platform!r} platform (it has "
            f"{', '.join(present)}; install jax[cuda12] on a machine with an NVIDIA GPU): "
            f"{str(exc).splitlines()[0]}") from None
    if (index or 0) >= len(devices):
        raise DeviceUnavailable(f"--device {kind}:{index}: JAX sees only {len(devices)} "
                                f"{platform} devices")
    return devices[index or 0]


class JaxBackend(TableBackend):
    """JAX ``lax`` on the default device, channels-last (dimension_numbers given explicitly)."""

    name = "jax"
    channels_first = False
    ops = _table(channels_first=False)
    dtypes = {"float64": jnp.float64, "float32": jnp.float32, "float16": jnp.float16,
              "bfloat16": jnp.bfloat16}

    def __init__(self):
        #: The device the arrays are put on (jitted functions run where their inputs are):
        #: the one ``crosscheck run --device`` asks for, else JAX's default (None).
        self.device = _device()

    def version(self) -> str:
        platform = self.device.platform if self.device is not None else jax.default_backend()
        return f"jax {jax.__version__} ({platform})"

    def settings(self) -> dict:
        """Precision-relevant settings in force (recorded in the reports)."""
        device = self.device if self.device is not None else jax.devices()[0]
        return {"jax_enable_x64": bool(jax.config.read("jax_enable_x64")),
                "conv_precision": PRECISION.name,
                "layout": "channels-first (NCW/OIW, NCHW/OIHW, NCDHW/OIDHW)"
                if self.channels_first else "channels-last (NWC/WIO, NHWC/HWIO, NDHWC/DHWIO)",
                "platform": device.platform,
                "device": f"{device.platform}:{device.id}",
                "device_kind": getattr(device, "device_kind", None),
                "jax_default_matmul_precision":
                    str(jax.config.jax_default_matmul_precision),
                **({} if device.platform == "cpu" else {
                    # On a GPU: flags that change float32 accumulation (TF32 among them).
                    "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
                    "NVIDIA_TF32_OVERRIDE": os.environ.get("NVIDIA_TF32_OVERRIDE")})}

    def to_framework(self, a: np.ndarray, dtype):
        # The values are exact in dtype (Inputs guarantees it), so the cast is exact. Cast in
        # NumPy (a new array) and transfer: a cast by JAX would compile, and keep, one
        # convert_element_type executable per shape outside the bounded cache.
        return jax.device_put(np.asarray(a).astype(np.dtype(dtype)), self.device)

    def vjp(self, fn, primals, cotangent):
        return _jax_vjp(fn, primals, cotangent)

    def jvp(self, fn, primals, tangents_):
        return _jax_jvp(fn, primals, tangents_)

    def double_vjp(self, fn, primals, cotangent, cotangents):
        return _jax_double_vjp(fn, primals, cotangent, cotangents)

    def compute(self, case, arrays: dict) -> dict:
        fn = self._compiled(case)
        slots = _SLOTS.get(case.direction, ("x", "w", "b"))
        out = fn(arrays["x"], arrays["w"], arrays["b"], arrays["dy"],
                 *(arrays[role] for role in slots))[case.direction]
        return {name: out[name] for name in case.output_names()}

    def _compiled(self, case):
        key = (self.channels_first, case.compile_key)
        with _compiled_lock:
            parts, fn = _compiled.get(key, ((), None))
            if case.direction in parts:
                _compiled.move_to_end(key)
                return fn
        # The function reads only the case's static geometry, which every case of the key
        # shares. It computes the first-order directions, and the higher-order ones too once
        # a case asks for them (then it replaces the first-order one); a direction the op
        # cannot differentiate (max pooling with window dilation) is left out.
        geometry_case = case.with_(direction="forward", seed=0, inputs="random")
        impl = self.ops[case.family]
        wanted = set(parts) | set(DIRECTIONS if case.direction in DIRECTIONS
                                  else DIRECTIONS + HIGHER_ORDER)
        parts = tuple(d for d in DIRECTIONS + HIGHER_ORDER if d in wanted and (
            d == "forward" or impl.unsupported is None
            or impl.unsupported(geometry_case.with_(direction=d)) is None))
        fn = _fused(impl, geometry_case, parts)
        with _compiled_lock:
            _compiled[key] = (parts, fn)
            _compiled.move_to_end(key)
            while len(_compiled) > MAX_COMPILED:
                _compiled.popitem(last=False)
        return fn

    def compiled_count(self) -> int:
        """How many compiled functions are alive (both layouts share them)."""
        with _compiled_lock:
            return len(_compiled)

    def clear_compiled(self) -> None:
        """Drop every compiled function (both layouts) and JAX's own caches.

        A runner may call it between chunks of a long sweep to return the executables'
        memory and memory maps.
        """
        with _compiled_lock:
            _compiled.clear()
        jax.clear_caches()


class JaxNchwBackend(JaxBackend):
    """The same JAX calls channels-first (``NCHW/OIHW`` and its 1-D and 3-D forms)."""

    name = "jax.nchw"
    channels_first = True
    ops = _table(channels_first=True)
