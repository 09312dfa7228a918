"""Every copy-paste reproducer crosscheck prints: the CLI line, then Python that redoes it.

:func:`run_snippet` redoes one verdict of ``crosscheck run`` (a backend on a case, judged
by the runner itself) and leaves the backend's raw outputs and the reference at hand;
:func:`result_snippet` picks the one for a run result (its first failing output's, or its
first output's for a result with no comparison); :func:`conform_snippet` redoes
one case of ``crosscheck conform`` on the target. Each snippet is self-contained: pasted
into a Python prompt or ``python -c``, it runs (the tests run every kind).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crosscheck.conform.sweep import ConformCase
    from crosscheck.runner import CaseResult

__all__ = ["run_snippet", "result_snippet", "conform_snippet"]


def run_snippet(case_id: str, backend: str, output: str) -> str:
    """The CLI line and a snippet that judge the backend on the case through the runner, as
    ``crosscheck run`` does (the same bounds, declarations and checks), then call it once
    more for its raw outputs: a backend that raised raises there, with its traceback."""
    return (
        f"# crosscheck run --case {case_id} --backends {backend}\n"
        "from crosscheck.backends import get_backend\n"
        "from crosscheck.cases import Case\n"
        "from crosscheck.runner import prepared, run_backend\n"
        f"case = Case.from_id({case_id!r})\n"
        f"backend = get_backend({backend!r})\n"
        f"print(run_backend(case, {backend!r}, backend).summary())\n"
        "inputs, ref, _ = prepared(case)\n"
        f"got = backend.run(case, inputs)  # its outputs: got[{output!r}] against ref[{output!r}]\n"
    )


def result_snippet(result: CaseResult) -> str:
    """The reproducer of a run result: its first failing output's, or (for a result with no
    comparison: a crash, an exception) its first output's, which reruns the backend."""
    bad = [d for d in result.discrepancies if not d.passed]
    if bad:
        return bad[0].reproduce
    return run_snippet(result.case.id, getattr(result, "target", None) or result.backend,
                       result.case.output_names()[0])


def conform_snippet(spec: str, cc: ConformCase, reference_cache: bool = False) -> str:
    """The CLI line and a self-contained snippet that redo one conformance case by hand.

    ``reference_cache``: the backward gets the reference's cache (the notebook's tuple), as
    conform judged it when the target's own forward raised or was wrong on the case.
    """
    head = (f"# crosscheck conform {spec} --case {cc.id}\n"
            "import numpy as np\nimport refcnn\n"
            "from crosscheck.conform import load_target\n"
            f"impl = load_target({spec!r})\n")
    if cc.case is None:
        return head + (f"from crosscheck.conform import conform_case, run_check\n"
                       f"print(run_check(impl.functions, conform_case({cc.id!r})))\n")
    head += ("from crosscheck.cases import Case, make_inputs\n"
             f"inputs = make_inputs(Case.from_id({cc.case.id!r}))\n"
             f"hparameters = {cc.hparameters()!r}\n")
    if cc.case.is_conv:
        forward, y, reference_tuple = "conv_forward", "Z", "(A_prev, W, b, hparameters)"
        args = "A_prev, W, b, hparameters"
        body = "A_prev, W, b = inputs.x, inputs.w, inputs.b.reshape(1, 1, 1, -1)\n"
        backward = ("dZ = inputs.dy\n"
                    "got = impl.conv_backward(dZ, cache)\n"
                    "want = refcnn.conv_backward(dZ, cache_ref)\n"
                    "for name, g, r in zip(('dA_prev', 'dW', 'db'), got, want):\n"
                    f"    print(name, np.shape(g), r.shape, {_diff('g', 'r')})\n")
    else:
        forward, y, reference_tuple = "pool_forward", "A", "(A_prev, hparameters)"
        args = f"A_prev, hparameters, mode={cc.mode!r}"
        body = "A_prev = inputs.x\n"
        backward = (f"got = impl.pool_backward(inputs.dy, cache, mode={cc.mode!r})\n"
                    f"want = refcnn.pool_backward(inputs.dy, cache_ref, mode={cc.mode!r})\n"
                    f"print(np.shape(got), want.shape, {_diff('got', 'want')})\n")
    call = f"{y}, cache = impl.{forward}({args})\n"
    if reference_cache and cc.function != forward:
        call = (f"# the target's {forward} fails here: its backward gets the reference's "
                f"cache\n# {call}")
    body += call + f"{y}_ref, cache_ref = refcnn.{forward}({args})\n"
    if cc.function == forward:
        return head + body + f"print(np.shape({y}), {y}_ref.shape, {_diff(y, y + '_ref')})\n"
    if reference_cache:
        body += f"cache = {reference_tuple}\n"
    return head + body + backward


def _diff(got: str, want: str) -> str:
    """The largest difference, or why there is none (a wrong shape must not end the snippet)."""
    return (f"np.abs({got} - {want}).max() if np.shape({got}) == np.shape({want}) "
            "else 'shapes differ'")
