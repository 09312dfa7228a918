"""The torch backend's own choices: padding emulations, reasons it refuses, indices, input hygiene.

Agreement with the reference over the sweep is checked elsewhere; these tests pin
what is specific to how this backend drives torch: each emulation (explicit
``F.pad``, a transposed conv's crop, 1-D ``divisor_override`` in 2-D) gives what
torch's native path gives where both apply, every refusal names its reason, max-pool
indices are torch's flat indices in channels-last layout, and the case's read-only
arrays are accepted and left untouched.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crosscheck import geometry  # noqa: E402
from crosscheck.backends.base import Unsupported  # noqa: E402
from crosscheck.backends import torch_backend  # noqa: E402
from crosscheck.backends.torch_backend import TorchBackend  # noqa: E402
from crosscheck.cases import Case, Inputs, make_inputs  # noqa: E402

RANKS = (1, 2, 3)
SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 4, 6)}


@pytest.fixture(scope="module")
def backend():
    return TorchBackend()


def _pool(family, rank, direction="forward", **params):
    return Case.of(family, rank, direction, n=2, spatial=SPATIAL[rank], c_in=3, **params)


def _conv(family, rank, direction="forward", **params):
    params.setdefault("kernel", 3)
    return Case.of(family, rank, direction, n=2, spatial=SPATIAL[rank], c_in=4, c_out=6,
                   groups=2, **params)


def _run_both(backend, case, monkeypatch):
    """The case through torch's native padding, then through the F.pad emulation."""
    inputs = make_inputs(case)
    native = backend.run(case, inputs)
    with monkeypatch.context() as m:
        m.setattr(torch_backend, "_pool_native", lambda case, pads: None)
        emulated = backend.run(case, inputs)
    return native, emulated


# ---- emulations agree with the native path where both apply ---------------------------------
@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_max_pool_minus_inf_padding_matches_native_padding(backend, monkeypatch, rank, direction):
    case = _pool("max_pool", rank, direction, kernel=3, stride=2, padding=1, dilation=1,
                 return_indices=True)
    native, emulated = _run_both(backend, case, monkeypatch)
    for name in native:
        np.testing.assert_array_equal(emulated[name], native[name], err_msg=f"{case.id} {name}")


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("divisor_override", [None, 5])
def test_avg_pool_zero_padding_matches_native_padding(backend, monkeypatch, rank, direction,
                                                      divisor_override):
    case = _pool("avg_pool", rank, direction, kernel=(2, 3, 3)[:rank], stride=1,
                 padding=(1, 1, 0)[:rank], divisor_override=divisor_override)
    native, emulated = _run_both(backend, case, monkeypatch)
    np.testing.assert_allclose(emulated[case.output_names()[0]], native[case.output_names()[0]],
                               rtol=1e-14, atol=1e-15, err_msg=case.id)


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_same_matches_its_explicit_pads(backend, rank, direction, stride):
    # Stride 1 runs torch's own padding='same'; stride 2 (which torch refuses) and the
    # explicit pads (asymmetric for an even kernel) run through F.pad.
    same = _conv("conv", rank, direction, kernel=(4, 2, 3)[:rank], stride=stride, padding="same")
    pads = geometry.explicit_pads(same)
    assert any(a != b for a, b in pads)
    explicit = same.with_(padding=pads)
    want = backend.run(same, make_inputs(same))
    got = backend.run(explicit, make_inputs(same))
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-13, atol=1e-13,
                                   err_msg=f"{same.id} {name}")


@pytest.mark.parametrize("rank", RANKS)
def test_conv_transpose_asymmetric_pads_are_the_adjoint_of_conv(backend, rank):
    # A transposed conv with pads (a, b) is the adjoint of the conv with the same pads and
    # weight array: <conv_transpose(x), y> == <x, conv(y)>. The transposed side crops,
    # the conv side pads with F.pad: two different routes through torch.
    pads = ((2, 0), (0, 1), (1, 2))[:rank]
    stride = (2, 1, 3)[:rank]
    ct = Case.of("conv_transpose", rank, "forward", n=2, spatial=SPATIAL[rank], c_in=6,
                 c_out=4, groups=2, kernel=3, stride=stride, padding=pads,
                 output_padding=(1, 0, 2)[:rank], bias=False)
    ct_in = make_inputs(ct)
    y = backend.run(ct, ct_in)["y"]
    conv = Case.of("conv", rank, "forward", n=2, spatial=y.shape[1:-1], c_in=4, c_out=6,
                   groups=2, kernel=3, stride=stride, padding=pads, bias=False)
    assert conv.out_spatial() == ct.spatial
    probe = np.random.default_rng(0).standard_normal(y.shape)
    conv_y = backend.run(conv, Inputs(x=probe, w=ct_in.w, b=None, dy=ct_in.x))["y"]
    np.testing.assert_allclose(np.vdot(y, probe), np.vdot(ct_in.x, conv_y), rtol=1e-12)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_avg_pool1d_divisor_override_runs_as_2d_over_a_unit_axis(backend, direction):
    case = _pool("avg_pool", 1, direction, kernel=3, stride=2, padding=1, divisor_override=2)
    inputs = make_inputs(case)
    got = backend.run(case, inputs)
    x = np.pad(inputs.x, ((0, 0), (1, 1), (0, 0)))
    windows = np.stack([x[:, i:i + 3].sum(axis=1) for i in range(0, x.shape[1] - 2, 2)], axis=1)
    if direction == "forward":
        np.testing.assert_allclose(got["y"], windows / 2, rtol=1e-14)
    else:
        want = np.zeros_like(x)
        for o, i in enumerate(range(0, x.shape[1] - 2, 2)):
            want[:, i:i + 3] += inputs.dy[:, o:o + 1] / 2
        np.testing.assert_allclose(got["dx"], want[:, 1:-1], rtol=1e-14)


