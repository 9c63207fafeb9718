"""Cycler tables with published column names: the Battery Data Format, Arbin and archive CSVs.

Some cycler exports are plain tables whose column names and units are fixed by their
maker or by a published format, so they can be read without a ``columns=`` mapping:

- the **Battery Data Format** (BDF, Battery Data Alliance; ``.bdf`` CSV, gzip-compressed
  ``.bdf.gz``, ``.bdf.parquet``): ``Test Time / s``, ``Voltage / V``, ``Current / A``, or
  its machine-readable names ``test_time_second``, ``voltage_volt``, ``current_ampere``;
  current positive on charge; capacities in Ah;
- **Arbin** CSV exports (MITS Pro: ``Test_Time(s)``, ``Current(A)``, ``Voltage(V)``,
  ``Charge_Capacity(Ah)``; or without units, as in the ``.res`` database);
- the **Battery Archive** (batteryarchive.org) and **batterydata.org** time series
  (``Test_Time (s)``, ``Current (A)``; ``Time_s``, ``Current_A``).

Each is a :class:`Dialect`: where time, voltage and current are, their factors to our
units, and the file's charge counters (a charge/discharge pair of unsigned counters that
restart at steps or cycles, or one signed net counter). pandas (and pyarrow for
Parquet) read the table; :func:`dialect_columns` turns it into our columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from asymflux.io._errors import DatasetError


@dataclass(frozen=True)
class Dialect:
    """A table format with fixed column names: ``(file column, factor to our unit)`` each."""

    name: str
    time_s: tuple[tuple[str, float], ...]
    voltage_V: tuple[tuple[str, float], ...]
    current_mA: tuple[tuple[str, float], ...]
    #: (charge counter, discharge counter, factor to mAh): unsigned, restart at steps/cycles
    counter_pairs: tuple[tuple[str, str, float], ...] = ()
    #: one signed counter of the net charge, factor to mAh
    net_counters: tuple[tuple[str, float], ...] = ()
    step: tuple[str, ...] = ()
    cycle: tuple[str, ...] = ()
    #: columns that must all be there too (names too common to say the format alone)
    requires: tuple[str, ...] = ()

    def find(self, names) -> dict | None:
        """Which of the file's columns this dialect uses, or None if it is not this dialect."""
        names = set(names)
        if not all(c in names for c in self.requires):
            return None
        got = {}
        for ours in ("time_s", "voltage_V", "current_mA"):
            hit = next(((c, f) for c, f in getattr(self, ours) if c in names), None)
            if hit is None:
                return None
            got[ours] = hit
        got["pair"] = next((p for p in self.counter_pairs if p[0] in names and p[1] in names),
                           None)
        got["net"] = next(((c, f) for c, f in self.net_counters if c in names), None)
        got["step"] = next((c for c in self.step if c in names), None)
        got["cycle"] = next((c for c in self.cycle if c in names), None)
        return got


