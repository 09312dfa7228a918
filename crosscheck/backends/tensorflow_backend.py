"""TensorFlow as a backend: ``tf.nn`` convolutions and pools, 1 to 3 spatial dims, channels-last.

A per-op table behind :class:`~crosscheck.backends.driver.TableBackend`. TensorFlow is
channels-last natively (``NWC``, ``NHWC``, ``NDHWC``, always passed: ``tf.nn.convolution``
without ``data_format`` has no 3-D gradient, docs/bugs/tensorflow_conv3d_grad_data_format.py),
its conv filters are the canonical ``(*k, C_in/groups, C_out)`` and its transposed-conv
filters ``(*k, C_out/groups, C_in)``, so no array is moved. Gradients come from
``tf.GradientTape`` with ``output_gradients=dy``; everything runs eagerly on ``/CPU:0``.
This module is an independent oracle: sizes and 'same' splits come from
:mod:`crosscheck.geometry`, never from refcnn.

Each case runs in TensorFlow's own spelling where it has one, since those are the code paths
users call:

* conv: ``tf.nn.convolution``; ``'same'`` and ``'valid'`` as ``'SAME'`` and ``'VALID'``,
  explicit pads (``'same_lower'`` too) natively in 2-D (``tf.nn.conv2d``'s list form) and by
  ``tf.pad`` (zeros) in 1-D and 3-D, which have no explicit form. Grouped or dilated 2-D convs
  pad by ``tf.pad`` too: with explicit padding the gradient leaves oneDNN for kernels that
  take neither ("Current CPU implementations do not yet support dilation rates larger than
  1", "Gradients for grouped convolutions are not supported on CPU"). Groups are the
  filter's input depth. ``tf.nn.convolution`` refuses dilation with stride
  (``strides > 1 not supported in conjunction with dilation_rate > 1``) and takes no explicit
  pads: those cases call the per-rank op (``tf.nn.conv1d``/``conv2d``/``conv3d``), which
  takes both. Bias by ``tf.nn.bias_add``.
* transposed conv: ``tf.nn.conv_transpose`` with ``output_shape``. TensorFlow derives the
  padding from the output size, so pads run as ``'VALID'`` or ``'SAME'`` where its rule gives
  the same first pad (the pad after only decides the output size, which ``output_shape``
  fixes), else explicitly in 2-D (ungrouped and undilated, as for conv), else as the full
  ``'VALID'`` output cropped (a
  transposed conv's padding only crops its full output, so this is the same computation).
* max pooling: ``tf.nn.max_pool{1,2,3}d``; the case's pads plus ceil_mode's extra cells at the
  end (never counted, so exact), the pad after cut to the cells the windows reach (a window
  ceil_mode drops must not fit, and explicit pads must be smaller than the window), run as
  ``'VALID'``/``'SAME'`` when they equal TensorFlow's split, else explicitly (1-D and 2-D)
  or by ``tf.pad`` with -inf (3-D). Indices from
  ``tf.nn.max_pool_with_argmax`` (2-D; 1-D over a unit axis; no 3-D or dilated op), whose
  index ``(h * W + w) * C + c`` becomes torch's per-plane ``h * W + w``; a case asking for
  indices differentiates that op, or ``tf.nn.max_pool`` where it does not exist.
* average pooling: ``tf.nn.avg_pool{1,2,3}d``. Its divisor counts real cells only under
  ``'SAME'`` and every cell under ``'VALID'``: counted pads (``count_include_pad``) are
  ``tf.pad`` zeros, and the uncounted ones (the rest, and ceil_mode's extra cells) must be
  none or exactly TensorFlow's 'SAME' split of the zero-padded size; other cases and
  ``divisor_override`` are unsupported.
* dilated pools: ``tf.nn.pool`` takes dilation only with stride 1 and ``'VALID'``: pads by
  ``tf.pad``, stride by keeping every ``s``-th window (the same windows, so exact).
* adaptive pools: no TensorFlow op. Each bin's cells (torch's bins, from the geometry) are
  gathered into a window, padded with -inf (max) or 0 (sum) to the longest bin, and reduced
  by TensorFlow's own pooling kernels: ``max_pool1d``/``max_pool_with_argmax`` over the
  window (TensorFlow's max-pool NaN and tie rules), ``reduce_sum`` divided by the cell count.

A ``tf.pad`` of -inf is no exact stand-in for a max pool's native padding on NaN or all -inf
windows once indices or gradients are asked for: TensorFlow's max-pool scan would start on a
padding cell, which native padding never scans. Such cases are unsupported.

What TensorFlow's CPU kernels refuse (dtypes, groups, dilation, directions: oneDNN takes some
geometries and leaves others to Eigen kernels that refuse them) is learned by running each
geometry once on ones, and reported in TensorFlow's words.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before the import: TF logs from C++

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from crosscheck import geometry  # noqa: E402
from crosscheck.backends.base import Unsupported  # noqa: E402
from crosscheck.backends.driver import OpImpl, TableBackend  # noqa: E402
from crosscheck.cases import Case  # noqa: E402

_TF_DTYPES = {"float64": tf.float64, "float32": tf.float32, "float16": tf.float16,
              "bfloat16": tf.bfloat16}
_FORMATS = {1: "NWC", 2: "NHWC", 3: "NDHWC"}
DEVICE = "/CPU:0"


def _pad_list(pads) -> list[list[int]]:
    """Per-side pairs as TensorFlow's ``[[0, 0], [before, after], ..., [0, 0]]``."""
    return [[0, 0], *([int(a), int(b)] for a, b in pads), [0, 0]]


