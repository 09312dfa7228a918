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

from collections.abc import Callable
from dataclasses import dataclass, field

from crosscheck.cases import Case


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
         "tensorflow": "ignores NaN (max of the rest)"},
        probes=(("max_pool", "forward", "nan"),),
        sources=("docs/semantics.md",),
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
        {"refcnn": "-inf", "torch": "-inf", "jax": "-inf",
         "tensorflow": "-3.4028235e38", "onnxruntime": "-3.4028235e38"},
        probes=(("max_pool", "forward", "neginf"),),
        sources=("docs/semantics.md",),
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
         "onnx": "from opset 22; reference evaluator mis-handles it"},
        sources=("pytorch PR #120335", "pytorch#57178", "pytorch#116420"),
    ),
    Difference(
        "unsupported_options",
        "Options a framework cannot express",
        {"refcnn": "all supported",
         "torch": "pooling pad > kernel/2 with ceil_mode or count_include_pad=False; "
                  "average-pool dilation; 'same' for transposed conv; float16/bfloat16 "
                  "avg_pool3d on CPU",
         "jax": "max-pool gradient with window dilation (NotImplementedError)"},
        sources=("pytorch#67551", "pytorch#7541", "docs/semantics.md"),
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
)


def declared_divergence(case: Case, backend: str) -> Difference | None:
    """The convention difference this case probes on which ``backend`` declares another."""
    for diff in DIFFERENCES:
        if not diff.known_bug and diff.probed_by(case) and diff.diverges(backend):
            return diff
    return None


def known_bug(case: Case, backend: str) -> Difference | None:
    """A registered framework bug that may explain ``backend`` failing on ``case``."""
    for diff in DIFFERENCES:
        if diff.known_bug and diff.probed_by(case) and diff.diverges(backend):
            return diff
    return None

