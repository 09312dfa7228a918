"""Command-line habits and the kernel author's kit at the command line: ``python -m
crosscheck``, ``--version``, help with examples and exit codes, a backend checked when it
loads and reported by its name, ``--direction``, ``--device``, tox's environment, and the
device-check script."""

import configparser
import json
import os
import subprocess
import sys
import textwrap

import pytest

from crosscheck.backends import BackendIncomplete, get_backend
from crosscheck.cli import main
from crosscheck.sweeps import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = os.path.join(ROOT, "tests", "conform_targets")
POOL = "max_pool2d-fwd-n2h7w6c3-k3x3-s2x2-p1.1.1.1-d1x1-float64-s0"
CONV = "conv2d-fwd-n2h7w5c4o6-k3x3-s2x1-p1.1.0.2-d1x1-g2-float32-s0"

INCOMPLETE = textwrap.dedent('''
    class NoRun:
        """Has a version, nothing else."""
        def version(self):
            return "1"

    class NoName(NoRun):
        def unsupported(self, case):
            return None

        def run(self, case, inputs):
            return {}

    class CallsItselfTorch(NoName):
        name = "torch"
''')


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(TARGETS)
    (tmp_path / "incomplete_backends.py").write_text(INCOMPLETE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("CROSSCHECK_DEVICE", raising=False)
    monkeypatch.setenv("CROSSCHECK_JAX_CACHE", "none")


def crosscheck(*args, **kw):
    return subprocess.run([sys.executable, "-m", "crosscheck", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, **kw)


# ---- python -m crosscheck, --version, help ------------------------------------------------------
def test_python_m_crosscheck_version_and_help():
    out = crosscheck("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("crosscheck 0.") and "refcnn" in out.stdout
    out = crosscheck("--help")
    assert out.returncode == 0
    for word in ("examples:", "exit codes", "crosscheck diff", "crosscheck merge", "--shard",
                 "--device cuda"):
        assert word in out.stdout, word


@pytest.mark.parametrize("command, words", [
    ("run", ("examples:", "exit codes:", "--direction", "--shard K/N", "--device")),
    ("diff", ("examples:", "exit codes:", "--factor", "--allow-removed")),
    ("merge", ("examples:", "exit codes:", "-o PATH", "--markdown", "--junit")),
])
def test_each_command_help_has_examples_and_exit_codes(command, words, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    for word in words:
        assert word in out, word


# ---- a backend checked when it loads, reported by its name --------------------------------------
@pytest.mark.parametrize("cls, missing", [
    ("NoRun", ("name", "unsupported", "run")),
    ("NoName", ("name",)),
])
def test_backend_missing_members_is_refused_naming_them(cls, missing, capsys):
    code = main(["run", "--case", POOL, "--backends", f"refcnn,incomplete_backends:{cls}"])
    err = capsys.readouterr().err
    assert code == 2, err
    lacks = err.split("lacks ", 1)[1].split(":", 1)[0]
    assert sorted(m.split()[0] for m in lacks.split(", ")) == sorted(missing), err
    with pytest.raises(BackendIncomplete, match="lacks"):
        get_backend(f"incomplete_backends:{cls}")


def test_backend_is_reported_by_its_name_and_rerun_by_its_module_class(tmp_path, capsys):
    path = tmp_path / "r.json"
    spec = "fake_backends:Perturbed"
    assert main(["run", "--case", POOL, "--backends", f"refcnn,{spec}", "--json", str(path),
                 "--no-progress"]) == 1
    out = capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["backends"] == ["refcnn", "perturbed"]
    assert data["targets"] == {"refcnn": "refcnn", "perturbed": spec}
    assert data["summary"]["perturbed"]["failed"] == 1
    (result,) = [r for r in data["results"] if r["backend"] == "perturbed"]
    assert result["target"] == spec
    assert f"FAILED {POOL} on perturbed" in out
    # Every reproducer names the module:Class, so pasting it reruns the backend.
    assert f"--backends {spec}" in result["discrepancies"][0]["reproduce"]
    assert main(["run", "--case", POOL, "--backends", result["target"], "--no-progress"]) == 1


def test_clashing_backend_names_are_disambiguated(tmp_path, capsys):
    path = tmp_path / "r.json"
    backends = "refcnn,fake_backends:Perturbed,fake_backends:PerturbedToo," \
               "incomplete_backends:CallsItselfTorch"
    main(["run", "--case", POOL, "--backends", backends, "--json", str(path), "--no-progress"])
    err = capsys.readouterr().err
    data = json.loads(path.read_text())
    # Both call themselves "perturbed"; the third a built-in's name: each by its module:Class.
    assert data["backends"] == ["refcnn", "fake_backends:Perturbed",
                                "fake_backends:PerturbedToo",
                                "incomplete_backends:CallsItselfTorch"]
    assert "is called 'perturbed', also the name of fake_backends:PerturbedToo" in err
    assert "is called 'torch', a built-in backend's name" in err
    assert len({r["backend"] for r in data["results"]}) == 4


# ---- --direction ---------------------------------------------------------------------------------
def test_direction_filters(tmp_path, capsys):
    path = tmp_path / "r.json"
    # (refcnn's backend computes no jvp: every case unsupported, exit 4; the filter is what
    # is checked here.)
    assert main(["run", "--cases", "smoke", "--ops", "conv2d,max_pool2d", "--direction", "jvp",
                 "--backends", "refcnn", "--json", str(path), "--no-progress"]) in (0, 4)
    results = json.loads(path.read_text())["results"]
    expected = [c.id for c in sweep("smoke") if c.direction == "jvp"
                and c.op in ("conv2d", "max_pool2d")]
    assert expected and [r["case"] for r in results] == expected
    assert {r["direction"] for r in results} == {"jvp"}
    # Id tokens work too, and lists.
    assert main(["run", "--cases", "smoke", "--ops", "avg_pool2d", "--direction", "bwd2,fwd",
                 "--backends", "refcnn", "--json", str(path), "--no-progress"]) == 0
    assert {r["direction"] for r in json.loads(path.read_text())["results"]} == \
        {"double_backward", "forward"}
    assert main(["run", "--cases", "smoke", "--direction", "sideways"]) == 2
    assert "unknown direction sideways" in capsys.readouterr().err


# ---- --device ------------------------------------------------------------------------------------
def test_device_cuda_without_a_gpu_is_a_usage_error_naming_what_is_missing(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device: benchmarks/device_check.sh checks it")
    assert main(["run", "--case", CONV, "--backends", "refcnn,torch", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda: torch" in err and "torch.cuda.is_available() is False" in err
    assert os.environ.get("CROSSCHECK_DEVICE") is None  # restored after the run


def test_device_cuda_without_a_gpu_names_jax_s_missing_platform(capsys):
    jax = pytest.importorskip("jax")
    if any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("this machine has a GPU for JAX")
    assert main(["run", "--case", CONV, "--backends", "jax", "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda: JAX" in err and "no 'gpu' platform" in err


def test_device_is_refused_for_backends_without_one_and_bad_names(capsys):
    assert main(["run", "--case", CONV, "--backends", "tensorflow", "--device", "cuda"]) == 2
    assert "tensorflow cannot take a device" in capsys.readouterr().err
    assert main(["run", "--case", CONV, "--backends", "refcnn", "--device", "cuda"]) == 2
    assert "needs one of torch, jax, jax.nchw" in capsys.readouterr().err
    assert main(["run", "--case", CONV, "--device", "tpu"]) == 2
    assert "a device is cpu, cuda or cuda:N" in capsys.readouterr().err


def test_device_cpu_is_recorded_in_the_report(tmp_path):
    pytest.importorskip("torch")
    path = tmp_path / "r.json"
    assert main(["run", "--case", CONV, "--backends", "refcnn,torch", "--device", "cpu",
                 "--json", str(path), "--no-progress"]) == 0
    data = json.loads(path.read_text())
    assert data["device"] == "cpu"
    settings = data["versions"]["settings"]["torch"]
    assert settings["device"] == "cpu"
    assert {"cudnn.allow_tf32", "cuda.matmul.allow_tf32", "float32_matmul_precision"} <= \
        set(settings)


# ---- tox and the device-check script -------------------------------------------------------------
def test_tox_passes_the_suite_s_variables_and_constrains_the_extras():
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(os.path.join(ROOT, "tox.ini"))
    env = tox["testenv"]
    passed = env["pass_env"].split()
    for name in ("CROSSCHECK_SWEEP", "CI", "HYPOTHESIS_PROFILE", "CROSSCHECK_JAX_CACHE"):
        assert name in passed, name
    # Every pip call of the environment (the extras' install too) gets the pins.
    assert "PIP_CONSTRAINT = {toxinidir}{/}constraints.txt" in env["set_env"]
    assert env["constrain_package_deps"] == "true"
    assert "-c constraints.txt" in env["deps"]


def test_device_check_script_runs_the_device_check():
    path = os.path.join(ROOT, "benchmarks", "device_check.sh")
    assert os.access(path, os.X_OK)
    text = open(path).read()
    assert "--cases smoke --backends torch,jax" in text and '--device "$device"' in text
    assert 'device="${DEVICE_CHECK_DEVICE:-cuda}"' in text
    assert subprocess.run(["bash", "-n", path]).returncode == 0
