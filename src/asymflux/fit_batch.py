"""Fit every particle of a dataset (``asymflux fit DATASET --all``) and join the fits to
the analysis tables.

:func:`fit_all` fits the particles in a process pool (at most :data:`MAX_WORKERS`
processes, each reading the dataset once per particle; a particle that fails is recorded
with its error, the others go on; the pool is shut down, its pending work cancelled, on
any failure of the pool itself or an interrupt). :func:`fits_table` turns the summaries
into one row per particle (``fit_*`` columns: the chosen model, each arc's centre,
fraction and η, or R_film and effective η, each with its standard error ``*_se``);
:func:`join_fits` joins them to an ``asymflux analyze`` ``particles.csv`` on
``(dataset, particle_id)``; :func:`cohort_fit_summary` summarises them per group for the
cohort table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["MAX_WORKERS", "cohort_fit_summary", "fit_all", "fits_table", "join_fits",
           "with_folder_fits"]

#: Most worker processes ``fit --all`` starts (the fits are CPU-bound; 2 cores assumed).
MAX_WORKERS = 2


def _fit_one(job):
    """Worker: read the dataset, fit one particle; ``(particle_id, summary or None, error)``."""
    import warnings

    from . import fit, io

    path, pid, masks, kwargs = job
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = io.read_dataset(path)
            result = fit.fit_dataset(dataset, pid, masks=masks, **kwargs)
        return pid, result.summary(), None
    except Exception as exc:  # noqa: BLE001 - reported per particle, the others go on
        return pid, None, " ".join(f"{type(exc).__name__}: {exc}".split())


def fit_all(path, particle_ids, *, masks=None, workers: int = MAX_WORKERS, progress=False,
            **kwargs) -> tuple[dict, dict]:
    """Fit each particle of the dataset at ``path`` (:func:`asymflux.fit.fit_dataset`).

    Parameters
    ----------
    path : path-like
        Dataset folder (read by each worker).
    particle_ids : sequence of int
    masks : (n_row, n_col) int array, optional
        Labels (default: the dataset's curated masks).
    workers : int
        Worker processes, 1 to :data:`MAX_WORKERS` (1: in this process).
    progress : bool
        One line per particle as it finishes.
    **kwargs
        Passed to :func:`asymflux.fit.fit_dataset` (``max_arcs``, ``surface``, ``rate_mA_g``).

    Returns
    -------
    summaries : dict
        ``{particle_id: FitResult.summary()}`` of the particles fitted.
    failures : dict
        ``{particle_id: one-line error}``.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed

    workers = int(workers)
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be 1 to {MAX_WORKERS}, got {workers}")
    jobs = [(str(path), int(p), masks, kwargs) for p in particle_ids]
    summaries, failures = {}, {}

    def record(pid, summary, error):
        if error is None:
            summaries[pid] = summary
        else:
            failures[pid] = error
        if progress:
            what = (f"{summary['model']}, blocked {summary['blocked']}" if error is None
                    else f"FAILED: {error}")
            print(f"  particle {pid}: {what}", flush=True)

    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            record(*_fit_one(job))
    else:
        import multiprocessing

        pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)),
                                   mp_context=multiprocessing.get_context("spawn"))
        try:
            futures = [pool.submit(_fit_one, job) for job in jobs]
            for fut in as_completed(futures):
                record(*fut.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in list(getattr(pool, "_processes", {}).values()):  # no orphans left
                proc.terminate()
            raise
        pool.shutdown(wait=True)
    order = {int(p): i for i, p in enumerate(particle_ids)}
    return (dict(sorted(summaries.items(), key=lambda kv: order[kv[0]])),
            dict(sorted(failures.items(), key=lambda kv: order[kv[0]])))


def fits_table(dataset_name: str, summaries: dict, failures: dict | None = None) -> pd.DataFrame:
    """One row per particle: ``dataset, particle_id, fit_model, fit_surface, fit_blocked,
    fit_diffusivity_scale(_se), fit_rms_dI, fit_r_squared`` and per arc k
    ``fit_center_deg_k, fit_fraction_k`` and ``fit_eta_k`` (prescribed) or
    ``fit_resistance_ohm_m2_k, fit_eta_effective_k`` (kinetic), each with ``_se`` where the
    fit gives one; ``fit_error`` for the particles that failed."""
    rows = []
    for pid, s in summaries.items():
        u = s.get("uncertainties", {})
        row = {"dataset": dataset_name, "particle_id": int(pid), "fit_model": s["model"],
               "fit_surface": s["surface"], "fit_blocked": s["blocked"],
               "fit_diffusivity_scale": s["diffusivity_scale"],
               "fit_diffusivity_scale_se": u.get("diffusivity_scale", np.nan),
               "fit_rms_dI": s["rms_dI"], "fit_r_squared": s["r_squared"], "fit_error": ""}
        for k, arc in enumerate(s["arcs"], start=1):
            for key, value in arc.items():
                row[f"fit_{key}_{k}"] = value
                if f"{key}_{k}" in u:
                    row[f"fit_{key}_{k}_se"] = u[f"{key}_{k}"]
        rows.append(row)
    for pid, err in (failures or {}).items():
        rows.append({"dataset": dataset_name, "particle_id": int(pid), "fit_model": "failed",
                     "fit_error": err})
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values("particle_id", kind="stable").reset_index(drop=True)
    return table


def with_folder_fits(folder, dataset_name: str, fits: pd.DataFrame, details: list):
    """``(fits table, fits.json records)`` of ``folder`` once this dataset's are written:
    ``fits`` (:func:`fits_table`) and ``details`` (one record per particle) replace the
    earlier ones of ``dataset_name`` in the folder's ``fits.csv`` and ``fits.json``; other
    datasets' fits are kept (an unreadable ``fits.json``: only this dataset's records)."""
    import json
    from pathlib import Path

    folder = Path(folder)
    if not (folder / "fits.csv").is_file():
        return fits, details
    old = pd.read_csv(folder / "fits.csv")
    fits_all = fits
    if "dataset" in old.columns:
        old = old[old["dataset"].astype(str) != dataset_name]
        fits_all = pd.concat([old, fits], ignore_index=True) if len(old) else fits
    try:
        old_details = json.loads((folder / "fits.json").read_text(encoding="utf-8"))
        details = [d for d in old_details if str(d.get("dataset")) != dataset_name] + details
    except (OSError, ValueError, AttributeError):
        pass
    return fits_all, details


def join_fits(particles: pd.DataFrame, fits: pd.DataFrame) -> pd.DataFrame:
    """``particles`` (an ``analyze`` ``particles.csv``) with the ``fit_*`` columns of
    ``fits`` joined on ``(dataset, particle_id)``; earlier ``fit_*`` columns of the fitted
    datasets are replaced, other datasets' rows keep theirs."""
    keys = ["dataset", "particle_id"]
    for k in keys:
        if k not in particles.columns:
            raise ValueError(f"the particles table has no column {k!r}")
    fitted = set(fits["dataset"].astype(str))
    out = particles.copy()
    mine = out["dataset"].astype(str).isin(fitted).to_numpy()
    merged = out[keys].merge(fits, on=keys, how="left")
    fit_cols = [c for c in fits.columns if c not in keys]
    for c in [c for c in out.columns if c.startswith("fit_") and c not in fit_cols]:
        out[c] = pd.Series(out[c], dtype=object).where(~mine, np.nan).to_numpy()
    for c in fit_cols:
        new = merged[c].to_numpy(dtype=object)
        old = out[c].to_numpy(dtype=object) if c in out.columns else np.full(len(out), np.nan, object)
        out[c] = pd.Series(np.where(mine, new, old), index=out.index).infer_objects()
    return out


def cohort_fit_summary(particles: pd.DataFrame, by: str) -> pd.DataFrame | None:
    """Per group ``by``: ``n_fitted``, ``n_fit_blocked`` (a model with arcs chosen) and the
    median of each arc-1 quantity (``fit_eta_1`` / ``fit_eta_effective_1``,
    ``fit_resistance_ohm_m2_1``, ``fit_fraction_1``) over the blocked fits, with the
    median of its standard error. None when the table has no fits."""
    if "fit_model" not in particles.columns:
        return None
    fitted = particles[particles["fit_model"].notna() & (particles["fit_model"] != "failed")]
    if not len(fitted):
        return None
    rows = []
    for group, g in fitted.groupby(by, dropna=False):
        blocked = g[g["fit_model"] != "none"]
        row = {by: group, "n_fitted": len(g), "n_fit_blocked": len(blocked)}
        for col in ("fit_eta_1", "fit_eta_effective_1", "fit_resistance_ohm_m2_1", "fit_fraction_1"):
            if col in g.columns:
                row[f"median_{col}"] = float(blocked[col].median()) if len(blocked) else np.nan
                if f"{col}_se" in g.columns:
                    row[f"median_{col}_se"] = (float(blocked[f"{col}_se"].median())
                                               if len(blocked) else np.nan)
        rows.append(row)
    return pd.DataFrame(rows)
