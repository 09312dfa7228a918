"""One driver for every built-in backend: dtypes, layouts, output names, ``Unsupported``.

A built-in backend is a :class:`TableBackend` subclass that says how to make a
framework array and read one back, how to take a vector-Jacobian product, and,
per op family, how to run the forward op (:class:`OpImpl`). The driver does the
rest: it refuses what the table lacks (with the reason), casts the canonical
float64 inputs to the case's dtype, moves channels first when the framework
wants them there, derives the backward direction from the framework's own
autodiff (or the table's explicit backward), and returns canonical float64
arrays named as the op table says.

The higher-order directions come the same way: ``jvp`` from the backend's
:meth:`TableBackend.jvp` (forward mode) and ``double_backward`` from its
:meth:`TableBackend.double_vjp` (the VJP of its VJP), or from the table's explicit
functions; a backend with neither is refused the direction, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from crosscheck.backends.base import Unsupported
from crosscheck.cases import ROLES, Case, Inputs, make_inputs

#: Output and input roles that hold data ``(N, *spatial, C)``; weights are ``w``/``dw``
#: (and their tangents and second-order cotangents).
DATA_ROLES = ("x", "dy", "y", "dx", "indices", "tx", "gx", "ty", "ddy")
WEIGHT_ROLES = ("w", "dw", "tw", "gw")


@dataclass(frozen=True)
class OpImpl:
    """How one backend runs one op family.

    Attributes
    ----------
    forward : ``(case, x, w, b) -> y`` or ``(y, indices)``, framework arrays in the
        backend's layout (``w`` and ``b`` are None for pools and bias-free convs)
    backward : optional ``(case, dy, x, w, b) -> dict`` of gradients; when None the
        driver differentiates ``forward`` with the backend's :meth:`TableBackend.vjp`
    unsupported : optional ``case -> str | None``: why this backend cannot run a case
    jvp : optional ``(case, x, w, b, tx, tw, tb) -> {"ty": ...}``; when None the driver
        uses :meth:`TableBackend.jvp` on ``forward``
    double_backward : optional ``(case, dy, x, w, b, gx, gw, gb) -> {"ddy": ..., ...}``;
        when None the driver uses :meth:`TableBackend.double_vjp` on ``forward``
    """

    forward: Callable
    backward: Callable | None = None
    unsupported: Callable | None = None
    jvp: Callable | None = None
    double_backward: Callable | None = None


class TableBackend:
    """Base of the built-in backends: implements the :class:`~crosscheck.backends.base.Backend`
    protocol from a per-op table.

    Subclasses set ``name``, ``ops`` (family -> :class:`OpImpl`), ``dtypes`` (case dtype ->
    framework dtype) and ``channels_first``, and implement :meth:`to_framework`,
    :meth:`to_numpy` and (for autodiff) :meth:`vjp`.
    """

    name: str = "?"
    ops: dict[str, OpImpl] = {}
    dtypes: dict[str, object] = {}
    channels_first: bool = False

    # ---- what a subclass provides -------------------------------------------------------------
    def version(self) -> str:
        raise NotImplementedError

    def settings(self) -> dict:
        """Precision-relevant settings in force (recorded in the reports)."""
        return {}

    def to_framework(self, a: np.ndarray, dtype):
        """A framework array of ``dtype`` holding ``a`` (a new array: never a view of ``a``)."""
        raise NotImplementedError

    def to_numpy(self, t) -> np.ndarray:
        """A framework array as NumPy (any dtype; the driver makes it float64 or int64)."""
        return np.asarray(t)

    def vjp(self, fn: Callable, primals: list, cotangent) -> list:
        """Gradients of ``<fn(*primals), cotangent>`` with respect to each primal."""
        raise Unsupported(f"{self.name} has no automatic differentiation")

    def jvp(self, fn: Callable, primals: list, tangents: list):
        """The tangent of ``fn(*primals)`` along ``tangents`` (one per primal): forward mode."""
        raise Unsupported(f"{self.name} has no forward-mode automatic differentiation")

    def double_vjp(self, fn: Callable, primals: list, cotangent, cotangents: list):
        """The VJP of :meth:`vjp`: gradients of ``<vjp(fn, primals, cotangent), cotangents>``
        with respect to ``cotangent`` and to each primal, as ``(d_cotangent, [d_primal])``."""
        raise Unsupported(f"{self.name} has no second-order automatic differentiation")

    def unsupported_dtype(self, case: Case) -> str | None:
        """Why this backend cannot compute ``case.op`` in ``case.dtype`` (None when it can)."""
        if case.dtype not in self.dtypes:
            return f"{self.name} has no {case.dtype} dtype"
        return None

    # ---- the protocol -------------------------------------------------------------------------
    def unsupported(self, case: Case) -> str | None:
        from crosscheck import semantics  # the registry of known bugs, not an oracle

        bug = semantics.fatal_bug(case, self.name)
        if bug is not None:
            # Running it (a probe included) would kill crosscheck with the framework.
            return (f"{self.name} would kill its process on this case, known bug {bug.key}: "
                    f"{bug.title} ({'; '.join(bug.sources)})")
        impl = self.ops.get(case.family)
        if impl is None:
            return f"{self.name} has no {case.op} in this suite's table"
        if case.direction == "backward" and impl.backward is None and \
                type(self).vjp is TableBackend.vjp:
            return f"{self.name}: no gradients (forward only)"
        if case.direction == "jvp" and impl.jvp is None and type(self).jvp is TableBackend.jvp:
            return f"{self.name}: no forward-mode derivatives (no jvp)"
        if case.direction == "double_backward" and impl.double_backward is None and \
                type(self).double_vjp is TableBackend.double_vjp:
            return f"{self.name}: no second-order derivatives (no VJP of its VJP)"
        reason = self.unsupported_dtype(case)
        if reason is None and impl.unsupported is not None:
            reason = impl.unsupported(case)
        return reason

    def run(self, case: Case, inputs: Inputs) -> dict[str, np.ndarray]:
        reason = self.unsupported(case)
        if reason:
            raise Unsupported(reason)
        out = self.compute(case, {role: self._to_backend(role, a, case)
                                  for role, a in case_arrays(case, inputs).items()})
        return {name: self._from_backend(name, out[name]) for name in case.output_names()}

    def compute(self, case: Case, arrays: dict) -> dict:
        """The op on framework arrays: ``{name: framework array}`` in the backend's layout.

        ``arrays`` maps every role of :data:`crosscheck.cases.ROLES` to an array or None.
        Overridden by backends that compile (JAX): the default runs eagerly.
        """
        impl = self.ops[case.family]
        x, w, b, dy = arrays["x"], arrays["w"], arrays["b"], arrays["dy"]
        if case.direction == "forward":
            return named_forward(impl.forward(case, x, w, b))
        if case.direction == "jvp":
            if impl.jvp is not None:
                return impl.jvp(case, x, w, b, arrays["tx"], arrays["tw"], arrays["tb"])
            return tangents(case, self.jvp, impl.forward, arrays)
        if case.direction == "double_backward":
            if impl.double_backward is not None:
                return impl.double_backward(case, dy, x, w, b, arrays["gx"], arrays["gw"],
                                            arrays["gb"])
            return second_order(case, self.double_vjp, impl.forward, arrays)
        if impl.backward is not None:
            return impl.backward(case, dy, x, w, b)
        return gradients(case, self.vjp, impl.forward, x, w, b, dy)

    # ---- layouts --------------------------------------------------------------------------------
    def _to_backend(self, role: str, a, case: Case):
        if a is None:
            return None
        if self.channels_first:
            a = to_channels_first(role, a)
        return self.to_framework(np.ascontiguousarray(a), self.dtypes[case.dtype])

    def _from_backend(self, name: str, t) -> np.ndarray:
        a = self.to_numpy(t)
        a = a.astype(np.int64) if name == "indices" else a.astype(np.float64)
        if self.channels_first:
            a = to_channels_last(name, a)
        return np.ascontiguousarray(a)


def named_forward(result) -> dict:
    """``y`` or ``(y, indices)`` as a dict of outputs."""
    if isinstance(result, tuple):
        return {"y": result[0], "indices": result[1]}
    return {"y": result}


def case_arrays(case: Case, inputs: Inputs) -> dict:
    """Every role of :data:`~crosscheck.cases.ROLES` -> ``inputs``' array or None.

    A higher-order case whose ``inputs`` lack the tangents or cotangents it needs (built
    as ``Inputs(x, w, b, dy)``, or copied by something that knows only those four) gets
    the case's own deterministic draws (:func:`~crosscheck.cases.make_inputs`), which
    are what the reference uses.
    """
    arrays = {role: getattr(inputs, role, None) for role in ROLES}
    needed = {"jvp": ("tx", "tw", "tb"), "double_backward": ("gx", "gw", "gb")}.get(
        case.direction, ())
    if any(arrays[r] is None and arrays[r[1:]] is not None for r in needed):
        drawn = make_inputs(case)
        arrays.update({r: getattr(drawn, r) for r in needed})
    return arrays


def _primals(case: Case, forward: Callable, x, w, b):
    """The primals present (names and arrays) and ``forward`` as a function of them alone,
    returning ``y`` only."""
    names = [n for n, a in (("x", x), ("w", w), ("b", b)) if a is not None]

    def y_only(*primals):
        full = dict(zip(("x", "w", "b"), (x, w, b)))
        full.update(zip(names, primals))
        result = forward(case, full["x"], full["w"], full["b"])
        return result[0] if isinstance(result, tuple) else result

    return names, [{"x": x, "w": w, "b": b}[n] for n in names], y_only


def gradients(case: Case, vjp: Callable, forward: Callable, x, w, b, dy) -> dict:
    """``dx`` (and ``dw``, ``db``) of ``forward`` by the framework's VJP."""
    names, primals, y_only = _primals(case, forward, x, w, b)
    grads = vjp(y_only, primals, dy)
    return {"d" + n: g for n, g in zip(names, grads)}


