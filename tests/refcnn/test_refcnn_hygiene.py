"""No function modifies its caller's arrays; empty batches work; output dtypes follow the
input dtype; ``import refcnn`` loads no framework and refcnn imports only NumPy and the stdlib.
"""

import ast
import copy
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import refcnn
from refcnn import loops
from refcnn_helpers import DTYPE_IDS, DTYPES, rng

REFCNN_DIR = pathlib.Path(refcnn.__file__).parent

CONV_HP = {"stride": 2, "pad": ((1, 0), (0, 1)), "dilation": 1, "groups": 2}
POOL_HP = {"f": 3, "stride": 2, "pad": 1, "ceil_mode": True}
AVG_HP = dict(POOL_HP, count_include_pad=False, divisor_override=None)


def _inputs(dtype=np.float64, n=2):
    """Arguments for every public function, keyed by function name."""
    g = rng("hygiene", np.dtype(dtype).name, n)
    x = g.standard_normal((n, 5, 6, 4)).astype(dtype)
    w = g.standard_normal((3, 2, 2, 6)).astype(dtype)
    b = g.standard_normal((1, 1, 1, 6)).astype(dtype)
    z_shape = refcnn.conv_forward(x, w, b, CONV_HP)[0].shape
    p_shape = refcnn.pool_forward(x, POOL_HP)[0].shape
    dz = g.standard_normal(z_shape).astype(dtype)
    dp = g.standard_normal(p_shape).astype(dtype)
    core_conv = {"stride": 2, "padding": ((1, 0), (0, 1)), "groups": 2}
    core_pool = {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}
    return {
        "zero_pad": ((x, ((1, 2), (0, 1))), {}),
        "conv_single_step": ((g.standard_normal((3, 2, 4)).astype(dtype),
                              g.standard_normal((3, 2, 4)).astype(dtype), b[..., :1]), {}),
        "conv_forward": ((x, w, b, CONV_HP), {}),
        "conv_backward": ((dz, (x, w, b, CONV_HP)), {}),
        # Only the required keys: a function must not fill in defaults in the caller's dict.
        "conv_forward-minimal": ((x, w[:, :, :1].repeat(4, axis=2), b, {"stride": 1, "pad": 0}),
                                 {}),
        "conv_backward-minimal": ((g.standard_normal((n, 3, 5, 6)).astype(dtype),
                                   (x, w[:, :, :1].repeat(4, axis=2), b,
                                    {"stride": 1, "pad": 0})), {}),
        "pool_forward-minimal": ((x, {"f": 2, "stride": 2}, "average"), {}),
        "pool_backward-minimal": ((g.standard_normal((n, 2, 3, 4)).astype(dtype),
                                   (x, {"f": 2, "stride": 2}), "average"), {}),
        "pool_forward": ((x, POOL_HP, "max"), {}),
        "pool_forward-average": ((x, AVG_HP, "average"), {}),
        "pool_backward": ((dp, (x, POOL_HP), "max"), {}),
        "pool_backward-average": ((dp, (x, AVG_HP), "average"), {}),
        "create_mask_from_window": ((g.standard_normal((3, 3)).astype(dtype),), {}),
        "distribute_value": ((np.array(2.0, dtype=dtype), (2, 3)), {}),
        "conv2d": ((x, w, b.reshape(-1)), core_conv),
        "conv2d_backward": ((dz, x, w, b.reshape(-1)), core_conv),
        "max_pool2d": ((x,), core_pool),
        "max_pool2d_backward": ((dp, x), core_pool),
        "avg_pool2d": ((x,), dict(core_pool, count_include_pad=False)),
        "avg_pool2d_backward": ((dp, x), dict(core_pool, count_include_pad=False)),
    }


PUBLIC = [(refcnn, name) for name in refcnn.__all__] + [(loops, name) for name in loops.__all__]
CALLS = sorted(_inputs())


