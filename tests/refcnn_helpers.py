"""Shared helpers of the refcnn tests: case tables, deterministic inputs, tolerances,
and a naive NumPy conv/pool written independently of refcnn's geometry code.

The case tables hold crosscheck's cases (:class:`crosscheck.cases.Case`, the suite's one
case vocabulary: its ids, its geometry) with the spellings the tests pass to refcnn.
Nothing here imports a framework: NumPy and crosscheck's case modules only. Inputs are
drawn from a generator seeded by the case id, so every pytest-xdist worker sees the same
numbers and a failing id is its own reproducer.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from crosscheck import geometry
from crosscheck.cases import Case

DTYPES = (np.float16, np.float32, np.float64)
DTYPE_IDS = ("f16", "f32", "f64")


def rng(*key) -> np.random.Generator:
    """A generator seeded by a stable hash of ``key`` (same numbers in every process)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _padding(pad):
    """refcnn's pad spelling as crosscheck's: its words are lower case ('SAME' is 'same')."""
    return pad.lower() if isinstance(pad, str) else pad


def _geometry_id(case: Case) -> str:
    """``case.id`` less the op, direction, dtype and seed (the tests choose those): its shape
    and parameter tokens, in crosscheck's id grammar (``n2h5w5c3o4-k3x3-s1x1-...``)."""
    return "-".join(case.id.split("-")[2:-2])


# ----------------------------------------------------------------------------- conv cases

