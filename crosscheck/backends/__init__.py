"""Backend registry: the one list of built-in backends, imported lazily by name.

``get_backend(name)`` imports the framework only when asked; a framework that
is not installed raises :class:`BackendUnavailable` with the reason, which the
test suite turns into a skip and the CLI into a note. Every list of backends
(CLI help and defaults, the pytest sweep, reports, tests) comes from
:data:`REGISTRY`; adding a backend is one module plus one line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from crosscheck.backends.base import Backend, Unsupported, output_names


@dataclass(frozen=True)
class Registered:
    """One built-in backend.

    Attributes
    ----------
    target : ``"module:Class"``, imported on first use
    framework : the package whose version the reports print (``torch``, ``jax``, ...)
    summary : one line for the CLI's help
    every : the pytest sweep runs it on every ``every``-th geometry (1: all of them)
    """

    target: str
    framework: str
    summary: str
    every: int = 1


REGISTRY: dict[str, Registered] = {
    "refcnn": Registered("crosscheck.backends.refcnn_backend:RefcnnBackend", "refcnn",
                         "refcnn's fast 2-D path and rank-generic functions"),
    "refcnn.loops": Registered("crosscheck.backends.refcnn_backend:LoopsBackend", "refcnn",
                               "the notebook API as plain loops (2-D, small shapes)"),
    "torch": Registered("crosscheck.backends.torch_backend:TorchBackend", "torch",
                        "torch.nn.functional, NCHW"),
    "jax": Registered("crosscheck.backends.jax_backend:JaxBackend", "jax",
                      "jax.lax, channels-last"),
    "jax.nchw": Registered("crosscheck.backends.jax_backend:JaxNchwBackend", "jax",
                           "jax.lax through NCHW adapters", every=4),
    "tensorflow": Registered("crosscheck.backends.tensorflow_backend:TensorflowBackend",
                             "tensorflow", "tf.nn on CPU, channels-last, eager"),
    "onnxruntime": Registered("crosscheck.backends.onnx_backend:OnnxRuntimeBackend",
                              "onnxruntime", "ONNX Runtime CPU, one-node graphs, forward only"),
    "onnx.reference": Registered("crosscheck.backends.onnx_backend:OnnxReferenceBackend", "onnx",
                                 "onnx.reference.ReferenceEvaluator, forward only"),
}

#: name -> "module:Class" (0.1.0's form of the registry).
BUILTIN = {name: r.target for name, r in REGISTRY.items()}


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
        # Constructing may import too (onnxruntime: not needed by onnx.reference).
        backend = getattr(module, attr)()
    except ImportError as exc:
        raise BackendUnavailable(f"backend {name!r} is unavailable: {exc}") from exc
    _cache[name] = backend
    return backend


def available_backends(names=None) -> dict[str, Backend | str]:
    """Each name mapped to its backend, or to the reason it is unavailable."""
    found = {}
    for name in names or REGISTRY:
        try:
            found[name] = get_backend(name)
        except BackendUnavailable as exc:
            found[name] = str(exc)
    return found


__all__ = ["Backend", "BackendUnavailable", "Unsupported", "available_backends",
           "get_backend", "output_names", "BUILTIN", "REGISTRY", "Registered"]
