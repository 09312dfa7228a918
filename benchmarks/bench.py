"""Time refcnn against torch on CPU and report the ratios refcnn/torch.

Run ``python benchmarks/bench.py`` (about 3 minutes on 2 cores); it prints a
Markdown table and writes it to ``benchmarks/results.md``. ``--repeats N``
changes the number of timed runs per cell, ``--rows conv3x3,pool`` keeps the
rows whose id contains one of the words, ``--no-memory`` skips the memory part.

Method
------
* Same process, same inputs; refcnn takes NHWC/HWIO arrays, torch contiguous
  NCHW/OIHW tensors holding the same values (its default layout). Every
  candidate runs once to warm up, then the candidates of a row run in turn,
  ``repeats`` rounds, and each cell is the fastest of its rounds (noise only
  adds time); alternating runs spread slow moments of a shared machine over
  all candidates. Each timed call starts after a quiet pause of
  ``QUIET_SECONDS``: after a matrix product OpenBLAS's worker threads
  busy-wait for about 0.1 s (2**28 cycles) before they sleep, and a call that
  starts meanwhile shares a core with them. Without the pause torch's calls
  right after refcnn's ran up to 2x slow (the 3x3 float32 forward 17.5 ms
  against 8.3 ms), which flattered refcnn's ratios.
* Forward: the op alone (torch under ``no_grad``). Backward: everything the
  op's gradient gives: dx, dW and db for conv, dx for pooling (torch:
  ``autograd.grad`` of a retained graph, so its forward is not timed).
  Max pooling runs as in training on both sides: the forward returns the
  argmax (``return_indices=True``; torch's CPU forward computes its indices
  either way) and the backward scatters dy through the indices it saved.
* Rows: the 2-D layers through ``refcnn.conv2d`` and the pooling functions; a
  1-D conv, a 3-D conv and a transposed 2-D conv through the rank-generic
  ``refcnn.fast.conv`` / ``refcnn.fast.conv_transpose`` (torch: ``conv1d``,
  ``conv3d``, ``conv_transpose2d``).
* float32 rows are timed with ``accumulate="native"`` (float32 sums, as torch)
  and with the default ``accumulate="float64"``; the targets apply to native.
* "% of matmul peak": conv forward FLOPs (2 * N*Ho*Wo*C_out*f_h*f_w*C_in/groups)
  per second, over the FLOP/s of a NumPy (2048 x 2048) @ (2048 x 2048) product
  of the row's dtype, measured in the same run.
* Memory: the 7x7 stride-2 layer at batch 64 (float32), forward, each call in a
  fresh subprocess: the peak resident set size (``VmHWM``, reset through
  ``/proc/self/clear_refs`` just before the call) minus the resident size
  before it, for torch and refcnn alike; for refcnn also ``tracemalloc``'s
  peak (NumPy reports its allocations to tracemalloc).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import refcnn
from refcnn.fast import FastConfig

HERE = Path(__file__).resolve().parent


# --- cases ---------------------------------------------------------------------------

CONV_ROWS = [
    # id, N, H, C_in, C_out, f, stride, pad, groups, dtype
    ("conv3x3 64->64 32x32 N32 float64", 32, 32, 64, 64, 3, 1, 1, 1, np.float64),
    ("conv3x3 64->64 32x32 N32 float32", 32, 32, 64, 64, 3, 1, 1, 1, np.float32),
    ("conv7x7/2 3->64 112x112 N8 float32", 8, 112, 3, 64, 7, 2, 3, 1, np.float32),
    ("depthwise3x3 64 56x56 N8 float32", 8, 56, 64, 64, 3, 1, 1, 64, np.float32),
]
# Rank-generic rows, run through refcnn.fast.conv / refcnn.fast.conv_transpose:
# id, transposed, x shape (N, *L, C_in), kernel, C_out, options, dtype
ND_ROWS = [
    ("conv1d k3 128->128 L4096 N4 float32", False, (4, 4096, 128), (3,), 128,
     dict(stride=1, padding=1), np.float32),
    ("conv3d 3x3x3 32->32 8x28x28 N2 float32", False, (2, 8, 28, 28, 32), (3, 3, 3), 32,
     dict(stride=1, padding=1), np.float32),
    ("conv_transpose2d 4x4/2 64->32 28x28 N8 float32", True, (8, 28, 28, 64), (4, 4), 32,
     dict(stride=2, padding=1), np.float32),
]
POOL_ROWS = [
    # id, mode, N, H, C, f, stride, pad
    ("maxpool3x3/2 64 56x56 N16 float32", "max", 16, 56, 64, 3, 2, 1),
    ("avgpool2x2/2 64 56x56 N16 float32", "avg", 16, 56, 64, 2, 2, 0),
]


def to_torch(a, perm):
    return torch.from_numpy(np.ascontiguousarray(a.transpose(perm)))


def conv_candidates(row):
    name, n, h, c_in, c_out, f, s, p, g, dtype = row
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, h, c_in)).astype(dtype)
    w = (rng.standard_normal((f, f, c_in // g, c_out)) / math.sqrt(f * f * c_in // g)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    opts = dict(stride=s, padding=p, groups=g)
    dy = rng.standard_normal(refcnn.conv2d(x, w, b, **opts, accumulate="native").shape)
    dy = dy.astype(dtype)
    xt = to_torch(x, (0, 3, 1, 2)).requires_grad_()
    wt = to_torch(w, (3, 2, 0, 1)).requires_grad_()
    bt = torch.from_numpy(b.copy()).requires_grad_()
    dyt = to_torch(dy, (0, 3, 1, 2))
    yt = F.conv2d(xt, wt, bt, stride=s, padding=p, groups=g)

    def torch_fwd():
        with torch.no_grad():
            F.conv2d(xt, wt, bt, stride=s, padding=p, groups=g)

    def torch_bwd():
        torch.autograd.grad(yt, (xt, wt, bt), dyt, retain_graph=True)

    cands = {"torch fwd": torch_fwd, "torch bwd": torch_bwd}
    modes = ["native", "float64"] if dtype == np.float32 else ["float64"]
    for acc in modes:
        cands[f"{acc} fwd"] = lambda acc=acc: refcnn.conv2d(x, w, b, **opts, accumulate=acc)
        cands[f"{acc} bwd"] = lambda acc=acc: refcnn.conv2d_backward(
            dy, x, w, b, **opts, accumulate=acc)
    ho = (h + 2 * p - f) // s + 1
    flops = 2 * n * ho * ho * c_out * f * f * (c_in // g)
    return cands, flops, np.dtype(dtype)


def nd_candidates(row):
    """A 1-D, 3-D or transposed conv: refcnn.fast against torch's conv{1,2,3}d or
    conv_transpose{1,2,3}d (weights in refcnn's layout, permuted for torch)."""
    name, transposed, x_shape, kernel, c_out, opts, dtype = row
    rank = len(kernel)
    rng = np.random.default_rng(0)
    c_in = x_shape[-1]
    x = rng.standard_normal(x_shape).astype(dtype)
    # conv: (*kernel, C_in, C_out); transposed: (*kernel, C_out, C_in), refcnn's layouts.
    w_shape = (*kernel, c_out, c_in) if transposed else (*kernel, c_in, c_out)
    w = (rng.standard_normal(w_shape) / math.sqrt(math.prod(kernel) * c_in)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    fwd = refcnn.fast.conv_transpose if transposed else refcnn.fast.conv
    bwd = refcnn.fast.conv_transpose_backward if transposed else refcnn.fast.conv_backward
    tfn = getattr(F, f"conv_transpose{rank}d" if transposed else f"conv{rank}d")
    dy = rng.standard_normal(fwd(x, w, b, **opts, accumulate="native").shape).astype(dtype)
    to_nc = (0, rank + 1, *range(1, rank + 1))
    xt = to_torch(x, to_nc).requires_grad_()
    # Both layouts put torch's two channel axes last, swapped: (..., a, b) -> (b, a, ...).
    wt = to_torch(w, (rank + 1, rank, *range(rank))).requires_grad_()
    bt = torch.from_numpy(b.copy()).requires_grad_()
    dyt = to_torch(dy, to_nc)
    yt = tfn(xt, wt, bt, **opts)

    def torch_fwd():
        with torch.no_grad():
            tfn(xt, wt, bt, **opts)

    cands = {"torch fwd": torch_fwd,
             "torch bwd": lambda: torch.autograd.grad(yt, (xt, wt, bt), dyt, retain_graph=True)}
    for acc in ("native", "float64"):
        cands[f"{acc} fwd"] = lambda acc=acc: fwd(x, w, b, **opts, accumulate=acc)
        cands[f"{acc} bwd"] = lambda acc=acc: bwd(dy, x, w, b, **opts, accumulate=acc)
    # Multiply-adds of either direction: every input cell meets every tap and output channel.
    flops = 2 * (math.prod(dy.shape[:-1]) if not transposed else math.prod(x.shape[:-1])) \
        * math.prod(kernel) * c_in * c_out
    return cands, flops, np.dtype(dtype)


def pool_candidates(row):
    """Max pooling is timed as frameworks run it in training: the forward returns the
    argmax (torch's CPU forward computes its indices either way) and the backward
    scatters dy through it; average pooling takes x alone."""
    name, mode, n, h, c, f, s, p = row
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, h, c)).astype(np.float32)
    tfn = F.max_pool2d if mode == "max" else F.avg_pool2d
    xt = to_torch(x, (0, 3, 1, 2)).requires_grad_()
    yt = tfn(xt, f, s, p)
    dy = rng.standard_normal(yt.shape).astype(np.float32).transpose(0, 2, 3, 1).copy()
    dyt = to_torch(dy, (0, 3, 1, 2))

    def torch_fwd():
        with torch.no_grad():
            tfn(xt, f, s, p)

    cands = {
        "torch fwd": torch_fwd,
        "torch bwd": lambda: torch.autograd.grad(yt, xt, dyt, retain_graph=True),
    }
    opts = dict(stride=s, padding=p)
    if mode == "max":
        _, idx = refcnn.max_pool2d(x, f, **opts, return_indices=True)
    for acc in ("native", "float64"):
        if mode == "max":
            # A max sums nothing: both columns time the same forward.
            cands[f"{acc} fwd"] = lambda: refcnn.max_pool2d(x, f, **opts, return_indices=True)
            cands[f"{acc} bwd"] = lambda acc=acc: refcnn.max_pool2d_backward(
                dy, x, f, **opts, indices=idx, accumulate=acc)
        else:
            cands[f"{acc} fwd"] = lambda acc=acc: refcnn.avg_pool2d(x, f, **opts, accumulate=acc)
            cands[f"{acc} bwd"] = lambda acc=acc: refcnn.avg_pool2d_backward(
                dy, x, f, **opts, accumulate=acc)
    return cands, None, np.dtype(np.float32)


