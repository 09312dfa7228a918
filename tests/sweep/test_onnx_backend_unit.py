"""The ONNX backends' own choices: the opset probe, native padding words, indices, refusals.

Agreement with the reference over the sweep is checked elsewhere; these tests pin
how the two backends drive ONNX: the opset each op runs at is probed (newest first,
once, with the reason when none runs), 'same'/'same_lower'/'valid' reach ONNX as
``auto_pad`` and give what their explicit pads give, MaxPool's tensor-wide Indices
become the suite's per-plane indices, every refusal names its reason (and ONNX
Runtime still refuses what the backend says it refuses), a crash is excused only
by a registered bug, and the case's read-only arrays are accepted and left untouched.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from crosscheck import geometry, semantics  # noqa: E402
from crosscheck.backends import onnx_backend  # noqa: E402
from crosscheck.backends.base import Unsupported  # noqa: E402
from crosscheck.backends.onnx_backend import (  # noqa: E402
    Node, OnnxReferenceBackend, OnnxRuntimeBackend, build_model, node_for, op_versions,
    plane_indices)
from crosscheck.cases import Case, make_inputs  # noqa: E402
from crosscheck.runner import reference_outputs, run_backend  # noqa: E402

RANKS = (1, 2, 3)
SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 4, 6)}
BACKENDS = {"onnxruntime": OnnxRuntimeBackend, "onnx.reference": OnnxReferenceBackend}


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def backend(request):
    return BACKENDS[request.param]()


@pytest.fixture(scope="module")
def ort_backend():
    return OnnxRuntimeBackend()


def _pool(family, rank, direction="forward", **params):
    params.setdefault("dtype", "float32")
    return Case.of(family, rank, direction, n=2, spatial=SPATIAL[rank], c_in=3, **params)


def _conv(family, rank, direction="forward", **params):
    params.setdefault("kernel", 3)
    params.setdefault("dtype", "float32")
    return Case.of(family, rank, direction, n=2, spatial=SPATIAL[rank], c_in=4, c_out=6,
                   **params)


def _opset_of(model) -> int:
    return next(o.version for o in model.opset_import if o.domain == "")


# ---- the opset probe ----------------------------------------------------------------------------
class _OldRuntime(OnnxReferenceBackend):
    """The reference evaluator pretending to run nothing newer than ``newest``."""

    def __init__(self, newest):
        super().__init__()
        self.newest, self.built = newest, []

    def build(self, model):
        self.built.append(_opset_of(model))
        if _opset_of(model) > self.newest:
            raise RuntimeError(f"no kernel at opset {_opset_of(model)}")
        return super().build(model)


def test_probe_takes_the_newest_opset_that_runs_and_caches_it():
    runtime = _OldRuntime(newest=11)
    versions = op_versions("MaxPool")
    assert versions == tuple(sorted(versions, reverse=True)) and 11 in versions
    assert runtime.opset("MaxPool", "float32", 2) == 11
    assert runtime.built == [v for v in versions if v >= 11]  # newest first, stops at 11
    assert runtime.opset("MaxPool", "float32", 2) == 11
    assert len(runtime.built) == len([v for v in versions if v >= 11]), "probed twice"
    assert runtime.opsets_chosen() == {"MaxPool float32 2-D": 11}


def test_probe_records_why_no_opset_runs():
    runtime = _OldRuntime(newest=0)
    reason = runtime.opset("AveragePool", "float64", 3)
    assert isinstance(reason, str)
    assert "runs no float64 AveragePool (3-D) at any opset" in reason
    assert str(op_versions("AveragePool")) in reason and "no kernel at opset 1" in reason
    case = _pool("avg_pool", 3, kernel=2, dtype="float64")
    assert runtime.unsupported(case) == reason


def test_an_attribute_newer_than_the_chosen_opset_is_unsupported():
    runtime = _OldRuntime(newest=11)  # AveragePool's dilations came in opset 19
    case = _pool("avg_pool", 2, kernel=2, dilation=2)
    reason = runtime.unsupported(case)
    assert reason and "only at opset 11" in reason and "opset 19" in reason
    assert runtime.unsupported(case.with_(dilation=1)) is None


def test_onnxruntime_probe_finds_what_its_cpu_kernels_cover(ort_backend):
    # float32 runs at the newest opset; float64 AveragePool and Conv have no CPU kernel.
    for op in ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool"):
        assert ort_backend.opset(op, "float32", 2) == op_versions(op)[0], op
    for op in ("Conv", "AveragePool"):
        reason = ort_backend.opset(op, "float64", 2)
        assert isinstance(reason, str) and "NOT_IMPLEMENTED" in reason, reason
    assert isinstance(ort_backend.opset("MaxPool", "float64", 2, indices=True), int)
    settings = ort_backend.settings()
    assert settings["intra_op_threads"] == 1 and settings["providers"] == ["CPUExecutionProvider"]
    assert settings["onnxruntime"] == ort.__version__
    assert "MaxPool float64 2-D indices" in settings["opsets"]


# ---- native padding words ----------------------------------------------------------------------
@pytest.mark.parametrize("padding, word", [("same", "SAME_UPPER"), ("same_lower", "SAME_LOWER"),
                                           ("valid", "VALID")])
def test_padding_words_reach_onnx_as_auto_pad(padding, word):
    node = node_for(_conv("conv", 2, kernel=4, stride=2, padding=padding))
    assert node.attrs["auto_pad"] == word and "pads" not in node.attrs


def test_explicit_pads_are_all_begins_then_all_ends():
    node = node_for(_pool("max_pool", 3, kernel=3, padding=((1, 0), (0, 2), (1, 1))))
    assert node.attrs["pads"] == [1, 0, 1, 0, 2, 1] and "auto_pad" not in node.attrs


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("padding", ["same", "same_lower"])
def test_auto_pad_gives_what_its_explicit_pads_give(backend, rank, padding):
    same = _conv("conv", rank, kernel=(4, 2, 3)[:rank], stride=(2, 1, 2)[:rank],
                 padding=padding, groups=2)
    pads = geometry.explicit_pads(same)
    assert any(a != b for a, b in pads), "the test needs an odd total pad"
    inputs = make_inputs(same)
    want = reference_outputs(same, inputs)["y"]
    native = backend.run(same, inputs)["y"]
    explicit = backend.run(same.with_(padding=pads), inputs)["y"]
    np.testing.assert_array_equal(native, explicit, err_msg=same.id)
    np.testing.assert_allclose(native, want, rtol=1e-5, atol=1e-5, err_msg=same.id)


# ---- indices ------------------------------------------------------------------------------------
def test_plane_indices_drop_the_batch_and_channel_offsets():
    # (N=2, C=3, H=2, W=2): ONNX counts over the whole tensor, the suite within a plane.
    onnx_idx = np.array([[[[0, 3]], [[4, 6]], [[11, 9]]], [[[12, 15]], [[19, 16]], [[23, 20]]]])
    np.testing.assert_array_equal(plane_indices(onnx_idx, (2, 2)) % 4, onnx_idx % 4)
    assert plane_indices(onnx_idx, (2, 2)).max() < 4
    assert plane_indices(np.zeros((0, 3, 1)), (5,)).shape == (0, 3, 1)


@pytest.mark.parametrize("case", [
    *(_pool("max_pool", r, kernel=2, stride=2, padding=1, return_indices=True) for r in RANKS),
    _pool("max_pool", 2, kernel=3, stride=2, dilation=2, ceil_mode=True, return_indices=True),
    _pool("adaptive_max_pool", 2, output_size=1, return_indices=True),
], ids=lambda c: c.id)
def test_indices_are_the_suites_plane_indices(backend, case):
    inputs = make_inputs(case)
    got = backend.run(case, inputs)
    want = reference_outputs(case, inputs)
    assert got["indices"].dtype == np.int64
    np.testing.assert_array_equal(got["indices"], want["indices"], err_msg=case.id)
    np.testing.assert_array_equal(got["y"], want["y"], err_msg=case.id)


def test_global_max_pool_with_indices_is_one_whole_plane_window():
    node = node_for(_pool("adaptive_max_pool", 3, output_size=1, return_indices=True))
    assert node.op_type == "MaxPool" and node.indices
    assert node.attrs == {"kernel_shape": [5, 4, 6], "strides": [5, 4, 6]}
    assert node_for(_pool("adaptive_max_pool", 3, output_size=1)).op_type == "GlobalMaxPool"


# ---- refusals -----------------------------------------------------------------------------------
REFUSED = [  # (case, words of the reason, backends)
    (_conv("conv", 2, "backward"), "runs inference only: no gradients", BACKENDS),
    (_pool("adaptive_avg_pool", 2, output_size=3), "ONNX has no adaptive pooling", BACKENDS),
    (_pool("adaptive_max_pool", 1, output_size=(2,)), "ONNX has no adaptive pooling", BACKENDS),
    (_pool("avg_pool", 2, kernel=2, divisor_override=3), "no divisor_override", BACKENDS),
    (_conv("conv_transpose", 2, stride=1, dilation=2, output_padding=1),
     "output_padding < stride", BACKENDS),
    (_conv("conv", 2, dtype="float64"), "runs no float64 Conv", ("onnxruntime",)),
    (_pool("max_pool", 2, kernel=2, dtype="bfloat16"), "runs no bfloat16 MaxPool",
     ("onnxruntime",)),
    (_conv("conv", 2, dilation=2, padding="same"), "dilation with auto_pad SAME_UPPER",
     ("onnxruntime",)),
    (_pool("max_pool", 1, kernel=2, stride=1, padding=2), "pads < kernel_shape",
     ("onnxruntime",)),
]


@pytest.mark.parametrize("case, words, names", REFUSED, ids=[c.id for c, _, _ in REFUSED])
def test_refusals_name_their_reason(backend, case, words, names):
    reason = backend.unsupported(case)
    if backend.name not in names:
        assert reason is None, f"{backend.name} {case.id}: {reason}"
        return
    assert reason and words in reason, f"{case.id}: {reason!r} should mention {words!r}"
    with pytest.raises(Unsupported):
        backend.run(case, make_inputs(case))


@pytest.mark.parametrize("case", [
    _conv("conv", 2, dilation=2, padding="same"),
    _pool("max_pool", 1, kernel=2, stride=1, padding=2),
    _conv("conv_transpose", 2, stride=1, dilation=2, output_padding=1),
], ids=lambda c: c.id)
def test_onnxruntime_still_rejects_what_the_backend_refuses(ort_backend, case):
    # Built by hand past the refusal: if ONNX Runtime accepts it now, the rule is stale.
    family_node = {"conv": Node("Conv", dict(kernel_shape=[3, 3], dilations=[2, 2],
                                             auto_pad="SAME_UPPER"), weighted=True),
                   "max_pool": Node("MaxPool", dict(kernel_shape=[2], strides=[1],
                                                    pads=[2, 2])),
                   "conv_transpose": Node("ConvTranspose",
                                          dict(kernel_shape=[3, 3], strides=[1, 1],
                                               dilations=[2, 2], output_padding=[1, 1]),
                                          weighted=True)}[case.family]
    x = np.ones((1, 1, *case.spatial), np.float32)
    feeds = {"x": x}
    if family_node.weighted:
        feeds["w"] = np.ones((1, 1, 3, 3), np.float32)
    shapes = {"x": x.shape, "w": (1, 1, 3, 3), "y": None}
    model = build_model(family_node, op_versions(family_node.op_type)[0], "float32", shapes)
    with pytest.raises(Exception):
        ort_backend.execute(ort_backend.build(model), feeds)


# ---- crashes ------------------------------------------------------------------------------------
def test_a_crash_on_a_registered_bug_is_unsupported_naming_it():
    backend = OnnxReferenceBackend()
    case = _conv("conv_transpose", 1, groups=2, stride=2)  # C=4, M=6: M/group > 1
    bug = semantics.known_bug(case, backend.name)
    assert bug is not None and bug.key == "onnx_reference_convtranspose_group"
    with pytest.raises(Unsupported, match="known bug onnx_reference_convtranspose_group"):
        backend.run(case, make_inputs(case))


@pytest.mark.parametrize("kernel, padding, ceil_mode, status", [
    ((2, 2), ((1, 1), (1, 1)), False, "passed"),  # H's pad after == W's pad before: read right
    ((2, 2), ((0, 0), (1, 1)), False, "divergent"),  # run as H (0, 1), W (0, 1): wrong shape
    ((2, 2), ((1, 1), (1, 1)), True, "divergent"),  # ceil_mode adds the pads twice
    ((2, 1), ((1, 1), (0, 0)), False, "unsupported"),  # W (1, 0): a window of padding only
], ids=str)
def test_unit_stride_max_pool_2d_pads_are_right_only_where_the_bug_cannot_reach(
        kernel, padding, ceil_mode, status):
    # onnx.reference's unit-stride MaxPool reads 2-D pads [H0, W0, H1, W1] as
    # [H0, H1, W0, W1] (docs/bugs/onnx_reference_maxpool_unit_stride.py).
    case = _pool("max_pool", 2, kernel=kernel, stride=1, padding=padding, ceil_mode=ceil_mode,
                 dtype="float64")
    result = run_backend(case, "onnx.reference", OnnxReferenceBackend())
    assert result.status == status, result.summary()
    assert (status == "passed") == (semantics.known_bug(case, "onnx.reference") is None)


def test_any_other_crash_propagates(monkeypatch):
    backend = OnnxReferenceBackend()
    case = _conv("conv", 2)
    assert backend.unsupported(case) is None  # probe the opset before execute breaks

    def broken(session, feeds):
        raise RuntimeError("boom")

    monkeypatch.setattr(backend, "execute", broken)
    with pytest.raises(RuntimeError, match="boom"):
        backend.run(case, make_inputs(case))


# ---- sessions and inputs ------------------------------------------------------------------------
def test_sessions_are_cached_per_compile_key_and_bounded(monkeypatch):
    backend = OnnxReferenceBackend()
    monkeypatch.setattr(onnx_backend, "MAX_SESSIONS", 2)
    assert backend.unsupported(_pool("max_pool", 2, kernel=2)) is None  # the probe builds too
    built = []
    build = backend.build
    monkeypatch.setattr(backend, "build", lambda model: built.append(1) or build(model))
    case = _pool("max_pool", 2, kernel=2)
    for seed in (0, 1):  # same compile key: one session
        backend.run(case.with_(seed=seed), make_inputs(case.with_(seed=seed)))
    assert len(built) == 1
    for k in (3, 4, 5):
        other = case.with_(kernel=k)
        backend.run(other, make_inputs(other))
    assert len(backend._sessions) == 2 and len(built) == 4


@pytest.mark.parametrize("case", [
    _conv("conv", 2, groups=2),
    _conv("conv_transpose", 3, stride=2, bias=False),
    _pool("max_pool", 1, kernel=3, stride=2, padding=1, return_indices=True),
    _pool("avg_pool", 2, kernel=2, stride=2, ceil_mode=True, count_include_pad=False),
    _pool("adaptive_avg_pool", 3, output_size=1),
], ids=lambda c: c.id)
def test_read_only_inputs_are_accepted_and_untouched(backend, case):
    inputs = make_inputs(case)
    arrays = {k: getattr(inputs, k) for k in ("x", "w", "b", "dy")}
    kept = {k: None if a is None else a.copy() for k, a in arrays.items()}
    assert all(a is None or not a.flags.writeable for a in arrays.values())
    result = run_backend(case, backend.name, backend)
    assert result.status == "passed", result.summary()
    for k, a in arrays.items():
        if a is not None:
            np.testing.assert_array_equal(a, kept[k], err_msg=f"{case.id}: {k} changed")
    framework = backend.to_framework(inputs.x, np.float32)
    assert not np.shares_memory(framework, inputs.x)


# ---- the registered bugs are flagged by the default sweep --------------------------------------
@pytest.mark.parametrize("bug", [d for d in semantics.DIFFERENCES if d.known_bug and any(
    semantics.family(name) in d.conventions for name in BACKENDS)], ids=lambda d: d.key)
def test_each_registered_onnx_bug_shows_in_the_default_sweep(bug):
    from crosscheck.sweeps import sweep

    name = next(n for n in BACKENDS if semantics.family(n) in bug.conventions)
    backend = BACKENDS[name]()
    cases = [c for c in sweep("default") if c.direction == "forward" and bug.probed_by(c)]
    assert cases, f"no case of the default sweep can hit {bug.key}"
    flagged = [r for r in (run_backend(c, name, backend) for c in cases)
               if r.reason and f"known bug {bug.key}" in r.reason]
    assert flagged, f"{name} never hit {bug.key} on its {len(cases)} cases: fixed upstream?"
