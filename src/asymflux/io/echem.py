"""Electrochemistry tables: BioLogic ``.mpr`` and CSV readers, capacity, cycle summaries.

Every reader returns a :class:`pandas.DataFrame` with our column names and units:

========================  =====================================================================
column                    meaning
========================  =====================================================================
``time_s``                seconds (float64, non-decreasing)
``voltage_V``             working-electrode potential, V
``current_mA``            current, mA; positive = charging (oxidation of the cathode)
``capacity_mAh_g``        cumulative net charge passed per gram of active material, mAh/g
``charge_mAh``            optional: cumulative net charge passed, mAh (``.mpr`` ``(Q-Qo)``)
``half_cycle``            optional: the cycler's half-cycle counter (int)
``cycle``                 optional: the cycler's cycle counter (int)
========================  =====================================================================

``df.attrs`` carries ``source`` (the file) and, when known, ``active_mass_mg`` and ``start``
(the cycler's start time, ISO 8601).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from asymflux.io._csv import ROUND_TRIP
from asymflux.io._errors import DatasetError

__all__ = [
    "ECHEM_COLUMNS",
    "MPR_COLUMNS",
    "check_echem",
    "cycle_summary",
    "integrate_capacity",
    "label_half_cycles",
    "read_echem",
    "read_echem_csv",
    "read_mpr",
]

#: The columns of an echem table in a dataset folder (``echem.csv``).
ECHEM_COLUMNS = ("time_s", "voltage_V", "current_mA", "capacity_mAh_g")

#: BioLogic column -> (our column, factor to our unit). First match in this order wins.
MPR_COLUMNS: dict[str, tuple[tuple[str, float], ...]] = {
    "time_s": (("time/s", 1.0),),
    "voltage_V": (("Ewe/V", 1.0), ("<Ewe>/V", 1.0)),
    # 'control/V/mA' is the set point: the current (mA) in galvanostatic steps (GCPL) -- the
    # technique such files come from; in potentiostatic steps it would be a voltage.
    "current_mA": (("I/mA", 1.0), ("<I>/mA", 1.0), ("control/mA", 1.0), ("control/V/mA", 1.0)),
    "charge_mAh": (("(Q-Qo)/mA.h", 1.0), ("(Q-Qo)/C", 1.0 / 3.6)),
    "half_cycle": (("half cycle", 1),),
    "cycle": (("cycle number", 1),),
}

_INT_COLUMNS = ("half_cycle", "cycle")


def _mass_g(active_mass_mg, *, where: str) -> float:
    try:
        mass = float(active_mass_mg)
    except (TypeError, ValueError):
        raise DatasetError(
            f"{where}: active_mass_mg must be a positive number of mg, got {active_mass_mg!r}"
        ) from None
    if not np.isfinite(mass) or mass <= 0:
        raise DatasetError(
            f"{where}: active_mass_mg must be a positive number of mg, got {active_mass_mg!r}"
        )
    return mass / 1000.0


def integrate_capacity(time_s, current_mA, *, active_mass_mg: float) -> np.ndarray:
    """Cumulative capacity from current: ``∫ I[mA] dt[h] / mass[g]``, trapezoidal.

    Parameters
    ----------
    time_s : (n,) array_like
        Times, s, non-decreasing.
    current_mA : (n,) array_like
        Current, mA; positive = charging.
    active_mass_mg : float, keyword-only
        Mass of active material, mg.

    Returns
    -------
    capacity_mAh_g : (n,) ndarray of float64
        Net charge passed since the first sample, mAh/g (0 at the first sample).
    """
    t = np.asarray(time_s, dtype=np.float64)
    i = np.asarray(current_mA, dtype=np.float64)
    if t.shape != i.shape or t.ndim != 1:
        raise DatasetError(f"time_s {t.shape} and current_mA {i.shape} must be 1-D of equal length")
    mass_g = _mass_g(active_mass_mg, where="integrate_capacity")
    out = np.zeros_like(t)
    if t.size > 1:
        out[1:] = np.cumsum(0.5 * (i[1:] + i[:-1]) * np.diff(t)) / 3600.0 / mass_g
    return out


def check_echem(df: pd.DataFrame, *, source="echem", required=("time_s",)) -> pd.DataFrame:
    """Raise :class:`DatasetError` unless ``df`` is a usable echem table; return it.

    Checks that the ``required`` columns exist, that numeric columns are numeric, and that
    ``time_s`` is finite and never goes backwards.
    """
    if not isinstance(df, pd.DataFrame):
        raise DatasetError(
            f"{source}: the echem table must be a pandas DataFrame, got {type(df).__name__}"
        )
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(
            f"{source}: echem table lacks column(s) {missing}; it has {list(df.columns)} "
            f"(expected {list(ECHEM_COLUMNS)})"
        )
    for c in ECHEM_COLUMNS + ("charge_mAh",):
        if c in df.columns and not pd.api.types.is_numeric_dtype(df[c]):
            raise DatasetError(
                f"{source}: echem column {c!r} must be numeric, got dtype {df[c].dtype}"
            )
    if "time_s" in df.columns:
        t = df["time_s"].to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(t)):
            raise DatasetError(f"{source}: echem time_s has NaN or infinite values")
        back = np.flatnonzero(np.diff(t) < 0)
        if back.size:
            k = int(back[0])
            raise DatasetError(
                f"{source}: echem time goes backwards at row {k + 1} "
                f"({t[k]:g} s -> {t[k + 1]:g} s); time_s must be non-decreasing"
            )
    return df


def _finish(df: pd.DataFrame, *, source: str, active_mass_mg, required) -> pd.DataFrame:
    """Add capacity_mAh_g when possible, check, set attrs."""
    if active_mass_mg is not None:
        mass_g = _mass_g(active_mass_mg, where=source)
        if "capacity_mAh_g" not in df.columns:
            if "charge_mAh" in df.columns:
                q = df["charge_mAh"].to_numpy(dtype=np.float64)
                df["capacity_mAh_g"] = (q - q[0]) / mass_g if q.size else q
            elif "current_mA" in df.columns and "time_s" in df.columns:
                df["capacity_mAh_g"] = integrate_capacity(
                    df["time_s"], df["current_mA"], active_mass_mg=active_mass_mg
                )
        df.attrs["active_mass_mg"] = float(active_mass_mg)
    df.attrs["source"] = source
    return check_echem(df, source=source, required=required)


def read_mpr(
    path,
    *,
    active_mass_mg: float | None = None,
    required: Sequence[str] = ("time_s", "voltage_V", "current_mA"),
) -> pd.DataFrame:
    """Read a BioLogic EC-Lab ``.mpr`` file (through ``galvani``).

    Parameters
    ----------
    path : str or Path
        The ``.mpr`` file.
    active_mass_mg : float, optional, keyword-only
        Mass of active material, mg. When given, ``capacity_mAh_g`` is added: from
        ``(Q-Qo)`` when the file has it, else integrated from the current.
    required : sequence of str, keyword-only
        Our columns that must be found (see :data:`MPR_COLUMNS` for the BioLogic names
        mapped to each). Pass ``("time_s", "voltage_V")`` for open-circuit files.

    Returns
    -------
    echem : DataFrame, n rows (one per cycler record)
        ``time_s, voltage_V, current_mA`` (+ ``charge_mAh``, ``capacity_mAh_g``,
        ``half_cycle``, ``cycle`` when available), float64 / int64. ``attrs``: ``source``,
        ``start`` (ISO 8601, when the file has it), ``active_mass_mg``.

    Raises
    ------
    DatasetError
        The file cannot be parsed (naming the file and galvani's reason, e.g. an unknown
        column ID), or a required column has no known BioLogic counterpart (naming the
        file, the column and the columns the file does have).
    """
    from galvani import BioLogic

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such .mpr file")
    try:
        mpr = BioLogic.MPRfile(str(path))
    except NotImplementedError as e:  # galvani: unknown column ID / module version
        raise DatasetError(f"{path}: galvani cannot read this .mpr file: {e}") from e
    except Exception as e:  # noqa: BLE001 - truncated / not an .mpr: name the file
        raise DatasetError(
            f"{path}: not a readable BioLogic .mpr file ({type(e).__name__}: {e})"
        ) from e
    data = mpr.data
    names = data.dtype.names or ()
    out = {}
    for ours, candidates in MPR_COLUMNS.items():
        for theirs, factor in candidates:
            if theirs in names:
                col = np.asarray(data[theirs])
                if ours in _INT_COLUMNS:
                    out[ours] = col.astype(np.int64)
                else:
                    out[ours] = (
                        col.astype(np.float64) * factor if factor != 1.0 else col.astype(np.float64)
                    )
                break
    missing = [c for c in required if c not in out]
    if missing:
        wanted = "; ".join(f"{c}: one of {[n for n, _ in MPR_COLUMNS.get(c, ())]}" for c in missing)
        raise DatasetError(
            f"{path}: cannot map required column(s) {missing} from this .mpr file "
            f"(looked for {wanted}); the file has columns {list(names)}"
        )
    df = pd.DataFrame(out)
    start = getattr(mpr, "timestamp", None) or getattr(mpr, "startdate", None)
    if start is not None:
        df.attrs["start"] = start.isoformat()
    return _finish(df, source=str(path), active_mass_mg=active_mass_mg, required=tuple(required))


def read_echem_csv(
    path,
    *,
    columns: Mapping[str, str] | None = None,
    active_mass_mg: float | None = None,
    required: Sequence[str] = ("time_s", "voltage_V", "current_mA"),
    **read_csv_kwargs,
) -> pd.DataFrame:
    """Read an electrochemistry CSV with our column names, or a given mapping.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    columns : mapping, optional, keyword-only
        ``{file column: our column}``, e.g. ``{"Time (s)": "time_s", "Ewe (V)": "voltage_V",
        "I (mA)": "current_mA"}``. Without it the file must use our names.
    active_mass_mg : float, optional, keyword-only
        Active mass, mg: ``capacity_mAh_g`` is integrated from the current when absent.
    required : sequence of str, keyword-only
        Our columns that must be present after the mapping.
    **read_csv_kwargs
        Passed to :func:`pandas.read_csv` (e.g. ``sep=";"``).

    Returns
    -------
    echem : DataFrame
        Columns renamed to ours (unmapped columns kept as they are).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such CSV file")
    read_csv_kwargs = {**ROUND_TRIP, **read_csv_kwargs}
    try:
        df = pd.read_csv(path, **read_csv_kwargs)
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"{path}: not a readable CSV file ({type(e).__name__}: {e})") from e
    if columns:
        absent = [c for c in columns if c not in df.columns]
        if absent:
            raise DatasetError(
                f"{path}: column(s) {absent} given in columns= are not in the file; "
                f"it has {list(df.columns)}"
            )
        df = df.rename(columns=dict(columns))
    return _finish(df, source=str(path), active_mass_mg=active_mass_mg, required=tuple(required))


