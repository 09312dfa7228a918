"""Degenerate references are mistrusted: agreeing with them is never a pass."""

from __future__ import annotations

import numpy as np

from crosscheck import isolation, trust
from crosscheck.cases import Case, Inputs, make_inputs
from crosscheck.runner import judge, prepared, reference_outputs, run_backend
from crosscheck.statuses import FAILING, JUDGED, Status
from crosscheck.sweeps import sweep
from crosscheck.tolerance import bounds

CONV = Case.of("conv", 2, "forward", n=2, spatial=(8, 8), c_in=3, c_out=4, kernel=3, padding=1,
               bias=False, dtype="float32")


class Zeros:
    """A kernel that writes zeros: right only where the reference is zero."""

    name = "zeros"

    def version(self):
        return "planted"

    def unsupported(self, case):
        return None

    def run(self, case, inputs):
        return {k: np.zeros(v.shape) for k, v in reference_outputs(case, inputs).items()}


def _judge_on(case, inputs, backend):
    """The runner's verdict on ``inputs`` of our choosing (as a corpus is judged)."""
    ref = reference_outputs(case, inputs)
    why = trust.degenerate(case, ref, inputs)
    answer = isolation.call_in_process(backend, case, lambda: inputs)
    return judge(case, backend.name, answer, expected=(ref, bounds(case, inputs, ref), why))


def _mostly_zero_inputs(case):
    base = make_inputs(case)
    x = np.zeros(base.x.shape)
    x[0, 0, 0, 0] = 1.0  # one nonzero cell: 4 positions of 2*8*8 see it
    return Inputs(x, base.w, base.b, base.dy)


def test_a_mostly_zero_reference_is_degenerate_and_a_failure_on_it_stays_a_failure():
    inputs = _mostly_zero_inputs(CONV)
    why = trust.degenerate(CONV, reference_outputs(CONV, inputs), inputs)
    assert why and "97% zeros" in why, why
    assert _judge_on(CONV, inputs, Zeros()).status == Status.FAILED


def test_zeros_agree_with_an_all_zero_reference_and_are_mistrusted_not_passed():
    base = make_inputs(CONV)
    inputs = Inputs(np.zeros(base.x.shape), base.w, None, base.dy)
    result = _judge_on(CONV, inputs, Zeros())
    assert all(d.passed for d in result.discrepancies)
    assert result.status == Status.MISTRUSTED, result.summary()
    assert result.reason.startswith("degenerate reference: y is 100% zeros")
    # On the sweep's own (random) inputs the zeros kernel fails, as it should.
    assert run_backend(CONV, "zeros", Zeros()).status == Status.FAILED


def test_a_constant_reference_is_mistrusted():
    base = make_inputs(CONV)
    inputs = Inputs(np.ones(base.x.shape), np.ones(base.w.shape), None, base.dy)
    case = CONV.with_(padding=0)
    ref = reference_outputs(case, inputs)
    assert "one value" in trust.degenerate(case, ref, inputs)


def test_structure_is_not_degeneracy():
    # A max pool with stride = kernel routes each window's gradient to one cell of four:
    # 75% of dx is zero, whatever the data.
    pool = Case.of("max_pool", 2, "backward", n=1, spatial=(8, 8), c_in=2, kernel=2)
    inputs, ref, _ = prepared(pool)
    assert np.mean(ref["dx"] == 0) >= 0.75 and trust.degenerate(pool, ref, inputs) is None
    # A max pool's second-order dx is zero by definition.
    second = pool.with_(direction="double_backward")
    inputs, ref, _ = prepared(second)
    assert not ref["dx"].any() and trust.degenerate(second, ref, inputs) is None
    # Global average pooling over one plane: dx = dy / (H*W) everywhere, for any data.
    flat = Case.of("adaptive_avg_pool", 2, "backward", n=1, spatial=(12, 12), c_in=1,
                   output_size=1)
    inputs, ref, _ = prepared(flat)
    assert len(np.unique(ref["dx"])) == 1 and trust.degenerate(flat, ref, inputs) is None
    # An empty batch has nothing to trust or mistrust.
    empty = CONV.with_(n=0, direction="backward")
    inputs, ref, _ = prepared(empty)
    assert trust.degenerate(empty, ref, inputs) is None


def test_mistrusted_is_judged_but_neither_a_pass_nor_a_failure():
    assert Status.MISTRUSTED.value == "mistrusted"
    assert "mistrusted" in JUDGED and "mistrusted" not in FAILING


def test_the_sweep_generators_produce_no_degenerate_case():
    for case in sweep("smoke"):
        try:
            inputs, ref, _ = prepared(case)
        except ValueError:
            continue
        assert trust.degenerate(case, ref, inputs) is None, case.id
