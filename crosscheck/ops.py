"""The op table: one plain entry per op, from which cases, ids, sweeps, bounds and reports derive.

An :class:`Op` says what an op is: its parameters (defaults and id tokens), whether
it has weights, its output names per direction, how big its output is, which terms
each output sums (the reduction length ``K`` of the rounding bound and the
absolute-value computation ``A``), the reference (refcnn's rank-generic functions in
float64), and a generator of sweep geometries. Adding an op means adding an entry
here (and its functions in each backend's table); nothing else names ops.

Ops carry their rank in their name, as torch does: ``conv1d``, ``conv2d``, ``conv3d``,
``max_pool2d``, ``adaptive_avg_pool3d``; :func:`get` splits a name into its entry
and rank.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from crosscheck.params import Param

#: First-order directions: every sweep geometry (and every network layer) runs in both.
DIRECTIONS = ("forward", "backward")
#: Forward mode and second-order reverse mode, run on a subset of the sweep's geometries.
#: ``jvp``: the output's tangent ``ty`` for tangents ``tx`` (and ``tw``, ``tb``) of the
#: inputs. ``double_backward``: the VJP of the backward at ``(dy, x, w, b)`` for cotangents
#: ``gx`` (and ``gw``, ``gb``) of its outputs, i.e. the gradients of
#: ``<dx, gx> + <dw, gw> + <db, gb>`` with respect to what the backward reads: ``ddy``
#: (for dy) and ``dx``, ``dw`` (for x and w) where the backward depends on them.
HIGHER_ORDER = ("jvp", "double_backward")
#: The short form of each direction in case ids.
DIRECTION_TOKENS = {"forward": "fwd", "backward": "bwd", "jvp": "jvp", "double_backward": "bwd2"}


@dataclass(frozen=True)
class Op:
    """One op family of the table (``conv``, ``max_pool``, ...), for ranks ``ranks``.

    Attributes
    ----------
    family : the name without its rank
    ranks : spatial ranks the suite checks
    params : parameters in id order
    weighted : the op takes weights ``w`` (and, with ``bias``, ``b``)
    outputs : direction -> output names (``db`` is dropped for cases without bias): forward
        ``y`` (and max pools' ``indices``), backward ``dx, dw, db``, jvp ``ty``,
        double_backward ``ddy`` plus ``dx, dw`` for convs (b is in no first-order
        gradient), ``dx`` for max pools (zeros: the routing is piecewise constant in x)
        and nothing more for average pools (their backward reads x only for its shape)
    reference : ``(case, inputs) -> {name: float64 array}`` through ``refcnn.functional``
    magnitudes : ``(case, inputs) -> {name: (K, A)}``: terms summed per element and the
        computation redone on absolute values (the rounding bound's ingredients)
    draw : ``(rng, rank) -> Case``: one random sweep geometry (filtered by validity)
    notebook : the course notebook's function for this op, where it has one
    """

    family: str
    ranks: tuple[int, ...]
    params: tuple[Param, ...]
    weighted: bool
    outputs: dict[str, tuple[str, ...]]
    reference: Callable
    magnitudes: Callable
    draw: Callable
    notebook: str | None = None

    def name(self, rank: int) -> str:
        return f"{self.family}{rank}d"

    def output_names(self, case) -> tuple[str, ...]:
        names = self.outputs[case.direction]
        if case.direction == "forward" and "indices" in names and not case.params.get(
                "return_indices", False):
            names = tuple(n for n in names if n != "indices")
        if not case.params.get("bias", True):
            names = tuple(n for n in names if n != "db")
        return names

    def weight_shape(self, case) -> tuple[int, ...] | None:
        if not self.weighted:
            return None
        groups = case.groups
        if self.family == "conv_transpose":
            return (*case.kernel, case.c_out // groups, case.c_in)
        return (*case.kernel, case.c_in // groups, case.c_out)


# ---- the functions the table points to -----------------------------------------------------
def _functional():
    import refcnn.functional as F  # the harness's reference (backends never import refcnn)

    return F


def _conv_options(case) -> dict:
    opts = dict(stride=case.stride, padding=case.padding, dilation=case.dilation,
                groups=case.groups)
    if case.family == "conv_transpose":
        opts["output_padding"] = case.output_padding
    return opts


def pool_options(case) -> dict:
    """Keyword options of ``refcnn.functional``'s pool functions (kernel_size included)."""
    p = case.params
    if case.family.startswith("adaptive"):
        return {"output_size": p["output_size"]}
    opts = dict(kernel_size=p["kernel"], stride=p["stride"], padding=p["padding"],
                dilation=p["dilation"], ceil_mode=p["ceil_mode"])
    if case.family == "avg_pool":
        opts.update(count_include_pad=p["count_include_pad"],
                    divisor_override=p["divisor_override"])
    return opts


def options(case) -> dict:
    """Keyword options of the ``refcnn.functional`` call ``case`` describes."""
    return _conv_options(case) if get(case.op)[0].weighted else pool_options(case)


def _conv_fns(case):
    F = _functional()
    if case.family == "conv":
        return F.conv, F.conv_backward, F.conv_jvp, F.conv_double_backward
    return (F.conv_transpose, F.conv_transpose_backward, F.conv_transpose_jvp,
            F.conv_transpose_double_backward)


def _conv_reference(case, inputs):
    fwd, bwd, jvp, bwd2 = _conv_fns(case)
    opts = _conv_options(case)
    x, w, b, dy = inputs.x, inputs.w, inputs.b, inputs.dy
    if case.direction == "forward":
        return {"y": fwd(x, w, b, **opts)}
    if case.direction == "jvp":
        return {"ty": jvp(x, w, b, inputs.tx, inputs.tw, inputs.tb, **opts)}
    if case.direction == "double_backward":
        ddy, dx, dw = bwd2(dy, x, w, b, inputs.gx, inputs.gw, inputs.gb, **opts)
        return {"ddy": ddy, "dx": dx, "dw": dw}
    dx, dw, db = bwd(dy, x, w, b, **opts)
    return {"dx": dx, "dw": dw, "db": db} if b is not None else {"dx": dx, "dw": dw}


def _conv_magnitudes(case, inputs):
    """K and A per output. The higher-order outputs are the same bilinear forms with a
    tangent (or second-order cotangent) in one slot: ``ty = x*tw + tx*w + tb`` sums twice
    the forward's products plus one, ``ddy`` the same with ``g`` for ``t``, and the
    second-order ``dx``, ``dw`` are the first-order ones with ``gw`` for w, ``gx`` for x."""
    fwd, bwd, _, _ = _conv_fns(case)
    x, w, dy = _finite_abs(inputs.x), np.abs(inputs.w), np.abs(inputs.dy)
    b = None if inputs.b is None else np.abs(inputs.b)
    taps, g = math.prod(case.kernel), case.groups
    opts = _conv_options(case)
    rows_out = case.n * math.prod(_out(case))
    fan_in, fan_out = taps * case.c_in // g, taps * case.c_out // g
    # dw sums over every output position (conv), or every input position (transposed conv).
    rows_dw = rows_out if case.family == "conv" else case.n * math.prod(case.spatial)
    if case.direction == "forward":
        return {"y": (fan_in + 1, fwd(x, w, b, **opts))}
    if case.direction in HIGHER_ORDER:
        jvp = case.direction == "jvp"
        tx, tw, tb = (inputs.tx, inputs.tw, inputs.tb) if jvp else (inputs.gx, inputs.gw,
                                                                     inputs.gb)
        tx, tw = _finite_abs(tx), np.abs(tw)
        tb = None if tb is None else np.abs(tb)
        both = (2 * fan_in + 1, fwd(tx, w, tb, **opts) + fwd(x, tw, None, **opts))
        if jvp:
            return {"ty": both}
        return {"ddy": both, "dx": (fan_out, bwd(dy, x, tw, None, **opts)[0]),
                "dw": (rows_dw, bwd(dy, tx, w, None, **opts)[1])}
    dx, dw, db = bwd(dy, x, w, b, **opts)
    found = {"dx": (fan_out, dx), "dw": (rows_dw, dw)}
    if db is not None:
        found["db"] = (rows_out, db)
    return found


def _pool_fns(case):
    """(forward, backward, jvp, double_backward) of a pool family in refcnn.functional."""
    F = _functional()
    name = case.family
    return tuple(getattr(F, name + suffix)
                 for suffix in ("", "_backward", "_jvp", "_double_backward"))


def pool_call(fn, first, case, **extra):
    """``fn(*first, <case's kernel_size or output_size>, **<its options>, **extra)``: a call
    of one of refcnn.functional's pool functions with ``case``'s parameters."""
    opts = pool_options(case)
    if "output_size" in opts:
        return fn(*first, opts.pop("output_size"), **extra)
    return fn(*first, opts.pop("kernel_size"), **opts, **extra)


def _pool_reference(case, inputs):
    fwd, bwd, jvp, bwd2 = _pool_fns(case)
    if case.direction == "backward":
        return {"dx": pool_call(bwd, (inputs.dy, inputs.x), case)}
    if case.direction == "jvp":
        return {"ty": pool_call(jvp, (inputs.x, inputs.tx), case)}
    if case.direction == "double_backward":
        found = pool_call(bwd2, (inputs.dy, inputs.x, inputs.gx), case)
        return dict(zip(("ddy", "dx"), found)) if "max" in case.family else {"ddy": found}
    if case.params.get("return_indices"):
        y, idx = pool_call(fwd, (inputs.x,), case, return_indices=True)
        return {"y": y, "indices": idx}
    return {"y": pool_call(fwd, (inputs.x,), case)}


def _pool_magnitudes(case, inputs):
    fwd, bwd, _, _ = _pool_fns(case)
    is_max = "max" in case.family
    taps = _window_terms(case)
    if case.direction in HIGHER_ORDER:
        # The tangent (or gx) pooled through the forward's routing: a max moves one value
        # (exact), an average sums a window of it and divides, as the forward does.
        t = inputs.tx if case.direction == "jvp" else inputs.gx
        pooled = (0, np.zeros(inputs.dy.shape)) if is_max else \
            (taps + 1, pool_call(fwd, (_finite_abs(t),), case))
        if case.direction == "jvp":
            return {"ty": pooled}
        return {"ddy": pooled, "dx": (0, np.zeros(inputs.x.shape))} if is_max else \
            {"ddy": pooled}
    if case.direction == "forward":
        found = {"y": (0, np.zeros(inputs.dy.shape)) if is_max
                 else (taps + 1, pool_call(fwd, (_finite_abs(inputs.x),), case))}
        if case.params.get("return_indices"):
            found["indices"] = (0, np.zeros(inputs.dy.shape))
        return found
    # Routing follows the real input (ties and NaN included); overlapping windows add up.
    x = inputs.x if is_max else _finite_abs(inputs.x)
    return {"dx": (taps + (0 if is_max else 1), pool_call(bwd, (np.abs(inputs.dy), x), case))}


def _window_terms(case) -> int:
    """Largest number of cells one pooling window covers."""
    if case.family.startswith("adaptive"):
        from crosscheck.geometry import adaptive_bins

        return math.prod(max(e - s for s, e in adaptive_bins(n, o))
                         for n, o in zip(case.spatial, case.output_size))
    return math.prod(case.kernel)


def _out(case):
    from crosscheck.geometry import out_spatial

    return out_spatial(case)


def _finite_abs(a: np.ndarray) -> np.ndarray:
    """|a| with non-finite entries zeroed: their outputs are compared exactly instead."""
    return np.abs(np.where(np.isfinite(a), a, 0.0))


# ---- sweep generators: plain draws from lists per rank ----------------------------------------
_SPATIAL = {1: [1, 5, 7, 8, 12, 16], 2: [(1, 1), (5, 5), (7, 5), (8, 8), (6, 9), (12, 10), (4, 11)],
            3: [(1, 1, 1), (3, 4, 4), (4, 5, 3), (5, 5, 5), (2, 6, 4)]}
_POOL_SPATIAL = {1: [5, 7, 9, 12, 16], 2: [(5, 5), (7, 6), (9, 9), (4, 7), (12, 12), (8, 5), (2, 2)],
                 3: [(4, 4, 4), (5, 6, 4), (6, 5, 7), (3, 4, 5)]}
_CHANNELS = [(1, 1, 1), (3, 4, 1), (4, 6, 2), (4, 4, 4), (6, 3, 3), (2, 8, 1), (8, 8, 8)]
_KERNELS = [1, 2, 3, 4, 5]
_STRIDES = [1, 1, 2, 3]
_DILATIONS = [1, 1, 2, 3]
_BATCH = [1, 2, 3, 0]


def _axes(rng, values, rank):
    return tuple(rng.choice(values) for _ in range(rank))


def _spatial(rng, table, rank):
    s = rng.choice(table[rank])
    return (s,) if rank == 1 else tuple(s)


def _kernels(rng, rank):
    return _axes(rng, _KERNELS[:4] if rank == 3 else _KERNELS, rank)


def _pads(rng, rank, high):
    kind = rng.random()
    if kind < 0.3:
        return ((0, 0),) * rank
    if kind < 0.65:
        return tuple((p, p) for p in _axes(rng, range(high + 1), rank))
    return tuple((rng.randint(0, high), rng.randint(0, high)) for _ in range(rank))


def _draw_conv(rng, rank):
    from crosscheck.cases import Case

    c_in, c_out, groups = rng.choice(_CHANNELS)
    pad = rng.choice(["explicit"] * 5 + ["same", "valid", "same_lower"])
    return Case.of("conv", rank, "forward", n=rng.choice(_BATCH),
                   spatial=_spatial(rng, _SPATIAL, rank), c_in=c_in, c_out=c_out,
                   kernel=_kernels(rng, rank), stride=_axes(rng, _STRIDES, rank),
                   padding=_pads(rng, rank, 3) if pad == "explicit" else pad,
                   dilation=_axes(rng, _DILATIONS, rank), groups=groups,
                   bias=rng.random() < 0.8)


def _draw_conv_transpose(rng, rank):
    from crosscheck.cases import Case

    c_in, c_out, groups = rng.choice(_CHANNELS)
    stride = _axes(rng, _STRIDES, rank)
    dilation = _axes(rng, _DILATIONS, rank)
    # output_padding must stay below max(stride, dilation) on each axis (torch's rule).
    output_padding = tuple(rng.randrange(max(s, d)) if rng.random() < 0.4 else 0
                           for s, d in zip(stride, dilation))
    return Case.of("conv_transpose", rank, "forward", n=rng.choice(_BATCH[:3]),
                   spatial=_spatial(rng, _SPATIAL, rank), c_in=c_in, c_out=c_out,
                   kernel=_kernels(rng, rank), stride=stride,
                   padding=tuple((p, p) for p in _axes(rng, range(3), rank)),
                   output_padding=output_padding, dilation=dilation, groups=groups,
                   bias=rng.random() < 0.8)


def _draw_pool(family):
    def draw(rng, rank):
        from crosscheck.cases import Case

        kernel = _axes(rng, [1, 2, 3, 4] if rank < 3 else [1, 2, 3], rank)
        extra = {}
        if family == "avg_pool":
            extra["count_include_pad"], extra["divisor_override"] = rng.choice(
                [(True, None), (False, None), (True, 3)])
            dilation = (1,) * rank  # average pooling has no dilation in torch
        else:
            dilation = _axes(rng, [1, 1, 2], rank)
            extra["return_indices"] = rng.random() < 0.3
        c = rng.choice((1, 3))
        return Case.of(family, rank, "forward", n=rng.choice((1, 2)),
                       spatial=_spatial(rng, _POOL_SPATIAL, rank), c_in=c, c_out=c,
                       kernel=kernel, stride=_axes(rng, [1, 2, 3], rank),
                       padding=tuple((p, p) for p in (rng.randint(0, k // 2) for k in kernel))
                       if rng.random() < 0.7 else _pads(rng, rank, 2),
                       dilation=dilation, ceil_mode=rng.random() < 0.4, **extra)
    return draw


def _draw_adaptive(family):
    def draw(rng, rank):
        from crosscheck.cases import Case

        spatial = _spatial(rng, _POOL_SPATIAL, rank)
        output_size = tuple(rng.choice([1, max(1, n // 2), n, max(1, n - 1), min(n + 2, 2 * n)])
                            for n in spatial)
        extra = {"return_indices": rng.random() < 0.3} if "max" in family else {}
        c = rng.choice((1, 3))
        return Case.of(family, rank, "forward", n=rng.choice((1, 2)), spatial=spatial,
                       c_in=c, c_out=c, output_size=output_size, **extra)
    return draw


# ---- the table ------------------------------------------------------------------------------
_KERNEL = Param("kernel", "axes", None, "k")
_STRIDE = Param("stride", "axes", 1, "s")
#: Pools stride by their kernel unless told otherwise (torch's and the notebook's default).
_POOL_STRIDE = Param("stride", "axes", None, "s")
_PADDING = Param("padding", "padding", 0, "p")
_DILATION = Param("dilation", "axes", 1, "d")
_GROUPS = Param("groups", "int", 1, "g")
_BIAS = Param("bias", "flag", True, "nobias", "non-default")
_CEIL = Param("ceil_mode", "flag", False, "ceil", "non-default")
_INDICES = Param("return_indices", "flag", False, "idx", "non-default")
_OUTPUT_SIZE = Param("output_size", "axes", None, "a")

_CONV_OUTPUTS = {"forward": ("y",), "backward": ("dx", "dw", "db"), "jvp": ("ty",),
                 "double_backward": ("ddy", "dx", "dw")}
_POOL_OUTPUTS = {"forward": ("y",), "backward": ("dx",), "jvp": ("ty",),
                 "double_backward": ("ddy",)}
_MAX_OUTPUTS = {"forward": ("y", "indices"), "backward": ("dx",), "jvp": ("ty",),
                "double_backward": ("ddy", "dx")}

OPS: dict[str, Op] = {op.family: op for op in (
    Op("conv", (1, 2, 3), (_KERNEL, _STRIDE, _PADDING, _DILATION, _GROUPS, _BIAS), True,
       _CONV_OUTPUTS, _conv_reference, _conv_magnitudes, _draw_conv, notebook="conv_forward"),
    Op("conv_transpose", (1, 2, 3),
       (_KERNEL, _STRIDE, _PADDING, Param("output_padding", "axes", 0, "op", "non-default"),
        _DILATION, _GROUPS, _BIAS), True,
       _CONV_OUTPUTS, _conv_reference, _conv_magnitudes, _draw_conv_transpose),
    Op("max_pool", (1, 2, 3), (_KERNEL, _POOL_STRIDE, _PADDING, _DILATION, _CEIL, _INDICES), False,
       _MAX_OUTPUTS, _pool_reference, _pool_magnitudes, _draw_pool("max_pool"),
       notebook="pool_forward"),
    Op("avg_pool", (1, 2, 3),
       (_KERNEL, _POOL_STRIDE, _PADDING, _DILATION, _CEIL,
        Param("count_include_pad", "flag", True, "excl", "non-default"),
        Param("divisor_override", "optint", None, "div", "non-default")), False,
       _POOL_OUTPUTS, _pool_reference, _pool_magnitudes, _draw_pool("avg_pool"),
       notebook="pool_forward"),
    Op("adaptive_avg_pool", (1, 2, 3), (_OUTPUT_SIZE,), False, _POOL_OUTPUTS, _pool_reference,
       _pool_magnitudes, _draw_adaptive("adaptive_avg_pool")),
    Op("adaptive_max_pool", (1, 2, 3), (_OUTPUT_SIZE, _INDICES), False, _MAX_OUTPUTS,
       _pool_reference, _pool_magnitudes, _draw_adaptive("adaptive_max_pool")),
)}

_NAME_RE = re.compile(r"(?P<family>[a-z_]+?)(?P<rank>[123])d")


def get(op: str) -> tuple[Op, int]:
    """``"max_pool2d"`` -> (the max_pool entry, 2); ValueError for a name not in the table."""
    m = _NAME_RE.fullmatch(op) if isinstance(op, str) else None
    entry = OPS.get(m.group("family")) if m else None
    if entry is None or int(m.group("rank")) not in entry.ranks:
        raise ValueError(f"op must be one of {op_names()}, got {op!r}")
    return entry, int(m.group("rank"))


def op_names() -> tuple[str, ...]:
    """Every op name of the table, e.g. ``conv1d, conv2d, conv3d, conv_transpose1d, ...``."""
    return tuple(entry.name(r) for entry in OPS.values() for r in entry.ranks)
