"""Gamry ``.DTA`` files (the Gamry Framework's EXPLAIN text layout), read by a small tolerant parser.

Gamry's Framework (versions 6 and 7 seen; the layout is older) and its PWR800 battery
software write one text layout for every technique: a first line ``EXPLAIN``, a ``TAG<TAB>technique`` line, header lines
``KEY<TAB>TYPE<TAB>VALUE<TAB>label`` (types ``LABEL``, ``QUANT``, ``IQUANT``, ``POTEN``,
``TOGGLE``, ``SELECTOR``, ``TWOPARAM``, ``NOTES`` followed by that many note lines, ...),
and tables ``NAME<TAB>TABLE[<TAB>NROWS]`` followed by a line of column names, a line of
units and the rows, each line of the three starting with a tab. Numbers are written with
the decimal mark of the Windows locale that recorded them (``1,57964E+000`` or
``1.57964E+000``); fields are separated by tabs, so a comma is never a separator. Header
lines can also follow the tables (``EXPERIMENTABORTED``, ``STOPREASON``,
``STARTTIMEOFFSET``, ...).

The maintained parser, ``gamry-parser``, is not used: its 0.x releases (the last that run
on Python 3.11) read numbers with the reading machine's locale (every decimal-comma file
fails), and it returns no curve for a cycle-summary file without saying so. The tests
compare this reader with it where it works.

:func:`read_gamry_columns` turns a file's time-series tables (``CURVE``, ``CURVE1``,
``CURVE2``, ..., ``OCVCURVE``) into our columns: ``T``/``Time`` (s), ``Vf`` (V), ``Im``
(A, signed by the file's ``CONVENTION``: anodic positive is ours, positive = oxidation of
the working electrode = charge of a cathode). Impedance tables (``ZCURVE``: EISPOT,
EISGALV, hybrid EIS, ...) and cycle summaries (``CAPACITYCURVE``: PWR800 cyclic
charge-discharge) are refused naming the technique.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from asymflux.io._errors import DatasetError

#: Column names: ours -> the file's candidates (first found wins).
TIME_COLUMNS = ("T", "Time")
VOLTAGE_COLUMNS = ("Vf", "Vm", "Voltage", "V", "Vcell")
CURRENT_COLUMNS = ("Im", "Current", "I")
#: A charge column (chronocoulometry, PWR800) and its units -> factor to mAh.
CHARGE_COLUMNS = ("Q", "Charge")
_CHARGE_UNITS = {"C": 1 / 3.6, "mC": 1 / 3600.0, "A hr": 1000.0, "A-hr": 1000.0, "Ahr": 1000.0,
                 "A h": 1000.0, "Ah": 1000.0, "A·h": 1000.0, "mA hr": 1.0, "mAh": 1.0}
#: Units of a current column -> factor to mA (an unknown unit: amperes, Gamry's unit).
_CURRENT_UNITS = {"A": 1000.0, "mA": 1.0, "uA": 1e-3, "µA": 1e-3, "nA": 1e-6}
#: Table names of impedance spectra and of other frequency-domain records.
_IMPEDANCE_TABLES = {"ZCURVE": "impedance", "EFMCURVE": "electrochemical frequency modulation"}
#: Table names of per-step summaries (one row per charge or discharge, not a time series).
_SUMMARY_TABLES = {"CAPACITYCURVE"}
#: Techniques (TAG) of impedance spectroscopy besides those with "EIS" in their name.
_IMPEDANCE_TAGS = {"MOTTSCHOTTKY", "ZIR", "EFM140", "EFM"}
_NUMBER = re.compile(r"^[-+]?(\d+[.,]?\d*|[.,]\d+)([eE][-+]?\d+)?$")


@dataclass
class Table:
    """One ``NAME TABLE NROWS`` block of a ``.DTA`` file, as text."""

    name: str
    line: int  #: 1-based line of its ``TABLE`` line
    declared_rows: int | None
    names: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    #: the first line (1-based) of each row
    first_row_line: int = 0


@dataclass
class Explain:
    """A parsed ``.DTA`` file: header fields (raw text), tables, stray lines."""

    tag: str | None
    header: dict[str, tuple[str, list[str]]]
    tables: list[Table]
    #: lines that are neither header fields nor table lines: (1-based line, text)
    stray: list[tuple[int, str]]


def is_explain(head: bytes) -> bool:
    """Does a file starting with ``head`` hold Gamry's EXPLAIN layout?"""
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    first = text.split(b"\n", 1)[0].strip()
    return first == b"EXPLAIN"


