"""One case specification, shared by the pytest sweeps, the CLI, the reports and conformance.

A :class:`Case` is a frozen dataclass with a stable, readable id that parses
back (``Case.from_id(case.id) == case``) and a JSON round-trip. Its inputs are
drawn deterministically from its seed and geometry, then rounded to its dtype,
so every process (and every pytest-xdist worker) sees the same numbers.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import asdict, dataclass, field, replace

import numpy as np

OPS = ("conv2d", "max_pool2d", "avg_pool2d")
DIRECTIONS = ("forward", "backward")
DTYPES = ("float64", "float32", "float16", "bfloat16")
#: Input kinds: continuous random values (the sweeps), or probes of a known difference.
INPUT_KINDS = ("random", "ties", "nan", "neginf", "offset")

Pads = tuple[tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class Case:
    """One conv or pool call: op, direction, shapes, options, dtype and seed.

    Shapes are NHWC for data and HWIO for conv weights. ``padding`` is per-side
    ``((top, bottom), (left, right))`` or ``"same"``/``"valid"``.
    """

    op: str
    direction: str
    n: int
    h: int
    w: int
    c_in: int
    c_out: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: Pads | str = ((0, 0), (0, 0))
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: bool = True
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None
    dtype: str = "float64"
    seed: int = 0
    inputs: str = "random"
    tags: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"op must be one of {OPS}, got {self.op!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.inputs not in INPUT_KINDS:
            raise ValueError(f"inputs must be one of {INPUT_KINDS}, got {self.inputs!r}")
        if self.op != "conv2d" and self.c_out != self.c_in:
            raise ValueError("pooling cases must have c_out == c_in")
        # Options that do not apply to the op take their defaults, so that one call has
        # one case and one id (a max pool has no bias, a conv no ceil_mode).
        if self.op != "conv2d":
            object.__setattr__(self, "bias", True)
            object.__setattr__(self, "groups", 1)
        else:
            object.__setattr__(self, "ceil_mode", False)
        if self.op != "avg_pool2d":
            object.__setattr__(self, "count_include_pad", True)
            object.__setattr__(self, "divisor_override", None)
        # Normalise lists (from JSON) to tuples so equal cases hash equal.
        object.__setattr__(self, "kernel", tuple(self.kernel))
        object.__setattr__(self, "stride", tuple(self.stride))
        object.__setattr__(self, "dilation", tuple(self.dilation))
        if not isinstance(self.padding, str):
            object.__setattr__(self, "padding", tuple(tuple(p) for p in self.padding))
        object.__setattr__(self, "tags", tuple(self.tags))

    # ---- identity -------------------------------------------------------------------------
    @property
    def is_conv(self) -> bool:
        return self.op == "conv2d"

    @property
    def id(self) -> str:
        """Readable, stable id, e.g. ``conv2d-fwd-n2h7w5c4o6-k3x3-s2x1-p1.1.0.2-d1x1-g2-float32-s0``."""
        parts = [self.op, "fwd" if self.direction == "forward" else "bwd"]
        shape = f"n{self.n}h{self.h}w{self.w}c{self.c_in}"
        if self.is_conv:
            shape += f"o{self.c_out}"
        parts += [shape, f"k{self.kernel[0]}x{self.kernel[1]}",
                  f"s{self.stride[0]}x{self.stride[1]}", "p" + _pad_text(self.padding),
                  f"d{self.dilation[0]}x{self.dilation[1]}"]
        if self.is_conv:
            parts.append(f"g{self.groups}")
            if not self.bias:
                parts.append("nobias")
        else:
            if self.ceil_mode:
                parts.append("ceil")
            if self.op == "avg_pool2d":
                if not self.count_include_pad:
                    parts.append("excl")
                if self.divisor_override is not None:
                    parts.append(f"div{self.divisor_override}")
        if self.inputs != "random":
            parts.append(self.inputs)
        parts += [self.dtype, f"s{self.seed}"]
        return "-".join(parts)

    def __str__(self) -> str:
        return self.id

    @classmethod
    def from_id(cls, case_id: str) -> "Case":
        """Parse an id made by :attr:`id` back into the case."""
        m = _ID_RE.fullmatch(case_id)
        if not m:
            raise ValueError(f"not a case id: {case_id!r}")
        g = m.groupdict()
        pad = g["pad"]
        padding = pad if pad in ("same", "valid") else _parse_pads(pad)
        return cls(
            op=g["op"], direction="forward" if g["dir"] == "fwd" else "backward",
            n=int(g["n"]), h=int(g["h"]), w=int(g["w"]), c_in=int(g["c"]),
            c_out=int(g["o"]) if g["o"] else int(g["c"]),
            kernel=(int(g["kh"]), int(g["kw"])), stride=(int(g["sh"]), int(g["sw"])),
            padding=padding, dilation=(int(g["dh"]), int(g["dw"])),
            groups=int(g["g"]) if g["g"] else 1, bias=not g["nobias"],
            ceil_mode=bool(g["ceil"]), count_include_pad=not g["excl"],
            divisor_override=int(g["div"]) if g["div"] else None,
            dtype=g["dtype"], seed=int(g["seed"]), inputs=g["inputs"] or "random",
        )

    @property
    def compile_key(self) -> str:
        """Cases with equal keys share shapes, options and dtype, and so one compiled function
        in JAX (forward and backward together): runners keep them on one worker."""
        return self.with_(seed=0, direction="forward", inputs="random").id

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tags"] = list(self.tags)
        return d

    @classmethod
    def from_json(cls, text: str) -> "Case":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, d: dict) -> "Case":
        return cls(**d)

    def with_(self, **changes) -> "Case":
        return replace(self, **changes)

    # ---- the refcnn call this case describes ---------------------------------------------
    def hparameters(self) -> dict:
        """The notebook-style ``hparameters`` dict for refcnn's layer API."""
        pad = self.padding
        if self.is_conv:
            return {"stride": self.stride, "pad": pad, "dilation": self.dilation,
                    "groups": self.groups}
        hp = {"f": self.kernel, "stride": self.stride, "pad": pad, "dilation": self.dilation,
              "ceil_mode": self.ceil_mode}
        if self.op == "avg_pool2d":
            hp["count_include_pad"] = self.count_include_pad
            hp["divisor_override"] = self.divisor_override
        return hp

    def options(self) -> dict:
        """Keyword options of refcnn's functional core (``refcnn.conv2d`` etc.)."""
        if self.is_conv:
            return {"stride": self.stride, "padding": self.padding,
                    "dilation": self.dilation, "groups": self.groups}
        opts = {"kernel_size": self.kernel, "stride": self.stride, "padding": self.padding,
                "dilation": self.dilation, "ceil_mode": self.ceil_mode}
        if self.op == "avg_pool2d":
            opts["count_include_pad"] = self.count_include_pad
            opts["divisor_override"] = self.divisor_override
        return opts

    def resolved_pads(self) -> Pads:
        """Per-side padding, with 'same'/'valid' worked out (odd pixel at the end)."""
        from refcnn.geometry import resolve_padding

        return resolve_padding(self.padding, (self.h, self.w), self.kernel, self.stride,
                               self.dilation)

    def out_hw(self) -> tuple[int, int]:
        from refcnn.geometry import conv_out_size, pool_out_size

        pads = self.resolved_pads()
        if self.is_conv:
            return tuple(conv_out_size(s, f, st, d, p) for s, f, st, d, p in
                         zip((self.h, self.w), self.kernel, self.stride, self.dilation, pads))
        return tuple(pool_out_size(s, f, st, d, p, self.ceil_mode) for s, f, st, d, p in
                     zip((self.h, self.w), self.kernel, self.stride, self.dilation, pads))

    def reduction_length(self) -> int:
        """Terms summed per output value: ``f_h * f_w * C_in / groups`` (conv), taps (pool)."""
        taps = self.kernel[0] * self.kernel[1]
        return taps * self.c_in // self.groups if self.is_conv else taps


