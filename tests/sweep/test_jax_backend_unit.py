"""The JAX backend's own choices: native padding words, its compile cache, indices, refusals.

Agreement with the reference over the sweep is checked elsewhere; these tests pin
what is specific to how this backend drives JAX: JAX's own 'SAME', 'SAME_LOWER' and
'VALID' give what explicit pads give, the transposed conv is the adjoint of the conv
with the same weights (kernel flip and groups), max-pool and adaptive indices follow
torch's choice (ties, NaN, padding), one compiled function serves a geometry's
directions and seeds and the compiled functions stay bounded, the case's read-only
arrays are left untouched, and every refusal names its reason (and is still true).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from jax import lax  # noqa: E402

from crosscheck import geometry  # noqa: E402
from crosscheck.backends import jax_backend  # noqa: E402
from crosscheck.backends.base import Unsupported  # noqa: E402
from crosscheck.backends.jax_backend import JaxBackend, JaxNchwBackend  # noqa: E402
from crosscheck.cases import Case, Inputs, make_inputs  # noqa: E402

RANKS = (1, 2, 3)
SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 4, 6)}
BACKENDS = {"jax": JaxBackend(), "jax.nchw": JaxNchwBackend()}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request):
    return BACKENDS[request.param]


def _conv(family, rank, direction="forward", **params):
    params.setdefault("kernel", 3)
    return Case.of(family, rank, direction, n=2, spatial=SPATIAL[rank], c_in=4, c_out=6,
                   groups=2, **params)


def _pool_inputs(case, x):
    """Inputs holding ``x`` (1-D, one sample, one channel) for a pooling case."""
    x = np.asarray(x, float).reshape(1, -1, 1)
    dy = np.zeros((1, *case.out_spatial(), 1))
    return Inputs(x, None, None, dy)


# ---- JAX's padding words --------------------------------------------------------------------
@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("word", ["same", "same_lower", "valid"])
def test_conv_padding_word_matches_explicit_pads(backend, rank, word):
    # Odd 'same' totals on some axes (where SAME and SAME_LOWER differ), stride 2, dilation 2.
    case = _conv("conv", rank, "backward", kernel=(2, 3, 2)[:rank], stride=(1, 2, 1)[:rank],
                 dilation=(1, 1, 2)[:rank], padding=word)
    explicit = case.with_(padding=geometry.explicit_pads(case))
    assert word == "valid" or any(lo != hi for lo, hi in explicit.padding)
    inputs = make_inputs(case)
    assert explicit.out_spatial() == case.out_spatial()
    for direction in ("forward", "backward"):
        native = backend.run(case.with_(direction=direction), inputs)
        padded = backend.run(explicit.with_(direction=direction), inputs)
        for name in native:
            np.testing.assert_allclose(native[name], padded[name], rtol=1e-13, atol=1e-13,
                                       err_msg=f"{backend.name} {case.with_(direction=direction).id} "
                                               f"{name}: '{word}' vs {explicit.padding}")


# ---- the transposed conv --------------------------------------------------------------------
@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("groups", [1, 2])
def test_conv_transpose_is_the_adjoint_of_conv(backend, rank, groups):
    """<conv(x, w), y> == <x, conv_transpose(y, w)> with the same weight array."""
    params = dict(kernel=(3, 2, 3)[:rank], stride=(2, 1, 3)[:rank], dilation=(1, 2, 1)[:rank],
                  groups=groups, bias=False)
    conv = Case.of("conv", rank, n=2, spatial=SPATIAL[rank], c_in=4, c_out=6,
                   padding=((1, 0), (0, 2), (1, 1))[:rank], **params)
    x = make_inputs(conv).x
    out = conv.out_spatial()
    # The transposed conv maps conv's output back to x's shape: output_padding makes up the
    # cells the stride drops.
    output_padding = tuple(n - geometry.conv_transpose_out(o, k, s, d, p, 0) for n, o, k, s, d, p
                           in zip(conv.spatial, out, conv.kernel, conv.stride, conv.dilation,
                                  conv.padding))
    transpose = Case.of("conv_transpose", rank, n=2, spatial=out, c_in=6, c_out=4,
                        padding=conv.padding, output_padding=output_padding, **params)
    assert transpose.out_spatial() == conv.spatial
    t_inputs = make_inputs(transpose)
    w = t_inputs.w  # (*k, C_in_conv / g, C_out_conv): the conv's weight shape
    y = t_inputs.x
    forward = backend.run(conv, Inputs(x, w, None, np.zeros((2, *out, 6))))["y"]
    back = backend.run(transpose, Inputs(y, w, None, np.zeros(x.shape)))["y"]
    np.testing.assert_allclose(np.vdot(forward, y), np.vdot(x, back), rtol=1e-12,
                               err_msg=f"{backend.name} {conv.id} / {transpose.id}")


# ---- indices: torch's choice ----------------------------------------------------------------
@pytest.mark.parametrize("x, padding, expected", [
    ([1, 3, 3, 1, 3], 0, [1, 1, 2]),                      # ties: the first maximum
    ([1, np.nan, 3, np.nan, 2], 0, [1, 3, 3]),            # NaN: the last NaN in the window
    ([-np.inf, -np.inf, -np.inf, 2, 1], 1, [0, 0, 3, 3, 3]),  # never a padding cell
])
def test_max_pool_indices_follow_torch(backend, x, padding, expected):
    case = Case.of("max_pool", 1, n=1, spatial=(5,), c_in=1, kernel=3, stride=1,
                   padding=padding, return_indices=True)
    got = backend.run(case, _pool_inputs(case, x))["indices"].ravel()
    np.testing.assert_array_equal(got, expected, err_msg=f"{backend.name} {case.id} x={x}")


def test_max_pool_indices_are_flat_over_the_plane(backend):
    case = Case.of("max_pool", 3, n=2, spatial=(4, 5, 6), c_in=3, kernel=2, stride=2,
                   padding=((1, 0), (0, 1), (1, 1)), dilation=(1, 2, 1), ceil_mode=True,
                   return_indices=True)
    inputs = make_inputs(case)
    got = backend.run(case, inputs)
    picked = np.take_along_axis(inputs.x.reshape(2, -1, 3), got["indices"].reshape(2, -1, 3), 1)
    np.testing.assert_array_equal(picked.reshape(got["y"].shape), got["y"], err_msg=case.id)


@pytest.mark.parametrize("x, expected", [
    ([1, 3, 3, 1, 3, 0, 0], [1, 2, 4]),   # bins [0,3) [2,5) [4,7): ties pick the first
    ([np.nan, 2, 1, np.nan, 5, 0, 0], [0, 3, 4]),
])
def test_adaptive_max_pool_indices_follow_torch(backend, x, expected):
    case = Case.of("adaptive_max_pool", 1, n=1, spatial=(7,), c_in=1, output_size=3,
                   return_indices=True)
    assert geometry.adaptive_bins(7, 3) == [(0, 3), (2, 5), (4, 7)]
    got = backend.run(case, _pool_inputs(case, x))["indices"].ravel()
    np.testing.assert_array_equal(got, expected, err_msg=f"{backend.name} {case.id} x={x}")


# ---- the compile cache ----------------------------------------------------------------------
def test_one_compiled_function_serves_directions_seeds_and_dtypes_apart(backend):
    backend.clear_compiled()
    case = _conv("conv", 2, padding="same", kernel=2)
    for direction in ("forward", "backward"):
        for seed in (0, 1):
            c = case.with_(direction=direction, seed=seed)
            backend.run(c, make_inputs(c))
    assert backend.compiled_count() == 1
    backend.run(case.with_(dtype="float32"), make_inputs(case.with_(dtype="float32")))
    assert backend.compiled_count() == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_compiled_functions_and_memory_maps_stay_bounded(monkeypatch):
    """A long run of distinct geometries keeps at most MAX_COMPILED executables alive, so
    the process's memory maps stop growing (a full sweep once crashed at vm.max_map_count)."""
    def maps():
        with open("/proc/self/maps") as f:
            return len(f.readlines())

    backend = JaxBackend()
    backend.clear_compiled()
    monkeypatch.setattr(jax_backend, "MAX_COMPILED", 8)

    def run(length):
        case = Case.of("max_pool", 1, "backward", n=1, spatial=(length,), c_in=1, kernel=2)
        backend.run(case, make_inputs(case))

    for length in range(4, 20):            # fill the cache, then some
        run(length)
    before = maps()
    for length in range(20, 100):
        run(length)
        assert backend.compiled_count() <= 8
    grown = maps() - before
    # Each live executable holds some tens of maps: 80 kept alive would add thousands.
    assert grown < 600, f"memory maps grew by {grown} over 80 geometries with 8 kept alive"
    backend.clear_compiled()
    assert backend.compiled_count() == 0
    assert maps() <= before + 100


