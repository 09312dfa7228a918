"""The statuses a result can have: one enum, compared and printed as its plain string."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """What became of one backend on one case.

    Judged against the reference: ``passed``: every output within its bound.
    ``failed``: an output outside its bound or missing, an exception, a modified
    input or an output that is a view of an input, or a declared divergence that
    did not show (the declaration is out of date). ``divergent``: disagrees with the
    reference where the backend declares another convention, or where a registered
    bug of its framework applies.

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
JUDGED = (Status.PASSED.value, Status.FAILED.value, Status.DIVERGENT.value)
#: The backend gave no answer: its worker was lost or stopped, or it raised an exit.
ABORTED = (Status.CRASHED.value, Status.EXITED.value, Status.TIMEOUT.value,
           Status.SYSTEM_EXIT.value, Status.KEYBOARD_INTERRUPT.value,
           Status.PROTOCOL_ERROR.value)
#: Statuses that make ``crosscheck run`` exit 1.
FAILING = (Status.FAILED.value, *ABORTED)