@dataclass(frozen=True)
class Inputs:
    """A case's arrays in canonical layout, float64, holding values exact in the case's dtype.

    x: (N, H, W, C_in); w: (f_h, f_w, C_in/groups, C_out) or None; b: (C_out,) or None;
    dy: (N, H_out, W_out, C_out), the cotangent for backward cases.
    """

    x: np.ndarray
    w: np.ndarray | None
    b: np.ndarray | None
    dy: np.ndarray


def make_inputs(case: Case) -> Inputs:
    """Deterministic inputs for ``case``.

    ``random`` inputs are continuous, so ties never decide a result. The probe
    kinds exercise a known difference between frameworks: ``ties`` draws from
    {0, 1, 2} (exact ties in every window), ``nan`` sprinkles NaN, ``neginf``
    fills whole regions with -inf, ``offset`` adds 1e8 so that float32 rounding
    makes distinct values tie (float32 spacing there is 8).
    """
    geometry_key = case.with_(seed=0, dtype="float64", direction="forward",
                              inputs="random").id
    rng = np.random.default_rng([case.seed, zlib.crc32(geometry_key.encode()),
                                 INPUT_KINDS.index(case.inputs)])
    x = _probe_values(rng, (case.n, case.h, case.w, case.c_in), case.inputs)
    w = b = None
    if case.is_conv:
        fan_in = case.reduction_length()
        w = rng.standard_normal((*case.kernel, case.c_in // case.groups, case.c_out))
        w /= np.sqrt(max(fan_in, 1))
        b = rng.standard_normal(case.c_out) if case.bias else None
    out_hw = case.out_hw()
    if min(out_hw) < 1:
        raise ValueError(f"case {case.id} has no output ({out_hw}): the kernel is larger "
                         "than the padded input")
    dy = rng.standard_normal((case.n, *out_hw, case.c_out))
    return Inputs(*(None if a is None else round_to(a, case.dtype) for a in (x, w, b, dy)))


def _probe_values(rng, shape, kind: str) -> np.ndarray:
    if kind == "ties":
        return rng.integers(0, 3, size=shape).astype(np.float64)
    x = rng.standard_normal(shape)
    if kind == "nan":
        x[rng.random(shape) < 0.15] = np.nan
    elif kind == "neginf":
        # Whole left half of every image is -inf: windows there have no finite cell.
        x[:, :, : max(1, shape[2] // 2), :] = -np.inf
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


def _pad_text(padding) -> str:
    if isinstance(padding, str):
        return padding
    (t, b), (left, r) = padding
    return f"{t}.{b}.{left}.{r}"


def _parse_pads(text: str) -> Pads:
    t, b, left, r = (int(v) for v in text.split("."))
    return ((t, b), (left, r))


_ID_RE = re.compile(
    r"(?P<op>conv2d|max_pool2d|avg_pool2d)-(?P<dir>fwd|bwd)"
    r"-n(?P<n>\d+)h(?P<h>\d+)w(?P<w>\d+)c(?P<c>\d+)(?:o(?P<o>\d+))?"
    r"-k(?P<kh>\d+)x(?P<kw>\d+)-s(?P<sh>\d+)x(?P<sw>\d+)"
    r"-p(?P<pad>same|valid|\d+\.\d+\.\d+\.\d+)-d(?P<dh>\d+)x(?P<dw>\d+)"
    r"(?:-g(?P<g>\d+))?(?P<nobias>-nobias)?(?P<ceil>-ceil)?(?P<excl>-excl)?"
    r"(?:-div(?P<div>\d+))?(?:-(?P<inputs>ties|nan|neginf|offset))?-(?P<dtype>float64|float32|float16|bfloat16)-s(?P<seed>\d+)"
)