# ---- what torch refuses, and why --------------------------------------------------------------
REFUSED = [
    (_pool("avg_pool", 2, kernel=2, stride=1, dilation=2), "has no dilation"),
    (_pool("max_pool", 2, kernel=2, padding=((0, 1), (1, 0)), ceil_mode=True),
     "no exact F.pad emulation with ceil_mode"),
    (_pool("avg_pool", 3, kernel=3, padding=((2, 2), (0, 0), (1, 1)), count_include_pad=False),
     "count_include_pad=False"),
    (_pool("max_pool", 1, kernel=2, padding=((1, 0),)).with_(inputs="neginf"),
     "all -inf windows"),
    (_pool("max_pool", 1, kernel=2, stride=1, padding=2), "wholly in the padding"),
    (_conv("conv_transpose", 2, padding="same"), "no padding='same'"),
]


@pytest.mark.parametrize("case, words", REFUSED, ids=[c.id for c, _ in REFUSED])
def test_refusals_name_their_reason(backend, case, words):
    reason = backend.unsupported(case)
    assert reason and words in reason, f"{case.id}: {reason!r} should mention {words!r}"
    with pytest.raises(Unsupported, match="torch"):
        backend.run(case, make_inputs(case))


@pytest.mark.parametrize("case", [
    _pool("max_pool", 2, kernel=2, padding=((0, 1), (1, 0))),            # max: -inf F.pad
    _pool("max_pool", 1, kernel=3, stride=1, padding=2, dilation=2),    # torch counts k//2
    _pool("avg_pool", 2, kernel=3, padding=((2, 0), (1, 1))),           # avg: zero F.pad
    _pool("max_pool", 2, kernel=3, stride=2, padding=1, ceil_mode=True),  # native ceil_mode
    _conv("conv", 3, stride=2, padding="same_lower"),
], ids=lambda c: c.id)
def test_emulated_forms_are_supported(backend, case):
    assert backend.unsupported(case) is None
    for direction in ("forward", "backward"):
        out = backend.run(case.with_(direction=direction), make_inputs(case))
        assert all(np.isfinite(a).all() for a in out.values()), case.id


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("family", ["conv", "conv_transpose", "max_pool", "avg_pool",
                                    "adaptive_avg_pool", "adaptive_max_pool"])
def test_low_precision_is_probed_per_op_and_direction(backend, family, dtype):
    params = {"output_size": 2} if family.startswith("adaptive") else {"kernel": 2}
    make = _conv if family.startswith("conv") else _pool
    for direction in ("forward", "backward"):
        case = make(family, 3, direction, dtype=dtype, **params)
        reason = backend.unsupported(case)
        if reason is None:
            out = backend.run(case, make_inputs(case))
            assert set(out) == set(case.output_names())
        else:  # torch's own refusal, recorded once with the op, direction and dtype
            assert reason.startswith(f"torch {torch.__version__} rejects {case.op} "
                                     f"{direction} in {dtype}"), reason
            assert backend.unsupported(case) == reason


# ---- indices --------------------------------------------------------------------------------
def _gather(x, indices):
    n, c = x.shape[0], x.shape[-1]
    flat = x.reshape(n, -1, c)
    return np.take_along_axis(flat, indices.reshape(n, -1, c), axis=1).reshape(indices.shape)


@pytest.mark.parametrize("case", [
    *(_pool("max_pool", r, kernel=2, stride=1, padding=1, return_indices=True) for r in RANKS),
    _pool("max_pool", 2, kernel=2, padding=((0, 1), (1, 0)), return_indices=True),  # emulated
    _pool("max_pool", 3, kernel=3, stride=2, dilation=(2, 1, 1), ceil_mode=True,
          return_indices=True),
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


def test_indices_only_when_asked(backend):
    case = _pool("max_pool", 2, kernel=2)
    assert set(backend.run(case, make_inputs(case))) == {"y"}


# ---- input hygiene ----------------------------------------------------------------------------
@pytest.mark.parametrize("case", [
    _conv("conv", 2, "backward", padding=((1, 0), (0, 2))),
    _conv("conv_transpose", 1, "backward", stride=2, padding=((1, 0),)),
    _pool("max_pool", 3, "backward", kernel=2, padding=((1, 0), (0, 0), (0, 1))),
    _pool("adaptive_avg_pool", 2, "backward", output_size=3),
], ids=lambda c: c.id)
def test_read_only_inputs_accepted_untouched_and_not_aliased(backend, case):
    inputs = make_inputs(case)
    arrays = {k: a for k in ("x", "w", "b", "dy") if (a := getattr(inputs, k)) is not None}
    assert not any(a.flags.writeable for a in arrays.values())
    before = {k: a.copy() for k, a in arrays.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.from_numpy of a read-only array warns
        out = backend.run(case, inputs)
    for k, a in arrays.items():
        np.testing.assert_array_equal(a, before[k], err_msg=f"{case.id}: {k} was modified")
    for name, a in out.items():
        assert a.dtype == np.float64 and a.flags.writeable, name
        assert not any(np.shares_memory(a, b) for b in arrays.values()), name


def test_to_framework_copies(backend):
    a = np.arange(6.0).reshape(2, 3)
    t = backend.to_framework(a, torch.float64)
    t.zero_()
    np.testing.assert_array_equal(a, np.arange(6.0).reshape(2, 3))


def test_settings_record_precision_threads_and_device(backend):
    s = backend.settings()
    assert s["cudnn.allow_tf32"] is False and s["cuda.matmul.allow_tf32"] is False
    assert s["float32_matmul_precision"] == "highest"
    assert s["num_threads"] == torch.get_num_threads()
    assert s["device"] == str(torch.get_default_device())
