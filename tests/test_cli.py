"""``crosscheck run``: exit codes, the summary, and the report files.

Runs stay small (``--case`` or filtered smoke cases) and use refcnn's own
backends plus the fake ``module:Class`` backends of
``tests/conform_targets/fake_backends.py``, so no framework is needed.
"""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from crosscheck import report
from crosscheck.cli import geometry_chunks, main
from crosscheck.statuses import STATUSES
from crosscheck.sweeps import sweep

TARGETS = os.path.join(os.path.dirname(__file__), "conform_targets")
CONV = "conv2d-bwd-n2h7w5c4o6-k3x3-s2x1-p1.1.0.2-d1x1-g2-float32-s0"
POOL = "max_pool2d-fwd-n2h7w6c3-k3x3-s2x2-p1.1.1.1-d1x1-float64-s0"
AVG = "avg_pool2d-bwd-n1h9w9c1-k4x4-s2x2-p2.2.2.2-d1x1-float64-s0"
NO_OTHER_STATUS = {status: 0 for status in STATUSES if status != "passed"}


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch):
    monkeypatch.syspath_prepend(TARGETS)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("CROSSCHECK_JAX_CACHE", "none")


def run(*args) -> int:
    return main(["run", *args])


def test_run_one_case_agreeing_backends_exit_0_and_reports(tmp_path, capsys):
    paths = {k: tmp_path / f"r.{k}" for k in ("json", "md", "xml")}
    code = run("--case", CONV, "--case", POOL, "--backends", "refcnn,refcnn.loops",
               "--json", str(paths["json"]), "--markdown", str(paths["md"]),
               "--junit", str(paths["xml"]))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "No failures" in out and "conv2d" in out and "refcnn.loops" in out
    data = json.loads(paths["json"].read_text())
    assert set(data) >= {"versions", "summary", "results"}
    assert {"numpy", "refcnn", "torch", "jax", "python", "platform"} <= set(data["versions"])
    # The summary counts every status (crashed, timeout, ... too), zeros included.
    assert data["summary"]["refcnn"] == {"cases": 2, "passed": 2, **NO_OTHER_STATUS}
    assert data["schema_version"] == report.SCHEMA_VERSION
    assert data["complete"] is True
    first = data["results"][0]
    assert first["case"] == CONV and first["status"] == "passed"
    assert {"max_abs_error", "worst_ratio", "bound"} <= set(first["discrepancies"][0])
    # Slim: a passed result carries no reproducer (its case id reruns it) nor its spec.
    assert "reproduce" not in first["discrepancies"][0] and "spec" not in first
    md = paths["md"].read_text()
    assert md.startswith("# crosscheck run\n\n**PASS: 4 results judged")
    assert "## Summary" in md and "## Agreement matrix" in md
    # The registry prints only the entries that applied: none in an agreeing run.
    assert "None of the" in md and "maxpool_tie_gradient" not in md
    root = ET.parse(paths["xml"]).getroot()
    assert len(root.findall(".//testcase")) == 4  # 2 cases x 2 backends


def test_run_fake_failing_backend_exit_1_names_odd_one_out(tmp_path, capsys):
    junit, md = tmp_path / "r.xml", tmp_path / "r.md"
    code = run("--case", POOL, "--backends", "refcnn,refcnn.loops,fake_backends:Perturbed",
               "--junit", str(junit), "--markdown", str(md))
    out = capsys.readouterr().out
    assert code == 1
    # Reported by its name; its module:Class reruns it.
    assert f"FAILED {POOL} on perturbed" in out
    assert "odd one out: perturbed (disagrees with refcnn" in out
    assert f"crosscheck run --case {POOL} --backends fake_backends:Perturbed" in out
    failures = ET.parse(junit).getroot().findall(".//testcase/failure")
    assert len(failures) == 1 and "outside the bound" in failures[0].get("message")
    assert f"`{POOL}` on perturbed" in md.read_text()


