"""Charge from a cycler's counters and samples: per-record increments, and current from them.

The bottom of the cycler readers (:mod:`asymflux.io.echem` and the brand readers
``_biologic``, ``_navani``, :mod:`asymflux.io.instrument` build on it; it imports none of
them). Re-exported by :mod:`asymflux.io.echem`.
"""

from __future__ import annotations

import numpy as np

from asymflux.io._errors import DatasetError

__all__ = [
    "charge_increments",
    "counter_increments",
    "counter_kind",
    "counter_restarts",
    "current_from_increments",
]


def _tolerance(i: np.ndarray, current_tol_mA) -> float:
    if current_tol_mA is not None:
        return float(current_tol_mA)
    finite = np.isfinite(i)
    return 1e-3 * float(np.max(np.abs(i[finite]))) if finite.any() else 0.0


def _step_edges(n, step, current_mA, current_tol_mA):
    """(n - 1,) bool: the interval ending at record k + 1 crosses a step edge."""
    if step is not None:
        s = np.asarray(step)
        return s[1:] != s[:-1]
    i = np.asarray(current_mA, dtype=np.float64)
    tol = _tolerance(i, current_tol_mA)
    state = np.where(i > tol, 1, np.where(i < -tol, -1, 0))
    return state[1:] != state[:-1]


def _gaps(t, max_gap_s):
    """(n - 1,) bool: the interval is a time gap (longer than ``max_gap_s``)."""
    dt = np.diff(t)
    if max_gap_s is None:
        positive = dt[dt > 0]
        if positive.size == 0:
            return np.zeros(dt.size, dtype=bool), np.inf
        max_gap_s = max(60.0, 20.0 * float(np.median(positive)))
    return dt > float(max_gap_s), float(max_gap_s)


def counter_increments(counter, *, resets=None, unsigned: bool = False, sign=None) -> np.ndarray:
    """Per-record increments of a cycler's charge counter that restarts at steps or loops.

    Parameters
    ----------
    counter : (n,) array_like
        The counter, e.g. mAh: BioLogic ``(Q-Qo)`` (signed, restarts at loops), Neware
        or Arbin charge / discharge capacity (non-negative, restart at steps or cycles).
    resets : (n,) array_like of bool, optional, keyword-only
        Records at which the counter is known to restart from zero (e.g. the first
        record of a loop). Besides these, a non-negative counter restarts wherever it
        goes down.
    unsigned : bool, keyword-only
        The counter only grows between restarts (a magnitude): a decrease is a restart.
    sign : (n,) array_like, optional, keyword-only
        Multiply each increment by this (e.g. the sign of the current) -- for unsigned
        counters that count charge and discharge alike.

    Returns
    -------
    increments : (n,) ndarray of float64
        ``increments[0] = 0``; ``increments[k]`` what was counted between records
        ``k - 1`` and ``k``: the difference, or the counter itself at a restart.
        Non-finite counter values count nothing.
    """
    q = np.asarray(counter, dtype=np.float64)
    n = q.size
    inc = np.zeros(n)
    if n < 2:
        return inc
    d = np.diff(q)
    restart = np.zeros(n - 1, dtype=bool)
    if resets is not None:
        restart |= np.asarray(resets, dtype=bool)[1:]
    if unsigned:
        scale = np.nanmax(np.abs(q)) if np.isfinite(q).any() else 0.0
        restart |= d < -1e-9 * max(scale, 1e-300)
    inc[1:] = np.where(restart, q[1:], d)
    inc[~np.isfinite(inc)] = 0.0
    if sign is not None:
        inc *= np.asarray(sign, dtype=np.float64)
    return inc


def charge_increments(
    time_s,
    current_mA,
    *,
    step=None,
    max_gap_s: float | None = None,
    current_tol_mA: float | None = None,
    problems: list | None = None,
) -> np.ndarray:
    """Charge passed between consecutive records, from the sampled current alone, mAh.

    Used only for files without a charge counter. Within a step the current is
    integrated by the trapezoidal rule; an interval that crosses a step edge takes the
    later record's current (a cycler's record reports what flowed since the previous
    one, and the first record of a step carries the new current); an interval longer
    than ``max_gap_s`` (a time gap: nothing is known of it) counts nothing.

    Parameters
    ----------
    time_s : (n,) array_like
        Times, s, non-decreasing.
    current_mA : (n,) array_like
        Current, mA.
    step : (n,) array_like, optional, keyword-only
        Step labels; without them a step edge is a change of the current's sign or
        between rest and current.
    max_gap_s : float, optional, keyword-only
        Longest interval integrated, s. Default: 20 median intervals, at least 60 s.
    current_tol_mA : float, optional, keyword-only
        Currents at or below this count as rest when finding step edges.
    problems : list, optional, keyword-only
        Messages about gaps and NaN currents are appended here.

    Returns
    -------
    increments_mAh : (n,) ndarray of float64
        ``0`` for the first record.
    """
    t = np.asarray(time_s, dtype=np.float64)
    i = np.asarray(current_mA, dtype=np.float64)
    if t.shape != i.shape or t.ndim != 1:
        raise DatasetError(f"time_s {t.shape} and current_mA {i.shape} must be 1-D of equal length")
    n = t.size
    out = np.zeros(n)
    if n < 2:
        return out
    dt = np.diff(t)
    edge = _step_edges(n, step, i, current_tol_mA)
    gap, max_gap = _gaps(t, max_gap_s)
    q = np.where(edge, i[1:] * dt, 0.5 * (i[1:] + i[:-1]) * dt) / 3600.0
    q[gap] = 0.0
    bad = ~np.isfinite(q)
    q[bad] = 0.0
    if problems is not None:
        if gap.any():
            problems.append(
                f"{int(gap.sum())} time gap(s) longer than {max_gap:g} s (largest {dt.max():g} s)"
                " not integrated: the charge passed during them is unknown"
            )
        if bad.any():
            problems.append(f"{int(bad.sum())} interval(s) with a NaN current counted as no charge")
    out[1:] = q
    return out


