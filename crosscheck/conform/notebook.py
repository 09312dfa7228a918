"""Notebooks: ``crosscheck conform work.ipynb``, and ``check(globals())`` from inside Jupyter.

A notebook is judged on its definitions, never on its test or plotting cells: each code cell's
magics (``%matplotlib inline``, ``%%capture``) and shell lines (``!pip install``) are dropped,
and of what remains only the top-level imports and the ``def`` and ``class`` statements run,
in order, in the worker (:func:`crosscheck.conform.target.run_plan`). An import that fails,
``h5py``, ``matplotlib`` or the course's ``public_tests`` on a machine without them, is
skipped and named; the functions are judged all the same.

This module reads the notebook (with nbformat) and decides what runs: it makes a *plan*, plain
JSON holding each cell's source and the statements to run, which the worker carries out.
Nothing of the notebook runs in this process. :func:`plan_from_namespace` makes the same kind
of plan from a live namespace, the functions' own source, which :func:`check` judges::

    from crosscheck.conform import check
    check(globals())          # in the notebook, after running the cells that define the API
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import sys
import types

from crosscheck.conform.target import FUNCTIONS, TargetError

#: Cell magics whose body is Python (kept, the magic line dropped); any other cell magic
#: (``%%bash``, ``%%writefile``, ``%%html``...) makes the whole cell not Python, so not run.
PYTHON_CELL_MAGICS = ("time", "timeit", "capture", "prun", "debug", "memit", "px")

#: Where plan_from_namespace says a notebook global lives (not in any cell it sends).
NAMESPACE = "the notebook's namespace"

_MAGIC_LINE = re.compile(r"^\s*[%!]")
_MAGIC_ASSIGN = re.compile(r"^\s*[A-Za-z_][\w\s,.\[\]()]*=\s*[%!]")
_HELP_LINE = re.compile(r"^\s*(\?\??[\w.]+|[\w.]+\?\??)\s*$")


def read_notebook(path: str) -> dict:
    """The plan of the notebook at ``path``: which statements of which cells run.

    TargetError when the file is missing or is not a notebook.
    """
    spec = path
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise TargetError(f"cannot import {spec}: no file {path}")
    try:
        cells = _code_cells(path)
    except TargetError:
        raise
    except Exception as exc:  # noqa: BLE001 - bad JSON, a schema nbformat refuses
        raise TargetError(f"cannot read the notebook {spec}: {type(exc).__name__}: {exc}") \
            from None
    plan = plan_from_cells(cells)
    plan["path"] = path
    return plan


def _code_cells(path: str) -> list[tuple[str, str]]:
    """(label, source) of each code cell; the label counts every cell from 1 (``cell 7``)."""
    try:
        import nbformat
    except ImportError:  # the plain JSON of nbformat 4 needs no library
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
        if not isinstance(nb, dict) or nb.get("nbformat") != 4:
            raise TargetError(f"cannot read the notebook {path}: it is not in nbformat 4, and "
                              "nbformat is not installed (pip install nbformat, or "
                              "refcnn-crosscheck[test])") from None
        raw = nb.get("cells", [])
    else:
        raw = nbformat.read(path, as_version=4).cells
    out = []
    for n, cell in enumerate(raw, 1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        out.append((f"cell {n}", "".join(source) if isinstance(source, list) else source))
    return out


def plan_from_cells(cells) -> dict:
    """A plan from (label, source) pairs, with what was left out and why (for the report)."""
    plan: dict = {"path": None, "cells": [], "not_run": [], "dropped_lines": [],
                  "unparsed": [], "assigned_elsewhere": {}}
    for label, source in cells:
        text, dropped, python = strip_magics(source)
        plan["dropped_lines"] += [{"cell": label, "line": line} for line in dropped]
        if not python:
            plan["not_run"].append(label)
            continue
        try:
            tree = ast.parse(text)
        except SyntaxError as exc:
            plan["unparsed"].append({"cell": label, "error": f"{exc.msg} (line {exc.lineno})"})
            continue
        run = []
        for i, node in enumerate(tree.body):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                run.append([i, "import"])
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                run.append([i, "definition"])
            else:
                for name in _assigned(node):
                    plan["assigned_elsewhere"].setdefault(name, label)
        if run:
            plan["cells"].append({"label": label, "source": text, "run": run})
        else:
            plan["not_run"].append(label)
    return plan


def strip_magics(source: str) -> tuple[str, list[str], bool]:
    """(the cell as Python, the lines dropped, whether the cell is Python at all).

    A dropped line becomes ``pass`` at its own indentation, so line numbers stay the cell's.
    """
    lines = source.splitlines()
    dropped: list[str] = []
    if lines and lines[0].lstrip().startswith("%%"):
        magic = lines[0].lstrip()[2:].split(maxsplit=1)
        dropped.append(lines[0].strip())
        if not magic or magic[0] not in PYTHON_CELL_MAGICS:
            return "", dropped, False
        lines[0] = ""
    out = []
    for line in lines:
        if _MAGIC_LINE.match(line) or _MAGIC_ASSIGN.match(line) or _HELP_LINE.match(line):
            dropped.append(line.strip())
            indent = line[:len(line) - len(line.lstrip())]
            out.append(indent + "pass")
        else:
            out.append(line)
    return "\n".join(out) + "\n", dropped, True


def _assigned(node) -> list[str]:
    """The global names a top-level statement that does not run would have bound."""
    names = []
    for sub in ast.walk(node):
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            names.append(sub.id)
    return names


def describe(plan: dict, skipped: list) -> list[str]:
    """Sentences saying what of the notebook ran and what did not."""
    if plan is None:
        return []
    ran = [c["label"] for c in plan["cells"]]
    if plan.get("path"):
        lines = [f"{os.path.basename(plan['path'])}: ran only the imports and definitions of "
                 f"{len(ran)} code cell{'s' if len(ran) != 1 else ''} ({_labels(ran)})"
                 + (f"; did not run {len(plan['not_run'])} test, plotting or other cell"
                    f"{'s' if len(plan['not_run']) != 1 else ''} ({_labels(plan['not_run'])})"
                    if plan["not_run"] else "")]
    else:  # check(globals()): the functions' own source, not cells
        sent = [label[len("the cell defining "):] for label in ran
                if label.startswith("the cell defining ")]
        n = sum(len(c["run"]) for c in plan["cells"] if c["label"] == "the notebook's imports")
        lines = [f"the namespace: sent the source of {', '.join(sent) or 'nothing'} and {n} "
                 f"import line{'s' if n != 1 else ''} to the worker, and nothing else"]
    if plan["dropped_lines"]:
        shown = ", ".join(dict.fromkeys(d["line"] for d in plan["dropped_lines"]))
        lines.append(f"dropped {len(plan['dropped_lines'])} magic and shell line"
                     f"{'s' if len(plan['dropped_lines']) != 1 else ''}: {_cut(shown)}")
    imports = [s for s in skipped if s.get("kind") == "import"]
    if imports:
        lines.append("skipped imports the judge cannot run: " + "; ".join(
            f"{s['code']} ({s['cell']}: {_last(s['error'])})" for s in imports))
    for s in skipped:
        if s.get("kind") != "import":
            lines.append(f"{s['cell']}: could not run {s['code'] or 'the cell'}: "
                         f"{_last(s['error'])}")
    for u in plan.get("unparsed", ()):
        lines.append(f"{u['cell']} is not Python, even without its magics: {u['error']}; "
                     "not run")
    for note in plan.get("notes", ()):
        lines.append(note)
    return lines


def _labels(labels) -> str:
    labels = [str(x).replace("cell ", "") for x in labels]
    text = ", ".join(labels)
    return ("cells " if labels else "") + _cut(text, 80)


def _cut(text: str, n: int = 160) -> str:
    return text if len(text) <= n else text[:n - 3] + "..."


def _last(error: str) -> str:
    return error.strip().splitlines()[-1] if error.strip() else error


# ---- from inside Jupyter -------------------------------------------------------------------------
def plan_from_namespace(namespace: dict) -> dict:
    """A plan from a live namespace (a notebook's ``globals()``): the source of each notebook
    function it defines, of the helpers they call, and import lines for the modules they use.

    What cannot go into a plan is noted: a function whose source cannot be read, and the
    notebook globals (data, not modules or functions) the functions read, which the worker
    will not have, as ``crosscheck conform work.ipynb`` would not.
    """
    home = namespace.get("__name__", "__main__")
    plan = plan_from_cells([])
    plan["notes"] = []
    imports: dict[str, str] = {}
    queue = [n for n in FUNCTIONS if callable(namespace.get(n))]
    seen: set[str] = set()
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        obj = namespace[name]
        if getattr(obj, "__module__", None) != home or not (inspect.isfunction(obj)
                                                             or inspect.isclass(obj)):
            line = _import_line(name, obj)
            if line:
                imports[name] = line
            elif name not in FUNCTIONS:
                plan["notes"].append(f"{name} is not a module, nor a function defined here or "
                                     "importable by name; the worker will not have it")
            continue
        try:
            source = inspect.getsource(obj)
            first = obj.__code__.co_firstlineno if inspect.isfunction(obj) else 1
        except (OSError, TypeError) as exc:
            plan["notes"].append(f"could not read the source of {name} ({exc}); not judged")
            continue
        plan["cells"].append({"label": f"the cell defining {name}",
                              "source": "\n" * (first - 1) + _dedent(source),
                              "run": [[0, "definition"]]})
        for g in sorted(_globals_used(obj)):
            if g in seen or g in queue or g not in namespace or g.startswith("__"):
                continue  # not a notebook global: a builtin, or an attribute name
            value = namespace[g]
            if isinstance(value, types.ModuleType) or callable(value):
                queue.append(g)  # a module, or a function or class: imported or sent
            else:
                plan["assigned_elsewhere"].setdefault(g, NAMESPACE)
    plan["cells"].insert(0, {"label": "the notebook's imports",
                             "source": "\n".join(imports.values()) + "\n",
                             "run": [[i, "import"] for i in range(len(imports))]})
    return plan


def _dedent(source: str) -> str:
    import textwrap

    return textwrap.dedent(source)


def _import_line(name: str, obj) -> str | None:
    """The import statement that binds ``name`` to ``obj`` in a fresh process, if any."""
    if isinstance(obj, types.ModuleType):
        module = obj.__name__
        return f"import {module}" if name == module else f"import {module} as {name}"
    module, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qual or module == "__main__" or "." in qual or "<" in qual:
        return None
    return f"from {module} import {qual}" + (f" as {name}" if name != qual else "")


def _globals_used(obj) -> set[str]:
    """The global names a function's code (and the code nested in it) reads."""
    codes = []
    if inspect.isfunction(obj):
        codes.append(obj.__code__)
    elif inspect.isclass(obj):
        codes += [v.__code__ for v in vars(obj).values() if inspect.isfunction(v)]
    import dis

    names: set[str] = set()
    while codes:
        code = codes.pop()
        names.update(i.argval for i in dis.get_instructions(code)
                     if i.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(i.argval, str))
        codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return names


def check(namespace: dict | None = None, *, functions=None, strict: bool = False,
          timeout: float = 10.0, seed: int = 0, in_process: bool = False,
          verbose: bool = False, stream=None):
    """Judge the notebook functions defined in ``namespace`` (default: the caller's globals),
    print the verdicts and return the :class:`~crosscheck.conform.ConformOutcome`.

    In Jupyter: ``from crosscheck.conform import check; check(globals())``. The functions'
    source runs in a worker process, as ``crosscheck conform work.ipynb`` would run the
    notebook's definitions: a function that reads a notebook global (a variable from a test
    cell) fails here as it would anywhere else, and the diagnosis names the global.
    """
    from crosscheck.conform.verdicts import check_target, print_verdicts

    if namespace is None:
        namespace = sys._getframe(1).f_globals
    plan = plan_from_namespace(namespace)
    # The namespace's module name is what a reproducer loads: in Jupyter, __main__ is the
    # notebook's namespace, so load_target("__main__") pasted into a cell finds the functions.
    spec = str(namespace.get("__name__") or "__main__")
    outcome = check_target(spec, functions=functions, strict=strict,
                           timeout=timeout, in_process=in_process, seed=seed, plan=plan)
    print_verdicts(outcome, stream or sys.stdout, verbose=verbose)
    return outcome


def load_target(spec: str):
    """:func:`crosscheck.conform.target.load_target`, for notebooks too (``work.ipynb``):
    imports (or runs the notebook's definitions) in *this* process, as reproducers do."""
    from crosscheck.conform.target import load_target as load

    return load(spec, read_notebook(spec) if spec.lower().endswith(".ipynb") else None)
