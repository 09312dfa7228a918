"""refcnn.functional against torch, the independent oracle: every op forward and backward
(and max-pool indices), 1-, 2- and 3-D, float64, on a seeded sample of geometries.

The sample covers every padding form (int, per axis, per side, 'same', 'same_lower',
'valid', pool padding beyond half the kernel), dilation, groups, output_padding,
ceil_mode, count_include_pad False, divisor_override, adaptive bins with None, and
empty batches; max-pool data holds ties (small integers), NaN and all -inf windows.
The cotangent is random, never all ones.

Where torch has no native form of a case (asymmetric or large pool padding, padding
words) the input is padded explicitly before torch sees it, with -inf for max pooling
(indices are then mapped back to the unpadded plane) and 0 for average pooling; such
cases keep ceil_mode False, since explicit cells move torch's ceil rule, and their
max-pool data has no -inf, since torch would count an explicit -inf cell as real.

torch tensors are built as channels-first C-order copies. A moved-axis view with C or
W equal to 1 would reach torch with channels-last strides and take its channels-last
3-D max-pool kernel, whose index for a window of -inf drops the depth term (the
scalar tail of ``compute_internal`` in aten/src/ATen/native/cpu/MaxPoolKernel.cpp
initialises it to ``ih0 * input_width + iw0``); the default kernel gives the window's
first input cell, which is what the spec follows.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest

from refcnn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


# Cases ---------------------------------------------------------------------------------

@dataclass
class Case:
    op: str
    x_shape: tuple
    w_shape: tuple | None = None
    bias: bool = False
    kw: dict = field(default_factory=dict)
    data: str = "normal"  # normal | ties | nan | inf

    @property
    def rank(self):
        return len(self.x_shape) - 2

    @property
    def id(self):
        parts = [self.op, f"{self.rank}d", "x" + _compact(self.x_shape)]
        if self.w_shape is not None:
            parts.append("w" + _compact(self.w_shape) + ("+b" if self.bias else ""))
        parts += [f"{k}={_compact(v)}" for k, v in self.kw.items()]
        if self.data != "normal":
            parts.append(self.data)
        return "-".join(parts)

    def rng(self):
        return np.random.default_rng(zlib.crc32(self.id.encode()))


def _compact(v):
    return repr(v).replace(" ", "")


def _axis_pads(padding, size, kernel, stride, dilation):
    """The test's own reading of a padding spec: one (before, after) per axis."""
    if isinstance(padding, str):
        pads = []
        for n, k, s, d in zip(size, kernel, stride, dilation):
            if padding == "valid":
                pads.append((0, 0))
                continue
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            small, large = total // 2, total - total // 2
            pads.append((small, large) if padding == "same" else (large, small))
        return pads
    if isinstance(padding, int):
        return [(padding, padding)] * len(size)
    return [tuple(p) if isinstance(p, tuple) else (p, p) for p in padding]


def _per_axis(v, rank):
    return tuple(v) if isinstance(v, tuple) else (v,) * rank


def _draw_padding(rng, rank, high, words):
    form = rng.choice(["int", "axis", "side", *words])
    if form == "int":
        return int(rng.integers(0, high + 1))
    if form == "axis":
        return tuple(int(p) for p in rng.integers(0, high + 1, rank))
    if form == "side":
        return tuple((int(a), int(b)) for a, b in rng.integers(0, high + 1, (rank, 2)))
    return str(form)


def _ints(rng, low, high, rank):
    return tuple(int(v) for v in rng.integers(low, high + 1, rank))


