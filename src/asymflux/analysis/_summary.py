"""Per-particle summary: asymmetry classification and where the core vanishes.

Classification criterion (documented, tunable)
----------------------------------------------
A particle's *asymmetry score* is a statistic (default: the maximum) of the normalised
offset ``d / R_eq`` over the *early-charge window*: the frames whose unreacted fraction
lies in ``window`` (default 0.15–0.8, i.e. after the Li-poor shell has formed and before
the core is so small that its centre is dominated by noise). The particle is
``"asymmetric"`` when the score is >= ``asymmetry_threshold`` (default 0.08,
:data:`asymflux.paper.ASYMMETRY_THRESHOLD`),
``"symmetric"`` otherwise, and ``"undetermined"`` when no frame falls in the window
(``classification_reason`` says why).

Frames whose d is not trusted (a quality flag of
:data:`~asymflux.analysis._quality.UNTRUSTED_D_FLAGS`, ``local_darkening``: dust arriving)
are left out of the score: the particle is ``"asymmetric"`` when its other window frames
reach the threshold (the asymmetry is seen without the dusty frames), and
``"undetermined"`` otherwise when any window frame is flagged (its true d may be the
largest); ``n_window_frames`` then counts the frames scored.

Why 0.08: in the diffusion model (2.4 µm disk, 100 mA/g) an unblocked particle gives
d/R_eq = 0 by symmetry, and PSF + noise + drift of the synthetic microscope keep it
below ~0.04; one quarter of the perimeter blocked with η = 0.5 reaches d/R_eq ≈ 0.12–0.15
in the window (η = 0.3: ≈ 0.25; half blocked, η = 0.3: ≈ 0.35). η = 0.7 on a quarter
(≈ 0.07) is deliberately near the threshold: it is weakly asymmetric.
"""

from __future__ import annotations

import numpy as np

from ..paper import ASYMMETRY_THRESHOLD as DEFAULT_ASYMMETRY_THRESHOLD

__all__ = [
    "classify_asymmetry", "summarize_particles", "DEFAULT_WINDOW", "DEFAULT_ASYMMETRY_THRESHOLD",
    "PARTICLE_COLUMNS",
]

DEFAULT_WINDOW = (0.15, 0.8)

PARTICLE_COLUMNS = [
    "particle_id", "area_um2", "r_eq_um", "com_row", "com_col", "classification",
    "max_offset_norm", "asymmetry_score", "classification_reason", "n_window_frames",
    "direction_deg", "max_offset_nm", "vanish_frame", "vanish_time_s", "vanish_capacity_mAh_g",
    "last_unreacted_row", "last_unreacted_col", "last_offset_nm", "last_offset_norm",
    "last_offset_angle_deg", "quality_flags", "flagged_fraction", "asymmetry_score_low",
    "asymmetry_score_high",
]

_STATS = {"max": np.max, "mean": np.mean, "median": np.median}


def classify_asymmetry(
    offset_norm,
    unreacted_fraction,
    *,
    window=DEFAULT_WINDOW,
    asymmetry_threshold=DEFAULT_ASYMMETRY_THRESHOLD,
    statistic="max",
):
    """Classify one particle from its d/R_eq(t) and unreacted fraction(t).

    Parameters
    ----------
    offset_norm : (n_frames,) array
        d / R_eq per frame (NaN where undefined).
    unreacted_fraction : (n_frames,) array
        Unreacted area fraction per frame.
    window : (float, float)
        Early-charge window on the unreacted fraction (inclusive).
    asymmetry_threshold : float
        Score at or above which the particle is asymmetric.
    statistic : {"max", "mean", "median"} or float
        Score over the window frames; a float in [0, 1] is a quantile.

    Returns
    -------
    classification : str
        ``"asymmetric"``, ``"symmetric"`` or ``"undetermined"``.
    score : float
        The statistic (NaN when undetermined).
    index : int
        Index of the frame at which d/R_eq is largest in the window (-1 if none).
    reason : str
        Why it is undetermined (``""`` otherwise).
    n_window : int
        Number of frames in the window.
    """
    d = np.asarray(offset_norm, dtype=float)
    f = np.asarray(unreacted_fraction, dtype=float)
    lo, hi = window
    sel = np.isfinite(d) & (f >= lo) & (f <= hi)
    n = int(sel.sum())
    if n == 0:
        return ("undetermined", np.nan, -1,
                f"no frame with unreacted fraction in [{lo:g}, {hi:g}]", 0)
    vals = d[sel]
    if isinstance(statistic, str):
        if statistic not in _STATS:
            raise ValueError(f"statistic must be one of {sorted(_STATS)} or a quantile, got {statistic!r}")
        score = float(_STATS[statistic](vals))
    else:
        score = float(np.quantile(vals, float(statistic)))
    idx = int(np.flatnonzero(sel)[np.argmax(vals)])
    cls = "asymmetric" if score >= asymmetry_threshold else "symmetric"
    return cls, score, idx, "", n


