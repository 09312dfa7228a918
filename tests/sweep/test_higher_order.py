"""Forward mode (``jvp``) and second order (``double_backward``): references, bounds, backends.

The references are refcnn's, built from each op's structure; here they are checked
against central differences of refcnn's own forward and backward in float64. The
harness must catch a JVP that drops the weight tangent's term and a double backward
with one term's sign flipped (planted backends on the torch and refcnn drivers);
torch and JAX agree with the references on a few cases per op; the new ids parse
back and the first-order cases draw exactly the numbers they drew before.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crosscheck import ops  # noqa: E402
from crosscheck.backends.driver import OpImpl  # noqa: E402
from crosscheck.backends.refcnn_backend import RefcnnBackend  # noqa: E402
from crosscheck.backends.torch_backend import TorchBackend  # noqa: E402
from crosscheck.cases import ROLES, Case, Inputs, make_inputs  # noqa: E402
from crosscheck.runner import reference_outputs, run_backend  # noqa: E402
from crosscheck.semantics import DIFFERENCES  # noqa: E402
from crosscheck.sweeps import probe_cases, sweep  # noqa: E402

import refcnn.functional as F  # noqa: E402

HIGHER = ops.HIGHER_ORDER

#: One geometry per op family, every rank among them, bias on and off, groups, padding
#: words, ceil_mode and the average divisors.
GEOMETRIES = (
    Case.of("conv", 2, n=2, spatial=(6, 5), c_in=4, c_out=6, kernel=3, stride=2, padding=1,
            groups=2),
    Case.of("conv", 1, n=1, spatial=(7,), c_in=2, c_out=3, kernel=2, dilation=2,
            padding="same", bias=False),
    Case.of("conv_transpose", 2, n=2, spatial=(4, 5), c_in=4, c_out=2, kernel=3, stride=2,
            padding=1, output_padding=1, groups=2),
    Case.of("conv_transpose", 3, n=1, spatial=(3, 2, 2), c_in=2, c_out=2, kernel=2, stride=2),
    Case.of("max_pool", 2, n=2, spatial=(7, 6), c_in=3, kernel=3, stride=2, padding=1,
            ceil_mode=True),
    Case.of("max_pool", 1, n=2, spatial=(9,), c_in=2, kernel=3, stride=2, padding=1,
            return_indices=True),
    Case.of("avg_pool", 2, n=2, spatial=(7, 6), c_in=3, kernel=3, stride=2, padding=1,
            count_include_pad=False),
    Case.of("avg_pool", 1, n=2, spatial=(9,), c_in=2, kernel=3, stride=2, padding=1,
            divisor_override=3),
    Case.of("adaptive_avg_pool", 3, n=1, spatial=(5, 4, 3), c_in=2, output_size=(2, 3, 2)),
    Case.of("adaptive_max_pool", 1, n=2, spatial=(9,), c_in=2, output_size=4),
)


def _ids(cases):
    return [c.id for c in cases]


# ---- ids and inputs ---------------------------------------------------------------------------
@pytest.mark.parametrize("direction", HIGHER)
def test_ids_of_the_new_directions_parse_back(direction):
    token = ops.DIRECTION_TOKENS[direction]
    for name in ops.op_names():
        entry, rank = ops.get(name)
        case = entry.draw(random.Random(rank), rank).with_(direction=direction)
        assert case.id.split("-")[1] == token
        assert Case.from_id(case.id) == case, case.id
        assert Case.from_json(case.to_json()) == case


def test_first_order_ids_and_tokens_are_unchanged():
    assert ops.DIRECTION_TOKENS["forward"] == "fwd" and ops.DIRECTION_TOKENS["backward"] == "bwd"
    case = Case.legacy_2d("conv2d", "forward", 2, 7, 5, 4, 6, (3, 3), (2, 1),
                          ((1, 0), (0, 2)), groups=2, dtype="float32")
    assert case.id == "conv2d-fwd-n2h7w5c4o6-k3x3-s2x1-p1.0.0.2-d1x1-g2-float32-s0"
    assert case.with_(direction="jvp").id.startswith("conv2d-jvp-")
    assert case.with_(direction="double_backward").id.startswith("conv2d-bwd2-")


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_higher_order_inputs_extend_the_first_order_draws(geometry):
    base = make_inputs(geometry.with_(direction="backward", seed=3))
    for direction, slots in (("jvp", ("tx", "tw", "tb")), ("double_backward", ("gx", "gw", "gb"))):
        inputs = make_inputs(geometry.with_(direction=direction, seed=3))
        for role in ("x", "w", "b", "dy"):
            a, b = getattr(inputs, role), getattr(base, role)
            assert (a is None and b is None) or np.array_equal(a, b), (direction, role)
        for role in ROLES[4:]:
            primal = getattr(inputs, role[1:])
            got = getattr(inputs, role)
            if role in slots and primal is not None:
                assert got.shape == primal.shape and not got.flags.writeable, role
                assert not np.array_equal(got, primal)
            else:
                assert got is None, (direction, role)
    for role in ROLES[4:]:
        assert getattr(base, role) is None


# ---- the references against central differences ------------------------------------------------
def _first_order(case, direction, x, w, b, dy):
    c = case.with_(direction=direction)
    return c.entry.reference(c, Inputs(x, w, b, dy))


def _moved(a, t, h):
    return None if a is None else a + h * t


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_jvp_reference_is_the_derivative_of_the_forward(geometry):
    case = geometry.with_(direction="jvp")
    i = make_inputs(case)
    ty = case.entry.reference(case, i)["ty"]
    h = 1e-6

    def y(s):
        return _first_order(geometry, "forward", _moved(i.x, i.tx, s), _moved(i.w, i.tw, s),
                            _moved(i.b, i.tb, s), i.dy)["y"]

    np.testing.assert_allclose(ty, (y(h) - y(-h)) / (2 * h), atol=1e-7, err_msg=case.id)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_double_backward_reference_is_the_gradient_of_the_backward(geometry):
    """<ddy, sdy> + <dx, sx> + <dw, sw> is the derivative of <backward, g> along (sdy, sx, sw)."""
    case = geometry.with_(direction="double_backward")
    i = make_inputs(case)
    ref = case.entry.reference(case, i)
    rng = np.random.default_rng(7)
    step = {r: None if getattr(i, r) is None else rng.standard_normal(getattr(i, r).shape)
            for r in ("dy", "x", "w")}
    h = 1e-6

    def loss(s):
        out = _first_order(geometry, "backward", _moved(i.x, step["x"], s),
                           _moved(i.w, step["w"], s), i.b, _moved(i.dy, step["dy"], s))
        return sum(np.sum(out[k] * getattr(i, "g" + k[1:])) for k in out)

    predicted = sum(np.sum(ref[k] * step[r]) for k, r in (("ddy", "dy"), ("dx", "x"),
                                                          ("dw", "w")) if k in ref)
    assert abs((loss(h) - loss(-h)) / (2 * h) - predicted) < 1e-6 * (1 + abs(predicted)), case.id
    if "max" in case.family:
        assert not ref["dx"].any()  # the routing does not move: no x term


def test_functional_signatures_check_their_tangents():
    x, w = np.ones((1, 4, 2)), np.ones((2, 2, 3))
    with pytest.raises(ValueError, match="tb is the tangent of b"):
        F.conv_jvp(x, w, None, x, w, np.ones(3))
    with pytest.raises(ValueError, match="tx must have x's shape"):
        F.conv_jvp(x, w, None, np.ones((1, 3, 2)), w)
    with pytest.raises(TypeError, match="gx must be an array"):
        F.max_pool_double_backward(np.ones((1, 2, 2)), x, None, 2)
    ty = F.conv_jvp(x, w, np.zeros(3), x.astype(np.float32), w)   # tb None: a zero tangent
    assert ty.dtype == np.float64 and ty.shape == (1, 3, 3)
    ddy = F.avg_pool_double_backward(np.ones((1, 2, 2)), x, x.astype(np.float32), 2)
    assert ddy.dtype == np.float64 and np.array_equal(ddy, np.ones((1, 2, 2)))


# ---- planted errors are caught ------------------------------------------------------------------
class NoWeightTangent(TorchBackend):
    """torch's JVP with the weight tangent dropped (``conv(tx, w) + tb`` only)."""

    name = "planted.no_tw"

    def jvp(self, fn, primals, tangents):
        tangents = list(tangents)
        if len(tangents) > 1:
            tangents[1] = torch.zeros_like(tangents[1])
        return super().jvp(fn, primals, tangents)


