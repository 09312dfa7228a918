"""Backend registry: names to lazily imported backend factories.

``get_backend(name)`` imports the framework only when asked; a framework that
is not installed raises :class:`BackendUnavailable` with the reason, which the
test suite turns into a skip and the CLI into a note.
"""

from __future__ import annotations

import importlib

from crosscheck.backends.base import Backend, Unsupported, output_names

#: name -> "module:factory", imported on first use.
BUILTIN = {
    "refcnn": "crosscheck.backends.refcnn_backend:RefcnnBackend",
    "refcnn.loops": "crosscheck.backends.refcnn_backend:LoopsBackend",
    "torch": "crosscheck.backends.torch_backend:TorchBackend",
    "jax": "crosscheck.backends.jax_backend:JaxBackend",
    "jax.nchw": "crosscheck.backends.jax_backend:JaxNchwBackend",
}


class BackendUnavailable(Exception):
    """The backend's framework is not installed or failed to import."""


_cache: dict[str, Backend] = {}


def get_backend(name: str) -> Backend:
    """Return the backend called ``name`` (a built-in name or ``module:Class``)."""
    if name in _cache:
        return _cache[name]
    target = BUILTIN.get(name, name)
    if ":" not in target:
        raise ValueError(
            f"unknown backend {name!r}: use one of {sorted(BUILTIN)} or 'module:Class'"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(f"backend {name!r} is unavailable: {exc}") from exc
    backend = getattr(module, attr)()
    _cache[name] = backend
    return backend


def available_backends(names=None) -> dict[str, Backend | str]:
    """Each name mapped to its backend, or to the reason it is unavailable."""
    found = {}
    for name in names or BUILTIN:
        try:
            found[name] = get_backend(name)
        except BackendUnavailable as exc:
            found[name] = str(exc)
    return found


__all__ = ["Backend", "BackendUnavailable", "Unsupported", "available_backends",
           "get_backend", "output_names", "BUILTIN"]