def _decode(data: bytes) -> str:
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def parse_explain(path: Path) -> Explain:
    """Split a ``.DTA`` file into header fields and tables (no numbers read yet)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e})") from e
    # \r\n, \r or \n only (str.splitlines would also split at characters a note may hold)
    lines = _decode(data).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0].strip() != "EXPLAIN":
        raise DatasetError(f"{path}: not a Gamry EXPLAIN file (its first line is not 'EXPLAIN')")
    header: dict[str, tuple[str, list[str]]] = {}
    tables: list[Table] = []
    stray: list[tuple[int, str]] = []
    tag = None
    k, n = 1, len(lines)
    while k < n:
        line = lines[k]
        fields = line.split("\t")
        key = fields[0].strip()
        kind = fields[1].strip() if len(fields) > 1 else ""
        if not line.strip():
            k += 1
        elif line.startswith("\t"):  # a row where none belongs (e.g. a blank note line)
            if line.strip():
                stray.append((k + 1, line))
            k += 1
        elif key == "TAG" and kind:
            tag = kind
            k += 1
        elif kind == "TABLE":
            declared = None
            if len(fields) > 2 and fields[2].strip().isdigit():
                declared = int(fields[2].strip())
            table = Table(name=key, line=k + 1, declared_rows=declared)
            k += 1
            if k < n and lines[k].startswith("\t"):
                table.names = [c.strip() for c in lines[k].split("\t")[1:]]
                k += 1
                if k < n and lines[k].startswith("\t"):
                    table.units = [u.strip() for u in lines[k].split("\t")[1:]]
                    k += 1
            table.first_row_line = k + 1
            while k < n and (lines[k].startswith("\t") or not lines[k].strip()
                             and k + 1 < n and lines[k + 1].startswith("\t")):
                if lines[k].strip():  # (a blank line amid the rows is skipped)
                    table.rows.append(lines[k].split("\t")[1:])
                k += 1
            tables.append(table)
        elif key == "NOTES" and kind == "NOTES":
            count = fields[2].strip() if len(fields) > 2 else "0"
            header[key] = (kind, fields[2:])
            k += 1
            # its note lines (a tab first); a line of the layout ends them in any case
            for _ in range(int(count) if count.isdigit() else 0):
                if k < n and (lines[k].startswith("\t") or "\t" not in lines[k]):
                    k += 1
        elif len(fields) >= 3 and key:
            header[key] = (kind, fields[2:])
            k += 1
        else:
            stray.append((k + 1, line))
            k += 1
    return Explain(tag=tag, header=header, tables=tables, stray=stray)


def _number(text: str) -> float | None:
    text = text.strip()
    if not _NUMBER.match(text):
        return None
    return float(text.replace(",", "."))


def header_value(explain: Explain, key: str):
    """A header field's value: a float for numeric types, else the text (None if absent)."""
    if key not in explain.header:
        return None
    kind, values = explain.header[key]
    value = values[0].strip() if values else ""
    if kind in ("QUANT", "IQUANT", "POTEN", "SELECTOR"):
        number = _number(value)
        return value if number is None else number
    if kind == "TOGGLE":
        return value.upper() in ("T", "TRUE")
    return value


def _column(table: Table, candidates) -> str | None:
    return next((c for c in candidates if c in table.names), None)


def _unit(table: Table, name: str) -> str:
    j = table.names.index(name)
    return table.units[j] if j < len(table.units) else ""