def _untrusted_frames(g):
    """(n_frames,) bool: the frames of one particle's rows ``g`` carrying a flag of
    :data:`~asymflux.analysis._quality.UNTRUSTED_D_FLAGS` (None without a
    ``quality_flags`` column, or when none is)."""
    if "quality_flags" not in g.columns:
        return None
    from ._quality import UNTRUSTED_D_FLAGS

    names = g["quality_flags"].fillna("").astype(str).str.split(";")
    bad = names.apply(lambda v: any(k in v for k in UNTRUSTED_D_FLAGS)).to_numpy(bool)
    return bad if bad.any() else None


def _classify_trusted(d, f, untrusted, result, *, window, asymmetry_threshold, statistic):
    """The classification ``result`` of :func:`classify_asymmetry` redone without the
    ``untrusted`` frames when some of the window's are: ``"asymmetric"`` when the other
    window frames reach the threshold, ``"undetermined"`` otherwise (the score, its frame
    and the number of frames are then the other frames', NaN / -1 / 0 when none is left)."""
    lo, hi = window
    in_window = np.isfinite(d) & (f >= lo) & (f <= hi)
    n_bad = int(np.count_nonzero(in_window & untrusted))
    if n_bad == 0:
        return result
    cls, score, idx, _, n = classify_asymmetry(
        np.where(untrusted, np.nan, d), f, window=window,
        asymmetry_threshold=asymmetry_threshold, statistic=statistic)
    if cls == "asymmetric":
        return cls, score, idx, "", n
    from ._quality import UNTRUSTED_D_FLAGS

    names = "/".join(UNTRUSTED_D_FLAGS)
    other = (f"the other {n} frames' score {score:.3g} is below {asymmetry_threshold:g}"
             if n else "no other frame is in the window")
    return ("undetermined", score, idx,
            f"{n_bad} of {n_bad + n} window frames flagged {names} (d not trusted: dust or "
            f"another local darkening), and {other}", n)


def _score_interval(g, f, cls, score, window, asymmetry_threshold, statistic, exclude=None):
    """The asymmetry score's range over the threshold's uncertainty (the same statistic of
    ``offset_norm_low`` / ``offset_norm_high`` over the window frames), and the
    classification 'undetermined' when that range straddles ``asymmetry_threshold``."""
    out = {"asymmetry_score_low": np.nan, "asymmetry_score_high": np.nan}
    if cls == "undetermined":
        return out
    lo_d = g["offset_norm_low"].to_numpy(float)
    hi_d = g["offset_norm_high"].to_numpy(float)
    sel = np.isfinite(g["offset_norm"].to_numpy(float)) & (f >= window[0]) & (f <= window[1])
    if exclude is not None:
        sel &= ~exclude
    stat = _STATS[statistic] if isinstance(statistic, str) else \
        (lambda v: np.quantile(v, float(statistic)))
    with np.errstate(invalid="ignore"):
        lo = float(stat(np.where(np.isfinite(lo_d[sel]), lo_d[sel], 0.0)))
        hi = float(stat(np.where(np.isfinite(hi_d[sel]), hi_d[sel], np.inf)))
    lo, hi = min(lo, score), max(hi, score)
    out.update(asymmetry_score_low=lo, asymmetry_score_high=hi)
    if lo < asymmetry_threshold <= hi:
        out.update(classification="undetermined", classification_reason=(
            f"d/R_eq score {score:.3g} in [{lo:.3g}, {hi:.3g}] (threshold -/+ the pixel "
            f"noise of dI) straddles {asymmetry_threshold:g}"))
    return out