#: Seconds of quiet before each timed call: longer than OpenBLAS's worker threads spin
#: after a product (2**28 cycles, about 0.1 s here) and torch's OpenMP threads after a
#: parallel region, so that no candidate shares the cores with another's idle spinners.
QUIET_SECONDS = 0.2


def time_alternating(cands, repeats):
    """Best (minimum) seconds per candidate, running the candidates in turn ``repeats`` times.

    The minimum, as ``timeit`` advises: on a shared machine noise only ever adds
    time, and torch's two-thread kernels suffer more from it than single-threaded
    NumPy. Each timed call starts after ``QUIET_SECONDS`` of sleep, so that it never
    shares the cores with the worker threads the previous candidate left spinning.
    """
    for fn in cands.values():
        fn()
    times = {k: [] for k in cands}
    for _ in range(repeats):
        for k, fn in cands.items():
            time.sleep(QUIET_SECONDS)
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in times.items()}


def matmul_peak(dtype, repeats):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 2048)).astype(dtype)
    bm = rng.standard_normal((2048, 2048)).astype(dtype)
    t = time_alternating({"mm": lambda: a @ bm}, repeats)["mm"]
    return 2 * 2048**3 / t


# --- memory ---------------------------------------------------------------------------

MEMORY_CHILD = r"""
import sys, numpy as np
which = sys.argv[1]
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 112, 112, 3)).astype(np.float32)
w = (rng.standard_normal((7, 7, 3, 64)) / 12).astype(np.float32)
b = np.zeros(64, np.float32)
if which == 'torch':
    import torch, torch.nn.functional as F
    torch.set_num_threads(torch.get_num_threads())
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
    bt = torch.from_numpy(b)
    with torch.no_grad():
        F.conv2d(xt[:1], wt, bt, stride=2, padding=3)  # load kernels, not counted
    def call():
        with torch.no_grad():
            return F.conv2d(xt, wt, bt, stride=2, padding=3)
else:
    import refcnn
    from refcnn.fast import DEFAULT_CONFIG, FastConfig
    acc, target = sys.argv[2], sys.argv[3]
    config = DEFAULT_CONFIG if target == 'default' else FastConfig(block_target_bytes=int(target))
    refcnn.conv2d(x[:1], w, b, stride=2, padding=3, accumulate=acc, config=config)
    def call():
        return refcnn.conv2d(x, w, b, stride=2, padding=3, accumulate=acc, config=config,
                             workspace_bytes=int(target) if target != 'default' else None)
import gc; gc.collect()
with open('/proc/self/clear_refs', 'w') as fh:
    fh.write('5')
before = status('VmRSS:')
y = call()
rss_peak = status('VmHWM:') - before
traced = -1
if which != 'torch':
    import tracemalloc
    del y; gc.collect()
    tracemalloc.start()
    y = call()
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
print(rss_peak, traced)
"""