def tangents(case: Case, jvp: Callable, forward: Callable, arrays: dict) -> dict:
    """``ty``: the tangent of ``forward`` along ``tx`` (and ``tw``, ``tb``) by the framework's
    JVP."""
    names, primals, y_only = _primals(case, forward, arrays["x"], arrays["w"], arrays["b"])
    return {"ty": jvp(y_only, primals, [arrays["t" + n] for n in names])}


def second_order(case: Case, double_vjp: Callable, forward: Callable, arrays: dict) -> dict:
    """``ddy`` and ``dx`` (and ``dw``, ``db``) of ``<dx, gx> + <dw, gw> + <db, gb>``, the first
    backward by the framework's VJP, differentiated by the VJP of that VJP. Outputs the
    op table does not name (a conv's ``db``, always zero) are left to the caller to drop."""
    names, primals, y_only = _primals(case, forward, arrays["x"], arrays["w"], arrays["b"])
    ddy, grads = double_vjp(y_only, primals, arrays["dy"], [arrays["g" + n] for n in names])
    return {"ddy": ddy, **{"d" + n: g for n, g in zip(names, grads)}}


def to_channels_first(role: str, a: np.ndarray) -> np.ndarray:
    """Canonical layout to channels-first: data ``(N, C, *spatial)``, weights ``(O, I, *kernel)``."""
    if role in DATA_ROLES:
        return np.moveaxis(a, -1, 1)
    if role in WEIGHT_ROLES:
        r = a.ndim - 2
        return a.transpose(r + 1, r, *range(r))
    return a


def to_channels_last(role: str, a: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_channels_first`."""
    if role in DATA_ROLES:
        return np.moveaxis(a, 1, -1)
    if role in WEIGHT_ROLES:
        r = a.ndim - 2
        return a.transpose(*range(2, r + 2), 1, 0)
    return a
