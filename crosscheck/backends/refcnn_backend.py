"""refcnn as a backend: its fast path and rank-generic functions, and the loop oracle.

These are implementations under test like any other (the reference that judges
every backend is refcnn's spec in float64, :mod:`crosscheck.ops`): ``refcnn``
runs its fast path (so every sweep checks it against the spec): ``refcnn.conv2d``
for 2-D convs, ``refcnn.fast.conv`` for 1-D and 3-D ones, ``refcnn.fast.conv_transpose``
for transposed convs of every rank, the blocked ``max_pool2d`` (its indices too) and
``avg_pool2d``, the 2-D max-pool gradient as users run it (through the forward's
indices), and ``refcnn.functional`` for the other pools; ``refcnn.loops`` runs the notebook API
as plain loops.
"""

from __future__ import annotations

import numpy as np

import refcnn
from refcnn import fast
from crosscheck.backends.driver import OpImpl, TableBackend
from crosscheck.ops import pool_options

_NUMPY_DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16}


def _grads(dx, dw, db):
    out = {"dx": dx, "dw": dw}
    if db is not None:
        out["db"] = db
    return out


def _conv_opts(case):
    opts = dict(stride=case.stride, padding=case.padding, dilation=case.dilation,
                groups=case.groups)
    if case.family == "conv_transpose":
        opts["output_padding"] = case.output_padding
    return opts


def _pool(case, fn, *arrays, **extra):
    opts = pool_options(case)
    if "output_size" in opts:
        return fn(*arrays, opts.pop("output_size"), **extra)
    return fn(*arrays, opts.pop("kernel_size"), **opts, **extra)


def _fast_2d(case):
    """2-D convs run the 2-D names users call (``refcnn.conv2d``), other ranks the
    rank-generic ``refcnn.fast.conv``."""
    return case.rank == 2


class RefcnnBackend(TableBackend):
    """refcnn: the fast path where it applies, ``refcnn.functional`` elsewhere.

    ``accumulate="native"`` makes the fast path sum in the inputs' precision.
    """

    name = "refcnn"
    dtypes = _NUMPY_DTYPES

    def __init__(self, accumulate: str = "float64"):
        self.accumulate = accumulate
        if accumulate != "float64":
            self.name = f"refcnn.{accumulate}"
        F, acc = refcnn.functional, {"accumulate": accumulate}

        def conv_forward(case, x, w, b):
            if case.family == "conv_transpose":
                return fast.conv_transpose(x, w, b, **_conv_opts(case), **acc)
            if _fast_2d(case):
                return refcnn.conv2d(x, w, b, **_conv_opts(case), **acc)
            return fast.conv(x, w, b, **_conv_opts(case), **acc)

        def conv_backward(case, dy, x, w, b):
            if case.family == "conv_transpose":
                fn = fast.conv_transpose_backward
            else:
                fn = refcnn.conv2d_backward if _fast_2d(case) else fast.conv_backward
            return _grads(*fn(dy, x, w, b, **_conv_opts(case), **acc))

        def pool(fast2d, fast2d_bwd, spec, spec_bwd, through_indices=False):
            """A pool op: ``fast2d``/``fast2d_bwd`` in 2-D (None: none), the spec elsewhere;
            ``through_indices``: the 2-D backward runs as users run it, the forward's
            indices then a scatter through them (the search path without indices is
            checked against that one by refcnn's tests)."""
            def forward(case, x, w, b):
                extra = {"return_indices": True} if case.params.get("return_indices") else {}
                if case.rank == 2 and fast2d is not None:
                    return _pool(case, fast2d, x, **extra, **acc)
                return _pool(case, spec, x, **extra)

            def backward(case, dy, x, w, b):
                if case.rank == 2 and fast2d_bwd is not None:
                    if through_indices:
                        _, idx = _pool(case, fast2d, x, return_indices=True, **acc)
                        return {"dx": _pool(case, fast2d_bwd, dy, x, indices=idx, **acc)}
                    return {"dx": _pool(case, fast2d_bwd, dy, x, **acc)}
                return {"dx": _pool(case, spec_bwd, dy, x)}
            return OpImpl(forward, backward)

        conv = OpImpl(conv_forward, conv_backward)
        self.ops = {
            "conv": conv, "conv_transpose": conv,
            "max_pool": pool(refcnn.max_pool2d, refcnn.max_pool2d_backward,
                             F.max_pool, F.max_pool_backward, through_indices=True),
            "avg_pool": pool(refcnn.avg_pool2d, refcnn.avg_pool2d_backward,
                             F.avg_pool, F.avg_pool_backward),
            "adaptive_avg_pool": pool(None, None, F.adaptive_avg_pool,
                                      F.adaptive_avg_pool_backward),
            "adaptive_max_pool": pool(None, None, F.adaptive_max_pool,
                                      F.adaptive_max_pool_backward),
        }

    def version(self) -> str:
        return refcnn.__version__

    def settings(self) -> dict:
        return {"accumulate": self.accumulate}

    def to_framework(self, a, dtype):
        return np.array(a, dtype=dtype, copy=True)