@dataclass(frozen=True)
class ConvCase:
    """One conv layer: NHWC input (n, h, w, c_in), HWIO kernel (f[0], f[1], c_in/groups, c_out).

    The fields keep the spellings the tests hand refcnn (an int stride, ``'SAME'``, per-axis
    pads); :attr:`case` is the same layer as crosscheck's :class:`~crosscheck.cases.Case`,
    which gives the id, the per-side pads and the output size (crosscheck's geometry,
    written independently of refcnn's).
    """

    n: int
    h: int
    w: int
    c_in: int
    f: tuple[int, int]
    c_out: int
    stride: object = 1
    pad: object = 0
    dilation: object = 1
    groups: int = 1

    @property
    def case(self) -> Case:
        return Case.of("conv", 2, n=self.n, spatial=(self.h, self.w), c_in=self.c_in,
                       c_out=self.c_out, kernel=self.f, stride=self.stride,
                       padding=_padding(self.pad), dilation=self.dilation, groups=self.groups)

    @property
    def id(self) -> str:
        return _geometry_id(self.case)

    @property
    def hparameters(self) -> dict:
        return {"stride": self.stride, "pad": self.pad, "dilation": self.dilation,
                "groups": self.groups}

    @property
    def core_kwargs(self) -> dict:
        return {"stride": self.stride, "padding": self.pad, "dilation": self.dilation,
                "groups": self.groups}

    def arrays(self, dtype=np.float64, tag=""):
        """(A_prev, W, b) in ``dtype``, b shaped (1, 1, 1, c_out) as in the notebook."""
        g = rng(self.id, tag)
        x = g.standard_normal((self.n, self.h, self.w, self.c_in)).astype(dtype)
        w = g.standard_normal((*self.f, self.c_in // self.groups, self.c_out)).astype(dtype)
        b = g.standard_normal((1, 1, 1, self.c_out)).astype(dtype)
        return x, w, b

    @property
    def pads(self):
        """Explicit per-side pads ((top, bottom), (left, right)), 'same' worked out."""
        return geometry.explicit_pads(self.case)

    @property
    def out_hw(self):
        return self.case.out_spatial()


def explicit_pads(pad, in_hw, f, stride, dilation):
    """Per-side pads of a conv with refcnn's arguments, from crosscheck's geometry."""
    return ConvCase(1, *in_hw, 1, tuple(f), 1, stride, pad, dilation).pads


CONV_CASES = [
    ConvCase(2, 5, 5, 3, (3, 3), 4),
    ConvCase(2, 5, 5, 3, (3, 3), 4, stride=2, pad=1),
    ConvCase(2, 4, 4, 3, (2, 2), 8, stride=2, pad=2),          # the notebook's geometry
    ConvCase(1, 6, 5, 2, (3, 2), 3, stride=(1, 2), pad=(1, 0)),
    ConvCase(1, 5, 6, 2, (3, 3), 2, stride=(2, 1), pad=((0, 2), (1, 0))),
    ConvCase(1, 5, 5, 2, (3, 3), 3, pad="same"),
    ConvCase(1, 8, 8, 2, (3, 3), 2, stride=2, pad="same"),     # odd total pad (0, 1)
    ConvCase(1, 6, 7, 2, (4, 2), 2, pad="same"),               # even kernel: odd pad
    ConvCase(1, 9, 7, 1, (3, 3), 2, stride=3, pad="same", dilation=2),
    ConvCase(1, 6, 6, 2, (3, 3), 2, pad="valid"),
    ConvCase(1, 7, 7, 2, (3, 3), 2, dilation=2, pad=1),
    ConvCase(1, 6, 7, 2, (2, 3), 2, stride=2, dilation=(1, 2)),
    ConvCase(2, 5, 5, 4, (3, 3), 6, pad=1, groups=2),
    ConvCase(1, 5, 5, 3, (3, 3), 3, stride=2, pad=1, groups=3),  # depthwise
    ConvCase(1, 5, 5, 2, (2, 2), 4, groups=2),                  # depthwise, multiplier 2
    ConvCase(1, 4, 6, 2, (1, 3), 2, pad=((0, 0), (1, 1))),
    ConvCase(1, 6, 4, 2, (1, 1), 3, stride=2),
    ConvCase(1, 4, 4, 2, (4, 4), 2),                            # kernel covers the input
    ConvCase(1, 7, 7, 1, (2, 2), 2, stride=3, pad=1),           # stride > kernel
    ConvCase(1, 5, 5, 2, (3, 3), 2, stride=2, pad="SAME"),
]


# ----------------------------------------------------------------------------- pool cases

@dataclass(frozen=True)
class PoolCase:
    """One pooling layer on an NHWC input (n, h, w, c), for either mode (:data:`POOL_MODES`);
    :meth:`case` is it as crosscheck's :class:`~crosscheck.cases.Case` of one mode."""

    n: int
    h: int
    w: int
    c: int
    f: object
    stride: object
    pad: object = 0
    dilation: object = 1
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None

    def case(self, mode: str = "average") -> Case:
        extra = ({} if mode == "max" else dict(count_include_pad=self.count_include_pad,
                                                divisor_override=self.divisor_override))
        return Case.of("max_pool" if mode == "max" else "avg_pool", 2, n=self.n,
                       spatial=(self.h, self.w), c_in=self.c, kernel=self.f, stride=self.stride,
                       padding=_padding(self.pad), dilation=self.dilation,
                       ceil_mode=self.ceil_mode, **extra)

    @property
    def id(self) -> str:
        """The average-pool case's tokens: a superset of the max-pool case's."""
        return _geometry_id(self.case("average"))

    @property
    def hparameters(self) -> dict:
        hp = {"f": self.f, "stride": self.stride, "pad": self.pad, "dilation": self.dilation,
              "ceil_mode": self.ceil_mode}
        if not self.count_include_pad:
            hp["count_include_pad"] = False
        if self.divisor_override is not None:
            hp["divisor_override"] = self.divisor_override
        return hp

    def hparameters_for(self, mode) -> dict:
        hp = dict(self.hparameters)
        if mode == "max":
            hp.pop("count_include_pad", None)
            hp.pop("divisor_override", None)
        return hp

    def core_kwargs(self, mode) -> dict:
        kw = {"kernel_size": self.f, "stride": self.stride, "padding": self.pad,
              "dilation": self.dilation, "ceil_mode": self.ceil_mode}
        if mode == "average":
            kw.update(count_include_pad=self.count_include_pad,
                      divisor_override=self.divisor_override)
        return kw

    def array(self, dtype=np.float64, tag=""):
        return rng(self.id, tag).standard_normal((self.n, self.h, self.w, self.c)).astype(dtype)


POOL_CASES = [
    PoolCase(2, 4, 4, 3, 3, 2),                                   # the notebook's
    PoolCase(2, 5, 3, 2, 2, 1),                                   # the notebook's backward
    PoolCase(1, 5, 5, 2, 2, 2, pad=1),
    PoolCase(1, 5, 5, 2, 3, 2, pad=1, ceil_mode=True),
    PoolCase(1, 5, 5, 1, 2, 2, ceil_mode=True),                   # ceil overhang, no pad
    PoolCase(1, 5, 5, 1, 2, 2, pad=1, ceil_mode=True),            # dropped last window
    PoolCase(1, 9, 9, 1, 4, 4, pad=2, ceil_mode=True),            # dropped last window
    PoolCase(1, 12, 5, 1, 1, 2, ceil_mode=True),
    PoolCase(1, 6, 6, 2, 3, 2, pad=1, ceil_mode=True, count_include_pad=False),
    PoolCase(1, 5, 5, 2, 3, 2, pad=1, count_include_pad=False),
    PoolCase(1, 5, 5, 2, 3, 2, pad=1, divisor_override=3),
    PoolCase(1, 6, 6, 2, 3, 2, pad=1, ceil_mode=True, divisor_override=2),
    PoolCase(1, 7, 7, 2, 3, 1, pad=2, dilation=2),
    PoolCase(1, 7, 6, 1, 2, 2, pad=1, dilation=(2, 1), ceil_mode=True),
    PoolCase(1, 6, 7, 2, (2, 3), (1, 2), pad=((1, 0), (0, 1))),
    PoolCase(1, 7, 7, 2, 3, 2, pad="same"),
    PoolCase(1, 6, 6, 1, 2, 3, pad="valid", ceil_mode=True),
]

POOL_MODES = ("max", "average")


# ----------------------------------------------------------------------------- comparisons

def conv_magnitude(x, w, b=None) -> float:
    """A bound on any output's |sum of products| (fan-in * max|x| * max|w| + max|b|)."""
    fan_in = w.shape[0] * w.shape[1] * w.shape[2]
    m = fan_in * float(np.abs(x).max(initial=0)) * float(np.abs(w).max(initial=0))
    return m + (float(np.abs(b).max(initial=0)) if b is not None else 0.0)


def assert_close(actual, expected, dtype, magnitude=1.0, what="", ulps=2):
    """Both sides sum exactly-ish in float64 and round once to ``dtype``: they may
    differ by about one unit in the last place of ``dtype``, plus float64 summation
    error that scales with ``magnitude``."""
    dtype = np.dtype(dtype)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {dtype}"
    eps = float(np.finfo(dtype).eps)
    tiny = float(np.spacing(dtype.type(0)))
    atol = ulps * tiny + 64 * np.finfo(np.float64).eps * magnitude
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                               rtol=ulps * eps, atol=atol, err_msg=what)


# ----------------------------------------------------------------------------- naive references

def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def naive_conv2d(x, w, b, stride, pads, dilation, groups):
    """Conv written straight from the definition, per output pixel, in float64, with
    explicit per-side ``pads``: independent of refcnn's geometry and padding code."""
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    (pt, pb), (pl, pr) = pads
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wd, c_in = x.shape
    fh, fw, cg, c_out = w.shape
    og = c_out // groups
    xp = np.zeros((n, h + pt + pb, wd + pl + pr, c_in))
    xp[:, pt:pt + h, pl:pl + wd] = x
    ho = (h + pt + pb - dh * (fh - 1) - 1) // sh + 1
    wo = (wd + pl + pr - dw * (fw - 1) - 1) // sw + 1
    y = np.zeros((n, ho, wo, c_out))
    for i in range(ho):
        for j in range(wo):
            win = xp[:, i * sh:i * sh + dh * (fh - 1) + 1:dh, j * sw:j * sw + dw * (fw - 1) + 1:dw]
            for k in range(c_out):
                gi = k // og
                y[:, i, j, k] = np.einsum("nabc,abc->n", win[..., gi * cg:(gi + 1) * cg],
                                          w[..., k])
    if b is not None:
        y += np.asarray(b, np.float64).reshape(-1)
    return y


def naive_pool2d(x, f, stride, pads, mode):
    """Pooling (no ceil_mode, no dilation) from the definition: -inf padding for max,
    zero padding and divisor f*f (count_include_pad) for average."""
    (fh, fw), (sh, sw) = _pair(f), _pair(stride)
    (pt, pb), (pl, pr) = pads
    n, h, wd, c = x.shape
    fill = -np.inf if mode == "max" else 0.0
    xp = np.full((n, h + pt + pb, wd + pl + pr, c), fill)
    xp[:, pt:pt + h, pl:pl + wd] = x
    ho, wo = (h + pt + pb - fh) // sh + 1, (wd + pl + pr - fw) // sw + 1
    y = np.zeros((n, ho, wo, c))
    for i in range(ho):
        for j in range(wo):
            win = xp[:, i * sh:i * sh + fh, j * sw:j * sw + fw]
            y[:, i, j] = win.max(axis=(1, 2)) if mode == "max" else win.mean(axis=(1, 2))
    return y
