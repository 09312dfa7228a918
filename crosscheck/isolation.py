"""Calling a backend so that nothing it does bends another backend's verdict, or the run.

Every call, in-process or not, hands the backend its own read-only copies of the
case's inputs, compares them with the pristine arrays afterwards (a backend may set
its copies writeable again: the change is then reported, on it alone), and notes
outputs that are views of the inputs. The verdict (reference, bounds, comparison) is
reached by the caller, :mod:`crosscheck.runner`, in the parent process.

Built-in backends (the registry's names) are called in the crosscheck process: they
are ours, and a worker round trip per call would cost more than many small cases
take. Out-of-tree backends (``module:Class``) run in an :class:`IsolatedBackend`: a
worker process, one per backend, started with ``python -c`` (never forked from a
parent that may hold framework threads). It imports the backend and answers each case
with plain arrays over a pipe, in ``np.save`` format read with ``allow_pickle=False``
plus a JSON header, so nothing it sends can run code here. A per-case timeout bounds
each call. A worker that segfaults, calls ``os._exit``, hangs, writes garbage into the
pipe, or whose backend raises ``SystemExit`` or ``KeyboardInterrupt`` gives that case
its own status (:mod:`crosscheck.statuses`), and is replaced for the next case.

Workers run in a process group of their own (so stopping one stops what the backend
started too) and die with the crosscheck process: :func:`close_all` (called by the CLI
whatever happens, and at exit) kills their groups; if crosscheck is killed outright, a
guardian each worker forks first (see ``_BOOT``) kills its group, and on Linux the kernel
kills the worker too (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import os
import reprlib
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import weakref
from dataclasses import dataclass

import numpy as np

from crosscheck.cases import ROLES  # the roles of Inputs, tangents and cotangents included
from crosscheck.statuses import Status

__all__ = ["DEFAULT_TIMEOUT", "Answer", "BackendLoadError", "IsolatedBackend", "NotAnArray",
           "Returned", "call_in_process", "close_all", "is_out_of_tree", "load_backend"]

#: Seconds a backend may take on one case (``crosscheck run --timeout``).
DEFAULT_TIMEOUT = 60.0
#: Seconds a worker may take to start and import its backend (frameworks import slowly).
LOAD_TIMEOUT = 120.0

_MAGIC = b"XCKW"
_HEAD = struct.Struct("<4sQ")
_MAX_HEADER = 64 * 1024 * 1024


class BackendLoadError(RuntimeError):
    """An out-of-tree backend could not be imported or created in its worker."""


class WireError(Exception):
    """Bytes on the pipe that are not a frame of the wire format."""


class _Timeout(Exception):
    pass


class _Closed(Exception):
    pass


# ---- what a call gives back ------------------------------------------------------------------
@dataclass
class Answer:
    """What one backend did with one case, before any judging.

    Exactly one of: ``unsupported`` (its reason), ``status`` with ``reason`` (no answer:
    an aborted status, or ``failed`` when crosscheck could not call it), ``error`` (it
    raised: the headline, then the traceback) or ``outputs`` (whatever ``run``
    returned). ``modified`` names the inputs it changed, ``aliased`` the outputs that are
    views of an input.
    """

    outputs: object = None
    unsupported: str | None = None
    status: str | None = None
    reason: str | None = None
    error: str | None = None
    modified: tuple[str, ...] = ()
    aliased: tuple[str, ...] = ()
    seconds: float = 0.0


class NotAnArray:
    """An output a worker could not send as an array (an object, a string, ...)."""

    def __init__(self, description: str):
        self.description = description

    def __repr__(self) -> str:
        return self.description


class Returned:
    """What a worker's backend returned instead of a dict (described, not sent)."""

    def __init__(self, description: str):
        self.description = description

    def __repr__(self) -> str:
        return self.description


def describe(value) -> str:
    """A short description of a value a backend returned: its type and a clipped repr."""
    if isinstance(value, (NotAnArray, Returned)):
        return value.description
    return f"{type(value).__name__} {reprlib.repr(value)}"