class FlippedTerm(TorchBackend):
    """torch's double backward with the sign of one output (``ddy``, ``dx`` or ``dw``) flipped."""

    def __init__(self, term):
        super().__init__()
        self.term, self.name = term, f"planted.flipped_{term}"

    def double_vjp(self, fn, primals, cotangent, cotangents):
        ddy, grads = super().double_vjp(fn, primals, cotangent, cotangents)
        terms = [ddy, *grads]
        at = ("ddy", "dx", "dw").index(self.term)
        terms[at] = -terms[at]
        return terms[0], terms[1:]


class PlantedRefcnn(RefcnnBackend):
    """refcnn's conv with explicit higher-order functions: the JVP without ``conv(x, tw)``
    and the double backward with ``-dw``; ``planted=False`` gives the right ones."""

    def __init__(self, planted=True):
        super().__init__()
        self.name = "planted.refcnn" if planted else "refcnn.higher"
        s = -1.0 if planted else 1.0

        def jvp(case, x, w, b, tx, tw, tb):
            opts = ops.options(case)
            return {"ty": F.conv_jvp(x, w, b, tx, tw * (0.0 if planted else 1.0), tb, **opts)}

        def double_backward(case, dy, x, w, b, gx, gw, gb):
            ddy, dx, dw = F.conv_double_backward(dy, x, w, b, gx, gw, gb, **ops.options(case))
            return {"ddy": ddy, "dx": dx, "dw": s * dw}

        conv = self.ops["conv"]
        self.ops = dict(self.ops, conv=OpImpl(conv.forward, conv.backward, jvp=jvp,
                                              double_backward=double_backward))


