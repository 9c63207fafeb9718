"""Cohort statistics (Lun et al. 2025, Fig. 5e) and validation against ground truth."""

from __future__ import annotations

import numpy as np

__all__ = [
    "cohort_statistics", "wilson_interval", "true_classes", "confusion_matrix",
    "validate_classification",
]

CLASSES = ("symmetric", "asymmetric")


def wilson_interval(k, n, *, confidence=0.95):
    """Wilson score interval of a binomial proportion k/n.

    Parameters
    ----------
    k, n : int or array of int
        Successes and trials.
    confidence : float
        Confidence level.

    Returns
    -------
    low, high : float or array
        NaN where n == 0.
    """
    from scipy.stats import binomtest

    k_arr, n_arr = np.broadcast_arrays(np.asarray(k, dtype=int), np.asarray(n, dtype=int))
    low = np.full(k_arr.shape, np.nan)
    high = np.full(k_arr.shape, np.nan)
    for i in np.ndindex(k_arr.shape):
        if n_arr[i] > 0:
            ci = binomtest(int(k_arr[i]), int(n_arr[i])).proportion_ci(
                confidence_level=confidence, method="wilson")
            low[i], high[i] = ci.low, ci.high
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def cohort_statistics(particles, *, by="ageing", confidence=0.95):
    """Counts and fraction of asymmetric particles per group (Fig. 5e).

    Parameters
    ----------
    particles : pandas.DataFrame
        Particle tables (e.g. several ``particles.csv`` concatenated) with a
        ``classification`` column and the grouping column(s). A movie over several
        half-cycles (rows per particle and ``half_cycle``) counts each particle once, on
        its first charge half-cycle (:func:`~asymflux.analysis._results.cohort_rows`).
    by : str or list of str
        Grouping column(s), default ``"ageing"``.
    confidence : float
        Level of the Wilson interval.

    Returns
    -------
    pandas.DataFrame
        One row per group: the group column(s), ``n_datasets`` (if a ``dataset`` column
        exists), ``n_particles``, ``n_symmetric``, ``n_asymmetric``, ``n_undetermined``,
        ``fraction_asymmetric`` (of the classified particles), ``ci_low``, ``ci_high``.
    """
    import pandas as pd

    from ._results import cohort_rows

    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in by + ["classification"] if c not in particles.columns]
    if missing:
        raise ValueError(f"particle table lacks column(s) {missing}")
    particles = cohort_rows(particles)  # one row per particle (several half-cycles: one)
    rows = []
    for key, g in particles.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        c = g["classification"]
        n_sym = int((c == "symmetric").sum())
        n_asym = int((c == "asymmetric").sum())
        n_cls = n_sym + n_asym
        lo, hi = wilson_interval(n_asym, n_cls, confidence=confidence)
        row = dict(zip(by, key, strict=True))
        if "dataset" in g.columns:
            row["n_datasets"] = int(g["dataset"].nunique())
        row.update({
            "n_particles": len(g), "n_symmetric": n_sym, "n_asymmetric": n_asym,
            "n_undetermined": len(g) - n_cls,
            "fraction_asymmetric": n_asym / n_cls if n_cls else np.nan,
            "ci_low": lo, "ci_high": hi,
        })
        rows.append(row)
    return pd.DataFrame(rows)


def true_classes(ground_truth, *, max_eta=1.0, min_fraction=0.0):
    """Ground-truth class per particle from a synthetic dataset's arc table.

    Parameters
    ----------
    ground_truth : pandas.DataFrame
        ``ground_truth/particles.csv``: ``particle_id, center_deg, fraction, eta``, one row
        per blocked arc (unblocked particles: one row with fraction 0).
    max_eta : float
        Arcs with η < 1 and η <= ``max_eta`` count as blocking.
    min_fraction : float
        A particle is asymmetric when its blocking arcs cover more than ``min_fraction``
        of the perimeter.

    Returns
    -------
    pandas.Series
        ``"symmetric"`` / ``"asymmetric"`` indexed by ``particle_id``.
    """
    gt = ground_truth.copy()
    blocking = (gt["fraction"] > 0) & (gt["eta"] < 1) & (gt["eta"] <= max_eta)
    gt["_blocked"] = np.where(blocking, gt["fraction"], 0.0)
    covered = gt.groupby("particle_id")["_blocked"].sum()
    out = covered.gt(min_fraction).map({True: "asymmetric", False: "symmetric"})
    out.name = "true_class"
    return out


def confusion_matrix(predicted, truth):
    """Confusion matrix of predicted against true classes.

    Parameters
    ----------
    predicted, truth : pandas.Series
        Classes indexed by particle id (or any common key); only common keys count.

    Returns
    -------
    pandas.DataFrame
        Rows: true class; columns: predicted class (``symmetric``, ``asymmetric`` and
        ``undetermined`` if any); counts.
    """
    import pandas as pd

    both = pd.concat({"true": truth, "predicted": predicted}, axis=1, join="inner")
    cols = list(CLASSES) + sorted(set(both["predicted"]) - set(CLASSES))
    m = pd.crosstab(both["true"], both["predicted"]).reindex(
        index=list(CLASSES), columns=cols, fill_value=0)
    m.index.name, m.columns.name = "true", "predicted"
    return m


def validate_classification(particles, ground_truth, *, max_eta=1.0, min_fraction=0.0):
    """Compare a particle table with synthetic ground truth in one call.

    Parameters
    ----------
    particles : pandas.DataFrame
        From :func:`analyze_dataset` (``particle_id``, ``classification``). Particle ids
        must be the ground truth's (i.e. the dataset's own masks were used).
    ground_truth : pandas.DataFrame
        ``dataset.ground_truth["particles"]`` (``ground_truth/particles.csv``).
    max_eta, min_fraction
        See :func:`true_classes`. The defaults count *any* arc with η < 1 as blocking.
        The demo datasets' "symmetric" particles may carry a weak arc (η >= 0.9), so
        compare them with ``max_eta=0.85``; the project's >= 95 % criterion uses
        ``max_eta=0.5, min_fraction=0.25`` (η <= 0.5 on at least a quarter).

    Returns
    -------
    matrix : pandas.DataFrame
        :func:`confusion_matrix`.
    accuracy : float
        Fraction of particles whose predicted class is the true one (undetermined
        counts as wrong).
    """
    truth = true_classes(ground_truth, max_eta=max_eta, min_fraction=min_fraction)
    pred = particles.set_index("particle_id")["classification"]
    m = confusion_matrix(pred, truth)
    total = int(m.to_numpy().sum())
    correct = sum(int(m.loc[c, c]) for c in CLASSES if c in m.columns)
    return m, (correct / total if total else float("nan"))