# ---- inputs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", [
    _conv("conv", 2, "backward", padding=1),
    _conv("conv_transpose", 3, "backward", stride=2),
    Case.of("avg_pool", 1, "backward", n=2, spatial=(9,), c_in=3, kernel=3, padding=1,
            ceil_mode=True),
    Case.of("adaptive_max_pool", 2, "forward", n=2, spatial=(7, 6), c_in=3, output_size=(3, 4),
            return_indices=True),
], ids=lambda c: c.id)
def test_inputs_are_left_untouched(backend, case):
    inputs = make_inputs(case)
    assert not inputs.x.flags.writeable  # the harness's read-only arrays are accepted
    before = {r: None if getattr(inputs, r) is None else getattr(inputs, r).copy()
              for r in ("x", "w", "b", "dy")}
    writable = Inputs(*(None if a is None else a.copy() for a in before.values()))
    first = backend.run(case, writable)
    for role, a in before.items():
        if a is not None:
            np.testing.assert_array_equal(getattr(inputs, role), a, err_msg=f"{case.id} {role}")
            np.testing.assert_array_equal(getattr(writable, role), a, err_msg=f"{case.id} {role}")
            getattr(writable, role)[...] = 7.0  # the backend's arrays are copies, not views
    again = backend.run(case, inputs)
    for name in first:
        np.testing.assert_array_equal(again[name], first[name], err_msg=f"{case.id} {name}")


