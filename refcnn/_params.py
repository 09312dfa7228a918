"""Validation and normalisation of arguments shared by every refcnn function.

Every malformed argument is refused here with a ``TypeError`` (wrong kind of
object) or ``ValueError`` (right kind, wrong value) whose message names the
parameter and the form that was expected, so that the public functions stay
short and all of them refuse bad input in the same words.
"""

from __future__ import annotations

import numbers

import numpy as np

#: Floating dtypes refcnn computes with; anything else is refused.
FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

PAD_WORDS = ("same", "same_lower", "valid")


def check_array(value, name: str, ndim: int | None = None) -> np.ndarray:
    """Return ``value`` as a floating ndarray (no copy), or raise naming ``name``."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(value).__name__}")
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must have a floating dtype (float16, float32 or float64), got {value.dtype}"
        )
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {value.shape}")
    return value


def check_int(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as a Python int ``>= minimum``; bools and floats are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def as_pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
    """Normalise an int or a pair of ints to ``(height, width)``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (height, width), got {value!r}")
        return (
            check_int(value[0], f"{name}[0]", minimum),
            check_int(value[1], f"{name}[1]", minimum),
        )
    return (check_int(value, name, minimum),) * 2


def as_padding(value, name: str = "pad", words: bool = True):
    """Normalise a padding spec.

    Accepted forms: an int (all sides), a pair ``(ph, pw)`` (both sides of each
    axis), per-side pairs ``((top, bottom), (left, right))``, and, when
    ``words`` is true, ``"same"``, ``"same_lower"`` (the odd pixel first) or ``"valid"``.

    Returns
    -------
    str or tuple
        one of :data:`PAD_WORDS` or ``((top, bottom), (left, right))``.
    """
    expected = "an int >= 0, a pair (ph, pw), per-side pairs ((top, bottom), (left, right))"
    if words:
        expected += ', "same", "same_lower" or "valid"'
    if isinstance(value, str):
        word = value.lower()
        if not words or word not in PAD_WORDS:
            raise ValueError(f"{name} must be {expected}, got {value!r}")
        return word
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be {expected}, got {value!r}")
        if all(isinstance(v, (tuple, list)) for v in value):
            sides = []
            for axis, pair in zip(("height", "width"), value):
                if len(pair) != 2:
                    raise ValueError(f"{name} must be {expected}, got {value!r}")
                sides.append(
                    (
                        check_int(pair[0], f"{name} ({axis}, before)", 0),
                        check_int(pair[1], f"{name} ({axis}, after)", 0),
                    )
                )
            return tuple(sides)
        ph, pw = as_pair(value, name, 0)
        return ((ph, ph), (pw, pw))
    try:
        p = check_int(value, name, 0)
    except TypeError:
        raise TypeError(f"{name} must be {expected}, got {value!r}") from None
    return ((p, p), (p, p))


def check_keys(hparameters, allowed: tuple[str, ...], required: tuple[str, ...], name: str):
    """Refuse a non-dict, unknown keys and missing required keys."""
    if not isinstance(hparameters, dict):
        raise TypeError(f"{name} must be a dict, got {type(hparameters).__name__}")
    unknown = sorted(set(hparameters) - set(allowed), key=str)
    if unknown:
        raise ValueError(
            f"{name} has unknown key(s) {unknown}; allowed keys are {list(allowed)}"
        )
    missing = [k for k in required if k not in hparameters]
    if missing:
        raise ValueError(f"{name} is missing required key(s) {missing}")


def check_mode(mode) -> str:
    """Pooling mode: "max" or "average"."""
    if mode not in ("max", "average"):
        raise ValueError(f'mode must be "max" or "average", got {mode!r}')
    return mode


def result_dtype(*arrays) -> np.dtype:
    """The floating dtype of the result: the promotion of the inputs' dtypes."""
    return np.result_type(*arrays)


def check_accumulate(value) -> str:
    """``accumulate``: "float64" (default, exact-ish) or "native" (input precision)."""
    if value not in ("float64", "native"):
        raise ValueError(f'accumulate must be "float64" or "native", got {value!r}')
    return value


def check_flag(value, name: str) -> None:
    """``value`` is True or False (a NumPy bool too), or a TypeError naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def acc_dtype(accumulate, dtype) -> np.dtype:
    """The dtype sums run in: float64, or for "native" ``dtype`` itself (float16 sums in
    float32, as frameworks do: NumPy's float16 matmul and loops are unusably slow)."""
    if check_accumulate(accumulate) == "float64":
        return np.dtype(np.float64)
    return np.promote_types(dtype, np.float32)


def promoted(*arrays) -> np.dtype:
    """The promoted dtype of the arrays given (None skipped)."""
    return np.result_type(*[a for a in arrays if a is not None])


# Rank-generic forms, for refcnn.functional: a value per spatial axis, any rank.

def as_tuple(value, name: str, rank: int, minimum: int = 1) -> tuple[int, ...]:
    """Normalise an int, or a sequence of ``rank`` ints (one per spatial axis), to a tuple."""
    if isinstance(value, (tuple, list)):
        if len(value) != rank:
            raise ValueError(
                f"{name} must be an int or a sequence of {rank} ints (one per spatial axis), "
                f"got {value!r}"
            )
        return tuple(check_int(v, f"{name}[{i}]", minimum) for i, v in enumerate(value))
    return (check_int(value, name, minimum),) * rank


def as_pads(value, name: str, rank: int, words=("same", "same_lower", "valid")):
    """Normalise a padding spec of any rank.

    Accepted forms: an int (every side), a sequence of ``rank`` entries each an
    int (both sides of that axis) or a pair ``(before, after)``, and the given
    ``words``.

    Returns
    -------
    str or tuple
        One of ``words``, or ``rank`` pairs ``((before, after), ...)``.
    """
    expected = (f"an int >= 0, a sequence of {rank} ints (one per spatial axis) or of "
                f"{rank} (before, after) pairs")
    if words:
        expected += ", or one of " + ", ".join(repr(w) for w in words)
    if isinstance(value, str):
        word = value.lower()
        if word not in words:
            raise ValueError(f"{name} must be {expected}, got {value!r}")
        return word
    if isinstance(value, (tuple, list)):
        if len(value) != rank:
            raise ValueError(f"{name} must be {expected}, got {value!r}")
        sides = []
        for i, entry in enumerate(value):
            if isinstance(entry, (tuple, list)):
                if len(entry) != 2:
                    raise ValueError(f"{name}[{i}] must be an int or a pair (before, after), "
                                     f"got {entry!r}")
                sides.append((check_int(entry[0], f"{name}[{i}] (before)", 0),
                              check_int(entry[1], f"{name}[{i}] (after)", 0)))
            else:
                p = check_int(entry, f"{name}[{i}]", 0)
                sides.append((p, p))
        return tuple(sides)
    try:
        p = check_int(value, name, 0)
    except TypeError:
        raise TypeError(f"{name} must be {expected}, got {value!r}") from None
    return ((p, p),) * rank