BDF = Dialect(
    "Battery Data Format (BDF)",
    time_s=(("Test Time / s", 1.0), ("test_time_second", 1.0)),
    voltage_V=(("Voltage / V", 1.0), ("voltage_volt", 1.0)),
    current_mA=(("Current / A", 1000.0), ("current_ampere", 1000.0)),
    counter_pairs=(("Charging Capacity / Ah", "Discharging Capacity / Ah", 1000.0),
                   ("charging_capacity_ah", "discharging_capacity_ah", 1000.0)),
    net_counters=(("Net Capacity / Ah", 1000.0), ("net_capacity_ah", 1000.0)),
    step=("Step Count / 1", "step_count", "Step Index / 1", "step_index"),
    cycle=("Cycle Count / 1", "cycle_count"),
)
ARBIN_CSV = Dialect(
    "Arbin CSV export",
    time_s=(("Test_Time(s)", 1.0),),
    voltage_V=(("Voltage(V)", 1.0),),
    current_mA=(("Current(A)", 1000.0), ("Current(mA)", 1.0)),
    counter_pairs=(("Charge_Capacity(Ah)", "Discharge_Capacity(Ah)", 1000.0),
                   ("Charge_Capacity(mAh)", "Discharge_Capacity(mAh)", 1.0)),
    step=("Step_Index",),
    cycle=("Cycle_Index",),
)
#: The names of Arbin's ``.res`` records table, without units (A, V, Ah): "Current" alone
#: could be any lab's mA, so Arbin's own bookkeeping columns must be there as well.
ARBIN_RECORDS = Dialect(
    "Arbin records (the .res table's names: A, V, Ah)",
    time_s=(("Test_Time", 1.0),),
    voltage_V=(("Voltage", 1.0),),
    current_mA=(("Current", 1000.0),),
    counter_pairs=(("Charge_Capacity", "Discharge_Capacity", 1000.0),),
    step=("Step_Index",),
    cycle=("Cycle_Index",),
    requires=("Data_Point", "Step_Index", "Charge_Capacity", "Discharge_Capacity"),
)
BATTERY_ARCHIVE = Dialect(
    "Battery Archive time series",
    time_s=(("Test_Time (s)", 1.0),),
    voltage_V=(("Voltage (V)", 1.0),),
    current_mA=(("Current (A)", 1000.0),),
    counter_pairs=(("Charge_Capacity (Ah)", "Discharge_Capacity (Ah)", 1000.0),),
    cycle=("Cycle_Index",),
)
BATTERYDATA = Dialect(
    "batterydata.org time series",
    time_s=(("Time_s", 1.0),),
    voltage_V=(("Voltage_V", 1.0),),
    current_mA=(("Current_A", 1000.0),),
    counter_pairs=(("Charge_Capacity_Ah", "Discharge_Capacity_Ah", 1000.0),),
    step=("Step",),
    cycle=("Cycle_Index",),
)
#: Tried in this order; the first whose time, voltage and current columns all exist wins.
DIALECTS = (BDF, ARBIN_CSV, ARBIN_RECORDS, BATTERY_ARCHIVE, BATTERYDATA)


def match_dialect(names) -> tuple[Dialect, dict] | None:
    """The first dialect whose time, voltage and current columns are all in ``names``."""
    for dialect in DIALECTS:
        got = dialect.find(names)
        if got is not None:
            return dialect, got
    return None


def refuse_near_dialect(names, *, path) -> None:
    """Raise a :class:`DatasetError` for a table that has two of a dialect's three columns."""
    names = list(names)
    for dialect in DIALECTS:
        missing = {ours: [c for c, _ in getattr(dialect, ours)]
                   for ours in ("time_s", "voltage_V", "current_mA")
                   if not any(c in names for c, _ in getattr(dialect, ours))}
        # the time column's name is the distinctive one ("Voltage" alone says little)
        if len(missing) == 1 and "time_s" not in missing:
            ours, wanted = next(iter(missing.items()))
            what = {"voltage_V": "voltage", "current_mA": "current"}[ours]
            raise DatasetError(
                f"{path}: this looks like a table in the {dialect.name} layout, but it has no "
                f"{what} column "
                f"(expected one of {wanted}); the file has columns {names[:40]}"
            )


def read_parquet(path) -> pd.DataFrame:
    """A Parquet table (e.g. ``.bdf.parquet``) through pandas/pyarrow, naming the file on failure."""
    try:
        return pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - pyarrow's errors: name the file
        raise DatasetError(f"{path}: not a readable Parquet table ({type(e).__name__}: {e})") \
            from e


def first_non_number(col: pd.Series, *, decimal: str = "."):
    """``(row position, value)`` of the first cell of ``col`` that is not a number read with
    this decimal mark (missing cells are fine), or None; and the column as numbers."""
    text = col.where(col.isna(), col.astype(str).str.strip())
    if decimal == ",":
        text = text.str.replace(",", ".", regex=False)
    as_num = pd.to_numeric(text, errors="coerce")
    bad = np.flatnonzero(as_num.isna().to_numpy() & col.notna().to_numpy())
    return (None if not bad.size else (int(bad[0]), col.iloc[int(bad[0])])), as_num


