"""What each backend accumulates in, declared with its evidence, for the accumulator-aware bound.

A backend that sums float16 or bfloat16 products in float32 rounds the reduction at
float32's unit roundoff and only the result at the output's: its bound
(:func:`crosscheck.tolerance.with_accumulator`) is hundreds of times tighter than the
plain one, which charges all ``K`` roundings to the output dtype. A declaration is per
backend, op family, dtype, direction and output (JAX sums a convolution's bias gradient
in the output dtype but its data and weight gradients in float32), and it is checked:
each one is a claim the sweep tests on every case it covers, and :func:`probe_case`
builds the case on which summing in the output dtype would fail by far (long positive
reductions, so that errors cannot cancel), which ``tests/harness/test_accumulator_bounds.py``
runs on every declaration.

Where a declaration comes from, in order (:func:`declared`):

1. the backend's own ``accumulates(case)`` method, returning None (nothing declared:
   the plain bound), one dtype name for every output, or ``{output: dtype name}``;
2. :data:`DECLARATIONS`, by the backend's family (``jax.nchw`` is ``jax``), for built-in
   backends whose modules need not know about bounds.

A backend run in a worker process (``module:Class``) declares nothing from its own
method (the worker is not asked); it gets the plain bound, which is safe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from crosscheck.cases import Case, Inputs, make_inputs, round_to

HALF = ("float16", "bfloat16")
_CONV_OUTPUTS = {"forward": ("y",), "backward": ("dx", "dw", "db"), "jvp": ("ty",),
                 "double_backward": ("ddy", "dx", "dw")}


@dataclass(frozen=True)
class Accumulation:
    """One declaration: ``backend`` (a family) sums ``families`` in ``dtypes`` in
    ``accumulator`` for the outputs ``outputs[direction]``, as ``evidence`` shows.

    ``when``, if given, narrows it to the cases for which it is true (the framework takes
    another code path on the rest); ``probe`` is what :func:`probe_case` needs changed
    (``Case.with_``) to land in that scope."""

    backend: str
    families: tuple[str, ...]
    dtypes: tuple[str, ...]
    accumulator: str
    outputs: dict[str, tuple[str, ...]]
    evidence: tuple[str, ...]
    notes: str = ""
    ranks: tuple[int, ...] = (1, 2, 3)
    when: Callable[[Case], bool] | None = field(default=None, compare=False)
    probe: dict = field(default_factory=dict)

    def covers(self, case: Case) -> tuple[str, ...]:
        """The outputs of ``case`` this declaration covers (empty when none)."""
        if case.family not in self.families or case.dtype not in self.dtypes or \
                case.rank not in self.ranks or (self.when is not None and not self.when(case)):
            return ()
        return tuple(n for n in self.outputs.get(case.direction, ()) if n in case.output_names())


def _torch_slow_transpose(case: Case) -> bool:
    """A transposed conv with output_padding >= stride on some axis: torch's CPU dispatch
    keeps it from oneDNN (``ConvParams::is_output_padding_big``) for
    ``slow_conv_transpose{2,3}d``, a float32 gemm over C_in per kernel tap whose columns
    are rounded to the output dtype and then added tap by tap in it (col2im)."""
    return case.family == "conv_transpose" and any(
        q >= s for q, s in zip(case.output_padding, case.stride))


def _torch_onednn_conv(case: Case) -> bool:
    return not _torch_slow_transpose(case)


def _torch_not_mean_double_backward(case: Case) -> bool:
    """Not the double backward of an adaptive average pool to output size 1, which torch
    computes as a mean: its ddy sums ``gx / L`` terms each rounded to the output dtype
    (exact only when L is a power of 2)."""
    return not (case.family == "adaptive_avg_pool" and case.direction == "double_backward"
                and set(case.output_size) == {1})


DECLARATIONS: tuple[Accumulation, ...] = (
    Accumulation(
        "torch", ("conv", "conv_transpose"), HALF, "float32", _CONV_OUTPUTS,
        evidence=(
            "measured: torch 2.13 CPU, probe_case in 1-D, 2-D and 3-D (K = 3**rank * 64, "
            "positive inputs): y, dx, dw and db within 0.5 ulp of the exact result in "
            "float16 and bfloat16, i.e. one rounding of a sum at least as wide as float32 "
            "(summing in float16 errs by tens of ulps there)",
            "the default sweep's float16 and bfloat16 convolutions, every direction, pass the "
            "accumulator-aware bound (bfloat16 convs stay under the known bug "
            "torch_cpu_bf16_conv)"),
        notes="jvp's ty and double backward's ddy are sums of two convolutions and a bias, "
              "each rounded to the output dtype (measured up to 1.5 ulp): the bound's P term. "
              "Transposed convs with output_padding >= stride are the next declaration's.",
        when=_torch_onednn_conv),
    Accumulation(
        "torch", ("conv_transpose",), HALF, "float32",
        {"backward": ("dx", "db"), "double_backward": ("dx", "dw")},
        evidence=(
            "measured: torch 2.13 CPU, probe_case with stride 1, dilation 2, output_padding "
            "1 in 1-D, 2-D and 3-D: the backward's dx and db and the double backward's dx "
            "and dw within 0.5 ulp of the exact result in float16 and bfloat16 (one gemm "
            "per batch element, or oneDNN, then one rounding)",
            "measured: y is bit for bit a float32 sum over C_in per kernel tap rounded to "
            "the output dtype, the taps then added in the output dtype (an emulation matches "
            "torch on every element of the 1-D probe, with 64 channels and 3 taps, 4 and 8, "
            "or 1 and 16), 1.3 to 2.1 ulp off the exact result where one rounding is 0.5"),
        notes="Not y, ty or ddy (col2im adds the taps in the output dtype: the full sweep's "
              "conv_transpose2d-fwd-n1h8w8c2o8-k1x3-s2x1-p0.0.1.1-op0x1-d1x3-g1-nobias-"
              "bfloat16-s2 errs by 133 times the float32 bound, 0.08 of the plain one; ddy "
              "1.1 times the float32 bound on probe_inputs with 1 channel and 8x8 taps), nor "
              "the backward's dw (added into the output dtype batch element by batch element: "
              "6.2 times the float32 bound on conv_transpose3d-bwd-n3d4h5w3c8o8-k2x3x1-s3x1x1-"
              "p0.0.0.0.0.0-op0x2x1-d2x3x2-g8-bfloat16-s1): those get the plain bound.",
        when=_torch_slow_transpose, probe=dict(stride=1, dilation=2, output_padding=1)),
    Accumulation(
        "torch", ("avg_pool", "adaptive_avg_pool"), HALF, "float32",
        {"forward": ("y",), "jvp": ("ty",), "double_backward": ("ddy",)}, ranks=(1, 2),
        evidence=(
            "measured: torch 2.13 CPU, probe_case (8x8 windows, or 3 bins of 8, positive "
            "inputs) in 1-D and 2-D: y, ty and ddy within 0.5 ulp of the exact mean in "
            "float16 and bfloat16 (the window sum in a wider type, one rounding)",),
        notes="Not adaptive_avg_pool3d: it sums in the output dtype (11 ulp in float16, 69 "
              "in bfloat16 on the probe); torch has no float16/bfloat16 avg_pool3d on CPU. "
              "Not the backward: avg_pool2d's dx adds dy/divisor terms rounded to the "
              "output dtype (measured 1.25 ulp), which the plain bound covers. Not the double "
              "backward's ddy of an adaptive pool to output size 1, which torch runs as a "
              "mean: ddy is bit for bit a float32 sum of gx / L each rounded to the output "
              "dtype (measured on 60 elements per L in 1-D and 2-D), 13 times the float32 "
              "bound on the full sweep's adaptive_avg_pool1d-bwd2-n2l5c1-a1-bfloat16-s0.",
        when=_torch_not_mean_double_backward),
    Accumulation(
        "jax", ("conv", "conv_transpose"), HALF, "float32",
        {"forward": ("y",), "backward": ("dx", "dw"), "jvp": ("ty",),
         "double_backward": ("ddy", "dx", "dw")},
        evidence=(
            "measured: JAX 0.10.2 CPU (XLA), probe_case in 1-D, 2-D and 3-D (K = 3**rank * "
            "64, positive inputs): dx and dw within 0.5 ulp in float16 and bfloat16 (one "
            "rounding of a wide sum); "
            "y within 1 ulp, the backend adding the bias after the convolution's rounding "
            "(the bound's P term)",),
        notes="Not db: the reduction of dy that transposes the bias's broadcast errs by 3.6 "
              "ulp in float16 and 22 ulp in bfloat16 on the probe (summed in the output "
              "dtype), within the plain bound. Not the pools: reduce_window sums in the output "
              "dtype (4 ulp on 8x8 windows)."),
)


def declared(backend, name: str, case: Case):
    """What ``backend`` (called ``name``) declares it accumulates ``case`` in: None, a
    dtype name, or ``{output: dtype name}``."""
    own = getattr(backend, "accumulates", None)
    if callable(own):
        return own(case)
    from crosscheck.semantics import family

    found = {}
    for d in DECLARATIONS:
        if d.backend == family(name):
            found.update(dict.fromkeys(d.covers(case), d.accumulator))
    return found or None


def key(accumulator) -> tuple | None:
    """A declaration as a hashable key (for caching the bounds it gives)."""
    if not accumulator:
        return None
    if isinstance(accumulator, dict):
        return tuple(sorted(accumulator.items()))
    return (("*", accumulator),)


def from_key(k):
    """The inverse of :func:`key`."""
    if k is None:
        return None
    if k[0][0] == "*":
        return k[0][1]
    return dict(k)


# ---- the probe --------------------------------------------------------------------------
def probe_case(family: str, dtype: str, direction: str = "forward", rank: int = 2) -> Case:
    """A case on which summing in the output dtype fails the accumulator-aware bound by far:
    a long reduction (convs: 3 taps per axis over 64 channels, K = 576 in 2-D; average
    pools: windows of 8 per axis), bias included. Its inputs are :func:`probe_inputs`."""
    if family in ("conv", "conv_transpose"):
        return Case.of(family, rank, direction, n=2, spatial=(12 if rank < 3 else 6,) * rank,
                       c_in=64, c_out=8, kernel=3, dtype=dtype)
    if family == "avg_pool":
        return Case.of(family, rank, direction, n=2, spatial=(24,) * rank, c_in=3, kernel=8,
                       stride=4, dtype=dtype)
    return Case.of(family, rank, direction, n=2, spatial=(24,) * rank, c_in=3, output_size=3,
                   dtype=dtype)


def probe_inputs(case: Case) -> Inputs:
    """Positive inputs in [0.5, 1) (exact in the dtype): partial sums only grow, so the
    roundings of a sum in the output dtype add up instead of cancelling."""
    rng = np.random.default_rng(12)
    base = make_inputs(case)
    arrays = {}
    for role in ("x", "w", "b", "dy", "tx", "tw", "tb", "gx", "gw", "gb"):
        a = getattr(base, role)
        arrays[role] = None if a is None else round_to(rng.uniform(0.5, 1.0, a.shape),
                                                       case.dtype)
    return Inputs(**arrays)


def check(backend, name: str, case: Case) -> list:
    """``backend`` on ``case`` with :func:`probe_inputs`, each output it declares compared with
    the reference under the accumulator-aware bound: a list of
    :class:`~crosscheck.compare.Discrepancy` (a declaration that no longer holds fails)."""
    from crosscheck import tolerance
    from crosscheck.compare import compare
    from crosscheck.runner import reference_outputs

    declaration = declared(backend, name, case)
    covered = tuple(tolerance.accumulators(case, declaration))
    inputs = probe_inputs(case)
    ref = reference_outputs(case, inputs)
    bounds = tolerance.bounds(case, inputs, ref, accumulator=declaration)
    out = backend.run(case, inputs)
    return [compare(out[k], ref[k], bounds[k], case_id=case.id, backend=name, output=k)
            for k in covered]