def describe_exception(exc: BaseException) -> str:
    """The headline of a backend's exception (one line), then its traceback."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, ValueError) and ("read-only" in str(exc) or "WRITEABLE" in str(exc)):
        head = f"wrote to a read-only input (raised {text})"
    else:
        head = f"raised {text}"
    return head + "\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def private_copies(inputs):
    """Fresh read-only copies of ``inputs``' arrays, owned by nobody else."""
    from crosscheck.cases import Inputs

    return Inputs(*(None if a is None else _read_only(np.array(a, copy=True))
                    for a in (getattr(inputs, role) for role in ROLES)))


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def digest(a: np.ndarray | None) -> str | None:
    """A digest of an array's shape, dtype and bytes (None for None)."""
    if a is None:
        return None
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _same(given, pristine) -> bool:
    if given is None or pristine is None:
        return given is pristine
    return (given.shape == pristine.shape and given.dtype == pristine.dtype
            and given.tobytes() == pristine.tobytes())


def _views(outputs, given) -> list[str]:
    """Outputs that share memory with one of ``given``'s arrays, as ``"y (a view of x)"``."""
    if not isinstance(outputs, dict):
        return []
    found = []
    for key, value in outputs.items():
        if not isinstance(value, np.ndarray):
            continue
        for role in ROLES:
            a = getattr(given, role)
            if a is None or not np.may_share_memory(value, a):
                continue
            try:
                shared = np.shares_memory(value, a, max_work=100_000)
            except Exception:  # noqa: BLE001 - too hard to tell exactly: the bounds overlap
                shared = True
            if shared:
                found.append(f"{key} (a view of {role})")
    return found


# ---- in-process calls (built-in backends) ----------------------------------------------------
def call_in_process(backend, case, get_inputs) -> Answer:
    """Call ``backend`` on ``case`` in this process; ``get_inputs()`` gives the pristine inputs.

    ``unsupported`` is asked first, so a case no backend runs is never prepared.
    ``KeyboardInterrupt`` propagates: in this process it is the user's Ctrl-C.
    """
    from crosscheck.backends import Unsupported

    start = time.perf_counter()
    given = pristine = None
    try:
        reason = backend.unsupported(case)
        if reason:
            return Answer(unsupported=str(reason))
        try:
            pristine = get_inputs()
        except Exception as exc:  # noqa: BLE001 - crosscheck's problem, named as such
            return Answer(status=Status.FAILED.value,
                          reason="crosscheck could not make the inputs: "
                                 + describe_exception(exc).partition("raised ")[2])
        given = private_copies(pristine)
        out = backend.run(case, given)
        answer = Answer(outputs=out, aliased=tuple(_views(out, given)))
    except Unsupported as exc:
        return Answer(unsupported=str(exc) or "unsupported", seconds=time.perf_counter() - start)
    except SystemExit as exc:
        answer = Answer(status=Status.SYSTEM_EXIT.value,
                        reason=f"raised SystemExit({exc.code!r}) while running {case.id}")
    except Exception as exc:  # noqa: BLE001 - a raising backend is a failed case, the run goes on
        answer = Answer(error=describe_exception(exc))
    if given is not None:
        answer.modified = tuple(role for role in ROLES
                                if not _same(getattr(given, role), getattr(pristine, role)))
    answer.seconds = time.perf_counter() - start
    return answer


# ---- the wire format -------------------------------------------------------------------------
def encode(header: dict, arrays: dict | None = None) -> bytes:
    """One frame: magic and length, a JSON header, then each array in ``np.save`` format."""
    blobs = []
    for name, a in (arrays or {}).items():
        buf = io.BytesIO()
        np.save(buf, np.asarray(a), allow_pickle=False)
        blobs.append((name, buf.getvalue()))
    header = dict(header, arrays=[[name, len(blob)] for name, blob in blobs])
    head = json.dumps(header, allow_nan=True).encode()
    return b"".join([_HEAD.pack(_MAGIC, len(head)), head, *(blob for _, blob in blobs)])


