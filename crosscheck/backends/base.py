"""The backend protocol: what every implementation under test provides.

A backend takes canonical NumPy arrays (NHWC data, HWIO weights, float64
holding values exact in the case's dtype), computes in the case's dtype in its
own layout, and returns float64 NumPy arrays in canonical layout.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from crosscheck.cases import Case, Inputs

#: Output names per (op, direction): what :meth:`Backend.run` returns.
OUTPUTS = {
    ("conv2d", "forward"): ("y",),
    ("conv2d", "backward"): ("dx", "dw", "db"),
    ("max_pool2d", "forward"): ("y",),
    ("max_pool2d", "backward"): ("dx",),
    ("avg_pool2d", "forward"): ("y",),
    ("avg_pool2d", "backward"): ("dx",),
}


def output_names(case: Case) -> tuple[str, ...]:
    names = OUTPUTS[(case.op, case.direction)]
    if case.is_conv and case.direction == "backward" and not case.bias:
        names = ("dx", "dw")
    return names


class Unsupported(Exception):
    """Raised by a backend for a case it cannot express; the message says why."""


@runtime_checkable
class Backend(Protocol):
    """One implementation under test.

    Attributes
    ----------
    name : str
        Short name used in test ids and reports (``torch``, ``jax``, ``refcnn``).
    """

    name: str

    def version(self) -> str:
        """Version string of the implementation (for reports)."""

    def unsupported(self, case: Case) -> str | None:
        """Why this backend cannot run ``case``, or None when it can."""

    def run(self, case: Case, inputs: Inputs) -> dict[str, np.ndarray]:
        """Compute ``case`` on ``inputs``.

        Returns
        -------
        dict
            Forward: ``{"y": (N, H_out, W_out, C_out)}``. Backward conv:
            ``{"dx": (N, H, W, C_in), "dw": (f_h, f_w, C_in/groups, C_out),
            "db": (C_out,)}`` (no ``db`` without bias); backward pool:
            ``{"dx": (N, H, W, C)}``. All float64, canonical layout.
        """
