"""The pytest plugin: inert by default; ``--crosscheck-impl TARGET`` adds conformance items."""

import os
import subprocess
import sys

pytest_plugins = ["pytester"]

TARGETS = os.path.join(os.path.dirname(__file__), "conform_targets")


def target(name: str) -> str:
    return os.path.join(TARGETS, f"{name}.py")


def _one_test(pytester):
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")


def test_plugin_is_inert_without_its_options(pytester):
    _one_test(pytester)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "crosscheck:" not in result.stdout.str() and "crosscheck-conform" not in result.stdout.str()


def test_plugin_module_imports_no_framework():
    # (numpy comes with the crosscheck package itself; torch and jax must not.)
    code = ("import sys, crosscheck.pytest_plugin\n"
            "heavy = [m for m in ('torch', 'jax', 'matplotlib', 'rich') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr


def test_plugin_correct_target_passes_and_header_lists_backends(pytester):
    _one_test(pytester)
    result = pytester.runpytest("-p", "no:cacheprovider", "--crosscheck-impl",
                                target("notebook_loops"))
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes["passed"] > 50
    header = result.stdout.str()
    assert "crosscheck backends installed: refcnn" in header
    assert "conformance of" in header


def test_plugin_buggy_target_fails_only_that_function_with_reproducer(pytester):
    result = pytester.runpytest("-p", "no:cacheprovider", "--crosscheck-impl",
                                target("bug_pad_crop"), "-k", "conv_forward or conv_backward")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] > 0 and outcomes["passed"] > 0
    failed = [line for line in result.stdout.lines if line.startswith("FAILED")]
    assert failed and all("conv_backward[" in line for line in failed)
    assert all("-p0.0.0.0-" in line for line in failed), "only pad=0 breaks pad:-pad"
    result.stdout.fnmatch_lines(["*conv_backward is not conformant on conv2d-bwd-*",
                                 "*crosscheck conform * --case conv2d-bwd-*"])


def test_plugin_items_work_with_junitxml_and_function_filter(pytester):
    xml = pytester.path / "out.xml"
    result = pytester.runpytest("-p", "no:cacheprovider", "--crosscheck-impl",
                                target("bug_avg_count"), "--crosscheck-function",
                                "distribute_value", f"--junitxml={xml}")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] >= 1
    text = xml.read_text()
    assert text.count("<testcase") == outcomes["failed"] + outcomes.get("passed", 0)
    assert "distribute_value" in text and "<failure" in text


def test_plugin_collection_is_deterministic(pytester):
    args = ["-p", "no:cacheprovider", "--co", "-q", "--crosscheck-impl", target("vectorized"),
            "--crosscheck-strict"]
    first = pytester.runpytest(*args).stdout.lines
    second = pytester.runpytest(*args).stdout.lines
    ids = [line for line in first if "::" in line]
    assert ids and ids == [line for line in second if "::" in line]
    assert any("-ties-" in line for line in ids)


def test_plugin_skips_functions_the_target_lacks(pytester):
    result = pytester.runpytest("-p", "no:cacheprovider", "--crosscheck-impl", target("hangs"),
                                "--crosscheck-function", "zero_pad", "--crosscheck-function",
                                "pool_forward", "-rs")
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == 4 and outcomes["skipped"] > 0
    result.stdout.fnmatch_lines(["*does not provide pool_forward*"])


def test_plugin_unimportable_target_fails_with_the_reason(pytester):
    result = pytester.runpytest("-p", "no:cacheprovider", "--crosscheck-impl",
                                target("broken_import"), "--crosscheck-function", "zero_pad")
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(["*cannot import*broken on purpose*"])


def test_plugin_runs_under_xdist(pytester):
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2",
                                           "--crosscheck-impl", target("vectorized"),
                                           "--crosscheck-function", "pool_backward")
    result.assert_outcomes(passed=16)


def test_plugin_failures_carry_hints_and_the_run_ends_with_a_diagnosis(pytester):
    result = pytester.runpytest("-p", "no:cacheprovider", "--crosscheck-impl",
                                target("wild_float_b"), "--crosscheck-function",
                                "conv_single_step", "--crosscheck-function", "pool_backward")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 4 and outcomes["passed"] == 16
    result.stdout.fnmatch_lines(["*raised TypeError: only 0-dimensional arrays*wild_float_b.py:*",
                                 "*- NumPy 2 refuses float()*"])
    text = result.stdout.str()
    section = text[text.index("crosscheck diagnosis"):]
    assert "conv_single_step: not conformant (4/4 cases failed)" in section
    assert "b.item()" in section and "pool_backward:" not in section


def test_plugin_takes_a_notebook(pytester):
    listing = os.path.join(TARGETS, "notebook_listing.ipynb")
    result = pytester.runpytest("-p", "no:cacheprovider", "--crosscheck-impl", listing,
                                "--crosscheck-function", "conv_single_step",
                                "--crosscheck-function", "zero_pad")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 4 and outcomes["passed"] == 4
    result.stdout.fnmatch_lines(["*crosscheck diagnosis*", "*ran only the imports and "
                                 "definitions*", "*(1, 1, 1)*"])