def _numbers(df: pd.DataFrame, name: str, *, path, seconds: bool = False) -> np.ndarray:
    """A column as float64, or a DatasetError naming it: dates, booleans and text refused;
    a duration column (``seconds``: the time column) in seconds."""
    import datetime as _dt

    col = df[name]
    if pd.api.types.is_bool_dtype(col):
        raise DatasetError(f"{path}: column {name!r} holds true/false values where numbers "
                           "are expected")
    if seconds and pd.api.types.is_timedelta64_dtype(col):
        return col.dt.total_seconds().to_numpy(np.float64)
    if pd.api.types.is_datetime64_any_dtype(col) or (
            col.dtype == object and col.map(
                lambda v: isinstance(v, _dt.date | _dt.time | _dt.timedelta)).any()):
        raise DatasetError(
            f"{path}: column {name!r} holds dates, times of day or durations where numbers "
            f"are expected{' (seconds since the start)' if seconds else ''}; export it as "
            "numbers"
        )
    if pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(np.float64)
    bad, as_num = first_non_number(col)
    if bad is not None:
        k, value = bad
        hint = (" (decimal commas? pass decimal=',' and sep=';')"
                if isinstance(value, str) and "," in value else "")
        raise DatasetError(
            f"{path}: column {name!r} holds {value!r} at row {k + 1} "
            f"where a number is expected{hint}"
        )
    return as_num.to_numpy(np.float64)


def dialect_columns(df: pd.DataFrame, dialect: Dialect, got: dict, *, path):
    """Our columns from a table of a known ``dialect`` (see :func:`match_dialect`)."""
    from asymflux.io._counters import counter_increments

    cols = {ours: _numbers(df, got[ours][0], path=path, seconds=ours == "time_s")
            * got[ours][1] for ours in ("time_s", "voltage_V", "current_mA")}
    attrs: dict = {"format": dialect.name, "reader": f"pandas {pd.__version__}",
                   "current_from": got["current_mA"][0]}
    step = cycle = None
    if got["step"] is not None:
        step = np.nan_to_num(_numbers(df, got["step"], path=path), nan=-1).astype(np.int64)
    if got["cycle"] is not None:
        cycle = np.nan_to_num(_numbers(df, got["cycle"], path=path), nan=-1).astype(np.int64)
    charge = None
    if got["pair"] is not None:
        up, down, factor = got["pair"]
        # unsigned counters that restart at steps or cycles: a counter going down restarted
        inc = (counter_increments(_numbers(df, up, path=path) * factor, unsigned=True)
               - counter_increments(_numbers(df, down, path=path) * factor, unsigned=True))
        charge = np.cumsum(inc)
        attrs["charge_from"] = f"{up} - {down} (restarts undone)"
    elif got["net"] is not None:
        name, factor = got["net"]
        # a signed counter's restarts cannot be told from discharge: it is used only where
        # it agrees with the current (else the current is integrated, and that is said)
        net = np.cumsum(counter_increments(_numbers(df, name, path=path) * factor))
        if _agrees_with_current(net, cols["time_s"], cols["current_mA"], step):
            charge = net
            attrs["charge_from"] = name
        else:
            attrs["warnings"] = [f"{name} disagrees with the current (a counter that "
                                 "restarts?): the current is integrated instead"]
    cols.update({"charge_mAh": charge, "step": step, "cycle": cycle})
    return cols, attrs


def _agrees_with_current(charge_mAh, time_s, current_mA, step, *, tol=0.05) -> bool:
    """The charge counter follows the integrated current within ``tol`` of the throughput."""
    from asymflux.io._counters import charge_increments

    inc = charge_increments(time_s, current_mA, step=step)
    integrated = np.cumsum(inc)
    throughput = float(np.nansum(np.abs(inc)))
    if not np.isfinite(throughput) or throughput == 0:
        return True
    q = charge_mAh - charge_mAh[0]
    return bool(np.nanmax(np.abs(q - integrated)) <= tol * throughput)
