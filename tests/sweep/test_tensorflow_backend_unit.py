"""The TensorFlow backend's own choices: native spellings, emulations, indices, refusals, hygiene.

Agreement with the reference over the sweep is checked elsewhere; these tests pin what
is specific to how this backend drives TensorFlow: which cases run as TensorFlow's own
``'SAME'``/``'VALID'``/explicit pads and which through ``tf.pad`` (and that both give the
same answer where both apply), the transposed conv's spellings, ``max_pool_with_argmax``
indices turned into torch's per-plane indices, the reasons it refuses a case, and the
case's read-only arrays accepted and left untouched.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from crosscheck import geometry  # noqa: E402
from crosscheck.backends import tensorflow_backend as tfb  # noqa: E402
from crosscheck.backends.base import Unsupported  # noqa: E402
from crosscheck.backends.tensorflow_backend import TensorflowBackend  # noqa: E402
from crosscheck.cases import Case, Inputs, make_inputs  # noqa: E402

RANKS = (1, 2, 3)
SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 4, 6)}


@pytest.fixture(scope="module")
def backend():
    return TensorflowBackend()


def _pool(family, rank, direction="forward", dtype="float32", **params):
    return Case.of(family, rank, direction, n=2, spatial=SPATIAL[rank], c_in=3, dtype=dtype,
                   **params)


def _conv(family, rank, direction="forward", dtype="float32", **params):
    params.setdefault("kernel", 3)
    params.setdefault("groups", 1)
    return Case.of(family, rank, direction, n=2, spatial=SPATIAL[rank], c_in=4, c_out=6,
                   dtype=dtype, **params)


def _assert_same(got, want, case, rtol=0.0):
    for name in want:
        if rtol:
            np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=rtol,
                                       err_msg=f"{case.id} {name}")
        else:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{case.id} {name}")


# ---- which spelling a case gets ----------------------------------------------------------------
def test_max_pool_pads_that_are_tensorflows_same_split_run_as_same():
    # L=9, k=3, s=2: TensorFlow's 'SAME' pads (1, 1), so padding=1 is its native spelling.
    assert tfb._max_plan(_pool("max_pool", 1, kernel=3, stride=2, padding=1)) == ("native", "SAME")
    assert tfb._max_plan(_pool("max_pool", 2, kernel=3, stride=2, padding="same")) == \
        ("native", "SAME")
    assert tfb._max_plan(_pool("max_pool", 2, kernel=2, stride=2)) == ("native", "VALID")


def test_max_pool_other_pads_run_explicitly_or_by_minus_inf_pad():
    pads = ((0, 1), (1, 0))
    how, padding = tfb._max_plan(_pool("max_pool", 2, kernel=2, padding=pads))
    assert how == "native" and padding == [[0, 0], [0, 1], [1, 0], [0, 0]]  # max_pool2d's list
    how, padding = tfb._max_plan(_pool("max_pool", 3, kernel=2, padding=((1, 0),) * 3))
    assert how == "padded" and padding == [(1, 0)] * 3  # max_pool3d has no list form
    # Indices (max_pool_with_argmax: 'SAME'/'VALID' only) and dilation (tf.nn.pool: 'VALID'
    # only) go through tf.pad as well.
    assert tfb._max_plan(_pool("max_pool", 2, kernel=2, padding=pads, return_indices=True))[0] \
        == "padded"
    assert tfb._max_plan(_pool("max_pool", 2, kernel=2, stride=1, padding=1, dilation=2))[0] \
        == "padded"


def test_ceil_mode_extra_cells_join_the_end_pad():
    # L=8, k=3, s=2, p=1, ceil: 5 windows, the last reaching one cell past the pad. TensorFlow's
    # 'SAME' for L=8 gives 4 windows, so this is no 'SAME': pads (1, 1 + 1) explicitly.
    case = Case.of("max_pool", 1, n=1, spatial=(8,), c_in=1, kernel=3, stride=2, padding=1,
                   ceil_mode=True)
    assert tfb._max_plan(case) == ("native", [[0, 0], [1, 2], [0, 0]])


def test_pads_after_are_cut_to_the_cells_the_windows_reach():
    # H=9, k=1, s=3, pad after 1, ceil: 4 windows before ceil_mode drops the one starting in
    # the pad. The kept 3 reach no pad cell: an explicit pad (0, 1) would fit that 4th window
    # in (and TensorFlow refuses a pad >= the window: "Bottom padding 1 needs to be smaller
    # than the window size 1"). W's pad after 0 stays.
    case = Case.of("max_pool", 2, n=1, spatial=(9, 9), c_in=3, kernel=(1, 3), stride=(3, 1),
                   padding=((0, 1), (2, 0)), ceil_mode=True)
    assert tfb._max_plan(case) == ("native", [[0, 0], [0, 0], [2, 0], [0, 0]])
    # Not ceil_mode: L=6, k=2, s=2, pads (1, 2): the 4 windows reach 1 of the 2 cells after.
    case = Case.of("max_pool", 1, n=1, spatial=(6,), c_in=1, kernel=2, stride=2,
                   padding=((1, 2),))
    assert tfb._max_plan(case) == ("native", [[0, 0], [1, 1], [0, 0]])


@pytest.mark.parametrize("case_id", [
    # Each failed before the pads after were cut (full sweep, or random pools): TensorFlow's
    # refusal of a pad >= the window, or one window more than ceil_mode keeps.
    "max_pool2d-fwd-n1h9w9c3-k1x3-s3x1-p0.1.2.0-d1x1-ceil-float32-s0",
    "max_pool2d-bwd-n1h9w9c3-k1x3-s3x1-p0.1.2.0-d1x1-ceil-float32-s0",
    "max_pool2d-fwd-n2h7w6c2-k2x4-s2x2-p0.2.0.1-d1x1-float64-s0",
    "max_pool2d-fwd-n2h5w5c1-k1x1-s3x2-p0.2.0.2-d1x1-ceil-idx-float64-s0",
    "max_pool2d-bwd-n2h5w5c1-k1x1-s3x2-p0.2.0.2-d1x1-ceil-idx-float64-s0",
    "max_pool3d-bwd-n2d5h4w5c2-k1x1x2-s2x3x2-p0.2.0.0.1.2-d1x1x1-ceil-float32-s0",
    "avg_pool2d-fwd-n2h7w6c2-k3x2-s1x1-p1.2.1.2-d1x1-ceil-float64-s0",
])
def test_windows_ceil_mode_drops_are_not_computed(backend, case_id):
    from crosscheck.runner import run_backend

    result = run_backend(Case.from_id(case_id), "tensorflow", backend)
    assert result.status == "passed", result.summary()


@pytest.mark.parametrize("case, want", [
    # count_include_pad: zero pads counted by tf.pad, then 'VALID'.
    (_pool("avg_pool", 1, kernel=3, stride=2, padding=1), ([(1, 1)], "VALID")),
    # Padding left out of the divisor exactly as TensorFlow's 'SAME' split: native 'SAME'.
    (_pool("avg_pool", 1, kernel=3, stride=2, padding=1, count_include_pad=False),
     ([(0, 0)], "SAME")),
    (_pool("avg_pool", 2, kernel=3, stride=1, padding="same", count_include_pad=False),
     ([(0, 0), (0, 0)], "SAME")),
], ids=lambda v: v.id if isinstance(v, Case) else "")
def test_avg_pool_plans(case, want):
    assert tfb._avg_plan(case) == want


def test_transposed_conv_spellings():
    def spelling(**params):
        case = _conv("conv_transpose", 2, **params)
        found = tfb._transpose_padding(case)
        return found if isinstance(found, str) else ("explicit" if found else "full")

    assert spelling(stride=2) == "VALID"
    # H=7 -> O=13 with k=3, s=2, p=1: TensorFlow's 'SAME' for output 13 pads 1 first.
    assert spelling(stride=2, padding=1) == "SAME"
    assert spelling(stride=2, padding=((2, 0), (0, 1))) == "explicit"
    # Explicit padding leaves oneDNN for kernels without groups or dilation: the full output.
    assert spelling(stride=2, padding=((2, 0), (0, 1)), dilation=2) == "full"
    assert spelling(stride=2, padding=((2, 0), (0, 1)), groups=2) == "full"
    # 1-D and 3-D have no explicit form: pads TensorFlow's rules cannot spell are cropped.
    assert spelling_1d(padding=((2, 0),)) == "full"


def spelling_1d(**params):
    case = Case.of("conv_transpose", 1, n=1, spatial=(5,), c_in=2, c_out=2, kernel=3, **params)
    found = tfb._transpose_padding(case)
    return found if isinstance(found, str) else ("explicit" if found else "full")


# ---- the spellings agree where more than one applies ---------------------------------------
@pytest.mark.parametrize("rank", (1, 2))
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("indices", [False, True])
def test_max_pool_native_same_matches_minus_inf_pad(backend, monkeypatch, rank, direction,
                                                   indices):
    same = _pool("max_pool", rank, direction, kernel=3, stride=2, padding="same",
                 return_indices=indices)
    case = same.with_(padding=geometry.explicit_pads(same))  # (1, 1) on 7 and 9, (0, 1) on 6
    assert tfb._max_plan(case) == ("native", "SAME")
    inputs = make_inputs(case)
    native = backend.run(case, inputs)
    with monkeypatch.context() as m:
        m.setattr(tfb, "_max_plan", lambda c: ("padded", geometry.explicit_pads(c)))
        emulated = backend.run(case, inputs)
    _assert_same(emulated, native, case)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_max_pool_explicit_list_matches_minus_inf_pad(backend, monkeypatch, direction):
    case = _pool("max_pool", 2, direction, kernel=3, stride=1, padding=((0, 2), (1, 0)))
    assert tfb._max_plan(case)[1] == [[0, 0], [0, 2], [1, 0], [0, 0]]
    inputs = make_inputs(case)
    native = backend.run(case, inputs)
    with monkeypatch.context() as m:
        m.setattr(tfb, "_max_plan", lambda c: ("padded", geometry.explicit_pads(c)))
        emulated = backend.run(case, inputs)
    _assert_same(emulated, native, case)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_dilated_strided_pool_keeps_every_sth_window(backend, direction):
    # tf.nn.pool takes dilation only with stride 1: the stride-2 windows are every other one.
    strided = _pool("max_pool", 2, direction, kernel=2, stride=2, dilation=2, padding=1)
    unit = strided.with_(stride=1)
    inputs = make_inputs(strided)
    got = backend.run(strided, inputs)
    if direction == "forward":
        full = backend.run(unit, Inputs(inputs.x, None, None, np.zeros((2, 7, 6, 3))))["y"]
        np.testing.assert_array_equal(got["y"], full[:, ::2, ::2], err_msg=strided.id)
    else:  # the same gradient as the unit-stride pool with dy only on the kept windows
        dy = np.zeros((2, *unit.out_spatial(), 3))
        dy[:, ::2, ::2] = inputs.dy
        want = backend.run(unit, Inputs(inputs.x, None, None, dy))["dx"]
        np.testing.assert_array_equal(got["dx"], want, err_msg=strided.id)


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_conv_same_matches_its_explicit_pads(backend, rank, direction):
    # 'same' runs as TensorFlow's 'SAME'; the same pads given explicitly run as conv2d's list
    # (2-D) or tf.pad (1-D, 3-D). An even kernel makes them asymmetric.
    same = _conv("conv", rank, direction, dtype="float64", kernel=(4, 2, 3)[:rank], stride=2,
                 padding="same")
    pads = geometry.explicit_pads(same)
    assert any(a != b for a, b in pads)
    inputs = make_inputs(same)
    want = backend.run(same, inputs)
    got = backend.run(same.with_(padding=pads), inputs)
    _assert_same(got, want, same, rtol=1e-13)


@pytest.mark.parametrize("rank", RANKS)
def test_dilated_strided_conv_is_the_unit_stride_conv_subsampled(backend, rank):
    # tf.nn.convolution refuses dilation with stride; the per-rank op takes both.
    case = _conv("conv", rank, dtype="float32", kernel=2, stride=2, dilation=2, padding="valid")
    unit = case.with_(stride=1)
    inputs = make_inputs(case)
    got = backend.run(case, inputs)["y"]
    full = backend.run(unit, Inputs(inputs.x, inputs.w, inputs.b, None))["y"]
    index = (slice(None), *(slice(None, None, 2),) * rank, slice(None))
    np.testing.assert_allclose(got, full[index], rtol=1e-5, atol=1e-5, err_msg=case.id)


@pytest.mark.parametrize("params", [
    dict(stride=2),                                          # 'VALID'
    dict(stride=2, padding=1),                               # 'SAME'
    dict(stride=2, padding=((2, 0), (0, 1)), output_padding=1),  # explicit list
], ids=["valid", "same", "explicit"])
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_conv_transpose_spellings_match_the_cropped_full_output(backend, monkeypatch, params,
                                                                direction):
    case = _conv("conv_transpose", 2, direction, dtype="float64", **params)
    inputs = make_inputs(case)
    native = backend.run(case, inputs)
    with monkeypatch.context() as m:
        m.setattr(tfb, "_transpose_padding", lambda c: None)
        cropped = backend.run(case, inputs)
    _assert_same(cropped, native, case, rtol=1e-13)


@pytest.mark.parametrize("rank", RANKS)
def test_conv_transpose_is_the_adjoint_of_conv(backend, rank):
    # <conv_transpose(x), y> == <x, conv(y)> with the same pads and weight array; output
    # padding past the full output (hi=0, op=1) takes the crop-and-pad route.
    pads = ((2, 0), (0, 1), (1, 2))[:rank]
    stride = (2, 1, 3)[:rank]
    ct = Case.of("conv_transpose", rank, "forward", n=2, spatial=SPATIAL[rank], c_in=6,
                 c_out=4, kernel=3, stride=stride, padding=pads,
                 output_padding=(1, 0, 2)[:rank], bias=False)
    ct_in = make_inputs(ct)
    y = backend.run(ct, ct_in)["y"]
    conv = Case.of("conv", rank, "forward", n=2, spatial=y.shape[1:-1], c_in=4, c_out=6,
                   kernel=3, stride=stride, padding=pads, bias=False)
    assert conv.out_spatial() == ct.spatial
    probe = np.random.default_rng(0).standard_normal(y.shape)
    conv_y = backend.run(conv, Inputs(x=probe, w=ct_in.w, b=None, dy=ct_in.x))["y"]
    np.testing.assert_allclose(np.vdot(y, probe), np.vdot(ct_in.x, conv_y), rtol=1e-12)


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_divisors(backend, count_include_pad):
    # L=9, k=3, s=2, p=1 on ones: the edge windows hold 2 real cells of 3.
    case = Case.of("avg_pool", 1, n=1, spatial=(9,), c_in=1, kernel=3, stride=2, padding=1,
                   count_include_pad=count_include_pad)
    ones = Inputs(np.ones((1, 9, 1)), None, None, np.zeros((1, 5, 1)))
    y = backend.run(case, ones)["y"].ravel()
    edge = 2 / 3 if count_include_pad else 1.0
    np.testing.assert_allclose(y, [edge, 1, 1, 1, edge], rtol=1e-15)


# ---- indices --------------------------------------------------------------------------------
def _gather(x, indices):
    n, c = x.shape[0], x.shape[-1]
    flat = x.reshape(n, -1, c)
    return np.take_along_axis(flat, indices.reshape(n, -1, c), axis=1).reshape(indices.shape)


@pytest.mark.parametrize("case", [
    _pool("max_pool", 1, kernel=3, stride=2, padding=1, return_indices=True),   # 'SAME', 1-D
    _pool("max_pool", 2, kernel=2, stride=1, return_indices=True),             # 'VALID'
    _pool("max_pool", 2, kernel=3, stride=2, padding=((0, 2), (1, 0)),
          return_indices=True),                                                # -inf tf.pad
    _pool("max_pool", 2, kernel=3, stride=2, padding=1, ceil_mode=True, return_indices=True),
    *(_pool("adaptive_max_pool", r, output_size=(3, 4, 2)[:r], return_indices=True)
      for r in RANKS),
], ids=lambda c: c.id)
def test_indices_are_flat_plane_indices_channels_last(backend, case):
    inputs = make_inputs(case)
    out = backend.run(case, inputs)
    y, idx = out["y"], out["indices"]
    assert idx.dtype == np.int64 and idx.shape == y.shape == (case.n, *case.out_spatial(), 3)
    assert idx.min() >= 0 and idx.max() < np.prod(case.spatial)
    np.testing.assert_array_equal(_gather(inputs.x, idx), y, err_msg=case.id)


def test_argmax_index_drops_batch_and_channel():
    # TensorFlow's index is (h * W + w) * C + c; torch's is h * W + w within each (n, c) plane.
    x = np.zeros((2, 2, 3, 2))
    x[1, 1, 2, 1] = 5.0  # batch 1, h=1, w=2, channel 1: plane index 1 * 3 + 2 = 5
    x[0, 0, 1, 0] = 7.0  # batch 0, h=0, w=1, channel 0: plane index 1
    y, idx = tfb._argmax_pool(tf.constant(x), (2, 3), (2, 3), "VALID", (2, 3), [(0, 0)] * 2)
    np.testing.assert_array_equal(idx.numpy().reshape(2, 2), [[1, 0], [0, 5]])


def test_indices_only_when_asked(backend):
    case = _pool("max_pool", 2, kernel=2)
    assert set(backend.run(case, make_inputs(case))) == {"y"}


# ---- what TensorFlow refuses, and why -------------------------------------------------------
REFUSED = [
    (_pool("avg_pool", 2, kernel=2, divisor_override=3), "no divisor_override"),
    (_pool("avg_pool", 2, kernel=3, padding=((2, 0), (1, 1)), count_include_pad=False),
     "only as its 'SAME' split"),
    (_pool("max_pool", 3, kernel=2, return_indices=True), "no 3-D max_pool_with_argmax"),
    (_pool("max_pool", 2, kernel=2, stride=1, dilation=2, return_indices=True),
     "max_pool_with_argmax has no dilation"),
    (_pool("max_pool", 3, "backward", kernel=2, padding=((1, 0),) * 3).with_(inputs="nan"),
     "not exact on nan windows"),
    (_conv("conv", 3, groups=2), "3-D convolutions have no groups"),
    (_conv("conv_transpose", 3, groups=2), "3-D convolutions have no groups"),
    # TensorFlow's own refusals, in its words.
    (_pool("max_pool", 3, kernel=2, dtype="float64"), "not in the list of allowed values"),
    (_pool("avg_pool", 3, kernel=2, dtype="float16"), "Could not find device"),
    (_conv("conv", 2, "backward", dtype="float64", groups=2),
     "Gradients for grouped convolutions are not supported"),
    (_conv("conv_transpose", 2, dtype="float64", dilation=2), "dilation rates larger than 1"),
]


@pytest.mark.parametrize("case, words", REFUSED, ids=[c.id for c, _ in REFUSED])
def test_refusals_name_their_reason(backend, case, words):
    reason = backend.unsupported(case)
    assert reason and words in reason, f"{case.id}: {reason!r} should mention {words!r}"
    assert backend.unsupported(case) == reason
    with pytest.raises(Unsupported):
        backend.run(case, make_inputs(case))


def test_refusals_are_learned_once_per_geometry(backend, monkeypatch):
    calls = []
    probe = TensorflowBackend._probe
    monkeypatch.setattr(TensorflowBackend, "_probe",
                        lambda self, case: calls.append(case.id) or probe(self, case))
    fresh = TensorflowBackend()
    case = _conv("conv", 2, "backward", dtype="float64", groups=2, padding=((1, 0), (0, 1)))
    reasons = {fresh.unsupported(case.with_(seed=s, inputs=k))
               for s in (0, 1) for k in ("random", "ties")}
    assert len(calls) == 1 and len(reasons) == 1 and None not in reasons


@pytest.mark.parametrize("case", [
    _pool("max_pool", 2, kernel=2, padding=((0, 1), (1, 0))),             # explicit list
    _pool("max_pool", 3, "backward", kernel=3, stride=2, padding=1, ceil_mode=True,
          return_indices=True),                   # indices asked for; backward has no need
    _pool("avg_pool", 2, "backward", kernel=3, padding=((2, 0), (1, 1))),   # zero tf.pad
    _conv("conv", 3, "backward", stride=2, padding="same_lower"),
    _conv("conv", 2, "backward", groups=2, dilation=2, padding=((1, 0), (2, 1))),
], ids=lambda c: c.id)
def test_emulated_forms_are_supported(backend, case):
    assert backend.unsupported(case) is None
    out = backend.run(case, make_inputs(case))
    assert set(out) == set(case.output_names())
    assert all(np.isfinite(a).all() for a in out.values()), case.id


def test_empty_batch_conv_skips_the_bias(backend):
    # oneDNN's empty-batch conv has the input's shape (docs/bugs/...); bias_add must not crash
    # on it, so that the comparison reports the shape.
    case = Case.of("conv", 1, n=0, spatial=(12,), c_in=6, c_out=3, kernel=3, groups=3)
    out = backend.run(case, make_inputs(case))
    assert out["y"].shape[0] == 0


@pytest.mark.parametrize("dtype, declined", [("float32", True), ("bfloat16", True),
                                             ("float64", False)])
def test_empty_output_max_pool_is_declined_not_run(backend, dtype, declined):
    # oneDNN's max pool kills the process with SIGFPE on an empty output axis
    # (docs/bugs/tensorflow_onednn_maxpool_empty_output.py): the backend must decline it
    # before its probe runs it, or the whole crosscheck run dies. float64 (Eigen) is safe.
    case = Case.from_id(f"max_pool2d-bwd-n2h7w6c2-k2x4-s2x1-pvalid-d2x2-idx-{dtype}-s0")
    assert 0 in case.out_spatial()
    reason = backend.unsupported(case)
    if declined:
        assert reason and "tensorflow_onednn_maxpool_empty_output" in reason, reason
    else:
        assert reason is None or "floating-point" not in reason


# ---- input hygiene ----------------------------------------------------------------------------
@pytest.mark.parametrize("case", [
    _conv("conv", 2, "backward", padding=((1, 0), (0, 2))),
    _conv("conv_transpose", 1, "backward", stride=2, padding=((1, 0),)),
    _pool("max_pool", 3, "backward", kernel=2, padding=((1, 0), (0, 0), (0, 1))),
    _pool("max_pool", 2, kernel=2, return_indices=True),
    _pool("adaptive_avg_pool", 2, "backward", output_size=3),
], ids=lambda c: c.id)
def test_read_only_inputs_accepted_untouched_and_not_aliased(backend, case):
    inputs = make_inputs(case)
    arrays = {k: a for k in ("x", "w", "b", "dy") if (a := getattr(inputs, k)) is not None}
    assert not any(a.flags.writeable for a in arrays.values())
    before = {k: a.copy() for k, a in arrays.items()}
    out = backend.run(case, inputs)
    for k, a in arrays.items():
        np.testing.assert_array_equal(a, before[k], err_msg=f"{case.id}: {k} was modified")
    for name, a in out.items():
        assert a.dtype == (np.int64 if name == "indices" else np.float64), name
        assert a.flags.writeable, name
        assert not any(np.shares_memory(a, b) for b in arrays.values()), name


def test_to_framework_copies(backend):
    a = np.arange(6.0).reshape(2, 3)
    t = backend.to_framework(a, tf.float64)
    a2 = a.copy()
    a[...] = -1  # the tensor holds its own copy
    np.testing.assert_array_equal(t.numpy(), a2)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_values_round_trip(backend, dtype):
    case = _pool("adaptive_avg_pool", 2, dtype=dtype, output_size=(7, 6))  # identity bins
    inputs = make_inputs(case)
    np.testing.assert_array_equal(backend.run(case, inputs)["y"], inputs.x)


def test_settings_record_threads_onednn_and_device(backend):
    s = backend.settings()
    assert s["tensorflow"] == tf.__version__ and s["device"] == "/CPU:0"
    assert {"intra_op_threads", "inter_op_threads", "TF_ENABLE_ONEDNN_OPTS",
            "onednn_enabled"} <= set(s)
    assert s["tensor_float_32"] is False
