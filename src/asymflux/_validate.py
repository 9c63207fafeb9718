"""Argument checks that give users an error naming the parameter and the allowed range."""

from __future__ import annotations

import math

import numpy as np


def _interval(low, high, low_inclusive, high_inclusive) -> str:
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return ("[" if low_inclusive else "(") + f"{lo}, {hi}" + ("]" if high_inclusive else ")")


def _kind(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "a boolean"
    if isinstance(value, (str, bytes)):
        return "text"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def check_range(
    name: str,
    value,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    integer: bool = False,
) -> float:
    """Return ``float(value)`` or raise ``ValueError`` naming ``name`` and the allowed range.

    NaN and infinities are always rejected, and so are booleans and text (``True`` is not
    1, ``"65"`` is not 65: a value of the wrong type in a file is an error, not a number).
    ``integer=True`` also requires a whole number (returned as a float all the same).
    """
    interval = _interval(low, high, low_inclusive, high_inclusive)
    what = "an integer" if integer else "a number"
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise ValueError(f"{name} must be {what} in {interval}, got {value!r} ({_kind(value)})")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (complex, np.complexfloating)):
        raise ValueError(f"{name} must be {what} in {interval}, got {value!r} (a complex number)")
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be {what} in {interval}, got {value!r} "
                         f"({_kind(value)})") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    if integer and x != round(x):
        raise ValueError(f"{name} must be an integer in {interval}, got {value!r}")
    ok = True
    if low is not None:
        ok &= x >= low if low_inclusive else x > low
    if high is not None:
        ok &= x <= high if high_inclusive else x < high
    if not ok:
        raise ValueError(f"{name} must be in {interval}, got {x:g}")
    return x
