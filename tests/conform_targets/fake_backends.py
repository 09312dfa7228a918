"""Backends for the CLI tests, plugged in as ``fake_backends:Class`` (like a framework author's).

They wrap refcnn's own backend and then misbehave in one known way.
"""

from crosscheck.backends.base import Unsupported
from crosscheck.backends.refcnn_backend import RefcnnBackend


class Perturbed:
    """refcnn plus 1e-3 on every output element: fails every case it runs."""

    name = "perturbed"

    def __init__(self):
        self._inner = RefcnnBackend()

    def version(self):
        return "0.0-test"

    def unsupported(self, case):
        return self._inner.unsupported(case)

    def run(self, case, inputs):
        return {k: v + 1e-3 for k, v in self._inner.run(case, inputs).items()}


class PerturbedToo(Perturbed):
    """The same perturbation again: two backends that agree with each other, not with refcnn."""


class CrashesOnConv:
    """Raises on conv cases, declines average pooling, and is right on max pooling."""

    name = "crashes"

    def __init__(self):
        self._inner = RefcnnBackend()

    def version(self):
        return "0.0-test"

    def unsupported(self, case):
        return "no average pooling here" if case.op == "avg_pool2d" else None

    def run(self, case, inputs):
        if case.is_conv:
            raise RuntimeError("simulated crash in conv2d")
        if case.op == "avg_pool2d":
            raise Unsupported("no average pooling here")
        return self._inner.run(case, inputs)
