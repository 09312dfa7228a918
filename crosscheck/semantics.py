"""Known semantic differences between frameworks, as data.

Each :class:`Difference` names a point where frameworks disagree, the
convention each backend follows, refcnn's (torch's) convention, and sources
(issue/PR numbers in the named project's tracker; see ``docs/semantics.md``).
The runner consults :func:`declared_divergence`: a backend whose declared
convention differs from refcnn's, on a case that probes that point, is
reported as *divergent* when it disagrees with refcnn, and as *failed* when it
unexpectedly agrees (it no longer follows what it declares). Reports print the
whole registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from crosscheck.cases import Case
from crosscheck.ops import HIGHER_ORDER


@dataclass(frozen=True)
class Difference:
    """One known difference.

    Attributes
    ----------
    key : stable identifier
    title : one line
    conventions : backend family -> the convention it follows (``refcnn`` is the reference)
    probes : (op family, direction, input kind) triples whose cases exercise it; empty for
        differences that are about defaults or unsupported options, which no
        random case can show
    sources : where the facts come from
    """

    key: str
    title: str
    conventions: dict[str, str]
    probes: tuple[tuple[str, str, str], ...] = ()
    sources: tuple[str, ...] = ()
    notes: str = ""
    #: A known framework bug rather than a convention: ``match`` says which cases it can
    #: hit. A failure there is reported as divergent (naming the bug); a pass is a pass,
    #: since such bugs show on some shapes only.
    known_bug: bool = False
    match: Callable[[Case], bool] | None = field(default=None, compare=False)
    #: A known bug that kills the framework's process (a signal, not an exception): the
    #: backends that diverge decline its cases (:func:`fatal_bug`) instead of running them.
    kills_process: bool = False

    def probed_by(self, case: Case) -> bool:
        if self.match is not None:
            return self.match(case)
        return (case.family, case.direction, case.inputs) in self.probes

    def diverges(self, backend: str) -> bool:
        """Whether ``backend`` declares a convention other than refcnn's."""
        theirs = self.conventions.get(family(backend))
        return theirs is not None and theirs != self.conventions["refcnn"]


def family(backend: str) -> str:
    """``jax.nchw`` -> ``jax``, ``refcnn.loops`` -> ``refcnn``."""
    return backend.split(".")[0]