def _arrays(obj):
    """Every ndarray inside nested tuples/lists/dicts."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _arrays(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _arrays(o)


def test_every_public_function_is_covered():
    names = {c.split("-")[0] for c in CALLS}
    for module, name in PUBLIC:
        assert name in names, f"{module.__name__}.{name} is public but has no no-mutation case"


@pytest.mark.parametrize("call", [pytest.param((m, c), id=f"{m.__name__}.{c}")
                                  for m in (refcnn, loops) for c in CALLS
                                  if c.split("-")[0] in getattr(m, "__all__")])
@pytest.mark.parametrize("readonly", [False, True], ids=["writeable", "readonly"])
def test_no_function_modifies_its_arguments(call, readonly):
    module, name = call
    args, kwargs = _inputs()[name]
    before = copy.deepcopy((args, kwargs))
    if readonly:  # any write, even one undone later, raises
        for a in _arrays((args, kwargs)):
            a.flags.writeable = False
    out = getattr(module, name.split("-")[0])(*args, **kwargs)
    for got, want in zip(_arrays((args, kwargs)), _arrays(before)):
        np.testing.assert_array_equal(got, want, err_msg=f"{module.__name__}.{name} modified "
                                                         "an argument")
    assert repr(kwargs) == repr(before[1]) and all(
        repr(a) == repr(b) for a, b in zip(args, before[0]) if isinstance(a, (dict, tuple))
    ), f"{module.__name__}.{name} modified hparameters"
    # Results are new arrays: writing into them cannot reach the caller's arrays.
    outs = [out[0]] if name.split("-")[0] in ("conv_forward", "pool_forward") else \
        list(_arrays(out))
    for o in outs:
        for a in _arrays((args, kwargs)):
            assert not np.shares_memory(o, a), f"{module.__name__}.{name} returned a view of " \
                                               "an argument"


# ----------------------------------------------------------------------------- empty batch

@pytest.mark.parametrize("module", [refcnn, loops], ids=["vectorized", "loops"])
@pytest.mark.parametrize("name", ["zero_pad", "conv_forward", "conv_backward", "pool_forward",
                                  "pool_forward-average", "pool_backward",
                                  "pool_backward-average"])
def test_empty_batch(module, name):
    full_args, full_kwargs = _inputs(n=2)[name]
    args, kwargs = _inputs(n=0)[name]
    fn = getattr(module, name.split("-")[0])
    out, full = fn(*args, **kwargs), fn(*full_args, **full_kwargs)
    if name.split("-")[0] in ("conv_forward", "pool_forward"):
        out, full = out[0], full[0]
    out = out if isinstance(out, tuple) else (out,)
    full = full if isinstance(full, tuple) else (full,)
    for o, f in zip(out, full):
        want = f.shape if name == "conv_backward" and o is not out[0] else (0, *f.shape[1:])
        assert o.shape == want, f"{module.__name__}.{name} m=0: shape {o.shape}, expected {want}"
        assert o.dtype == f.dtype
    if name == "conv_backward":
        assert not out[1].any() and not out[2].any(), "dW and db of an empty batch are zero"


@pytest.mark.parametrize("name", ["conv2d", "conv2d_backward", "max_pool2d",
                                  "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"])
def test_empty_batch_functional_core(name):
    args, kwargs = _inputs(n=0)[name]
    full_args, full_kwargs = _inputs(n=2)[name]
    out, full = getattr(refcnn, name)(*args, **kwargs), getattr(refcnn, name)(*full_args,
                                                                             **full_kwargs)
    out = out if isinstance(out, tuple) else (out,)
    full = full if isinstance(full, tuple) else (full,)
    assert out[0].shape == (0, *full[0].shape[1:])
    for o, f in zip(out[1:], full[1:]):
        assert o.shape == f.shape and not o.any()


# ----------------------------------------------------------------------------- dtypes

@pytest.mark.parametrize("call", [pytest.param((m, c), id=f"{m.__name__}.{c}")
                                  for m in (refcnn, loops) for c in CALLS
                                  if c.split("-")[0] in getattr(m, "__all__") and c not in
                                  ("create_mask_from_window", "distribute_value",
                                   "conv_single_step")])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_output_dtype_is_input_dtype(call, dtype):
    module, name = call
    args, kwargs = _inputs(dtype)[name]
    out = getattr(module, name.split("-")[0])(*args, **kwargs)
    if name.split("-")[0] in ("conv_forward", "pool_forward"):
        out = out[0]
    for o in (out if isinstance(out, tuple) else (out,)):
        assert o.dtype == dtype, f"{module.__name__}.{name}: output dtype {o.dtype} for " \
                                 f"{np.dtype(dtype).name} input"


def test_conv_forward_promotes_mixed_dtypes():
    x = np.ones((1, 3, 3, 1), np.float16)
    w = np.ones((2, 2, 1, 1), np.float32)
    b = np.zeros((1, 1, 1, 1), np.float16)
    for module in (refcnn, loops):
        assert module.conv_forward(x, w, b, {"stride": 1, "pad": 0})[0].dtype == np.float32


def test_single_step_results():
    assert isinstance(refcnn.conv_single_step(np.ones((2, 2, 1), np.float16),
                                              np.ones((2, 2, 1), np.float16),
                                              np.ones((1, 1, 1), np.float16)), np.float64)
    assert refcnn.create_mask_from_window(np.ones((2, 2), np.float32)).dtype == np.bool_


# ----------------------------------------------------------------------------- imports

def test_import_refcnn_loads_no_framework():
    code = ('import refcnn, refcnn.loops, sys; '
            'bad = sorted(m for m in sys.modules if m.split(".")[0] in '
            '{"torch","jax","jaxlib","tensorflow"}); '
            'assert not bad, bad')
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, f"import refcnn loaded a framework:\n{res.stderr}"


@pytest.mark.parametrize("path", sorted(REFCNN_DIR.rglob("*.py")), ids=lambda p: p.name)
def test_refcnn_imports_only_numpy_and_stdlib(path):
    allowed = {"numpy", "refcnn"} | set(sys.stdlib_module_names)
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__" or (
                isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"):
            found.append("<dynamic import>")
    bad = [m for m in found if m.split(".")[0] not in allowed]
    assert not bad, f"{path.name} imports {bad}: refcnn may import only numpy and the stdlib"


def test_refcnn_files_are_all_scanned():
    assert len(list(REFCNN_DIR.glob("*.py"))) >= 8
