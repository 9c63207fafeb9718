"""Quality flags, d's band and the classification's confidence as the pages show them
(Panel-free): the numbers of ``asymflux analyze``'s tables (``particles.csv``,
``timeseries.csv``), formatted, never computed again.

What each flag means and its threshold: ``docs/analysis.md``, *Quality flags*
(:data:`asymflux.analysis.QUALITY_FLAGS` holds the same text).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

FLAGS_DOC = "docs/analysis.md, *Quality flags*"
"""Where the page sends a reader for what each flag means."""

SCORE_FORMAT = "0.000"
"""Number format of the asymmetry scores and the flagged fraction in the tables."""

PARTICLE_TABLE_COLUMNS = (
    "dataset", "particle_id", "ageing", "classification", "asymmetry_score",
    "asymmetry_score_low", "asymmetry_score_high", "classification_reason", "quality_flags",
    "flagged_fraction",
)
"""The particle table's columns (those the particles have), in this order, then the fit's
(``fit_*`` of ``asymflux fit --all``, each ``value ± standard error``)."""

NUMBER_COLUMNS = ("asymmetry_score", "asymmetry_score_low", "asymmetry_score_high",
                  "flagged_fraction")


def flag_names(value) -> list[str]:
    """The flags of a ``quality_flags`` cell: ``"saturated;core_too_small"`` (a frame's) or
    ``"saturated:3;core_too_small:1"`` (a particle's) -> ``["saturated", "core_too_small"]``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [p.split(":")[0].strip() for p in str(value).split(";") if p.strip()]


def flag_counts_text(value) -> str:
    """A particle's ``quality_flags`` (``"saturated:3;core_too_small:1"``) in words:
    ``"saturated on 3 frames, core_too_small on 1"`` (``"none"`` without any)."""
    parts = []
    for i, p in enumerate(p for p in str(value if isinstance(value, str) else "").split(";")
                          if p.strip()):
        name, _, n = p.partition(":")
        n = n.strip()
        unit = (" frames" if n != "1" else " frame") if i == 0 and n else ""
        parts.append(f"{name.strip()} on {n}{unit}" if n else name.strip())
    return ", ".join(parts) or "none"


def _num(x, fmt=".3f") -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "NaN"
    return format(x, fmt) if math.isfinite(x) else "NaN"


def particle_quality_markdown(row, *, threshold: float | None = None) -> str:
    """One particle's classification with its confidence and its flags, as Markdown.

    Parameters
    ----------
    row : mapping
        A row of ``particles.csv`` (:func:`asymflux.analysis.summarize_particles`).
    threshold : float, optional
        The asymmetry threshold (default
        :data:`asymflux.analysis.DEFAULT_ASYMMETRY_THRESHOLD`).
    """
    from asymflux.analysis import DEFAULT_ASYMMETRY_THRESHOLD

    threshold = DEFAULT_ASYMMETRY_THRESHOLD if threshold is None else threshold
    get = row.get if hasattr(row, "get") else (lambda k, d=None: getattr(row, k, d))
    cls = get("classification", "?")
    text = f"**particle {int(get('particle_id'))}: {cls}**"
    score = get("asymmetry_score")
    if score is not None and np.isfinite(float(score)):
        text += f"; asymmetry score (max d/R_eq in the window) {_num(score)}"
        lo, hi = get("asymmetry_score_low"), get("asymmetry_score_high")
        if lo is not None and hi is not None:
            text += (f", {_num(lo)} to {_num(hi)} with the dI threshold ± the pixel noise "
                     f"(asymmetric from {threshold:g})")
    reason = get("classification_reason")
    if isinstance(reason, str) and reason.strip():
        text += f" ({reason.strip()})"
    flags = get("quality_flags")
    frac = get("flagged_fraction")
    if flags is not None:
        text += f". Quality flags: {flag_counts_text(flags)}"
        if frac is not None and np.isfinite(float(frac)) and float(frac) > 0:
            text += f" ({100 * float(frac):.0f} % of its frames flagged)"
    return text + "."


def frame_quality_markdown(ts_row, *, n_frames: int | None = None) -> str:
    """One particle-frame (a row of ``timeseries.csv``) as the page's line under the movie:
    its frame number (the ``frame`` column: 0 is the reference), capacity, d with its range
    (the dI threshold ± the pixel noise) and its quality flags."""
    get = ts_row.get if hasattr(ts_row, "get") else (lambda k, d=None: getattr(ts_row, k, d))
    f = int(get("frame"))
    text = f"**frame {f}**" + (f" of 0–{n_frames - 1}" if n_frames else "")
    text += " (timeseries.csv's `frame`; 0 is the reference)"
    cap = get("capacity_mAh_g")
    if cap is not None and np.isfinite(float(cap)):
        text += f", {float(cap):.1f} mAh/g"
    d = get("offset_nm")
    if d is not None and np.isfinite(float(d)):
        text += f": d = {float(d):.1f} nm"
        lo, hi = get("d_nm_low"), get("d_nm_high")
        if lo is not None and hi is not None and np.isfinite(float(lo)):
            text += f" ({float(lo):.1f} to {float(hi):.1f} nm: threshold ± noise)"
    else:
        reason = get("offset_reason")
        text += ": d = NaN" + (f" ({reason})" if isinstance(reason, str) and reason else "")
    flags = flag_names(get("quality_flags"))
    text += "; quality flags: " + (", ".join(f"**{f}**" for f in flags) if flags else "none")
    return text + "."


def flags_legend_markdown(flags) -> str:
    """What each of ``flags`` (names) means, one bullet each (the analysis's own text,
    :data:`asymflux.analysis.QUALITY_FLAGS`), and where the thresholds are explained."""
    from asymflux.analysis import QUALITY_FLAGS

    names = [f for f in QUALITY_FLAGS if f in set(flags)]
    names += sorted(set(flags) - set(names))
    lines = [f"- **{f}**: {QUALITY_FLAGS.get(f, 'not described by this asymflux')}"
             for f in names]
    head = ("On d(capacity): the band is d with the dI threshold moved down and up by the "
            "pixel noise (`d_nm_low` to `d_nm_high`); a cross marks a frame with a quality "
            "flag, a triangle (at d = 0) a flagged frame where d is NaN while a core is left "
            "(after the core has vanished no frame is marked). A particle is "
            "*undetermined* when its asymmetry score's range straddles the threshold. "
            f"Each flag, its threshold and what it means for the numbers: {FLAGS_DOC}.")
    return head + ("\n\n" + "\n".join(lines) if lines else "\n\nNo quality flag raised.")


def _pm(value, se) -> str:
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return ""
    return f"{value:.4g}" + ("" if se is None or pd.isna(se) else f" ± {se:.2g}")


def particle_table(particles: pd.DataFrame) -> pd.DataFrame:
    """The pooled particles as the page's table shows them: one row per particle (its first
    charge half-cycle, as Fig. 5e counts it), :data:`PARTICLE_TABLE_COLUMNS` (those
    present) with the numbers unchanged (the page formats them), then each fitted parameter
    of ``asymflux fit --all`` (``fit_*``) as ``"value ± standard error"``, and
    ``source_spec`` (the dataset as the page loaded it) when present."""
    from asymflux.analysis import cohort_rows

    rows = cohort_rows(particles).reset_index(drop=True)
    out = rows[[c for c in PARTICLE_TABLE_COLUMNS if c in rows.columns]].copy()
    if "quality_flags" in out:
        out["quality_flags"] = out["quality_flags"].fillna("").astype(str)
    if "classification_reason" in out:
        out["classification_reason"] = out["classification_reason"].fillna("").astype(str)
    fits = [c for c in rows.columns if c.startswith("fit_") and not c.endswith("_se")
            and c != "fit_error" and rows[c].notna().any()]
    for c in fits:
        se = rows[f"{c}_se"] if f"{c}_se" in rows else pd.Series(np.nan, index=rows.index)
        out[c] = [_pm(v, s) for v, s in zip(rows[c], se, strict=True)]
    if "source_spec" in rows:
        out["source_spec"] = rows["source_spec"].to_numpy()
    return out
