"""Deterministic case lists: smoke, default and full sweeps, plus semantic probes.

Every list is a pure function of its size name, so every pytest-xdist worker,
the CLI and the reports see the same cases in the same order. Geometries are
sampled (seeded) from a product over the parameters that matter, then each
geometry is run forward and backward with a few seeds; cases that share a
geometry share JAX's compiled function, which keeps a large sweep fast.
"""

from __future__ import annotations

import os
import random
from functools import lru_cache

import numpy as np

from crosscheck.cases import Case
from refcnn._plan import pool_plan

SIZES = ("smoke", "default", "full")

#: size -> (conv geometries, max-pool geometries, avg-pool geometries, seeds per geometry)
_SIZE_PLAN = {
    "smoke": (24, 10, 10, 1),
    "default": (300, 120, 120, 2),
    "full": (1500, 600, 600, 3),
}

_HW = [(1, 1), (5, 5), (7, 5), (8, 8), (6, 9), (12, 10), (4, 11)]
_CHANNELS = [(1, 1, 1), (3, 4, 1), (4, 6, 2), (4, 4, 4), (6, 3, 3), (2, 8, 1), (8, 8, 8)]
_KERNELS = [(1, 1), (2, 2), (3, 3), (1, 3), (5, 4), (3, 2), (4, 4)]
_STRIDES = [(1, 1), (2, 2), (3, 3), (1, 2), (2, 3), (3, 1)]
_CONV_PADS = [((0, 0), (0, 0)), ((1, 1), (1, 1)), ((0, 1), (2, 0)), ((3, 3), (3, 3)),
              ((2, 1), (0, 3)), "same", "valid"]
_DILATIONS = [(1, 1), (2, 2), (1, 3), (3, 1)]
_BATCH = [1, 2, 3, 0]
_DTYPES = ["float64"] * 12 + ["float32"] * 5 + ["float16"] * 2 + ["bfloat16"]

_POOL_HW = [(5, 5), (7, 6), (9, 9), (4, 7), (12, 12), (8, 5), (2, 2)]
_POOL_KERNELS = [(1, 1), (2, 2), (3, 3), (2, 3), (4, 4), (3, 1)]
_POOL_PADS = [((0, 0), (0, 0)), ((1, 1), (1, 1)), ((1, 0), (0, 1)), ((0, 1), (1, 1)),
              ((2, 2), (2, 2)), ((1, 1), (0, 0))]
_POOL_DILATIONS = [(1, 1), (1, 1), (2, 2), (1, 2)]


def size_from_env(default: str = "default") -> str:
    """The sweep size chosen by ``CROSSCHECK_SWEEP`` (smoke, default or full)."""
    size = os.environ.get("CROSSCHECK_SWEEP", default)
    if size not in SIZES:
        raise ValueError(f"CROSSCHECK_SWEEP must be one of {SIZES}, got {size!r}")
    return size


@lru_cache(maxsize=None)
def sweep(size: str = "default") -> tuple[Case, ...]:
    """All cases of a sweep: random-input geometries, edge cases and semantic probes."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    n_conv, n_max, n_avg, seeds = _SIZE_PLAN[size]
    geometries = (_sample(_conv_geometry, n_conv, 1)
                  + _sample(_pool_geometry("max_pool2d"), n_max, 2)
                  + _sample(_pool_geometry("avg_pool2d"), n_avg, 3)
                  + list(edge_cases()))
    cases = [g.with_(direction=d, seed=s)
             for g in geometries for s in range(seeds) for d in ("forward", "backward")]
    return tuple(cases) + probe_cases()


def edge_cases() -> tuple[Case, ...]:
    """Cases named by the issues: empty batch, 1x1 outputs, ceil_mode's dropped window."""
    conv = dict(op="conv2d", direction="forward")
    return (
        Case(**conv, n=0, h=5, w=5, c_in=3, c_out=4, kernel=(3, 3), tags=("empty batch",)),
        Case(**conv, n=2, h=3, w=3, c_in=2, c_out=3, kernel=(3, 3), tags=("1x1 output",)),
        Case(**conv, n=1, h=16, w=8, c_in=2, c_out=2, kernel=(7, 3), stride=(2, 2),
             padding="same", tags=("same split H=16 f=7 s=2 -> (2,3)",)),
        Case(**conv, n=1, h=4, w=4, c_in=2, c_out=2, kernel=(5, 5), padding=((1, 0), (0, 1)),
             tags=("kernel larger than input",)),
        Case("max_pool2d", "forward", 1, 5, 5, 2, 2, (2, 2), (2, 2), ((1, 1), (1, 1)),
             ceil_mode=True, tags=("ceil L=5 f=2 s=2 p=1 -> 3",)),
        Case("avg_pool2d", "forward", 1, 9, 9, 2, 2, (4, 4), (4, 4), ((2, 2), (2, 2)),
             ceil_mode=True, tags=("ceil L=9 f=4 s=4 p=2 -> 3",)),
        Case("avg_pool2d", "forward", 1, 12, 12, 1, 1, (1, 1), (2, 2), ceil_mode=True,
             tags=("ceil L=12 f=1 s=2 -> 6",)),
        Case("avg_pool2d", "forward", 0, 6, 6, 3, 3, (2, 2), (2, 2), tags=("empty batch",)),
        Case("max_pool2d", "forward", 0, 6, 6, 3, 3, (3, 3), (2, 2), ((1, 1), (1, 1)),
             tags=("empty batch",)),
    )


