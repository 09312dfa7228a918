"""Accumulator-aware bounds: a kernel that declares float32 but sums in float16 is caught."""

from __future__ import annotations

import numpy as np
import pytest

from crosscheck import accumulation, geometry, tolerance
from crosscheck.cases import Case, make_inputs
from crosscheck.runner import reference_outputs, run_backend
from crosscheck.sweeps import sweep

# K = 3*3*64 = 576 terms per output, no bias: one rounding of a float32 sum.
CASE = Case.of("conv", 2, "forward", n=2, spatial=(10, 9), c_in=64, c_out=4, kernel=3, padding=1,
               bias=False, dtype="float16")


class SumsInHalf:
    """A 2-D conv forward (groups 1) that rounds each product and each partial sum to the
    case's dtype, tap by tap and channel by channel, while it declares float32."""

    name = "sums-in-half"

    def __init__(self, declares="float32"):
        self.declares = declares

    def version(self):
        return "planted"

    def accumulates(self, case):
        return self.declares

    def unsupported(self, case):
        if case.op != "conv2d" or case.direction != "forward" or case.groups != 1:
            return "planted for 2-D conv forward without groups"
        return None

    def run(self, case, inputs):
        half = np.float16
        (pt, pb), (pl, pr) = geometry.explicit_pads(case)
        x = np.pad(inputs.x, ((0, 0), (pt, pb), (pl, pr), (0, 0))).astype(half)
        w = inputs.w.astype(half)
        (ho, wo), (sh, sw), (dh, dw) = case.out_spatial(), case.stride, case.dilation
        acc = np.zeros((case.n, ho, wo, case.c_out), half)
        for i in range(case.kernel[0]):
            for j in range(case.kernel[1]):
                patch = x[:, i * dh: i * dh + sh * (ho - 1) + 1: sh,
                          j * dw: j * dw + sw * (wo - 1) + 1: sw, :]
                for c in range(case.c_in):
                    product = (patch[..., c:c + 1].astype(np.float32) *
                               w[i, j, c].astype(np.float32)).astype(half)
                    acc = (acc + product).astype(half)
        if inputs.b is not None:
            acc = (acc + inputs.b.astype(half)).astype(half)
        return {"y": acc.astype(np.float64)}


def test_summing_in_half_passes_the_plain_bound_and_fails_the_declared_one():
    plain = run_backend(CASE, "sums-in-half", SumsInHalf(declares=None))
    assert plain.status == "passed", plain.summary()
    assert plain.worst_ratio < 0.05  # the plain bound charges all K roundings to float16
    caught = run_backend(CASE, "sums-in-half", SumsInHalf())
    assert caught.status == "failed", caught.summary()
    (d,) = caught.discrepancies
    assert d.mismatches > d.elements // 4 and "accumulating in float32" in d.bound


def test_the_sweeps_long_reductions_catch_it_where_torch_passes():
    torch_backend = pytest.importorskip("crosscheck.backends.torch_backend").TorchBackend()
    cases = [c for c in sweep("smoke") if "long reduction" in c.tags and c.dtype == "float16"
             and c.direction == "forward"]
    assert cases
    for case in cases:
        assert run_backend(case, "sums-in-half", SumsInHalf()).status == "failed"
        assert run_backend(case, "sums-in-half", SumsInHalf(None)).status == "passed"
        result = run_backend(case, "torch", torch_backend)
        assert result.status == "passed", result.summary()
        assert "accumulating in float32" in result.discrepancies[0].bound


def test_the_bound_is_far_tighter_with_a_wider_accumulator():
    inputs = make_inputs(CASE)
    ref = reference_outputs(CASE, inputs)
    plain = tolerance.bounds(CASE, inputs, ref)["y"].allowed
    tight = tolerance.bounds(CASE, inputs, ref, accumulator="float32")["y"].allowed
    assert np.all(tight <= plain) and np.median(plain / tight) > 20
    # Never below the final rounding, and the conv's own part before its bias counted.
    assert np.all(tight >= 2 * tolerance.UNIT_ROUNDOFF["float16"] * np.abs(ref["y"]))


def test_declarations_name_outputs_and_narrower_ones_change_nothing():
    case = CASE.with_(direction="backward", bias=True)
    assert tolerance.accumulators(case, "float32") == {"dx": "float32", "dw": "float32",
                                                       "db": "float32"}
    assert tolerance.accumulators(case, {"dx": "float32"}) == {"dx": "float32"}
    assert tolerance.accumulators(case.with_(dtype="float32"), "float32") == {}
    assert tolerance.accumulators(case, "float16") == {}
    with pytest.raises(ValueError):
        tolerance.accumulators(case, "float8")


