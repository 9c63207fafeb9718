"""The camera's clock against the cycler's: the offset between them, given or estimated.

Sign: ``cycler_time_s = camera_time_s + time_offset_s``. A frame recorded at camera time
``t`` gets the cycler's values (capacity, voltage, current) at cycler time
``t + time_offset_s``. A positive offset means that the cycler's clock reads more than the
camera's (e.g. the cycler was started before the camera, both counting from their start).

The estimate (:func:`estimate_time_offset`) profiles a least-squares fit over trial
offsets and reports the best one with its uncertainty (the half-width of the profile's
confidence interval, widened for correlated residuals, and half the coarser sampling
interval added in quadrature); see ``docs/analysis.md#camera-and-cycler-clocks``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["TimeOffset", "apply_time_offset", "cycler_at_frames", "estimate_time_offset",
           "estimate_dataset_time_offset", "mean_particle_signal", "resolve_time_offset",
           "incremental_capacity", "incremental_capacity_table"]

#: The methods a :class:`TimeOffset` can come from.
METHODS = {
    "none": "none given: the clocks assumed equal (offset 0)",
    "given": "given by the user",
    "optical-rate": "the frame-to-frame change of the particles' mean intensity against the "
                    "cycler's mean current over the same interval",
    "recorded-voltage": "the voltage the camera's acquisition recorded (instrument HDF5 "
                        "potentiostat_value) against the cycler file's voltage",
}


@dataclasses.dataclass(frozen=True)
class TimeOffset:
    """The offset of the cycler's clock from the camera's, s.

    ``cycler_time_s = camera_time_s + offset_s``. ``uncertainty_s`` is NaN for an offset
    given by the user (its uncertainty is the user's) and for ``method="none"``.
    """

    offset_s: float = 0.0
    uncertainty_s: float = math.nan
    method: str = "none"
    detail: str = ""

    def as_dict(self) -> dict:
        """``{"time_offset_s", "time_offset_uncertainty_s", "time_offset_method",
        "time_offset_detail"}`` (plain floats and text: JSON and table attrs)."""
        return {"time_offset_s": float(self.offset_s),
                "time_offset_uncertainty_s": float(self.uncertainty_s),
                "time_offset_method": self.method,
                "time_offset_detail": self.detail or METHODS.get(self.method, "")}

    @classmethod
    def from_dict(cls, d) -> TimeOffset:
        """The offset :meth:`as_dict` gave (``time_offset_detail`` may be absent)."""
        return cls(offset_s=d["time_offset_s"], uncertainty_s=d["time_offset_uncertainty_s"],
                   method=d["time_offset_method"], detail=d.get("time_offset_detail", ""))

    def __str__(self) -> str:
        if self.method in ("none", "given"):
            return f"{self.offset_s:g} s ({METHODS[self.method]})"
        return f"{self.offset_s:.4g} ± {self.uncertainty_s:.2g} s ({self.method})"


# ---------------------------------------------------------------------------- estimate


def _check_series(time_s, values, name):
    t = np.asarray(time_s, dtype=np.float64).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    if t.shape != v.shape:
        raise ValueError(f"{name}: time ({t.size}) and values ({v.size}) differ in length")
    ok = np.isfinite(t) & np.isfinite(v)
    t, v = t[ok], v[ok]
    if t.size >= 2 and np.any(np.diff(t) < 0):
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
    return t, v


def _fit(y, x, tc=None):
    """Least squares ``y = a + b x`` (with ``tc``, the centred times: ``y = a + (b + c tc) x``,
    a gain that drifts linearly: a response that saturates): ``(gain, residuals)``, the
    gain b (with ``tc``: where x departs from its median); NaN when x does not vary."""
    xm = x.mean()
    sxx = float(((x - xm) ** 2).sum())
    if sxx <= 1e-30 * max(1.0, float((x ** 2).sum())):
        return math.nan, y - y.mean()
    if tc is None:
        ym = y.mean()
        b = float(((x - xm) * (y - ym)).sum()) / sxx
        return b, y - ym - b * (x - xm)
    design = np.column_stack([np.ones_like(x), x, tc * x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    w = np.abs(x - np.median(x))  # the gain where x departs from its usual value
    gain = coef[1] + coef[2] * float((w * tc).sum() / w.sum()) if w.sum() > 0 else coef[1]
    return float(gain), y - design @ coef


def estimate_time_offset(time_s, signal, cycler_time_s, cycler_signal, *, rate=False,
                         search_s=None, min_overlap=0.5, positive=True, method="",
                         name="signal"):
    """Estimate the cycler's clock offset from a signal on the camera's clock.

    For each trial offset δ the camera's signal is fitted by ``a + b·x(t + δ)`` (least
    squares), ``x`` being the cycler's signal interpolated at the cycler times of the
    samples. With ``rate=True`` both are differenced: the change of ``signal`` between
    consecutive samples against the change of the cycler's (cumulative) signal over the
    same interval shifted by δ, each divided by the interval (the particles' mean
    intensity rises at a rate proportional to the current), with a gain that may drift
    linearly over the record (``a + (b + c·t)·x``: an optical response that saturates).
    The best δ maximises the fraction of the variance explained (R²; with ``positive``
    only fits whose gain is positive), over the samples inside the cycler's record (at
    least ``min_overlap`` of them); trial offsets on a grid (a tenth of the finer
    sampling interval, at most 4001 of them), then a fine profile of ±3 intervals.

    Uncertainty: the residual sum of squares profiled over δ on the best δ's samples; the
    interval where it rises by less than σ² (the residual variance: Δχ² = 1) gives the
    statistical half-width, to which half the coarser sampling interval (the frames' or
    the cycler's) is added in quadrature: a change between two samples is not located
    better than that, whatever the fit says (and a response that lags the current by a
    fraction of an interval shifts the estimate within it).

    Parameters
    ----------
    time_s : (n,) array_like
        Times of the camera's samples (frames), s, camera clock.
    signal : (n,) array_like
        The camera's signal (e.g. :func:`mean_particle_signal`, or a recorded voltage).
    cycler_time_s, cycler_signal : (m,) array_like
        The cycler's times (s, cycler clock) and signal (with ``rate=True`` a cumulative
        quantity: charge or capacity; else e.g. the voltage).
    rate : bool
        Compare rates (differences over each interval) instead of values.
    search_s : float, optional
        Trial offsets in ``[-search_s, search_s]`` (around the offset that aligns the
        records' starts when they do not overlap at all). Default: the camera record's
        duration plus the cycler's.
    min_overlap : float
        Fraction of the camera's samples that must lie inside the cycler's record.
    positive : bool
        Only fits where the signal grows with the cycler's signal.
    method, name : str
        The method named in the result and the signal named in errors.

    Returns
    -------
    TimeOffset

    Raises
    ------
    ValueError
        Too few samples, or no offset where the fit explains the signal (the cycler's
        signal does not change while the camera records: the offset cannot be
        estimated from these data; give it).
    """
    t, y = _check_series(time_s, signal, name)
    ct, cx = _check_series(cycler_time_s, cycler_signal, f"cycler {name}")
    if t.size < 4 or ct.size < 2:
        raise ValueError(f"{name}: too few samples to estimate the clock offset ({t.size} on "
                         f"the camera, {ct.size} from the cycler; need 4 and 2)")
    dt_cam = float(np.median(np.diff(t)))
    dt_cyc = float(np.median(np.diff(ct)))
    if search_s is None:
        search_s = (t[-1] - t[0]) + (ct[-1] - ct[0])
    search_s = float(search_s)
    # records that do not overlap at all (e.g. absolute and relative clocks): the trial
    # offsets are centred on the one that aligns their starts
    center = 0.0 if (ct[0] <= t[-1] and t[0] <= ct[-1]) else float(ct[0] - t[0])
    n_min = max(4, int(math.ceil(min_overlap * t.size)))
    if rate:
        a_t, b_t = t[:-1], t[1:]
        y_obs = np.diff(y) / np.diff(t)
        n_min = max(4, n_min - 1)
        mid = 0.5 * (a_t + b_t)
        t_scaled = (mid - mid.mean()) / max(float(np.ptp(mid)), 1e-12)
    else:
        a_t = b_t = t
        y_obs = y
        t_scaled = None

    def tc(keep):
        return None if t_scaled is None else t_scaled[keep]

    def x_at(d, keep):
        if rate:
            q_a = np.interp(a_t[keep] + d, ct, cx)
            q_b = np.interp(b_t[keep] + d, ct, cx)
            return (q_b - q_a) / (b_t[keep] - a_t[keep])
        return np.interp(a_t[keep] + d, ct, cx)

    def inside(d):
        return (a_t + d >= ct[0]) & (b_t + d <= ct[-1])

    def score(d):
        keep = inside(d)
        if keep.sum() < n_min:
            return -np.inf
        yy = y_obs[keep]
        b, r = _fit(yy, x_at(d, keep), tc(keep))
        if not np.isfinite(b) or (positive and b <= 0):
            return -np.inf
        ss = float(((yy - yy.mean()) ** 2).sum())
        return 1.0 - float(r @ r) / ss if ss > 0 else -np.inf

    step = max(min(dt_cam, dt_cyc) / 10.0, 2.0 * search_s / 4000.0)
    grid = center + np.arange(-search_s, search_s + step / 2, step)
    scores = np.array([score(d) for d in grid])
    if not np.isfinite(scores).any() or np.nanmax(scores) <= 0.5:
        best = float(np.max(scores)) if np.isfinite(scores).any() else math.nan
        raise ValueError(
            f"{name}: the clock offset cannot be estimated from these data (best fit explains "
            f"R² = {best:.2g} of the signal's variance, need > 0.5): the cycler's "
            f"{'current' if rate else 'signal'} must change while the camera records (a step "
            "on or off inside the movie); give the offset (--time-offset-s)")
    d0 = float(grid[int(np.argmax(scores))])
    keep = inside(d0)
    yy = y_obs[keep]

    def rss(d):
        _, r = _fit(yy, x_at(d, keep), tc(keep))
        return float(r @ r)

    # refine on a fine grid around the best trial offset (the record's edges clamp x)
    half = 3 * max(dt_cam, dt_cyc, step)
    fine = np.linspace(d0 - half, d0 + half, 1201)
    prof = np.array([rss(d) for d in fine])
    j = int(np.argmin(prof))
    d_best = float(fine[j])
    _, res = _fit(yy, x_at(d_best, keep), tc(keep))
    n, p = res.size, 2 if t_scaled is None else 3
    sigma2 = float(res @ res) / max(1, n - p)
    ok = prof - prof[j] <= sigma2
    # the contiguous interval around the minimum
    lo, hi = j, j
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    while hi < fine.size - 1 and ok[hi + 1]:
        hi += 1
    stat = max(d_best - fine[lo], fine[hi] - d_best, (fine[1] - fine[0]))
    if lo == 0 or hi == fine.size - 1:
        stat = max(stat, half)  # the profile is flat beyond the refined window
    resolution = 0.5 * max(dt_cam, dt_cyc)
    unc = math.hypot(stat, resolution)
    detail = (f"{METHODS.get(method, method)}; R² {scores.max():.4f} over {n} "
              f"{'intervals' if rate else 'samples'}; statistical ±{stat:.3g} s (the residual "
              "sum of squares within one residual variance of its minimum), sampling "
              f"±{resolution:.3g} s (half the {'frame' if dt_cam >= dt_cyc else 'cycler'} "
              "interval), in quadrature")
    return TimeOffset(offset_s=d_best, uncertainty_s=float(unc), method=method or "estimate",
                      detail=detail)


def mean_particle_signal(stack, masks, *, chunk_frames=None) -> np.ndarray:
    """The particles' mean relative intensity per frame, ``(n_frames,)``.

    ``m_k / m_0 − 1`` with ``m_k`` the mean of frame k over the particle pixels
    (``masks > 0``) divided by its mean over the other pixels (the illumination); without
    background pixels, the particle mean alone. Read chunk by chunk.
    """
    from ._chunks import frame_chunks, read_chunk

    part = np.asarray(masks) > 0
    if not part.any():
        raise ValueError("masks hold no particle: no mean particle signal")
    back = ~part
    out = []
    for t0, t1 in frame_chunks(stack, chunk_frames):
        block = read_chunk(stack, t0, t1).astype(np.float64)
        pm = np.nanmean(block[:, part], axis=1)
        if back.any():
            pm = pm / np.nanmean(block[:, back], axis=1)
        out.append(pm)
    m = np.concatenate(out)
    return m / m[0] - 1.0


def _cycler_charge(echem, mass=None):
    """A cumulative quantity of the cycler table that grows with charge: capacity_mAh_g,
    else the current integrated (mA·s; the scale does not matter)."""
    if "capacity_mAh_g" in echem.columns and np.isfinite(echem["capacity_mAh_g"]).sum() >= 2:
        return echem["capacity_mAh_g"].to_numpy(np.float64), "capacity_mAh_g"
    if "current_mA" in echem.columns:
        from scipy.integrate import cumulative_trapezoid

        t = echem["time_s"].to_numpy(np.float64)
        i = np.nan_to_num(echem["current_mA"].to_numpy(np.float64))
        return cumulative_trapezoid(i, t, initial=0.0), "current_mA integrated"
    raise ValueError("the cycler table has neither capacity_mAh_g nor current_mA: the clock "
                     "offset cannot be estimated from the movie")


def estimate_dataset_time_offset(dataset, *, masks=None, recorded_echem=None,
                                 search_s=None) -> TimeOffset:
    """Estimate a dataset's clock offset from its data (:func:`estimate_time_offset`).

    With ``recorded_echem`` (the potentiostat values the camera's acquisition recorded on
    the camera's clock: an instrument HDF5 file's ``potentiostat_value``; default the
    dataset's ``recorded_echem`` attribute, set when a cycler file replaced them) holding
    a voltage, its voltage is aligned with the cycler table's (``recorded-voltage``).
    Otherwise the particles' mean intensity (``masks``, else the dataset's, else detected
    on frame 0) is aligned, as a rate, with the cycler's charge (``optical-rate``).

    Returns
    -------
    TimeOffset
    """
    from ._naming import dataset_name

    name = dataset_name(dataset)
    echem = getattr(dataset, "echem", None)
    if echem is None or not len(echem):
        raise ValueError(f"{name}: no cycler table: no clock offset to estimate")
    cyc = echem
    if "cycler_time_s" in cyc.columns:  # already shifted: estimate from the cycler's own clock
        cyc = cyc.assign(time_s=cyc["cycler_time_s"])
    if recorded_echem is None:
        recorded_echem = getattr(dataset, "recorded_echem", None)
    if (recorded_echem is not None and "voltage_V" in recorded_echem.columns
            and "voltage_V" in cyc.columns
            and np.isfinite(recorded_echem["voltage_V"]).sum() >= 4):
        return estimate_time_offset(
            recorded_echem["time_s"], recorded_echem["voltage_V"], cyc["time_s"],
            cyc["voltage_V"], rate=False, search_s=search_s, positive=True,
            method="recorded-voltage", name=f"{name}: recorded voltage")
    stack = dataset.stack
    if masks is None:
        masks = getattr(dataset, "masks", None)
    if masks is None:
        from ._detect import detect_particles
        from ._differential import reference_image

        masks = detect_particles(reference_image(stack))
    signal = mean_particle_signal(stack, masks)
    charge, what = _cycler_charge(cyc)
    off = estimate_time_offset(dataset.time_s, signal, cyc["time_s"], charge, rate=True,
                               search_s=search_s, method="optical-rate",
                               name=f"{name}: mean particle intensity")
    return dataclasses.replace(off, detail=f"{off.detail}; cycler signal: {what}")


# ---------------------------------------------------------------------------- apply


def resolve_time_offset(dataset, time_offset_s, *, masks=None) -> TimeOffset:
    """A :class:`TimeOffset` from what a user gave: None (the dataset's own, else 0), a
    number (s), ``"auto"`` (:func:`estimate_dataset_time_offset`) or a TimeOffset."""
    if isinstance(time_offset_s, TimeOffset):
        return time_offset_s
    if time_offset_s is None:
        own = getattr(getattr(dataset, "echem", None), "attrs", {}).get("time_offset")
        return TimeOffset.from_dict(own) if own else TimeOffset()
    if isinstance(time_offset_s, str):
        if time_offset_s.strip().lower() == "auto":
            return estimate_dataset_time_offset(dataset, masks=masks)
        try:
            time_offset_s = float(time_offset_s)
        except ValueError:
            raise ValueError(f"time_offset_s: expected seconds or 'auto', got "
                             f"{time_offset_s!r}") from None
    value = float(time_offset_s)
    if not math.isfinite(value):
        raise ValueError(f"time_offset_s must be a finite number of seconds, got {value}")
    return TimeOffset(offset_s=value, method="given")


def apply_time_offset(dataset, time_offset_s, *, masks=None):
    """A copy of ``dataset`` whose cycler table is put on the camera's clock.

    The copy's ``echem["time_s"]`` is ``cycler_time_s − offset`` (the frames' clock, so
    that :meth:`~asymflux.io.Dataset.capacity_at_frames` and every analysis read the cycler
    at ``frame time + offset``); the cycler's own times are kept in ``cycler_time_s``
    and the offset in ``echem.attrs["time_offset"]`` (:meth:`TimeOffset.as_dict`).
    Applying an offset to a shifted dataset starts from the cycler's own times.

    Parameters
    ----------
    dataset : asymflux.io.Dataset
    time_offset_s : float, "auto", TimeOffset or None
        ``cycler_time_s = camera_time_s + time_offset_s`` (s); ``"auto"`` estimates it
        (:func:`estimate_dataset_time_offset`); None keeps the dataset's (else 0).
    masks : (n_row, n_col) int array, optional
        The particles used by ``"auto"``.

    Returns
    -------
    asymflux.io.Dataset
        ``dataset`` itself when it has no cycler table (its ``time_offset`` attribute set).
    """
    off = resolve_time_offset(dataset, time_offset_s, masks=masks)
    echem = getattr(dataset, "echem", None)
    if echem is None:
        try:
            dataset.time_offset = off
        except AttributeError:
            pass
        return dataset
    e = echem.copy()
    e.attrs = dict(echem.attrs)
    cyc = e["cycler_time_s"] if "cycler_time_s" in e.columns else e["time_s"].copy()
    e["time_s"] = cyc.to_numpy(np.float64) - off.offset_s
    e["cycler_time_s"] = cyc.to_numpy(np.float64)
    e.attrs["time_offset"] = off.as_dict()
    shifted = dataclasses.replace(dataset, echem=e)
    for extra in ("recorded_echem",):  # an instance attribute, not a field
        if getattr(dataset, extra, None) is not None:
            setattr(shifted, extra, getattr(dataset, extra))
    shifted.time_offset = off
    return shifted


def dataset_time_offset(dataset) -> TimeOffset:
    """The offset a dataset's cycler table was put on the camera's clock with (else none)."""
    off = getattr(dataset, "time_offset", None)
    if isinstance(off, TimeOffset):
        return off
    own = getattr(getattr(dataset, "echem", None), "attrs", {}).get("time_offset")
    return TimeOffset.from_dict(own) if own else TimeOffset()


def cycler_at_frames(dataset):
    """The cycler's values at each frame: ``frame, cycler_time_s, voltage_V, current_mA``.

    Linear interpolation of the (finite) cycler samples at each frame's cycler time
    (``time_s + offset``, :func:`apply_time_offset`); NaN outside the cycler's record
    and for a column the cycler table lacks.
    """
    import pandas as pd

    t = np.asarray(dataset.time_s, dtype=np.float64)
    off = dataset_time_offset(dataset)
    out = pd.DataFrame({"frame": np.arange(t.size), "cycler_time_s": t + off.offset_s})
    echem = getattr(dataset, "echem", None)
    for col in ("voltage_V", "current_mA"):
        v = np.full(t.size, np.nan)
        if echem is not None and col in echem.columns and len(echem):
            et, ev = _check_series(echem["time_s"], echem[col], col)
            if et.size:
                v = np.interp(t, et, ev, left=np.nan, right=np.nan)
        out[col] = v
    return out


def add_cycler_columns(dataset, ts):
    """``ts`` (a timeseries table with ``frame``) with ``cycler_time_s``, ``voltage_V``,
    ``current_mA`` after ``capacity_mAh_g`` (or at the end), and the offset in its attrs."""
    if "frame" not in ts.columns:
        return ts
    at = cycler_at_frames(dataset)
    frames = ts["frame"].to_numpy()
    valid = (frames >= 0) & (frames < len(at))
    where = list(ts.columns).index("capacity_mAh_g") + 1 if "capacity_mAh_g" in ts.columns \
        else len(ts.columns)
    for k, col in enumerate(("cycler_time_s", "voltage_V", "current_mA")):
        if col in ts.columns:
            continue
        v = np.full(len(ts), np.nan)
        v[valid] = at[col].to_numpy()[frames[valid].astype(int)]
        ts.insert(where + k, col, v)
    ts.attrs["time_offset"] = dataset_time_offset(dataset).as_dict()
    return ts


# ---------------------------------------------------------------------------- dQ/dV


def incremental_capacity(voltage_V, capacity_mAh_g, *, bin_V=0.01):
    """dQ/dV on voltage bins: ``(voltage_V, dQdV_mAh_g_V)`` of the bins.

    The samples (finite pairs, in time order, of one half-cycle) are averaged in voltage
    bins ``bin_V`` wide; dQ/dV is the slope between neighbouring bins
    (:func:`numpy.gradient`). Also used for the optical signal (its derivative against
    voltage) with ``capacity_mAh_g`` the mean dI.

    Returns
    -------
    voltage_V, dq_dv : (n_bins,) float64 arrays (empty with fewer than two bins)
    """
    vb, (qb,) = _voltage_bins(voltage_V, capacity_mAh_g, bin_V=bin_V)
    if vb.size < 2:
        return np.empty(0), np.empty(0)
    return vb, np.gradient(qb, vb)


def _voltage_bins(voltage_V, *values, bin_V):
    """The mean voltage and the mean of each of ``values`` per voltage bin, over the samples
    where all are finite: ``(v (n_bins,), [(n_bins,) per value])``."""
    v = np.asarray(voltage_V, dtype=np.float64)
    ys = [np.asarray(y, dtype=np.float64) for y in values]
    ok = np.isfinite(v)
    for y in ys:
        ok &= np.isfinite(y)
    if not ok.any() or not bin_V > 0:
        return np.empty(0), [np.empty(0) for _ in ys]
    v = v[ok]
    idx = np.floor((v - v.min()) / bin_V).astype(int)
    counts = np.bincount(idx)
    have = counts > 0
    out = [np.bincount(idx, y[ok])[have] / counts[have] for y in ys]
    return np.bincount(idx, v)[have] / counts[have], out


def incremental_capacity_table(timeseries, *, bin_V=0.01):
    """dQ/dV and the particles' mean optical signal against voltage, from a timeseries table.

    Per frame: ``voltage_V``, ``capacity_mAh_g`` and ``current_mA`` (the cycler's, the
    first row of the frame) and ``mean_dI`` averaged over the particles. Frames are split
    into segments: by ``half_cycle`` when the table has it, else by the sign of the current
    (``charge`` > 0, ``discharge`` < 0; rest frames, at zero current, left out: the
    voltage relaxes there at constant charge). Each segment is binned by
    :func:`incremental_capacity`.

    Parameters
    ----------
    timeseries : pandas.DataFrame
        ``asymflux analyze``'s timeseries (``frame``, ``voltage_V``, ``capacity_mAh_g``,
        ``mean_dI``; ``current_mA`` or ``half_cycle`` optional).
    bin_V : float
        Voltage bin width, V.

    Returns
    -------
    pandas.DataFrame
        ``segment, voltage_V, dqdv_mAh_g_V, mean_dI, dmean_dI_dV`` (per V), one row per
        bin, sorted by segment and voltage; empty when no frame has a voltage.
    """
    import pandas as pd

    cols = ["segment", "voltage_V", "dqdv_mAh_g_V", "mean_dI", "dmean_dI_dV"]
    need = {"frame", "voltage_V", "capacity_mAh_g", "mean_dI"}
    if timeseries is None or not need <= set(timeseries.columns) or not len(timeseries):
        return pd.DataFrame({c: [] for c in cols})
    ts = timeseries
    if "dataset" in ts.columns and ts["dataset"].nunique() > 1:
        raise ValueError("incremental_capacity_table: one dataset at a time (the table holds "
                         f"{ts['dataset'].nunique()})")
    extra = [c for c in ("current_mA", "half_cycle") if c in ts.columns]
    per = ts.groupby("frame", sort=True).agg(
        voltage_V=("voltage_V", "first"), capacity_mAh_g=("capacity_mAh_g", "first"),
        mean_dI=("mean_dI", "mean"), **{c: (c, "first") for c in extra})
    if "half_cycle" in per.columns:
        seg = per["half_cycle"].astype(str)
    elif "current_mA" in per.columns:
        i = per["current_mA"].to_numpy(np.float64)
        seg = pd.Series(np.where(i > 0, "charge", np.where(i < 0, "discharge", "")),
                        index=per.index)
        seg[~np.isfinite(i)] = "all"
    else:
        seg = pd.Series("all", index=per.index)
    rows = []
    for name, grp in per.groupby(seg, sort=False):
        if not name:
            continue
        v, (q, di) = _voltage_bins(grp["voltage_V"], grp["capacity_mAh_g"], grp["mean_dI"],
                                   bin_V=bin_V)
        if v.size < 2:
            continue
        rows.append(pd.DataFrame({"segment": str(name), "voltage_V": v,
                                  "dqdv_mAh_g_V": np.gradient(q, v), "mean_dI": di,
                                  "dmean_dI_dV": np.gradient(di, v)}))
    if not rows:
        return pd.DataFrame({c: [] for c in cols})
    return pd.concat(rows, ignore_index=True)