def test_run_two_agreeing_backends_make_the_reference_the_odd_one_out(capsys):
    code = run("--case", POOL, "--backends",
               "refcnn,fake_backends:Perturbed,fake_backends:PerturbedToo")
    out = capsys.readouterr().out
    assert code == 1
    assert "odd one out: refcnn (the reference)" in out


def test_run_crashing_backend_is_a_failed_case_and_the_run_goes_on(tmp_path, capsys):
    path = tmp_path / "r.json"
    code = run("--case", CONV, "--case", POOL, "--case", AVG, "--backends",
               "refcnn,fake_backends:CrashesOnConv", "--json", str(path))
    assert code == 1
    data = json.loads(path.read_text())
    status = {(r["case"], r.get("target", r["backend"])): r for r in data["results"]}
    crashed = status[(CONV, "fake_backends:CrashesOnConv")]
    assert crashed["status"] == "failed" and "simulated crash" in crashed["reason"]
    assert status[(POOL, "fake_backends:CrashesOnConv")]["status"] == "passed"
    assert status[(AVG, "fake_backends:CrashesOnConv")]["status"] == "unsupported"
    assert data["summary"]["crashes"] == {
        "cases": 3, **NO_OTHER_STATUS, "passed": 1, "failed": 1, "unsupported": 1}
    assert "simulated crash in conv2d" in capsys.readouterr().out


def test_run_rerun_snippet_case_id_reruns_exactly_that_case(tmp_path):
    path = tmp_path / "r.json"
    assert run("--case", CONV, "--backends", "refcnn", "--json", str(path)) == 0
    results = json.loads(path.read_text())["results"]
    assert [r["case"] for r in results] == [CONV]


@pytest.mark.parametrize("args, message", [
    (["--case", "not-a-case"], "not a case id"),
    (["--case", "max_pool2d-bwd-n2h7w6c2-k2x4-s2x1-pvalid-d2x2-idx-float32-s0"],
     "has no output ((3, 0))"),
    (["--backends", "nosuchbackend"], "unknown backend"),
    (["--backends", "fake_backends:NoSuchClass"], "could not be created"),
    (["--backends", "no_such_module_xyz:Backend"], "unavailable"),
    (["--dtypes", "float8"], "unknown dtype"),
    (["--ops", "conv4d"], "unknown op"),
])
def test_run_usage_errors_exit_2(args, message, capsys):
    assert run("--cases", "smoke", *args) == 2
    assert message in capsys.readouterr().err


def test_run_argparse_errors_exit_2(capsys):
    assert run("--cases", "huge") == 2
    assert main([]) == 2
    assert main(["--help"]) == 0


def test_run_internal_error_exit_3_keeps_computed_results(tmp_path, monkeypatch, capsys):
    import crosscheck.runner as runner

    real, calls = runner.run_case, []

    def breaks_on_second(case, backends, mode="bound"):
        calls.append(case)
        if len(calls) == 2:
            raise RuntimeError("harness bug")
        return real(case, backends, mode)

    monkeypatch.setattr(runner, "run_case", breaks_on_second)
    path = tmp_path / "r.json"
    code = run("--case", CONV, "--case", POOL, "--backends", "refcnn", "--json", str(path))
    assert code == 3
    assert "internal error" in capsys.readouterr().err
    data = json.loads(path.read_text())
    assert data["complete"] is False and [r["case"] for r in data["results"]] == [CONV]


