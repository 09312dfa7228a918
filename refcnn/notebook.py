"""The notebook's layer API (``conv_forward`` ... ``pool_backward``) over the fast path.

Caches unpack exactly as the notebook's: ``(A_prev, W, b, hparameters)`` for
conv and ``(A_prev, hparameters)`` for pooling, so code written against the
notebook keeps working. A max pool's cache also carries the cells its forward
chose (:class:`PoolCache`), so that its backward scatters instead of searching;
a ``(A_prev, hparameters)`` tuple built by hand still works, and searches.
"""

from __future__ import annotations

from refcnn._params import check_keys, check_mode
from refcnn.fast import im2col as conv, pool
from refcnn.fast.plan import check_grad, conv_plan, pool_plan

CONV_KEYS = ("stride", "pad", "dilation", "groups")
CONV_REQUIRED = ("stride", "pad")
POOL_KEYS = ("f", "stride", "pad", "dilation", "ceil_mode", "count_include_pad",
             "divisor_override")
POOL_REQUIRED = ("f", "stride")


def conv_options(hparameters) -> dict:
    """Keyword arguments of :func:`refcnn.fast.im2col.conv2d` from conv ``hparameters``."""
    check_keys(hparameters, CONV_KEYS, CONV_REQUIRED, "hparameters")
    return {
        "stride": hparameters["stride"],
        "padding": hparameters["pad"],
        "dilation": hparameters.get("dilation", 1),
        "groups": hparameters.get("groups", 1),
    }


def pool_options(hparameters, mode) -> dict:
    """Keyword arguments of the pooling functions from pool ``hparameters``."""
    check_mode(mode)
    check_keys(hparameters, POOL_KEYS, POOL_REQUIRED, "hparameters")
    options = {
        "kernel_size": hparameters["f"],
        "stride": hparameters["stride"],
        "padding": hparameters.get("pad", 0),
        "dilation": hparameters.get("dilation", 1),
        "ceil_mode": hparameters.get("ceil_mode", False),
    }
    if mode == "average":
        options["count_include_pad"] = hparameters.get("count_include_pad", True)
        options["divisor_override"] = hparameters.get("divisor_override")
    return options


def unpack_conv_cache(cache):
    """``(A_prev, W, b, hparameters)``, or a TypeError naming the cache."""
    if not isinstance(cache, (tuple, list)) or len(cache) != 4:
        raise TypeError(
            "cache must be the (A_prev, W, b, hparameters) tuple returned by conv_forward, "
            f"got {type(cache).__name__}"
        )
    return tuple(cache)


class PoolCache(tuple):
    """:func:`pool_forward`'s cache: the tuple ``(A_prev, hparameters)``, as the notebook's,
    carrying the forward's routing.

    Attributes
    ----------
    indices : ndarray of int64, shape (m, n_H, n_W, n_C), or None
        For max pooling, each window's chosen cell in torch's form (see
        :func:`refcnn.max_pool2d`); None for average pooling. :func:`pool_backward`
        routes through them as long as the hparameters still describe the forward's
        geometry (a dict changed since searches again). They are the forward's
        choice: changing A_prev's values in place afterwards does not move them.
    """

    def __new__(cls, A_prev, hparameters, plan=None, indices=None):
        cache = super().__new__(cls, (A_prev, hparameters))
        cache._plan, cache.indices = plan, indices
        return cache

    def __reduce__(self):
        # tuple's own pickling would call __new__ with the tuple as one argument.
        return (PoolCache, (*self, self._plan, self.indices))

    def indices_for(self, plan):
        """The forward's indices if it had the geometry ``plan``, else None."""
        return self.indices if self._plan == plan else None


def unpack_pool_cache(cache):
    """``(A_prev, hparameters)``, or a TypeError naming the cache."""
    if not isinstance(cache, (tuple, list)) or len(cache) != 2:
        raise TypeError(
            "cache must be the (A_prev, hparameters) tuple returned by pool_forward, "
            f"got {type(cache).__name__}"
        )
    return tuple(cache)


