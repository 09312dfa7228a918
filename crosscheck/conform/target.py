"""Loading a target: the notebook API (:data:`FUNCTIONS`) and :func:`load_target`."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback

FUNCTIONS = ("zero_pad", "conv_single_step", "conv_forward", "conv_backward", "pool_forward",
             "pool_backward", "create_mask_from_window", "distribute_value")


class TargetError(Exception):
    """The target cannot be imported, or provides none of the requested functions."""


_PATH_RE = re.compile(r"(?P<path>.+\.py)(?::(?P<attr>[A-Za-z_][\w.]*))?")


class Target:
    """A loaded target: its functions by name, and how it was named."""

    def __init__(self, spec: str, obj):
        self.spec = spec
        self.obj = obj
        self.functions = {name: getattr(obj, name) for name in FUNCTIONS
                          if callable(getattr(obj, name, None))}

    def __getattr__(self, name):
        if name in FUNCTIONS:
            try:
                return self.__dict__["functions"][name]
            except KeyError:
                raise AttributeError(f"{self.spec} does not provide {name}") from None
        raise AttributeError(name)


def load_target(spec: str) -> Target:
    """Import ``spec`` (module, ``file.py``, ``module:object`` or ``file.py:object``).

    Raises TargetError, with the reason, when it cannot be imported.
    """
    m = _PATH_RE.fullmatch(spec)
    try:
        if m and (os.path.exists(m["path"]) or os.sep in m["path"] or "/" in m["path"]):
            path = os.path.abspath(m["path"])
            if not os.path.isfile(path):
                raise TargetError(f"cannot import {spec}: no file {path}")
            module = _import_path(path)
            attr = m["attr"]
        else:
            name, _, attr = spec.partition(":")
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())  # as `python -c` would: the current directory
            module = importlib.import_module(name)
        obj = module
        for part in (attr.split(".") if attr else []):
            obj = getattr(obj, part)
        if inspect.isclass(obj):
            obj = obj()
    except TargetError:
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a script's top level too
        lines = traceback.format_exception_only(type(exc), exc)
        raise TargetError(f"cannot import {spec}: {''.join(lines).strip()}") from exc
    return Target(spec, obj)


def _import_path(path: str):
    """Import a .py file by path, with its directory on sys.path (for its sibling imports)."""
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    stem = os.path.splitext(os.path.basename(path))[0]
    name = "crosscheck_target_" + re.sub(r"\W", "_", stem)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
