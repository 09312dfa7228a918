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

Conform runs the target's code: run it on code you trust, or in a container. The
target runs in a worker process (:class:`TargetProcess`) that imports only the target and
calls it, and sends back plain arrays (never a pickle); the reference, the bounds, the
comparison and the mutation check run in this process, which never imports the target, so
a target that patches NumPy or crosscheck bends nothing but its own process. A case that
takes longer than ``timeout`` seconds is stopped; a crash, an exit, ``SystemExit`` or
``KeyboardInterrupt`` is that case's status (:data:`STATUSES`); after a timeout or crash the
function's remaining cases are skipped and the next function gets a new worker.
``in_process=True`` (``--in-process``) trusts the target and calls it here.

The package, one module per job (each imports only those above it):

- :mod:`~crosscheck.conform.target`: the target's side, and all the worker imports: the
  notebook API (:data:`FUNCTIONS`), loading a target (:func:`load_target`, :class:`Target`,
  :class:`TargetError`), calling it (:func:`call_steps`), the worker loop and the wire format;
- :mod:`~crosscheck.conform.sweep`: the conformance sweep (:class:`ConformCase`, the case
  lists, :func:`conformance_cases`, :func:`conform_case`);
- :mod:`~crosscheck.conform.checks`: judging one case (:func:`run_check`, :class:`CaseOutcome`,
  the statuses);
- :mod:`~crosscheck.conform.worker`: the runners: a worker process with the timeout
  (:class:`TargetProcess`), or this process (:class:`InProcessTarget`);
- :mod:`~crosscheck.conform.hints`: what one failing case alone says (NumPy 2 and
  ``float(b)``, removed ``np.float``, a notebook global, the ``[pad:-pad]`` crop, a size formula);
- :mod:`~crosscheck.conform.diagnose`: each failing function's diagnosis, in the judging
  process on the arrays the worker sent back: which parameters separate its failing cases
  from the passing ones (targeted extra cases through the same runner when the sweep cannot
  tell), the known mistake its outputs match exactly, and sentences across functions;
- :mod:`~crosscheck.conform.verdicts`: the sweep over a target and its verdicts
  (:class:`ConformSession`, :func:`check_target`, :func:`print_verdicts`, :func:`write_json`);
- :mod:`~crosscheck.conform.notebook`: notebooks (``work.ipynb``: only the cells' imports and
  definitions run, in the worker; magics and shell lines dropped; imports the judge lacks
  skipped and named) and :func:`check` for inside Jupyter: ``check(globals())``.

A backward function is judged on its own: when the target's forward raises or is wrong on a
case, its backward gets the reference's cache (the notebook's tuple) instead, and the verdict
says so. Messages are plain ("34 of 48 values wrong; at index [0, 1, 2, 0] got 0.51, expected
0.23"); the error-to-bound figures are in the JSON and ``--verbose``.

Everything public is re-exported here: ``from crosscheck.conform import check_target``.
"""

from crosscheck.conform.checks import FAILING, NOT_RUN, STATUSES, STOPPED, CaseOutcome, run_check
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
from crosscheck.conform.target import FUNCTIONS, Target, TargetError
from crosscheck.conform.notebook import check, load_target, read_notebook
from crosscheck.conform.verdicts import (
    CONFORMANT,
    INCOMPLETE,
    NOT_CONFORMANT,
    NOT_PROVIDED,
    ConformOutcome,
    ConformSession,
    FunctionVerdict,
    check_target,
    print_verdicts,
    verdicts_from,
    write_json,
)
from crosscheck.conform.worker import InProcessTarget, TargetProcess
from crosscheck.reproduce import conform_snippet as reproduction

__all__ = ["FUNCTIONS", "ConformCase", "CaseOutcome", "ConformOutcome", "FunctionVerdict",
           "TargetError", "TargetProcess", "InProcessTarget", "check_target", "conform_case",
           "conformance_cases", "load_target", "print_verdicts", "reproduction", "run_check",
           "write_json", "ConformSession", "STATUSES", "STOPPED", "FAILING", "NOT_RUN",
           "INCOMPLETE",
           # also public before the split into a package
           "check", "read_notebook", "diagnose",
           "CONFORMANT", "NOT_CONFORMANT", "NOT_PROVIDED", "Target", "verdicts_from", "from_case",
           "CONV_GEOMETRIES", "POOL_GEOMETRIES", "ZERO_PAD_SHAPES", "SINGLE_STEP_SHAPES",
           "MASK_SHAPES", "DISTRIBUTE_SHAPES"]
