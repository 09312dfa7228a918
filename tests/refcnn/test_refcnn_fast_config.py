"""The fast path's knobs are explicit: a frozen FastConfig per call, no module state.

Threads and pooling block sizes never change a result (threads but the depthwise
weight gradient's rounding); conv block sizes only
change how the matrix products are cut (results within rounding); a call
leaves no thread behind; a bad knob is refused naming it.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

import refcnn
from refcnn import fast
from refcnn.fast import DEFAULT_CONFIG, FastConfig
from refcnn_helpers import rng

X = rng("fast-config", "x").standard_normal((9, 11, 10, 6))
DY_POOL = rng("fast-config", "dy").standard_normal((9, 6, 5, 6))


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(FastConfig)])
@pytest.mark.parametrize("value, error", [(0, ValueError), (-3, ValueError), (1.5, TypeError),
                                          (True, TypeError)])
def test_a_bad_knob_is_refused_naming_it(field, value, error):
    with pytest.raises(error, match=f"FastConfig.{field}"):
        FastConfig(**{field: value})


@pytest.mark.parametrize("call", [
    lambda c: refcnn.conv2d(X, np.ones((3, 3, 6, 2)), config=c),
    lambda c: refcnn.max_pool2d_backward(DY_POOL, X, 3, stride=2, padding=1, config=c),
    lambda c: refcnn.avg_pool2d(X, 2, config=c),
], ids=["conv2d", "max_pool2d_backward", "avg_pool2d"])
def test_config_must_be_a_fastconfig(call):
    with pytest.raises(TypeError, match="config"):
        call({"threads": 2})


def test_the_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_CONFIG.threads = 8


@pytest.mark.parametrize("config", [
    FastConfig(threads=1), FastConfig(threads=3), FastConfig(pool_block_bytes=1),
    FastConfig(pool_block_bytes=1, threads=4)], ids=["threads1", "threads3", "block1",
                                                     "block1_threads4"])
def test_threads_and_pool_blocks_never_change_a_pooling_result(config):
    calls = [
        lambda c: refcnn.max_pool2d(X, 3, stride=2, padding=1, config=c),
        lambda c: refcnn.max_pool2d_backward(DY_POOL, X, 3, stride=2, padding=1, config=c),
        lambda c: refcnn.avg_pool2d(X, 3, stride=2, padding=1, config=c),
        lambda c: refcnn.avg_pool2d_backward(DY_POOL, X, 3, stride=2, padding=1, config=c),
    ]
    for call in calls:
        assert call(config).tobytes() == call(DEFAULT_CONFIG).tobytes()


@pytest.mark.parametrize("padding", [1, 0], ids=["padded", "unpadded"])
@pytest.mark.parametrize("groups", [1, 2, 6], ids=["plain", "grouped", "depthwise"])
def test_conv_block_sizes_change_only_rounding(groups, padding):
    # Unpadded, X (C-ordered float64) is read in place by every block, not copied to a slab.
    w = rng("fast-config", "w", groups).standard_normal((3, 3, 6 // groups, 6))
    b = rng("fast-config", "b").standard_normal(6)
    small = FastConfig(block_target_bytes=1, channelwise_block_bytes=1, fold_bias_max_k=1)
    opts = dict(padding=padding, groups=groups)
    y = refcnn.conv2d(X, w, b, **opts)
    np.testing.assert_allclose(refcnn.conv2d(X, w, b, config=small, **opts), y,
                               rtol=1e-12, atol=1e-12)
    dy = rng("fast-config", "dy-conv").standard_normal(y.shape)
    for got, want in zip(refcnn.conv2d_backward(dy, X, w, b, config=small, **opts),
                         refcnn.conv2d_backward(dy, X, w, b, **opts)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_a_call_leaves_no_thread_behind():
    before = {t.ident for t in threading.enumerate()}
    refcnn.max_pool2d_backward(DY_POOL, X, 3, stride=2, padding=1,
                               config=FastConfig(threads=4, pool_block_bytes=1))
    left = [t.name for t in threading.enumerate() if t.ident not in before]
    assert not left, f"threads still running after the call: {left}"


def test_no_module_state():
    """The knobs live in FastConfig only: no thread pool or tuned constant at module level."""
    shared = {"DEFAULT_CONFIG", "DEFAULT_WORKSPACE_BYTES"}  # refcnn.fast.config's defaults
    for module in (fast.im2col, fast.pool, fast.plan, fast.layout):
        names = [n for n in vars(module)
                 if n.strip("_").isupper() and not n.startswith("__") and n not in shared]
        assert not names, f"{module.__name__} has module-level knobs {names}"


@pytest.mark.parametrize("threads", [2, 3, 4])
def test_depthwise_threads_change_only_the_weight_gradients_rounding(threads):
    """Depthwise blocks run on threads (the backward's dx and dw concurrently): y and dx
    are the same bits, dw within rounding (each thread sums its own part), and no thread
    outlives the call."""
    w = rng("fast-config", "w-dw").standard_normal((3, 3, 1, 6))
    b = rng("fast-config", "b").standard_normal(6)
    config = FastConfig(threads=threads, channelwise_block_bytes=1)
    one = FastConfig(threads=1, channelwise_block_bytes=1)
    opts = dict(padding=1, groups=6)
    before = {t.ident for t in threading.enumerate()}
    y = refcnn.conv2d(X, w, b, config=config, **opts)
    assert y.tobytes() == refcnn.conv2d(X, w, b, config=one, **opts).tobytes()
    dy = rng("fast-config", "dy-dw").standard_normal(y.shape)
    dx, dw, db = refcnn.conv2d_backward(dy, X, w, b, config=config, **opts)
    dx1, dw1, db1 = refcnn.conv2d_backward(dy, X, w, b, config=one, **opts)
    assert dx.tobytes() == dx1.tobytes() and db.tobytes() == db1.tobytes()
    np.testing.assert_allclose(dw, dw1, rtol=1e-12, atol=1e-12)
    left = [t.name for t in threading.enumerate() if t.ident not in before]
    assert not left, f"threads still running after the call: {left}"