def test_the_registry_declares_per_backend_family_and_output():
    back = CASE.with_(direction="backward", bias=True)
    assert accumulation.declared(object(), "torch", back) == dict.fromkeys(
        ("dx", "dw", "db"), "float32")
    assert accumulation.declared(object(), "jax.nchw", back) == dict.fromkeys(
        ("dx", "dw"), "float32")  # JAX sums the bias gradient in the output dtype
    assert accumulation.declared(object(), "torch", CASE.with_(dtype="float32")) is None
    pool3d = Case.of("adaptive_avg_pool", 3, n=1, spatial=(4, 4, 4), c_in=1, output_size=2,
                     dtype="float16")
    assert accumulation.declared(object(), "torch", pool3d) is None
    assert accumulation.declared(SumsInHalf(), "torch", CASE) == "float32"  # its own wins


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_each_declaration_still_holds_on_its_probe(framework):
    """The probe that notices a change: long positive reductions, on which summing in the
    output dtype errs by tens of ulps and the accumulator-aware bound allows about one."""
    pytest.importorskip(framework)
    from crosscheck.backends import get_backend

    backend = get_backend(framework)
    directions = None if framework == "torch" else ("forward", "backward")  # JAX compiles
    checked = 0
    for d in accumulation.DECLARATIONS:
        if d.backend != framework:
            continue
        for family in d.families:
            for dtype in d.dtypes:
                for direction in directions or tuple(d.outputs):
                    case = accumulation.probe_case(family, dtype, direction, rank=2)
                    case = case.with_(**{k: v for k, v in d.probe.items()
                                         if k in case.params})
                    assert d.covers(case) or direction not in d.outputs, (d, case.id)
                    for disc in accumulation.check(backend, framework, case):
                        assert disc.passed, disc.summary()
                        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("case_id, output", [
    # Transposed convs with output_padding >= stride: col2im adds the kernel taps in the
    # output dtype (y), and the weight gradient is added into it batch element by element.
    ("conv_transpose2d-fwd-n1h8w8c2o8-k1x3-s2x1-p0.0.1.1-op0x1-d1x3-g1-nobias-bfloat16-s2", "y"),
    ("conv_transpose2d-fwd-n3h5w5c3o4-k3x5-s1x1-p2.2.0.0-op0x1-d1x3-g1-nobias-float16-s0", "y"),
    ("conv_transpose3d-bwd-n3d4h5w3c8o8-k2x3x1-s3x1x1-p0.0.0.0.0.0-op0x2x1-d2x3x2-g8-"
     "bfloat16-s1", "dw"),
    # The double backward of an adaptive average pool to size 1 (a mean): gx / L rounded
    # term by term before the sum.
    ("adaptive_avg_pool1d-bwd2-n2l5c1-a1-bfloat16-s0", "ddy"),
], ids=lambda v: v if "-" in v else None)
def test_torch_sums_in_the_output_dtype_where_no_declaration_reaches(case_id, output):
    """Signed inputs whose sums cancel tell the two apart: these outputs exceed the float32
    bound by far, so no declaration may cover them (they pass under the plain bound). If
    one passes the float32 bound, torch changed how it sums: widen its declaration."""
    pytest.importorskip("torch")
    from crosscheck.backends import get_backend

    backend, case = get_backend("torch"), Case.from_id(case_id)
    assert output not in (accumulation.declared(backend, "torch", case) or {})
    inputs = make_inputs(case)
    ref = reference_outputs(case, inputs)
    error = np.abs(backend.run(case, inputs)[output] - ref[output])
    tight = tolerance.bounds(case, inputs, ref, accumulator="float32")[output].allowed
    assert np.max(error / tight) > 3, f"{case_id} {output}: within 3x the float32 bound"
    result = run_backend(case, "torch", backend)
    assert result.status == "passed", result.summary()


def test_the_probe_has_teeth():
    case = accumulation.probe_case("conv", "float16")
    inputs = accumulation.probe_inputs(case)
    got = SumsInHalf().run(case, inputs)["y"]
    ref = reference_outputs(case, inputs)["y"]
    tight = tolerance.bounds(case, inputs, {"y": ref}, accumulator="float32")["y"]
    assert np.max(np.abs(got - ref) / tight.allowed) > 3
