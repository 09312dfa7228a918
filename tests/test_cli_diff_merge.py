"""``crosscheck diff`` (what got worse between two runs), ``crosscheck run --shard K/N`` and
``crosscheck merge`` (shard reports back into one).

Runs are small (the smoke sweep's pooling cases on refcnn's own two backends), made once per
module; regressions are planted by editing a copy of a report's JSON.
"""

import copy
import json
from collections import Counter
import xml.etree.ElementTree as ET

import pytest

from crosscheck import ci
from crosscheck.cli import main
from crosscheck.sweeps import SIZES, sweep

SMALL = ["--cases", "smoke", "--ops", "avg_pool2d,max_pool2d", "--backends",
         "refcnn,refcnn.loops", "--no-progress"]


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("CROSSCHECK_JAX_CACHE", "none")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The small run whole, and as three shards: {"all": path, 1: path, 2: path, 3: path}."""
    base = tmp_path_factory.mktemp("runs")
    paths = {"all": base / "all.json", **{k: base / f"s{k}.json" for k in (1, 2, 3)}}
    assert main(["run", *SMALL, "--json", str(paths["all"])]) == 0
    for k in (1, 2, 3):
        assert main(["run", *SMALL, "--shard", f"{k}/3", "--json", str(paths[k])]) == 0
    return paths


def load(path) -> dict:
    return json.loads(path.read_text())


def write(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def diff(*args) -> int:
    return main(["diff", *map(str, args)])


# ---- diff ----------------------------------------------------------------------------------------
def test_diff_of_identical_runs_exits_0(runs, capsys):
    assert diff(runs["all"], runs["all"]) == 0
    out = capsys.readouterr().out
    assert "SAME: nothing changed" in out


def test_diff_flags_a_planted_regression(runs, tmp_path, capsys):
    old = load(runs["all"])
    new = copy.deepcopy(old)
    passed = [r for r in new["results"] if r["status"] == "passed"]
    broken, grown, gone = passed[0], next(r for r in passed[1:] if r["worst_ratio"] > 0), \
        passed[-1]
    broken.update(status="failed", reason="planted: 3 of 8 values wrong")
    grown["worst_ratio"] = max(grown["worst_ratio"] * 100, 0.9)
    new["results"].remove(gone)
    bad = write(tmp_path / "bad.json", new)
    out_json, out_md = tmp_path / "d.json", tmp_path / "d.md"

    assert diff(runs["all"], bad, "--json", out_json, "--markdown", out_md) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith("WORSE: 1 newly failing, error grew beyond x2")
    assert f"{broken['case']} on {broken['backend']}: passed -> failed: planted" in out
    assert f"{grown['backend']} {grown['op']} {grown['direction']}: worst err/bound" in out
    assert f"worst at {grown['case']}" in out
    assert f"{gone['case']} on {gone['backend']}: passed -> absent" in out
    data = json.loads(out_json.read_text())
    assert data["worse"] is True
    assert [c["case"] for c in data["newly_failing"]] == [broken["case"]]
    assert [(g["backend"], g["op"], g["direction"]) for g in data["error_growth"]] == \
        [(grown["backend"], grown["op"], grown["direction"])]
    assert [c["case"] for c in data["removed"]] == [gone["case"]]
    assert "## Newly failing (1)" in out_md.read_text()

    # The other way round nothing got worse: the failure is fixed, the error shrank.
    assert diff(bad, runs["all"]) == 0
    out = capsys.readouterr().out
    assert "BETTER: 1 newly passing" in out and "1 result added" in out


def test_diff_growth_factor_floor_and_removed_results(runs, tmp_path, capsys):
    old = load(runs["all"])
    new = copy.deepcopy(old)
    judged = [r for r in new["results"] if r["status"] == "passed" and r["worst_ratio"] > 0]
    target = max(judged, key=lambda r: r["worst_ratio"])
    target["worst_ratio"] *= 3
    grown = write(tmp_path / "grown.json", new)
    assert diff(runs["all"], grown) == 1
    assert diff(runs["all"], grown, "--factor", "4") == 0  # x3 is within a factor 4
    capsys.readouterr()

    # Bit-exact results growing to a rounding error's worth are no regression (the floor).
    new = copy.deepcopy(old)
    exact = [r for r in new["results"] if r["status"] == "passed" and r["worst_ratio"] == 0]
    exact[0]["worst_ratio"] = 0.005
    assert diff(runs["all"], write(tmp_path / "tiny.json", new)) == 0

    # Removed results are worse (coverage lost) unless allowed; a new result is not.
    new = copy.deepcopy(old)
    new["results"] = new["results"][:-2]
    fewer = write(tmp_path / "fewer.json", new)
    assert diff(runs["all"], fewer) == 1
    assert diff(runs["all"], fewer, "--allow-removed") == 0
    assert diff(fewer, runs["all"]) == 0
    # A result that is unsupported now but was judged is lost coverage too.
    new = copy.deepcopy(old)
    r = next(r for r in new["results"] if r["status"] == "passed")
    r.update(status="unsupported", reason="planted: dropped")
    assert diff(runs["all"], write(tmp_path / "unsup.json", new)) == 1
    assert "Newly unsupported (was judged): 1" in capsys.readouterr().out


def test_diff_a_new_failure_on_an_added_case_and_an_incomplete_run_are_worse(runs, tmp_path):
    old = load(runs["all"])
    new = copy.deepcopy(old)
    extra = dict(new["results"][0], case=new["results"][0]["case"].replace("-s0", "-s9"),
                 status="crashed", reason="killed by signal SIGSEGV")
    new["results"].append(extra)
    assert diff(runs["all"], write(tmp_path / "added.json", new)) == 1
    new = copy.deepcopy(old)
    new.update(complete=False, stopped="terminated", stop_reason="terminated by SIGTERM")
    assert diff(runs["all"], write(tmp_path / "killed.json", new)) == 1


def test_diff_matches_a_backend_by_its_target_across_naming(tmp_path):
    """A backend reported by its name now, by its module:Class in an older report, is the
    same backend: nothing is added or removed."""
    old = {"schema_version": 3, "results": [
        {"case": "c1", "backend": "mod:Kernel", "status": "passed", "op": "conv2d",
         "direction": "forward", "worst_ratio": 0.1}]}
    new = {"schema_version": 3, "results": [
        {"case": "c1", "backend": "kernel", "target": "mod:Kernel", "status": "passed",
         "op": "conv2d", "direction": "forward", "worst_ratio": 0.1}]}
    d = ci.diff_reports(old, new)
    assert not d.added and not d.removed and not d.worse and d.unchanged == 1


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("not json", "not a JSON report"),
    (json.dumps({"functions": []}), "not a crosscheck run report"),
    (json.dumps({"schema_version": 99, "results": []}), "newer than this crosscheck reads"),
])
def test_diff_usage_errors_exit_2(runs, tmp_path, capsys, content, message):
    path = tmp_path / "x.json"
    if content is not None:
        path.write_text(content)
    assert diff(runs["all"], path) == 2
    assert message in capsys.readouterr().err


# ---- shards --------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
def test_shards_are_disjoint_deterministic_whole_keys_and_cover_the_sweep(size):
    cases = sweep(size)
    keys = [c.compile_key for c in cases]
    largest = max(Counter(keys).values())
    owners = {}
    for count in (3, 8):
        owner = owners[count] = ci.shard_of(cases, count)
        parts = {k: [i for i, o in enumerate(owner) if o == k] for k in range(1, count + 1)}
        # Disjoint, and their union is the sweep.
        assert set(owner) <= set(parts) and sum(map(len, parts.values())) == len(cases)
        # A compile key never spans two shards.
        key_owner = {}
        for key, k in zip(keys, owner):
            assert key_owner.setdefault(key, k) == k, key
        # Balanced: no shard is ahead of another by more than the largest key's cases.
        sizes = [len(p) for p in parts.values()]
        assert max(sizes) - min(sizes) <= largest, (size, count, sizes)
    # Deterministic, and shard() gives the cases of its part in the sweep's order.
    assert ci.shard_of(list(cases), 3) == owners[3]
    part, positions = ci.shard(cases, 2, 3)
    assert positions == [i for i, o in enumerate(owners[3]) if o == 2]
    assert part == [cases[i] for i in positions] and positions == sorted(positions)


@pytest.mark.parametrize("text", ["0/3", "4/3", "2", "a/b", "1/0"])
def test_bad_shard_is_a_usage_error(text, capsys):
    assert main(["run", *SMALL, "--shard", text]) == 2
    assert "K/N" in capsys.readouterr().err


def test_an_empty_shard_is_a_usage_error(capsys):
    case = "max_pool2d-fwd-n2h7w6c3-k3x3-s2x2-p1.1.1.1-d1x1-float64-s0"
    assert main(["run", "--case", case, "--backends", "refcnn", "--shard", "2/2"]) == 2
    assert "holds no case" in capsys.readouterr().err


# ---- merge ---------------------------------------------------------------------------------------
def test_merge_of_shards_equals_the_unsharded_run(runs, tmp_path, capsys):
    out = {k: tmp_path / f"all.{k}" for k in ("json", "md", "xml")}
    code = main(["merge", *(str(runs[k]) for k in (3, 1, 2)), "-o", str(out["json"]),
                 "--markdown", str(out["md"]), "--junit", str(out["xml"])])
    assert code == 0, capsys.readouterr()
    whole, merged = load(runs["all"]), load(out["json"])
    shards = [load(runs[k]) for k in (1, 2, 3)]

    def rows(data):
        return [(r["case"], r["backend"], r["status"], r["worst_ratio"])
                for r in data["results"]]

    assert rows(merged) == rows(whole)  # the same results, in the unsharded order
    assert merged["summary"] == whole["summary"] and merged["verdict"] == whole["verdict"]
    for backend, counts in merged["summary"].items():
        for column, n in counts.items():
            assert n == sum(s["summary"][backend][column] for s in shards)
    assert merged["complete"] is True and merged["cases_requested"] == whole["cases_requested"]
    assert merged["cases_run"] == whole["cases_run"] == sum(s["cases_run"] for s in shards)
    assert [m["shard"] for m in merged["merged"]] == ["3/3", "1/3", "2/3"]
    assert {s["shard"]["index"] for s in shards} == {1, 2, 3}
    # Shards hold whole compile keys; every shard ran something.
    keys = [{ci.key_of(r)[0] for r in s["results"]} for s in shards]
    assert all(keys) and not keys[0] & keys[1] and not keys[1] & keys[2]
    # The Markdown and JUnit come from the merged result.
    assert out["md"].read_text().startswith("# crosscheck run\n\n**PASS:")
    testcases = ET.parse(out["xml"]).getroot().findall(".//testcase")
    assert len(testcases) == len(whole["results"])
    assert diff(runs["all"], out["json"]) == 0


def test_merge_refuses_overlap_and_reports_a_missing_shard(runs, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["merge", str(runs[1]), str(runs[1]), "-o", str(out)]) == 2
    assert "both shard 1/3" in capsys.readouterr().err
    assert main(["merge", str(runs[1]), str(runs["all"]), "-o", str(out)]) == 2
    assert "overlap" in capsys.readouterr().err
    assert main(["merge", str(runs[1]), str(runs[3]), "-o", str(out)]) == 5
    data = load(out)
    assert data["complete"] is False and "shard 2/3 missing" in data["stop_reason"]
    assert data["exit_code"] == 5
    assert "did not complete" in capsys.readouterr().out
    # Shards of another split do not merge with these.
    other = tmp_path / "other.json"
    assert main(["run", *SMALL, "--shard", "1/2", "--json", str(other)]) == 0
    assert main(["merge", str(runs[2]), str(other), "-o", str(out)]) == 2
    assert "different splits" in capsys.readouterr().err
