"""Statuses as enums, compared, printed and serialised (JSON) as their plain strings.

:class:`Status`: one backend on one case of ``crosscheck run``; :class:`ConformStatus`:
one case of ``crosscheck conform``, and :class:`ConformVerdict`: conform's verdict on a
function. Where a serialiser takes only built-in types (execnet, under pytest-xdist),
send ``str(status)``.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """What became of one backend on one case.

    Judged against the reference: ``passed``: every output within its bound.
    ``failed``: an output outside its bound or missing, an exception, a modified
    input or an output that is a view of an input, or a declared divergence that
    did not show (the declaration is out of date). ``divergent``: disagrees with the
    reference where the backend declares another convention, or where a registered
    bug of its framework applies. ``mistrusted``: every output was within its bound, but
    the reference is degenerate (mostly zeros, or all equal: :mod:`crosscheck.trust`), so
    the agreement cannot tell a right kernel from a wrong one; it never counts as a pass.

    Not judged: ``unsupported``: the backend cannot express the case (with its
    reason). The backend gave no answer, each its own way (the reason says which
    case, and the signal or exit code): ``crashed`` (its worker process was killed
    by a signal: a segfault), ``exited`` (it ended its worker process: ``os._exit``),
    ``timeout`` (no answer within ``--timeout``: its worker was stopped),
    ``system-exit`` (it raised ``SystemExit``), ``keyboard-interrupt`` (it raised
    ``KeyboardInterrupt``), ``protocol-error`` (its worker's answer was not in the
    wire format: the backend wrote into crosscheck's pipe).
    """

    PASSED = "passed"
    FAILED = "failed"
    DIVERGENT = "divergent"
    MISTRUSTED = "mistrusted"
    UNSUPPORTED = "unsupported"
    CRASHED = "crashed"
    EXITED = "exited"
    TIMEOUT = "timeout"
    SYSTEM_EXIT = "system-exit"
    KEYBOARD_INTERRUPT = "keyboard-interrupt"
    PROTOCOL_ERROR = "protocol-error"

    def __str__(self) -> str:
        return self.value


#: Statuses in report order.
STATUSES = tuple(s.value for s in Status)
#: Compared with the reference (a verdict was reached on the backend's outputs).
JUDGED = (Status.PASSED.value, Status.FAILED.value, Status.DIVERGENT.value,
          Status.MISTRUSTED.value)
#: The backend gave no answer: its worker was lost or stopped, or it raised an exit.
ABORTED = (Status.CRASHED.value, Status.EXITED.value, Status.TIMEOUT.value,
           Status.SYSTEM_EXIT.value, Status.KEYBOARD_INTERRUPT.value,
           Status.PROTOCOL_ERROR.value)
#: Statuses that make ``crosscheck run`` exit 1.
FAILING = (Status.FAILED.value, *ABORTED)


class ConformStatus(str, Enum):
    """What became of one case of ``crosscheck conform`` (:mod:`crosscheck.conform`).

    A second enum, not more members of :class:`Status`: a conform case judges one function
    of a notebook-API target, not a backend, so neither set fits the other (a conform case
    is never ``divergent``, ``mistrusted`` or ``unsupported``; a run result is never
    ``reported``, ``skipped``, ``import-failed`` or ``interrupted``), and each enum lists
    exactly what its reports count. Where both have a status, it means the same and is
    spelled the same (the values below are :class:`Status`'s).

    ``passed``, ``failed`` (a wrong shape or value, a modified input, an exception),
    ``reported`` (a strict convention probe: never a failure); the target ended or lost
    its process: ``timeout``, ``crashed``, ``exited``, ``protocol-error``, as for a run;
    it raised ``SystemExit`` (``system-exit``) or ``KeyboardInterrupt``
    (``keyboard-interrupt``); or the case did not run: ``skipped`` (an earlier case of
    the same function timed out or ended the process), ``import-failed`` (importing the
    target again for a new worker failed), ``interrupted`` (crosscheck conform was
    stopped first).
    """

    PASSED = Status.PASSED.value
    FAILED = Status.FAILED.value
    REPORTED = "reported"
    TIMEOUT = Status.TIMEOUT.value
    CRASHED = Status.CRASHED.value
    EXITED = Status.EXITED.value
    PROTOCOL_ERROR = Status.PROTOCOL_ERROR.value
    SYSTEM_EXIT = Status.SYSTEM_EXIT.value
    KEYBOARD_INTERRUPT = Status.KEYBOARD_INTERRUPT.value
    SKIPPED = "skipped"
    IMPORT_FAILED = "import-failed"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value


class ConformVerdict(str, Enum):
    """``crosscheck conform``'s verdict on one function of a target, from its cases'
    statuses: ``not conformant`` (a failing case), ``incomplete`` (no failing case, but a
    case that never ran), ``conformant``, or ``not provided`` (the target lacks it)."""

    CONFORMANT = "conformant"
    NOT_CONFORMANT = "not conformant"
    NOT_PROVIDED = "not provided"
    INCOMPLETE = "incomplete"

    def __str__(self) -> str:
        return self.value
