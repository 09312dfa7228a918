"""The op table and the case type built from it: ids, JSON, parameters, 0.1.0 compatibility."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from crosscheck import ops
from crosscheck.cases import Case, make_inputs
from crosscheck.sweeps import sweep, valid

DATA = Path(__file__).parent / "data"
OLD_IDS = DATA.joinpath("ids_0.1.0.txt").read_text().split()


def _drawn(count=40):
    for name in ops.op_names():
        entry, rank = ops.get(name)
        rng = random.Random(name)
        for _ in range(count):
            yield entry.draw(rng, rank)


@pytest.mark.parametrize("case_id", OLD_IDS)
def test_ids_printed_by_0_1_0_still_parse_and_print_the_same(case_id):
    case = Case.from_id(case_id)
    assert case.id == case_id
    assert case.rank == 2 and case.op in ("conv2d", "max_pool2d", "avg_pool2d")


def test_cases_written_as_json_by_0_1_0_still_load():
    for d in json.loads(DATA.joinpath("cases_0.1.0.json").read_text()):
        case = Case.from_dict(d)
        assert (case.h, case.w, case.kernel, case.dtype) == (d["h"], d["w"], tuple(d["kernel"]),
                                                               d["dtype"])


def test_every_drawn_case_of_every_op_round_trips():
    for case in _drawn():
        for c in (case, case.with_(direction="backward", dtype="float16", seed=7,
                                   inputs="nan")):
            assert Case.from_id(c.id) == c, c.id
            assert Case.from_json(c.to_json()) == c, c.id
            assert hash(Case.from_id(c.id)) == hash(c)


def test_ids_carry_the_rank_in_the_shape_and_the_parameters():
    c1 = Case.of("conv", 1, n=2, spatial=(9,), c_in=3, c_out=4, kernel=3, stride=2, padding=1)
    c3 = Case.of("max_pool", 3, n=1, spatial=(4, 5, 6), c_in=2, kernel=2, return_indices=True)
    assert c1.id == "conv1d-fwd-n2l9c3o4-k3-s2-p1.1-d1-g1-float64-s0"
    assert c3.id == "max_pool3d-fwd-n1d4h5w6c2-k2x2x2-s2x2x2-p0.0.0.0.0.0-d1x1x1-idx-float64-s0"
    ct = Case.of("conv_transpose", 2, n=1, spatial=(3, 3), c_in=2, c_out=2, kernel=3,
                 stride=2, output_padding=(1, 0))
    assert "-op1x0-" in ct.id and Case.from_id(ct.id).output_padding == (1, 0)
    ad = Case.of("adaptive_avg_pool", 2, n=1, spatial=(7, 5), c_in=1, output_size=(3, 2))
    assert ad.id == "adaptive_avg_pool2d-fwd-n1h7w5c1-a3x2-float64-s0"


@pytest.mark.parametrize("bad, message", [
    ("conv2d-fwd-n1h5w5c1o1-k3x3-s1x1-p0.0.0.0-d1x1-g1-float64", "DTYPE-sSEED"),
    ("conv4d-fwd-n1h5w5c1o1-k3x3-s1x1-p0.0.0.0-d1x1-g1-float64-s0", "op must be"),
    ("conv2d-fwd-n1l5c1o1-k3-s1-p0.0-d1-g1-float64-s0", "shape token"),
    ("conv2d-fwd-n1h5w5c1o1-k3x3-s1x1-p0.0-d1x1-g1-float64-s0", "padding"),
    ("max_pool2d-fwd-n1h5w5c1-k3x3-s1x1-p0.0.0.0-d1x1-g1-float64-s0", "unexpected token"),
    ("conv2d-fwd-n1h5w5c1o1-k3x3-s1x1-p0.0.0.0-d1x1-g01-float64-s0", "reads back"),
])
def test_malformed_ids_are_refused_naming_the_problem(bad, message):
    with pytest.raises(ValueError, match=message):
        Case.from_id(bad)


def test_parameters_are_checked_against_the_table():
    with pytest.raises(ValueError, match="has no parameter"):
        Case.of("max_pool", 2, n=1, spatial=(4, 4), c_in=1, kernel=2, groups=2)
    with pytest.raises(ValueError, match="needs kernel"):
        Case.of("conv", 2, n=1, spatial=(4, 4), c_in=1, c_out=1)
    with pytest.raises(ValueError, match="stride: expected 2 values"):
        Case.of("conv", 2, n=1, spatial=(4, 4), c_in=1, c_out=1, kernel=2, stride=(1, 1, 1))
    with pytest.raises(ValueError, match="3 spatial sizes"):
        Case("conv3d", "forward", 1, (4, 4), 1, 1, {"kernel": 1})


def test_pool_stride_defaults_to_the_kernel_and_options_follow_the_table():
    case = Case.of("avg_pool", 1, n=1, spatial=(8,), c_in=1, kernel=3, count_include_pad=False)
    assert case.stride == (3,)
    assert case.options() == {"kernel_size": (3,), "stride": (3,), "padding": ((0, 0),),
                              "dilation": (1,), "ceil_mode": False, "count_include_pad": False,
                              "divisor_override": None}


def test_output_names_come_from_the_table():
    conv = Case.of("conv", 2, "backward", n=1, spatial=(4, 4), c_in=1, c_out=1, kernel=2)
    assert conv.output_names() == ("dx", "dw", "db")
    assert conv.with_(bias=False).output_names() == ("dx", "dw")
    pool = Case.of("adaptive_max_pool", 1, n=1, spatial=(5,), c_in=1, output_size=2)
    assert pool.output_names() == ("y",)
    assert pool.with_(return_indices=True).output_names() == ("y", "indices")


def test_inputs_have_the_op_shapes_and_are_read_only():
    ct = Case.of("conv_transpose", 3, n=2, spatial=(2, 3, 4), c_in=4, c_out=6, kernel=(1, 2, 3),
                 groups=2, stride=2)
    inputs = make_inputs(ct.with_(direction="backward"))
    assert inputs.x.shape == (2, 2, 3, 4, 4)
    assert inputs.w.shape == (1, 2, 3, 3, 4)     # (*kernel, C_out/groups, C_in)
    assert inputs.dy.shape == (2, *ct.out_spatial(), 6)
    with pytest.raises(ValueError, match="read-only"):
        inputs.x[0, 0, 0, 0, 0] = 1.0


def test_every_op_of_the_table_is_in_the_default_sweep_in_every_direction():
    seen = {(c.op, c.direction) for c in sweep("default")}
    assert seen == {(name, d) for name in ops.op_names() for d in ops.DIRECTION_TOKENS}


def test_sweeps_are_deterministic_and_ids_unique():
    cases = sweep("default")
    assert len({c.id for c in cases}) == len(cases)
    assert [c.id for c in sweep("smoke")] == [c.id for c in sweep.__wrapped__("smoke")]


def test_reference_and_magnitudes_cover_every_output():
    for case in [c for c in _drawn(6) if valid(c)]:
        for c in (case, case.with_(direction="backward")):
            inputs = make_inputs(c)
            ref = c.entry.reference(c, inputs)
            mags = c.entry.magnitudes(c, inputs)
            assert set(c.output_names()) <= set(ref) and set(c.output_names()) == set(mags), c.id
            for name in c.output_names():
                k, a = mags[name]
                assert np.shape(a) == np.shape(ref[name]) and k >= 0, (c.id, name)
