"""Check refcnn's fast paths: against the loop oracle (small shapes) and torch (larger ones).

Run ``python benchmarks/check_fast_paths.py`` (about a minute). Every failing
case prints one line with its parameters; the exit status is the number of
failures (capped at 1). This is a hand check kept next to the benchmarks, not
a test suite: ``tests/`` holds the tests.

* Loop oracle (``refcnn.loops``): conv forward and backward over strides 1-3,
  paddings 0, 1, asymmetric and 'same', dilation 1-2, groups 1, 2 and
  depthwise, both ``accumulate`` modes, the default workspace and a 1-byte
  one (one output row per patch block); max and average pooling over kernel
  2-3, strides 1-3, paddings incl. asymmetric, dilation 1-2, ceil_mode,
  count_include_pad, divisor_override, and for max pooling ties, NaN and -inf
  inputs (torch's routing: first maximum, last NaN, an all -inf window's first
  real cell). float64 must agree to 1e-10; float32 to 1e-5 (relative).
* torch (``torch.nn.functional`` with autograd, NCHW through permute): the
  benchmark layers and a few more, forward and every gradient, float64 to
  1e-9 and float32 (native and default accumulation) to a bound scaled by the
  sum's length.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np

import refcnn
from refcnn import loops

FAILURES = []


def report(ok, what):
    if not ok:
        FAILURES.append(what)
        print("FAIL", what, flush=True)


def close(a, b, tol):
    return a.shape == b.shape and np.allclose(a, b, rtol=tol, atol=tol, equal_nan=True)


def conv_vs_loops():
    rng = np.random.default_rng(1)
    n = 0
    for s, p, d, g, acc, dtype in itertools.product(
            [1, 2, 3], [0, 1, ((1, 0), (2, 1)), "same"], [1, 2], [1, 2, "dw"],
            ["float64", "native"], [np.float64, np.float32]):
        c_in = 4
        c_out = 4 if g == "dw" else 6
        groups = c_in if g == "dw" else g
        x = rng.standard_normal((2, 7, 8, c_in)).astype(dtype)
        w = rng.standard_normal((3, 2, c_in // groups, c_out)).astype(dtype)
        b = rng.standard_normal((1, 1, 1, c_out)).astype(dtype)
        hp = dict(stride=s, pad=p, dilation=d, groups=groups)
        try:
            z, _ = loops.conv_forward(x, w, b, hp)
        except ValueError:
            continue
        dz = rng.standard_normal(z.shape).astype(dtype)
        ref = loops.conv_backward(dz, (x, w, b, hp))
        tol = 1e-10 if dtype == np.float64 and acc == "float64" else 1e-5
        for ws in (None, 1):
            opts = dict(stride=s, padding=p, dilation=d, groups=groups, accumulate=acc,
                        workspace_bytes=ws)
            y = refcnn.conv2d(x, w, b, **opts)
            got = refcnn.conv2d_backward(dz, x, w, b, **opts)
            n += 1
            what = f"conv vs loops {hp} {acc} {np.dtype(dtype).name} workspace={ws}"
            report(y.dtype == z.dtype and close(y, z, tol), what + " forward")
            for name, a, r in zip(("dx", "dw", "db"), got, ref):
                report(a.dtype == r.dtype and close(a, r, tol), f"{what} {name}")
    return n


def pool_vs_loops():
    rng = np.random.default_rng(2)
    n = 0
    for f, s, p, d, ceil, cip, dov, kind in itertools.product(
            [2, 3], [1, 2, 3], [0, 1, ((1, 0), (0, 1))], [1, 2], [False, True],
            [True, False], [None, 3], ["random", "ties", "nan", "-inf"]):
        x = rng.standard_normal((2, 7, 6, 3))
        if kind == "ties":
            x = np.round(x)
        elif kind == "nan":
            x[rng.random(x.shape) < 0.15] = np.nan
        elif kind == "-inf":
            x[rng.random(x.shape) < 0.6] = -np.inf
        hp = dict(f=f, stride=s, pad=p, dilation=d, ceil_mode=ceil, count_include_pad=cip,
                  divisor_override=dov)
        for mode in ("max", "average"):
            h = dict(hp)
            if mode == "max":
                if not cip or dov:
                    continue  # options of average pooling only
                del h["count_include_pad"], h["divisor_override"]
            elif kind != "random":
                continue
            for dtype in (np.float64, np.float32):
                xx = x.astype(dtype)
                try:
                    a, _ = loops.pool_forward(xx, h, mode)
                except ValueError:
                    continue
                da = rng.standard_normal(a.shape).astype(dtype)
                ref = loops.pool_backward(da, (xx, h), mode)
                got_a, _ = refcnn.pool_forward(xx, h, mode)
                got = refcnn.pool_backward(da, (xx, h), mode)
                n += 1
                tol = 1e-10 if dtype == np.float64 else 1e-5
                what = f"{mode} pool vs loops {h} {kind} {np.dtype(dtype).name}"
                report(got_a.dtype == a.dtype and close(got_a, a, tol), what + " forward")
                report(got.dtype == ref.dtype and close(got, ref, tol), what + " backward")
    return n


def vs_torch():
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(3)
    nhwc = lambda t: t.detach().permute(0, 2, 3, 1).numpy()  # NCHW -> NHWC
    n = 0
    convs = [  # N, H, W, C_in, C_out, f, stride, pad, dilation, groups
        (32, 32, 32, 64, 64, 3, 1, 1, 1, 1),
        (8, 112, 112, 3, 64, 7, 2, 3, 1, 1),
        (8, 56, 56, 64, 64, 3, 1, 1, 1, 64),
        (4, 29, 31, 16, 32, 3, 2, 1, 1, 2),
        (4, 30, 30, 8, 8, 3, 3, 2, 2, 8),
        (2, 40, 33, 12, 24, 5, 1, 2, 2, 1),
    ]
    for (bn, h, wd, ci, co, f, s, p, d, g), dtype in itertools.product(
            convs, [np.float64, np.float32]):
        x = rng.standard_normal((bn, h, wd, ci)).astype(dtype)
        w = (rng.standard_normal((f, f, ci // g, co)) / np.sqrt(f * f * ci // g)).astype(dtype)
        b = rng.standard_normal(co).astype(dtype)
        xt = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_()
        wt = torch.tensor(w).permute(3, 2, 0, 1).requires_grad_()  # HWIO -> OIHW
        bt = torch.tensor(b).requires_grad_()
        yt = F.conv2d(xt, wt, bt, stride=s, padding=p, dilation=d, groups=g)
        dy = rng.standard_normal(nhwc(yt).shape).astype(dtype)
        dxt, dwt, dbt = torch.autograd.grad(yt, (xt, wt, bt),
                                            torch.tensor(dy).permute(0, 3, 1, 2))
        ref = (nhwc(yt), nhwc(dxt), dwt.detach().permute(2, 3, 1, 0).numpy(), dbt.numpy())
        length = f * f * ci // g
        for acc in ("float64", "native"):
            opts = dict(stride=s, padding=p, dilation=d, groups=g, accumulate=acc)
            got = (refcnn.conv2d(x, w, b, **opts), *refcnn.conv2d_backward(dy, x, w, b, **opts))
            n += 1
            for name, a, r in zip(("y", "dx", "dw", "db"), got, ref):
                # dw sums over N*Ho*Wo terms, the others over at most f*f*C terms.
                terms = bn * h * wd if name in ("dw", "db") else length
                tol = 1e-9 if dtype == np.float64 else 4e-7 * np.sqrt(terms) * 4
                scale = max(1.0, float(np.abs(r).max()))
                ok = a.dtype == np.dtype(dtype) and a.shape == r.shape and bool(
                    np.abs(a - r).max() <= tol * scale)
                report(ok, f"conv vs torch {(bn, h, wd, ci, co, f, s, p, d, g)} "
                           f"{np.dtype(dtype).name} {acc} {name}: max err "
                           f"{np.abs(a - r).max() if a.shape == r.shape else a.shape}")
    pools = [  # mode, N, H, C, f, stride, pad, ceil_mode, count_include_pad
        ("max", 16, 56, 64, 3, 2, 1, False, True),
        ("avg", 16, 56, 64, 2, 2, 0, False, True),
        ("max", 4, 33, 8, 3, 2, 1, True, True),
        ("avg", 4, 33, 8, 3, 2, 1, True, False),
        ("avg", 4, 33, 8, 3, 2, 1, True, True),
    ]
    for (mode, bn, h, c, f, s, p, ceil, cip), dtype in itertools.product(
            pools, [np.float64, np.float32]):
        x = rng.standard_normal((bn, h, h, c)).astype(dtype)
        if mode == "max":
            x = np.round(x * 2) / 2  # ties
        xt = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_()
        if mode == "max":
            yt = F.max_pool2d(xt, f, s, p, ceil_mode=ceil)
            fwd = lambda: refcnn.max_pool2d(x, f, stride=s, padding=p, ceil_mode=ceil)
            bwd = lambda dy: refcnn.max_pool2d_backward(dy, x, f, stride=s, padding=p,
                                                        ceil_mode=ceil)
        else:
            yt = F.avg_pool2d(xt, f, s, p, ceil_mode=ceil, count_include_pad=cip)
            fwd = lambda: refcnn.avg_pool2d(x, f, stride=s, padding=p, ceil_mode=ceil,
                                            count_include_pad=cip)
            bwd = lambda dy: refcnn.avg_pool2d_backward(dy, x, f, stride=s, padding=p,
                                                        ceil_mode=ceil, count_include_pad=cip)
        dy = rng.standard_normal(nhwc(yt).shape).astype(dtype)
        (dxt,) = torch.autograd.grad(yt, (xt,), torch.tensor(dy).permute(0, 3, 1, 2))
        tol = 1e-12 if dtype == np.float64 else 1e-6
        n += 1
        what = f"{mode} pool vs torch {(bn, h, c, f, s, p, ceil, cip)} {np.dtype(dtype).name}"
        report(close(fwd(), nhwc(yt), tol), what + " forward")
        report(close(bwd(dy), nhwc(dxt), tol), what + " backward")
    return n


def main():
    counts = {"conv vs loops": conv_vs_loops(), "pool vs loops": pool_vs_loops(),
              "vs torch": vs_torch()}
    print(", ".join(f"{k}: {v} cases" for k, v in counts.items()),
          f"-- {len(FAILURES)} failure(s)")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
