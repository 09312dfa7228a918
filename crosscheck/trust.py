"""Degenerate references: data on which a pass cannot tell a right kernel from a wrong one.

benchdnn calls a result ``MISTRUSTED`` when more than 70% of its outputs are zero: a
kernel that writes zeros, or skips half its terms, agrees with such a reference too.
Here an output is degenerate when, among its **live** elements (those the op's structure
lets some term reach: the op table's magnitude ``A > 0`` with every input set to 1, a
max pool's routing kept; or a nonzero reference), more than :data:`ZERO_FRACTION` are
zero, or when it has at least two live elements and all of them are equal (a kernel
that broadcasts one value, or ignores the weights' layout, agrees). Both are about the
data, not the op: elements no term can reach (a max pool's unrouted cells, the zero
second-order ``dx`` of a max pool, outputs whose windows lie in the padding of a
bias-free conv, an empty batch) are zero by the op's structure, whatever the data and
the kernel, and are not counted; and an output that is
constant by structure (the gradient of a global average pool over one plane is ``dy /
(H*W)`` everywhere) is recognised by recomputing it on two other random draws of the
same geometry, and is not degenerate either. Indices are never degenerate (they are
exact integers).

The runner reports a case whose every output passed but whose reference is degenerate
as ``mistrusted`` (:class:`crosscheck.statuses.Status`), never as a pass; a failure
stays a failure. The sweeps avoid such cases: the random tier's continuous inputs are
never degenerate but by the op's structure, which the rule does not count (so
:func:`crosscheck.sweeps.valid` need not draw the data), and the exact tier, whose
integers may be sparse, runs only on geometries whose exact draw is not degenerate
(``tests/harness/test_mistrusted.py`` checks the smoke sweep). The probes and edge cases
are kept as they are, being about conventions and shapes; none of them is degenerate by
this rule either.
"""

from __future__ import annotations

import numpy as np

from crosscheck.tolerance import EXACT_OUTPUTS

#: More than this fraction of live elements at zero makes an output degenerate.
ZERO_FRACTION = 0.7


def degenerate(case, reference: dict, inputs) -> str | None:
    """Why the reference cannot tell kernels apart (the first degenerate output), or None.

    Parameters
    ----------
    case : the case
    reference : ``{output: float64 array}``
    inputs : the case's :class:`~crosscheck.cases.Inputs` (their shapes, and a max pool's
        routing, say which elements some term can reach)
    """
    reach = None
    for name, ref in reference.items():
        ref = np.asarray(ref, dtype=np.float64)
        nonzero = ref[ref != 0]
        # Not counting unreachable zeros only lowers the zero fraction of the rest, and live
        # values are one value only if the nonzero ones are: otherwise nothing to look into.
        if name in EXACT_OUTPUTS or ref.size == 0 or (
                ref.size - nonzero.size <= ZERO_FRACTION * ref.size and not _constant(nonzero)
                and nonzero.size):
            continue
        if reach is None:
            reach = _reach(case, inputs)
        values = _live(ref, reach.get(name))
        n = values.size
        if n == 0:
            continue
        zeros = int((values == 0).sum())
        if zeros > ZERO_FRACTION * n:
            return (f"{name} is {100 * zeros / n:.0f}% zeros ({zeros} of the {n} elements its "
                    f"terms reach; more than {ZERO_FRACTION:.0%} makes a pass meaningless)")
        if _constant(values) and not _constant_by_structure(case, name):
            return (f"{name} has one value ({float(values[0])!r}) in all {n} elements its "
                    "terms reach: a kernel that broadcasts one value would pass")
    return None


def _reach(case, inputs) -> dict:
    """``{output: A}`` with every input 1 (a max pool's x kept: it routes): where terms reach."""
    from crosscheck.cases import ROLES, Inputs

    ones = {r: None if getattr(inputs, r) is None else np.ones(np.shape(getattr(inputs, r)))
            for r in ROLES}
    if "max" in case.family:
        ones["x"] = inputs.x
    return {name: a for name, (_, a) in case.entry.magnitudes(case, Inputs(**ones)).items()}


def _live(ref, magnitude) -> np.ndarray:
    ref = np.asarray(ref, dtype=np.float64)
    live = ref != 0  # NaN and infinities included
    if magnitude is not None:
        live = live | (np.broadcast_to(magnitude, ref.shape) > 0)
    return ref[live]


def _constant(values: np.ndarray) -> bool:
    return values.size >= 2 and bool(np.all(values == values[0]) or np.all(np.isnan(values)))


def _constant_by_structure(case, name: str) -> bool:
    """Whether output ``name`` is constant on two other random draws of the geometry too."""
    from crosscheck.cases import make_inputs
    from crosscheck.runner import reference_outputs

    for seed in (7919, 104729):
        other = case.with_(inputs="random", seed=seed)
        ref = reference_outputs(other, make_inputs(other))[name]
        if not _constant(np.asarray(ref, dtype=np.float64)[ref != 0]):
            return False
    return True