CONVS = [g for g in GEOMETRIES if g.is_conv]


@pytest.mark.parametrize("geometry", CONVS, ids=_ids(CONVS))
def test_a_jvp_missing_the_weight_tangent_fails(geometry):
    case = geometry.with_(direction="jvp", dtype="float32")
    result = run_backend(case, "planted.no_tw", NoWeightTangent())
    assert result.status == "failed", result.summary()
    [ty] = result.discrepancies
    assert ty.output == "ty" and ty.worst_ratio > 1e3, ty.summary()


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_a_double_backward_with_a_flipped_term_fails(geometry):
    case = geometry.with_(direction="double_backward", dtype="float32")
    for term in case.output_names():
        result = run_backend(case, f"planted.flipped_{term}", FlippedTerm(term))
        if "max" in case.family and term == "dx":   # zero: -0 is still right
            assert result.status == "passed", result.summary()
            continue
        assert result.status == "failed", result.summary()
        assert {d.output for d in result.discrepancies if not d.passed} == {term}


@pytest.mark.parametrize("direction", HIGHER)
def test_planted_explicit_functions_fail_and_the_right_ones_pass(direction):
    case = CONVS[0].with_(direction=direction)
    wrong = run_backend(case, "planted.refcnn", PlantedRefcnn())
    right = run_backend(case, "refcnn.higher", PlantedRefcnn(planted=False))
    assert wrong.status == "failed" and right.status == "passed", (wrong.summary(),
                                                                  right.summary())
    bad = {d.output for d in wrong.discrepancies if not d.passed}
    assert bad == ({"ty"} if direction == "jvp" else {"dw"})


# ---- frameworks against the references ------------------------------------------------------------
def _backend(name):
    from crosscheck.backends import BackendUnavailable, get_backend

    try:
        return get_backend(name)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("backend_name", ["torch", "jax"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_frameworks_agree_with_the_reference(backend_name, geometry):
    backend = _backend(backend_name)
    for direction in HIGHER:
        for dtype in ("float64", "float32"):
            case = geometry.with_(direction=direction, dtype=dtype)
            result = run_backend(case, backend_name, backend)
            assert result.status == "passed", result.summary()


def test_inputs_without_tangents_get_the_cases_own():
    """0.1.0's Inputs(x, w, b, dy) for a jvp case: the driver uses the case's tangents."""
    case = GEOMETRIES[0].with_(direction="jvp")
    i = make_inputs(case)
    got = TorchBackend().run(case, Inputs(i.x, i.w, i.b, i.dy))["ty"]
    np.testing.assert_allclose(got, reference_outputs(case, i)["ty"], atol=1e-12)


def test_backends_without_the_hooks_say_why():
    case = GEOMETRIES[0]
    refcnn = RefcnnBackend()
    assert "no forward-mode" in refcnn.unsupported(case.with_(direction="jvp"))
    assert "no second-order" in refcnn.unsupported(case.with_(direction="double_backward"))
    assert refcnn.unsupported(case.with_(direction="backward")) is None


# ---- the sweep and the registry -------------------------------------------------------------------
def test_the_default_sweep_has_hundreds_of_each_for_every_family():
    cases = sweep("default")
    for direction in HIGHER:
        chosen = [c for c in cases if c.direction == direction]
        assert len(chosen) >= 300, direction
        assert {c.family for c in chosen} == set(ops.OPS)
        # A higher-order geometry also runs first order (one compile key for all four).
        first = {c.compile_key for c in cases if c.direction == "forward"}
        assert {c.compile_key for c in chosen if "probe" not in c.tags} <= first
    counts = {d: sum(c.direction == d for c in cases) for d in ops.DIRECTIONS}
    assert counts["forward"] == counts["backward"] + 1   # the forward-only float32 -inf probe


def test_every_higher_order_declaration_is_probed():
    probes = probe_cases()
    for diff in DIFFERENCES:
        higher = [p for p in diff.probes if p[1] in HIGHER]
        for family, direction, kind in higher:
            assert any((c.family, c.direction, c.inputs) == (family, direction, kind)
                       for c in probes), (diff.key, family, direction, kind)
    ties = next(d for d in DIFFERENCES if d.key == "maxpool_tie_jvp")
    assert any(ties.probed_by(c) for c in probes)


@pytest.mark.parametrize("kind", ["ties", "nan", "neginf"])
def test_jax_diverges_where_declared_and_torch_follows_the_reference(kind):
    jax_backend = _backend("jax")
    probe = next(c for c in probe_cases() if c.op == "max_pool3d" and c.inputs == kind
                 and c.direction == "jvp")
    assert run_backend(probe, "torch", TorchBackend()).status == "passed"
    result = run_backend(probe, "jax", jax_backend)
    assert result.status == "divergent", result.summary()
    assert result.reason.startswith("declared difference maxpool_")
