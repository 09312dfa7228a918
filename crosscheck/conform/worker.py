"""Runners: who calls the target. :class:`TargetProcess` calls it in a worker process, the
default; :class:`InProcessTarget` calls it in this one (``--in-process``: trusted code only).

The worker (see :mod:`crosscheck.conform.target`) is a fresh interpreter running
``target.py`` as a script: it imports the target and nothing of crosscheck or refcnn, and
answers each case with plain arrays over a pipe that is read without unpickling. It runs in
a process group of its own, so stopping it stops whatever the target started too, and dies
with this process: on SIGTERM or Ctrl-C the runner's ``close`` (the ``with`` block, or
:mod:`atexit`) kills the group, and on Linux the kernel kills the worker if this process is
killed outright.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import weakref

from crosscheck.conform import target as target_side
from crosscheck.conform.checks import CaseOutcome, Stopped, run_check
from crosscheck.conform.sweep import ConformCase
from crosscheck.conform.target import (FUNCTIONS, Target, TargetError, WireError, call_steps,
                                       encode, load_target, read_message, write_all)
from crosscheck.statuses import ConformStatus

_LIVE: "weakref.WeakSet[TargetProcess]" = weakref.WeakSet()


@atexit.register
def _stop_live_workers() -> None:
    for runner in list(_LIVE):
        runner.close(graceful=False)


class TargetProcess:
    """The target, loaded in a worker process that is killed when a call takes too long."""

    def __init__(self, spec: str, timeout: float, load_timeout: float | None = None,
                 plan: dict | None = None):
        self.spec, self.timeout = spec, timeout
        #: A notebook's cells to run instead of importing ``spec`` (plain JSON; see
        #: :mod:`crosscheck.conform.notebook`), made here, where nothing of it runs.
        self.plan = plan
        #: What the worker could not run of a notebook: failed imports and definitions.
        self.skipped: list = []
        self.load_timeout = load_timeout if load_timeout is not None else max(60.0, timeout)
        self.provided: list[str] = []
        self.origin: str | None = None  # the target's file, as the worker found it
        self._proc: subprocess.Popen | None = None
        self._send = self._recv = None
        self._stderr = None
        self._seq = 0

    @property
    def pid(self) -> int | None:
        """The worker's process id (also its process group's), while it runs."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> list[str]:
        """Start a worker and import the target in it; TargetError when that fails."""
        self.close()
        if self.plan is None:
            self.plan = notebook_plan(self.spec)
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", target_side.WORKER_BOOT, target_side.__file__,
                 str(child_in), str(child_out), str(os.getpid())],
                pass_fds=(child_in, child_out), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=self._stderr, start_new_session=True)
        except BaseException:
            for fd in (to_child, child_in, child_out, from_child):
                os.close(fd)
            raise
        os.close(child_in)
        os.close(child_out)
        os.set_blocking(to_child, False)
        self._send, self._recv = to_child, from_child
        _LIVE.add(self)
        try:
            reply, _ = self._exchange({"op": "load", "spec": self.spec, "plan": self.plan,
                                       "sys_path": [os.getcwd(), *sys.path]},
                                      {}, self.load_timeout)
        except Stopped as exc:
            self.close(graceful=False)
            how = (f"the import did not finish in {self.load_timeout:g} s"
                   if exc.status == ConformStatus.TIMEOUT else
                   f"the worker {exc.message} while importing it{exc.detail}")
            raise TargetError(f"cannot import {self.spec}: {how}") from None
        except WireError as exc:
            self.close(graceful=False)
            raise TargetError(f"cannot import {self.spec}: the worker's answer was not in "
                              f"crosscheck's format ({exc})") from None
        if "error" in reply:
            self.close()
            raise TargetError(str(reply["error"]))
        provided = reply.get("provided")
        if not isinstance(provided, list) or not set(provided) <= set(FUNCTIONS):
            self.close(graceful=False)
            raise TargetError(f"cannot import {self.spec}: the worker's answer was malformed")
        self.provided = provided
        origin = reply.get("origin")
        self.origin = origin if isinstance(origin, str) else None
        self.skipped = _skipped(reply.get("skipped"))
        return provided

    def call(self, header: dict, arrays: dict):
        """Run one case's steps in the worker: (reply, arrays), or Stopped (and no worker)."""
        if self._proc is None:
            self.start()
        functions = " then ".join(dict.fromkeys(s["function"] for s in header["steps"]))
        case = header.get("case")
        try:
            reply, out = self._exchange(header, arrays, self.timeout)
            target_side.check_reply(header, list(arrays), reply, out)
        except WireError as exc:
            self.close(graceful=False)
            raise Stopped(ConformStatus.PROTOCOL_ERROR,
                          f"the worker's answer to {functions} on {case} is not in crosscheck's "
                          f"format ({exc}): the target wrote into crosscheck's pipe or broke "
                          "its worker") from None
        except Stopped as exc:
            if exc.status == ConformStatus.TIMEOUT:
                message = (f"timed out: no answer from {functions} on {case} after "
                           f"{self.timeout:g} s; the target was stopped (does it loop forever? "
                           "raise --timeout for a slow implementation)")
            else:
                message = (f"the target's process {exc.message} while running {functions} on "
                           f"{case}{exc.detail}")
            raise Stopped(exc.status, message) from None
        return reply, out

    def check(self, cc: ConformCase) -> CaseOutcome:
        return run_check(self, cc, self.spec)

    # ---- the pipe and the process -----------------------------------------------------------
    def _exchange(self, header: dict, arrays: dict, timeout: float):
        """Send one message and read the answer, or raise Stopped (the worker then is gone)."""
        self._seq += 1
        deadline = time.monotonic() + timeout
        self._stderr.seek(0, os.SEEK_END)
        mark = self._stderr.tell()
        try:
            write_all(self._send, encode({**header, "seq": self._seq}, arrays), deadline)
            reply, out = read_message(self._recv, deadline)
        except TimeoutError:
            if not self._exited(grace=0):
                self.close(graceful=False)
                raise Stopped(ConformStatus.TIMEOUT, "timed out") from None
            raise self._ended(mark) from None
        except (EOFError, BrokenPipeError):
            raise self._ended(mark) from None
        except WireError:
            self.close(graceful=False)
            raise
        if reply.get("seq") != self._seq:
            self.close(graceful=False)
            raise WireError(f"an answer numbered {reply.get('seq')!r}, not {self._seq}")
        return reply, out

    def _ended(self, mark: int) -> Stopped:
        """The worker closed its pipe: say how it ended (signal or exit code), and where."""
        if not self._exited(grace=2.0):
            self.close(graceful=False)
            return Stopped(ConformStatus.PROTOCOL_ERROR,
                           "closed crosscheck's pipe but kept running")
        proc = self._proc
        self._stderr.seek(mark)
        err = self._stderr.read(1 << 16).decode("utf-8", "replace")
        self.close(graceful=False)  # what the target started goes too
        code = proc.returncode
        if code < 0:
            try:
                sig = signal.Signals(-code)
                name, text = sig.name, signal.strsignal(sig) or ""
            except ValueError:
                name, text = f"signal {-code}", ""
            status = ConformStatus.CRASHED
            how = f"was killed by {name}" + (f" ({text.lower()})" if text else "")
        else:
            status = ConformStatus.EXITED
            how = f"exited with code {code} (os._exit, or exit() in C code)"
        where = _crash_frame(err, self.origin)
        if where:
            detail = f", at {where}"
        elif err.strip() and status == ConformStatus.EXITED:
            detail = f"; its last words on stderr: {err.strip().splitlines()[-1][:300]}"
        else:
            detail = ""
        return Stopped(status, how, detail)

    def _exited(self, grace: float) -> bool:
        """Whether the worker has exited (waiting up to ``grace`` s), leaving it unreaped, so
        that its process-group id stays taken until :meth:`_kill_group` has used it."""
        deadline = time.monotonic() + grace
        while True:
            try:
                if hasattr(os, "waitid"):
                    if os.waitid(os.P_PID, self._proc.pid,
                                 os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                        return True
                elif self._proc.poll() is not None:
                    return True
            except ChildProcessError:  # already reaped
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def _kill_group(self) -> None:
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self, graceful: bool = True) -> None:
        """Stop the worker and everything in its process group; no process is left behind."""
        proc = self._proc
        if proc is not None:
            try:
                if graceful and not self._exited(0):
                    try:
                        write_all(self._send, encode({"op": "stop"}), time.monotonic() + 0.2)
                    except (OSError, TimeoutError):
                        pass
                    self._exited(grace=0.5)
                self._kill_group()
                proc.wait()
            finally:
                self._proc = None
        for fd in (self._send, self._recv):
            if fd is not None:
                os.close(fd)
        self._send = self._recv = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        _LIVE.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.close(graceful=exc_type is None)
        return False