def _pad(x, pads, value: float):
    if all(a == 0 and b == 0 for a, b in pads):
        return x
    return tf.pad(x, _pad_list(pads), constant_values=tf.constant(value, x.dtype))


def _keep_every(y, strides, out):
    """Every ``s``-th window of a stride-1 pooling: the windows of stride ``s``."""
    if all(s == 1 for s in strides):
        return y
    index = (slice(None), *(slice(0, s * o, s) for s, o in zip(strides, out)), slice(None))
    return y[index]


# ---- conv and transposed conv --------------------------------------------------------------------
def _conv(case: Case, x, w, b):
    r, fmt = case.rank, _FORMATS[case.rank]
    if case.padding in ("same", "valid"):
        padding = case.padding.upper()
    else:
        pads = geometry.explicit_pads(case)
        dilated = any(d > 1 for d in case.dilation)
        if r == 2 and case.groups == 1 and not dilated:
            padding = _pad_list(pads)
        else:  # no explicit form here: zeros are exact for a conv
            x, padding = _pad(x, pads, 0.0), "VALID"
    dilated = any(d > 1 for d in case.dilation)
    strided = any(s > 1 for s in case.stride)
    if isinstance(padding, str) and not (dilated and strided):
        y = tf.nn.convolution(x, w, strides=list(case.stride), padding=padding,
                              data_format=fmt, dilations=list(case.dilation))
    elif r == 1:
        y = tf.nn.conv1d(x, w, case.stride[0], padding, data_format=fmt,
                         dilations=case.dilation[0])
    elif r == 2:
        y = tf.nn.conv2d(x, w, list(case.stride), padding, data_format=fmt,
                         dilations=list(case.dilation))
    else:
        y = tf.nn.conv3d(x, w, [1, *case.stride, 1], padding, data_format=fmt,
                         dilations=[1, *case.dilation, 1])
    if b is None or y.shape.num_elements() == 0:
        # A bias adds nothing to an empty output, and bias_add would reject the misshaped
        # empty output oneDNN returns for an empty batch, which the comparison reports
        # instead (docs/bugs/tensorflow_onednn_conv_empty_batch.py).
        return y
    return tf.nn.bias_add(y, b)


