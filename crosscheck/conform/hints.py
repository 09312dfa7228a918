"""Hints from one case alone: plain sentences for the failures seen in the wild.

Each rule reads what the judging process already has, the facts of an exception the target
raised (type, message, function, file:line) or the shape it returned, and names the likely
cause and the fix: NumPy 2 refusing ``float()`` of the notebook's (1, 1, 1) ``b``, or storing
an array in one element ("setting an array element with a sequence"); the removed
``np.float``/``np.int`` aliases; a notebook global read inside a function; the ``[pad:-pad]``
crop that is empty for pad 0; an output size formula without its ``+ 1``. The function-level
diagnosis (:mod:`crosscheck.conform.diagnose`) adds what takes many cases to see.
"""

from __future__ import annotations

import re

from crosscheck.conform.target import FUNCTIONS

#: NumPy names removed from the main namespace (1.24 for the aliases, 2.0 for the rest), and
#: what to write instead.
REMOVED_NUMPY = {
    "float": "float (or np.float64)", "int": "int (or np.int64)", "bool": "bool (or np.bool_)",
    "object": "object", "complex": "complex (or np.complex128)", "str": "str", "long": "int",
    "unicode": "str", "float_": "np.float64", "complex_": "np.complex128", "NaN": "np.nan",
    "NAN": "np.nan", "Inf": "np.inf", "Infinity": "np.inf", "infty": "np.inf",
    "PINF": "np.inf", "NINF": "-np.inf", "product": "np.prod", "cumproduct": "np.cumprod",
    "alltrue": "np.all", "sometrue": "np.any", "asscalar": "a.item()", "round_": "np.round",
    "int0": "np.intp", "float96": "np.longdouble", "string_": "np.bytes_",
    "unicode_": "np.str_", "mat": "np.asmatrix", "alen": "len",
}

_NUMPY_ATTR = re.compile(r"module 'numpy' has no attribute '(?P<name>\w+)'")
_NAME = re.compile(r"name '(?P<name>\w+)' is not defined")
_FROM_SHAPE = re.compile(r"from shape \((?P<shape>[^)]*)\)")
_KEY = re.compile(r"^'?(?P<key>\w+)'?$")


def numpy2_float(fn: str) -> str:
    return (f"NumPy 2 refuses float() (and int()) of an array that has dimensions, such as the "
            f"notebook's b of shape (1, 1, 1), which the comment 'Cast b to a float()' leads "
            f"to: in {fn}, write b.item() (or float(b[0, 0, 0])) instead of float(b)")


