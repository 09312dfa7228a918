"""Running the target: in a worker process killed on a timeout, or in this process.

:func:`_worker_main` is the spawned process's entry point; multiprocessing imports it by its
qualified name, ``crosscheck.conform.worker._worker_main``.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

from crosscheck.conform.checks import CaseOutcome, run_check
from crosscheck.conform.reproduce import reproduction
from crosscheck.conform.sweep import ConformCase, conform_case
from crosscheck.conform.target import Target, TargetError, load_target

def _worker_main(conn, cwd: str) -> None:
    """Worker loop: load the target, then run checks on request until told to stop."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    target = None
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        kind, payload = message
        if kind == "stop":
            return
        if kind == "load":
            try:
                target = load_target(payload)
                conn.send(("loaded", sorted(target.functions)))
            except TargetError as exc:
                conn.send(("error", str(exc)))
        elif kind == "check":
            spec, case_id = payload
            conn.send(("outcome", run_check(target.functions, conform_case(case_id), spec)))


class TargetProcess:
    """The target, loaded in a worker process that is killed when a call takes too long."""

    def __init__(self, spec: str, timeout: float, load_timeout: float | None = None):
        self.spec, self.timeout = spec, timeout
        self.load_timeout = load_timeout if load_timeout is not None else max(60.0, timeout)
        self.provided: list[str] = []
        self._process = self._conn = None

    def start(self) -> list[str]:
        import multiprocessing

        # spawn: the caller may hold threads (pytest with torch loaded), fork would be unsafe.
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        # Look the worker function up by name: pickling it for spawn needs the object that
        # sys.modules holds now (pytester, for one, re-imports modules between runs).
        worker = importlib.import_module(__name__)._worker_main
        self._process = ctx.Process(target=worker, args=(child, os.getcwd()),
                                    name="crosscheck-conform-target", daemon=True)
        self._process.start()
        child.close()
        self._conn.send(("load", self.spec))
        if not self._conn.poll(self.load_timeout):
            self.close()
            raise TargetError(f"cannot import {self.spec}: the import did not finish in "
                              f"{self.load_timeout:g} s")
        try:
            kind, payload = self._conn.recv()
        except EOFError:
            self.close()
            raise TargetError(f"cannot import {self.spec}: the worker process died while "
                              "importing it") from None
        if kind == "error":
            self.close()
            raise TargetError(payload)
        self.provided = payload
        return payload

    def check(self, cc: ConformCase) -> CaseOutcome:
        if self._process is None:
            self.start()
        self._conn.send(("check", (self.spec, cc.id)))
        start = time.perf_counter()
        if self._conn.poll(self.timeout):
            try:
                return self._conn.recv()[1]
            except EOFError:
                message = "the target's process died (a crash in native code?)"
        else:
            message = (f"timed out: no answer after {self.timeout:g} s; the target was stopped "
                       "(does it loop forever? raise --timeout for a slow implementation)")
        code = self._process.exitcode
        self.close()
        if code not in (None, 0):
            message += f" (exit code {code})"
        return CaseOutcome(cc.function, cc.id, "timeout", message, cc.params(),
                           seconds=time.perf_counter() - start,
                           reproduce=reproduction(self.spec, cc))

    def close(self) -> None:
        if self._process is not None:
            if self._process.is_alive():
                try:
                    self._conn.send(("stop", None))
                except (OSError, BrokenPipeError):
                    pass
                self._process.join(0.5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(2)
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class InProcessTarget:
    """The target called directly (no timeout): for debugging and for speed."""

    def __init__(self, spec: str):
        self.spec = spec
        self.target: Target | None = None
        self.provided: list[str] = []

    def start(self) -> list[str]:
        self.target = load_target(self.spec)
        self.provided = sorted(self.target.functions)
        return self.provided

    def check(self, cc: ConformCase) -> CaseOutcome:
        if self.target is None:
            self.start()
        return run_check(self.target.functions, cc, self.spec)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