def _skipped(value) -> list:
    """The worker's list of what it skipped, kept only as plain strings."""
    if not isinstance(value, list):
        return []
    keys = ("cell", "kind", "code", "error")
    return [{k: str(item.get(k, ""))[:300] for k in keys} for item in value[:200]
            if isinstance(item, dict)]


def notebook_plan(spec: str) -> dict | None:
    """The plan of a ``.ipynb`` target (read here, never run here), else None."""
    if not spec.lower().endswith(".ipynb"):
        return None
    from crosscheck.conform.notebook import read_notebook

    return read_notebook(spec)


_FRAME_RE = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<name>\S+)', re.M)


def _crash_frame(stderr_text: str, origin: str | None) -> str | None:
    """The innermost frame of the target's own files in a faulthandler dump (most recent call
    first), else the innermost outside conform."""
    ours = os.path.abspath(target_side.__file__)
    home = os.path.dirname(os.path.abspath(origin)) + os.sep if origin else None
    frames = [m for m in _FRAME_RE.finditer(stderr_text) if os.path.abspath(m["file"]) != ours]
    installed = target_side.installed_dirs()
    own = [m for m in frames if target_side.own_frame(m["file"], home, installed)]
    m = (own or frames or [None])[0]
    if m is None:
        return None
    if target_side.CELL_RE.fullmatch(m["file"]):
        return target_side.where(m["file"], m["line"], m["name"], origin)
    return f"{os.path.basename(m['file'])}:{m['line']} in {m['name']}"