def read_echem(path, **kwargs) -> pd.DataFrame:
    """Read ``.mpr`` or ``.csv`` by extension (see :func:`read_mpr`, :func:`read_echem_csv`)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".mpr":
        return read_mpr(path, **kwargs)
    if suffix in (".csv", ".txt", ".tsv"):
        return read_echem_csv(path, **kwargs)
    raise DatasetError(
        f"{path}: unknown electrochemistry file type {suffix!r} (expected .mpr or .csv)"
    )


def _tolerance(i: np.ndarray, current_tol_mA) -> float:
    if current_tol_mA is not None:
        return float(current_tol_mA)
    finite = np.isfinite(i)
    return 1e-3 * float(np.max(np.abs(i[finite]))) if finite.any() else 0.0


def _filled_sign(current_mA, current_tol_mA):
    """Sign of the current (+1/-1), rests taking the sign before them (leading rests: after)."""
    i = np.asarray(current_mA, dtype=np.float64)
    current_tol_mA = _tolerance(i, current_tol_mA)
    sign = np.nan_to_num(np.where(np.abs(i) > current_tol_mA, np.sign(i), 0.0))
    nz = np.flatnonzero(sign)
    if nz.size == 0:
        return np.zeros(i.size)
    idx = np.maximum.accumulate(np.where(sign != 0, np.arange(i.size), 0))
    filled = sign[idx]
    filled[: nz[0]] = sign[nz[0]]
    return filled


def label_half_cycles(current_mA, *, current_tol_mA: float | None = None) -> np.ndarray:
    """Number half-cycles by the sign of the current.

    A half-cycle is a run of samples whose current has one sign; samples with
    ``|I| <= current_tol_mA`` (rests, open circuit) belong to the half-cycle before them
    (leading rests to the first one).

    Parameters
    ----------
    current_mA : (n,) array_like
        Current, mA.
    current_tol_mA : float, optional, keyword-only
        Currents at or below this magnitude count as zero. Default: 1e-3 of the largest
        magnitude.

    Returns
    -------
    half_cycle : (n,) ndarray of int64
        0, 1, 2, ... ; all zeros when the current never flows.
    """
    filled = _filled_sign(current_mA, current_tol_mA)
    if filled.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.cumsum(np.r_[0, (np.diff(filled) != 0).astype(np.int64)])


def cycle_summary(
    echem: pd.DataFrame,
    *,
    active_mass_mg: float | None = None,
    current_tol_mA: float | None = None,
    first: str = "charge",
) -> pd.DataFrame:
    """Per-cycle charge and discharge capacity of a cycler table.

    Half-cycles are found from the sign of the current (:func:`label_half_cycles`;
    charge = positive current). A new cycle starts with every ``first`` half-cycle
    (cathode convention: charge, then discharge); whatever comes before the first one
    (e.g. an initial discharge) is cycle 0. Capacities integrate the positive and negative
    parts of the current separately (trapezoidal), so rests add nothing.

    Parameters
    ----------
    echem : DataFrame
        ``time_s``, ``current_mA`` (``voltage_V`` optional), e.g. from :func:`read_mpr`.
    active_mass_mg : float, optional, keyword-only
        Active mass, mg; defaults to ``echem.attrs["active_mass_mg"]``.
    current_tol_mA : float, optional, keyword-only
        See :func:`label_half_cycles`.
    first : {"charge", "discharge"}, keyword-only
        The half-cycle that opens a cycle: ``"discharge"`` for anodes vs Li.

    Returns
    -------
    summary : DataFrame, one row per cycle
        ``cycle`` (0 only for a leading partial cycle, then 1, 2, ...), ``start_time_s``, ``end_time_s``, ``charge_capacity_mAh_g``,
        ``discharge_capacity_mAh_g`` (both >= 0), ``coulombic_efficiency`` (discharge /
        charge; NaN when nothing was charged), ``charge_rate_mA_g`` and
        ``discharge_rate_mA_g`` (mean current magnitude of the samples charging /
        discharging, above the tolerance, per gram; NaN if none), ``max_voltage_V``, ``min_voltage_V`` (when voltage is given).
    """
    source = echem.attrs.get("source", "echem") if isinstance(echem, pd.DataFrame) else "echem"
    check_echem(echem, source=source, required=("time_s", "current_mA"))
    if active_mass_mg is None:
        active_mass_mg = echem.attrs.get("active_mass_mg")
    if active_mass_mg is None:
        raise DatasetError(
            f"{source}: cycle_summary needs the active mass: pass active_mass_mg=... (mg)"
        )
    mass_g = _mass_g(active_mass_mg, where=source)
    t = echem["time_s"].to_numpy(np.float64)
    i = echem["current_mA"].to_numpy(np.float64)
    v = echem["voltage_V"].to_numpy(np.float64) if "voltage_V" in echem.columns else None
    if first not in ("charge", "discharge"):
        raise DatasetError(f"cycle_summary: first must be 'charge' or 'discharge', got {first!r}")
    opening = 1.0 if first == "charge" else -1.0
    filled = _filled_sign(i, current_tol_mA)
    starts = (filled == opening) & (np.r_[np.nan, filled[:-1]] != opening)
    cycle = np.cumsum(starts).astype(np.int64)
    # per-interval charge (mAh), split by sign of the mean current; assigned to the later sample
    dt = np.diff(t)
    imid = 0.5 * (i[1:] + i[:-1])
    q = imid * dt / 3600.0
    q_pos = np.r_[0.0, np.where(q > 0, q, 0.0)]
    q_neg = np.r_[0.0, np.where(q < 0, -q, 0.0)]
    tol = _tolerance(i, current_tol_mA)
    i_pos = np.where(i > tol, i, np.nan)
    i_neg = np.where(i < -tol, -i, np.nan)
    frame = pd.DataFrame(
        {"cycle": cycle, "t": t, "q_pos": q_pos, "q_neg": q_neg, "i_pos": i_pos, "i_neg": i_neg}
    )
    if v is not None:
        frame["v"] = v
    g = frame.groupby("cycle", sort=True)
    agg = g.agg(
        start_time_s=("t", "min"),
        end_time_s=("t", "max"),
        q_pos=("q_pos", "sum"),
        q_neg=("q_neg", "sum"),
        i_pos=("i_pos", "mean"),
        i_neg=("i_neg", "mean"),
        **({"max_voltage_V": ("v", "max"), "min_voltage_V": ("v", "min")} if v is not None else {}),
    )
    out = pd.DataFrame({"cycle": agg.index.to_numpy(np.int64)})
    out["start_time_s"] = agg["start_time_s"].to_numpy()
    out["end_time_s"] = agg["end_time_s"].to_numpy()
    out["charge_capacity_mAh_g"] = agg["q_pos"].to_numpy() / mass_g
    out["discharge_capacity_mAh_g"] = agg["q_neg"].to_numpy() / mass_g
    with np.errstate(divide="ignore", invalid="ignore"):
        ch = out["charge_capacity_mAh_g"].to_numpy()
        out["coulombic_efficiency"] = np.where(ch > 0, out["discharge_capacity_mAh_g"] / ch, np.nan)
        out["charge_rate_mA_g"] = agg["i_pos"].to_numpy() / mass_g
        out["discharge_rate_mA_g"] = agg["i_neg"].to_numpy() / mass_g
    if v is not None:
        out["max_voltage_V"] = agg["max_voltage_V"].to_numpy()
        out["min_voltage_V"] = agg["min_voltage_V"].to_numpy()
    out.attrs["active_mass_mg"] = float(active_mass_mg)
    out.attrs["source"] = source
    return out