def _charge(q_mAh, t, current_mA, step):
    """``(charge_mAh, said)``: the file's own charge column, when it has one that agrees
    with the current, else ``(None, why not)`` (the current is then integrated)."""
    if not np.isfinite(q_mAh).any():
        return None, None
    from asymflux.io._counters import charge_increments, counter_increments

    if not np.isfinite(q_mAh).all():
        return None, ("the charge column has cells without a number (or a table without "
                      "it): not used, the current integrated instead")
    resets = np.r_[True, step[1:] != step[:-1]]
    inc = counter_increments(q_mAh, resets=resets)
    # the first record of a table reports what was counted since the table's start
    inc[resets] = q_mAh[resets]
    inc[0] = 0.0
    ref = charge_increments(t, current_mA, step=step)
    moved = float(np.sum(np.abs(ref)))
    if moved > 0 and abs(float(np.sum(inc)) - float(np.sum(ref))) > 0.05 * moved:
        return None, (f"the file's charge column (net {np.sum(inc):.6g} mAh) disagrees with "
                      f"the current integrated over time (net {np.sum(ref):.6g} mAh): not "
                      "used, the current integrated instead")
    return np.cumsum(inc), ("the file's charge counter, restarting with each table "
                            "(agrees with the current integrated within 5 %)")


def _start(explain: Explain) -> tuple[str | None, str | None]:
    """``(ISO 8601 start, as written)`` from DATE and TIME; ISO only when the date is unambiguous.

    Gamry writes the date in the recording machine's short-date format: ``4/11/2025``
    (month/day in the US, day/month elsewhere), ``1.2.2024`` (day.month.year), ``2024-02-01``.
    """
    date, time = header_value(explain, "DATE"), header_value(explain, "TIME")
    if not isinstance(date, str) or not date:
        return None, None
    written = f"{date} {time}".strip() if isinstance(time, str) else date
    m = re.fullmatch(r"(\d{1,4})([./-])(\d{1,2})\2(\d{1,4})", date.strip())
    if not m:
        return None, written
    a, sep, b, c = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
    if a > 31:  # year first
        year, month, day = a, b, c
    elif sep == ".":
        day, month, year = a, b, c
    elif a > 12 >= b:
        day, month, year = a, b, c
    elif b > 12 >= a:
        month, day, year = a, b, c
    elif a == b:
        month = day = a
        year = c
    else:
        return None, written  # 4/11/2025: April or November?
    if year < 100:
        year += 2000
    clock = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?\s*([AaPp][Mm])?",
                         time.strip() if isinstance(time, str) else "")
    if clock is None:
        return None, written  # a start without its time of day would mislead
    hour, minute = int(clock.group(1)), int(clock.group(2))
    second = float(clock.group(3) or 0.0)
    if clock.group(4):  # 12-hour clock
        hour = hour % 12 + (12 if clock.group(4).upper() == "PM" else 0)
    try:
        stamp = pd.Timestamp(year=year, month=month, day=day, hour=hour, minute=minute,
                             second=int(second), microsecond=round(second % 1 * 1e6))
    except ValueError:
        return None, written
    return stamp.isoformat(), written


def _impedance_kind(table: Table) -> str | None:
    what = _IMPEDANCE_TABLES.get(table.name)
    if what is None and {"Freq", "Zreal"} <= set(table.names):
        what = "impedance"
    return what


def _is_summary(table: Table) -> bool:
    """One row per charge or discharge step (PWR800 cyclic charge-discharge), not records."""
    names = set(table.names)
    return table.name in _SUMMARY_TABLES or (
        "Cycle" in names and not names & {"Vf", "Im", "Vm"})


