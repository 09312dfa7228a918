"""What keeps a long run's memory flat: compact results and recycled compiled functions.

The full sweep judges hundreds of thousands of results and compiles thousands of
geometries; 0.1.0 crashed on it once its live JAX executables had used up the
process's memory maps (``vm.max_map_count``). A run therefore

* keeps each result trimmed by :func:`compact` to what the reports read: no outputs, and
  for a result the reports print slim (passed or unsupported, see
  :meth:`crosscheck.runner.CaseResult.to_dict`) no reproducer per output (its case id
  reruns it: ``crosscheck run --case ID``); strings that repeat from result to result
  (case ids, bounds, unsupported reasons) are shared. Verdicts, figures and reasons are
  untouched;
* drops every backend's compiled functions (``clear_compiled()``, where a backend has
  it: JAX's executables, TensorFlow's kernels) once :data:`RECYCLE_AT` of them are alive,
  at a point of the case list where no compile key is left unfinished
  (:class:`Recycler`), so that nothing is compiled twice, and hands the freed heap back
  to the system;
* holds its results in a :class:`ResultStore`: a case whose results are all slim is
  pickled to an unlinked temporary file, and only its place there stays in memory (the
  others, failures and declared divergences, which the reports detail, stay as they are).
  Reports read the results back, in case order, each time they go over them.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace

from crosscheck.statuses import Status

__all__ = ["SLIM", "RECYCLE_AT", "compact", "Recycler", "recycle", "ResultStore"]

#: Statuses whose results the reports write without reproducers or spec.
SLIM = (Status.PASSED, Status.UNSUPPORTED)

#: Compiled functions alive (JAX's count, both layouts) at which a run drops them all.
RECYCLE_AT = 64


def compact(results: list) -> list:
    """Trim ``results`` (of one or more cases) in place for keeping; returns them."""
    for r in results:
        r.outputs = None
        r.backend = _share(r.backend)
        if r.status == Status.UNSUPPORTED and r.reason:
            r.reason = _share(r.reason)
        if r.status in SLIM and r.discrepancies:
            r.discrepancies = [_slim(d, r.backend) for d in r.discrepancies]
    return results


def _slim(d, backend: str):
    if not d.reproduce and d.backend is backend:
        return d
    return replace(d, case_id=_share(d.case_id), backend=backend, output=_share(d.output),
                   bound=_share(d.bound), reproduce="")


def _share(text):
    return sys.intern(text) if type(text) is str else text


def alive(backends) -> int:
    """The most compiled functions any of ``backends`` holds (0 for those that do not say)."""
    counts = [_call(be, "compiled_count") for be in backends]
    return max([c for c in counts if isinstance(c, int)], default=0)


def recycle(backends, at: int | None = None) -> bool:
    """``clear_compiled()`` on every backend that has it, when ``at`` (default
    :data:`RECYCLE_AT`) or more compiled functions are alive; whether it did. Call it only
    between compile keys: a key's next case would compile again."""
    backends = list(backends)
    if alive(backends) < (RECYCLE_AT if at is None else at):
        return False
    for be in backends:
        _call(be, "clear_compiled")
    _trim()
    return True


def _trim() -> None:
    """Hand the heap's free pages back to the system (glibc), which the freed executables
    would otherwise leave scattered over it: without it the resident size creeps up."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


class Recycler:
    """Calls :func:`recycle` after the cases of a case list where that compiles nothing
    twice: where every compile key met so far has had its last case.

    ``after(i)`` is called once the ``i``-th case is done, in order.
    """

    def __init__(self, cases, backends):
        self.backends = list(backends)
        self._last: dict[str, int] = {}
        self._keys = []
        for i, case in enumerate(cases):
            key = case.compile_key
            self._keys.append(key)
            self._last[key] = i
        self._open_until = -1
        self.recycled = 0

    def after(self, i: int) -> bool:
        self._open_until = max(self._open_until, self._last[self._keys[i]])
        if i < self._open_until or not recycle(self.backends):
            return False
        self.recycled += 1
        return True


def _call(backend, method):
    fn = getattr(backend, method, None)
    if not callable(fn):
        return None
    try:
        return fn()
    except Exception:  # noqa: BLE001 - recycling saves memory; it never fails a run
        return None


class ResultStore:
    """Each case's results by its index in the case list, in memory only where they are not
    all slim (:data:`SLIM`); the rest pickled to an unlinked temporary file.

    ``store[i] = results``, ``len(store)`` (cases stored), ``i in store``, iteration over
    the indices, and :meth:`results` (every result, in case order).
    """

    def __init__(self):
        self._entries: dict[int, list | tuple[int, int]] = {}
        self._results = 0
        self._file = None
        self._end = 0

    def __setitem__(self, index: int, results: list) -> None:
        results = list(results)
        old = self._entries.get(index)
        if old is not None:
            self._results -= len(old) if isinstance(old, list) else old[2]
        self._results += len(results)
        if results and all(r.status in SLIM for r in results):
            data = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="crosscheck-results-")
            os.pwrite(self._file.fileno(), data, self._end)
            self._entries[index] = (self._end, len(data), len(results))
            self._end += len(data)
        else:
            self._entries[index] = results

    def __getitem__(self, index: int) -> list:
        entry = self._entries[index]
        if isinstance(entry, list):
            return entry
        offset, length, _ = entry
        return pickle.loads(os.pread(self._file.fileno(), length, offset))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, index) -> bool:
        return index in self._entries

    def __iter__(self):
        return iter(list(self._entries))

    def spilled_bytes(self) -> int:
        """Bytes of pickled results in the temporary file."""
        return self._end

    def results(self) -> Results:
        """Every result stored now, in case order (read back on each pass over them)."""
        return Results(self, sorted(self._entries), self._results)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Results(Sequence):
    """The results of a :class:`ResultStore` as a read-only sequence, in case order; each pass
    reads the spilled ones back (so none of them stays in memory between passes)."""

    def __init__(self, store: ResultStore, indices: list[int], count: int):
        self._store, self._indices, self._count = store, indices, count

    def __len__(self) -> int:
        return self._count

    def __iter__(self):
        for i in self._indices:
            yield from self._store[i]

    def __getitem__(self, k):
        if isinstance(k, slice):
            return list(self)[k]
        if k < 0:
            k += self._count
        if not 0 <= k < self._count:
            raise IndexError(k)
        for n, r in enumerate(self):
            if n == k:
                return r

    def __eq__(self, other) -> bool:
        return isinstance(other, (list, tuple, Results)) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"<{self._count} results of {len(self._indices)} cases>"
