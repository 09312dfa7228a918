"""``crosscheck conform work.ipynb`` and ``check(globals())``: notebooks judged on their
definitions.

The fixture ``conform_targets/notebook_listing.ipynb`` is the course notebook's listing as
published (its setup cell with h5py, matplotlib and magics, its plotting and test cells), bugs
and all; conform's verdicts must name each of them. Other notebooks are written here with
nbformat: a setup cell importing what the judge lacks, shell lines, cell magics, a test cell
that would leave a file behind, a function that reads a test cell's global.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

nbformat = pytest.importorskip("nbformat")

from crosscheck import conform  # noqa: E402
from crosscheck.cli import main  # noqa: E402
from crosscheck.conform import notebook  # noqa: E402

TARGETS = os.path.join(os.path.dirname(__file__), "conform_targets")
LISTING = os.path.join(TARGETS, "notebook_listing.ipynb")


def said(outcome, function: str) -> str:
    return " | ".join(outcome.verdicts[function].diagnosis)


@pytest.fixture(scope="module")
def listing():
    return conform.check_target(LISTING, timeout=10)


def test_listing_verdicts_name_each_bug_it_has(listing):
    v = listing.verdicts
    right = {"zero_pad", "pool_forward", "create_mask_from_window", "distribute_value"}
    assert {n for n, x in v.items() if x.verdict == conform.CONFORMANT} == right
    # conv_single_step: Z + b.astype(float) keeps b's (1, 1, 1) shape; the API says scalar.
    assert "(1, 1, 1)" in said(listing, "conv_single_step")
    assert "b.item()" in said(listing, "conv_single_step")
    # conv_forward: NumPy 2 will not store that array in Z[i, h, w, c].
    text = said(listing, "conv_forward")
    assert "setting an array element with a sequence" in text and "conv_single_step" in text
    assert "notebook_listing.ipynb, cell 11, line" in text  # the cell and line, not NumPy's
    # conv_backward, judged with the reference's cache as conv_forward raises: the crop that
    # is empty for pad 0, db[:, :, c], and the windows slid without the stride.
    assert v["conv_backward"].reference_cache == v["conv_backward"].cases
    text = said(listing, "conv_backward")
    assert "[pad:-pad" in text and "pad = 0" in text
    assert "db[:, :, :, c]" in text and "n_C > 1" in text
    assert "without the stride" in text and "reference's cache" in text
    # pool_backward: its windows slide without the stride too.
    text = said(listing, "pool_backward")
    assert "without the stride" in text and "stride > 1" in text and "stride 1" in text


def test_listing_runs_only_imports_and_definitions(listing):
    lines = " ".join(listing.notebook)
    assert "ran only the imports and definitions of 9 code cells" in lines
    assert "did not run 8 test, plotting or other cells" in lines
    assert "%matplotlib inline" in lines and "%autoreload 2" in lines
    plan = notebook.read_notebook(LISTING)
    ran = [kind for cell in plan["cells"] for _, kind in cell["run"]]
    assert ran.count("definition") == 8 and ran.count("import") == 3
    assert "hparameters" in plan["assigned_elsewhere"]  # test cells' globals, never run


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(textwrap.dedent(c)) if not c.startswith("#md")
        else nbformat.v4.new_markdown_cell(c) for c in cells])
    nbformat.write(nb, str(path))
    return str(path)


SETUP = """\
import numpy as np
import h5py
import matplotlib.pyplot as plt
from public_tests import *
from test_utils import summary, comparator
!pip install h5py
%matplotlib inline
plt.rcParams['figure.figsize'] = (5.0, 4.0)
np.random.seed(1)
"""

ZERO_PAD = """\
def zero_pad(X, pad):
    return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='constant')
"""

POOL_FORWARD_WITH_GLOBAL = """\
def pool_forward(A_prev, hparameters, mode="max"):
    (m, n_H_prev, n_W_prev, n_C) = A_prev.shape
    f = hparameters["f"]
    n_H = int(1 + (n_H_prev - f) / stride)       # stride: the test cell's global
    n_W = int(1 + (n_W_prev - f) / stride)
    A = np.zeros((m, n_H, n_W, n_C))
    for h in range(n_H):
        for w in range(n_W):
            win = A_prev[:, h * stride:h * stride + f, w * stride:w * stride + f, :]
            A[:, h, w, :] = win.max(axis=(1, 2)) if mode == "max" else win.mean(axis=(1, 2))
    return A, (A_prev, hparameters)
