"""Argument checks that give users an error naming the parameter and the allowed range."""

from __future__ import annotations

import math


def check_range(
    name: str,
    value,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``float(value)`` or raise ``ValueError`` naming ``name`` and the allowed range.

    NaN and infinities are always rejected.
    """
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    interval = ("[" if low_inclusive else "(") + f"{lo}, {hi}" + ("]" if high_inclusive else ")")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    ok = True
    if low is not None:
        ok &= x >= low if low_inclusive else x > low
    if high is not None:
        ok &= x <= high if high_inclusive else x < high
    if not ok:
        raise ValueError(f"{name} must be in {interval}, got {x:g}")
    return x