def _conv_case(rng, rank, transpose):
    while True:
        n = int(rng.choice([0, 1, 2], p=[0.1, 0.5, 0.4]))
        groups = int(rng.integers(1, 4))
        size, kernel = _ints(rng, 1, 7, rank), _ints(rng, 1, 3, rank)
        stride, dilation = _ints(rng, 1, 3, rank), _ints(rng, 1, 2, rank)
        words = ["valid"] if transpose else ["same", "same_lower", "valid"]
        padding = _draw_padding(rng, rank, 2, words)
        pads = _axis_pads(padding, size, kernel, stride, dilation)
        c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        if transpose:
            kw["output_padding"] = tuple(int(rng.integers(0, max(s, d)))
                                         for s, d in zip(stride, dilation))
            out = [(m - 1) * s - lo - hi + d * (k - 1) + q + 1 for m, k, s, d, (lo, hi), q in
                   zip(size, kernel, stride, dilation, pads, kw["output_padding"])]
            w_shape = (*kernel, c_out // groups, c_in)
        else:
            out = [(m + lo + hi - d * (k - 1) - 1) // s + 1
                   for m, k, s, d, (lo, hi) in zip(size, kernel, stride, dilation, pads)]
            w_shape = (*kernel, c_in // groups, c_out)
        if min(out) >= 1:
            return Case("conv_transpose" if transpose else "conv", (n, *size, c_in), w_shape,
                        bool(rng.integers(0, 2)), kw)


def _windows_hold_input(size, kernel, stride, dilation, pads, ceil_mode):
    """Brute force: output sizes >= 1 and every window has a tap on an input cell."""
    for m, k, s, d, (lo, hi) in zip(size, kernel, stride, dilation, pads):
        extent = m + lo + hi - d * (k - 1) - 1
        if extent < 0:
            return False
        out = (-(-extent // s) if ceil_mode else extent // s) + 1
        if ceil_mode and (out - 1) * s >= m + lo:
            out -= 1
        for i in range(out):
            if not any(lo <= i * s + j * d < lo + m for j in range(k)):
                return False
    return True


def _pool_case(rng, rank, op):
    while True:
        n = int(rng.choice([0, 1, 2], p=[0.1, 0.5, 0.4]))
        size, kernel = _ints(rng, 1, 7, rank), _ints(rng, 1, 4, rank)
        stride = None if rng.random() < 0.2 else _ints(rng, 1, 3, rank)
        dilation = _ints(rng, 1, 2, rank) if op == "max_pool" else (1,) * rank
        padding = _draw_padding(rng, rank, 3, ["same", "same_lower", "valid"])
        pads = _axis_pads(padding, size, kernel, stride or kernel, dilation)
        native = _torch_native(pads, kernel)
        ceil_mode = bool(rng.integers(0, 2)) and native
        kw = {"stride": stride, "padding": padding, "dilation": dilation, "ceil_mode": ceil_mode}
        if op == "avg_pool":
            del kw["dilation"]
            kw["count_include_pad"] = bool(rng.integers(0, 2)) or not native
            kw["divisor_override"] = None if rng.random() < 0.7 else int(rng.integers(1, 6))
            # torch's avg_pool3d wants the unpadded input at least as large as the kernel.
            if rank == 3 and native and min(np.subtract(size, kernel)) < 0:
                continue
            data = "normal"
        else:
            data = str(rng.choice(["ties", "nan", "inf"] if native else ["ties", "nan"]))
        if _windows_hold_input(size, kernel, stride or kernel, dilation, pads, ceil_mode):
            return Case(op, (n, *size, int(rng.integers(1, 4))), kw={"kernel_size": kernel, **kw},
                        data=data)


def _adaptive_case(rng, rank, op):
    size = _ints(rng, 1, 9, rank)
    if rng.random() < 0.3:
        output_size = int(rng.integers(1, 5))
    else:
        output_size = tuple(None if rng.random() < 0.2 else int(rng.integers(1, 7))
                            for _ in range(rank))
    n = int(rng.choice([0, 1, 2], p=[0.1, 0.5, 0.4]))
    data = "normal" if op == "adaptive_avg_pool" else str(rng.choice(["ties", "nan", "inf"]))
    return Case(op, (n, *size, int(rng.integers(1, 4))), kw={"output_size": output_size},
                data=data)


def _torch_native(pads, kernel):
    """torch pads symmetrically by at most half the kernel."""
    return all(lo == hi <= k // 2 for (lo, hi), k in zip(pads, kernel))


def _sample():
    rng = np.random.default_rng(20240608)
    cases = []
    for rank in (1, 2, 3):
        cases += [_conv_case(rng, rank, False) for _ in range(12)]
        cases += [_conv_case(rng, rank, True) for _ in range(12)]
        cases += [_pool_case(rng, rank, "max_pool") for _ in range(20)]
        cases += [_pool_case(rng, rank, "avg_pool") for _ in range(16)]
        cases += [_adaptive_case(rng, rank, "adaptive_max_pool") for _ in range(8)]
        cases += [_adaptive_case(rng, rank, "adaptive_avg_pool") for _ in range(8)]
    # Global pooling, and a window of -inf in a padded corner, by hand.
    cases += [Case("adaptive_max_pool", (2, 4, 5, 3), kw={"output_size": 1}, data="inf"),
              Case("adaptive_avg_pool", (2, 3, 4, 2, 3), kw={"output_size": 1}),
              Case("max_pool", (1, 4, 4, 2), kw={"kernel_size": 3, "stride": 2, "padding": 1,
                                                 "dilation": 1, "ceil_mode": True}, data="inf")]
    return cases


CASES = _sample()


def _data(case, rng):
    x = rng.standard_normal(case.x_shape)
    if case.data in ("ties", "nan", "inf"):
        x = rng.integers(-2, 3, case.x_shape).astype(np.float64)
    if case.data in ("nan", "inf"):
        x[rng.random(case.x_shape) < 0.1] = np.nan
    if case.data == "inf":
        x[rng.random(case.x_shape) < 0.3] = -np.inf
        x[..., 0] = -np.inf  # every window of channel 0 is all -inf
    w = None if case.w_shape is None else rng.standard_normal(case.w_shape)
    c_out = None if w is None else (w.shape[-1] if case.op == "conv"
                                    else w.shape[-2] * case.kw["groups"])
    b = rng.standard_normal(c_out) if case.bias else None
    return x, w, b


# refcnn.functional side ------------------------------------------------------------------

def ours(case, x, w, b, rng):
    """Forward outputs, then a random cotangent, then gradients: a dict of named arrays."""
    kw = dict(case.kw)
    if case.op in ("conv", "conv_transpose"):
        fwd, bwd = getattr(F, case.op), getattr(F, case.op + "_backward")
        y = fwd(x, w, b, **kw)
        dy = rng.standard_normal(y.shape)
        dx, dw, db = bwd(dy, x, w, b, **kw)
        got = {"y": y, "dx": dx, "dw": dw}
        if b is not None:
            got["db"] = db
        return got, dy
    if case.op == "max_pool":
        k = kw.pop("kernel_size")
        y, indices = F.max_pool(x, k, return_indices=True, **kw)
        dy = rng.standard_normal(y.shape)
        return {"y": y, "indices": indices, "dx": F.max_pool_backward(dy, x, k, **kw)}, dy
    if case.op == "avg_pool":
        k = kw.pop("kernel_size")
        y = F.avg_pool(x, k, **kw)
        dy = rng.standard_normal(y.shape)
        return {"y": y, "dx": F.avg_pool_backward(dy, x, k, **kw)}, dy
    size = kw["output_size"]
    if case.op == "adaptive_max_pool":
        y, indices = F.adaptive_max_pool(x, size, return_indices=True)
        dy = rng.standard_normal(y.shape)
        return {"y": y, "indices": indices, "dx": F.adaptive_max_pool_backward(dy, x, size)}, dy
    y = F.adaptive_avg_pool(x, size)
    dy = rng.standard_normal(y.shape)
    return {"y": y, "dx": F.adaptive_avg_pool_backward(dy, x, size)}, dy


# torch side ------------------------------------------------------------------------------

def _nc(a):
    return torch.from_numpy(np.moveaxis(a, -1, 1).copy())  # C-order: see the module doc


def _nl(t):
    return np.moveaxis(t.detach().numpy(), 1, -1)


def _torch_pad(pads):
    """F.pad's order: the last axis first."""
    return [p for pair in reversed(pads) for p in pair]


def _torch_w(w, rank):
    """Ours (*kernel, A, B) -> torch's (B, A, *kernel), for conv and conv_transpose alike."""
    return torch.from_numpy(w.transpose(rank + 1, rank, *range(rank)).copy())


def _from_torch_w(g, rank):
    return g.numpy().transpose(*range(2, rank + 2), 1, 0)


def theirs(case, x, w, b, dy):
    rank, kw = case.rank, case.kw
    xt = _nc(x).requires_grad_()
    out = {}
    if case.op in ("conv", "conv_transpose"):
        wt = _torch_w(w, rank).requires_grad_()
        bt = None if b is None else torch.from_numpy(b).requires_grad_()
        stride, dilation = _per_axis(kw["stride"], rank), _per_axis(kw["dilation"], rank)
        pads = _axis_pads(kw["padding"], x.shape[1:-1], w.shape[:-2], stride, dilation)
        symmetric = all(lo == hi for lo, hi in pads)
        if case.op == "conv":
            xin = xt if symmetric else TF.pad(xt, _torch_pad(pads))
            p = [lo for lo, _ in pads] if symmetric else 0
            y = getattr(TF, f"conv{rank}d")(xin, wt, bt, stride, p, dilation, kw["groups"])
        else:
            # torch pads symmetrically; per-side padding crops the unpadded output.
            p = [lo for lo, _ in pads] if symmetric else 0
            y = getattr(TF, f"conv_transpose{rank}d")(xt, wt, bt, stride, p,
                                                       kw["output_padding"], kw["groups"],
                                                       dilation)
            if not symmetric:
                y = y[(slice(None), slice(None),
                       *(slice(lo, n - hi) for (lo, hi), n in zip(pads, y.shape[2:])))]
        out["y"] = _nl(y)
        y.backward(_nc(dy))
        out.update(dx=_nl(xt.grad), dw=_from_torch_w(wt.grad, rank))
        if b is not None:
            out["db"] = bt.grad.numpy()
        return out
    if case.op.startswith("adaptive"):
        fn = getattr(TF, f"{case.op}{rank}d")
        size = kw["output_size"]
        if rank == 1 and isinstance(size, tuple):  # the 1-D functions take no None
            size = tuple(x.shape[1] if o is None else o for o in size)
        if case.op == "adaptive_max_pool":
            y, indices = fn(xt, size, return_indices=True)
            out["indices"] = _nl(indices)
        else:
            y = fn(xt, size)
        out["y"] = _nl(y)
        y.backward(_nc(dy))
        out["dx"] = _nl(xt.grad)
        return out
    kernel = _per_axis(kw["kernel_size"], rank)
    stride = kernel if kw["stride"] is None else _per_axis(kw["stride"], rank)
    dilation = _per_axis(kw.get("dilation", 1), rank)
    pads = _axis_pads(kw["padding"], x.shape[1:-1], kernel, stride, dilation)
    native = _torch_native(pads, kernel)
    p = [lo for lo, _ in pads] if native else 0
    if case.op == "max_pool":
        xin = xt if native else TF.pad(xt, _torch_pad(pads), value=-np.inf)
        y, indices = getattr(TF, f"max_pool{rank}d")(xin, kernel, stride, p, dilation,
                                                     ceil_mode=kw["ceil_mode"],
                                                     return_indices=True)
        indices = _nl(indices)
        if not native:  # an index into the explicitly padded plane: map it back
            padded = [n + lo + hi for n, (lo, hi) in zip(x.shape[1:-1], pads)]
            at = np.unravel_index(indices, padded)
            indices = np.ravel_multi_index([a - lo for a, (lo, _) in zip(at, pads)],
                                           x.shape[1:-1])
        out["indices"] = indices
    else:
        xin = xt if native else TF.pad(xt, _torch_pad(pads))
        options = {"ceil_mode": kw["ceil_mode"], "count_include_pad": kw["count_include_pad"]}
        if rank == 1 and kw["divisor_override"] is not None:
            # avg_pool1d has no divisor_override: pool a unit height with avg_pool2d.
            y = TF.avg_pool2d(xin[:, :, None], (1, *kernel), (1, *stride), (0, *p) if native
                              else 0, divisor_override=kw["divisor_override"], **options)[:, :, 0]
        elif rank == 1:
            y = TF.avg_pool1d(xin, kernel, stride, p, **options)
        else:
            y = getattr(TF, f"avg_pool{rank}d")(xin, kernel, stride, p,
                                                divisor_override=kw["divisor_override"],
                                                **options)
    out["y"] = _nl(y)
    y.backward(_nc(dy))
    out["dx"] = _nl(xt.grad)
    return out


# The test -----------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_spec_matches_torch(case):
    rng = case.rng()
    x, w, b = _data(case, rng)
    got, dy = ours(case, x, w, b, rng)
    want = theirs(case, x, w, b, dy)
    assert sorted(got) == sorted(want)
    for name in want:
        where = f"{case.id}: {name}"
        assert got[name].shape == want[name].shape, where
        if name == "indices":
            assert got[name].dtype == np.int64, where
            np.testing.assert_array_equal(got[name], want[name], err_msg=where)
        elif name == "y" and case.op.endswith("max_pool"):
            np.testing.assert_array_equal(got[name], want[name], err_msg=where)
        else:
            assert got[name].dtype == np.float64, where
            np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12,
                                       err_msg=where)


def test_sample_covers_the_contract():
    """The sample holds every feature the module docstring promises."""
    ids = " ".join(c.id for c in CASES)
    for token in ("padding='same'", "padding='same_lower'", "padding='valid'", "padding=((",
                  "ceil_mode=True", "count_include_pad=False", "divisor_override=2",
                  "groups=3", "output_padding=(1", "None", "-inf", "-nan", "-ties", "x(0,"):
        assert token in ids, token
    for op in ("conv", "conv_transpose", "max_pool", "avg_pool", "adaptive_avg_pool",
               "adaptive_max_pool"):
        for rank in (1, 2, 3):
            assert f"{op}-{rank}d-" in ids, (op, rank)
    assert any(c.op == "max_pool" and c.kw["dilation"] != (1,) * c.rank for c in CASES)
    # pool padding beyond half the kernel
    assert any(c.op.endswith("_pool") and "padding" in c.kw and not _torch_native(
        _axis_pads(c.kw["padding"], c.x_shape[1:-1], _per_axis(c.kw["kernel_size"], c.rank),
                   _per_axis(c.kw["stride"] or c.kw["kernel_size"], c.rank),
                   _per_axis(c.kw.get("dilation", 1), c.rank)),
        _per_axis(c.kw["kernel_size"], c.rank)) for c in CASES)
