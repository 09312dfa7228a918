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
                         "refcnn's fast path (convs and transposed convs of 1-3 dims, 2-D "
                         "pools) and rank-generic functions"),
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


class BackendIncomplete(ValueError):
    """A ``module:Class`` that lacks members of the backend protocol (the message names them)."""


class DeviceUnavailable(ValueError):
    """The device asked for (``crosscheck run --device``) is not there; the message says what
    is missing."""


#: The members every backend has (:class:`crosscheck.backends.base.Backend`): ``name`` a
#: non-empty string, the others callables.
MEMBERS = ("name", "version", "unsupported", "run")
#: The device ``crosscheck run --device`` asks for: ``cpu``, ``cuda`` or ``cuda:N`` (torch's
#: ``cuda``, JAX's ``gpu``). Unset: each framework's default device.
DEVICE_ENV = "CROSSCHECK_DEVICE"


def missing_members(backend) -> list[str]:
    """The members of the protocol that ``backend`` lacks (or has in a form that cannot work)."""
    missing = []
    for member in MEMBERS:
        try:
            value = getattr(backend, member)
        except Exception:  # noqa: BLE001 - a property that raises is as good as missing
            missing.append(member)
            continue
        if member == "name":
            if not isinstance(value, str) or not value.strip():
                missing.append("name (a non-empty str)")
        elif not callable(value):
            missing.append(f"{member}()")
    return missing


def requested_device() -> tuple[str, int | None] | None:
    """``(kind, index)`` of the device asked for through :data:`DEVICE_ENV` (kind ``cpu`` or
    ``cuda``), or None when unset (each framework's default)."""
    import os

    text = os.environ.get(DEVICE_ENV, "").strip().lower()
    if not text:
        return None
    return parse_device(text)


def parse_device(text: str) -> tuple[str, int | None]:
    """``cpu``, ``cuda``, ``cuda:1``, ``gpu``, ``gpu:1`` -> ``(kind, index)``; ValueError else."""
    kind, sep, index = str(text).strip().lower().partition(":")
    kind = {"gpu": "cuda"}.get(kind, kind)
    if kind not in ("cpu", "cuda") or (sep and not index.isdigit()) or (kind == "cpu" and sep):
        raise ValueError(f"a device is cpu, cuda or cuda:N (gpu is cuda), got {text!r}")
    return kind, int(index) if sep else None


_cache: dict[tuple[str, str | None], Backend] = {}


def get_backend(name: str) -> Backend:
    """Return the backend called ``name`` (a built-in name or ``module:Class``).

    A ``module:Class`` that lacks a member of the protocol is refused
    (:class:`BackendIncomplete`, naming what it lacks). Built-in backends that take a
    device (torch, JAX) are made for the one :data:`DEVICE_ENV` names.
    """
    import os

    key = (name, os.environ.get(DEVICE_ENV))
    if key in _cache:
        return _cache[key]
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
    missing = missing_members(backend)
    if missing:
        raise BackendIncomplete(
            f"backend {name!r} lacks {', '.join(missing)}: a backend has name (a str), "
            "version(), unsupported(case) and run(case, inputs) (crosscheck.backends.base."
            "Backend; docs/writing-a-backend.md)")
    _cache[key] = backend
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


__all__ = ["Backend", "BackendIncomplete", "BackendUnavailable", "DeviceUnavailable",
           "Unsupported", "available_backends", "get_backend", "missing_members",
           "output_names", "parse_device", "requested_device", "BUILTIN", "DEVICE_ENV",
           "MEMBERS", "REGISTRY", "Registered"]
