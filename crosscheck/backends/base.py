"""The backend protocol: what every implementation under test provides.

A backend takes canonical NumPy arrays (channels-last data ``(N, *spatial, C)``,
weights ``(*kernel, C_in/groups, C_out)``, float64 holding values exact in the
case's dtype), computes in the case's dtype in its own layout, and returns float64
NumPy arrays in canonical layout (int64 for max-pool indices).

This is the protocol of release 0.1.0 and stays so: an out-of-tree ``module:Class``
with ``name``, ``version()``, ``unsupported(case)`` and ``run(case, inputs)`` is a
backend. Built-in backends are per-op tables behind :class:`crosscheck.backends.driver.TableBackend`,
which implements this protocol for them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from crosscheck.cases import Case, Inputs


def output_names(case: Case) -> tuple[str, ...]:
    """What :meth:`Backend.run` returns for ``case`` (from the op table)."""
    return case.output_names()


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
        """Compute ``case`` on ``inputs`` (read-only arrays: copy before writing).

        Returns
        -------
        dict
            Forward: ``{"y": (N, *out, C_out)}`` plus ``"indices"`` (int, same shape)
            for max pools asked for them. Backward conv: ``{"dx": x's shape,
            "dw": w's shape, "db": (C_out,)}`` (no ``db`` without bias); backward
            pool: ``{"dx": x's shape}``. Float64, canonical layout.
        """