def _transpose_padding(case: Case):
    """How ``tf.nn.conv_transpose`` spells the case: ``'VALID'``, ``'SAME'``, pads
    ``[[lo, hi'], ...]`` (2-D), or None (the full ``'VALID'`` output, then cropped)."""
    pads = geometry.explicit_pads(case)
    out = geometry.out_spatial(case)
    axes = list(zip(case.spatial, out, case.kernel, case.stride, case.dilation, pads,
                    case.output_padding))
    # TensorFlow checks that a conv of the output size gives the input size; the pad after
    # only decides that size, so any pad with the right size and first pad is the same op.
    if all(lo == hi == 0 and op < s for _, _, _, s, _, (lo, hi), op in axes):
        return "VALID"
    if all(-(-o // s) == n and max((n - 1) * s + d * (k - 1) + 1 - o, 0) // 2 == lo
           for n, o, k, s, d, (lo, _), _ in axes):
        return "SAME"
    # Explicit padding leaves oneDNN for kernels without groups or dilation, as for conv.
    if case.rank == 2 and case.groups == 1 and not any(d > 1 for d in case.dilation):
        after = [hi - (op // s) * s for _, _, _, s, _, (_, hi), op in axes]
        if all(a >= 0 for a in after):
            return [[lo, a] for (_, _, _, _, _, (lo, _), _), a in zip(axes, after)]
    return None


def _conv_transpose(case: Case, x, w, b):
    out = geometry.out_spatial(case)
    padding = _transpose_padding(case)
    n = x.shape[0]
    if padding is None:
        full = [(i - 1) * s + d * (k - 1) + 1 for i, k, s, d in
                zip(case.spatial, case.kernel, case.stride, case.dilation)]
        y = tf.nn.conv_transpose(x, w, [n, *full, case.c_out], strides=list(case.stride),
                                 padding="VALID", data_format=_FORMATS[case.rank],
                                 dilations=list(case.dilation))
        pads = geometry.explicit_pads(case)
        y = y[(slice(None), *(slice(lo, min(lo + o, f)) for (lo, _), o, f in
                              zip(pads, out, full)), slice(None))]
        # output_padding may reach past the full output: those cells only get the bias.
        y = _pad(y, [(0, max(lo + o - f, 0)) for (lo, _), o, f in zip(pads, out, full)], 0.0)
    else:
        if not isinstance(padding, str):
            padding = [[0, 0], *padding, [0, 0]]
        y = tf.nn.conv_transpose(x, w, [n, *out, case.c_out], strides=list(case.stride),
                                 padding=padding, data_format=_FORMATS[case.rank],
                                 dilations=list(case.dilation))
    return y if b is None else tf.nn.bias_add(y, b)


def _conv_unsupported(case: Case) -> str | None:
    if case.rank == 3 and case.groups > 1:
        # The kernels say "input and filter must have the same depth" (oneDNN) or "... the
        # same number of channels" (Eigen); Keras compiles grouped CPU convs with XLA instead.
        return (f"TensorFlow's 3-D convolutions have no groups (groups={case.groups}): "
                "Conv3D's filter in_channels must match the input's, and so must its "
                "backprop ops'")
    return None


# ---- pooling -------------------------------------------------------------------------------------
def _pool_axes(case: Case):
    """Per axis: (size, kernel, stride, dilation, pads, ceil_mode's extra cells, output size).

    The pad after is cut to the cells the windows reach: ``'VALID'`` over the padded size
    (and TensorFlow's explicit padding) counts every window that fits, so padding that only
    a window ceil_mode drops would reach must not be there, and TensorFlow's explicit
    padding refuses a pad >= the window ("Bottom padding 1 needs to be smaller than the
    window size 1": CheckPaddingSize in pooling_ops_common.cc). Cells no window reaches
    change nothing, so the cut is exact."""
    pads = geometry.explicit_pads(case)
    rows = []
    for n, k, s, d, (lo, hi) in zip(case.spatial, case.kernel, case.stride, case.dilation, pads):
        out = geometry.pool_out(n, k, s, d, (lo, hi), case.ceil_mode)
        reach = (out - 1) * s + d * (k - 1) + 1 - n - lo  # cells past the input's end used
        rows.append((n, k, s, d, (lo, min(hi, max(reach, 0))), max(reach - hi, 0), out))
    return rows


def _tf_padding(sizes, axes, pads) -> str | None:
    """``'VALID'`` or ``'SAME'`` when TensorFlow's rule gives exactly ``pads`` on ``sizes``."""
    if all(a == 0 and b == 0 for a, b in pads):
        return "VALID"
    if all(geometry.same_pads(n, k, s, d) == tuple(p)
           for n, (_, k, s, d, *_), p in zip(sizes, axes, pads)):
        return "SAME"
    return None


def _uses_argmax(case: Case) -> bool:
    """Whether the case runs ``max_pool_with_argmax`` (2-D and 1-D, undilated, indices asked
    for); its backward then differentiates that op too, else ``tf.nn.max_pool``."""
    return case.return_indices and case.rank < 3 and not any(d > 1 for d in case.dilation)


def _max_plan(case: Case) -> tuple[str, object]:
    """``("native", padding)``, or ``("padded", pads)``: a -inf ``tf.pad``, then ``'VALID'``."""
    axes = _pool_axes(case)
    pads = [(lo, hi + extra) for _, _, _, _, (lo, hi), extra, _ in axes]
    dilated = any(d > 1 for d in case.dilation)
    native = None if dilated else _tf_padding(case.spatial, axes, pads)
    if native is not None:
        return "native", native
    if not dilated and not _uses_argmax(case) and case.rank < 3:
        return "native", _pad_list(pads)  # max_pool1d/2d take explicit pads
    return "padded", pads


def _avg_plan(case: Case) -> tuple[list, str] | str:
    """(counted pads for ``tf.pad``, ``'VALID'`` or ``'SAME'``), or why there is none."""
    if case.divisor_override is not None:
        return "TensorFlow's average pooling has no divisor_override"
    axes = _pool_axes(case)
    counted = [p if case.count_include_pad else (0, 0) for _, _, _, _, p, _, _ in axes]
    uncounted = [((0, 0) if case.count_include_pad else p) for _, _, _, _, p, _, _ in axes]
    uncounted = [(lo, hi + extra) for (lo, hi), (*_, extra, _) in zip(uncounted, axes)]
    sizes = [n + lo + hi for (n, *_), (lo, hi) in zip(axes, counted)]
    if all(a == 0 and b == 0 for a, b in uncounted):
        return counted, "VALID"
    native = _tf_padding(sizes, axes, uncounted)
    if native == "SAME" and not any(d > 1 for d in case.dilation):
        return counted, "SAME"
    return (f"TensorFlow's average pooling leaves padding out of the divisor only as its "
            f"'SAME' split, and the uncounted pads here are {uncounted} on {sizes} "
            f"(count_include_pad={case.count_include_pad}, ceil_mode={case.ceil_mode}"
            + (f", dilation={case.dilation}: tf.nn.pool takes no 'SAME' with dilation)"
               if any(d > 1 for d in case.dilation) else ")"))


def _pool_call(case: Case, x, kind: str, padding):
    """One TensorFlow pooling call; dilated pools through ``tf.nn.pool`` (stride 1, 'VALID')."""
    r = case.rank
    if any(d > 1 for d in case.dilation):
        y = tf.nn.pool(x, list(case.kernel), kind, strides=[1] * r, padding=padding,
                       data_format=_FORMATS[r], dilations=list(case.dilation))
        return _keep_every(y, case.stride, geometry.out_spatial(case))
    fn = getattr(tf.nn, f"{'max' if kind == 'MAX' else 'avg'}_pool{r}d")
    return fn(x, list(case.kernel), list(case.stride), padding, data_format=_FORMATS[r])


def _max_pool(case: Case, x, w=None, b=None):
    how, padding = _max_plan(case)
    pads = [(0, 0)] * case.rank
    if how == "padded":
        x, pads, padding = _pad(x, padding, -np.inf), padding, "VALID"
    if not _uses_argmax(case):  # indices asked for here only by a backward case
        return _pool_call(case, x, "MAX", padding)
    return _argmax_pool(x, case.kernel, case.stride, padding, case.spatial, pads)


def _argmax_pool(x, kernel, strides, padding, spatial, pads):
    """``max_pool_with_argmax`` (1-D over a unit axis) and torch's per-plane indices.

    ``x`` is the input padded by ``pads`` (zero pads: the input itself); indices into that
    plane are mapped back to the input plane.
    """
    one_d = len(kernel) == 1
    if one_d:
        x, kernel, strides = x[:, None], (1, *kernel), (1, *strides)
        spatial, pads = (1, *spatial), [(0, 0), *pads]
    y, arg = tf.nn.max_pool_with_argmax(x, list(kernel), list(strides), padding,
                                        include_batch_in_index=False)
    channels = x.shape[-1]
    plane = arg.numpy() // max(channels, 1)  # TensorFlow's index is (h * W + w) * C + c
    padded = x.shape[1:-1]
    flat = np.zeros_like(plane)
    for axis in range(len(spatial)):
        coord = (plane // math.prod(padded[axis + 1:])) % padded[axis] - pads[axis][0]
        flat = flat * spatial[axis] + coord
    if one_d:
        y, flat = y[:, 0], flat[:, 0]
    return y, tf.constant(flat, tf.int64)


def _max_unsupported(case: Case) -> str | None:
    indices = case.return_indices and case.direction == "forward"
    if indices and case.rank == 3:
        return "TensorFlow has no 3-D max_pool_with_argmax (indices)"
    if indices and any(d > 1 for d in case.dilation):
        return (f"TensorFlow's max_pool_with_argmax has no dilation (dilation={case.dilation})")
    how, pads = _max_plan(case)
    if how == "padded" and any(p != (0, 0) for p in pads) and case.inputs in ("nan", "neginf") \
            and (case.direction == "backward" or indices):
        return (f"pads {pads} run as a -inf tf.pad (TensorFlow has no native form here), and "
                f"TensorFlow's max-pool scan would start on a padding cell, which native "
                f"padding never scans: not exact on {case.inputs} windows")
    return None


def _avg_pool(case: Case, x, w=None, b=None):
    counted, padding = _avg_plan(case)
    return _pool_call(case, _pad(x, counted, 0.0), "AVG", padding)


def _avg_unsupported(case: Case) -> str | None:
    plan = _avg_plan(case)
    return plan if isinstance(plan, str) else None


# ---- adaptive pooling: torch's bins gathered into windows, reduced by TensorFlow ----------------
def _bins(case: Case):
    """Per axis: cells ``(out, L)`` of each bin padded to the longest, and which are real."""
    found = []
    for n, o in zip(case.spatial, case.output_size):
        bins = geometry.adaptive_bins(n, o)
        length = max(e - s for s, e in bins)
        cells = np.array([[s + j for j in range(length)] for s, _ in bins])
        real = cells < np.array([e for _, e in bins])[:, None]
        found.append((np.minimum(cells, n - 1), real))
    return found


def _gather_windows(case: Case, x, fill: float):
    """``(N * prod(out), prod(L), C)``: each bin's cells, row-major, ``fill`` past its end."""
    r, bins = case.rank, _bins(case)
    n, c = x.shape[0], x.shape[-1]
    for axis, (cells, _) in enumerate(bins):
        x = tf.gather(x, cells.reshape(-1), axis=1 + 2 * axis)
        x = tf.reshape(x, [n, *x.shape[1:1 + 2 * axis], *cells.shape, *x.shape[2 + 2 * axis:]])
    # (N, o1, L1, o2, L2, ..., C) -> (N, o1, o2, ..., L1, L2, ..., C)
    x = tf.transpose(x, [0, *range(1, 2 * r, 2), *range(2, 2 * r + 1, 2), 2 * r + 1])
    outs = [cells.shape[0] for cells, _ in bins]
    lengths = [cells.shape[1] for cells, _ in bins]
    x = tf.reshape(x, [n * math.prod(outs), math.prod(lengths), c])
    real = np.ones(outs + lengths, bool)
    for axis, (_, mask) in enumerate(bins):
        shape = [1] * (2 * r)
        shape[axis], shape[r + axis] = mask.shape
        real = real & mask.reshape(shape)
    real = np.tile(real.reshape(1, math.prod(outs), math.prod(lengths), 1), (n, 1, 1, 1))
    real = real.reshape(n * math.prod(outs), math.prod(lengths), 1)
    return tf.where(real, x, tf.constant(fill, x.dtype)), outs, lengths, bins


def _adaptive_avg_pool(case: Case, x, w=None, b=None):
    windows, outs, _, bins = _gather_windows(case, x, 0.0)
    counts = np.ones(outs)
    for axis, (_, real) in enumerate(bins):
        shape = [1] * len(outs)
        shape[axis] = len(real)
        counts = counts * real.sum(1).reshape(shape)
    counts = np.tile(counts.reshape(-1, 1), (x.shape[0], 1))  # windows are (N, *out) flat
    y = tf.reduce_sum(windows, axis=1) / tf.constant(counts, x.dtype)
    return tf.reshape(y, [x.shape[0], *outs, x.shape[-1]])


def _adaptive_max_pool(case: Case, x, w=None, b=None):
    windows, outs, lengths, bins = _gather_windows(case, x, -np.inf)
    n, c, length, bins_n = x.shape[0], x.shape[-1], math.prod(lengths), math.prod(outs)
    if not case.return_indices:
        y = tf.nn.max_pool1d(windows, length, length, "VALID", data_format="NWC")
        return tf.reshape(y, [n, *outs, c])
    y, arg = tf.nn.max_pool_with_argmax(windows[:, None], [1, length], [1, length], "VALID",
                                        include_batch_in_index=False)
    tap = (arg.numpy() // max(c, 1)).reshape(n, bins_n, c)  # the window position chosen
    # The input plane's flat index of each (bin, tap): cells of every axis, row-major.
    flat = np.zeros(outs + lengths, np.int64)
    for axis, (cells, _) in enumerate(bins):
        shape = [1] * (2 * len(outs))
        shape[axis], shape[len(outs) + axis] = cells.shape
        flat = flat * case.spatial[axis] + cells.reshape(shape)
    flat = np.broadcast_to(flat.reshape(1, bins_n, length), (n, bins_n, length))
    idx = np.take_along_axis(flat, tap, axis=2).reshape(n, *outs, c)
    return tf.reshape(y, [n, *outs, c]), tf.constant(idx, tf.int64)


# ---- what TensorFlow refuses ---------------------------------------------------------------------
#: How TensorFlow's CPU kernels say that they do not implement a case (never a wrong input).
_REFUSALS = ("not supported", "not yet support", "only supports", "is not in the list of allowed",
             "Could not find device for node")


def _refusal(exc: Exception) -> bool:
    return isinstance(exc, (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError,
                            tf.errors.NotFoundError)) and \
        any(text in _tf_message(exc) for text in _REFUSALS)


def _tf_message(exc: Exception) -> str:
    text = getattr(exc, "message", None) or str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if first.startswith("{{function_node") and "}}" in first:
        first = first.split("}}", 1)[1].strip()
    return first.split(" [Op:")[0].strip()


class TensorflowBackend(TableBackend):
    """``tf.nn`` on ``/CPU:0``, eager, channels-last."""

    name = "tensorflow"
    channels_first = False
    dtypes = _TF_DTYPES
    ops = {
        "conv": OpImpl(_conv, unsupported=_conv_unsupported),
        "conv_transpose": OpImpl(_conv_transpose, unsupported=_conv_unsupported),
        "max_pool": OpImpl(_max_pool, unsupported=_max_unsupported),
        "avg_pool": OpImpl(_avg_pool, unsupported=_avg_unsupported),
        "adaptive_avg_pool": OpImpl(_adaptive_avg_pool),
        "adaptive_max_pool": OpImpl(_adaptive_max_pool),
    }

    def __init__(self):
        # float32 must mean float32 (TF32 only matters on GPUs; off anyway, and recorded).
        tf.config.experimental.enable_tensor_float_32_execution(False)
        self._refused: dict[str, str | None] = {}

    def version(self) -> str:
        return f"tensorflow {tf.__version__} (CPU)"

    def settings(self) -> dict:
        try:
            from tensorflow.python.util import _pywrap_util_port

            onednn = bool(_pywrap_util_port.IsMklEnabled())
        except (ImportError, AttributeError):  # private module: may move between versions
            onednn = "unknown"
        threads = tf.config.threading
        return {
            "tensorflow": tf.__version__,
            "device": DEVICE,
            "layout": "channels-last (NWC, NHWC, NDHWC)",
            "intra_op_threads": threads.get_intra_op_parallelism_threads() or
            f"0 (TensorFlow's default: {os.cpu_count()} cores)",
            "inter_op_threads": threads.get_inter_op_parallelism_threads() or
            "0 (TensorFlow's default)",
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"),
            "onednn_enabled": onednn,
            "tensor_float_32": tf.config.experimental.tensor_float_32_execution_enabled(),
        }

    # ---- arrays and gradients ------------------------------------------------------------------
    def to_framework(self, a: np.ndarray, dtype):
        # A copy, cast in TensorFlow: the values are exact in ``dtype`` (Inputs guarantees it).
        with tf.device(DEVICE):
            return tf.cast(tf.constant(np.array(a, dtype=np.float64, copy=True)), dtype)

    def to_numpy(self, t) -> np.ndarray:
        t = tf.convert_to_tensor(t)
        if t.dtype.is_floating:
            t = tf.cast(t, tf.float64)
        return t.numpy()

    def vjp(self, fn, primals, cotangent):
        with tf.device(DEVICE), tf.GradientTape() as tape:
            for p in primals:
                tape.watch(p)
            y = fn(*primals)
        grads = tape.gradient(y, primals, output_gradients=cotangent,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return [tf.convert_to_tensor(g) for g in grads]

    def compute(self, case: Case, arrays: dict) -> dict:
        with tf.device(DEVICE):
            try:
                return super().compute(case, arrays)
            except tf.errors.OpError as exc:
                # oneDNN takes some geometries and leaves the rest to kernels that refuse
                # them, so whether TensorFlow computes a case depends on its shapes.
                if not _refusal(exc):
                    raise
                raise Unsupported(f"tensorflow {tf.__version__} rejects {case.op} "
                                  f"{case.direction} in {case.dtype} here on CPU: "
                                  f"{_tf_message(exc)}") from exc

    # ---- what TensorFlow refuses ----------------------------------------------------------------
    def unsupported(self, case: Case) -> str | None:
        # The table's own reasons first: TensorFlow's documented limits, no run needed.
        impl = self.ops.get(case.family)
        if impl is not None and impl.unsupported is not None:
            reason = impl.unsupported(case)
            if reason:
                return reason
        return super().unsupported(case)

    def unsupported_dtype(self, case: Case) -> str | None:
        reason = super().unsupported_dtype(case)
        if reason is None:
            # What TensorFlow refuses depends on shapes, dtype and direction, never on values:
            # run the case once on ones and keep the answer for every seed and input kind.
            key = case.with_(seed=0, inputs="random", tags=()).id
            if key not in self._refused:
                self._refused[key] = self._probe(case)
            reason = self._refused[key]
        return reason

    def _probe(self, case: Case) -> str | None:
        """Run ``case``'s shapes on ones: TensorFlow's refusal in its words, or None."""
        dtype = self.dtypes[case.dtype]
        shape = case.entry.weight_shape(case)
        arrays = {"x": tf.ones((case.n, *case.spatial, case.c_in), dtype),
                  "w": None if shape is None else tf.ones(shape, dtype),
                  "b": None if shape is None or not case.bias else tf.zeros(case.c_out, dtype),
                  "dy": tf.ones((case.n, *case.out_spatial(), case.c_out), dtype)}
        try:
            self.compute(case, arrays)
        except Unsupported as exc:
            return str(exc)
        except Exception:  # noqa: BLE001 - not a refusal: run() shows it as the case's failure
            return None
        return None

    # ---- memory over a long run (crosscheck.bounded) --------------------------------------------
    def compiled_count(self) -> int:
        """Geometries (per direction) met since the last :meth:`clear_compiled`: their refusals
        are learned, and TensorFlow's eager kernel cache grows with them."""
        return len(self._refused)

    def clear_compiled(self) -> None:
        """Forget the learned refusals (relearned on a geometry's next case) and drop
        TensorFlow's cached eager kernels, which a long sweep would otherwise keep growing.
        A runner calls it between compile keys."""
        from tensorflow.python.eager import context  # private, as TF offers no public call

        self._refused.clear()
        try:
            context.context().clear_kernel_cache()
        except AttributeError:  # moved in another TensorFlow version: the refusals went anyway
            pass
