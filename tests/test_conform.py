"""``crosscheck conform``: verdicts on correct and planted-bug implementations of the notebook API.

The targets live in ``tests/conform_targets/``: each ``bug_*.py`` is the loop
implementation of ``notebook_loops.py`` with one method replaced by a version
holding one bug people really make. Most checks call the target in-process
(fast); the timeout and the import forms go through the worker process.
"""

import os
import subprocess
import sys

import pytest

from crosscheck import conform
from crosscheck.cli import main

TARGETS = os.path.join(os.path.dirname(__file__), "conform_targets")


def target(name: str) -> str:
    return os.path.join(TARGETS, f"{name}.py")


#: target -> the functions that must be found non-conformant (all others conformant).
EXPECTED = {
    "notebook_loops": set(),
    "vectorized": set(),
    "bug_conv_backward_stride": {"conv_backward"},
    "bug_pool_backward_stride": {"pool_backward"},
    "bug_mask_no_stride": {"pool_backward"},
    "bug_pad_crop": {"conv_backward"},
    "bug_off_by_one": {"conv_forward"},
    # pool_backward calls the broken distribute_value, so both are wrong.
    "bug_avg_count": {"distribute_value", "pool_backward"},
    "bug_mutates_input": {"pool_backward"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_conform_verdicts_on_planted_bugs(name):
    outcome = conform.check_target(target(name), in_process=True)
    wrong = {f for f, v in outcome.verdicts.items() if v.verdict == conform.NOT_CONFORMANT}
    assert wrong == EXPECTED[name], (
        f"{name}: expected non-conformant {sorted(EXPECTED[name])}, got {sorted(wrong)}:\n"
        + "\n".join(f"{f}: {v.first_failure.case_id}: {v.first_failure.message}"
                    for f, v in outcome.verdicts.items() if v.first_failure))
    assert set(outcome.provided) == set(conform.FUNCTIONS)
    assert outcome.conformant == (not EXPECTED[name])


def test_conform_torch_backed_target_with_opaque_caches():
    pytest.importorskip("torch")
    outcome = conform.check_target(target("torch_backed"), in_process=True)
    failures = {f: v.first_failure.message for f, v in outcome.verdicts.items()
                if v.first_failure}
    assert outcome.conformant, failures


def test_conform_failure_names_case_parameters_error_and_reproducer():
    outcome = conform.check_target(target("bug_conv_backward_stride"), in_process=True,
                                   functions=["conv_backward"])
    first = outcome.verdicts["conv_backward"].first_failure
    assert first.params["stride"] > 1, "stride-1 cases cannot show an ignored stride"
    assert first.max_error > 1e-3 and "dA_prev" in first.message
    assert f"--case {first.case_id}" in first.reproduce
    # The snippet reproduces the error on its own.
    out = subprocess.run([sys.executable, "-c", first.reproduce], capture_output=True, text=True,
                         timeout=60, cwd=TARGETS)
    assert out.returncode == 0, out.stderr
    dA_line = next(line for line in out.stdout.splitlines() if line.startswith("dA_prev"))
    assert float(dA_line.split()[-1]) > 1e-3


def test_conform_reports_wrong_output_size_with_the_formula():
    outcome = conform.check_target(target("bug_off_by_one"), in_process=True,
                                   functions=["conv_forward"])
    message = outcome.verdicts["conv_forward"].first_failure.message
    assert "Z has shape" in message and "floor((n_H_prev + 2*pad - f) / stride) + 1" in message


def test_conform_reports_input_mutation():
    outcome = conform.check_target(target("bug_mutates_input"), in_process=True,
                                   functions=["pool_backward"])
    first = outcome.verdicts["pool_backward"].first_failure
    assert "modified its input dA in place" in first.message
    assert first.params["mode"] == "average"


def test_conform_sweep_covers_the_bugs_people_make():
    cases = conform.conformance_cases()
    conv = [c.case for c in cases if c.function == "conv_forward"]
    pool = [c.case for c in cases if c.function == "pool_forward"]
    assert {c.stride[0] for c in conv} >= {1, 2, 3}
    remainder = [c for c in conv
                 if (c.h + 2 * c.padding[0][0] - c.kernel[0]) % c.stride[0] != 0]
    assert {c.stride[0] for c in remainder} >= {2, 3}
    assert any(c.padding[0][0] == 0 and c.stride[0] > 1 for c in conv)
    assert any(c.h != c.w for c in conv) and any(c.c_in != c.c_out for c in conv)
    assert any(c.n > 1 for c in conv) and any(c.n > 1 for c in pool)
    assert any(c.stride[0] < c.kernel[0] for c in pool), "overlapping pooling windows"
    assert any(c.stride[0] == c.kernel[0] for c in pool), "touching pooling windows"
    assert any(c.stride[0] > c.kernel[0] for c in pool), "gapped pooling windows"
    assert {c.op for c in pool} == {"max_pool2d", "avg_pool2d"}
    assert all(c.dtype == "float64" and c.inputs == "random" for c in conv + pool)


def test_conform_case_ids_round_trip_and_are_deterministic():
    cases = conform.conformance_cases(strict=True)
    assert cases == conform.conformance_cases(strict=True)
    assert len({c.id for c in cases}) == len(cases)
    for c in cases:
        assert conform.conform_case(c.id) == c, c.id


def test_conform_rejects_cases_the_notebook_cannot_express():
    with pytest.raises(ValueError, match="notebook"):
        conform.conform_case("conv2d-fwd-n1h5w5c2o2-k3x3-s1x1-p1.0.1.0-d1x1-g1-float64-s0")


def test_conform_strict_reports_tie_and_nan_conventions_without_failing():
    outcome = conform.check_target(target("notebook_loops"), in_process=True, strict=True,
                                   functions=["pool_forward", "pool_backward",
                                              "create_mask_from_window"])
    assert outcome.conformant
    conventions = {o.case_id: o.convention for v in outcome.verdicts.values()
                   for o in v.reported}
    tie = next(text for cid, text in conventions.items() if "bwd" in cid and "ties" in cid)
    assert "every tied maximum" in tie
    mask = next(text for cid, text in conventions.items() if cid.startswith("create_mask"))
    assert "every maximum" in mask
    refcnn_outcome = conform.check_target("refcnn", in_process=True, strict=True,
                                          functions=["pool_backward"])
    tie = next(o.convention for o in refcnn_outcome.verdicts["pool_backward"].reported
               if "ties" in o.case_id)
    assert "first maximum" in tie


def test_conform_refcnn_and_its_loops_are_conformant():
    for spec in ("refcnn", "refcnn.loops"):
        outcome = conform.check_target(spec, in_process=True)
        assert outcome.conformant, spec


def test_conform_stops_a_hanging_target_with_a_clear_message():
    outcome = conform.check_target(target("hangs"), timeout=1.0)
    v = outcome.verdicts["conv_forward"]
    assert v.verdict == conform.NOT_CONFORMANT
    assert "timed out" in v.first_failure.message
    skipped = [o for o in outcome.outcomes if o.status == "skipped"]
    assert skipped and all(o.function == "conv_forward" for o in skipped)
    assert outcome.verdicts["zero_pad"].verdict == conform.CONFORMANT
    assert outcome.verdicts["pool_forward"].verdict == conform.NOT_PROVIDED
    assert outcome.seconds < 30


def test_conform_loads_module_object_and_path_object_forms(monkeypatch):
    monkeypatch.syspath_prepend(TARGETS)
    for spec in ("notebook_loops", "notebook_loops:NotebookCNN",
                 target("notebook_loops") + ":NotebookCNN"):
        loaded = conform.load_target(spec)
        assert set(loaded.functions) == set(conform.FUNCTIONS), spec
    outcome = conform.check_target("notebook_loops:NotebookCNN", functions=["zero_pad"])
    assert outcome.conformant


@pytest.mark.parametrize("name, message", [
    ("nothing", "provides none of the notebook functions"),
    ("broken_import", "cannot import"),
    ("does_not_exist", "cannot import"),
])
def test_conform_cli_exit_2_when_target_unusable(name, message, capsys):
    assert main(["conform", target(name), "--in-process"]) == 2
    assert message in capsys.readouterr().err


def test_conform_cli_exit_codes_and_json(tmp_path, capsys):
    report = tmp_path / "conform.json"
    assert main(["conform", target("notebook_loops"), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "conv_backward" in out and "conformant" in out
    import json

    data = json.loads(report.read_text())
    assert data["conformant"] is True and set(data["summary"]) == set(conform.FUNCTIONS)
    assert {"numpy", "python", "platform"} <= set(data["versions"])
    assert main(["conform", target("bug_pad_crop"), "--in-process",
                 "--function", "conv_backward"]) == 1
    out = capsys.readouterr().out
    assert "NOT CONFORMANT" in out and "first failing case conv2d-bwd" in out
    assert "pad=0" in out and "reproduce:" in out


def test_conform_cli_single_case(capsys):
    case_id = "max_pool2d-bwd-n2h4w4c3-k2x2-s2x2-p0.0.0.0-d1x1-float64-s0"
    assert main(["conform", target("bug_mask_no_stride"), "--in-process", "--case",
                 case_id]) == 1
    out = capsys.readouterr().out
    assert case_id in out
    assert "zero_pad" not in out, "only the function of the chosen case is judged"
