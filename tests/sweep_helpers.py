"""Helpers shared by the cross-framework sweep tests: backend loading, parametrization."""

from __future__ import annotations

import pytest

from crosscheck.backends import BackendUnavailable, get_backend

#: Backends every sweep case runs on; ``jax.nchw`` (the NCHW adapter path) on a subset.
SWEEP_BACKENDS = ("refcnn", "refcnn.loops", "torch", "jax")
NCHW_EVERY = 4


def load_backend(name: str):
    """The backend, or a pytest skip that says why it is unavailable."""
    try:
        return get_backend(name)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


def case_params(cases, backends=SWEEP_BACKENDS):
    """pytest params ``(case, backend)`` with ids ``backend-caseid``, grouped by geometry."""
    params = []
    geometries = {}
    for case in cases:
        index = geometries.setdefault(case.compile_key, len(geometries))
        names = list(backends)
        if "jax" in names and index % NCHW_EVERY == 0:
            names.append("jax.nchw")
        for name in names:
            params.append(pytest.param(
                case, name, id=f"{name}-{case.id}",
                marks=pytest.mark.xdist_group(case.compile_key)))
    return params
