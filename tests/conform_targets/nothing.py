"""A module that provides none of the notebook functions."""


def relu(x):
    return x * (x > 0)
