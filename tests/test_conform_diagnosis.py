"""``crosscheck conform``'s diagnosis: each failing function's sentences name the cause.

Every planted-bug target in ``tests/conform_targets`` (``bug_*.py``, one bug each) and the
failures seen in the wild (``wild_*.py``) must get a diagnosis that names its bug; the known
mistakes are each recognised when planted, the variants are the reference when nothing is
wrong, and the hint rules each fire on the exception they are for. Messages are plain first
("34 of 48 values wrong; at index [...] got ..., expected ..."), with the error-to-bound
figures in the JSON and ``--verbose``; a backward is judged on its own when its forward fails.
"""

import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from crosscheck import conform
from crosscheck.cases import make_inputs
from crosscheck.cli import main
from crosscheck.conform import diagnose as dx
from crosscheck.conform import hints
from crosscheck.conform.checks import CaseOutcome, run_check
from crosscheck.runner import reference_outputs

TARGETS = os.path.join(os.path.dirname(__file__), "conform_targets")


def target(name: str) -> str:
    return os.path.join(TARGETS, f"{name}.py")


def diagnosis(outcome, function: str) -> str:
    return " | ".join(outcome.verdicts[function].diagnosis)


#: target -> {function: phrases its diagnosis must contain (each names the bug)}.
NAMED = {
    "bug_conv_backward_stride": {"conv_backward": ["stride > 1", "on none with stride 1",
                                                   "without the stride", "h * stride"]},
    "bug_pool_backward_stride": {"pool_backward": ["stride > 1", "without the stride"]},
    "bug_mask_no_stride": {"pool_backward": ["max mask taken from the window without the "
                                             "stride", "stride 2 fails"]},
    "bug_pad_crop": {"conv_backward": ["pad = 0", "on none with pad > 0", "[pad:-pad",
                                       "pad:pad + n_H_prev"]},
    "bug_off_by_one": {"conv_forward": ["misses the + 1", "(1, 2, 2, 1) instead of (1, 3, 3, 1)"]},
    "bug_avg_count": {"distribute_value": ["n_H + n_W instead of n_H * n_W",
                                           "other than (2, 2)"],
                      "pool_backward": ["mode 'average'", "f + f instead of f * f",
                                        "distribute_value"]},
    "bug_mutates_input": {"pool_backward": ["modifies its input dA in place", "mode 'average'",
                                            "copy"]},
    "bug_hw_swapped": {"conv_forward": ["h and w swapped", "n_H_prev != n_W_prev"]},
    "wild_float_b": {"conv_single_step": ["NumPy 2 refuses float()", "b.item()"],
                     "conv_forward": ["NumPy 2 refuses float()", "conv_single_step"]},
    "wild_np_float": {"pool_forward": ["np.float was removed", "write float"]},
}


def test_every_planted_bug_target_is_in_the_table():
    planted = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(TARGETS, "bug_*.py"))}
    assert planted <= set(NAMED), f"add {sorted(planted - set(NAMED))} to NAMED"


@pytest.mark.parametrize("name", sorted(NAMED))
def test_diagnosis_names_the_planted_bug(name):
    functions = sorted({*NAMED[name], "distribute_value"})
    outcome = conform.check_target(target(name), in_process=True, functions=functions)
    for function, phrases in NAMED[name].items():
        v = outcome.verdicts[function]
        assert v.verdict == conform.NOT_CONFORMANT, function
        text = diagnosis(outcome, function)
        missing = [p for p in phrases if p not in text]
        assert not missing, f"{name} {function}: {missing} not in:\n" + "\n".join(v.diagnosis)
    for function, v in outcome.verdicts.items():  # nothing to say about what is right
        if v.verdict == conform.CONFORMANT and not v.reference_cache:
            assert v.diagnosis == [], function


def test_diagnosis_goes_into_the_json_with_each_function_named(tmp_path):
    report = tmp_path / "r.json"
    assert main(["conform", target("bug_pad_crop"), "--in-process", "--function",
                 "conv_backward", "--function", "zero_pad", "--json", str(report)]) == 1
    summary = json.loads(report.read_text())["summary"]
    for name, entry in summary.items():
        assert entry["function"] == name and isinstance(entry["diagnosis"], list)
    assert summary["zero_pad"]["diagnosis"] == []
    assert any("[pad:-pad" in s for s in summary["conv_backward"]["diagnosis"])


