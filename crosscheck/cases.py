"""One case type for every op of the table, shared by the sweeps, the CLI, reports and conform.

A :class:`Case` is a frozen dataclass: an op name with its rank (``conv2d``,
``max_pool3d``), a direction, the data shape (batch, spatial sizes, channels),
the op's parameters (normalised by :mod:`crosscheck.ops`, every default filled
in), a dtype, an input kind and a seed. Its id is readable, stable and parses
back (``Case.from_id(case.id) == case``); 2-D ids are the ones release 0.1.0
printed, e.g. ``conv2d-fwd-n2h7w5c4o6-k3x3-s2x1-p1.1.0.2-d1x1-g2-float32-s0``.
Parameters read as attributes (``case.kernel``, ``case.ceil_mode``); 2-D cases
also have ``h`` and ``w``.

Inputs are drawn deterministically from the seed and the geometry, then rounded
to the dtype, so every process (and every pytest-xdist worker) sees the same numbers.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field, replace

import numpy as np

from crosscheck import ops as op_table
from crosscheck.ops import DIRECTION_TOKENS, DIRECTIONS, HIGHER_ORDER  # noqa: F401

DTYPES = ("float64", "float32", "float16", "bfloat16")
#: Input kinds: continuous random values (the sweeps), probes of a known difference, or
#: the exact tier's integers (:mod:`crosscheck.exact`). New kinds go at the end: a kind's
#: position seeds its draws.
INPUT_KINDS = ("random", "ties", "nan", "neginf", "offset", "exact")
#: The tier each input kind belongs to (reports show them apart).
TIERS = {"random": "random", "ties": "probe", "nan": "probe", "neginf": "probe",
         "offset": "probe", "exact": "exact"}
#: Spatial axis letters of the shape token, per rank (2-D is 0.1.0's ``h7w5``).
_AXIS_LETTERS = {1: "l", 2: "hw", 3: "dhw"}

OPS = op_table.op_names()


@dataclass(frozen=True)
class Case:
    """One call of one op: shapes channels-last, parameters as the op table defines them.

    Data is ``(N, *spatial, C_in)``; conv weights ``(*kernel, C_in/groups, C_out)``,
    transposed-conv weights ``(*kernel, C_out/groups, C_in)``; ``params`` maps each
    parameter of the op to its canonical value (pass a dict; it is stored sorted).
    Build one with :meth:`of` for keyword parameters.
    """

    op: str
    direction: str
    n: int
    spatial: tuple[int, ...]
    c_in: int
    c_out: int
    params: dict = field(default_factory=dict, hash=False)
    dtype: str = "float64"
    seed: int = 0
    inputs: str = "random"
    tags: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self):
        entry, rank = op_table.get(self.op)
        if self.direction not in DIRECTION_TOKENS:
            raise ValueError(f"direction must be one of {tuple(DIRECTION_TOKENS)}, got "
                             f"{self.direction!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.inputs not in INPUT_KINDS:
            raise ValueError(f"inputs must be one of {INPUT_KINDS}, got {self.inputs!r}")
        spatial = tuple(int(s) for s in self.spatial)
        if len(spatial) != rank:
            raise ValueError(f"{self.op} needs {rank} spatial sizes, got spatial={self.spatial!r}")
        if not entry.weighted and self.c_out != self.c_in:
            raise ValueError("pooling cases must have c_out == c_in")
        given = dict(self.params)
        unknown = set(given) - {p.name for p in entry.params}
        if unknown:
            raise ValueError(f"{self.op} has no parameter(s) {sorted(unknown)}; its parameters "
                             f"are {[p.name for p in entry.params]}")
        params = {}
        for p in entry.params:
            value = given.get(p.name, p.default)
            if value is None and p.name == "stride":
                value = params["kernel"]
            if value is None and p.kind != "optint":
                raise ValueError(f"{self.op} needs {p.name}")
            params[p.name] = p.normalise(value, rank)
        object.__setattr__(self, "spatial", spatial)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "tags", tuple(self.tags))

    @classmethod
    def of(cls, family: str, rank: int, direction: str = "forward", *, n: int, spatial,
           c_in: int, c_out: int | None = None, dtype: str = "float64", seed: int = 0,
           inputs: str = "random", tags=(), **params) -> "Case":
        """A case from an op family, a rank and keyword parameters (``kernel=3, stride=2``)."""
        return cls(f"{family}{rank}d", direction, n, tuple(spatial), c_in,
                   c_in if c_out is None else c_out, params, dtype, seed, inputs, tuple(tags))

    @classmethod
    def legacy_2d(cls, op, direction, n, h, w, c_in, c_out, kernel, stride=(1, 1),
                  padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1, bias=True,
                  ceil_mode=False, count_include_pad=True, divisor_override=None,
                  dtype="float64", seed=0, inputs="random", tags=()) -> "Case":
        """A 2-D case from release 0.1.0's constructor arguments (options that do not apply
        to the op are ignored, as they were then)."""
        entry, _ = op_table.get(op)
        given = dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                     groups=groups, bias=bias, ceil_mode=ceil_mode,
                     count_include_pad=count_include_pad, divisor_override=divisor_override)
        names = {p.name for p in entry.params}
        return cls(op, direction, n, (h, w), c_in, c_out,
                   {k: v for k, v in given.items() if k in names}, dtype, seed, inputs, tags)

    def __hash__(self):
        return hash(self.id)

    def __getattr__(self, name):
        # Parameters read as attributes (case.kernel); only called for names not found
        # otherwise, so the fields and properties win.
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__} {self.__dict__.get('op')!r} has no "
                             f"attribute or parameter {name!r}")

    # ---- what the op table says about this case ---------------------------------------------
    @property
    def entry(self) -> op_table.Op:
        return op_table.get(self.op)[0]

    @property
    def family(self) -> str:
        return self.entry.family

    @property
    def rank(self) -> int:
        return len(self.spatial)

    @property
    def is_conv(self) -> bool:
        """Whether the op has weights (conv and transposed conv)."""
        return self.entry.weighted

    @property
    def h(self) -> int:
        return self.spatial[-2] if self.rank >= 2 else self.spatial[-1]

    @property
    def w(self) -> int:
        return self.spatial[-1]

    def output_names(self) -> tuple[str, ...]:
        return self.entry.output_names(self)

    def out_spatial(self) -> tuple[int, ...]:
        """Output spatial sizes (the frameworks' geometry, :mod:`crosscheck.geometry`)."""
        from crosscheck.geometry import out_spatial

        return out_spatial(self)

    def check_output(self) -> tuple[int, ...]:
        """:meth:`out_spatial`, or a ValueError naming the case when an axis of it is empty
        (the window fits nowhere): no inputs can be made for such a case."""
        out = self.out_spatial()
        if min(out, default=1) < 1:
            raise ValueError(f"case {self.id} has no output ({out}): the kernel is larger "
                             "than the padded input")
        return out

    def out_hw(self) -> tuple[int, ...]:
        """0.1.0's name for :meth:`out_spatial`."""
        return self.out_spatial()

    def options(self) -> dict:
        """Keyword options of the ``refcnn.functional`` call this case describes."""
        return op_table.options(self)

    def reduction_length(self) -> int:
        """Terms summed per output value: ``prod(kernel) * C_in / groups`` (conv), taps (pool)."""
        if self.family.startswith("adaptive"):
            return math.prod(-(-n // o) + 1 for n, o in zip(self.spatial, self.output_size))
        taps = math.prod(self.kernel)
        return taps * self.c_in // self.groups if self.is_conv else taps

    # ---- identity -----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """Readable, stable id, e.g. ``conv2d-fwd-n2h7w5c4o6-k3x3-s2x1-p1.1.0.2-d1x1-g2-float32-s0``."""
        shape = f"n{self.n}" + "".join(f"{a}{s}" for a, s in
                                       zip(_AXIS_LETTERS[self.rank], self.spatial))
        shape += f"c{self.c_in}" + (f"o{self.c_out}" if self.is_conv else "")
        parts = [self.op, DIRECTION_TOKENS[self.direction], shape]
        parts += [t for p in self.entry.params if (t := p.text(self.params[p.name], self.rank)) is not None]
        if self.inputs != "random":
            parts.append(self.inputs)
        return "-".join(parts + [self.dtype, f"s{self.seed}"])

    def __str__(self) -> str:
        return self.id

    @classmethod
    def from_id(cls, case_id: str) -> "Case":
        """Parse an id made by :attr:`id` (or by release 0.1.0) back into the case."""
        try:
            return _parse_id(case_id)
        except (ValueError, IndexError, KeyError) as exc:
            raise ValueError(f"not a case id: {case_id!r} ({exc})") from None

    @property
    def tier(self) -> str:
        """``random``, ``probe`` (a known difference's inputs) or ``exact`` (bit for bit)."""
        return TIERS[self.inputs]

    @property
    def compile_key(self) -> str:
        """Cases with equal keys share shapes, options and dtype, and so one compiled function
        in JAX (forward and backward together): runners keep them on one worker."""
        return self.with_(seed=0, direction="forward", inputs="random").id

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_dict(self) -> dict:
        return {"op": self.op, "direction": self.direction, "n": self.n,
                "spatial": list(self.spatial), "c_in": self.c_in, "c_out": self.c_out,
                "params": _jsonable(self.params), "dtype": self.dtype, "seed": self.seed,
                "inputs": self.inputs, "tags": list(self.tags)}

    @classmethod
    def from_json(cls, text: str) -> "Case":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, d: dict) -> "Case":
        """From :meth:`to_dict`'s form, or 0.1.0's (fields ``h``, ``w``, ``kernel``, ...)."""
        d = dict(d)
        if "spatial" not in d:
            return _from_legacy_dict(d)
        return cls(d.pop("op"), d.pop("direction"), d.pop("n"), tuple(d.pop("spatial")),
                   d.pop("c_in"), d.pop("c_out"), d.pop("params", {}), **d)

    def with_(self, **changes) -> "Case":
        """A copy with fields or parameters changed (``case.with_(dtype="float32", stride=2)``)."""
        names = {p.name for p in self.entry.params}
        param_changes = {k: changes.pop(k) for k in list(changes) if k in names}
        if param_changes:
            changes["params"] = {**self.params, **param_changes}
        return replace(self, **changes)


def _parse_id(case_id: str) -> Case:
    tokens = case_id.split("-")
    op = tokens[0]
    entry, rank = op_table.get(op)
    direction = {v: k for k, v in DIRECTION_TOKENS.items()}[tokens[1]]
    n, spatial, c_in, c_out = _parse_shape(tokens[2], rank, entry.weighted)
    rest = tokens[3:]
    if len(rest) < 2 or not rest[-1].startswith("s") or not rest[-1][1:].isdigit():
        raise ValueError("the id must end with -DTYPE-sSEED")
    seed, dtype, rest = int(rest[-1][1:]), rest[-2], rest[:-2]
    inputs = "random"
    if rest and rest[-1] in INPUT_KINDS:
        inputs, rest = rest[-1], rest[:-1]
    params, i = {}, 0
    for p in entry.params:
        value = p.parse(rest[i], rank) if i < len(rest) else None
        if value is not None:
            params[p.name] = value
            i += 1
        elif p.shown == "always":
            raise ValueError(f"expected the {p.name} token ({p.token}...) at "
                             f"{rest[i] if i < len(rest) else 'the end'!r}")
    if i != len(rest):
        raise ValueError(f"unexpected token(s) {rest[i:]}")
    case = Case(op, direction, n, spatial, c_in, c_out, params, dtype, seed, inputs)
    if case.id != case_id:
        raise ValueError(f"it reads back as {case.id!r}")
    return case


def _parse_shape(token: str, rank: int, weighted: bool):
    import re

    letters = _AXIS_LETTERS[rank]
    pattern = "n(\\d+)" + "".join(f"{a}(\\d+)" for a in letters) + "c(\\d+)" + \
        ("o(\\d+)" if weighted else "")
    m = re.fullmatch(pattern, token)
    if not m:
        raise ValueError(f"shape token {token!r} is not of the form {pattern}")
    values = [int(v) for v in m.groups()]
    n, spatial, c_in = values[0], tuple(values[1:1 + rank]), values[1 + rank]
    return n, spatial, c_in, values[2 + rank] if weighted else c_in


def _from_legacy_dict(d: dict) -> Case:
    """0.1.0's JSON case (one flat dict of 2-D fields) as a case."""
    op = d["op"]
    entry, _ = op_table.get(op)
    names = {p.name for p in entry.params}
    params = {k: v for k, v in d.items() if k in names}
    if "kernel" not in params and "kernel" in d:
        params["kernel"] = d["kernel"]
    return Case(op, d["direction"], d["n"], (d["h"], d["w"]), d["c_in"], d["c_out"], params,
                d.get("dtype", "float64"), d.get("seed", 0), d.get("inputs", "random"),
                tuple(d.get("tags", ())))


def _jsonable(params: dict) -> dict:
    def plain(v):
        return [plain(x) for x in v] if isinstance(v, tuple) else v
    return {k: plain(v) for k, v in params.items()}


#: Every array an :class:`Inputs` can hold, in order: the primals and dy, then the jvp
#: tangents, then the double_backward cotangents of the backward's outputs.
ROLES = ("x", "w", "b", "dy", "tx", "tw", "tb", "gx", "gw", "gb")


@dataclass(frozen=True)
class Inputs:
    """A case's arrays in canonical layout, float64, holding values exact in the case's dtype.

    x: (N, *spatial, C_in); w: the op's weight shape or None; b: (C_out,) or None;
    dy: (N, *out, C_out), the cotangent for backward (and double_backward) cases.
    jvp cases add the tangents tx, tw, tb (x's, w's, b's shapes; None where the primal
    is); double_backward cases the cotangents gx, gw, gb of the backward's dx, dw, db.
    They are None for every other direction, so ``Inputs(x, w, b, dy)`` (0.1.0's
    protocol) still builds the inputs of a forward or backward case.
    """

    x: np.ndarray
    w: np.ndarray | None
    b: np.ndarray | None
    dy: np.ndarray
    tx: np.ndarray | None = None
    tw: np.ndarray | None = None
    tb: np.ndarray | None = None
    gx: np.ndarray | None = None
    gw: np.ndarray | None = None
    gb: np.ndarray | None = None


def make_inputs(case: Case) -> Inputs:
    """Deterministic inputs for ``case``.

    ``random`` inputs are continuous, so ties never decide a result. The probe
    kinds exercise a known difference between frameworks: ``ties`` draws from
    {0, 1, 2} (exact ties in every window), ``nan`` sprinkles NaN, ``neginf``
    fills the first half of the last spatial axis with -inf, ``offset`` adds 1e8
    so that float32 rounding makes distinct values tie (float32 spacing there is 8).
    ``exact`` draws the exact tier's integers (:func:`crosscheck.exact.exact_inputs`),
    on which every result is exact. The arrays are read-only: a backend that writes to
    them raises instead of corrupting what the next backend sees.
    """
    geometry_key = case.with_(seed=0, dtype="float64", direction="forward",
                              inputs="random").id
    rng = np.random.default_rng([case.seed, zlib.crc32(geometry_key.encode()),
                                 INPUT_KINDS.index(case.inputs)])
    if case.inputs == "exact":
        from crosscheck.exact import exact_inputs

        return exact_inputs(case, rng)
    x = _probe_values(rng, (case.n, *case.spatial, case.c_in), case.inputs)
    w = b = None
    w_shape = case.entry.weight_shape(case)
    if w_shape is not None:
        fan_in = max(math.prod(w_shape[:-1]), 1)
        w = rng.standard_normal(w_shape) / np.sqrt(fan_in)
        b = rng.standard_normal(case.c_out) if case.bias else None
    out = case.check_output()
    dy = rng.standard_normal((case.n, *out, case.c_out))
    arrays = [x, w, b, dy]
    if case.direction in HIGHER_ORDER:
        # Drawn after dy, so x, w, b and dy are the forward case's; continuous whatever
        # the input kind (a probe's ties and NaN are in x). Tangents in the jvp slots,
        # second-order cotangents in the double_backward ones.
        extra = [rng.standard_normal(x.shape),
                 None if w is None else rng.standard_normal(w.shape) / np.sqrt(fan_in),
                 None if b is None else rng.standard_normal(b.shape)]
        arrays += extra + [None] * 3 if case.direction == "jvp" else [None] * 3 + extra
    return Inputs(*(None if a is None else _frozen(round_to(a, case.dtype)) for a in arrays))


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _probe_values(rng, shape, kind: str) -> np.ndarray:
    if kind == "ties":
        return rng.integers(0, 3, size=shape).astype(np.float64)
    x = rng.standard_normal(shape)
    if kind == "nan":
        x[rng.random(shape) < 0.15] = np.nan
    elif kind == "neginf":
        # The first half of the last spatial axis is -inf: windows there have no finite cell.
        x[..., : max(1, shape[-2] // 2), :] = -np.inf
    elif kind == "offset":
        x = 1e8 + rng.random(shape) * 64
    return x


def round_to(a: np.ndarray, dtype: str) -> np.ndarray:
    """Round float64 values to ``dtype`` (round to nearest even) and return them as float64."""
    if dtype == "bfloat16":
        bits = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.astype(np.uint32).view(np.float32).astype(np.float64)
    return np.asarray(a).astype(dtype).astype(np.float64)