def _decode(head: bytes, read) -> tuple[dict, dict]:
    try:
        header = json.loads(head.decode())
        specs = header.pop("arrays")
        if not isinstance(header, dict) or not isinstance(specs, list):
            raise ValueError("not a header")
        arrays = {}
        for name, size in specs:
            if not isinstance(name, str) or not isinstance(size, int) or size < 0:
                raise ValueError(f"bad array entry {name!r}")
            blob = read(size)
            # read_array: the .npy format only (np.load would also open zip archives).
            arrays[name] = np.lib.format.read_array(io.BytesIO(blob), allow_pickle=False)
    except (_Timeout, _Closed):
        raise
    except Exception as exc:  # noqa: BLE001 - anything malformed is a wire error
        raise WireError(f"malformed frame: {exc!r}") from exc
    return header, arrays


def read_frame(fd: int, deadline: float | None = None) -> tuple[dict, dict]:
    """Read one frame from ``fd``; :class:`_Timeout` past ``deadline``, :class:`_Closed` at EOF."""
    def read(n):
        return _read_exact(fd, n, deadline)

    magic, size = _HEAD.unpack(read(_HEAD.size))
    if magic != _MAGIC or size > _MAX_HEADER:
        raise WireError(f"not a frame (starts {magic!r})")
    return _decode(read(size), read)


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    buf = bytearray()
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while len(buf) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(max(1, int(left * 1000))):
                raise _Timeout
        chunk = os.read(fd, min(n - len(buf), 1 << 20))
        if not chunk:
            raise _Closed
        buf += chunk
    return bytes(buf)


def _write_all(fd: int, data: bytes, deadline: float | None) -> None:
    view = memoryview(data)
    poller = select.poll()
    poller.register(fd, select.POLLOUT | select.POLLERR)
    while view:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise _Timeout
        if not poller.poll(None if left is None else max(1, int(left * 1000))):
            raise _Timeout
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            continue
        except (BrokenPipeError, OSError) as exc:
            raise _Closed from exc
        view = view[n:]


# ---- the parent's side -----------------------------------------------------------------------
_LIVE: "weakref.WeakSet[IsolatedBackend]" = weakref.WeakSet()


def close_all() -> None:
    """Stop every worker this process started (and whatever their backends started)."""
    for backend in list(_LIVE):
        backend.close()


atexit.register(close_all)

# The worker's first act is to fork a guardian (before any import: nothing to inherit but
# the interpreter) that waits for EOF on the lifeline, a pipe whose write end only the
# crosscheck process holds: however crosscheck ends, even by SIGKILL, the guardian then kills
# the worker's process group, with whatever the backend started in it.
_BOOT = """import os, signal, sys
if os.fork() == 0:
    os.close(int(sys.argv[2])); os.close(int(sys.argv[3]))
    try:
        while os.read(int(sys.argv[5]), 1):
            pass
    except BaseException:
        pass
    os.killpg(0, signal.SIGKILL)
    os._exit(0)
import json
sys.path[:] = json.loads(sys.argv[1])
from crosscheck.isolation import _worker_main
_worker_main(sys.argv[2:])
"""
_lifeline: tuple[int, int, int] | None = None  # (pid, read end, write end)


def _lifeline_fd() -> int:
    """The read end of this process's lifeline (its write end is never passed on)."""
    global _lifeline
    if _lifeline is None or _lifeline[0] != os.getpid():
        read_end, write_end = os.pipe()
        _lifeline = (os.getpid(), read_end, write_end)
    return _lifeline[1]