def test_console_shows_the_diagnosis_under_the_verdict(capsys):
    main(["conform", target("bug_conv_backward_stride"), "--in-process", "--function",
          "conv_backward"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if "NOT CONFORMANT" in line)
    assert lines[at + 1].strip().startswith("- ") and "stride > 1" in lines[at + 1]


# ---- plain language first ------------------------------------------------------------------------
def test_message_counts_wrong_values_and_shows_one_plainly(capsys):
    outcome = conform.check_target(target("bug_conv_backward_stride"), in_process=True,
                                   functions=["conv_backward"])
    message = outcome.verdicts["conv_backward"].first_failure.message
    assert re.match(r"dA_prev: \d+ of \d+ values wrong; at index \[\d+, \d+, \d+, \d+\] got "
                    r"-?[\d.e+-]+, expected -?[\d.e+-]+", message), message
    assert "bound" not in message and "max abs error" not in message
    first = outcome.verdicts["conv_backward"].first_failure
    assert first.max_error > 0 and first.worst_ratio > 1  # the figures stay in the JSON
    assert main(["conform", target("bug_conv_backward_stride"), "--in-process", "--function",
                 "conv_backward"]) == 1
    assert "error/bound" not in capsys.readouterr().out
    main(["conform", target("bug_conv_backward_stride"), "--in-process", "--function",
          "conv_backward", "--verbose"])
    assert "worst error/bound" in capsys.readouterr().out


def test_message_counts_nan():
    cc = next(c for c in conform.conformance_cases(["zero_pad"]) if c.pad > 0)

    def zero_pad(X, pad):
        out = np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        out[0, 0, 0, 0] = out[0, 1, 1, 0] = np.nan
        return out

    o = run_check({"zero_pad": zero_pad}, cc)
    assert o.status == "failed" and "2 of " in o.message and "(2 of them NaN)" in o.message
    assert "got nan, expected 0" in o.message


def test_the_location_is_the_targets_line_never_inside_installed_packages(tmp_path):
    """A target beside a site-packages folder (a repository holding its virtualenv): the
    frame shown is the target's line that called into it, not the package's."""
    lib = tmp_path / "venv" / "lib" / "site-packages"
    lib.mkdir(parents=True)
    (lib / "helperlib.py").write_text("def pad(X, p):\n    raise ValueError('bad pad')\n")
    mod = tmp_path / "mine.py"
    mod.write_text(f"import sys\nsys.path.insert(0, {str(lib)!r})\nimport helperlib\n\n"
                   "def zero_pad(X, pad):\n    return helperlib.pad(X, pad)\n")
    outcome = conform.check_target(str(mod), functions=["zero_pad"], timeout=5)
    first = outcome.verdicts["zero_pad"].first_failure
    assert first.raised["where"] == "mine.py:6", first.raised


def test_a_one_element_array_where_the_api_says_scalar_is_flagged():
    cc = conform.conformance_cases(["conv_single_step"])[0]

    def conv_single_step(a_slice_prev, W, b):
        return np.sum(a_slice_prev * W) + b.astype(float)  # the notebook's (1, 1, 1)

    o = run_check({"conv_single_step": conv_single_step}, cc)
    assert o.status == "failed" and o.failure == "scalar" and "(1, 1, 1)" in o.message
    assert any("np.sum(s) + b.item()" in h for h in o.hints)

    def scalar(a_slice_prev, W, b):
        return np.sum(a_slice_prev * W) + b.item()

    assert run_check({"conv_single_step": scalar}, cc).status == "passed"


# ---- backward judged on its own ------------------------------------------------------------------
def test_backward_is_judged_with_the_reference_cache_when_its_forward_fails():
    outcome = conform.check_target(target("bug_off_by_one"), in_process=True,
                                   functions=["conv_forward", "conv_backward"])
    v = outcome.verdicts["conv_backward"]
    assert v.verdict == conform.CONFORMANT and v.reference_cache == v.cases == 11
    assert "reference's cache" in diagnosis(outcome, "conv_backward")
    assert all(o.cache == "reference" and "conv_forward" in o.note
               for o in outcome.outcomes if o.function == "conv_backward")
    assert outcome.to_dict()["summary"]["conv_backward"]["judged_with_reference_cache"] == 11


def test_backward_bugs_show_behind_a_raising_forward():
    """Before: conv_forward's exception was conv_backward's verdict, on every case."""
    outcome = conform.check_target(target("wild_float_b"), in_process=True,
                                   functions=["conv_forward", "conv_backward"])
    assert outcome.verdicts["conv_backward"].verdict == conform.CONFORMANT
    outcome = conform.check_target(target("wild_float_b_pad_crop"), in_process=True,
                                   functions=["conv_forward", "conv_backward"])
    v = outcome.verdicts["conv_backward"]
    assert v.verdict == conform.NOT_CONFORMANT and v.reference_cache == 11
    assert "[pad:-pad" in diagnosis(outcome, "conv_backward")
    assert "float()" in diagnosis(outcome, "conv_forward")


def test_a_backward_that_takes_only_its_own_cache_is_judged_on_it_and_says_so():
    outcome = conform.check_target(target("opaque_cache_bad_forward"), in_process=True)
    assert outcome.verdicts["conv_forward"].verdict == conform.NOT_CONFORMANT
    v = outcome.verdicts["conv_backward"]
    assert v.verdict == conform.CONFORMANT
    assert "its own conv_forward's cache" in diagnosis(outcome, "conv_backward")


# ---- the rules, one by one -----------------------------------------------------------------------
def _fake(cc, got: dict, status="failed") -> CaseOutcome:
    """An outcome of ``cc`` whose target returned ``got``, judged against the reference."""
    if cc.case is None:
        want = {}
    else:
        ref = reference_outputs(cc.case, make_inputs(cc.case))
        names = {"y": "Z" if cc.case.is_conv else "A", "dx": "dA_prev", "dw": "dW", "db": "db"}
        want = {names[k]: v for k, v in ref.items()}
    wrong = [k for k in got if k in want and not np.allclose(got[k], want[k])]
    return CaseOutcome(cc.function, cc.id, status, failure="values", wrong=wrong, got=got,
                       want=want)


WINDOWED = ("conv_forward", "conv_backward", "pool_forward", "pool_backward")


@pytest.mark.parametrize("function", WINDOWED)
def test_variants_without_the_mistake_are_the_reference(function):
    """The variant code, asked for no mistake, is refcnn: a match means what it says."""
    for cc in conform.conformance_cases([function]):
        A = make_inputs(cc.case)
        ref = reference_outputs(cc.case, A)
        s, f = cc.case.stride[0], cc.case.kernel[0]
        if function == "conv_forward":
            got = dx.conv_forward_variant(A.x, A.w, A.b, s, cc.hparameters()["pad"])
            np.testing.assert_allclose(got, ref["y"], atol=1e-12)
        elif function == "conv_backward":
            got = dx.conv_backward_variant(A.x, A.w, A.dy, s, cc.hparameters()["pad"])
            for k, r in (("dA_prev", "dx"), ("dW", "dw"), ("db", "db")):
                np.testing.assert_allclose(got[k], ref[r], atol=1e-12)
        elif function == "pool_forward":
            np.testing.assert_allclose(dx.pool_forward_variant(A.x, f, s, cc.mode), ref["y"],
                                       atol=1e-12)
        else:
            np.testing.assert_allclose(dx.pool_backward_variant(A.x, A.dy, f, s, cc.mode),
                                       ref["dx"], atol=1e-12)


@pytest.mark.parametrize("function, mistake", [(f, m.name) for f in dx.MISTAKES
                                               for m in dx.MISTAKES[f]])
def test_each_known_mistake_is_recognised_when_planted(function, mistake):
    """A target that *is* the mistake on the sweep gets that mistake named (or one that gives
    the same numbers on every one of those cases)."""
    m = next(x for x in dx.MISTAKES[function] if x.name == mistake)
    group = []
    for cc in conform.conformance_cases([function]):
        outs = m.outputs(cc)
        if outs is None:
            continue
        o = _fake(cc, outs) if cc.case is not None else _fake_helper(cc, outs)
        if o.wrong:
            group.append(o)
    assert group, f"{mistake} never differs from the reference on the sweep"
    found, _ = dx.match_mistakes(function, group, [])
    assert found is not None, mistake
    if found.name != mistake:  # an equivalent variant on these cases
        for o in group:
            same = found.outputs(dx.conform_case(o.case_id))
            assert same is not None and all(dx._same(o.got[k], v) for k, v in same.items())


def _fake_helper(cc, outs):
    from crosscheck.conform.checks import helper_inputs

    x = helper_inputs(cc)
    if cc.function == "zero_pad":
        p = cc.pad
        want = {"X_pad": np.pad(x["X"], ((0, 0), (p, p), (p, p), (0, 0)))}
    elif cc.function == "conv_single_step":
        want = {"Z": np.array(np.sum(x["a_slice_prev"] * x["W"]) + x["b"].item())}
    elif cc.function == "create_mask_from_window":
        want = {"mask": (x["x"] == x["x"].max()).astype(float)}
    else:
        want = {"a": np.full(cc.shape, x["dz"] / (cc.shape[0] * cc.shape[1]))}
    wrong = [k for k in outs if not np.allclose(outs[k], want[k])]
    return CaseOutcome(cc.function, cc.id, "failed", failure="values", wrong=wrong, got=outs,
                       want=want)


def test_differential_finds_the_separating_parameter_or_pair():
    cases = conform.conformance_cases(["conv_backward"])
    preds = dx.predicates("conv_backward", cases)
    group = [c for c in cases if c.hparameters()["pad"] == 0]
    passing = [c for c in cases if c.hparameters()["pad"] > 0]
    kind, which = dx.separate(group, passing, preds)
    assert kind == "every" and which[0].name == "pad0"
    pool = conform.conformance_cases(["pool_backward"])
    group = [c for c in pool if c.mode == "max" and c.case.stride[0] > 1]
    passing = [c for c in pool if c not in group]
    kind, which = dx.separate(group, passing, dx.predicates("pool_backward", pool))
    assert kind == "and" and {p.name for p in which} == {"stride>1", "mode-max"}
    assert dx.separate(pool, [], dx.predicates("pool_backward", pool))[0] != "every"


def test_targeted_extra_cases_go_through_the_worker_and_count_in_no_verdict():
    outcome = conform.check_target(target("bug_pool_backward_stride"),
                                   functions=["pool_backward"], timeout=10)
    v = outcome.verdicts["pool_backward"]
    assert v.extra, "11 of 12 stride > 1 cases: the sweep alone cannot say 'every'"
    labels = {label: o.status for label, o in v.extra}
    assert labels["the smallest case, mode 'max'"] == "passed"
    assert labels["stride 2, mode 'max'"] == "failed"
    assert v.cases == 16 and all(not o.extra for o in outcome.outcomes)
    assert "only stride 2 fails this way" in diagnosis(outcome, "pool_backward")
    entry = outcome.to_dict()["summary"]["pool_backward"]["extra_cases"]
    assert {"change", "case_id", "status", "message"} <= set(entry[0])


@pytest.mark.parametrize("info, phrase", [
    ({"type": "TypeError", "message": "only 0-dimensional arrays can be converted to Python "
      "scalars"}, "NumPy 2 refuses float()"),
    ({"type": "TypeError", "message": "only length-1 arrays can be converted to Python "
      "scalars"}, "b.item()"),
    ({"type": "ValueError", "message": "setting an array element with a sequence.",
      "function": "conv_forward"}, "conv_single_step to return a scalar"),
    ({"type": "AttributeError", "message": "module 'numpy' has no attribute 'int'."},
     "np.int was removed"),
    ({"type": "AttributeError", "message": "module 'numpy' has no attribute 'NaN'"}, "np.nan"),
    ({"type": "NameError", "message": "name 'hparameters' is not defined"},
     "reads the global 'hparameters'"),
    ({"type": "NameError", "message": "name 'zero_pad' is not defined"},
     "calls zero_pad, which the target does not define"),
    ({"type": "ValueError", "message": "could not broadcast input array from shape (0,0,3) "
      "into shape (4,4,3)", "function": "conv_backward"}, "[pad:-pad"),
    ({"type": "IndexError", "message": "index 1 is out of bounds for axis 2 with size 1",
      "function": "conv_backward"}, "db[:, :, :, c]"),
    ({"type": "KeyError", "message": "'pad'"}, "hparameters['pad']"),
    ({"type": "TypeError", "message": "slice indices must be integers or None or have an "
      "__index__ method"}, "int(...) or //"),
    ({"type": "UFuncTypeError", "message": "Cannot cast ufunc 'add' output from "
      "dtype('float64') to dtype('int64') with casting rule 'same_kind'"}, "float"),
    ({"type": "ValueError", "message": "not enough values to unpack (expected 4, got 2)",
      "function": "conv_backward"}, "(A_prev, W, b, hparameters)"),
])
def test_each_hint_fires_on_its_exception(info, phrase):
    cc = next(c for c in conform.conformance_cases(["conv_backward"])
              if c.hparameters()["pad"] == 0)
    out = hints.raised_hints(info, cc)
    assert any(phrase in h for h in out), out
    assert not hints.raised_hints({"type": "RuntimeError", "message": "x"}, cc)


def test_notebook_global_hint_names_the_cell_that_sets_it():
    cc = conform.conformance_cases(["conv_forward"])[0]
    text = hints.raised_hints({"type": "NameError", "message": "name 'stride' is not defined",
                               "function": "conv_forward"}, cc, {"stride": "cell 12"})
    assert any("set in cell 12, which conform does not run" in h for h in text), text


@pytest.mark.parametrize("shape, phrase", [
    ("minus1", "misses the + 1"), ("nopad", "leaves out the padding"),
    ("nostride", "leaves out the stride"),
])
def test_shape_hints_name_the_size_formula(shape, phrase):
    def sizes(cc):
        c, p, f, s = cc.case, cc.hparameters()["pad"], cc.case.kernel[0], cc.case.stride[0]
        return {"minus1": lambda n: (n + 2 * p - f) // s, "nopad": lambda n: (n - f) // s + 1,
                "nostride": lambda n: n + 2 * p - f + 1,
                "right": lambda n: (n + 2 * p - f) // s + 1}

    def distinct(cc):  # this mistake's shape is no other's on this case
        c = cc.case
        mine = sizes(cc)[shape]
        return all((g(c.h), g(c.w)) != (mine(c.h), mine(c.w))
                   for k, g in sizes(cc).items() if k != shape)

    cc = next(c for c in conform.conformance_cases(["conv_forward"]) if distinct(c))
    c, size = cc.case, sizes(cc)[shape]
    out = hints.shape_hints(cc, "Z", (c.n, size(c.h), size(c.w), c.c_out))
    assert out and phrase in out[0]


def test_reproducers_in_the_json_run(tmp_path):
    """Before: every reproducer in conform --json was crosscheck run's, naming
    get_backend('<function>'), which does not exist. One per function and kind here."""
    report = tmp_path / "r.json"
    main(["conform", target("bug_avg_count"), "--json", str(report)])
    data = json.loads(report.read_text())
    for result in data["results"]:
        assert "get_backend" not in json.dumps(result), result["case_id"]
        for d in result["discrepancies"]:
            assert "reproduce" not in d
    chosen = {}
    for result in data["results"]:
        chosen.setdefault((result["function"], result["status"]), result)
    for (function, status), result in sorted(chosen.items()):
        out = subprocess.run([sys.executable, "-c", result["reproduce"]], capture_output=True,
                             text=True, timeout=120, cwd=TARGETS)
        assert out.returncode == 0, (function, status, out.stderr[-2000:])
        assert out.stdout.strip(), (function, status)


def test_reproducers_of_a_wrong_shape_and_of_the_reference_s_cache_run():
    """A wrong-shaped output's snippet says so instead of ending on a broadcast error, and a
    backward judged with the reference's cache gets that cache in its snippet too."""
    outcome = conform.check_target(target("bug_off_by_one"), in_process=True,
                                   functions=["conv_forward", "conv_backward"])
    shape = next(o for o in outcome.outcomes if o.failure == "shape")
    cached = next(o for o in outcome.outcomes if o.cache == "reference")
    assert "cache = (A_prev, W, b, hparameters)" in cached.reproduce
    for o, printed in ((shape, "shapes differ"), (cached, "dA_prev")):
        out = subprocess.run([sys.executable, "-c", o.reproduce], capture_output=True,
                             text=True, timeout=120, cwd=TARGETS)
        assert out.returncode == 0, (o.case_id, out.stderr[-2000:])
        assert printed in out.stdout, (o.case_id, out.stdout)