def _refuse(path, explain: Explain, series: list[Table]) -> None:
    """Impedance and cycle-summary files: a one-line error naming the technique."""
    tag = explain.tag or "unknown"
    impedance = [(t, _impedance_kind(t)) for t in explain.tables if _impedance_kind(t)]
    by_tag = "EIS" in tag.upper() or tag.upper() in _IMPEDANCE_TAGS
    if by_tag or (impedance and not series):
        table, what = impedance[0] if impedance else (None, "impedance")
        where = f", table {table.name}" if table is not None else ""
        raise DatasetError(
            f"{path}: this Gamry file is an {what} measurement (technique {tag}{where}: one "
            "row per frequency), not a cycler time series; asymflux reads Gamry time series "
            "(chronopotentiometry, chronoamperometry, PWR800 charge and discharge, open "
            "circuit, CV, ...)"
        )
    summaries = [t.name for t in explain.tables if _is_summary(t)]
    if (summaries or "CYCLICCHARGEDISCHARGE" in tag.upper()) and not series:
        raise DatasetError(
            f"{path}: this Gamry file is a cycle summary (technique {tag}, table "
            f"{', '.join(summaries) or 'none'}: one row per charge or discharge step), not a "
            "time series; Gamry saves each step's records in its own file (PWR800_CHARGE / "
            "PWR800_DISCHARGE): read those"
        )


def _series_tables(explain: Explain) -> list[Table]:
    """The tables that hold records over time, in file order."""
    out = []
    for t in explain.tables:
        if _is_summary(t) or _impedance_kind(t):
            continue
        if _column(t, TIME_COLUMNS) and (_column(t, VOLTAGE_COLUMNS) or _column(t, CURRENT_COLUMNS)):
            out.append(t)
    return out


def _numbers(table: Table, name: str | None) -> np.ndarray | None:
    """A column of ``table`` as float64 (NaN where a cell is missing or not a number)."""
    if name is None:
        return None
    j = table.names.index(name)
    cells = pd.Series([r[j] if j < len(r) else "" for r in table.rows], dtype=object)
    cells = cells.str.strip().str.replace(",", ".", regex=False)
    return pd.to_numeric(cells, errors="coerce").to_numpy(np.float64)