class _Lost(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class IsolatedBackend:
    """A ``module:Class`` backend in a worker process, behind the backend protocol.

    :meth:`call` is what the runner uses; ``unsupported`` and ``run`` keep the 0.1.0
    protocol for other callers (``run`` raises :class:`RuntimeError` when the worker
    is lost). Constructing one starts the worker and imports the backend there:
    :class:`~crosscheck.backends.BackendUnavailable` when its module does not import,
    :class:`BackendLoadError` when it cannot be created.

    Parameters
    ----------
    spec : ``module:Class`` (or a built-in name, to isolate a built-in)
    timeout : seconds per case; None or 0 for no limit
    """

    isolated = True

    def __init__(self, spec: str, timeout: float | None = DEFAULT_TIMEOUT,
                 load_timeout: float | None = None):
        self.spec = spec
        self.timeout = timeout or None
        self.load_timeout = load_timeout or max(LOAD_TIMEOUT, self.timeout or 0)
        self.name, self._version = spec, "unknown"
        self.pids: list[int] = []  # every worker started, for diagnostics and tests
        self._proc: subprocess.Popen | None = None
        self._send = self._recv = None
        self._stderr = None
        self._broken: str | None = None
        self._start()

    # -- the protocol --
    def version(self) -> str:
        return self._version

    def unsupported(self, case) -> str | None:
        answer = self._ask(case, None)
        if answer.status or answer.error:
            raise RuntimeError(answer.reason or answer.error)
        return answer.unsupported

    def run(self, case, inputs) -> dict:
        answer = self._ask(case, inputs)
        if answer.status or answer.error:
            raise RuntimeError(answer.reason or answer.error)
        if answer.unsupported is not None:
            from crosscheck.backends import Unsupported

            raise Unsupported(answer.unsupported)
        return answer.outputs

    # -- what the runner uses --
    def call(self, case, inputs) -> Answer:
        """Have the worker run ``case`` on ``inputs`` (the pristine arrays: never changed)."""
        return self._ask(case, inputs)

    @property
    def pid(self) -> int | None:
        """The current worker's process id (its process group's too), or None."""
        return self._proc.pid if self._proc is not None else None

    def close(self) -> None:
        """Stop the worker and its process group; the next call starts a new one."""
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        for fd in (self._send, self._recv):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._send = self._recv = None
        if proc is not None:
            try:
                proc.wait(timeout=0.5)  # EOF on its pipe ends a worker that is waiting
            except subprocess.TimeoutExpired:
                pass
            _kill_group(proc)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    # -- internals --
    def _start(self) -> None:
        from crosscheck.backends import BackendUnavailable

        self.close()
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        self._stderr = tempfile.TemporaryFile()
        lifeline = _lifeline_fd()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, json.dumps(sys.path), str(child_in),
                 str(child_out), str(os.getpid()), str(lifeline)],
                pass_fds=(child_in, child_out, lifeline), stdin=subprocess.DEVNULL,
                stdout=self._stderr, stderr=self._stderr, start_new_session=True)
        except BaseException:
            for fd in (to_child, from_child):
                os.close(fd)
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        os.set_blocking(to_child, False)
        self._send, self._recv = to_child, from_child
        self.pids.append(self._proc.pid)
        _LIVE.add(self)
        try:
            reply, _ = self._exchange({"op": "load", "spec": self.spec}, {}, self.load_timeout)
        except _Lost as lost:
            raise BackendLoadError(f"{lost.reason} while loading {self.spec}"
                                   + self._stderr_tail()) from None
        finally:
            if self._proc is None:
                self.close()
        if not reply.get("ok"):
            self.close()
            message = str(reply.get("message"))
            if reply.get("kind") == "unavailable":
                raise BackendUnavailable(message)
            if reply.get("kind") == "unknown":
                raise ValueError(message)
            raise BackendLoadError(message)
        self.name = str(reply.get("name") or self.spec)
        self._version = str(reply.get("version"))

    def _ask(self, case, inputs) -> Answer:
        start = time.perf_counter()
        if self._proc is None:
            if self._broken:
                return Answer(status=Status.FAILED.value, reason=self._broken)
            try:
                self._start()
            except Exception as exc:  # noqa: BLE001 - the backend's failure, on it alone
                self._broken = (f"not run: its worker could not be restarted ({exc}); "
                                "every later case of this backend is marked the same way")
                return Answer(status=Status.FAILED.value, reason=self._broken)
        arrays = {} if inputs is None else {role: getattr(inputs, role) for role in ROLES
                                            if getattr(inputs, role) is not None}
        header = {"op": "call", "case": case.to_json(), "unsupported_only": inputs is None}
        try:
            reply, outs = self._exchange(header, arrays, self.timeout)
        except _Lost as lost:
            return Answer(status=lost.status, reason=f"{lost.reason} while running {case.id}"
                          + self._stderr_tail(), seconds=time.perf_counter() - start)
        finally:
            if self._proc is None:
                self.close()
        seconds = time.perf_counter() - start
        kind = reply.get("kind")
        if kind in (Status.SYSTEM_EXIT.value, Status.KEYBOARD_INTERRUPT.value):
            self.close()  # replaced: the backend was stopped half way through something
            what = "SystemExit" if kind == Status.SYSTEM_EXIT.value else "KeyboardInterrupt"
            detail = f"({reply.get('code')})" if kind == Status.SYSTEM_EXIT.value else ""
            return Answer(status=kind, reason=f"raised {what}{detail} while running {case.id}",
                          seconds=seconds)
        modified = tuple(role for role, a in arrays.items()
                         if (reply.get("digests") or {}).get(role, digest(a)) != digest(a))
        if kind == "unsupported":
            reason = reply.get("reason")  # None: asked only whether it is (and it is) supported
            return Answer(unsupported=None if reason is None else str(reason), seconds=seconds)
        if kind == "raised":
            return Answer(error=str(reply.get("error")), modified=modified, seconds=seconds)
        if kind != "outputs":
            self.close()
            return Answer(status=Status.PROTOCOL_ERROR.value,
                          reason=f"its worker answered {reprlib.repr(kind)} while running "
                                 f"{case.id}", seconds=seconds)
        returned = reply.get("returned") or {}
        if returned.get("type") != "dict":
            outputs = None if returned.get("type") == "NoneType" else \
                Returned(str(returned.get("description")))
        else:
            outputs = {}
            for key, note in (returned.get("keys") or {}).items():
                outputs[key] = outs[key] if note is None and key in outs else \
                    NotAnArray(str(note))
        return Answer(outputs=outputs, modified=modified,
                      aliased=tuple(str(a) for a in reply.get("aliased") or ()),
                      seconds=seconds)

    def _exchange(self, header: dict, arrays: dict, timeout: float | None):
        deadline = None if not timeout else time.monotonic() + timeout
        try:
            _write_all(self._send, encode(header, arrays), deadline)
            return read_frame(self._recv, deadline)
        except _Timeout:
            pid = self._proc.pid
            _kill_group(self._proc)
            self._proc = None
            raise _Lost(Status.TIMEOUT.value, f"it gave no answer within {timeout:g} s "
                        f"(its worker, pid {pid}, was stopped)") from None
        except _Closed:
            status, reason = self._reap()
            raise _Lost(status, reason) from None
        except WireError as exc:
            _kill_group(self._proc)
            self._proc = None
            raise _Lost(Status.PROTOCOL_ERROR.value,
                        f"its worker's answer is not in the wire format ({exc}): the backend "
                        "wrote into crosscheck's pipe") from None
        except BaseException:
            # Ctrl-C or SIGTERM of crosscheck itself, mid-call: the worker goes with it.
            _kill_group(self._proc)
            self._proc = None
            raise

    def _reap(self) -> tuple[str, str]:
        proc, self._proc = self._proc, None
        try:
            code = proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return (Status.PROTOCOL_ERROR.value,
                    f"it closed crosscheck's pipe (its worker, pid {proc.pid}, was stopped)")
        _kill_group(proc)  # whatever the backend started in its group
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            what = signal.strsignal(-code) or name
            return Status.CRASHED.value, (f"its worker process was killed by signal {name} "
                                          f"({-code}, {what}; pid {proc.pid})")
        return Status.EXITED.value, (f"it ended its worker process with exit code {code} "
                                     f"(pid {proc.pid})")

    def _stderr_tail(self, lines: int = 12) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 4096))
            text = self._stderr.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""
        if not text:
            return ""
        return "\nits worker's last output:\n" + "\n".join(text.splitlines()[-lines:])

    def __del__(self):  # pragma: no cover - close() is the way; this is a safety net
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


