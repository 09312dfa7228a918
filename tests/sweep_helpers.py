"""Helpers shared by the cross-framework sweep tests: backend loading, parametrization."""

from __future__ import annotations

import pytest

from crosscheck.backends import BackendUnavailable, get_backend
from crosscheck.cases import Case

#: Backends every sweep case runs on; ``jax.nchw`` (the NCHW adapter path) on a subset.
SWEEP_BACKENDS = ("refcnn", "refcnn.loops", "torch", "jax")
NCHW_EVERY = 4


def load_backend(name: str):
    """The backend, or a pytest skip that says why it is unavailable."""
    try:
        return get_backend(name)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


def geometry_key(case: Case) -> str:
    """Cases sharing this key share JAX's compiled functions: keep them on one worker."""
    return case.with_(seed=0, direction="forward").id


def case_params(cases, backends=SWEEP_BACKENDS):
    """pytest params ``(case, backend)`` with ids ``backend-caseid``, grouped by geometry."""
    params = []
    geometries = {}
    for case in cases:
        index = geometries.setdefault(geometry_key(case), len(geometries))
        names = list(backends)
        if "jax" in names and index % NCHW_EVERY == 0:
            names.append("jax.nchw")
        for name in names:
            params.append(pytest.param(
                case, name, id=f"{name}-{case.id}",
                marks=pytest.mark.xdist_group(geometry_key(case))))
    return params
