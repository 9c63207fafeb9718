"""Electrochemistry tables: every cycler brand in, one table out; capacity; cycle summaries.

:func:`read_echem` reads a cycler file of any supported brand (chosen by the file's
content, not only its suffix: ``docs/formats.md`` lists them and the library that reads
each) and returns a :class:`pandas.DataFrame` with the same columns for every brand:

========================  =====================================================================
column                    meaning
========================  =====================================================================
``time_s``                seconds, as the file counts them (float64, non-decreasing)
``voltage_V``             working-electrode potential, V
``current_mA``            current, mA; positive = charging (oxidation of the cathode)
``charge_mAh``            cumulative net charge passed since the first record, mAh (0 there),
                          continuous through the cycler's counter resets and loops
``capacity_mAh_g``        ``charge_mAh`` per gram of active material (when the mass is known)
``step``                  the cycler's step counter (int64), when the file has one
``cycle``                 the cycler's cycle counter (int64), when the file has one
``half_cycle``            the cycler's half-cycle counter (int64), when the file has one
========================  =====================================================================

Current and charge come from what the cycler measured, never from a set point:
the charge from the file's own charge counters (BioLogic ``dq``/``(Q-Qo)``, Neware and
Arbin charge/discharge capacities, Landt capacity), with their resets at loops and steps
undone; the current from the file's measured current, else from the charge increments
(d(charge)/dt), else zero for an open-circuit record. Only when a file has no charge
counter is the current integrated, and then never across a step edge or a time gap.

``df.attrs`` carries ``source`` (the file), ``format`` (e.g. ``"BioLogic .mpr"``),
``reader`` (the library and version that parsed it), ``technique`` when the file says,
``current_from`` and ``charge_from`` (the file's columns they were taken from),
``charge_columns`` (BioLogic: which charge column was read as increments and which as a
cumulative counter, judged by content, and against what),
``warnings`` (a list of what looked wrong: time gaps, NaN cells, ...) and, when known,
``start`` (the cycler's start time, ISO 8601) and ``active_mass_mg``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from asymflux.io._counters import (
    _tolerance,
    charge_increments,
    counter_increments,
)
from asymflux.io._csv import ROUND_TRIP
from asymflux.io._errors import DatasetError

__all__ = [
    "ECHEM_COLUMNS",
    "MPR_COLUMNS",
    "EchemWarning",
    "charge_increments",
    "check_echem",
    "counter_increments",
    "cycle_summary",
    "echem_format",
    "integrate_capacity",
    "label_half_cycles",
    "read_echem",
    "read_echem_csv",
    "read_mpr",
    "read_mpt",
]

#: The columns of an echem table in a dataset folder (``echem.csv``).
ECHEM_COLUMNS = ("time_s", "voltage_V", "current_mA", "capacity_mAh_g")

#: Our integer columns.
INT_COLUMNS = ("step", "cycle", "half_cycle")

# BioLogic column names live with the BioLogic reader; re-exported here for users.
from asymflux.io._biologic import MPR_COLUMNS  # noqa: E402


class EchemWarning(UserWarning):
    """Something in a cycler file looked wrong but could be read (also in ``attrs["warnings"]``)."""


def _mass_g(active_mass_mg, *, where: str) -> float:
    if isinstance(active_mass_mg, bool):
        raise DatasetError(
            f"{where}: active_mass_mg must be a positive number of mg, got {active_mass_mg!r}"
        )
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


# ---------------------------------------------------------------------------- charge


def integrate_capacity(
    time_s, current_mA, *, active_mass_mg: float, step=None, max_gap_s: float | None = None
) -> np.ndarray:
    """Cumulative capacity from the sampled current alone, mAh/g (see :func:`charge_increments`).

    Parameters
    ----------
    time_s : (n,) array_like
        Times, s, non-decreasing.
    current_mA : (n,) array_like
        Current, mA; positive = charging.
    active_mass_mg : float, keyword-only
        Mass of active material, mg.
    step : (n,) array_like, optional, keyword-only
        Step labels (step edges are not integrated across).
    max_gap_s : float, optional, keyword-only
        Longest interval integrated, s.

    Returns
    -------
    capacity_mAh_g : (n,) ndarray of float64
        Net charge passed since the first sample, mAh/g (0 at the first sample).
    """
    mass_g = _mass_g(active_mass_mg, where="integrate_capacity")
    inc = charge_increments(time_s, current_mA, step=step, max_gap_s=max_gap_s)
    return np.cumsum(inc) / mass_g


# ---------------------------------------------------------------------------- checks


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


def _warn(df: pd.DataFrame, problems: Sequence[str], *, source: str) -> None:
    if not problems:
        return
    df.attrs.setdefault("warnings", [])
    for p in problems:
        if p not in df.attrs["warnings"]:
            df.attrs["warnings"].append(p)
            warnings.warn(f"{source}: {p}", EchemWarning, stacklevel=4)


def _finish(df: pd.DataFrame, *, source: str, active_mass_mg, required) -> pd.DataFrame:
    """Check, add ``charge_mAh`` (from the current if needed) and ``capacity_mAh_g``, set attrs."""
    df.attrs["source"] = source
    if len(df) == 0:
        raise DatasetError(f"{source}: the cycler file holds no records (a header and no data)")
    check_echem(df, source=source, required=required)
    problems: list[str] = []
    if "charge_mAh" not in df.columns and "capacity_mAh_g" not in df.columns:
        if "current_mA" in df.columns and "time_s" in df.columns and len(df):
            if not pd.api.types.is_numeric_dtype(df["current_mA"]):
                raise DatasetError(
                    f"{source}: echem column 'current_mA' must be numeric, got dtype "
                    f"{df['current_mA'].dtype}"
                )
            step = df["step"].to_numpy() if "step" in df.columns else None
            inc = charge_increments(
                df["time_s"], df["current_mA"], step=step, problems=problems
            )
            df["charge_mAh"] = np.cumsum(inc)
            df.attrs.setdefault(
                "charge_from", "current_mA integrated (trapezoid within steps, no time gaps)"
            )
    for c in ("current_mA", "voltage_V"):
        if c in df.columns and pd.api.types.is_numeric_dtype(df[c]):
            n_bad = int((~np.isfinite(df[c].to_numpy(np.float64))).sum())
            if n_bad:
                problems.append(f"{n_bad} NaN or infinite value(s) in {c}")
    if active_mass_mg is not None:
        mass_g = _mass_g(active_mass_mg, where=source)
        if "capacity_mAh_g" not in df.columns and "charge_mAh" in df.columns:
            q = df["charge_mAh"].to_numpy(dtype=np.float64)
            df["capacity_mAh_g"] = (q - q[0]) / mass_g if q.size else q
        df.attrs["active_mass_mg"] = float(active_mass_mg)
    df.attrs.setdefault("warnings", [])
    _warn(df, problems, source=source)
    return df


def _table(columns: Mapping[str, np.ndarray], attrs: Mapping, *, source: str,
           active_mass_mg, required) -> pd.DataFrame:
    """Build our table from arrays (float64, ints for step/cycle/half_cycle), then finish it."""
    out = {}
    for name in ("time_s", "voltage_V", "current_mA", "charge_mAh", *INT_COLUMNS):
        if name in columns and columns[name] is not None:
            col = np.asarray(columns[name])
            if name in INT_COLUMNS:
                out[name] = col.astype(np.int64)
            else:
                out[name] = col.astype(np.float64)
    df = pd.DataFrame(out)
    df.attrs.update({k: v for k, v in attrs.items() if v is not None and k != "warnings"})
    early = list(attrs.get("warnings") or [])
    if "charge_mAh" in df.columns and len(df):
        q = df["charge_mAh"].to_numpy()
        df["charge_mAh"] = q - q[0]
    df = _finish(df, source=source, active_mass_mg=active_mass_mg, required=tuple(required))
    _warn(df, early, source=source)
    return df


# ---------------------------------------------------------------------------- readers


def read_mpr(path, *, active_mass_mg: float | None = None,
             required: Sequence[str] = ("time_s", "voltage_V", "current_mA")) -> pd.DataFrame:
    """Read a BioLogic EC-Lab ``.mpr`` file (any EC-Lab version, through ``galvani``).

    Parameters
    ----------
    path : str or Path
        The ``.mpr`` file.
    active_mass_mg : float, optional, keyword-only
        Mass of active material, mg; adds ``capacity_mAh_g``.
    required : sequence of str, keyword-only
        Our columns that must be found. A record without current or charge columns
        reads with zero current when EC-Lab's mode flags say rest on every record (or,
        without mode flags, the technique is OCV/WAIT); it is refused otherwise.

    Returns
    -------
    echem : DataFrame, n rows (one per cycler record; impedance rows of a modulo-bat
        sequence dropped, with a warning)
        See the module docstring. ``current_mA`` is the file's measured ``I/mA`` when it
        has one, else the charge increment per interval (never the ``control/V/mA`` set
        point, which holds a voltage during constant-voltage holds); ``charge_mAh`` from
        the charge columns, each read as increments or as a cumulative counter by its
        content (``attrs["charge_columns"]``; ``docs/formats.md``).

    Raises
    ------
    DatasetError
        Not a readable ``.mpr``; an impedance file (PEIS/GEIS: one row per frequency,
        not a time series), naming the technique; a required column that has no
        counterpart in the file.
    """
    from asymflux.io._biologic import read_mpr_columns

    columns, attrs = read_mpr_columns(path)
    _require(columns, attrs, required, path=path)
    return _table(columns, attrs, source=str(path), active_mass_mg=active_mass_mg,
                  required=required)


def read_mpt(path, *, active_mass_mg: float | None = None,
             required: Sequence[str] = ("time_s", "voltage_V", "current_mA")) -> pd.DataFrame:
    """Read EC-Lab's text export ``.mpt`` (``EC-Lab ASCII FILE``), as :func:`read_mpr`.

    Decimal commas (EC-Lab on a European locale) and the Windows-1252 text encoding are
    handled; the columns are the same as in the ``.mpr`` the file was exported from.
    """
    from asymflux.io._biologic import read_mpt_columns

    columns, attrs = read_mpt_columns(path)
    _require(columns, attrs, required, path=path)
    return _table(columns, attrs, source=str(path), active_mass_mg=active_mass_mg,
                  required=required)


def _require(columns, attrs, required, *, path):
    missing = [c for c in required if columns.get(c) is None]
    no_current = attrs.pop("_no_current", None)
    if no_current and "current_mA" in missing:
        raise DatasetError(
            f"{path}: cannot read this {attrs.get('format', 'cycler')} file as a cycler "
            f"record: {no_current}"
        )
    if missing:
        have = attrs.pop("_file_columns", [])
        wanted = attrs.pop("_looked_for", {})
        detail = "; ".join(f"{c}: one of {wanted.get(c, [])}" for c in missing)
        raise DatasetError(
            f"{path}: cannot find {missing} in this {attrs.get('format', 'cycler')} file "
            f"(looked for {detail}); the file has columns {list(have)}"
        )
    attrs.pop("_file_columns", None)
    attrs.pop("_looked_for", None)


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
        Active mass, mg: ``capacity_mAh_g`` is added (from ``charge_mAh``, else from the
        current, integrated within steps and never across a time gap).
    required : sequence of str, keyword-only
        Our columns that must be present after the mapping.
    **read_csv_kwargs
        Passed to :func:`pandas.read_csv` (e.g. ``sep=";"``, ``decimal=","``).

    Returns
    -------
    echem : DataFrame
        Columns renamed to ours (unmapped columns kept as they are), ``charge_mAh`` added.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such CSV file")
    df = _read_table(path, kind="csv", **read_csv_kwargs)
    return _echem_from_table(df, path=path, columns=columns, active_mass_mg=active_mass_mg,
                             required=required)


def _read_table(path: Path, *, kind: str, **read_csv_kwargs) -> pd.DataFrame:
    """The table in a CSV (``kind="csv"``), gzip-compressed CSV or Parquet file."""
    if kind == "parquet":
        from asymflux.io._tables import read_parquet

        if read_csv_kwargs:
            raise DatasetError(f"{path}: options {sorted(read_csv_kwargs)} only apply to text "
                               "(CSV) files; this is a Parquet table")
        df = read_parquet(path)
    else:
        layout = {**_text_layout(path, kind, read_csv_kwargs), **read_csv_kwargs}
        read_csv_kwargs = {**ROUND_TRIP, **layout}
        if kind == "csv-gzip":
            read_csv_kwargs.setdefault("compression", "gzip")
        try:
            df = pd.read_csv(path, **read_csv_kwargs)
        except Exception as e:  # noqa: BLE001
            what = "gzip-compressed CSV" if kind == "csv-gzip" else "CSV"
            raise DatasetError(f"{path}: not a readable {what} file ({type(e).__name__}: {e})") \
                from e
    if kind != "parquet":
        df.attrs["_layout"] = {k: v for k, v in layout.items() if k in ("sep", "decimal")}
    if df.empty:
        what = {"csv": "CSV file", "csv-gzip": "gzip-compressed CSV", "parquet": "Parquet table"}
        raise DatasetError(f"{path}: the {what[kind]} holds no records (a header and no data)")
    return df


_DECIMAL_COMMA_FIELD = re.compile(r"^\s*[-+]?\d+,\d+([eE][-+]?\d+)?\s*$")
_DECIMAL_POINT_FIELD = re.compile(r"^\s*[-+]?\d*\.\d+([eE][-+]?\d+)?\s*$")
_THOUSANDS_FIELD = re.compile(r"^\s*[-+]?\d{1,3}(,\d{3})+\s*$")


def _text_layout(path: Path, kind: str, given: Mapping) -> dict:
    """Encoding, separator and decimal mark of a text table, unless the caller gave them.

    UTF-16 (by its byte-order mark); the separator among ``,``, ``;`` and tab by
    :class:`csv.Sniffer` on the first lines; a decimal comma when the separator is not a
    comma and the first data lines hold numbers such as ``3,75``.
    """
    import csv
    import gzip

    out: dict = {}
    opener = gzip.open if kind == "csv-gzip" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return out
    encoding = given.get("encoding")
    if encoding is None and head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = out["encoding"] = "utf-16"
    text = head.decode(encoding or "utf-8", errors="replace")
    lines = text.splitlines()
    if len(head) == 65536:
        lines = lines[:-1]  # whole lines only
    lines = [ln for ln in lines if ln.strip()]
    if "sep" not in given and "delimiter" not in given and len(lines) >= 2:
        try:
            sep = csv.Sniffer().sniff("\n".join(lines[:20]), delimiters=",;\t").delimiter
        except csv.Error:
            sep = ","
        if sep != ",":
            out["sep"] = sep
        if sep != "," and "decimal" not in given:
            fields = [f.strip().strip('"') for ln in lines[1:] for f in ln.split(sep)]
            commas = [f for f in fields if _DECIMAL_COMMA_FIELD.match(f)]
            # a decimal comma only when no number has a decimal point and the commas do
            # not all group thousands (1,250)
            if (commas and not any(_DECIMAL_POINT_FIELD.match(f) for f in fields)
                    and not all(_THOUSANDS_FIELD.match(f) for f in commas)):
                out["decimal"] = ","
    return out


def _echem_from_table(df: pd.DataFrame, *, path: Path, columns, active_mass_mg, required):
    """Our echem table from a read table: our names, a ``columns=`` mapping, or a known dialect."""
    layout = df.attrs.pop("_layout", {})
    if not columns and "time_s" not in df.columns:
        from asymflux.io._tables import dialect_columns, match_dialect, refuse_near_dialect

        found = match_dialect(df.columns)
        if found is not None:
            cols, attrs = dialect_columns(df, *found, path=path)
            return _table(cols, attrs, source=str(path), active_mass_mg=active_mass_mg,
                          required=required)
        refuse_near_dialect(df.columns, path=path)
    if columns:
        absent = [c for c in columns if c not in df.columns]
        if absent:
            raise DatasetError(
                f"{path}: column(s) {absent} given in columns= are not in the file; "
                f"it has {list(df.columns)}"
            )
        df = df.rename(columns=dict(columns))
    for c in ("time_s", "voltage_V", "current_mA", "charge_mAh", "capacity_mAh_g"):
        if c in df.columns and not pd.api.types.is_numeric_dtype(df[c]):
            col = df[c]
            if pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_timedelta64_dtype(
                    col) or pd.api.types.is_bool_dtype(col):
                raise DatasetError(f"{path}: column {c!r} holds {col.dtype} values where "
                                   "numbers are expected")
            from asymflux.io._tables import first_non_number

            k, sample = first_non_number(col, decimal=layout.get("decimal", "."))[0] or (0, None)
            read_as = (f"; read with separator {layout.get('sep', ',')!r} and decimal mark "
                       f"{layout.get('decimal', '.')!r}")
            hint = (" (pass decimal=',' and sep=';' for decimal commas, or sep=/decimal= "
                    "to say the layout)"
                    if isinstance(sample, str) and "," in sample else "")
            raise DatasetError(
                f"{path}: column {c!r} must hold numbers, found {sample!r} at data row "
                f"{k + 1}{read_as}{hint}"
            )
    df.attrs["format"] = "CSV"
    df.attrs["reader"] = f"pandas {pd.__version__}"
    if "current_mA" in df.columns:
        theirs = next((k for k, v in (columns or {}).items() if v == "current_mA"), "current_mA")
        df.attrs["current_from"] = theirs
    return _finish(df, source=str(path), active_mass_mg=active_mass_mg, required=tuple(required))


def echem_format(path) -> str:
    """What kind of cycler file ``path`` is, from its first bytes (not its suffix).

    Returns
    -------
    kind : str
        One of ``"biologic-mpr"``, ``"biologic-mpt"``, ``"neware-nda"``, ``"neware-ndax"``,
        ``"arbin-res"``, ``"excel"`` (Arbin, Neware or Landt/Lanhe export), ``"ivium-txt"``,
        ``"maccor-txt"``, ``"gamry-dta"`` (Gamry's EXPLAIN text layout), ``"csv"`` (a text
        table: our columns, a ``columns=`` mapping, or a known dialect such as the Battery
        Data Format or an Arbin CSV export),
        ``"csv-gzip"`` (the same, gzip-compressed, e.g. ``.bdf.gz``), ``"parquet"``
        (e.g. ``.bdf.parquet``).

    Raises
    ------
    DatasetError
        Not a file, empty, or a kind of file that holds no cycler record (naming it).
    """
    from asymflux.io._sniff import sniff_echem

    return sniff_echem(Path(path))


def read_echem(path, *, active_mass_mg: float | None = None,
               required: Sequence[str] = ("time_s", "voltage_V", "current_mA"),
               **kwargs) -> pd.DataFrame:
    """Read a cycler file of any supported brand into one table (see the module docstring).

    The reader is chosen from the file's content (:func:`echem_format`): BioLogic
    ``.mpr`` (galvani) and ``.mpt`` (EC-Lab text export); Gamry ``.DTA`` (its EXPLAIN
    layout, read by asymflux); Neware ``.nda``/``.ndax``,
    Arbin ``.res`` (needs mdbtools), Arbin/Neware/Landt Excel exports, Ivium and Maccor
    text exports (through navani); anything else is read as a CSV with our column names
    (or ``columns=`` mapping, and any :func:`pandas.read_csv` option).

    Parameters
    ----------
    path : str or Path
        The cycler file.
    active_mass_mg : float, optional, keyword-only
        Active mass, mg: adds ``capacity_mAh_g``.
    required : sequence of str, keyword-only
        Our columns that must be found.
    **kwargs
        CSV only: ``columns=`` and :func:`pandas.read_csv` options.

    Returns
    -------
    echem : DataFrame
        ``time_s, voltage_V, current_mA, charge_mAh`` (+ ``capacity_mAh_g``, ``step``,
        ``cycle``, ``half_cycle``), whatever the brand.
    """
    path = Path(path)
    if active_mass_mg is not None:
        _mass_g(active_mass_mg, where=str(path))
    kind = echem_format(path)
    if kind not in ("csv", "csv-gzip", "parquet") and kwargs:
        raise DatasetError(
            f"{path}: options {sorted(kwargs)} only apply to CSV files; this is a {kind} file"
        )
    if kind == "biologic-mpr":
        return read_mpr(path, active_mass_mg=active_mass_mg, required=required)
    if kind == "biologic-mpt":
        return read_mpt(path, active_mass_mg=active_mass_mg, required=required)
    if kind == "gamry-dta":
        from asymflux.io._gamry import read_gamry_columns

        columns, attrs = read_gamry_columns(path)
        _require(columns, attrs, required, path=path)
        return _table(columns, attrs, source=str(path), active_mass_mg=active_mass_mg,
                      required=required)
    if kind == "csv":
        return read_echem_csv(path, active_mass_mg=active_mass_mg, required=required, **kwargs)
    if kind in ("csv-gzip", "parquet"):
        columns = kwargs.pop("columns", None)
        df = _read_table(path, kind=kind, **kwargs)
        return _echem_from_table(df, path=path, columns=columns, active_mass_mg=active_mass_mg,
                                 required=required)
    from asymflux.io._navani import read_navani_columns

    try:
        columns, attrs = read_navani_columns(path, kind)
    except DatasetError as navani_error:
        if kind != "excel":
            raise
        # not an Arbin, Neware or Landt workbook: a sheet with our column names or those
        # of a known table format (e.g. the Battery Data Format) is read as such
        return _excel_table(path, navani_error=navani_error, active_mass_mg=active_mass_mg,
                            required=required)
    _require(columns, attrs, required, path=path)
    return _table(columns, attrs, source=str(path), active_mass_mg=active_mass_mg,
                  required=required)


def _excel_table(path: Path, *, navani_error: DatasetError, active_mass_mg, required):
    """A workbook navani does not know, if its sheets hold a table we know.

    Every sheet with our column names or a known layout is read; several such sheets with
    the same columns are one table split across sheets (joined in order, and said so).
    """
    from asymflux.io._tables import match_dialect, refuse_near_dialect

    try:
        sheets = pd.read_excel(path, sheet_name=None, engine="calamine")
    except Exception:  # noqa: BLE001 - unreadable: navani's reason is the one to give
        raise navani_error from None
    known = {name: sheet for name, sheet in sheets.items()
             if "time_s" in sheet.columns or match_dialect(sheet.columns) is not None}
    if not known:
        for sheet in sheets.values():
            refuse_near_dialect(sheet.columns, path=path)
        seen = "; ".join(f"{name!r}: {[str(c) for c in sheet.columns][:12]}"
                         for name, sheet in list(sheets.items())[:5])
        raise DatasetError(
            f"{navani_error}; nor does any sheet hold a table asymflux knows (our columns "
            "time_s, voltage_V, current_mA, or a known format such as the Battery Data "
            f"Format): its sheets have columns {seen}"
        ) from navani_error
    names = list(known)
    first = known[names[0]]
    same = [n for n in names if list(known[n].columns) == list(first.columns)]
    if len(same) != len(names):
        raise DatasetError(
            f"{path}: sheets {names} each hold a cycler table, with different columns; "
            "expected one table (save the one to read as its own file)"
        )
    table = pd.concat([known[n] for n in names], ignore_index=True) if len(names) > 1 \
        else first
    df = _echem_from_table(table, path=path, columns=None, active_mass_mg=active_mass_mg,
                           required=required)
    what = df.attrs.get("format", "CSV")
    what = "asymflux's column names" if what == "CSV" else f"{what} columns"
    sheet = "sheets " if len(names) > 1 else "sheet "
    df.attrs["format"] = f"Excel workbook ({what}; {sheet}{', '.join(map(repr, names))})"
    df.attrs["reader"] = f"pandas {pd.__version__} (calamine)"
    if len(names) > 1:
        _warn(df, [f"one table across {len(names)} sheets {names}, joined in that order"],
              source=str(path))
    return df


# ---------------------------------------------------------------------------- cycles


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


#: Default rule for a real half-cycle (see :func:`cycle_summary`).
MIN_HALF_CYCLE_S = 60.0
MIN_HALF_CYCLE_FRACTION = 0.05


def _runs(values):
    """Starts and ends (exclusive) of the runs of equal values."""
    v = np.asarray(values)
    if v.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
    return starts, np.r_[starts[1:], v.size]


def _segments(t, i, q, *, tol, min_s, min_fraction):
    """Per-record segment labels and kinds for :func:`cycle_summary`.

    Returns ``(segment, kinds, signs)``: ``segment`` (n,) int, ``kinds[k]`` and
    ``signs[k]`` (+1 charge, -1 discharge, 0 else) of segment k, in time order; the
    segments are the real half-cycles, the stretches between them holding current
    (``"pulses"``) and a leading rest (``"rest"``); other rests join the half-cycle
    before them.
    """
    n = t.size
    sign = np.where(i > tol, 1, np.where(i < -tol, -1, 0))
    starts, ends = _runs(sign)
    s_run = sign[starts]
    dur = t[ends - 1] - t[np.maximum(starts - 1, 0)]
    qc = np.add.reduceat(q, starts) if n else np.zeros(0)
    cand = (s_run != 0) & (dur >= min_s) & (np.sign(qc) == s_run)
    real = np.zeros(starts.size, dtype=bool)
    if cand.any():
        ref = float(np.median(np.abs(qc[cand])))
        real = cand & (np.abs(qc) >= min_fraction * ref)
    # merge real runs of one sign (whatever lies between them) into half-cycles
    spans = []  # [first record, last record + 1, sign]
    for k in np.flatnonzero(real):
        if spans and spans[-1][2] == s_run[k]:
            spans[-1][1] = ends[k]
        else:
            spans.append([starts[k], ends[k], int(s_run[k])])
    segment = np.full(n, -1, dtype=np.int64)
    kinds, signs = [], []
    edges = [0] + [x for a, b, _ in spans for x in (a, b)] + [n]
    for j in range(len(spans) + 1):
        g0, g1 = edges[2 * j], edges[2 * j + 1]  # the gap before span j (or after the last)
        if g1 > g0:
            if np.any(sign[g0:g1] != 0):
                kinds.append("pulses")
                signs.append(0)
                segment[g0:g1] = len(kinds) - 1
            elif j == 0:
                kinds.append("rest")
                signs.append(0)
                segment[g0:g1] = len(kinds) - 1
            else:  # a rest after a half-cycle belongs to it
                segment[g0:g1] = segment[g0 - 1]
        if j < len(spans):
            a, b, sg = spans[j]
            kinds.append("half")
            signs.append(sg)
            segment[a:b] = len(kinds) - 1
    return segment, kinds, signs


def cycle_summary(
    echem: pd.DataFrame,
    *,
    active_mass_mg: float | None = None,
    current_tol_mA: float | None = None,
    first: str = "charge",
    min_half_cycle_s: float = MIN_HALF_CYCLE_S,
    min_half_cycle_fraction: float = MIN_HALF_CYCLE_FRACTION,
) -> pd.DataFrame:
    """Per-cycle charge and discharge capacity of a cycler table; rests and pulses apart.

    The rule (also in ``docs/formats.md``): a *run* is a stretch of records whose current
    has one sign (``|I| > current_tol_mA``; charge = positive). A run is a real
    *half-cycle* when it lasts at least ``min_half_cycle_s`` (from the record before its
    first to its last), passes charge of its own sign, and at least
    ``min_half_cycle_fraction`` of the median charge of the runs that last that long.
    Real runs of one sign follow each other into one half-cycle (a GITT or intermittent
    charge, a CC-CV charge), whatever short pulses or rests lie between them. A cycle is
    a ``first`` half-cycle (cathode convention: charge) and the opposite one after it; a
    leading opposite half-cycle is cycle 0. Rests after a half-cycle belong to it; a
    leading rest is a ``"rest"`` row; the records between half-cycles that carry current
    but no real half-cycle (impedance steps, pulse trains, a cycler bouncing between
    limits) are a ``"pulses"`` row. The charge of each interval between records is the
    file's own counter (``charge_mAh`` increments) when the table has it, else the current
    integrated within steps and never across a time gap (:func:`charge_increments`). A
    half-cycle's capacity is the net charge over it (a short opposite pulse within a
    charge takes back what it passed); in ``"pulses"`` rows positive increments add to
    the charge capacity, negative ones to the discharge capacity.

    Parameters
    ----------
    echem : DataFrame
        ``time_s``, ``current_mA`` (``charge_mAh``, ``step``, ``voltage_V`` optional),
        e.g. from :func:`read_echem`.
    active_mass_mg : float, optional, keyword-only
        Active mass, mg; defaults to ``echem.attrs["active_mass_mg"]``.
    current_tol_mA : float, optional, keyword-only
        Currents at or below this magnitude are rest. Default: 1e-3 of the 99th
        percentile of ``|I|`` over the records with a current (a spike does not set it).
    first : {"charge", "discharge"}, keyword-only
        The half-cycle that opens a cycle: ``"discharge"`` for anodes vs Li.
    min_half_cycle_s : float, keyword-only
        Shortest real half-cycle, s (default 60).
    min_half_cycle_fraction : float, keyword-only
        Smallest charge of a real half-cycle, as a fraction of the median run charge
        (default 0.05).

    Returns
    -------
    summary : DataFrame, one row per cycle, leading rest or stretch of pulses, in time order
        ``cycle`` (0 only for a leading partial cycle, then 1, 2, ...; -1 for ``rest`` and
        ``pulses`` rows, which belong to no cycle), ``kind`` (``"cycle"``: a charge and a
        discharge half-cycle; ``"charge"`` or ``"discharge"``: a cycle with only that
        half-cycle, at the start or end of the record; ``"pulses"``; ``"rest"``),
        ``start_time_s``, ``end_time_s``, ``charge_capacity_mAh_g``,
        ``discharge_capacity_mAh_g`` (both >= 0), ``coulombic_efficiency`` (discharge /
        charge, only for ``"cycle"`` rows, else NaN), ``charge_rate_mA_g`` and
        ``discharge_rate_mA_g`` (mean current magnitude of the samples charging /
        discharging, above the tolerance, per gram; NaN if none), ``max_voltage_V``,
        ``min_voltage_V`` (when voltage is given). ``attrs`` holds the rule's parameters.
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
    if first not in ("charge", "discharge"):
        raise DatasetError(f"cycle_summary: first must be 'charge' or 'discharge', got {first!r}")
    for name, value in (("min_half_cycle_s", min_half_cycle_s),
                        ("min_half_cycle_fraction", min_half_cycle_fraction)):
        if isinstance(value, bool) or not np.isfinite(value) or value < 0:
            raise DatasetError(f"cycle_summary: {name} must be a number >= 0, got {value!r}")
    t = echem["time_s"].to_numpy(np.float64)
    i = np.nan_to_num(echem["current_mA"].to_numpy(np.float64))
    v = echem["voltage_V"].to_numpy(np.float64) if "voltage_V" in echem.columns else None
    if "charge_mAh" in echem.columns:
        charge = echem["charge_mAh"].to_numpy(np.float64)
        q = np.r_[0.0, np.diff(charge)] if charge.size else charge
        q = np.where(np.isfinite(q), q, 0.0)
    else:
        step = echem["step"].to_numpy() if "step" in echem.columns else None
        q = charge_increments(t, i, step=step, current_tol_mA=current_tol_mA)
    if current_tol_mA is None:
        # 1e-3 of the typical large current (99th percentile of the records with a current),
        # so that one spike does not turn the whole record into rest
        flowing = np.abs(i[i != 0])
        tol = 1e-3 * float(np.quantile(flowing, 0.99)) if flowing.size else 0.0
    else:
        tol = float(current_tol_mA)
    segment, kinds, signs = _segments(t, i, q, tol=tol, min_s=float(min_half_cycle_s),
                                      min_fraction=float(min_half_cycle_fraction))
    opening = 1 if first == "charge" else -1
    # rows: each half-cycle joins a cycle (a new one at every opening half-cycle)
    row_of = np.zeros(len(kinds), dtype=np.int64)
    row_kind, row_cycle, row_has = [], [], []
    cycle = 0
    last_row_cycle = None
    for k, (kind, sg) in enumerate(zip(kinds, signs, strict=True)):
        if kind == "half":
            if sg == opening or last_row_cycle is None:
                cycle = cycle + 1 if sg == opening else 0
                row_kind.append("cycle")
                row_cycle.append(cycle)
                row_has.append(set())
                last_row_cycle = len(row_kind) - 1
            row_has[last_row_cycle].add(sg)
            row_of[k] = last_row_cycle
        else:
            row_kind.append(kind)
            row_cycle.append(-1)
            row_has.append(set())
            row_of[k] = len(row_kind) - 1
    for r, has in enumerate(row_has):
        if row_kind[r] == "cycle" and len(has) == 1:
            row_kind[r] = "charge" if 1 in has else "discharge"
    row = row_of[segment] if segment.size else segment
    # a half-cycle's capacity is the net charge over it (a short opposite pulse within a
    # charge takes back what it discharged); pulses and rests split by sign
    seg_sign = np.asarray(signs, dtype=np.int64)[segment] if segment.size else segment
    frame = pd.DataFrame({
        "row": row, "t": t,
        "q_pos": np.where(seg_sign == 1, q, np.where((seg_sign == 0) & (q > 0), q, 0.0)),
        "q_neg": np.where(seg_sign == -1, -q, np.where((seg_sign == 0) & (q < 0), -q, 0.0)),
        "i_pos": np.where((seg_sign >= 0) & (i > tol), i, np.nan),
        "i_neg": np.where((seg_sign <= 0) & (i < -tol), -i, np.nan),
    })
    if v is not None:
        frame["v"] = v
    agg = frame.groupby("row", sort=True).agg(
        start_time_s=("t", "min"),
        end_time_s=("t", "max"),
        q_pos=("q_pos", "sum"),
        q_neg=("q_neg", "sum"),
        i_pos=("i_pos", "mean"),
        i_neg=("i_neg", "mean"),
        **({"max_voltage_V": ("v", "max"), "min_voltage_V": ("v", "min")} if v is not None else {}),
    )
    idx = agg.index.to_numpy(np.int64)
    out = pd.DataFrame({"cycle": np.asarray(row_cycle, dtype=np.int64)[idx] if idx.size
                        else np.zeros(0, np.int64),
                        "kind": np.asarray(row_kind, dtype=object)[idx] if idx.size
                        else np.zeros(0, object)})
    out["start_time_s"] = agg["start_time_s"].to_numpy()
    out["end_time_s"] = agg["end_time_s"].to_numpy()
    out["charge_capacity_mAh_g"] = agg["q_pos"].clip(lower=0).to_numpy() / mass_g
    out["discharge_capacity_mAh_g"] = agg["q_neg"].clip(lower=0).to_numpy() / mass_g
    with np.errstate(divide="ignore", invalid="ignore"):
        ch = out["charge_capacity_mAh_g"].to_numpy()
        real = (out["kind"] == "cycle").to_numpy() & (ch > 0)
        out["coulombic_efficiency"] = np.where(real, out["discharge_capacity_mAh_g"] / ch, np.nan)
        out["charge_rate_mA_g"] = agg["i_pos"].to_numpy() / mass_g
        out["discharge_rate_mA_g"] = agg["i_neg"].to_numpy() / mass_g
    if v is not None:
        out["max_voltage_V"] = agg["max_voltage_V"].to_numpy()
        out["min_voltage_V"] = agg["min_voltage_V"].to_numpy()
    out.attrs["active_mass_mg"] = float(active_mass_mg)
    out.attrs["source"] = source
    out.attrs["half_cycle_rule"] = (
        f"a run of one current sign (|I| > {tol:.3g} mA) lasting >= {min_half_cycle_s:g} s "
        f"and passing >= {min_half_cycle_fraction:g} of the median run charge; runs of one "
        "sign merged; cycles open with a " + first)
    return out