def _kill_group(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not refused
        pass


def is_out_of_tree(name: str) -> bool:
    """Whether ``name`` is a ``module:Class`` backend rather than one of the registry's."""
    from crosscheck.backends import BUILTIN

    return name not in BUILTIN


def load_backend(name: str, *, timeout: float | None = DEFAULT_TIMEOUT,
                 isolate_builtins: bool = False):
    """The backend called ``name``: out-of-tree ones (and built-ins if asked) in a worker."""
    from crosscheck.backends import BUILTIN, get_backend

    if is_out_of_tree(name) and ":" not in name:
        return get_backend(name)  # the registry's "unknown backend" error
    if is_out_of_tree(name) or isolate_builtins:
        return IsolatedBackend(BUILTIN.get(name, name) if not is_out_of_tree(name) else name,
                               timeout=timeout)
    return get_backend(name)


# ---- the worker's side -----------------------------------------------------------------------
def _worker_main(argv: list[str]) -> None:
    import faulthandler

    read_fd, write_fd, parent, lifeline = (int(a) for a in argv[:4])
    os.close(lifeline)  # the guardian watches it
    _die_with_parent(parent)
    faulthandler.enable()  # a segfault's Python traceback goes to stderr, which the parent keeps
    header, _ = read_frame(read_fd)
    backend, reply = _load(str(header.get("spec")))
    _send_blocking(write_fd, encode(reply))
    if backend is None:
        return
    while True:
        try:
            header, arrays = read_frame(read_fd)
        except (_Closed, WireError):
            return
        reply, outs = _serve(backend, header, arrays)
        try:
            frame = encode(reply, outs)
        except Exception as exc:  # noqa: BLE001 - e.g. an output np.save cannot write
            frame = encode({"kind": "raised", "digests": reply.get("digests"),
                            "error": f"returned outputs crosscheck cannot send: {exc!r}"})
        _send_blocking(write_fd, frame)


def _send_blocking(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this worker when its parent dies (the guardian would too)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the guardian alone does it
        pass
    if os.getppid() != parent:
        os._exit(0)


def _load(spec: str):
    from crosscheck.backends import BackendUnavailable, get_backend

    try:
        backend = get_backend(spec)
    except BackendUnavailable as exc:
        return None, {"ok": False, "kind": "unavailable", "message": str(exc)}
    except ValueError as exc:
        return None, {"ok": False, "kind": "unknown", "message": str(exc)}
    except BaseException as exc:  # noqa: BLE001 - SystemExit too: report, then end
        return None, {"ok": False, "kind": "create", "message": repr(exc)}
    try:
        version = str(backend.version())
    except BaseException as exc:  # noqa: BLE001 - a report must not die on a version string
        version = f"unknown ({exc!r})"
    return backend, {"ok": True, "name": str(getattr(backend, "name", spec)),
                     "version": version}


def _serve(backend, header: dict, arrays: dict) -> tuple[dict, dict]:
    from crosscheck.backends import Unsupported
    from crosscheck.cases import Case, Inputs

    case = Case.from_json(header["case"])
    given = Inputs(*(_read_only(np.array(arrays[role], copy=True)) if role in arrays else None
                     for role in ROLES))

    def digests():
        return {role: digest(getattr(given, role)) for role in arrays}

    try:
        reason = backend.unsupported(case)
        if reason or header.get("unsupported_only"):
            return {"kind": "unsupported", "reason": None if not reason else str(reason)}, {}
        out = backend.run(case, given)
    except Unsupported as exc:
        return {"kind": "unsupported", "reason": str(exc) or "unsupported"}, {}
    except SystemExit as exc:
        return {"kind": Status.SYSTEM_EXIT.value, "code": repr(exc.code)}, {}
    except KeyboardInterrupt:
        return {"kind": Status.KEYBOARD_INTERRUPT.value}, {}
    except BaseException as exc:  # noqa: BLE001 - reported, judged by the parent
        return {"kind": "raised", "error": describe_exception(exc), "digests": digests()}, {}
    reply = {"kind": "outputs", "digests": digests(), "aliased": _views(out, given)}
    if not isinstance(out, dict):
        reply["returned"] = {"type": type(out).__name__, "description": describe(out)}
        return reply, {}
    keys, outs = {}, {}
    for key, value in out.items():
        name = str(key)
        try:
            a = np.asarray(value)
            if a.dtype.kind not in "biufc":
                raise TypeError(a.dtype)
        except Exception:  # noqa: BLE001 - described instead of sent
            keys[name] = describe(value)
            continue
        keys[name] = None
        outs[name] = a
    reply["returned"] = {"type": "dict", "keys": keys}
    return reply, outs
