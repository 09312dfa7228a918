"""Misbehaving backends for the isolation tests, plugged in as ``evil_backends:Class``.

Each wraps refcnn's own backend (so it is right whenever it behaves) and misbehaves in
one known way on forward max-pool cases (:func:`misbehaves`), or on every case where
that is the point (the bad outputs, the backend that supports nothing). When
``CROSSCHECK_EVIL_PIDS`` names a file, every process that creates one of these backends
appends its pid to it, and so do the processes they start, so that a test can check
that none is left behind.
"""

import ctypes
import os
import subprocess
import sys
import time

import numpy as np

from crosscheck.backends.refcnn_backend import RefcnnBackend


def misbehaves(case) -> bool:
    return case.op == "max_pool2d" and case.direction == "forward"


def _record(pid: int, tag: str = "backend") -> None:
    path = os.environ.get("CROSSCHECK_EVIL_PIDS")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{pid} {tag}\n")


class _Evil:
    name = "evil"

    def __init__(self):
        self._inner = RefcnnBackend()
        _record(os.getpid())

    def version(self):
        return "0.0-evil"

    def unsupported(self, case):
        return self._inner.unsupported(case)

    def run(self, case, inputs):
        if misbehaves(case):
            return self.misbehave(case, inputs)
        return self._inner.run(case, inputs)

    def misbehave(self, case, inputs):
        raise NotImplementedError


class WritesInputs(_Evil):
    """An in-place kernel: right answers, then it sets x writeable and scribbles on it."""

    def misbehave(self, case, inputs):
        out = self._inner.run(case, inputs)
        inputs.x.setflags(write=True)
        inputs.x[...] = 1e6
        return out


class ReturnsView(_Evil):
    """Right values, but ``y`` is the input itself (a view of x) when the shapes match."""

    def misbehave(self, case, inputs):
        out = self._inner.run(case, inputs)
        if out["y"].shape == inputs.x.shape:
            out["y"] = inputs.x[...]
        return out


class Segfaults(_Evil):
    def misbehave(self, case, inputs):
        ctypes.string_at(0)  # reads address 0: SIGSEGV


class ExitsThree(_Evil):
    def misbehave(self, case, inputs):
        os._exit(3)


class SysExitZero(_Evil):
    def misbehave(self, case, inputs):
        sys.exit(0)


class RaisesKeyboardInterrupt(_Evil):
    def misbehave(self, case, inputs):
        raise KeyboardInterrupt


class Hangs(_Evil):
    """Starts a child process (which must not outlive the run either), then never returns.

    Writes ``<pids file>.hanging`` once it hangs, so that a test knows when to act.
    """

    def misbehave(self, case, inputs):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _record(child.pid, "child")
        path = os.environ.get("CROSSCHECK_EVIL_PIDS")
        if path:
            with open(path + ".hanging", "w", encoding="utf-8") as fh:
                fh.write(case.id)
        while True:
            time.sleep(0.05)


# ---- bad outputs, on every case --------------------------------------------------------------
class ReturnsEmpty(_Evil):
    def run(self, case, inputs):
        return {}


class ReturnsEmptyToo(ReturnsEmpty):
    """A second backend failing the same way."""


class ReturnsNone(_Evil):
    def run(self, case, inputs):
        return None


class WrongKeys(_Evil):
    def run(self, case, inputs):
        return {f"{k}_renamed": v for k, v in self._inner.run(case, inputs).items()}


class WrongShapes(_Evil):
    def run(self, case, inputs):
        return {k: np.asarray(v).ravel()[:-1] for k, v in self._inner.run(case, inputs).items()}


class NotArrays(_Evil):
    def run(self, case, inputs):
        return {k: f"an array of shape {np.shape(v)}" for k, v in
                self._inner.run(case, inputs).items()}


class SupportsNothing(_Evil):
    """A kernel author's backend whose every case is declined: nothing is ever judged."""

    def unsupported(self, case):
        return "this build supports nothing"