def measure_memory(which, *args):
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, which, *args],
                         capture_output=True, text=True, check=True)
    rss, traced = out.stdout.split()
    return int(rss), int(traced)


def chunking_speed(repeats):
    """7x7/2 layer at batch 64: seconds with the default blocks and with one block."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 112, 112, 3)).astype(np.float32)
    w = (rng.standard_normal((7, 7, 3, 64)) / 12).astype(np.float32)
    b = np.zeros(64, np.float32)
    one_block = FastConfig(block_target_bytes=2**62)

    def unchunked():
        refcnn.conv2d(x, w, b, stride=2, padding=3, accumulate="native", config=one_block,
                      workspace_bytes=2**62)

    return time_alternating({
        "chunked": lambda: refcnn.conv2d(x, w, b, stride=2, padding=3, accumulate="native"),
        "unchunked": unchunked,
    }, repeats)


# --- report ---------------------------------------------------------------------------

def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    parts = []
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            parts.append(f"{lib['internal_api']} {lib.get('version')} "
                         f"kernel {lib.get('architecture')}, {lib['num_threads']} threads")
    return "; ".join(parts) or "no BLAS found"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--rows", default="", help="comma-separated words; keep rows matching one")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--output", default=str(HERE / "results.md"))
    args = ap.parse_args(argv)
    words = [w for w in args.rows.split(",") if w]
    keep = (lambda name: any(w in name for w in words)) if words else (lambda name: True)

    lines = []

    def emit(text=""):
        print(text, flush=True)
        lines.append(text)

    emit("# refcnn vs torch (CPU)")
    emit()
    emit(f"- numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
         f"{os.cpu_count()} CPUs")
    emit(f"- BLAS (threadpoolctl): {blas_info()}")
    emit(f"- OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r}, "
         f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')!r}")
    peaks = {np.dtype(d): matmul_peak(d, 5) for d in (np.float32, np.float64)}
    emit("- NumPy matmul peak (2048^3): "
         + ", ".join(f"{d.name} {v / 1e9:.0f} GFLOP/s" for d, v in peaks.items()))
    emit(f"- fastest of {args.repeats} alternating runs per cell; ratio = refcnn time / torch time "
         "(below 1: refcnn faster)")
    emit()
    emit("| row | fwd native | bwd native | fwd default (float64 sums) | bwd default "
         "| torch fwd ms | torch bwd ms | conv fwd % of matmul peak (native) "
         "| bwd native / torch (fwd + bwd) |")
    emit("|---|---|---|---|---|---|---|---|---|")
    ratios = []
    makers = ([(row, conv_candidates) for row in CONV_ROWS]
              + [(row, nd_candidates) for row in ND_ROWS]
              + [(row, pool_candidates) for row in POOL_ROWS])
    for row, make in makers:
        if not keep(row[0]):
            continue
        cands, flops, dtype = make(row)
        t = time_alternating(cands, args.repeats)
        native = "native" if "native fwd" in t else "float64"
        rf = t[f"{native} fwd"] / t["torch fwd"]
        rb = t[f"{native} bwd"] / t["torch bwd"]
        ratios += [rf, rb]
        if "float64 fwd" in t and native == "native":
            dflt = (f"{t['float64 fwd'] / t['torch fwd']:.2f}",
                    f"{t['float64 bwd'] / t['torch bwd']:.2f}")
        else:
            dflt = ("(= native)", "(= native)")
        peak = (f"{100 * flops / t[f'{native} fwd'] / peaks[dtype]:.0f}%"
                if flops else "")
        rfb = t[f"{native} bwd"] / (t["torch fwd"] + t["torch bwd"])
        emit(f"| {row[0]} | {rf:.2f} | {rb:.2f} | {dflt[0]} | {dflt[1]} "
             f"| {1e3 * t['torch fwd']:.2f} | {1e3 * t['torch bwd']:.2f} | {peak} | {rfb:.2f} |")
    if ratios:
        geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
        emit()
        emit(f"Geometric mean of the native ratios (fwd and bwd of every row): **{geo:.2f}**; "
             f"largest: **{max(ratios):.2f}** (targets: at most 1.0 and 2.0).")
    if not args.no_memory:
        emit()
        emit("## Memory: conv 7x7/2, 3->64, 112x112, batch 64, float32, forward")
        emit()
        torch_rss, _ = measure_memory("torch")
        emit("| call | peak RSS delta MiB | tracemalloc peak MiB | / torch (RSS) |")
        emit("|---|---|---|---|")
        emit(f"| torch | {torch_rss / 2**20:.1f} | | 1.00 |")
        for acc in ("native", "float64"):
            for target, label in (("default", "default blocks"),
                                  (str(2**62), "one block (unchunked)")):
                rss, traced = measure_memory("refcnn", acc, target)
                emit(f"| refcnn {acc}, {label} | {rss / 2**20:.1f} | {traced / 2**20:.1f} "
                     f"| {rss / torch_rss:.2f} |")
        t = chunking_speed(max(3, args.repeats // 2))
        emit()
        emit(f"Speed of that call, native: default blocks {1e3 * t['chunked']:.1f} ms, one block "
             f"{1e3 * t['unchunked']:.1f} ms: chunked runs at "
             f"{100 * t['unchunked'] / t['chunked']:.0f}% of the unchunked speed.")
    Path(args.output).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