def test_run_keyboard_interrupt_writes_what_it_has(tmp_path, monkeypatch, capsys):
    import crosscheck.runner as runner

    real, calls = runner.run_case, []

    def interrupted_on_second(case, backends, mode="bound"):
        calls.append(case)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(case, backends, mode)

    monkeypatch.setattr(runner, "run_case", interrupted_on_second)
    paths = [tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.xml"]
    code = run("--case", CONV, "--case", POOL, "--backends", "refcnn", "--json", str(paths[0]),
               "--markdown", str(paths[1]), "--junit", str(paths[2]))
    assert code == 130
    data = json.loads(paths[0].read_text())
    assert data["stopped"] == "interrupted" and len(data["results"]) == 1
    assert "Incomplete run" in paths[1].read_text()
    assert len(ET.parse(paths[2]).getroot().findall(".//testcase")) == 1
    assert "did not complete" in capsys.readouterr().out


def test_run_progress_is_plain_lines_off_a_terminal(capsys):
    assert run("--case", CONV, "--case", POOL, "--backends", "refcnn") == 0
    err = capsys.readouterr().err
    assert "[2/2 cases, 100%, 0 failed" in err


def test_run_step_summary_is_appended(tmp_path, monkeypatch):
    summary = tmp_path / "step.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert run("--case", POOL, "--backends", "refcnn") == 0
    text = summary.read_text()
    assert text.startswith("earlier step\n") and "## Summary" in text


def test_markdown_failure_list_is_truncated_under_the_limit():
    from crosscheck.cases import Case
    from crosscheck.runner import CaseResult

    case = Case.from_id(POOL)
    results = [CaseResult(case.with_(seed=i), "x", "failed", reason="crashed: " + "y" * 500)
               for i in range(400)]
    text = report.markdown_report(results, versions_=report.versions(), max_bytes=50_000)
    assert len(text.encode()) < 50_000
    assert "more failures left out" in text and "Known differences" in text


def test_run_plot_writes_a_png_or_says_matplotlib_is_missing(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "r.png"
    assert run("--case", CONV, "--case", POOL, "--backends", "refcnn,refcnn.loops",
               "--plot", str(png)) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert run("--case", CONV, "--backends", "refcnn", "--plot", str(tmp_path / "x.png")) == 2
    assert "needs matplotlib" in capsys.readouterr().err


def test_run_plain_summary_without_rich(monkeypatch, capsys):
    monkeypatch.setattr(report, "have_rich", lambda: False)
    assert run("--case", POOL, "--backends", "refcnn") == 0
    out = capsys.readouterr().out
    assert "worst err/bound" in out and "max_pool2d  forward" in out


def test_run_smoke_filtered_with_jobs_matches_serial(tmp_path):
    serial, parallel = tmp_path / "s.json", tmp_path / "p.json"
    common = ["--cases", "smoke", "--ops", "avg_pool2d", "--dtypes", "float64",
              "--backends", "refcnn,refcnn.loops"]
    assert run(*common, "--json", str(serial)) == 0
    assert run(*common, "--jobs", "2", "--json", str(parallel)) == 0

    def strip(path):
        return [(r["case"], r["backend"], r["status"], r["worst_ratio"])
                for r in json.loads(path.read_text())["results"]]

    assert strip(serial) == strip(parallel) and len(strip(serial)) > 4


def test_geometry_chunks_never_split_a_geometry():
    cases = sweep("smoke")
    chunks = geometry_chunks(cases, jobs=2)
    # Every case once; a geometry's probe cases may sit far from its others in the sweep, so
    # chunks gather them and indices need not be in order (results are stored by index).
    assert sorted(i for chunk in chunks for i, _ in chunk) == list(range(len(cases)))
    owner = {}
    for n, chunk in enumerate(chunks):
        for _, case in chunk:
            key = case.with_(seed=0, inputs="random").id
            assert owner.setdefault(key, n) == n, f"geometry {key} split over two chunks"


def test_console_entry_point_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "crosscheck.cli", "run", "--case", POOL,
                          "--backends", "refcnn", "--no-progress"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "No failures" in out.stdout


def test_jax_cache_directory_choice(monkeypatch, tmp_path):
    from crosscheck.cli import jax_cache_dir

    monkeypatch.delenv("CROSSCHECK_JAX_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert jax_cache_dir(None) == str(tmp_path / "crosscheck" / "jax")
    assert jax_cache_dir("none") is None
    assert jax_cache_dir(str(tmp_path / "c")) == str(tmp_path / "c")
    monkeypatch.setenv("CROSSCHECK_JAX_CACHE", "off")
    assert jax_cache_dir(None) is None