def current_from_increments(time_s, increments_mAh) -> np.ndarray:
    """Mean current over the interval ending at each record, mA: ``dq / dt``.

    Records with no interval before them (the first, or a repeated time) take the
    current of the record before (0 for the first).
    """
    t = np.asarray(time_s, dtype=np.float64)
    q = np.asarray(increments_mAh, dtype=np.float64)
    i = np.full(t.size, np.nan)
    if t.size > 1:
        dt = np.diff(t)
        with np.errstate(divide="ignore", invalid="ignore"):
            i[1:] = np.where(dt > 0, q[1:] * 3600.0 / dt, np.nan)
    if t.size:
        i[0] = 0.0
    # forward-fill the records without an interval
    idx = np.where(np.isfinite(i), np.arange(i.size), 0)
    np.maximum.accumulate(idx, out=idx)
    return i[idx]


#: A reading of a counter fits when the median relative misfit of its per-record
#: increments to the reference is below this, and the other reading misfits by at least
#: ``_KIND_MARGIN`` times more.
_KIND_FIT = 0.25
_KIND_MARGIN = 3.0


def counter_kind(values, reference_increments, *, restarts=None):
    """Is a charge column per-record increments or a cumulative counter? Decided by content.

    Both readings are compared with independent per-record increments (e.g. the current
    integrated over each interval, or the steps of another counter): read as increments,
    the column's values themselves; read as a cumulative counter, their differences
    (its value at a restart). Magnitudes are compared (a sign convention does not
    matter), on the records where the reference passes a charge (``|r| >= 0.1`` of its
    90th percentile), by the median relative misfit: robust to resets at steps or loops,
    step edges, noise and outliers.

    Parameters
    ----------
    values : (n,) array_like
        The column, in the unit of the reference.
    reference_increments : (n,) array_like
        Independent charge passed in the interval ending at each record (NaN: unknown).
    restarts : (n,) array_like of bool, optional, keyword-only
        Records at which a cumulative counter is known to restart.

    Returns
    -------
    kind : {"increments", "cumulative"} or None
        None when neither reading fits, or too few records pass a charge to tell.
    misfit_increments, misfit_cumulative : float
        The median relative misfits of the two readings (NaN when not computed).
    n_compared : int
        Records compared.
    """
    x = np.asarray(values, dtype=np.float64)
    r = np.asarray(reference_increments, dtype=np.float64)
    n = x.size
    if n < 3 or r.shape != x.shape:
        return None, np.nan, np.nan, 0
    as_cum = counter_increments(x, resets=restarts)
    ok = np.isfinite(r) & np.isfinite(x)
    ok[0] = False
    mag = np.abs(r)
    if not (ok & (mag > 0)).any():
        return None, np.nan, np.nan, 0
    floor = 0.1 * float(np.quantile(mag[ok & (mag > 0)], 0.9))
    use = ok & (mag >= floor) & (mag > 0)
    k = int(use.sum())
    if k < 3:
        return None, np.nan, np.nan, k
    rel_inc = float(np.median(np.abs(np.abs(x[use]) - mag[use]) / mag[use]))
    rel_cum = float(np.median(np.abs(np.abs(as_cum[use]) - mag[use]) / mag[use]))
    kind = None
    if rel_inc < _KIND_FIT and rel_cum > _KIND_MARGIN * rel_inc:
        kind = "increments"
    elif rel_cum < _KIND_FIT and rel_inc > _KIND_MARGIN * rel_cum:
        kind = "cumulative"
    return kind, rel_inc, rel_cum, k


def counter_restarts(counter, *, reference_increments=None) -> np.ndarray:
    """(n,) bool: records where a cumulative counter restarts from (near) zero.

    Without a reference: a jump of more than 10 typical record increments (the median
    non-zero ``|diff|``) to a value under a tenth of the one before. With reference
    increments (magnitudes compared, as in :func:`counter_kind`), where they are finite
    instead: wherever the counter's value matches what flowed in the interval (a counter
    that restarted counts, at its first record, what flowed since the restart) three
    times better than its step does, and the step misses the reference by more than 3
    typical increments plus 3 times the reference.
    """
    q = np.asarray(counter, dtype=np.float64)
    out = np.zeros(q.size, dtype=bool)
    if q.size < 2:
        return out
    d = np.diff(q)
    nz = np.abs(d[np.isfinite(d) & (d != 0)])
    if nz.size == 0:
        return out
    typical = float(np.median(nz))
    with np.errstate(invalid="ignore"):
        jump = (np.abs(d) > 10 * typical) & (np.abs(q[1:]) < 0.1 * np.abs(q[:-1]))
        if reference_increments is not None:
            r = np.abs(np.asarray(reference_increments, dtype=np.float64)[1:])
            miss_step = np.abs(np.abs(d) - r)
            miss_value = np.abs(np.abs(q[1:]) - r)
            fresh = (miss_step > 3 * typical + 3 * r) & (3 * miss_value < miss_step)
            jump = np.where(np.isfinite(r), fresh, jump)
    out[1:] = jump & np.isfinite(d)
    return out
