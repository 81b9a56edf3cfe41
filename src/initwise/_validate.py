"""Argument checks shared by every layer.

Each check raises with the parameter's name, the value received and what to do instead, so a
user never has to read initwise's source to find out what was wrong.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def finite(name: str, value: Any, *, where: str = "") -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number."""
    prefix = f"{where}: " if where else ""
    if isinstance(value, bool) or (
        not isinstance(value, (int, float)) and not hasattr(value, "__float__")
    ):
        raise TypeError(
            f"{prefix}{name} must be a real number, got {type(value).__name__} {value!r}"
        )
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{prefix}{name} must be finite, got {out}; pass a finite number")
    return out


def positive(name: str, value: Any, *, where: str = "", allow_zero: bool = False) -> float:
    """Return ``value`` as a float, or raise unless it is finite and > 0 (>= 0 if allowed)."""
    out = finite(name, value, where=where)
    prefix = f"{where}: " if where else ""
    if out < 0 or (out == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{prefix}{name} must be {bound}, got {out}")
    return out


def positive_int(name: str, value: Any, *, where: str = "") -> int:
    """Return ``value`` as an int, or raise unless it is an integer >= 1."""
    prefix = f"{where}: " if where else ""
    if isinstance(value, bool) or (
        not isinstance(value, int) and not (hasattr(value, "__index__"))
    ):
        raise TypeError(f"{prefix}{name} must be an integer >= 1, got {value!r}")
    out = int(value)
    if out < 1:
        raise ValueError(f"{prefix}{name} must be an integer >= 1, got {out}")
    return out


TORCH_SEEDS = (-(1 << 63), 1 << 64)
"""The seeds torch's generators take: ``[-2**63, 2**64)``."""


def seed(value: Any, *, where: str = "", torch_range: bool = False) -> int:
    """Return ``value`` as an int, or raise unless it is an integer (Python's or NumPy's; not a
    bool: ``True`` is an int to Python, but a flag passed where a seed goes is a mistake).
    Any integer keys initwise's streams (it is hashed with each parameter's name);
    ``torch_range``: it also seeds torch's generators, which take ``[-2**63, 2**64)``."""
    prefix = f"{where}: " if where else ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"{prefix}seed must be an int, got {type(value).__name__} {value!r}; pass e.g. "
            "seed=0"
            + (f" (int({value!r}) if it is a whole number)" if isinstance(value, float) else "")
        )
    out = int(value)
    lo, hi = TORCH_SEEDS
    if torch_range and not lo <= out < hi:
        raise ValueError(
            f"{prefix}seed must be in [-2**63, 2**64) (it seeds torch's generators), got {out}"
        )
    return out


def boolean(name: str, value: Any, *, where: str = "") -> bool:
    """Return ``value`` as a bool, or raise unless it is one (Python's or NumPy's): a string such
    as ``"no"`` is truthy, so taking it as given would decide the opposite of what it says."""
    if not isinstance(value, (bool, np.bool_)):
        prefix = f"{where}: " if where else ""
        raise TypeError(f"{prefix}{name} must be True or False, got {value!r}")
    return bool(value)


def one_of(name: str, value: Any, choices: Iterable[str], *, where: str = "") -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise listing them."""
    options = tuple(choices)
    if value not in options:
        prefix = f"{where}: " if where else ""
        listed = ", ".join(repr(c) for c in options)
        raise ValueError(f"{prefix}{name} must be one of {listed}; got {value!r}")
    return value


def shape(value: Any, *, where: str = "") -> tuple[int, ...]:
    """Return ``value`` as a tuple of non-negative ints, or raise naming the offending entry."""
    prefix = f"{where}: " if where else ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, Sequence) and not hasattr(value, "__iter__"):
        raise TypeError(f"{prefix}shape must be a sequence of ints, got {value!r}")
    out = []
    for i, d in enumerate(value):
        if isinstance(d, bool) or not hasattr(d, "__index__"):
            raise TypeError(f"{prefix}shape[{i}] must be an int, got {d!r} in shape {tuple(value)}")
        if int(d) < 0:
            raise ValueError(
                f"{prefix}shape[{i}] must be >= 0, got {int(d)} in shape {tuple(value)}"
            )
        out.append(int(d))
    return tuple(out)
