"""A forward that is wrong (Z doubled) with a cache of its own layout (a dict), and a right
backward that takes only that cache: judged with the reference's cache it raises, so conform
judges it on its own forward's cache, and says so."""

import numpy as np

import refcnn


def conv_forward(A_prev, W, b, hparameters):
    Z, _ = refcnn.conv_forward(A_prev, W, b, hparameters)
    return 2 * Z, {"A_prev": A_prev, "W": W, "b": b, "hparameters": hparameters}


def conv_backward(dZ, cache):
    return refcnn.conv_backward(dZ, (cache["A_prev"], cache["W"], cache["b"],
                                     cache["hparameters"]))