def conv_forward(A_prev, W, b, hparameters):
    """Forward pass of a convolution layer.

    Parameters
    ----------
    A_prev : ndarray, shape (m, n_H_prev, n_W_prev, n_C_prev)
    W : ndarray, shape (f_h, f_w, n_C_prev // groups, n_C)
    b : ndarray, shape (1, 1, 1, n_C) or (n_C,)
    hparameters : dict
        ``stride`` (int or pair), ``pad`` (int, pair, per-side pairs, "same",
        "valid"), optional ``dilation`` (default 1) and ``groups`` (default 1).

    Returns
    -------
    Z : ndarray, shape (m, n_H, n_W, n_C)
    cache : tuple ``(A_prev, W, b, hparameters)``
    """
    plan = conv_plan(A_prev, W, b, **conv_options(hparameters))
    Z = conv.conv2d_planned(plan, A_prev, W, b)
    return Z, (A_prev, W, b, hparameters)


def conv_backward(dZ, cache):
    """Backward pass of a convolution layer.

    Parameters
    ----------
    dZ : ndarray, shape (m, n_H, n_W, n_C)
    cache : tuple ``(A_prev, W, b, hparameters)`` from :func:`conv_forward`

    Returns
    -------
    dA_prev : ndarray, A_prev's shape
    dW : ndarray, W's shape
    db : ndarray, b's shape
    """
    A_prev, W, b, hparameters = unpack_conv_cache(cache)
    plan = conv_plan(A_prev, W, b, **conv_options(hparameters))
    check_grad(dZ, plan, "dZ")
    return conv.conv2d_backward_planned(plan, dZ, A_prev, W, b)


def pool_forward(A_prev, hparameters, mode="max"):
    """Forward pass of a pooling layer.

    Parameters
    ----------
    A_prev : ndarray, shape (m, n_H_prev, n_W_prev, n_C)
    hparameters : dict
        ``f`` and ``stride`` (int or pair), optional ``pad`` (int, pair,
        per-side pairs), ``dilation``, ``ceil_mode`` (False),
        ``count_include_pad`` (True) and ``divisor_override`` (average only).
    mode : {"max", "average"}

    Returns
    -------
    A : ndarray, shape (m, n_H, n_W, n_C)
    cache : PoolCache
        Unpacks as ``(A_prev, hparameters)``; for max pooling it also holds the
        forward's chosen cells, which :func:`pool_backward` routes through.
    """
    plan = pool_plan(A_prev, **pool_options(hparameters, mode))
    if mode == "average":
        return pool.avg_planned(plan, A_prev), PoolCache(A_prev, hparameters)
    A, indices = pool.max_indices_planned(plan, A_prev)
    return A, PoolCache(A_prev, hparameters, plan, indices)


def pool_backward(dA, cache, mode="max"):
    """Backward pass of a pooling layer.

    Max pooling routes each window's gradient to its first maximum in
    row-major order (torch's rule), not to every tie as
    :func:`create_mask_from_window` would: to the cells the forward chose when
    the cache is :func:`pool_forward`'s, else found again in A_prev.

    Parameters
    ----------
    dA : ndarray, shape (m, n_H, n_W, n_C)
    cache : PoolCache from :func:`pool_forward`, or a tuple ``(A_prev, hparameters)``
    mode : {"max", "average"}

    Returns
    -------
    dA_prev : ndarray, A_prev's shape
    """
    A_prev, hparameters = unpack_pool_cache(cache)
    plan = pool_plan(A_prev, **pool_options(hparameters, mode))
    check_grad(dA, plan, "dA")
    if mode == "average":
        return pool.avg_backward_planned(plan, dA, A_prev)
    indices = cache.indices_for(plan) if isinstance(cache, PoolCache) else None
    if indices is None:
        return pool.max_backward_planned(plan, dA, A_prev)
    return pool.max_scatter_planned(plan, dA, A_prev, indices)