class InProcessTarget:
    """The target imported and called in this process: for debugging and for speed.

    It trusts the target: there is no timeout, and a target that patches NumPy or
    crosscheck, or ends the process, bends or ends the judging. An exception the target
    raises (``SystemExit`` and ``KeyboardInterrupt`` included) is still that case's result;
    Ctrl-C and SIGTERM still stop the run.
    """

    def __init__(self, spec: str, plan: dict | None = None):
        self.spec = spec
        self.plan = plan
        self.target: Target | None = None
        self.provided: list[str] = []
        self.skipped: list = []
        self._signalled = False
        self._previous: dict = {}

    def start(self) -> list[str]:
        if self.plan is None:
            self.plan = notebook_plan(self.spec)
        self.target = load_target(self.spec, self.plan)
        self.provided = sorted(self.target.functions)
        self.skipped = self.target.skipped
        return self.provided

    def call(self, header: dict, arrays: dict):
        if self.target is None:
            self.start()
        reply, out = call_steps(self.target.functions, header, arrays, self.target.origin)
        kind = (reply["raised"] or {}).get("kind")
        if self._signalled and kind == ConformStatus.KEYBOARD_INTERRUPT:
            raise KeyboardInterrupt  # a real Ctrl-C, caught while the target ran
        return reply, out

    def check(self, cc: ConformCase) -> CaseOutcome:
        return run_check(self, cc, self.spec)

    def close(self, graceful: bool = True) -> None:
        pass

    def __enter__(self):
        # Tell a real Ctrl-C or SIGTERM from a KeyboardInterrupt the target raises itself.
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                previous = signal.getsignal(signum)
                if callable(previous):
                    signal.signal(signum, self._make_handler(previous))
                    self._previous[signum] = previous
            except ValueError:  # not the main thread: no handlers to wrap
                pass
        return self

    def _make_handler(self, previous):
        def handler(signum, frame):
            self._signalled = True
            previous(signum, frame)
        return handler

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        return False
