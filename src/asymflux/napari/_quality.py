"""A particle's quality flags and the confidence of its numbers, as the plugin shows them.

Qt-free (a notebook can call it): :func:`particle_quality` takes a particle's table
(the rows ``asymflux analyze`` writes into ``timeseries.csv`` for it) and returns what the
*quality* panel (:mod:`._quality_panel`) shows: the per-particle flags and classification
with its confidence (the columns of ``particles.csv``, :func:`asymflux.analysis.summarize_particles`)
and, at one frame, d with its range and that frame's flags.
"""

from __future__ import annotations

import numpy as np

__all__ = ["particle_quality", "describe"]


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def particle_quality(timeseries, frame=None, *, asymmetry_threshold=None) -> dict:
    """What the plugin shows of one particle's quality.

    Parameters
    ----------
    timeseries : pandas.DataFrame
        One particle's rows of :func:`asymflux.analysis.particle_timeseries` (as
        :func:`asymflux.analysis.analyze_dataset_particle` returns them).
    frame : int, optional
        The frame shown (default: the last one with a finite d).
    asymmetry_threshold : float, optional
        Classification threshold (default: the library's).

    Returns
    -------
    dict
        Per particle (``particles.csv``'s columns): ``particle_id``, ``classification``,
        ``classification_reason``, ``asymmetry_score`` (max d/R_eq), ``asymmetry_score_low``,
        ``asymmetry_score_high``, ``quality_flags`` (``"flag:n_frames;..."``),
        ``flagged_fraction``; at ``frame`` (``timeseries.csv``'s): ``frame``,
        ``offset_nm`` (d), ``d_nm_low``, ``d_nm_high``, ``offset_reason`` and
        ``frame_flags`` (``;``-separated, ``""`` for none).
    """
    from asymflux.analysis import DEFAULT_ASYMMETRY_THRESHOLD, summarize_particles

    threshold = DEFAULT_ASYMMETRY_THRESHOLD if asymmetry_threshold is None else asymmetry_threshold
    ts = timeseries.drop(columns=[c for c in ("dataset",) if c in timeseries.columns])
    row = summarize_particles(ts, asymmetry_threshold=threshold).iloc[0]
    out = {"particle_id": int(row["particle_id"]),
           "classification": str(row["classification"]),
           "classification_reason": str(row.get("classification_reason", "") or ""),
           "asymmetry_score": _float(row.get("asymmetry_score", row.get("max_offset_norm"))),
           "asymmetry_score_low": _float(row.get("asymmetry_score_low")),
           "asymmetry_score_high": _float(row.get("asymmetry_score_high")),
           "asymmetry_threshold": float(threshold),
           "quality_flags": str(row.get("quality_flags", "") or ""),
           "flagged_fraction": _float(row.get("flagged_fraction"))}
    frames = ts["frame"].to_numpy()
    if frame is None:
        finite = np.isfinite(ts["offset_nm"].to_numpy(float))
        frame = int(frames[finite][-1]) if finite.any() else int(frames[-1])
    at = ts[frames == int(frame)]
    if len(at):
        r = at.iloc[0]
        flags = r.get("quality_flags", "")
        out.update(frame=int(frame), offset_nm=_float(r["offset_nm"]),
                   d_nm_low=_float(r.get("d_nm_low")), d_nm_high=_float(r.get("d_nm_high")),
                   offset_reason=str(r.get("offset_reason", "") or ""),
                   frame_flags="" if not isinstance(flags, str) else flags)
    else:
        out.update(frame=int(frame), offset_nm=np.nan, d_nm_low=np.nan, d_nm_high=np.nan,
                   offset_reason="frame not in the table", frame_flags="")
    return out


def _num(x, fmt):
    return "–" if not np.isfinite(x) else format(x, fmt)


def describe(quality: dict) -> dict:
    """:func:`particle_quality` as the panel's text, short lines that fit a narrow dock:
    ``"d"``, ``"class"``, ``"particle flags"`` and ``"frame flags"``."""
    q = quality
    d = f"frame {q['frame']}: d = {_num(q['offset_nm'], '.0f')} nm"
    if np.isfinite(q["d_nm_low"]) or np.isfinite(q["d_nm_high"]):
        d += f", range [{_num(q['d_nm_low'], '.0f')}, {_num(q['d_nm_high'], '.0f')}]"
    if q["offset_reason"]:
        d += f"\n  ({q['offset_reason']})"
    cls = (f"class {q['classification']}: max d/R_eq {_num(q['asymmetry_score'], '.3f')}\n"
           f"  range [{_num(q['asymmetry_score_low'], '.3f')}, "
           f"{_num(q['asymmetry_score_high'], '.3f')}], threshold {q['asymmetry_threshold']:g}")
    if q["classification_reason"]:
        cls += f"\n  ({q['classification_reason']})"
    flags = [f for f in q["quality_flags"].split(";") if f]
    if flags:
        particle_flags = (f"particle flags ({_num(100 * q['flagged_fraction'], '.0f')} % of frames):"
                          + "".join(f"\n  {name} on {n} frame(s)" for name, _, n in
                                    (f.partition(":") for f in flags)))
    else:
        particle_flags = "particle flags: none"
    frame_flags = [f for f in q["frame_flags"].split(";") if f]
    frame_text = (f"frame {q['frame']} flags: "
                  + (", ".join(frame_flags) if frame_flags else "none"))
    return {"d": d, "class": cls, "particle flags": particle_flags, "frame flags": frame_text}