def raised_hints(info: dict, cc, assigned: dict | None = None) -> list[str]:
    """Hints for an exception the target raised on case ``cc`` (``info``: type, message,
    function, where). ``assigned``: the notebook globals that cells conform does not run
    would have set (name -> cell), from the notebook's plan."""
    kind, msg = info.get("type", ""), info.get("message", "")
    fn = info.get("function") or cc.function
    inner = info.get("in")  # the target's own function the exception came from
    if isinstance(inner, str) and inner.isidentifier():
        fn = inner
    out = []
    if kind == "TypeError" and re.search(r"only (0-dimensional|length-1|size-1) arrays can be "
                                         r"converted to Python scalars", msg):
        out.append(numpy2_float(fn))
    if "setting an array element with a sequence" in msg:
        if fn == "conv_forward":
            out.append("NumPy 2 refuses to store an array in one element ('setting an array "
                       "element with a sequence'): Z[i, h, w, c] = conv_single_step(...) needs "
                       "conv_single_step to return a scalar, not the (1, 1, 1) array that "
                       "adding b of shape (1, 1, 1) gives; return np.sum(s) + b.item()")
        else:
            out.append(f"NumPy 2 refuses to store an array in one element ('setting an array "
                       f"element with a sequence'): in {fn}, what is assigned to a single "
                       "element must be a scalar (use .item(), or np.sum/np.max of the window)")
    m = _NUMPY_ATTR.search(msg)
    if kind == "AttributeError" and m:
        name = m["name"]
        instead = REMOVED_NUMPY.get(name)
        if instead:
            out.append(f"np.{name} was removed from NumPy (the aliases np.float, np.int and "
                       f"the like in 1.24, the rest in 2.0): in {fn}, write {instead}")
        else:
            out.append(f"NumPy has no np.{name}: check the spelling, or the NumPy version the "
                       "code was written for")
    m = _NAME.search(msg)
    if kind in ("NameError", "UnboundLocalError") and m:
        name = m["name"]
        out.append(notebook_global(fn, name, (assigned or {}).get(name)))
    if kind == "UnboundLocalError" or "referenced before assignment" in msg:
        m = re.search(r"'(\w+)'", msg)
        if m and not out:
            out.append(f"{fn} reads {m[1]} before it assigns it (a branch that never ran: "
                       "is mode 'max' or 'average' spelled as the notebook spells it?)")
    m = _FROM_SHAPE.search(msg)
    if m and _has_zero(m["shape"]) and _pad(cc) == 0:
        out.append(crop_hint(fn))
    if "operands could not be broadcast together" in msg and cc.case is not None:
        out.append(f"in {fn}, a window slice came out smaller than f x f: it runs past the edge "
                   "of the (padded) input; check its corners (vert_start = h * stride, "
                   "vert_end = vert_start + f, the same for w) and that h and w are not swapped")
    if kind == "IndexError" and fn == "conv_backward" and re.search(
            r"out of bounds for axis 2 with size 1", msg):
        out.append("conv_backward indexes the third axis of an array of shape (1, 1, 1, n_C), "
                   "which has size 1: db's channel is its fourth index, db[:, :, :, c] += "
                   "dZ[i, h, w, c] (the listing's db[:, :, c] indexes the third, and fails "
                   "as soon as n_C > 1)")
    elif kind == "IndexError" and "out of bounds" in msg:
        out.append(f"in {fn}, an index runs past its array: a loop bound or the output size "
                   "is off (n_H = int((n_H_prev + 2 * pad - f) / stride) + 1), or h and w are "
                   "swapped")
    if kind == "KeyError":
        key = _KEY.match(msg.strip())
        if key and key["key"] in ("f", "stride", "pad"):
            out.append(f"{fn} reads hparameters[{key['key']!r}], which this call does not "
                       "have: conv's hparameters hold 'stride' and 'pad', pool's 'f' and "
                       "'stride'")
    if kind == "TypeError" and ("cannot be interpreted as an integer" in msg
                                or "slice indices must be integers" in msg
                                or "indices must be integers" in msg):
        out.append(f"in {fn}, a size or index is a float: (n_H_prev + 2 * pad - f) / stride "
                   "is a float in Python 3; floor it with int(...) or //")
    if "Cannot cast ufunc" in msg and "int" in msg:
        out.append(f"in {fn}, an array of integers cannot take float results: create it as "
                   "float (np.zeros(shape), not np.zeros(shape, dtype=int))")
    if fn in ("conv_backward", "pool_backward") and (
            "unpack" in msg and ("values" in msg or "non-iterable" in msg)):
        layout = "(A_prev, W, b, hparameters)" if fn == "conv_backward" else \
            "(A_prev, hparameters)"
        out.append(f"{fn} could not unpack its cache: the notebook's cache is {layout}, "
                   "as the forward function returns it")
    return out


def notebook_global(fn: str, name: str, cell: str | None = None) -> str:
    if name in FUNCTIONS:
        return (f"{fn} calls {name}, which the target does not define: define it (or import "
                "it) where the target is")
    if name in ("np", "numpy"):
        return f"{fn} uses np, but numpy is not imported (import numpy as np) where it is defined"
    if cell == "the notebook's namespace":
        where = (" (it is a variable of the notebook's namespace, which the worker does not "
                 "get: only imports and definitions go there)")
    else:
        where = (f" (in the notebook it is set in {cell}, which conform does not run: only "
                 "imports and definitions run)" if cell else "")
    return (f"{fn} reads the global {name!r}, which it neither defines nor receives{where}: "
            f"a function that works in the notebook only because a test cell left {name} "
            "behind breaks anywhere else; use the function's own arguments (e.g. "
            "hparameters['stride'])")


