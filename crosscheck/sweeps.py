"""Deterministic case lists: smoke, default and full sweeps, plus semantic probes.

Every list is a pure function of its size name, so every pytest-xdist worker,
the CLI and the reports see the same cases in the same order. Geometries are
drawn (seeded) by each op's generator in :mod:`crosscheck.ops`, kept when the
reference accepts them, then each geometry is run forward and backward with a
few seeds, and every third geometry in forward mode (``jvp``) and second order
(``double_backward``) too; cases that share a geometry share JAX's compiled function.

The exact tier (:mod:`crosscheck.exact`) runs on some of those geometries, in the
directions the geometry already has and with its dtype, so that it shares their compile
key (JAX compiles nothing for it): :func:`exact_count` geometries per op, spread over the
op's list, where the tier applies (average pools: power-of-two divisors) and its
reference is not degenerate (:mod:`crosscheck.trust`). The random tier's continuous
inputs are never degenerate but by the op's structure, which the rule does not count.
"""

from __future__ import annotations

import os
import random
import zlib
from functools import lru_cache

import numpy as np

from crosscheck import ops
from crosscheck.cases import Case, Inputs

#: ``networks`` is not drawn: it is the layers of real networks (:mod:`crosscheck.networks`).
SIZES = ("smoke", "default", "full", "networks")

#: size -> ({op name: geometries}, seeds per geometry). 2-D conv and pools keep 0.1.0's weight.
_SIZE_PLAN = {
    "smoke": ({"conv2d": 16, "max_pool2d": 6, "avg_pool2d": 6}, 1),
    "default": ({"conv2d": 160, "max_pool2d": 64, "avg_pool2d": 64}, 2),
    "full": ({"conv2d": 1500, "max_pool2d": 600, "avg_pool2d": 600}, 3),
}
#: Geometries of every other (op, rank) per size.
_OTHER = {"smoke": 3, "default": 16, "full": 150}

_DTYPES = ["float64"] * 12 + ["float32"] * 5 + ["float16"] * 2 + ["bfloat16"]

#: Every this-many-th geometry also runs the higher-order directions (:data:`ops.HIGHER_ORDER`).
HIGHER_ORDER_EVERY = 3

#: Fewest exact-tier geometries per op name and size (more for ops with many geometries:
#: one in :data:`EXACT_SHARE`).
_EXACT = {"smoke": 2, "default": 4, "full": 12}
EXACT_SHARE = 16


def size_from_env(default: str = "default") -> str:
    """The sweep size chosen by ``CROSSCHECK_SWEEP`` (smoke, default or full)."""
    size = os.environ.get("CROSSCHECK_SWEEP", default)
    if size not in SIZES:
        raise ValueError(f"CROSSCHECK_SWEEP must be one of {SIZES}, got {size!r}")
    return size


def plan(size: str) -> dict[str, int]:
    """Geometries per op name for a sweep size."""
    counts, _ = _SIZE_PLAN[size]
    return {name: counts.get(name, _OTHER[size]) for name in ops.op_names()}


