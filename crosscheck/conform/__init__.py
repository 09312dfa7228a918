"""``crosscheck conform TARGET``: check any implementation of the notebook's API against refcnn.

A target is an importable module, a path to a ``.py`` file, or ``module:object``
(``path.py:object`` too; a class is instantiated) providing any subset of
:data:`FUNCTIONS` with the notebook's signatures: NHWC arrays, ``hparameters``
with ``stride``/``pad`` (conv) or ``f``/``stride`` (pool), and caches that are
opaque to us, passed back to the target's own backward functions.

Each provided function runs over a conformance sweep chosen to expose the bugs
people really make (strides 1-3 with sizes where ``n_H + 2*pad - f`` is not a
multiple of the stride, pad 0, non-square inputs, ``n_C_prev != n_C``, batches
above 1, overlapping, touching and gapped pooling windows). Each case checks the
output shapes first, then the values against refcnn in float64 under the
rounding-error bounds of :mod:`crosscheck.tolerance`, then that no input array
was modified. Inputs are continuous random values, so ties never decide a
verdict; ``strict`` adds probes that *report* the tie and NaN conventions the
target follows (they never fail it).

The target runs in a worker process (:class:`TargetProcess`): a case that takes
longer than ``timeout`` seconds is stopped with a clear message, the worker is
restarted and the function's remaining cases are skipped.

The package, one module per job (each imports only those above it):

- :mod:`~crosscheck.conform.target`: the notebook API (:data:`FUNCTIONS`) and loading a
  target (:func:`load_target`, :class:`Target`, :class:`TargetError`);
- :mod:`~crosscheck.conform.sweep`: the conformance sweep (:class:`ConformCase`, the case
  lists, :func:`conformance_cases`, :func:`conform_case`);
- :mod:`~crosscheck.conform.reproduce`: the reproduction snippet of a case;
- :mod:`~crosscheck.conform.checks`: checking one case (:func:`run_check`, :class:`CaseOutcome`);
- :mod:`~crosscheck.conform.worker`: running the target in a worker process with the timeout
  (:class:`TargetProcess`), or in this one (:class:`InProcessTarget`);
- :mod:`~crosscheck.conform.verdicts`: the sweep over a target and its verdicts
  (:func:`check_target`, :func:`print_verdicts`, :func:`write_json`).

Everything public is re-exported here: ``from crosscheck.conform import check_target``.
"""

from crosscheck.conform.checks import CaseOutcome, run_check
from crosscheck.conform.reproduce import reproduction
from crosscheck.conform.sweep import (
    CONV_GEOMETRIES,
    DISTRIBUTE_SHAPES,
    MASK_SHAPES,
    POOL_GEOMETRIES,
    SINGLE_STEP_SHAPES,
    ZERO_PAD_SHAPES,
    ConformCase,
    conform_case,
    conformance_cases,
    from_case,
)
from crosscheck.conform.target import FUNCTIONS, Target, TargetError, load_target
from crosscheck.conform.verdicts import (
    CONFORMANT,
    NOT_CONFORMANT,
    NOT_PROVIDED,
    ConformOutcome,
    FunctionVerdict,
    check_target,
    print_verdicts,
    verdicts_from,
    write_json,
)
from crosscheck.conform.worker import InProcessTarget, TargetProcess

__all__ = ["FUNCTIONS", "ConformCase", "CaseOutcome", "ConformOutcome", "FunctionVerdict",
           "TargetError", "TargetProcess", "InProcessTarget", "check_target", "conform_case",
           "conformance_cases", "load_target", "print_verdicts", "reproduction", "run_check",
           "write_json",
           # also public before the split into a package
           "CONFORMANT", "NOT_CONFORMANT", "NOT_PROVIDED", "Target", "verdicts_from", "from_case",
           "CONV_GEOMETRIES", "POOL_GEOMETRIES", "ZERO_PAD_SHAPES", "SINGLE_STEP_SHAPES",
           "MASK_SHAPES", "DISTRIBUTE_SHAPES"]