def probe_cases() -> tuple[Case, ...]:
    """Max-pool cases whose inputs exercise the known differences (ties, NaN, -inf)."""
    geometries = [
        Case("max_pool2d", "forward", 2, 7, 7, 3, 3, (3, 3), (1, 1), ((1, 1), (1, 1))),
        Case("max_pool2d", "forward", 2, 8, 7, 2, 2, (3, 3), (2, 2), ((1, 1), (1, 1)),
             ceil_mode=True),
        Case("max_pool2d", "forward", 1, 6, 6, 2, 2, (2, 2), (2, 2)),
    ]
    cases = []
    for g in geometries:
        for d in ("forward", "backward"):
            for kind in ("ties", "nan", "neginf"):
                cases.append(g.with_(direction=d, inputs=kind, tags=("probe",)))
            cases.append(g.with_(direction=d, inputs="offset", dtype="float32", tags=("probe",)))
    return tuple(cases)


def _valid(case: Case) -> bool:
    """Whether refcnn accepts the geometry (the generator's filter, not an oracle)."""
    try:
        case.out_hw()
        if not case.is_conv:
            pool_plan(np.zeros((1, case.h, case.w, 1)), case.kernel, stride=case.stride,
                      padding=case.padding, dilation=case.dilation, ceil_mode=case.ceil_mode)
    except ValueError:
        return False
    return min(case.out_hw()) >= 1


def _conv_geometry(rng):
    hw, ch = rng.choice(_HW), rng.choice(_CHANNELS)
    return Case("conv2d", "forward", rng.choice(_BATCH), hw[0], hw[1], ch[0], ch[1],
                rng.choice(_KERNELS), rng.choice(_STRIDES), rng.choice(_CONV_PADS),
                rng.choice(_DILATIONS), ch[2], bias=rng.random() < 0.8)


def _pool_geometry(op):
    def draw(rng):
        hw, c = rng.choice(_POOL_HW), rng.choice((1, 3))
        incl, div = rng.choice([(True, None), (False, None), (True, 3)]
                               if op == "avg_pool2d" else [(True, None)])
        return Case(op, "forward", rng.choice((1, 2)), hw[0], hw[1], c, c,
                    rng.choice(_POOL_KERNELS), rng.choice(_STRIDES), rng.choice(_POOL_PADS),
                    rng.choice(_POOL_DILATIONS), ceil_mode=rng.random() < 0.4,
                    count_include_pad=incl, divisor_override=div)
    return draw


def _sample(draw, count: int, salt: int) -> list[Case]:
    """``count`` distinct valid geometries drawn with a seeded generator."""
    rng = random.Random(1000 + salt)
    chosen, seen = [], set()
    for _ in range(count * 50):
        if len(chosen) == count:
            break
        case = draw(rng).with_(dtype=rng.choice(_DTYPES))
        if case.id not in seen and _valid(case):
            seen.add(case.id)
            chosen.append(case)
    return chosen