"""


def test_notebook_is_judged_when_the_judge_lacks_its_imports(tmp_path):
    # The judge "lacks" h5py and matplotlib: modules beside the notebook that refuse to load
    # shadow the installed ones (the notebook's folder comes first on sys.path, as in Jupyter).
    (tmp_path / "h5py.py").write_text("raise ImportError(\"No module named 'h5py'\")\n")
    (tmp_path / "matplotlib").mkdir()
    (tmp_path / "matplotlib" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'matplotlib'\")\n")
    sentinel = tmp_path / "test_cell_ran.txt"
    path = _notebook(tmp_path / "work.ipynb", [
        "#md # My work", SETUP, ZERO_PAD,
        f"x = zero_pad(np.ones((1, 2, 2, 1)), 1)\nopen({str(sentinel)!r}, 'w').write('ran')\n"
        "plt.imshow(x[0, :, :, 0])\n",
        "%%capture\n" + ZERO_PAD.replace("zero_pad", "distribute_value_unused"),
        "%%bash\necho this is not python\n",
        "stride = 2\nhparameters = {'stride': 2, 'f': 2}\n",
        POOL_FORWARD_WITH_GLOBAL,
        "zero_pad?\n",
    ])
    outcome = conform.check_target(path, functions=["zero_pad", "pool_forward"], timeout=10)
    assert not sentinel.exists(), "a test cell ran"
    assert outcome.verdicts["zero_pad"].verdict == conform.CONFORMANT
    assert outcome.verdicts["pool_forward"].verdict == conform.NOT_CONFORMANT
    lines = " ".join(outcome.notebook)
    for name in ("import h5py", "import matplotlib.pyplot as plt", "from public_tests import *",
                 "from test_utils import summary, comparator"):
        assert name in lines, (name, lines)
    assert "skipped imports" in lines
    assert "!pip install h5py" in lines and "%%bash" in lines and "zero_pad?" in lines
    text = said(outcome, "pool_forward")
    assert "reads the global 'stride'" in text and "set in cell 7" in text, text
    assert "work.ipynb, cell 8, line" in text


def test_notebook_cli_and_its_reproducers(tmp_path, capsys):
    report = tmp_path / "r.json"
    assert main(["conform", LISTING, "--json", str(report), "--function", "conv_single_step",
                 "--function", "zero_pad"]) == 1
    out = capsys.readouterr()
    assert "ran only the imports and definitions" in out.out
    data = json.loads(report.read_text())
    assert data["notebook"] and data["summary"]["conv_single_step"]["diagnosis"]
    for function in ("conv_single_step", "zero_pad"):
        result = next(r for r in data["results"] if r["function"] == function)
        run = subprocess.run([sys.executable, "-c", result["reproduce"]], capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        assert result["status"] in run.stdout


def test_not_a_notebook_is_a_usage_error(tmp_path, capsys):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    assert main(["conform", str(bad)]) == 2
    assert "cannot read the notebook" in capsys.readouterr().err
    assert main(["conform", str(tmp_path / "missing.ipynb")]) == 2


def test_magics_are_dropped_and_line_numbers_kept():
    text, dropped, python = notebook.strip_magics("%time x = 1\ndef f():\n    !ls\n    return 1\n")
    assert python and dropped == ["%time x = 1", "!ls"]
    assert text.splitlines()[1] == "def f():" and text.splitlines()[2] == "    pass"
    assert notebook.strip_magics("%%writefile a.py\nprint(1)\n")[2] is False
    assert notebook.strip_magics("%%time\ndef f(): pass\n")[2] is True


# ---- from inside Jupyter -------------------------------------------------------------------------
MODULE = """\
import numpy as np
from numpy import pad as np_pad

stride = 2          # a test cell's global, as a notebook leaves it

def zero_pad(X, pad):
    return np_pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

def _mean(x):
    return np.mean(x)

def distribute_value(dz, shape):
    (n_H, n_W) = shape
    return np.ones(shape) * _mean(np.full(shape, dz / (n_H * n_W)))

def pool_forward(A_prev, hparameters, mode="max"):
    f = hparameters["f"]
    n_H = int(1 + (A_prev.shape[1] - f) / stride)
    return np.zeros((A_prev.shape[0], n_H, n_H, A_prev.shape[3])), (A_prev, hparameters)

def run_check():
    from crosscheck.conform import check
    return check(functions=["zero_pad"])
"""


@pytest.fixture()
def namespace_module(tmp_path, monkeypatch):
    (tmp_path / "student_ns.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    module = importlib.import_module("student_ns")
    yield module
    sys.modules.pop("student_ns", None)


def test_check_globals_judges_the_namespace_in_a_worker(namespace_module, capsys):
    outcome = conform.check(vars(namespace_module), functions=["zero_pad", "distribute_value",
                                                               "pool_forward"])
    out = capsys.readouterr().out
    assert outcome.verdicts["zero_pad"].verdict == conform.CONFORMANT
    assert outcome.verdicts["distribute_value"].verdict == conform.CONFORMANT  # its helper came
    assert outcome.verdicts["pool_forward"].verdict == conform.NOT_CONFORMANT
    assert "reads the global 'stride'" in said(outcome, "pool_forward")
    assert "pool_forward" in out and "NOT CONFORMANT" in out
    assert "variable of the notebook's namespace" in said(outcome, "pool_forward")
    assert "sent the source of zero_pad, pool_forward, distribute_value, _mean" in out
    assert repr(outcome).startswith("<ConformOutcome student_ns: not conformant: pool_forward")
    # Called without a namespace, it judges the caller's globals.
    assert namespace_module.run_check().conformant


def test_check_plan_holds_sources_and_imports_not_objects(namespace_module):
    plan = notebook.plan_from_namespace(vars(namespace_module))
    json.dumps(plan)  # plain JSON: nothing of the namespace travels but text
    imports = plan["cells"][0]["source"]
    assert "import numpy as np" in imports and "from numpy import pad as np_pad" in imports
    labels = [c["label"] for c in plan["cells"]]
    assert "the cell defining _mean" in labels  # a helper a notebook function calls
    assert plan["assigned_elsewhere"].get("stride") == notebook.NAMESPACE