def read_gamry_columns(path):
    """Read a Gamry ``.DTA`` file; return ``(columns, attrs)`` as the other brand readers do.

    Every time-series table is read, in the file's order; a table whose time restarts
    (``OCVCURVE`` then ``CURVE``, or a later curve counted from its own start) is placed
    after the one before it (its times shifted by that one's last time), and said in
    ``attrs["gamry_tables"]``. A table cut short (fewer rows than its ``NROWS``, a row
    cut in the middle, an ``EXPERIMENTABORTED`` flag, lines that are not the layout's
    after it) is read up to the cut, with a warning. Tables are labelled ``step`` 0, 1,
    ... when there are several, so no charge is integrated across the unknown time
    between two of them.
    """
    path = Path(path)
    explain = parse_explain(path)
    tag = explain.tag
    if tag is None and not explain.tables:
        raise DatasetError(f"{path}: a Gamry EXPLAIN file without a TAG line or any table "
                           "(expected a Gamry .DTA data file)")
    series = _series_tables(explain)
    _refuse(path, explain, series)
    if not series:
        seen = "; ".join(f"{t.name}: {t.names[:12]}" for t in explain.tables) or "none"
        what = ("it has no table of records (a header only)" if not explain.tables
                else f"none of its tables has a time and a voltage or current column (tables {seen})")
        raise DatasetError(
            f"{path}: Gamry file (technique {tag or 'unknown'}) holds no records: {what}; "
            f"expected a table with {list(TIME_COLUMNS)} and {list(VOLTAGE_COLUMNS[:1])} / "
            f"{list(CURRENT_COLUMNS[:1])}"
        )
    convention = header_value(explain, "CONVENTION")
    warnings: list[str] = []
    if convention in (0, 0.0):
        sign, sign_said = -1.0, "CONVENTION 0 (cathodic current positive): sign reversed"
    elif convention in (1, 1.0):
        sign, sign_said = 1.0, "CONVENTION 1 (anodic current positive)"
    else:
        sign = 1.0
        sign_said = "no CONVENTION in the header: Gamry's default, anodic current positive"
        if convention is not None:
            warnings.append(f"unknown current convention CONVENTION={convention!r}: read as "
                            "Gamry's default, anodic current positive")
    aborted = header_value(explain, "EXPERIMENTABORTED") is True
    others = [t for t in explain.tables if t not in series]
    for t in others:
        if _impedance_kind(t):
            warnings.append(f"table {t.name} ({_impedance_kind(t)}: one row per frequency) is "
                            "not part of the time series: not read")
    stray_after = [s for s in explain.stray if s[0] > series[0].line]
    parts: dict[str, list[np.ndarray]] = {"t": [], "v": [], "i": [], "q": [], "step": []}
    described = []
    last_t = last_raw = previous = None
    shift = 0.0
    open_circuit_rows = 0
    segment = 0
    used: dict[str, set] = {"voltage": set(), "current": set(), "charge": set()}
    for table in series:
        t_name = _column(table, TIME_COLUMNS)
        v_name = _column(table, VOLTAGE_COLUMNS)
        i_name = _column(table, CURRENT_COLUMNS)
        q_name = next((c for c in CHARGE_COLUMNS if c in table.names
                       and _unit(table, c) in _CHARGE_UNITS), None)
        t, v, i = _numbers(table, t_name), _numbers(table, v_name), _numbers(table, i_name)
        q = _numbers(table, q_name)
        n = len(table.rows)
        info: dict = {"table": table.name, "rows_read": n}
        if table.declared_rows is not None:
            info["rows_declared"] = table.declared_rows
        keep = np.isfinite(t) & (np.isfinite(v) if v is not None else True)
        whole = n
        if n and len(table.rows[-1]) < len(table.names):
            keep[-1] = False  # the last row cut short: the run stopped while writing it
            whole = n - 1
        if not keep.all():
            bad = np.flatnonzero(~keep)
            k = int(bad[0])
            cut = " ".join(table.rows[k]).strip()[:60]
            if keep[k:].any():  # rows that are not records, amid records: those rows only
                warnings.append(
                    f"table {table.name}: {bad.size} row(s) without a number for the time "
                    f"or the voltage (first: line {table.first_row_line + k}, {cut!r}) "
                    "not read")
            else:  # the table ends in a cut row (the run stopped while writing it)
                warnings.append(
                    f"table {table.name}: line {table.first_row_line + k} ({cut!r}) is not "
                    f"a whole record: the table is read up to the record before it "
                    f"({n - k} row(s) not read)")
            t, v, i, q = (None if a is None else a[keep] for a in (t, v, i, q))
            n = int(keep.sum())
            info["rows_read"] = n
        if table.declared_rows is not None and whole < table.declared_rows:
            warnings.append(
                f"table {table.name} declares {table.declared_rows} rows and holds {whole}: the "
                "run was stopped (aborted) there; read up to the last whole record")
            info["aborted"] = True
        if n == 0:
            described.append(info)
            continue
        if i is None:
            # Gamry names the measured current in every technique that passes one: a
            # table without it is an open-circuit record (OCVCURVE, CORPOT, READVOLTAGE)
            i_mA = np.zeros(n)
            info["current"] = "zero: open circuit (no current column)"
            open_circuit_rows += n
        else:
            unit = _unit(table, i_name)
            factor = _CURRENT_UNITS.get(unit, 1000.0)
            i_mA = sign * factor * i
            used["current"].add(f"{i_name} ({unit or 'A'}, x {factor:g} to mA)")
        if q is not None:
            unit = _unit(table, q_name)
            q = sign * _CHARGE_UNITS[unit] * q
            used["charge"].add(f"{q_name} ({unit})")
        if v is None:
            v = np.full(n, np.nan)
        else:
            used["voltage"].add(v_name)
        # a time that goes back within a table by more than a few sampling intervals: a
        # new segment counted from its own start; by less (the clock's jitter): moved
        # forward to the time before it
        dt = np.diff(t)
        step_s = float(np.median(dt[dt > 0])) if (dt > 0).any() else 0.0
        restart = dt < -3.0 * step_s
        jitter = (dt < 0) & ~restart
        if jitter.any():
            warnings.append(
                f"table {table.name}: {int(jitter.sum())} record time(s) a little before the "
                f"one before them (by at most {-dt[jitter].min():g} s) moved forward to it")
        starts = np.r_[0, np.flatnonzero(restart) + 1, n]
        if starts.size > 2:
            info["time_restarts_at_lines"] = [table.first_row_line + int(k)
                                              for k in starts[1:-1]]
        spans = []
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            ts = np.maximum.accumulate(t[a:b]) if jitter.any() else t[a:b]
            if last_t is not None and ts[0] < last_raw:
                # counted from its own start: placed after the records before it
                shift = last_t
                info.setdefault("time", []).append(
                    f"restarts at {ts[0]:g} s: placed after {previous} (its times + "
                    f"{shift:g} s; the time between the two is not in the file)")
            tt = ts + shift
            last_t, last_raw, previous = float(tt[-1]), float(ts[-1]), table.name
            parts["t"].append(tt)
            parts["step"].append(np.full(b - a, segment, dtype=np.int64))
            segment += 1
            spans.append(tt)
        if shift:
            info["time_offset_s"] = shift
        if "time" in info:
            info["time"] = "; ".join(info["time"])
        parts["v"].append(v)
        parts["i"].append(i_mA)
        parts["q"].append(q if q is not None else np.full(n, np.nan))
        info["time_s"] = [float(spans[0][0]), float(spans[-1][-1])]
        described.append(info)
    if not parts["t"]:
        raise DatasetError(
            f"{path}: Gamry file (technique {tag or 'unknown'}) holds no records: its tables "
            f"{[t.name for t in series]} have a column line and no data rows (a header only)")
    if aborted:
        warnings.append("the file says EXPERIMENTABORTED: the run was stopped before its end; "
                        "read up to the last whole record")
    junk = [s for s in stray_after if s[1].strip()]
    if junk:
        line, text = junk[0]
        warnings.append(
            f"{len(junk)} line(s) after the tables that are not the EXPLAIN layout (first: line "
            f"{line}, {text[:60]!r}): not read")
    t_all = np.concatenate(parts["t"])
    step = np.concatenate(parts["step"])
    columns = {
        "time_s": t_all,
        "voltage_V": np.concatenate(parts["v"]),
        "current_mA": np.concatenate(parts["i"]),
        "step": step if segment > 1 else None,
    }
    charge, said = _charge(np.concatenate(parts["q"]), t_all, columns["current_mA"], step)
    if charge is not None:
        columns["charge_mAh"] = charge
        attrs_charge = f"{', '.join(sorted(used['charge']))}: {said}"
    elif said:
        warnings.append(said)
    attrs: dict = {
        "format": "Gamry EXPLAIN .DTA",
        "reader": f"asymflux's EXPLAIN reader (pandas {pd.__version__})",
        "technique": tag,
        "gamry_tables": described,
        "gamry_tables_not_read": [t.name for t in others] or None,
        "current_sign": sign_said,
        "_file_columns": sorted({c for t in series for c in t.names}),
        "_looked_for": {"time_s": list(TIME_COLUMNS), "voltage_V": list(VOLTAGE_COLUMNS),
                        "current_mA": list(CURRENT_COLUMNS)},
    }
    framework = header_value(explain, "FRAMEWORKVERSION")
    if framework is not None:
        attrs["gamry_framework"] = str(framework)
    if charge is not None:
        attrs["charge_from"] = attrs_charge
    if used["current"]:
        attrs["current_from"] = ", ".join(sorted(used["current"])) + f"; {sign_said}"
        if open_circuit_rows:
            attrs["current_from"] += f"; zero in {open_circuit_rows} open-circuit record(s)"
    else:
        attrs["current_from"] = (f"zero: open circuit (technique {tag or 'unknown'}, no "
                                 "current recorded)")
        attrs["charge_from"] = "zero: open circuit"
        attrs["open_circuit"] = True
        columns["charge_mAh"] = np.zeros(t_all.size)
    if not used["voltage"]:
        columns["voltage_V"] = None
    start, written = _start(explain)
    if start:
        attrs["start"] = start
    if written:
        attrs["start_as_written"] = written
    if warnings:
        attrs["warnings"] = warnings
    return columns, attrs
