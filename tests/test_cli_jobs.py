"""``crosscheck run --jobs``: auto (the default) is a worker per core for a large sweep only."""

import os

import pytest

from crosscheck import cli
from crosscheck.sweeps import sweep


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)


def test_auto_is_one_worker_per_core_for_a_large_sweep_on_the_cpu(four_cores):
    assert len({c.compile_key for c in sweep("default")}) >= cli.AUTO_JOBS_MIN_KEYS
    assert cli.auto_jobs(sweep("default")) == 4
    assert cli.auto_jobs(sweep("default"), "cuda") == 1  # one device: workers would share it


def test_auto_stays_serial_for_a_small_run(four_cores):
    assert len({c.compile_key for c in sweep("smoke")}) < cli.AUTO_JOBS_MIN_KEYS
    assert cli.auto_jobs(sweep("smoke")) == 1
    assert cli.auto_jobs([]) == 1


def test_auto_on_one_core(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert cli.auto_jobs(sweep("default")) == 1


def test_jobs_option_takes_auto_or_a_positive_count():
    parser = cli.build_parser()
    assert parser.parse_args(["run"]).jobs == "auto"
    assert parser.parse_args(["run", "-j", "3"]).jobs == 3
    assert parser.parse_args(["run", "--jobs", "auto"]).jobs == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--jobs", "0"])


def test_a_small_run_reports_the_jobs_it_used(tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.setenv("CROSSCHECK_JAX_CACHE", "none")
    out = tmp_path / "r.json"
    case = "max_pool2d-fwd-n2h7w6c3-k3x3-s2x2-p1.1.1.1-d1x1-float64-s0"
    assert cli.main(["run", "--case", case, "--backends", "refcnn", "--no-progress",
                     "--json", str(out)]) == 0
    assert json.loads(out.read_text())["jobs"] == 1
    assert "jobs 1" in capsys.readouterr().err
