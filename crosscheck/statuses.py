"""The statuses a result can have: one enum, compared and printed as its plain string."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """What became of one backend on one case.

    ``passed``: every output within its bound. ``failed``: an output outside its
    bound, a crash, or a declared divergence that did not show (the declaration is
    out of date). ``divergent``: disagrees with the reference where the backend
    declares another convention, or where a registered bug of its framework applies.
    ``unsupported``: the backend cannot express the case (with its reason).
    """

    PASSED = "passed"
    FAILED = "failed"
    DIVERGENT = "divergent"
    UNSUPPORTED = "unsupported"

    def __str__(self) -> str:
        return self.value


#: Statuses in report order.
STATUSES = tuple(s.value for s in Status)
