"""Helpers shared by the cross-framework sweep tests: backend loading, parametrization."""

from __future__ import annotations

import zlib

import pytest

from crosscheck.backends import REGISTRY, BackendUnavailable, get_backend

#: Every built-in backend; each runs on every ``REGISTRY[name].every``-th geometry.
SWEEP_BACKENDS = tuple(REGISTRY)


def load_backend(name: str):
    """The backend, or a pytest skip that says why it is unavailable."""
    try:
        return get_backend(name)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


def case_params(cases, backends=SWEEP_BACKENDS):
    """pytest params ``(case, backend)`` with ids ``backend-caseid``, grouped by geometry."""
    params = []
    for case in cases:
        key = zlib.crc32(case.compile_key.encode())
        for name in backends:
            if key % REGISTRY[name].every if name in REGISTRY else 0:
                continue
            params.append(pytest.param(
                case, name, id=f"{name}-{case.id}",
                marks=pytest.mark.xdist_group(case.compile_key)))
    return params