def summarize_particles(
    timeseries,
    *,
    window=DEFAULT_WINDOW,
    asymmetry_threshold=DEFAULT_ASYMMETRY_THRESHOLD,
    statistic="max",
    vanish_fraction=0.0,
):
    """One row per particle from a :func:`particle_timeseries` table.

    Parameters
    ----------
    timeseries : pandas.DataFrame
        Output of :func:`particle_timeseries` (extra columns such as ``dataset`` are kept
        when constant per particle).
    window, asymmetry_threshold, statistic
        Classification criterion, see :func:`classify_asymmetry`.
    vanish_fraction : float
        The unreacted region has vanished at the first frame (after it has been above
        this) whose unreacted fraction is <= ``vanish_fraction`` (default 0: no unreacted
        pixel left).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PARTICLE_COLUMNS`: ``max_offset_norm`` (= ``asymmetry_score`` for
        the default statistic: max d/R_eq in the window), ``direction_deg`` (direction of
        the Li-rich core at that frame, i.e. the side that delithiates last),
        ``vanish_*`` (frame, time and capacity at which the unreacted region vanishes,
        Fig. 5c blue circles) and ``last_unreacted_*`` (where its last part was: centre
        of the unreacted pixels in the frame before, in pixel (row, col), and its offset
        from O_COM), ``quality_flags`` (each flag raised on the particle's frames with
        the number of frames, ``"saturated:3;core_too_small:1"``, ``""`` for none) and
        ``flagged_fraction`` (of its frames with any flag), and
        ``asymmetry_score_low`` / ``_high``: the score's range over the dI threshold -/+
        the pixel noise (the statistic of ``offset_norm_low`` / ``offset_norm_high``);
        when it straddles ``asymmetry_threshold`` the classification is
        ``"undetermined"`` (``classification_reason`` says so).
    """
    import pandas as pd

    rows = []
    keep = [c for c in ("dataset", "ageing") if c in timeseries.columns]
    # without its attrs (warnings): pandas deep-copies them at every column taken below
    plain = timeseries.copy(deep=False)
    plain.attrs = {}
    for pid, g in plain.groupby("particle_id", sort=True):
        g = g.sort_values("frame")
        area = float(g["area_um2"].iloc[0])
        r_eq_um = float(np.sqrt(area / np.pi))
        d = g["offset_norm"].to_numpy(float)
        f = g["unreacted_fraction"].to_numpy(float)
        cls, score, idx, reason, n = classify_asymmetry(
            d, f, window=window, asymmetry_threshold=asymmetry_threshold, statistic=statistic)
        untrusted = _untrusted_frames(g)
        if untrusted is not None:
            cls, score, idx, reason, n = _classify_trusted(
                d, f, untrusted, (cls, score, idx, reason, n), window=window,
                asymmetry_threshold=asymmetry_threshold, statistic=statistic)
        row = {c: g[c].iloc[0] for c in keep}
        row.update({
            "particle_id": pid, "area_um2": area, "r_eq_um": r_eq_um,
            "com_row": float(g["com_row"].iloc[0]), "com_col": float(g["com_col"].iloc[0]),
            "classification": cls,
            "max_offset_norm": float(d[idx]) if idx >= 0 else np.nan,
            "asymmetry_score": score, "classification_reason": reason, "n_window_frames": n,
            "direction_deg": float(g["offset_angle_deg"].iloc[idx]) if idx >= 0 else np.nan,
            "max_offset_nm": float(g["offset_nm"].iloc[idx]) if idx >= 0 else np.nan,
        })
        above = f > vanish_fraction
        vanish = np.flatnonzero(~above & np.isfinite(f) & (np.cumsum(above) > 0))
        if vanish.size:
            k = int(vanish[0])
            last = g.iloc[k - 1]
            row.update({
                "vanish_frame": int(g["frame"].iloc[k]), "vanish_time_s": float(g["time_s"].iloc[k]),
                "vanish_capacity_mAh_g": float(g["capacity_mAh_g"].iloc[k]),
                "last_unreacted_row": float(last["li_rich_row"]),
                "last_unreacted_col": float(last["li_rich_col"]),
                "last_offset_nm": float(last["offset_nm"]),
                "last_offset_norm": float(last["offset_norm"]),
                "last_offset_angle_deg": float(last["offset_angle_deg"]),
            })
        if "quality_flags" in g.columns:
            from ._quality import flag_counts

            fl = g["quality_flags"].fillna("").astype(str)
            row["quality_flags"] = ";".join(f"{k}:{v}" for k, v in flag_counts(fl).items())
            row["flagged_fraction"] = float((fl != "").mean()) if len(fl) else np.nan
        if {"offset_norm_low", "offset_norm_high"} <= set(g.columns):
            row.update(_score_interval(g, f, cls, score, window, asymmetry_threshold,
                                       statistic, exclude=untrusted))
        rows.append(row)
    cols = keep + PARTICLE_COLUMNS
    out = pd.DataFrame(rows, columns=cols)
    out["vanish_frame"] = out["vanish_frame"].astype("Int64")
    out["n_window_frames"] = out["n_window_frames"].astype("Int64")
    return out
