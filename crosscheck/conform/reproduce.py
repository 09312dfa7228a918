"""Reproduction snippets: the CLI line and the code that redo one conformance case by hand."""

from __future__ import annotations

from crosscheck.conform.sweep import ConformCase


def reproduction(spec: str, cc: ConformCase, reference_cache: bool = False) -> str:
    """The CLI line and a self-contained snippet that redo this case by hand.

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
             f"inputs = make_inputs(Case.from_id({cc.case.id!r}))\n")
    hp = cc.hparameters()
    if cc.case.is_conv:
        body = ("A_prev, W, b = inputs.x, inputs.w, inputs.b.reshape(1, 1, 1, -1)\n"
                f"hparameters = {hp!r}\n"
                "Z, cache = impl.conv_forward(A_prev, W, b, hparameters)\n"
                "Z_ref, cache_ref = refcnn.conv_forward(A_prev, W, b, hparameters)\n")
        if cc.function == "conv_forward":
            return head + body + "print(np.shape(Z), Z_ref.shape, np.abs(Z - Z_ref).max())\n"
        if reference_cache:
            body = body.replace("Z, cache = impl.conv_forward", "# the target's conv_forward "
                                "fails here: its backward gets the reference's cache\n"
                                "# Z, cache = impl.conv_forward")
            body += "cache = (A_prev, W, b, hparameters)\n"
        return head + body + (
            "dZ = inputs.dy\n"
            "got = impl.conv_backward(dZ, cache)\n"
            "want = refcnn.conv_backward(dZ, cache_ref)\n"
            "for name, g, r in zip(('dA_prev', 'dW', 'db'), got, want):\n"
            "    print(name, np.shape(g), r.shape, np.abs(g - r).max())\n")
    body = ("A_prev = inputs.x\n"
            f"hparameters = {hp!r}\n"
            f"A, cache = impl.pool_forward(A_prev, hparameters, mode={cc.mode!r})\n"
            f"A_ref, cache_ref = refcnn.pool_forward(A_prev, hparameters, mode={cc.mode!r})\n")
    if cc.function == "pool_forward":
        return head + body + "print(np.shape(A), A_ref.shape, np.abs(A - A_ref).max())\n"
    if reference_cache:
        body = body.replace("A, cache = impl.pool_forward", "# the target's pool_forward fails "
                            "here: its backward gets the reference's cache\n"
                            "# A, cache = impl.pool_forward")
        body += "cache = (A_prev, hparameters)\n"
    return head + body + (
        f"got = impl.pool_backward(inputs.dy, cache, mode={cc.mode!r})\n"
        f"want = refcnn.pool_backward(inputs.dy, cache_ref, mode={cc.mode!r})\n"
        "print(np.shape(got), want.shape, np.abs(got - want).max())\n")