# ---- refusals -------------------------------------------------------------------------------
def test_max_pool_gradient_with_dilation_is_refused_with_its_reason(backend):
    case = Case.of("max_pool", 2, "backward", n=1, spatial=(7, 7), c_in=2, kernel=2,
                   dilation=(2, 1))
    reason = backend.unsupported(case)
    assert reason and "window dilation" in reason and "NotImplementedError" in reason
    with pytest.raises(Unsupported, match="window dilation"):
        backend.run(case, make_inputs(case))
    forward = case.with_(direction="forward", return_indices=True)
    assert backend.unsupported(forward) is None
    assert set(backend.run(forward, make_inputs(forward))) == {"y", "indices"}


def test_the_refused_max_pool_gradient_still_raises_in_jax():
    """The refusal is a fact about JAX, not a choice: drop it once JAX differentiates this."""
    x = np.arange(1.0, 8.0).reshape(1, 7, 1)

    def pool(v):
        return lax.reduce_window(v, -np.inf, lax.max, (1, 2, 1), (1, 1, 1), "VALID",
                                 window_dilation=(1, 2, 1))

    with pytest.raises(NotImplementedError):
        jax.vjp(pool, x)[1](np.ones((1, 5, 1)))


def test_settings_name_the_precision_and_layout(backend):
    settings = backend.settings()
    assert settings["jax_enable_x64"] is True
    assert settings["conv_precision"] == "HIGHEST"
    assert {"layout", "platform", "jax_default_matmul_precision"} <= set(settings)
    assert settings["layout"].startswith("channels-first" if backend.channels_first
                                         else "channels-last")


def _fused_forward_geometries(count=24):
    """The first ``count`` smoke-sweep forward cases JAX runs, one per geometry."""
    from crosscheck.sweeps import sweep

    backend, seen, picked = JaxBackend(), set(), []
    for case in sweep("smoke"):
        if case.direction != "forward" or case.compile_key in seen or backend.unsupported(case):
            continue
        seen.add(case.compile_key)
        picked.append(case)
        if len(picked) == count:
            break
    return picked


@pytest.mark.parametrize("case", _fused_forward_geometries(), ids=lambda c: c.id)
def test_fused_program_computes_the_forward_a_user_would(case):
    """One program serves a geometry's four directions: its forward must be, bit for bit,
    what a program of the forward alone (a user's ``jax.jit``) computes, or fusing would
    test something nobody runs (compiling geometries together inside one ``lax.switch``
    measured otherwise: 8 of 954 smoke results moved)."""
    from crosscheck.backends.driver import case_arrays
    from crosscheck.ops import DIRECTIONS, HIGHER_ORDER

    backend = JaxBackend()
    impl = backend.ops[case.family]
    geometry_case = case.with_(direction="forward", seed=0, inputs="random")
    arrays = {role: backend._to_backend(role, a, case)
              for role, a in case_arrays(case, make_inputs(case)).items()}
    args = (arrays["x"], arrays["w"], arrays["b"], arrays["dy"],
            arrays["x"], arrays["w"], arrays["b"])
    every = tuple(d for d in DIRECTIONS + HIGHER_ORDER if d == "forward" or impl.unsupported
                  is None or impl.unsupported(geometry_case.with_(direction=d)) is None)
    alone = jax_backend._fused(impl, geometry_case, ("forward",))(*args)["forward"]
    fused = jax_backend._fused(impl, geometry_case, every)(*args)["forward"]
    for name in alone:
        assert np.array_equal(np.asarray(alone[name]), np.asarray(fused[name]), equal_nan=True), \
            f"{case.id}: {name} of the fused program differs from the forward alone"
