"""The conformance sweep: the cases each notebook function runs over, and their ids.

The case lists are deterministic, so every pytest-xdist worker collects the same cases in the
same order, and every case id parses back into its case (:func:`conform_case`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crosscheck.cases import Case
from crosscheck.conform.target import FUNCTIONS

#: Conv geometries (m, n_H_prev, n_W_prev, n_C_prev, n_C, f, stride, pad). The comment says
#: which bug each one is there to catch; (n + 2*pad - f) % stride != 0 marks a dropped remainder.
CONV_GEOMETRIES = (
    (1, 4, 4, 1, 1, 2, 1, 0),   # the simplest case: a wrong answer here is not about geometry
    (2, 5, 7, 3, 2, 3, 1, 1),   # non-square, n_C_prev != n_C, pad 1 (the da_prev_pad crop)
    (2, 8, 6, 3, 4, 3, 2, 0),   # stride 2, pad 0 (pad:-pad crops to nothing), 5 % 2 and 3 % 2
    (3, 10, 8, 2, 3, 3, 2, 1),  # stride 2 with a remainder on both axes, batch 3
    (2, 10, 9, 4, 2, 2, 3, 0),  # stride 3 > f: gaps between windows, remainders 2 and 1
    (2, 7, 11, 3, 5, 4, 3, 2),  # stride 3, even f, pad 2, remainders 1 and 2
    (1, 6, 5, 2, 3, 5, 1, 2),   # large kernel, 'same'-like pad
    (2, 6, 5, 3, 2, 1, 2, 0),   # 1x1 kernel with stride 2
    (3, 4, 7, 5, 4, 2, 2, 1),   # even kernel, pad 1, stride 2 with a remainder on W
    (2, 5, 6, 2, 2, 3, 1, 3),   # pad larger than f - 1: whole windows of zeros
    (1, 3, 3, 2, 4, 3, 1, 0),   # a 1x1 output
)

#: Pool geometries (m, n_H_prev, n_W_prev, n_C, f, stride), each in max and average mode.
POOL_GEOMETRIES = (
    (2, 4, 4, 3, 2, 2),   # touching windows (stride == f), no remainder
    (2, 5, 7, 2, 3, 1),   # overlapping windows, non-square
    (3, 7, 8, 2, 3, 2),   # overlapping, stride 2, remainder on W
    (2, 9, 6, 3, 2, 3),   # gaps between windows (stride > f), remainders on both axes
    (1, 8, 5, 1, 4, 3),   # overlapping, stride 3, remainders
    (2, 6, 9, 4, 3, 3),   # touching 3x3 windows
    (2, 5, 6, 2, 1, 2),   # 1x1 windows with stride 2
    (2, 7, 7, 3, 5, 1),   # large overlapping windows
)

ZERO_PAD_SHAPES = (((2, 3, 4, 2), 1), ((1, 4, 4, 3), 0), ((3, 2, 5, 1), 3), ((2, 5, 3, 4), 2))
SINGLE_STEP_SHAPES = ((3, 4), (1, 1), (2, 3), (5, 2))      # (f, n_C_prev)
MASK_SHAPES = ((2, 2), (3, 3), (2, 3), (4, 1), (5, 5))
DISTRIBUTE_SHAPES = ((2, 2), (3, 3), (2, 3), (4, 1), (1, 5), (3, 4))


@dataclass(frozen=True)
class ConformCase:
    """One call (or forward-then-backward pair) of one notebook function.

    ``case`` is the refcnn case for conv and pool functions (float64, square
    kernel, equal strides, symmetric int padding); the helpers use ``shape``,
    ``pad`` and ``seed``. ``probe`` names a strict-only convention probe.
    """

    function: str
    id: str
    case: Case | None = None
    shape: tuple[int, ...] = ()
    pad: int = 0
    seed: int = 0
    probe: str | None = None

    @property
    def mode(self) -> str | None:
        if self.case is None or self.case.is_conv:
            return None
        return "max" if self.case.op == "max_pool2d" else "average"

    def hparameters(self) -> dict:
        c = self.case
        if c.is_conv:
            return {"stride": int(c.stride[0]), "pad": int(c.padding[0][0])}
        return {"f": int(c.kernel[0]), "stride": int(c.stride[0])}

    def params(self) -> dict:
        """The parameters a person needs to picture the case."""
        c = self.case
        if c is None:
            p = {"shape": list(self.shape), "seed": self.seed}
            if self.function == "zero_pad":
                p["pad"] = self.pad
            return p
        p = {"A_prev": [c.n, c.h, c.w, c.c_in]}
        if c.is_conv:
            p["W"] = [c.kernel[0], c.kernel[1], c.c_in, c.c_out]
        else:
            p["mode"] = self.mode
        p.update(self.hparameters())
        p["out"] = list(c.out_hw())
        if c.inputs != "random":
            p["inputs"] = c.inputs
        return p


def notebook_conv_case(direction, m, h, w, c_prev, c, f, stride, pad, inputs="random",
                       seed=0) -> Case:
    """The conv2d case of a notebook geometry (``A_prev`` (m, h, w, c_prev), ``f`` x ``f``
    kernel to ``c`` channels, square stride and symmetric pad)."""
    return Case.of("conv", 2, direction, n=m, spatial=(h, w), c_in=c_prev, c_out=c,
                   kernel=(f, f), stride=(stride, stride), padding=((pad, pad), (pad, pad)),
                   inputs=inputs, seed=seed)


def notebook_pool_case(op, direction, m, h, w, c, f, stride, inputs="random", seed=0) -> Case:
    """The ``op`` (max_pool2d or avg_pool2d) case of a notebook geometry (``A_prev``
    (m, h, w, c), ``f`` x ``f`` window, square stride, no padding)."""
    return Case.of(op[:-2], 2, direction, n=m, spatial=(h, w), c_in=c, kernel=(f, f),
                   stride=(stride, stride), inputs=inputs, seed=seed)


def from_case(case: Case) -> ConformCase:
    """The conformance case for a refcnn case the notebook API can express (else ValueError)."""
    problems = []
    if case.kernel[0] != case.kernel[1]:
        problems.append("the notebook's f is square")
    if case.stride[0] != case.stride[1]:
        problems.append("the notebook's stride is one int")
    if case.dilation != (1, 1):
        problems.append("the notebook has no dilation")
    if case.dtype != "float64":
        problems.append("conformance runs in float64")
    if case.is_conv:
        pads = case.padding
        if isinstance(pads, str) or len({*pads[0], *pads[1]}) != 1:
            problems.append("the notebook's pad is one symmetric int")
        if case.groups != 1 or not case.bias:
            problems.append("the notebook's conv has one group and a bias")
    else:
        if (case.padding != ((0, 0), (0, 0)) or case.ceil_mode
                or getattr(case, "divisor_override", None)):
            problems.append("the notebook's pooling has no padding, ceil_mode or divisor")
    if problems:
        raise ValueError(f"case {case.id} cannot be expressed in the notebook API: "
                         + "; ".join(problems))
    if case.is_conv:
        function = "conv_forward" if case.direction == "forward" else "conv_backward"
    else:
        function = "pool_forward" if case.direction == "forward" else "pool_backward"
    probe = None if case.inputs == "random" else f"{case.op} {case.direction} on {case.inputs}"
    return ConformCase(function, case.id, case, probe=probe)


def _helper_case(function: str, shape, seed: int = 0, pad: int = 0, probe=None) -> ConformCase:
    dims = "x".join(str(s) for s in shape)
    if function == "zero_pad":
        m, h, w, c = shape
        case_id = f"zero_pad-n{m}h{h}w{w}c{c}-p{pad}-s{seed}"
    elif function == "conv_single_step":
        f, c = shape[0], shape[2]
        case_id = f"conv_single_step-k{f}x{f}c{c}-s{seed}"
    else:
        case_id = f"{function}-{dims}" + ("-ties" if probe else "") + f"-s{seed}"
    return ConformCase(function, case_id, shape=tuple(shape), pad=pad, seed=seed, probe=probe)


_HELPER_RE = re.compile(
    r"zero_pad-n(?P<m>\d+)h(?P<h>\d+)w(?P<w>\d+)c(?P<c>\d+)-p(?P<pad>\d+)-s(?P<seed>\d+)"
    r"|conv_single_step-k(?P<f>\d+)x\d+c(?P<fc>\d+)-s(?P<fseed>\d+)"
    r"|(?P<fn>create_mask_from_window|distribute_value)-(?P<dims>\d+x\d+)(?P<ties>-ties)?"
    r"-s(?P<hseed>\d+)")


def conform_case(case_id: str) -> ConformCase:
    """Parse a conformance case id (a refcnn case id, or a helper's id) back into the case."""
    m = _HELPER_RE.fullmatch(case_id)
    if m is None:
        return from_case(Case.from_id(case_id))
    g = m.groupdict()
    if g["m"]:
        return _helper_case("zero_pad", tuple(int(g[k]) for k in "mhwc"), int(g["seed"]),
                            pad=int(g["pad"]))
    if g["f"]:
        f = int(g["f"])
        return _helper_case("conv_single_step", (f, f, int(g["fc"])), int(g["fseed"]))
    dims = tuple(int(v) for v in g["dims"].split("x"))
    probe = "ties" if g["ties"] else None
    return _helper_case(g["fn"], dims, int(g["hseed"]), probe=probe)


def conformance_cases(functions=None, strict: bool = False, seed: int = 0) -> list[ConformCase]:
    """The conformance sweep, function by function in :data:`FUNCTIONS` order (deterministic).

    ``seed`` draws other inputs on the same geometries (a target that replays the answers
    of a default run is caught); case ids carry it, so ``--case`` redoes the case.
    """
    wanted = set(functions or FUNCTIONS)
    out: list[ConformCase] = []
    if "zero_pad" in wanted:
        out += [_helper_case("zero_pad", s, seed + i, pad=p)
                for i, (s, p) in enumerate(ZERO_PAD_SHAPES)]
    if "conv_single_step" in wanted:
        out += [_helper_case("conv_single_step", (f, f, c), seed + i)
                for i, (f, c) in enumerate(SINGLE_STEP_SHAPES)]
    for function, direction in (("conv_forward", "forward"), ("conv_backward", "backward")):
        if function in wanted:
            out += [from_case(notebook_conv_case(direction, *g, seed=seed))
                    for g in CONV_GEOMETRIES]
    for function, direction in (("pool_forward", "forward"), ("pool_backward", "backward")):
        if function in wanted:
            out += [from_case(notebook_pool_case(op, direction, *g, seed=seed))
                    for op in ("max_pool2d", "avg_pool2d") for g in POOL_GEOMETRIES]
            if strict:
                probe = (2, 6, 6, 2, 3, 1)   # overlapping windows: ties are shared
                kinds = ("ties", "nan") if direction == "backward" else ("nan",)
                out += [from_case(notebook_pool_case("max_pool2d", direction, *probe, inputs=k,
                                                     seed=seed)) for k in kinds]
    if "create_mask_from_window" in wanted:
        out += [_helper_case("create_mask_from_window", s, seed + i)
                for i, s in enumerate(MASK_SHAPES)]
        if strict:
            out.append(_helper_case("create_mask_from_window", (3, 3), seed, probe="ties"))
    if "distribute_value" in wanted:
        out += [_helper_case("distribute_value", s, seed + i)
                for i, s in enumerate(DISTRIBUTE_SHAPES)]
    return out