def crop_hint(fn: str) -> str:
    return (f"{fn}: the crop da_prev_pad[pad:-pad, pad:-pad, :] is empty when pad = 0 "
            "(X[0:-0] selects nothing); crop with da_prev_pad[pad:pad + n_H_prev, "
            "pad:pad + n_W_prev, :], which also works for pad 0")


def scalar_hint(shape) -> str:
    return (f"conv_single_step returns an array of shape {tuple(shape)}, not a scalar as the "
            "API says: adding b of shape (1, 1, 1) to the sum keeps b's shape, and NumPy 2 "
            "then refuses it in conv_forward's Z[i, h, w, c] = conv_single_step(...) "
            "('setting an array element with a sequence'); return np.sum(s) + b.item()")


def _has_zero(shape_text: str) -> bool:
    return any(p.strip() == "0" for p in shape_text.split(","))


def _pad(cc) -> int | None:
    if cc.case is None:
        return cc.pad if cc.function == "zero_pad" else None
    return cc.hparameters().get("pad", 0 if not cc.case.is_conv else None)


def shape_hints(cc, output: str, got: tuple) -> list[str]:
    """What a wrong output shape says about the formula behind it."""
    fn = cc.function
    if cc.case is None:
        if fn == "zero_pad":
            m, h, w, c = cc.shape
            p = cc.pad
            if got == (m + 2 * p, h + 2 * p, w + 2 * p, c + 2 * p):
                return ["zero_pad pads every axis: pad only the height and width, "
                        "((0, 0), (pad, pad), (pad, pad), (0, 0))"]
            if got == (m, h + p, w + p, c):
                return ["zero_pad pads one side only: pad both, (pad, pad) on each axis"]
            if got == (m, h + 4 * p, w + 4 * p, c):
                return ["zero_pad pads 2 * pad on each side: (pad, pad) already pads both"]
        if fn == "distribute_value" and got == tuple(cc.shape[::-1]):
            return ["distribute_value swaps n_H and n_W in the shape it returns"]
        return []
    c = cc.case
    f, s = c.kernel[0], c.stride[0]
    p = cc.hparameters().get("pad", 0)
    n_h, n_w = c.out_hw()
    if output in ("Z", "A"):
        m, ch = c.n, (c.c_out if c.is_conv else c.c_in)
        if got == (m, n_w, n_h, ch) and n_h != n_w:
            return [f"{fn} swaps n_H and n_W in its output"]
        candidates = [
            (lambda n: (n + 2 * p - f) // s, f"{fn}'s output size misses the + 1: n_H = "
                                             "int((n_H_prev + 2 * pad - f) / stride) + 1"),
            (lambda n: (n - f) // s + 1, f"{fn}'s output size leaves out the padding "
                                         "(2 * pad) in n_H = int((n_H_prev + 2 * pad - f) / "
                                         "stride) + 1"),
            (lambda n: n + 2 * p - f + 1, f"{fn}'s output size leaves out the stride: n_H = "
                                          "int((n_H_prev + 2 * pad - f) / stride) + 1"),
            (lambda n: -(-(n + 2 * p - f) // s) + 1, f"{fn}'s output size rounds up; floor it "
                                                     "with int() or //"),
        ]
        for size, text in candidates:
            if got == (m, size(c.h), size(c.w), ch) and (size(c.h), size(c.w)) != (n_h, n_w):
                return [text]
        return []
    if output == "dA_prev" and len(got) == 4:
        if got[1:3] == (c.h + 2 * p, c.w + 2 * p) and p:
            return [f"{fn} returns dA_prev with its padding: crop it, da_prev_pad[pad:pad + "
                    "n_H_prev, pad:pad + n_W_prev, :]"]
        if p == 0 and 0 in got[1:3]:
            return [crop_hint(fn)]
    return []


def case_hints(cc, outcome) -> list[str]:
    """The hints for one failing case: what it raised, the shapes it returned, a scalar that
    is an array, with those already found (on the forward of a backward case) first."""
    out = list(outcome.hints)
    if outcome.raised:
        out += raised_hints(outcome.raised, cc)
    for output, shape in outcome.shapes.items():
        if cc.function == "conv_single_step" and output == "Z":
            out.append(scalar_hint(shape))
        else:
            out += shape_hints(cc, output, tuple(shape))
    return list(dict.fromkeys(out))