def _ceil_windows_misplaced(case: Case) -> bool:
    """An average pool whose ceil_mode overhangs by 2+ cells, or drops a window, on some axis."""
    from crosscheck import geometry

    if case.family != "avg_pool" or not case.ceil_mode or isinstance(case.padding, str):
        return False
    for n, k, s, d, p in zip(case.spatial, case.kernel, case.stride, case.dilation,
                             geometry.explicit_pads(case)):
        raw = -(-(n + p[0] + p[1] - d * (k - 1) - 1) // s) + 1
        if raw != geometry.pool_out(n, k, s, d, p, True) or \
                geometry.pool_overhang(n, k, s, d, p, True) >= 2:
            return True
    return False


def _tie_order_differs(case: Case) -> bool:
    """A max pool whose window spans 2 cells of a padded spatial axis after the first one
    and more than one cell before it: where JAX's JVP breaks ties otherwise (measured)."""
    from crosscheck import geometry

    pads = geometry.explicit_pads(case)
    return any(case.kernel[a] == 2 and any(pads[a]) and math.prod(case.kernel[:a]) > 1
               for a in range(1, case.rank))


def _unit_stride_max_pool(case: Case) -> bool:
    """A max pool with unit strides and dilations that onnx.reference's older pooling
    routine gets wrong: asking for indices; padded off 2-D (auto_pad SAME_* too); padded in
    2-D with ceil_mode, or with the H axis's pad after unequal to the W axis's pad before
    (the routine reads ONNX's [H0, W0, H1, W1] as [H0, H1, W0, W1], so only then is it
    right)."""
    from crosscheck import geometry

    if case.family != "max_pool" or set(case.stride) != {1} or set(case.dilation) != {1}:
        return False
    if case.return_indices:
        return True
    if isinstance(case.padding, str):  # the node has auto_pad, no pads
        return case.rank != 2 and case.padding != "valid"
    pads = geometry.explicit_pads(case)
    if not any(a or b for a, b in pads):
        return False
    return case.rank != 2 or case.ceil_mode or pads[0][1] != pads[1][0]


def _tensorflow_argmax(case: Case) -> bool:
    """A max pool the TensorFlow backend runs with max_pool_with_argmax (indices asked for,
    1-D or 2-D, undilated; adaptive max pooling with indices)."""
    if case.family == "adaptive_max_pool":
        return case.return_indices
    return (case.family == "max_pool" and case.return_indices and case.rank < 3
            and set(case.dilation) == {1})


DIFFERENCES: tuple[Difference, ...] = (
    Difference(
        "maxpool_tie_gradient",
        "Max-pool gradient on tied maxima",
        {"refcnn": "first maximum in row-major window order",
         "torch": "first maximum in row-major window order",
         "jax": "first maximum in row-major window order",
         "tensorflow": "first maximum in row-major window order",
         "notebook": "every maximum (create_mask_from_window: x == max), duplicating mass"},
        probes=(("max_pool", "backward", "ties"), ("max_pool", "backward", "offset")),
        sources=("docs/semantics.md: row [1,3,3,1,3], window 3, stride 1 gives [0,2,1,0,0]",),
        notes="float32 rounding makes ties too: 1e8 + [0.1, 0.2, 0.3, 0.4] are all equal.",
    ),
    Difference(
        "maxpool_nan_forward",
        "Max pooling over a window holding NaN",
        {"refcnn": "NaN", "torch": "NaN", "jax": "NaN",
         "tensorflow": "not propagated: tf.nn.max_pool gives the max of the rest; "
                       "max_pool_with_argmax keeps a NaN only as a window's first cell",
         "onnxruntime": "not propagated: float64 and Indices kernels keep a NaN only as a "
                        "window's first cell; float32/float16 kernels (MLAS) keep or drop it "
                        "by its position and the rank",
         "onnx": "not propagated: a window's first real cell if NaN, else the max of the "
                 "rest; with unit strides and dilations every NaN is ignored"},
        probes=(("max_pool", "forward", "nan"), ("adaptive_max_pool", "forward", "nan")),
        sources=("docs/semantics.md",
                 "tensorflow/core/kernels/eigen_pooling.h (SpatialMaxPooling: Eigen's "
                 ".maximum(), which skips NaN)",
                 "tensorflow/core/kernels/maxpooling_op.cc (SpatialMaxPoolWithArgMaxHelper: "
                 "output < input || first cell)",
                 "ONNX MaxPool: 'the maximum ... exclude pad', no rule for NaN",
                 "onnxruntime core/providers/cpu/nn/pool_functors.h (x > max scan), MLAS pool",
                 "onnx/reference/ops/op_max_pool.py, _op_common_pool.py",
                 "measured: onnxruntime 1.32.0, onnx 1.23.2 CPU"),
    ),
    Difference(
        "maxpool_nan_gradient",
        "Max-pool gradient of a window holding NaN",
        {"refcnn": "the last NaN in window order (torch's val > max || isnan(val) scan)",
         "torch": "the last NaN in window order (torch's val > max || isnan(val) scan)",
         "jax": "the first maximum after the last NaN, or that NaN when it ends the window"},
        probes=(("max_pool", "backward", "nan"),),
        sources=("docs/semantics.md", "torch aten/src/ATen/native/cpu/MaxPoolKernel.cpp",
                 "measured: JAX 0.10.2 CPU"),
        notes="JAX's select keeps its pick while pick >= next, and every comparison with NaN "
              "is false: [1,nan,3,1,3] (window 3, stride 1) routes to [0,0,3,0,0], "
              "[nan,2,nan,1,0] to [0,0,1,2,0]. docs/semantics.md's 'largest non-NaN "
              "element' is only right when no maximum precedes the last NaN.",
    ),
    Difference(
        "maxpool_all_neginf_forward",
        "Max pooling over a window whose real cells are all -inf",
        {"refcnn": "-inf", "torch": "-inf", "jax": "-inf"},
        probes=(("max_pool", "forward", "neginf"),),
        sources=("docs/semantics.md",),
        notes="ONNX Runtime gives -inf in float64 and with Indices; its float32 kernel's "
              "-3.4028235e38 breaks ONNX's own rule: known bug onnxruntime_maxpool_neginf_lowest. "
              "TensorFlow's value depends on op and dtype: tensorflow_maxpool_neginf_lowest.",
    ),
    Difference(
        "maxpool_all_neginf_gradient",
        "Max-pool gradient of a padded window whose real cells are all -inf",
        {"refcnn": "the first real cell",
         "torch": "the first real cell",
         "jax": "the first tap, which is padding at a top/left border (the gradient is lost)"},
        sources=("docs/semantics.md", "measured: torch 2.13 CPU, JAX 0.10.2 CPU"),
        notes="Only padded windows can show it, so the probe needs top or left padding.",
        match=lambda case: (case.family == "max_pool" and case.direction == "backward"
                            and case.inputs == "neginf" and not isinstance(case.padding, str)
                            and any(before > 0 for before, _ in case.padding)),
    ),
    Difference(
        "maxpool_tie_jvp",
        "Max-pool forward-mode and second-order derivatives on tied maxima",
        {"refcnn": "first maximum in row-major window order",
         "torch": "first maximum in row-major window order",
         "jax": "select_and_gather_add's order: a later maximum in some windows that span 2 "
                "cells of a padded spatial axis after the first (its reverse mode keeps the "
                "first maximum)"},
        sources=("torch tools/autograd/derivatives.yaml (max_pool*_with_indices: result0 "
                 "gathers self_t by the indices; max_pool_double_backward)",
                 "jax/_src/lax/windowed_reductions.py (_reduce_window_chooser_jvp_rule: "
                 "_select_and_gather_add with ge)", "measured: torch 2.13 CPU, JAX 0.10.2 CPU"),
        notes="torch gathers the tangent by max_pool's indices. "
              "x = [[0,1],[1,0]], window 2x2, stride 1, padding ((0,0),(1,0)): the second "
              "window's tangent is tx[1,0] in JAX, tx[0,1] in torch; the same windows without "
              "padding, or with a window of 3 or 4 on that axis, keep the first maximum. The "
              "second-order ddy is the same gather, so it follows the JVP.",
        match=lambda case: (case.family == "max_pool" and case.direction in HIGHER_ORDER
                            and (case.inputs == "ties" or case.inputs == "offset"
                                 and case.dtype != "float64") and _tie_order_differs(case)),
    ),
    Difference(
        "maxpool_nan_jvp",
        "Max-pool forward-mode and second-order derivatives through a window holding NaN",
        {"refcnn": "the last NaN in window order (torch's val > max || isnan(val) scan)",
         "torch": "the last NaN in window order (torch's val > max || isnan(val) scan)",
         "jax": "the cell its reverse mode picks (maxpool_nan_gradient): the first maximum "
                "after the last NaN, or that NaN when it ends the window"},
        probes=(("max_pool", "jvp", "nan"), ("max_pool", "double_backward", "nan")),
        sources=("torch tools/autograd/derivatives.yaml", "measured: JAX 0.10.2 CPU"),
        notes="torch gathers the tangent by max_pool's indices. "
              "[1,nan,3,1,3] (window 3, stride 1) takes the tangent of the 3 at index 2 in "
              "all three windows; [nan,2,nan,1,0] takes indices 2, 3, 3.",
    ),
    Difference(
        "maxpool_all_neginf_jvp",
        "Max-pool forward-mode and second-order derivatives of a window whose cells are all -inf",
        {"refcnn": "the first real cell's tangent", "torch": "the first real cell's tangent",
         "jax": "zero, padded or not: the reduction keeps its -inf initial value, whose "
                "tangent is zero"},
        probes=(("max_pool", "jvp", "neginf"), ("max_pool", "double_backward", "neginf")),
        sources=("jax/_src/lax/windowed_reductions.py (_select_and_gather_add: init "
                 "(-inf, 0), pairs kept while ge)", "measured: JAX 0.10.2 CPU"),
        notes="Unlike the reverse-mode gradient (maxpool_all_neginf_gradient), which JAX "
              "routes to the window's first tap, unpadded windows show it too.",
    ),
    Difference(
        "avgpool_count_include_pad_default",
        "Default of count_include_pad (the divisor of padded average windows)",
        {"refcnn": "True", "torch": "True", "flax": "True",
         "tensorflow": "False ('SAME' excludes padding)", "jax": "no default (stax: False)",
         "onnx": "False"},
        sources=("docs/semantics.md", "pytorch#183528"),
        notes="The suite always passes it explicitly; the difference bites ported code.",
    ),
    Difference(
        "same_padding_split",
        "Where 'same' puts the odd padding pixel",
        {"refcnn": "end (bottom/right)", "torch": "end (bottom/right)",
         "jax": "end for 'SAME', start for 'SAME_LOWER'", "tensorflow": "end",
         "onnx": "end for SAME_UPPER, start for SAME_LOWER"},
        sources=("docs/semantics.md", "pytorch#67551"),
        notes="torch rejects padding='same' with stride > 1 (pytorch#67551): the torch backend "
              "pads such cases explicitly, as users must.",
    ),
    Difference(
        "ceil_mode_last_window",
        "ceil_mode drops a last window that would start in the right padding",
        {"refcnn": "dropped (torch's rule)", "torch": "dropped",
         "jax": "no ceil_mode (emulated with extra padding by the backend)",
         "onnxruntime": "dropped (torch's rule)",
         "onnx": "dropped (ONNX's rule from opset 22); onnx.reference's AveragePool "
                 "misplaces windows: known bug onnx_reference_avgpool_ceil"},
        sources=("pytorch PR #120335", "pytorch#57178", "pytorch#116420"),
    ),
    Difference(
        "unsupported_options",
        "Options a framework cannot express",
        {"refcnn": "all supported",
         "torch": "pooling pad > kernel/2 with ceil_mode or count_include_pad=False; "
                  "average-pool dilation; 'same' for transposed conv; float16/bfloat16 "
                  "avg_pool3d on CPU",
         "jax": "max-pool gradient and double backward with window dilation "
                "(NotImplementedError; its JVP works)",
         "tensorflow": "on CPU: float64 grouped-conv gradients and dilated transposed conv "
                       "or conv gradients (Eigen kernels); grouped conv3d; float64/float16 "
                       "3-D pools; max_pool_with_argmax in 3-D or with dilation; average-pool "
                       "divisor_override, or padding left out of the divisor other than as "
                       "'SAME' (probed, in TensorFlow's words); jvp and double_backward "
                       "(the backend has no forward-mode or second-order hook)",
         "onnx": "gradients (inference only); adaptive pooling other than output size 1; "
                 "AveragePool divisor_override; ConvTranspose output_padding >= stride "
                 "(ONNX's 'stride/dilation' read as stride by both runtimes)",
         "onnxruntime": "ONNX's limits, and on CPU no float64 Conv, ConvTranspose, "
                        "AveragePool or Global*Pool and no bfloat16 at all (probed per "
                        "opset); dilation with auto_pad SAME_*; pooling pads >= kernel"},
        sources=("pytorch#67551", "pytorch#7541", "docs/semantics.md",
                 "onnxruntime#20582 (dilation with SAME_*)", "onnxruntime#801 (pads < kernel)",
                 "onnxruntime#14208 (output_padding)"),
        notes="Such cases are reported as unsupported for that backend, never as failures.",
    ),
    Difference(
        "torch_cpu_bf16_conv",
        "torch's CPU bfloat16 convolution (oneDNN) returns wrong values on some shapes",
        {"refcnn": "correct", "torch": "wrong on some shapes (known bug)"},
        sources=("pytorch#169688 (stride-3 bfloat16 convolutions incorrect, CPU)",
                 "pytorch#163347 (incorrect bf16 results in conv; fine with mkldnn disabled)"),
        notes="Found by this suite: conv2d-fwd-n3h12w10c2o8-k5x4-s2x3-p0.1.2.0-d1x3-g1-"
              "bfloat16-s0 errs by up to 2e34 (NaN on reruns); correct with "
              "torch.backends.mkldnn.flags(enabled=False).",
        known_bug=True,
        match=lambda case: case.family == "conv" and case.dtype == "bfloat16",
    ),
    Difference(
        "tensorflow_maxpool_neginf_lowest",
        "TensorFlow's max pooling over a window whose real cells are all -inf",
        {"refcnn": "-inf",
         "tensorflow": "the dtype's lowest finite value (-3.4028235e38 in float32, "
                       "-1.7976931348623157e308 in float64) from tf.nn.max_pool"},
        sources=("tensorflow/core/kernels/eigen_pooling.h (SpatialMaxPooling pads with "
                 "-NumTraits<T>::highest() and takes .maximum(), which starts from lowest())",
                 "measured: tensorflow 2.21.0 CPU"),
        notes="max_pool_with_argmax (indices) and the oneDNN float16/bfloat16 kernels give "
              "-inf, as refcnn does: the declaration covers tf.nn.max_pool in float32/float64.",
        match=lambda case: (case.family in ("max_pool", "adaptive_max_pool")
                            and case.direction == "forward" and case.inputs == "neginf"
                            and case.dtype in ("float32", "float64")
                            and not case.return_indices),
    ),
    Difference(
        "tensorflow_maxpool_argmax_nan_gradient",
        "TensorFlow's max_pool_with_argmax gradient of a window holding NaN",
        {"refcnn": "the last NaN in window order (torch's val > max || isnan(val) scan)",
         "tensorflow": "the window's first cell when it is NaN, else its first maximum "
                       "ignoring NaN (the cell its forward chose)"},
        sources=("tensorflow/core/kernels/maxpooling_op.cc (SpatialMaxPoolWithArgMaxHelper: "
                 "output < input || first cell)", "measured: tensorflow 2.21.0 CPU"),
        notes="[1,nan,3,1,3] (window 3, stride 1) routes to [0,1,2,0,0], "
              "[nan,2,nan,1,0] to [1,1,1,0,0].",
        match=lambda case: (case.direction == "backward" and case.inputs == "nan"
                            and _tensorflow_argmax(case)),
    ),
    Difference(
        "tensorflow_maxpool_nan_gradient",
        "TensorFlow's tf.nn.max_pool gradient goes to a NaN that its forward ignored",
        {"refcnn": "the last NaN in window order, which is also the output",
         "tensorflow": "the window's first cell when it is NaN, else its first maximum "
                       "ignoring NaN, while the forward ignores every NaN (known bug)"},
        sources=("docs/bugs/tensorflow_maxpool_nan_gradient.py",
                 "tensorflow/core/kernels/maxpooling_op.cc (MaxPoolingGradOp recomputes the "
                 "argmax with SpatialMaxPoolWithArgMaxHelper instead of using the output)"),
        notes="[1,nan,3,1,3] (window 3, stride 1) gives y = [3,3,3] but routes the gradient "
              "to [0,1,2,0,0]: window [nan,3,1] outputs 3 and sends its gradient to the NaN.",
        known_bug=True,
        match=lambda case: (case.family in ("max_pool", "adaptive_max_pool")
                            and case.direction == "backward" and case.inputs == "nan"
                            and case.rank < 3 and not _tensorflow_argmax(case)),
    ),
    Difference(
        "tensorflow_maxpool3d_grad_near_ties",
        "TensorFlow's 3-D max-pool gradient goes to every cell within 1e-5 of the max",
        {"refcnn": "the first maximum in row-major window order",
         "tensorflow": "every cell with |x - max| < 1e-5, each the window's full gradient "
                       "(known bug)"},
        sources=("docs/bugs/tensorflow_maxpool3d_grad_near_ties.py",
                 "tensorflow/core/kernels/pooling_ops_3d.cc (LaunchMaxPooling3dGradOp: "
                 "(tensor_in_slice - tensor_out_slice).abs() < 1e-5 selects the gradient)"),
        notes="Found by this suite on the float32 'offset' probe (1e8 + [0, 64): rounding "
              "ties). Distinct values within 1e-5 count too, so inputs of magnitude 1e-5 or "
              "less get the gradient almost everywhere; random inputs rarely come that close.",
        known_bug=True,
        match=lambda case: (case.family == "max_pool" and case.rank == 3
                            and case.direction == "backward"
                            and case.inputs in ("ties", "offset")),
    ),
    Difference(
        "tensorflow_onednn_conv_empty_batch",
        "TensorFlow's oneDNN convolution returns the input's shape for an empty batch",
        {"refcnn": "(0, *out, C_out)",
         "tensorflow": "(0, *spatial, C_in) from the oneDNN 1-D, 2-D and 3-D kernels "
                       "(known bug)"},
        sources=("docs/bugs/tensorflow_onednn_conv_empty_batch.py",
                 "tensorflow PR #112639 (closed; allocates the computed shape in oneDNN's "
                 "zero-element early return)",
                 "tensorflow PR #30968 (merged 2019: the same fix for Conv3D, which is wrong "
                 "again in tensorflow 2.21.0)"),
        notes="float32, float16 and bfloat16 convolutions go to oneDNN (TF_ENABLE_ONEDNN_OPTS "
              "defaults on); float64 and TF_ENABLE_ONEDNN_OPTS=0 give the right shape. "
              "Found in 3-D by the full sweep: conv3d-fwd-n0d3h4w4c2o8-k3x3x2-s1x2x3-"
              "p0.3.2.1.0.2-d1x1x1-g1-float32-s0 returns (0, 6, 7, 6, 2) for (0, 4, 3, 2, 8).",
        known_bug=True,
        match=lambda case: (case.family == "conv" and case.direction == "forward"
                            and case.n == 0 and case.dtype != "float64"),
    ),
    Difference(
        "tensorflow_onednn_maxpool_empty_output",
        "TensorFlow's oneDNN max pool dies (SIGFPE) when an output axis is empty",
        {"refcnn": "an empty output",
         "tensorflow": "a floating-point exception that kills the process, from the oneDNN "
                       "max pool in 1-D to 3-D (known bug)"},
        sources=("docs/bugs/tensorflow_onednn_maxpool_empty_output.py",),
        notes="float32, float16 and bfloat16 max pools on a non-empty input whose window does "
              "not fit along some axis; float64 (Eigen), TF_ENABLE_ONEDNN_OPTS=0, "
              "max_pool_with_argmax and avg_pool return the empty output. Since the process "
              "dies, the TensorFlow backend declines these cases instead of running them "
              "(the sweeps make none, and crosscheck run --case refuses them). Seen on "
              "max_pool2d-bwd-n2h7w6c2-k2x4-s2x1-pvalid-d2x2-idx-float32-s0 (a dilated "
              "window reaching 7 cells over a width of 6).",
        known_bug=True,
        kills_process=True,
        match=lambda case: (case.family == "max_pool" and case.dtype != "float64"
                            and not _tensorflow_argmax(case)
                            and min(case.n, case.c_in, *case.spatial) > 0
                            and 0 in case.out_spatial()),
    ),
    Difference(
        "onnxruntime_maxpool_neginf_lowest",
        "ONNX Runtime's float32 MaxPool gives -3.4028235e38 for windows of -inf",
        {"refcnn": "-inf", "onnxruntime": "-3.4028235e38 in float32 without Indices (known bug)"},
        sources=("docs/bugs/onnx_ort_maxpool_neginf.py",
                 "onnxruntime#24819 (MaxPool1d -FLT_MAX vs NaN)"),
        notes="ONNX's MaxPool is the maximum of the elements, padding excluded: -inf. The MLAS "
              "kernel starts from the lowest finite float: always in 1-D and 3-D, in 2-D when "
              "the window covers padding. float64, and any dtype with Indices, give -inf.",
        known_bug=True,
        match=lambda case: (case.family == "max_pool" and case.dtype == "float32"
                            and case.inputs == "neginf" and not case.return_indices),
    ),
    Difference(
        "onnx_reference_convtranspose_group",
        "onnx.reference's ConvTranspose is wrong for group > 1",
        {"refcnn": "correct", "onnx": "wrong values or ValueError for group > 1 (known bug)"},
        sources=("docs/bugs/onnx_reference_convtranspose_group.py",
                 "onnx PR #8446 (fixes the per-group output slot only)"),
        notes="It slices W by output channels (W is (C, M/group, *k)), writes each group's "
              "M/group channels into one slot and adds B[0] to every group.",
        known_bug=True,
        match=lambda case: case.family == "conv_transpose" and case.groups > 1,
    ),
    Difference(
        "onnx_reference_avgpool_ceil",
        "onnx.reference's AveragePool with ceil_mode moves windows or raises",
        {"refcnn": "torch's (and ONNX's) ceil_mode windows",
         "onnx": "windows shifted when ceil_mode's overhang is >= 2; IndexError when the "
                 "last window is dropped (known bug)"},
        sources=("docs/bugs/onnx_reference_avgpool_ceil.py",
                 "onnx#4958 (ceil_mode AveragePool in the reference evaluator)"),
        notes="op_pool_common.py puts half of ceil_mode's extra cells before the input and "
              "loops over the windows before ceil_mode drops one.",
        known_bug=True,
        match=lambda case: _ceil_windows_misplaced(case),
    ),
    Difference(
        "onnx_reference_avgpool_nan_excluded",
        "onnx.reference's AveragePool with count_include_pad=0 drops NaN inputs",
        {"refcnn": "NaN", "onnx": "the mean of the other cells (known bug)"},
        sources=("onnx/reference/ops/op_pool_common.py: pads with NaN and averages "
                 "window_vals[~isnan(window_vals)]",),
        notes="Padding is marked with NaN, so real NaN cells are dropped with it. ONNX "
              "divides by the number of elements (excluding pad): a NaN element stays NaN.",
        known_bug=True,
        match=lambda case: (case.family == "avg_pool" and case.inputs == "nan"
                            and not case.count_include_pad),
    ),
    Difference(
        "onnx_reference_globalmaxpool_rank",
        "onnx.reference's GlobalMaxPool reduces the wrong axes off 2-D",
        {"refcnn": "max over every spatial axis",
         "onnx": "max over the last two axes (C and L in 1-D; H and W only in 3-D) (known bug)"},
        sources=("docs/bugs/onnx_reference_globalmaxpool_rank.py",
                 "onnx#7682, fixed by onnx PR #8383"),
        known_bug=True,
        match=lambda case: (case.family == "adaptive_max_pool" and case.rank != 2
                            and not case.return_indices),
    ),
    Difference(
        "onnx_reference_maxpool_unit_stride",
        "onnx.reference's MaxPool with unit strides and dilations: pads and Indices wrong",
        {"refcnn": "torch's windows and indices",
         "onnx": "pads ignored off 2-D (IndexError); 2-D pads read in the wrong order and "
                 "counted twice by ceil_mode (wrong shape, or ValueError on a window of "
                 "padding only); Indices from the output shape (known bug)"},
        sources=("docs/bugs/onnx_reference_maxpool_unit_stride.py",
                 "onnx/reference/ops/_op_common_pool.py (CommonPool._run: pad_top, "
                 "pad_bottom, pad_left, pad_right = pads)",
                 "no onnx issue found (searched: reference MaxPool pads order, unit stride, "
                 "zero-size array)"),
        notes="op_max_pool.py hands these to _op_common_pool.py, which pads only 2-D inputs, "
              "reads ONNX's pads [H0, W0, H1, W1] as [H0, H1, W0, W1] (H gets (H0, W0), W "
              "(H1, W1)), adds the pads again to the padded size under ceil_mode, pads with NaN "
              "and drops NaN (np.max of an empty window: 'zero-size array to reduction "
              "operation maximum'), and turns a window's argmax into an index with the output "
              "shape. Found in 2-D by the full sweep: max_pool2d-fwd-n2h12w12c1-k4x1-s1x1-"
              "p2.2.0.0-d1x1-float64-s0 raises (W padded by (2, 0)), max_pool2d-fwd-n2h9w9c1-"
              "k3x3-s1x1-p0.0.1.1-d1x1-float64-s0 gives (2, 8, 8, 1) for (2, 7, 9, 1).",
        known_bug=True,
        match=lambda case: _unit_stride_max_pool(case),
    ),
    Difference(
        "xla_cpu_conv_negative_pad",
        "XLA:CPU convolution with a negative (cropping) pad reads out of bounds: JAX conv "
        "gradients where a pad before exceeds dilation*(k-1)",
        {"refcnn": "correct", "jax": "garbage next to the crop in float32/float16/bfloat16 "
                                    "(known bug)"},
        sources=("openxla/xla#48713 (open; fix in openxla/xla PR #48748)",
                 "docs/bugs/jax_conv_negative_pad_cpu.py"),
        notes="Found by this suite: conv2d-bwd-n1h6w9c6o3-k4x2-s1x1-p3.3.2.0-d1x1-g3-float32-s0 "
              "errs by 3.7e39 of its bound in dx on both JAX layouts; float64 and torch are right.",
        known_bug=True,
        match=lambda case: (case.family == "conv" and case.direction in ("backward",
                                                                         "double_backward")
                            and case.dtype != "float64" and not isinstance(case.padding, str)
                            and any(before > d * (k - 1) for (before, _), d, k in
                                    zip(case.padding, case.dilation, case.kernel))),
    ),
)
#: The known bugs that kill their framework's process: checked for every case a backend
#: is asked about, so kept apart from the rest.
_FATAL = tuple(diff for diff in DIFFERENCES if diff.kills_process)


def declared_divergence(case: Case, backend: str) -> Difference | None:
    """The convention difference this case probes on which ``backend`` declares another."""
    for diff in DIFFERENCES:
        if not diff.known_bug and diff.probed_by(case) and diff.diverges(backend):
            return diff
    return None


def fatal_bug(case: Case, backend: str) -> Difference | None:
    """A registered bug that would kill ``backend``'s process on ``case``."""
    for diff in _FATAL:
        if diff.probed_by(case) and diff.diverges(backend):
            return diff
    return None


def known_bug(case: Case, backend: str) -> Difference | None:
    """A registered framework bug that may explain ``backend`` failing on ``case``."""
    for diff in DIFFERENCES:
        if diff.known_bug and diff.probed_by(case) and diff.diverges(backend):
            return diff
    return None

