"""Parameter kinds of the op table: how each normalises, prints in a case id, and parses back.

A :class:`Param` is plain data (a name, a kind, a default and an id token); the
functions here are the only code that knows how each kind looks in a case id, so
that every op's id is made and parsed by the same few rules. 2-D ids are exactly
those printed by release 0.1.0 (``k3x3-s2x1-p1.1.0.2-d1x1-g2``), and the same rules
give ``k3`` in 1-D and ``k3x3x3`` in 3-D.

Kinds
-----
axes
    one int per spatial axis, printed ``{token}3x3``; an int broadcasts to every axis.
padding
    per-side pairs ``((before, after), ...)`` printed ``p1.1.0.2``, or a word
    (``same``, ``same_lower``, ``valid``) printed ``psame``.
int
    one int, printed ``{token}2``.
flag
    a bool printed as ``token`` when it differs from its default (``nobias``, ``ceil``).
optint
    an int or None, printed ``{token}3`` when not None (``div3``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PAD_WORDS = ("same", "same_lower", "valid")


@dataclass(frozen=True)
class Param:
    """One parameter of an op.

    Attributes
    ----------
    name : the keyword (the name refcnn.functional uses, and ``Case.params``' key)
    kind : ``axes``, ``padding``, ``int``, ``flag`` or ``optint`` (the module docstring
        says how each looks in an id)
    default : the value a case takes when none is given (None: required, or for
        ``axes`` a default taken from another parameter by the op)
    token : the id prefix (``axes``, ``padding``, ``int``, ``optint``) or word (``flag``)
    shown : ``"always"`` or ``"non-default"``: whether the id always carries the token
    """

    name: str
    kind: str
    default: object
    token: str
    shown: str = "always"

    def normalise(self, value, rank: int):
        """``value`` in canonical form for a case of ``rank`` spatial dims, or ValueError."""
        try:
            return _NORMALISE[self.kind](value, rank)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.name}: {exc}") from None

    def text(self, value, rank: int) -> str | None:
        """The id token for ``value`` (None when the id leaves it out)."""
        if self.shown == "non-default" and value == self.normalise(self.default, rank):
            return None
        if self.kind == "flag":
            return self.token
        if self.kind == "optint":
            return f"{self.token}{value}"
        if self.kind == "int":
            return f"{self.token}{value}"
        if self.kind == "axes":
            return self.token + "x".join(str(v) for v in value)
        if isinstance(value, str):
            return self.token + value
        return self.token + ".".join(f"{a}.{b}" for a, b in value)

    def parse(self, token: str, rank: int):
        """The value ``token`` stands for, or None when it is not this parameter's token."""
        if self.kind == "flag":
            return (not self.default) if token == self.token else None
        if not token.startswith(self.token):
            return None
        body = token[len(self.token):]
        if self.kind in ("int", "optint"):
            return int(body) if re.fullmatch(r"\d+", body) else None
        if self.kind == "axes":
            if not re.fullmatch(r"\d+(x\d+)*", body):
                return None
            values = tuple(int(v) for v in body.split("x"))
            return values if len(values) == rank else None
        if body in PAD_WORDS:
            return body
        if not re.fullmatch(r"\d+(\.\d+)*", body):
            return None
        flat = [int(v) for v in body.split(".")]
        if len(flat) != 2 * rank:
            return None
        return tuple((flat[2 * i], flat[2 * i + 1]) for i in range(rank))


def _axes(value, rank):
    if isinstance(value, (list, tuple)):
        if len(value) != rank:
            raise ValueError(f"expected {rank} values (one per spatial axis), got {value!r}")
        return tuple(_int(v) for v in value)
    return (_int(value),) * rank


def _padding(value, rank):
    if isinstance(value, str):
        if value not in PAD_WORDS:
            raise ValueError(f"expected one of {PAD_WORDS}, got {value!r}")
        return value
    if isinstance(value, (list, tuple)):
        if len(value) != rank:
            raise ValueError(f"expected {rank} entries (one per spatial axis), got {value!r}")
        pairs = []
        for v in value:
            if isinstance(v, (list, tuple)):
                if len(v) != 2:
                    raise ValueError(f"expected (before, after) pairs, got {value!r}")
                pairs.append((_int(v[0]), _int(v[1])))
            else:
                pairs.append((_int(v), _int(v)))
        return tuple(pairs)
    p = _int(value)
    return ((p, p),) * rank


def _int(value):
    if isinstance(value, bool) or int(value) != value:
        raise TypeError(f"expected an integer, got {value!r}")
    return int(value)


def _flag(value, rank):
    if not isinstance(value, bool):
        raise TypeError(f"expected True or False, got {value!r}")
    return value


def _optint(value, rank):
    return None if value is None else _int(value)


_NORMALISE = {"axes": _axes, "padding": _padding, "int": lambda v, r: _int(v), "flag": _flag,
              "optint": _optint}