def _loops_unsupported(case):
    if case.family not in ("conv", "max_pool", "avg_pool") or case.rank != 2:
        return f"the loop oracle is the notebook's 2-D API: no {case.op}"
    if case.params.get("return_indices"):
        return "the notebook's pool_forward returns no indices"
    out = case.n * case.h * case.w * case.c_out * case.reduction_length()
    if out > 200_000:
        return "too large for the loop oracle (it is for small shapes)"
    return None


def _hparameters(case) -> dict:
    """The notebook-style ``hparameters`` dict for refcnn's layer API."""
    if case.is_conv:
        return {"stride": case.stride, "pad": case.padding, "dilation": case.dilation,
                "groups": case.groups}
    hp = {"f": case.kernel, "stride": case.stride, "pad": case.padding,
          "dilation": case.dilation, "ceil_mode": case.ceil_mode}
    if case.family == "avg_pool":
        hp["count_include_pad"] = case.count_include_pad
        hp["divisor_override"] = case.divisor_override
    return hp


class LoopsBackend(TableBackend):
    """``refcnn.loops``: the notebook API as explicit loops, through its hparameters."""

    name = "refcnn.loops"
    dtypes = _NUMPY_DTYPES

    def __init__(self):
        from refcnn import loops

        def conv_forward(case, x, w, b):
            # The notebook API always has a bias; a zero bias gives a bias-free conv.
            b = np.zeros(case.c_out, x.dtype) if b is None else b
            return loops.conv_forward(x, w, b.reshape(1, 1, 1, -1), _hparameters(case))[0]

        def conv_backward(case, dy, x, w, b):
            bias = np.zeros(case.c_out, x.dtype) if b is None else b
            _, cache = loops.conv_forward(x, w, bias.reshape(1, 1, 1, -1), _hparameters(case))
            dx, dw, db = loops.conv_backward(dy, cache)
            return _grads(dx, dw, None if b is None else db.reshape(-1))

        def mode(case):
            return "max" if case.family == "max_pool" else "average"

        def pool_forward(case, x, w, b):
            return loops.pool_forward(x, _hparameters(case), mode=mode(case))[0]

        def pool_backward(case, dy, x, w, b):
            _, cache = loops.pool_forward(x, _hparameters(case), mode=mode(case))
            return {"dx": loops.pool_backward(dy, cache, mode=mode(case))}

        pool = OpImpl(pool_forward, pool_backward, _loops_unsupported)
        self.ops = {"conv": OpImpl(conv_forward, conv_backward, _loops_unsupported),
                    "max_pool": pool, "avg_pool": pool}

    def version(self) -> str:
        return refcnn.__version__

    def unsupported(self, case):
        if case.family not in self.ops:
            return _loops_unsupported(case)
        return super().unsupported(case)

    def to_framework(self, a, dtype):
        return np.array(a, dtype=dtype, copy=True)
