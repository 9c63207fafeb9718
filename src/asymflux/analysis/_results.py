"""Reading ``asymflux analyze``'s results folders back (``asymflux cohort``, the cohort page),
without analysing again."""

from __future__ import annotations

from pathlib import Path

__all__ = ["results_folders", "read_results", "cohort_rows"]


def results_folders(path) -> list[Path]:
    """``path`` itself when it is an ``asymflux analyze`` output (it holds particles.csv,
    timeseries.csv, ...), else the analyze outputs directly inside it (sorted; hidden
    entries, leftovers of interrupted writes, are never listed); ``[]`` if none."""
    from .._atomic import clean_leftovers
    from ._pipeline import is_analyze_output

    path = Path(path)
    if not path.is_dir():
        return []
    if is_analyze_output(path):
        return [path]
    clean_leftovers(path)  # restores a folder a killed writer moved aside
    if is_analyze_output(path):
        return [path]
    return sorted(p for p in path.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and is_analyze_output(p))


def _read_table(folder: Path, stem: str):
    import pandas as pd

    csv, parquet = folder / f"{stem}.csv", folder / f"{stem}.parquet"
    f = csv if csv.is_file() or not parquet.is_file() else parquet
    if not f.is_file():
        return None, f
    try:
        return (pd.read_csv(f) if f.suffix == ".csv" else pd.read_parquet(f)), f
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError,
            OSError, ValueError) as e:
        raise ValueError(f"{f}: not a readable {stem} table ({type(e).__name__}: "
                         f"{' '.join(str(e).split())})") from None


def read_results(folder, *, timeseries=True, require=("classification",)):
    """The tables of an ``asymflux analyze`` output folder.

    Parameters
    ----------
    folder : path-like
        Holds ``particles.csv`` (or ``.parquet``), and ``timeseries.csv`` (or ``.parquet``).
    timeseries : bool, keyword-only
        Also read the time series (None when the folder has none).
    require : tuple of str, keyword-only
        Columns the particle table must have.

    Returns
    -------
    particles : pandas.DataFrame
    timeseries : pandas.DataFrame or None

    Raises
    ------
    ValueError
        No particle table, an unreadable one, or a required column missing (naming the
        file and the column).
    """
    folder = Path(folder)
    particles, f = _read_table(folder, "particles")
    if particles is None:
        raise ValueError(f"{f} does not exist (run `asymflux analyze ... --out {folder}` "
                         "first)")
    for col in require:
        if col not in particles.columns:
            raise ValueError(f"{f} has no column {col!r}")
    ts = _read_table(folder, "timeseries")[0] if timeseries else None
    return particles, ts


def cohort_rows(particles):
    """The rows a cohort counts: one per particle. A movie over several half-cycles has one
    row per particle and half-cycle (column ``half_cycle``): its particles are counted on
    their first charge half-cycle (the paper's criterion is on charge), else on their first
    half-cycle. Rows without a half-cycle (one charge) are all kept."""
    import pandas as pd

    if "half_cycle" not in particles.columns:
        return particles
    hc = pd.to_numeric(particles["half_cycle"], errors="coerce")
    single = particles[hc.isna()]
    multi = particles[hc.notna()].assign(_hc=hc[hc.notna()])
    if multi.empty:
        return particles
    keys = [c for c in ("dataset", "particle_id") if c in multi.columns]
    is_charge = (multi["direction"] == "charge") if "direction" in multi.columns else True
    multi = multi.assign(_order=~is_charge).sort_values(["_order", "_hc"], kind="stable")
    first = multi.drop_duplicates(keys, keep="first").drop(columns=["_hc", "_order"])
    return pd.concat([single, first]).sort_index(kind="stable")
