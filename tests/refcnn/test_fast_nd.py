"""refcnn's fast rank-generic conv and transposed conv against refcnn.functional (the spec).

The fast functions take functional's arguments and give its shapes and dtypes. In
float64 they agree with it to 1e-12 relative; with float32 or float16 inputs each
result lies within a rounding-error bound of the spec's: ``n * u_acc`` times the same
sum taken over absolute values (the spec run on ``|x|, |w|, |dy|``), ``n`` the number
of terms an output sums and ``u_acc`` the unit roundoff of the sums, plus one rounding
to the result's dtype. Each case id spells the geometry.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import refcnn.functional as F
from refcnn.fast import conv_backward, conv_transpose, conv_transpose_backward, FastConfig
from refcnn._checks import conv_geometry
from refcnn.fast import phases
from refcnn.fast.ndplan import Geometry
from refcnn.fast.nd import conv
from refcnn_helpers import rng

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


# ----------------------------------------------------------------------------- cases

class Case:
    """One conv or transposed conv: shapes as data, options as functional's keywords."""

    def __init__(self, size, kernel, c_in, c_out, groups=1, n=2, bias=True, **kw):
        self.size, self.kernel, self.c_in, self.c_out = tuple(size), tuple(kernel), c_in, c_out
        self.groups, self.n, self.bias = groups, n, bias
        self.kw = dict(kw, groups=groups)

    @property
    def id(self):
        shape = "x".join(map(str, self.size))
        k = "x".join(map(str, self.kernel))
        opts = "-".join(f"{key}={_tok(v)}" for key, v in self.kw.items() if key != "groups")
        return (f"{len(self.size)}d-N{self.n}-{shape}-k{k}-{self.c_in}to{self.c_out}"
                f"-g{self.groups}{'-' + opts if opts else ''}{'' if self.bias else '-nobias'}")

    def arrays(self, dtype, transposed=False, tag=""):
        g = rng("fast-nd", self.id, np.dtype(dtype).name, transposed, tag)
        x = g.standard_normal((self.n, *self.size, self.c_in))
        if transposed:  # the weights of the conv from the output back to x
            w = g.standard_normal((*self.kernel, self.c_out // self.groups, self.c_in))
        else:
            w = g.standard_normal((*self.kernel, self.c_in // self.groups, self.c_out))
        b = g.standard_normal(self.c_out) if self.bias else None
        return [None if a is None else a.astype(dtype) for a in (x, w, b)]


def _tok(v):
    return str(v).replace(" ", "").replace("'", "")


CONV_CASES = [
    # 1-D
    Case((9,), (3,), 4, 6, padding=1),
    Case((10,), (3,), 4, 6, groups=2, stride=2, padding=((1, 0),)),
    Case((11,), (2,), 3, 3, stride=3, dilation=2, padding="same"),
    Case((7,), (3,), 5, 5, groups=5, padding="same_lower", bias=False),
    Case((6,), (4,), 2, 4, dilation=2, padding=((3, 1),)),
    # 2-D
    Case((6, 7), (3, 3), 4, 5, padding=1),
    Case((7, 6), (2, 3), 4, 6, groups=2, stride=(2, 1), padding=((1, 0), (0, 2)),
         dilation=(1, 2)),
    Case((8, 8), (3, 3), 6, 6, groups=6, stride=2, padding="same_lower"),
    Case((5, 9), (1, 4), 3, 2, stride=(1, 3), padding="valid", bias=False),
    Case((6, 7), (3, 3), 3, 4, dilation=(1, 2), padding=((2, 1), (2, 2))),
    # 3-D
    Case((4, 5, 6), (3, 3, 3), 3, 4, padding=1),
    Case((5, 6, 4), (2, 3, 1), 4, 6, groups=2, stride=(2, 1, 2),
         padding=((1, 0), (0, 1), (1, 1)), dilation=(2, 1, 1)),
    Case((4, 6, 6), (3, 3, 3), 4, 4, groups=4, stride=(1, 2, 2), padding="same"),
    Case((2, 4, 4), (3, 2, 2), 2, 3, padding=((2, 2), (0, 1), (1, 0))),  # kernel deeper than x
    Case((3, 5, 5), (2, 2, 2), 2, 2, stride=(5, 1, 1), padding="same_lower", bias=False),
    Case((4, 5, 6), (2, 3, 3), 2, 3, dilation=(2, 1, 2), padding="same"),
    Case((6, 4, 5), (3, 1, 2), 2, 6, groups=2, stride=(3, 1, 1), dilation=(2, 1, 1),
         padding=((0, 3), (0, 0), (1, 0))),
]

TRANSPOSE_CASES = [
    # 1-D
    Case((5,), (3,), 4, 6, stride=2, padding=1, output_padding=1),
    Case((6,), (3,), 4, 6, groups=2, stride=1, dilation=3, padding=((0, 1),),
         output_padding=2),  # output_padding >= stride: cells past every window
    Case((4,), (4,), 3, 3, groups=3, stride=3, padding=((2, 0),), bias=False),
    Case((1,), (1,), 2, 3, stride=3, padding=((1, 0),), output_padding=2),  # bias alone
    # 2-D
    Case((5, 4), (4, 4), 4, 3, stride=2, padding=1),
    Case((4, 5), (3, 2), 4, 6, groups=2, stride=(2, 3), padding=((1, 0), (0, 2)),
         dilation=(1, 2), output_padding=(1, 2)),
    Case((5, 5), (3, 3), 6, 6, groups=6, stride=2, padding=1, output_padding=1),
    Case((3, 4), (2, 3), 2, 4, stride=1, padding=0, bias=False),
    Case((4, 5), (3, 3), 3, 2, stride=(2, 1), dilation=(1, 2), padding=((1, 0), (1, 2)),
         output_padding=(1, 1)),
    # 3-D
    Case((3, 4, 4), (3, 3, 3), 3, 4, stride=1, padding=1),
    Case((3, 3, 4), (2, 3, 2), 4, 6, groups=2, stride=(2, 1, 2),
         padding=((1, 0), (0, 1), (1, 1)), dilation=(2, 1, 1), output_padding=(1, 0, 1)),
    Case((2, 4, 3), (3, 2, 2), 4, 4, groups=4, stride=(3, 2, 1), padding="valid",
         output_padding=(2, 0, 0)),
    Case((4, 3, 3), (2, 2, 2), 2, 3, stride=(1, 1, 1), dilation=(3, 1, 1),
         padding=((0, 0), (1, 1), (0, 0)), output_padding=(2, 0, 0), bias=False),
]

DTYPES = (np.float64, np.float32, np.float16)
MODES = ("float64", "native")


def _cases(cases):
    return pytest.mark.parametrize("case", cases, ids=[c.id for c in cases])


_dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
_modes = pytest.mark.parametrize("accumulate", MODES)


# ----------------------------------------------------------------------------- the bound

def _read_only(*arrays):
    out = []
    for a in arrays:
        if a is not None:
            a = a.copy()
            a.setflags(write=False)  # a write into a caller's array raises
        out.append(a)
    return out


def _unit_roundoff(accumulate, dtype):
    acc = np.float64 if accumulate == "float64" else np.promote_types(dtype, np.float32)
    return float(np.finfo(acc).eps) / 2


def assert_within(got, want, magnitude, terms, dtype, accumulate, what):
    """``got`` has ``want``'s shape and dtype and lies within ``terms * u_acc *
    magnitude`` of it, elementwise, plus the two roundings to ``dtype`` (``got``'s and
    ``want``'s) and float64's own error of the spec; ``magnitude`` is the sum of the
    absolute values of the terms."""
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    assert got.dtype == want.dtype == np.dtype(dtype), (
        f"{what}: dtype {got.dtype}, expected {want.dtype} (and {np.dtype(dtype)})")
    u_out = float(np.finfo(dtype).eps) / 2
    u64 = float(np.finfo(np.float64).eps) / 2
    bound = ((terms + 2) * (_unit_roundoff(accumulate, dtype) + u64) * magnitude
             + 2 * u_out * np.abs(want.astype(np.float64)) + float(np.finfo(dtype).tiny))
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else ()
    assert np.all(err <= bound), (
        f"{what}: error {err[worst]:.3g} > bound {bound[worst]:.3g} at {worst} "
        f"(got {got[worst]}, expected {want[worst]})")


def _abs(*arrays):
    return [None if a is None else np.abs(a.astype(np.float64)) for a in arrays]


def _terms(case, out_spatial):
    """The most terms one output of the forward or of a gradient sums."""
    taps = math.prod(case.kernel)
    per_group = max(case.c_in, case.c_out) // case.groups
    return max(taps * per_group, case.n * math.prod(out_spatial)) * taps


def _assert_grads_within(label, case, got, spec, mags, terms, accumulate):
    """Each gradient within the rounding bound of the spec's; None where the spec's is."""
    for name, g_, s_, m_ in zip(("dx", "dw", "db"), got, spec, mags):
        if s_ is None:
            assert g_ is None, f"{label} {case.id}: {name} {g_!r}, expected None"
            continue
        assert_within(g_, s_, m_, terms, s_.dtype, accumulate, f"{label} {case.id} {name}")


def _assert_grads_close(label, case, got, spec, floor=0):
    """Each float64 gradient the spec's to 1e-12 (absolute: of the largest |value|, or
    of ``floor`` when that is larger); None where the spec's is."""
    for name, g_, s_ in zip(("dx", "dw", "db"), got, spec):
        if s_ is None:
            assert g_ is None, f"{label} {case.id}: {name} {g_!r}, expected None"
            continue
        np.testing.assert_allclose(g_, s_, rtol=1e-12, atol=1e-12 * max(np.abs(s_).max(), floor),
                                   err_msg=f"{label} {case.id} {name}")


def _assert_unchanged(label, case, arrays, kept):
    for a, k in zip(arrays, kept):
        assert a is None or np.array_equal(a, k), f"{label} {case.id} changed its input"


# ----------------------------------------------------------------------------- conv

def _check_conv(case, dtype, accumulate, workspace_bytes=None, config=FastConfig()):
    x, w, b = _read_only(*case.arrays(dtype))
    kept = [None if a is None else a.copy() for a in (x, w, b)]
    fast = dict(accumulate=accumulate, workspace_bytes=workspace_bytes, config=config)
    y = conv(x, w, b, **case.kw, **fast)
    want = F.conv(x, w, b, **case.kw)
    terms = _terms(case, want.shape[1:-1])
    assert_within(y, want, F.conv(*_abs(x, w, b), **case.kw), terms, want.dtype, accumulate,
                  f"conv {case.id}")
    dy = _read_only(rng("fast-nd", case.id, "dy").standard_normal(want.shape).astype(dtype))[0]
    _assert_grads_within("conv_backward", case, conv_backward(dy, x, w, b, **case.kw, **fast),
                         F.conv_backward(dy, x, w, b, **case.kw),
                         F.conv_backward(*_abs(dy, x, w, b), **case.kw), terms, accumulate)
    _assert_unchanged("conv", case, (x, w, b), kept)


@_cases(CONV_CASES)
@_dtypes
@_modes
def test_fast_conv_forward_backward_vs_spec(case, dtype, accumulate):
    _check_conv(case, dtype, accumulate)


@_cases(CONV_CASES)
def test_fast_conv_float64_is_spec_to_1e12(case):
    x, w, b = case.arrays(np.float64)
    want = F.conv(x, w, b, **case.kw)
    np.testing.assert_allclose(conv(x, w, b, **case.kw), want, rtol=1e-12,
                               atol=1e-12 * np.abs(want).max(), err_msg=f"conv {case.id}")
    dy = rng("fast-nd", case.id, "dy").standard_normal(want.shape)
    _assert_grads_close("conv_backward", case, conv_backward(dy, x, w, b, **case.kw),
                        F.conv_backward(dy, x, w, b, **case.kw))


@_cases([c for c in CONV_CASES if len(c.size) == 3] + CONV_CASES[:2])
@pytest.mark.parametrize("workspace_bytes", [1, 700])
def test_fast_conv_small_workspace_same_result(case, workspace_bytes):
    """Blocks of volumes, of depths and of rows give the spec's result too."""
    _check_conv(case, np.float64, "float64", workspace_bytes,
                FastConfig(block_target_bytes=workspace_bytes))


# ----------------------------------------------------------------------------- transposed

def _check_transpose(case, dtype, accumulate, workspace_bytes=None, config=FastConfig()):
    x, w, b = _read_only(*case.arrays(dtype, transposed=True))
    kept = [None if a is None else a.copy() for a in (x, w, b)]
    fast = dict(accumulate=accumulate, workspace_bytes=workspace_bytes, config=config)
    y = conv_transpose(x, w, b, **case.kw, **fast)
    want = F.conv_transpose(x, w, b, **case.kw)
    terms = _terms(case, case.size) * max(case.c_in, case.c_out)
    assert_within(y, want, F.conv_transpose(*_abs(x, w, b), **case.kw), terms, want.dtype,
                  accumulate, f"conv_transpose {case.id}")
    dy = _read_only(rng("fast-nd", case.id, "dyT").standard_normal(want.shape).astype(dtype))[0]
    _assert_grads_within("conv_transpose_backward", case,
                         conv_transpose_backward(dy, x, w, b, **case.kw, **fast),
                         F.conv_transpose_backward(dy, x, w, b, **case.kw),
                         F.conv_transpose_backward(*_abs(dy, x, w, b), **case.kw),
                         max(terms, dy.size), accumulate)
    _assert_unchanged("conv_transpose", case, (x, w, b), kept)


@_cases(TRANSPOSE_CASES)
@_dtypes
@_modes
def test_fast_conv_transpose_forward_backward_vs_spec(case, dtype, accumulate):
    _check_transpose(case, dtype, accumulate)


@_cases(TRANSPOSE_CASES)
def test_fast_conv_transpose_float64_is_spec_to_1e12(case):
    x, w, b = case.arrays(np.float64, transposed=True)
    want = F.conv_transpose(x, w, b, **case.kw)
    scale = max(np.abs(want).max(), 1.0)
    np.testing.assert_allclose(conv_transpose(x, w, b, **case.kw), want, rtol=1e-12,
                               atol=1e-12 * scale, err_msg=f"conv_transpose {case.id}")
    dy = rng("fast-nd", case.id, "dyT").standard_normal(want.shape)
    _assert_grads_close("conv_transpose_backward", case,
                        conv_transpose_backward(dy, x, w, b, **case.kw),
                        F.conv_transpose_backward(dy, x, w, b, **case.kw), floor=1)


@_cases([c for c in TRANSPOSE_CASES if len(c.size) == 3] + TRANSPOSE_CASES[:2])
@pytest.mark.parametrize("workspace_bytes", [1, 700])
def test_fast_conv_transpose_small_workspace_same_result(case, workspace_bytes):
    _check_transpose(case, np.float64, "float64", workspace_bytes,
                     FastConfig(block_target_bytes=workspace_bytes))


@_cases(CONV_CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_fast_phase_input_grad_is_conv_dx(case, bias):
    """The phase decomposition (the transposed conv's forward) is the conv's dx for any
    geometry, plus a bias when given."""
    x, w, _ = case.arrays(np.float64)
    geo = Geometry.of(x, w, conv_geometry(x, w, None, case.kw.get("stride", 1),
                                             case.kw.get("padding", 0),
                                             case.kw.get("dilation", 1), case.groups))
    dy = rng("fast-nd", case.id, "dy").standard_normal(geo.out_shape)
    b = rng("fast-nd", case.id, "b").standard_normal(case.c_in) if bias else None
    want = F.conv_backward(dy, x, w, None, **case.kw)[0] + (0 if b is None else b)
    got = phases.input_grad(geo, dy, w, np.dtype(np.float64), b, "float64", None, FastConfig())
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max(),
                               err_msg=f"phases.input_grad {case.id}")


# ----------------------------------------------------------------------------- layouts

def _views(a):
    """The same values under other strides: reversed axes copied back, a Fortran-ordered
    copy, a strided slice of a larger buffer."""
    flipped = a[::-1, ..., ::-1].copy()[::-1, ..., ::-1]
    big = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), a.dtype)
    big[..., ::2] = a
    return {"negative": flipped, "fortran": np.asfortranarray(a), "strided": big[..., ::2]}


@pytest.mark.parametrize("layout", ["negative", "fortran", "strided"])
@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_fast_any_strides_same_result_as_contiguous(rank, op, layout):
    cases = CONV_CASES if op == "conv" else TRANSPOSE_CASES
    case = next(c for c in cases if len(c.size) == rank and c.groups > 1 and c.bias)
    x, w, b = case.arrays(np.float32, transposed=op == "conv_transpose")
    fwd, bwd = (conv, conv_backward) if op == "conv" else (conv_transpose,
                                                           conv_transpose_backward)
    y = fwd(x, w, b, **case.kw, accumulate="native")
    dy = rng("fast-nd", "layout", case.id).standard_normal(y.shape).astype(np.float32)
    grads = bwd(dy, x, w, b, **case.kw, accumulate="native")
    xv, wv, dyv = _views(x)[layout], _views(w)[layout], _views(dy)[layout]
    assert not (xv.flags.c_contiguous and wv.flags.c_contiguous)
    np.testing.assert_array_equal(fwd(xv, wv, b, **case.kw, accumulate="native"), y,
                                  err_msg=f"{op} {case.id} {layout}")
    for name, g_, r_ in zip(("dx", "dw", "db"),
                            bwd(dyv, xv, wv, b, **case.kw, accumulate="native"), grads):
        np.testing.assert_array_equal(g_, r_, err_msg=f"{op}_backward {case.id} {layout} {name}")


# ----------------------------------------------------------------------------- edges

EMPTY = [
    ("conv", (0, 5, 4), (3, 4, 6), {"padding": 1}),  # no image
    ("conv", (2, 0, 4), (1, 4, 6), {"padding": 1}),  # no input cell: the bias alone
    ("conv", (2, 0, 3, 3, 4), (1, 1, 1, 4, 6), {"padding": ((1, 0), (0, 0), (0, 0))}),
    ("conv_transpose", (0, 3, 3, 4), (2, 2, 6, 4), {"stride": 2}),
]


@pytest.mark.parametrize("op, x_shape, w_shape, kw", EMPTY,
                         ids=[f"{e[0]}-x{_tok(e[1])}-w{_tok(e[2])}" for e in EMPTY])
@_modes
def test_fast_empty_shapes_match_spec(op, x_shape, w_shape, kw, accumulate):
    g = rng("fast-nd", "empty", op, x_shape, w_shape)
    x, w = g.standard_normal(x_shape), g.standard_normal(w_shape)
    c_out = w_shape[-1] if op == "conv" else w_shape[-2]
    b = g.standard_normal(c_out)
    fwd, bwd = {"conv": (conv, conv_backward),
                "conv_transpose": (conv_transpose, conv_transpose_backward)}[op]
    ref_fwd, ref_bwd = getattr(F, op), getattr(F, op + "_backward")
    want = ref_fwd(x, w, b, **kw)
    np.testing.assert_array_equal(fwd(x, w, b, **kw, accumulate=accumulate), want)
    dy = g.standard_normal(want.shape)
    for g_, r_ in zip(bwd(dy, x, w, b, **kw, accumulate=accumulate), ref_bwd(dy, x, w, b, **kw)):
        assert g_.shape == r_.shape and g_.dtype == r_.dtype
        np.testing.assert_allclose(g_, r_, rtol=1e-12, atol=1e-12)


DTYPE_MIXES = [(np.float16, np.float32, None), (np.float32, np.float64, None),
               (np.float16, np.float16, np.float64), (np.float32, np.float16, np.float32)]


@pytest.mark.parametrize("dx_, dw_, db_", DTYPE_MIXES,
                         ids=["-".join(np.dtype(d).name if d else "none" for d in m)
                              for m in DTYPE_MIXES])
@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_fast_mixed_dtypes_promote_as_spec(rank, op, dx_, dw_, db_):
    transposed = op == "conv_transpose"
    case = next(c for c in (TRANSPOSE_CASES if transposed else CONV_CASES)
                if len(c.size) == rank)
    x, w, b = case.arrays(np.float64, transposed=transposed)
    x, w, b = x.astype(dx_), w.astype(dw_), None if db_ is None else b.astype(db_)
    fwd, bwd = (conv_transpose, conv_transpose_backward) if transposed else (conv,
                                                                             conv_backward)
    want = getattr(F, op)(x, w, b, **case.kw)
    y = fwd(x, w, b, **case.kw)
    assert y.dtype == want.dtype
    # Summed in float64 and rounded once, as the spec: within one rounding of it.
    np.testing.assert_allclose(y.astype(float), want.astype(float),
                               rtol=np.finfo(want.dtype).eps, atol=1e-6)
    dy = rng("fast-nd", "mix", case.id).standard_normal(want.shape).astype(dx_)
    for name, g_, r_ in zip(("dx", "dw", "db"), bwd(dy, x, w, b, **case.kw),
                            getattr(F, op + "_backward")(dy, x, w, b, **case.kw)):
        assert (g_ is None) == (r_ is None), f"{op} {name}"
        if r_ is not None:
            assert g_.dtype == r_.dtype and g_.shape == r_.shape, f"{op} {name}"
            np.testing.assert_allclose(g_.astype(float), r_.astype(float),
                                       rtol=np.finfo(r_.dtype).eps, atol=1e-6,
                                       err_msg=f"{op}_backward {name}")


# ----------------------------------------------------------------------------- errors

X1, W1 = np.zeros((2, 5, 4)), np.zeros((3, 4, 6))
X3, W3 = np.zeros((2, 3, 4, 4, 4)), np.zeros((2, 2, 2, 4, 6))
BAD = [
    # (op, args, kwargs, exception type, parameter the message names)
    ("conv", (X1.tolist(), W1), {}, TypeError, "x"),
    ("conv", (X1.astype(int), W1), {}, TypeError, "x"),
    ("conv", (np.zeros((2, 5)), W1), {}, ValueError, "x"),
    ("conv", (X1, W3), {}, ValueError, "w"),
    ("conv", (X1, W1, np.zeros(5)), {}, ValueError, "b"),
    ("conv", (X1, W1), {"stride": 0}, ValueError, "stride"),
    ("conv", (X1, W1), {"stride": (1, 1)}, ValueError, "stride"),
    ("conv", (X1, W1), {"dilation": 1.5}, TypeError, "dilation"),
    ("conv", (X1, W1), {"padding": "full"}, ValueError, "padding"),
    ("conv", (X1, W1), {"padding": ((1, 2, 3),)}, ValueError, "padding"),
    ("conv", (X1, W1), {"groups": 3}, ValueError, "groups"),
    ("conv", (X3, np.zeros((2, 2, 2, 3, 6))), {"groups": 2}, ValueError, "w"),
    ("conv", (X1, np.zeros((9, 4, 6))), {}, ValueError, "kernel"),
    ("conv", (X1, W1), {"accumulate": "float32"}, ValueError, "accumulate"),
    ("conv", (X1, W1), {"workspace_bytes": 0}, ValueError, "workspace_bytes"),
    ("conv", (X1, W1), {"workspace_bytes": 1.5}, TypeError, "workspace_bytes"),
    ("conv", (X1, W1), {"config": {}}, TypeError, "config"),
    ("conv_backward", (np.zeros((2, 4, 6)), X1, W1), {}, ValueError, "dy"),
    ("conv_backward", (np.zeros((2, 3, 6), int), X1, W1), {}, TypeError, "dy"),
    ("conv_transpose", (X1, np.zeros((3, 6, 4))), {"padding": "same"}, ValueError, "padding"),
    ("conv_transpose", (X1, np.zeros((3, 6, 4))), {"output_padding": 1}, ValueError,
     "output_padding"),
    ("conv_transpose", (X1, np.zeros((3, 6, 5))), {}, ValueError, "w"),
    ("conv_transpose", (X1, np.zeros((3, 6, 4))), {"padding": 9}, ValueError, "padding"),
    ("conv_transpose", (X1, np.zeros((3, 6, 4))), {"accumulate": None}, ValueError,
     "accumulate"),
    ("conv_transpose_backward", (np.zeros((2, 6, 6)), X1, np.zeros((3, 6, 4))), {},
     ValueError, "dy"),
]
FAST = {"conv": conv, "conv_backward": conv_backward, "conv_transpose": conv_transpose,
        "conv_transpose_backward": conv_transpose_backward}


@pytest.mark.parametrize("op, args, kwargs, error, name", BAD,
                         ids=[f"{b[0]}-{i}-{b[4]}" for i, b in enumerate(BAD)])
def test_fast_bad_arguments_refused_as_spec(op, args, kwargs, error, name):
    with pytest.raises(error, match=rf"(^|\W){name}\W") as got:
        FAST[op](*args, **kwargs)
    spec_kwargs = {k: v for k, v in kwargs.items()
                   if k not in ("accumulate", "workspace_bytes", "config")}
    if spec_kwargs == kwargs:  # functional's own argument: functional's very words
        with pytest.raises(error) as want:
            getattr(F, op)(*args, **kwargs)
        assert str(got.value) == str(want.value)


# ----------------------------------------------------------------------------- properties

@st.composite
def geometries(draw, transposed=False):
    rank = draw(st.integers(1, 3))
    size = draw(st.tuples(*[st.integers(1, 5)] * rank))
    kernel = draw(st.tuples(*[st.integers(1, 3)] * rank))
    stride = draw(st.tuples(*[st.integers(1, 3)] * rank))
    dilation = draw(st.tuples(*[st.integers(1, 3)] * rank))
    groups = draw(st.sampled_from([1, 2, 3]))
    cpg, opg = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = tuple(draw(st.tuples(st.integers(0, 3), st.integers(0, 3))) for _ in range(rank))
    kw = dict(stride=stride, dilation=dilation)
    if transposed:
        kw["padding"] = pads
        kw["output_padding"] = tuple(draw(st.integers(0, max(s, d) - 1))
                                     for s, d in zip(stride, dilation))
    else:
        kw["padding"] = draw(st.one_of(st.just(pads),
                                       st.sampled_from(["same", "same_lower", "valid"])))
    return Case(size, kernel, groups * cpg, groups * opg, groups=groups,
                n=draw(st.integers(0, 2)), bias=draw(st.booleans()), **kw)


def _valid(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except ValueError:  # a geometry with no output
        assume(False)


@settings(max_examples=40)
@given(case=geometries(), accumulate=st.sampled_from(MODES), seed=st.integers(0, 2**16))
def test_fast_conv_property_vs_spec(case, accumulate, seed):
    x, w, b = case.arrays(np.float64, tag=seed)
    want = _valid(F.conv, x, w, b, **case.kw)
    got = conv(x, w, b, **case.kw, accumulate=accumulate)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * max(np.abs(want).max(
        initial=0), 1), err_msg=f"conv {case.id}")
    dy = np.random.default_rng(seed).standard_normal(want.shape)
    for name, g_, s_ in zip(("dx", "dw", "db"),
                            conv_backward(dy, x, w, b, **case.kw, accumulate=accumulate),
                            F.conv_backward(dy, x, w, b, **case.kw)):
        assert (g_ is None) == (s_ is None), f"conv_backward {case.id} {name}"
        if s_ is not None:
            np.testing.assert_allclose(g_, s_, rtol=1e-12, atol=1e-12 * max(np.abs(s_).max(
                initial=0), 1), err_msg=f"conv_backward {case.id} {name}")


@settings(max_examples=40)
@given(case=geometries(transposed=True), accumulate=st.sampled_from(MODES),
       seed=st.integers(0, 2**16))
def test_fast_conv_transpose_property_vs_spec(case, accumulate, seed):
    x, w, b = case.arrays(np.float64, transposed=True, tag=seed)
    want = _valid(F.conv_transpose, x, w, b, **case.kw)
    got = conv_transpose(x, w, b, **case.kw, accumulate=accumulate)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * max(np.abs(want).max(
        initial=0), 1), err_msg=f"conv_transpose {case.id}")
    dy = np.random.default_rng(seed).standard_normal(want.shape)
    for name, g_, s_ in zip(("dx", "dw", "db"),
                            conv_transpose_backward(dy, x, w, b, **case.kw,
                                                    accumulate=accumulate),
                            F.conv_transpose_backward(dy, x, w, b, **case.kw)):
        assert (g_ is None) == (s_ is None), f"conv_transpose_backward {case.id} {name}"
        if s_ is not None:
            np.testing.assert_allclose(g_, s_, rtol=1e-12, atol=1e-12 * max(np.abs(s_).max(
                initial=0), 1), err_msg=f"conv_transpose_backward {case.id} {name}")