@lru_cache(maxsize=None)
def sweep(size: str = "default") -> tuple[Case, ...]:
    """All cases of a sweep: random-input geometries, edge cases and semantic probes."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    if size == "networks":
        # Real sizes, kept whole: valid()'s cap on output sizes is for drawn geometries.
        from crosscheck.networks import network_cases

        return network_cases()
    _, seeds = _SIZE_PLAN[size]
    geometries, exact = [], set()
    for name, count in plan(size).items():
        entry, rank = ops.get(name)
        drawn = _sample(entry, rank, count, salt=zlib.crc32(name.encode()))
        exact |= _exact_geometries(drawn, len(geometries), exact_count(size, count))
        geometries += drawn
    geometries += list(edge_cases())
    cases = []
    for i, g in enumerate(geometries):
        cases += [g.with_(direction=d, seed=s) for s in range(seeds) for d in directions(i)]
        if i in exact:
            cases += [g.with_(direction=d, inputs="exact") for d in directions(i)]
    return tuple(cases) + probe_cases()


def exact_count(size: str, geometries: int) -> int:
    """How many of an op's ``geometries`` also run the exact tier in a sweep of ``size``."""
    return min(geometries, max(_EXACT[size], geometries // EXACT_SHARE))


def _exact_geometries(drawn: list[Case], start: int, count: int) -> set[int]:
    """Sweep indices (``start`` + position in ``drawn``) of ``count`` geometries spread over
    ``drawn`` on which the exact tier holds and its reference is not degenerate."""
    step = max(1, len(drawn) // max(count, 1))
    chosen: set[int] = set()
    for j, g in enumerate(drawn):
        if len(chosen) < count and j >= len(chosen) * step and \
                _exact_holds(g, directions(start + j)):
            chosen.add(start + j)
    return chosen


def _exact_holds(geometry: Case, dirs) -> bool:
    from crosscheck.runner import prepared
    from crosscheck.trust import degenerate

    for d in dirs:
        case = geometry.with_(direction=d, inputs="exact")
        try:
            inputs, ref, _ = prepared(case)
        except ValueError:  # the tier does not apply (an average pool's divisor)
            return False
        if degenerate(case, ref, inputs):
            return False
    return True


def directions(index: int) -> tuple[str, ...]:
    """The directions of a sweep's ``index``-th geometry: forward and backward, and on every
    :data:`HIGHER_ORDER_EVERY`-th one the higher-order directions first, so that a backend
    which compiles (JAX) sees them before the first-order cases and builds one function
    for all four."""
    if index % HIGHER_ORDER_EVERY:
        return ops.DIRECTIONS
    return ops.HIGHER_ORDER + ops.DIRECTIONS


def edge_cases() -> tuple[Case, ...]:
    """Cases named by the issues: empty batch, 1x1 outputs, ceil_mode's dropped window."""
    conv = dict(direction="forward")
    return (
        Case.of("conv", 2, **conv, n=0, spatial=(5, 5), c_in=3, c_out=4, kernel=3,
                tags=("empty batch",)),
        Case.of("conv", 2, **conv, n=2, spatial=(3, 3), c_in=2, c_out=3, kernel=3,
                tags=("1x1 output",)),
        Case.of("conv", 2, **conv, n=1, spatial=(16, 8), c_in=2, c_out=2, kernel=(7, 3),
                stride=2, padding="same", tags=("same split H=16 f=7 s=2 -> (2,3)",)),
        Case.of("conv", 2, **conv, n=1, spatial=(16, 8), c_in=2, c_out=2, kernel=(7, 3),
                stride=2, padding="same_lower", tags=("same_lower split H=16 f=7 s=2 -> (3,2)",)),
        Case.of("conv", 2, **conv, n=1, spatial=(4, 4), c_in=2, c_out=2, kernel=5,
                padding=((1, 0), (0, 1)), tags=("kernel larger than input",)),
        Case.of("max_pool", 2, n=1, spatial=(5, 5), c_in=2, kernel=2, stride=2, padding=1,
                ceil_mode=True, tags=("ceil L=5 f=2 s=2 p=1 -> 3",)),
        Case.of("avg_pool", 2, n=1, spatial=(9, 9), c_in=2, kernel=4, stride=4, padding=2,
                ceil_mode=True, tags=("ceil L=9 f=4 s=4 p=2 -> 3",)),
        Case.of("avg_pool", 2, n=1, spatial=(12, 12), c_in=1, kernel=1, stride=2,
                ceil_mode=True, tags=("ceil L=12 f=1 s=2 -> 6",)),
        Case.of("avg_pool", 2, n=0, spatial=(6, 6), c_in=3, kernel=2, tags=("empty batch",)),
        Case.of("max_pool", 2, n=0, spatial=(6, 6), c_in=3, kernel=3, stride=2, padding=1,
                tags=("empty batch",)),
        Case.of("conv", 2, n=1, spatial=(6, 9), c_in=6, c_out=3, kernel=(4, 2),
                padding=((3, 3), (2, 0)), groups=3, dtype="float32",
                tags=("pad before > dilation*(k-1): XLA:CPU's cropping conv, openxla/xla#48713",)),
        Case.of("conv_transpose", 2, n=1, spatial=(4, 5), c_in=2, c_out=3, kernel=3, stride=2,
                padding=1, output_padding=1, tags=("output_padding fills the last row",)),
        Case.of("adaptive_avg_pool", 2, n=2, spatial=(7, 5), c_in=3, output_size=1,
                tags=("global average pooling",)),
        Case.of("adaptive_max_pool", 3, n=1, spatial=(3, 4, 5), c_in=2, output_size=1,
                tags=("global max pooling",)),
        Case.of("max_pool", 1, n=2, spatial=(9,), c_in=1, kernel=3, stride=2, padding=1,
                return_indices=True, tags=("indices",)),
        # Long half-precision reductions (K = 576), where a declared float32 accumulator
        # tightens the bound a hundredfold (crosscheck.accumulation): a kernel summing in
        # float16 fails there; the drawn geometries' half-precision reductions are short.
        *(Case.of("conv", 2, **conv, n=2, spatial=(12, 12), c_in=64, c_out=8, kernel=3,
                  dtype=dtype, tags=("long reduction",)) for dtype in ("float16", "bfloat16")),
    )


def probe_cases() -> tuple[Case, ...]:
    """Pooling cases whose inputs exercise the known differences (ties, NaN, -inf)."""
    geometries = [
        Case.of("max_pool", 2, n=2, spatial=(7, 7), c_in=3, kernel=3, stride=1, padding=1),
        Case.of("max_pool", 2, n=2, spatial=(8, 7), c_in=2, kernel=3, stride=2, padding=1,
                ceil_mode=True),
        Case.of("max_pool", 2, n=1, spatial=(6, 6), c_in=2, kernel=2, stride=2),
        Case.of("max_pool", 1, n=2, spatial=(9,), c_in=2, kernel=3, stride=2, padding=1,
                return_indices=True),
        Case.of("max_pool", 3, n=1, spatial=(4, 5, 4), c_in=2, kernel=2, stride=1, padding=1,
                return_indices=True),
        Case.of("adaptive_max_pool", 2, n=1, spatial=(7, 6), c_in=2, output_size=(3, 4),
                return_indices=True),
        # Averages must keep a NaN or an infinity in the bins that hold it.
        Case.of("adaptive_avg_pool", 2, n=1, spatial=(7, 6), c_in=2, output_size=(3, 4)),
        Case.of("avg_pool", 1, n=2, spatial=(9,), c_in=2, kernel=3, stride=2, padding=1),
        Case.of("avg_pool", 1, n=2, spatial=(9,), c_in=2, kernel=3, stride=2, padding=1,
                count_include_pad=False),
        # ceil_mode's last window reaches one cell past the padding, which its divisor must
        # not count (pytorch#183528); the float32 'offset' run reaches ONNX Runtime too.
        Case.of("avg_pool", 2, n=1, spatial=(9, 9), c_in=2, kernel=4, stride=4, padding=1,
                ceil_mode=True),
    ]
    cases = []
    for g in geometries:
        for d in ops.HIGHER_ORDER + ops.DIRECTIONS:
            for kind in ("ties", "nan", "neginf"):
                cases.append(g.with_(direction=d, inputs=kind, tags=("probe",)))
            cases.append(g.with_(direction=d, inputs="offset", dtype="float32", tags=("probe",)))
    # All -inf windows in float32 too: some kernels start their maximum at -FLT_MAX.
    cases.append(geometries[0].with_(inputs="neginf", dtype="float32", tags=("probe",)))
    return tuple(cases)


def valid(case: Case) -> bool:
    """Whether the reference accepts the geometry (the generator's filter, not an oracle)."""
    try:
        out = case.out_spatial()
        if min(out) < 1 or case.n * np.prod(out) * case.c_out > 200_000:
            return False
        probe = case.with_(n=0)
        shapes = (probe.n, *probe.spatial, probe.c_in)
        w_shape = probe.entry.weight_shape(probe)
        w = None if w_shape is None else np.zeros(w_shape)
        b = np.zeros(probe.c_out) if probe.is_conv and probe.bias else None
        probe.entry.reference(probe, Inputs(np.zeros(shapes), w, b,
                                            np.zeros((0, *out, probe.c_out))))
    except ValueError:
        return False
    return True


def _sample(entry: ops.Op, rank: int, count: int, salt: int) -> list[Case]:
    """``count`` distinct valid geometries drawn with a seeded generator."""
    rng = random.Random(1000 + salt)
    chosen, seen = [], set()
    for _ in range(count * 50):
        if len(chosen) == count:
            break
        case = entry.draw(rng, rank).with_(dtype=rng.choice(_DTYPES))
        if case.id not in seen and valid(case):
            seen.add(case.id)
            chosen.append(case)
    return chosen
