"""BioLogic EC-Lab files: ``.mpr`` (binary, through galvani) and ``.mpt`` (text export).

Both give the same raw columns (galvani names ``.mpr`` columns as EC-Lab's export does),
which :func:`biologic_columns` turns into ours: the measured current, never the
``control/V/mA`` set point (a voltage during constant-voltage holds), and the charge
from the cycler's own counters.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from asymflux.io._errors import DatasetError

#: BioLogic column -> (our column, factor to our unit) candidates. First match wins.
#: ``control/V/mA``, ``control/V`` and ``control/mA`` are set points and never read.
MPR_COLUMNS: dict[str, tuple[tuple[str, float], ...]] = {
    "time_s": (("time/s", 1.0),),
    # ``<Ewe/V>``: EC-Lab 11.5x's text export of ``<Ewe>/V`` (the average over the record)
    "voltage_V": (("Ewe/V", 1.0), ("<Ewe>/V", 1.0), ("<Ewe/V>", 1.0), ("Ecell/V", 1.0),
                  ("<Ecell>/V", 1.0), ("Ewe-Ece/V", 1.0), ("<Ewe-Ece>/V", 1.0)),
    "current_mA": (("I/mA", 1.0), ("<I>/mA", 1.0), ("<I/mA>", 1.0)),
    "dq_mAh": (("dq/mA.h", 1.0), ("dQ/mA.h", 1.0), ("dQ/C", 1.0 / 3.6), ("dq/C", 1.0 / 3.6)),
    "q_minus_qo_mAh": (("(Q-Qo)/mA.h", 1.0), ("(Q-Qo)/C", 1.0 / 3.6)),
    "q_half_cycle_mAh": (("Q charge/discharge/mA.h", 1.0),),
    "step": (("Ns", 1),),
    "cycle": (("cycle number", 1),),
    "half_cycle": (("half cycle", 1),),
}

#: EC-Lab technique IDs (first byte of the "VMP Set" module), as yadg documents them.
TECHNIQUES = {
    0x04: "GCPL", 0x06: "CV", 0x0B: "OCV", 0x16: "MP", 0x18: "CA", 0x19: "CP",
    0x1C: "WAIT", 0x1D: "PEIS", 0x1E: "GEIS", 0x30: "CV", 0x32: "ZIR", 0x33: "CVA",
    0x6C: "LSV", 0x75: "coV", 0x76: "coC", 0x77: "GCPL", 0x7F: "MB", 0x88: "BCD",
}
_IMPEDANCE = {"PEIS", "GEIS", "SPEIS", "SGEIS", "ZIR"}
_OPEN_CIRCUIT = {"OCV", "WAIT"}
#: EC-Lab's long technique names (line 4 of an ``.mpt`` header) -> short names.
_LONG_NAMES = {
    "galvanostatic cycling with potential limitation": "GCPL",
    "potentio electrochemical impedance spectroscopy": "PEIS",
    "galvano electrochemical impedance spectroscopy": "GEIS",
    "staircase potentio electrochemical impedance spectroscopy": "SPEIS",
    "staircase galvano electrochemical impedance spectroscopy": "SGEIS",
    "open circuit voltage": "OCV",
    "cyclic voltammetry": "CV",
    "chronoamperometry / chronocoulometry": "CA",
    "chronopotentiometry": "CP",
    "modulo bat": "MB",
    "linear sweep voltammetry": "LSV",
    "wait": "WAIT",
}


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{dist} {version(dist)}"
    except PackageNotFoundError:
        return dist


def _refuse_impedance(path, technique, raw: pd.DataFrame | dict):
    names = list(raw.keys()) if isinstance(raw, dict) else list(raw.columns)
    freq = np.asarray(raw["freq/Hz"], dtype=np.float64) if "freq/Hz" in names else None
    all_freq = freq is not None and freq.size > 0 and bool(np.all(freq[np.isfinite(freq)] > 0))
    named = technique is not None and (
        technique in _IMPEDANCE or "impedance" in technique.lower()
    )
    if named or (technique is None and all_freq):
        what = technique or "impedance (every row has a frequency, freq/Hz)"
        raise DatasetError(
            f"{path}: this is an impedance measurement (technique {what}: one row per "
            "frequency), not a cycler time series; asymflux reads charge/discharge records "
            "(GCPL, CV, CA, CP, MB, OCV, ...)"
        )


def biologic_columns(raw, *, path, technique=None, loop_starts=None):
    """Our columns from BioLogic's (a DataFrame or structured array by column name).

    Returns ``(columns, attrs)``: ``columns`` maps ours to arrays (None when absent).
    """
    names = list(raw.dtype.names) if isinstance(raw, np.ndarray) else list(raw.columns)
    _refuse_impedance(path, technique, raw if not isinstance(raw, np.ndarray) else
                      {n: raw[n] for n in names})
    found: dict[str, np.ndarray | None] = {}
    used: dict[str, str] = {}
    for ours, candidates in MPR_COLUMNS.items():
        found[ours] = None
        for theirs, factor in candidates:
            if theirs in names:
                col = np.asarray(raw[theirs])
                if ours in ("step", "cycle", "half_cycle"):
                    col = np.nan_to_num(col.astype(np.float64)).astype(np.int64)
                else:
                    col = col.astype(np.float64) * factor
                found[ours] = col
                used[ours] = theirs
                break
    n = len(raw)
    t = found["time_s"]
    attrs: dict = {"technique": technique, "_file_columns": names,
                   "_looked_for": {k: [c for c, _ in v] for k, v in MPR_COLUMNS.items()}}
    # charge: dq increments (never restart), else (Q-Qo) with its restarts at loops undone,
    # else Q charge/discharge (restarts every half cycle)
    from asymflux.io._counters import counter_increments, current_from_increments

    inc = None
    if found["dq_mAh"] is not None:
        dq = np.where(np.isfinite(found["dq_mAh"]), found["dq_mAh"], 0.0)
        inc = dq.copy()
        if n:
            inc[0] = 0.0
        attrs["charge_from"] = f"{used['dq_mAh']} (the cycler's charge increments), summed"
        if found["q_minus_qo_mAh"] is not None and n > 1:
            # (Q-Qo) where it continues (no float32 round-off summed over 1e5 records),
            # the increment where it restarts (at loops)
            qq = found["q_minus_qo_mAh"]
            d = np.diff(qq)
            tol = 1e-5 * max(float(np.nanmax(np.abs(qq))), 1e-12) + 1e-9
            same = np.isfinite(d) & (np.abs(d - dq[1:]) <= tol)
            inc[1:] = np.where(same, d, dq[1:])
            # a missing increment (EC-Lab's XXX, an empty cell): (Q-Qo)'s step across it
            lost = ~np.isfinite(found["dq_mAh"][1:])
            bridged = lost & np.isfinite(d)
            inc[1:][bridged] = d[bridged]
            if lost.any():
                attrs.setdefault("warnings", []).append(
                    f"{int(lost.sum())} record(s) without {used['dq_mAh']}: "
                    f"{int(bridged.sum())} taken from {used['q_minus_qo_mAh']}'s step, "
                    f"{int((lost & ~bridged).sum())} counted as no charge")
            attrs["charge_from"] = (
                f"{used['q_minus_qo_mAh']} (its restarts bridged by {used['dq_mAh']})"
            )
        elif n > 1 and not np.isfinite(found["dq_mAh"][1:]).all():
            attrs.setdefault("warnings", []).append(
                f"{int((~np.isfinite(found['dq_mAh'][1:])).sum())} record(s) without "
                f"{used['dq_mAh']}: counted as no charge")
    elif found["q_minus_qo_mAh"] is not None:
        resets = np.zeros(n, dtype=bool)
        if loop_starts is not None:
            ls = np.asarray(loop_starts, dtype=np.int64)
            resets[ls[(ls > 0) & (ls < n)]] = True
        inc = counter_increments(found["q_minus_qo_mAh"], resets=resets)
        attrs["charge_from"] = f"{used['q_minus_qo_mAh']} (restarts at loops undone)"
    elif found["q_half_cycle_mAh"] is not None and found["half_cycle"] is not None:
        hc = found["half_cycle"]
        resets = np.r_[False, hc[1:] != hc[:-1]]
        inc = counter_increments(found["q_half_cycle_mAh"], resets=resets)
        attrs["charge_from"] = f"{used['q_half_cycle_mAh']} (restarts at half cycles undone)"
    current = found["current_mA"]
    if current is not None and used["current_mA"] == "<I>/mA" and inc is not None and n > 2:
        # <I>/mA (a record's mean current) is unsigned in some exports (e.g. CV): trust the
        # counter's sign when the two disagree
        derived = current_from_increments(t, inc)
        scale = np.nanmax(np.abs(derived)) if np.isfinite(derived).any() else 0.0
        both = (np.abs(derived) > 1e-3 * scale) & (np.abs(current) > 1e-3 * scale)
        if both.sum() > 10 and np.mean(np.sign(derived[both]) != np.sign(current[both])) > 0.1:
            attrs.setdefault("warnings", []).append(
                "<I>/mA disagrees in sign with the charge counter: the current is taken "
                "from the counter's increments instead")
            current = None
    if current is not None:
        attrs["current_from"] = used["current_mA"]
    elif inc is not None and t is not None:
        current = current_from_increments(t, inc)
        attrs["current_from"] = "charge increments / time between records (no measured current)"
    else:
        set_points = [c for c in names if c.startswith("control/")]
        if technique in _OPEN_CIRCUIT or technique is None and not set_points:
            current = np.zeros(n)
            inc = np.zeros(n)
            attrs["current_from"] = (
                f"zero: open circuit (technique {technique or 'unknown'}, no current recorded)"
            )
            attrs["charge_from"] = "zero: open circuit"
            attrs["open_circuit"] = True
    columns = {
        "time_s": t,
        "voltage_V": found["voltage_V"],
        "current_mA": current,
        "charge_mAh": None if inc is None else np.cumsum(inc),
        "step": found["step"],
        "cycle": found["cycle"],
        "half_cycle": found["half_cycle"],
    }
    if "freq/Hz" in names and n:
        freq = np.asarray(raw["freq/Hz"], dtype=np.float64)
        n_eis = int(np.sum(freq > 0))
        if n_eis:
            attrs["impedance_rows"] = n_eis
    return columns, attrs


def read_mpr_columns(path):
    """Parse an ``.mpr`` with galvani; return ``(columns, attrs)`` (see :func:`biologic_columns`)."""
    from galvani import BioLogic

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such .mpr file")
    try:
        with open(path, "rb") as fh:  # galvani leaves a file it opens itself open
            mpr = BioLogic.MPRfile(fh)
    except NotImplementedError as e:  # galvani: unknown column ID / module version
        # yadg's parser (an independent one) knows some columns galvani does not
        # (temperature probes, counter-electrode energies, ...): try it before refusing
        return _read_mpr_with_yadg(path, galvani_error=e)
    except Exception as e:  # noqa: BLE001 - truncated / not an .mpr: name the file
        raise DatasetError(
            f"{path}: not a readable BioLogic .mpr file ({type(e).__name__}: {e})"
        ) from e
    technique = None
    for module in getattr(mpr, "modules", []) or []:
        try:
            if module["shortname"].strip() == b"VMP Set" and len(module["data"]):
                technique = TECHNIQUES.get(module["data"][0])
        except Exception:  # noqa: BLE001, S112 - an odd settings module: technique unknown
            continue
    data = mpr.data
    if data.dtype.names is None:
        raise DatasetError(f"{path}: .mpr file holds no data columns")
    columns, attrs = biologic_columns(
        data, path=path, technique=technique, loop_starts=getattr(mpr, "loop_index", None)
    )
    start = getattr(mpr, "timestamp", None) or getattr(mpr, "startdate", None)
    attrs.update({"format": "BioLogic .mpr", "reader": _version("datalab-org-galvani")})
    if start is not None:
        attrs["start"] = start.isoformat()
    return columns, attrs


#: yadg's units -> EC-Lab's spelling in column names (``dq/mA.h``).
_YADG_UNITS = {"mA·h": "mA.h", "µA": "uA", "Ω": "Ohm", "°C": "°C"}


def _read_mpr_with_yadg(path: Path, *, galvani_error: Exception):
    """Parse an ``.mpr`` with yadg; its columns renamed as EC-Lab exports them."""
    try:
        from yadg.extractors.eclab.mpr import extract_from_path
    except ImportError:
        raise DatasetError(
            f"{path}: galvani cannot read this .mpr file: {galvani_error} (installing yadg "
            "adds a second parser that may)"
        ) from galvani_error
    try:
        tree = extract_from_path(path, timezone="UTC")
        ds = tree.to_dataset()
    except Exception as e:  # noqa: BLE001 - yadg's errors: name the file and both reasons
        raise DatasetError(
            f"{path}: neither galvani ({galvani_error}) nor yadg ({type(e).__name__}: {e}) "
            "can read this .mpr file"
        ) from e
    raw = {}
    for name in ds.data_vars:
        if str(name).endswith("_uncertainty") or name in ("control_V", "control_I"):
            continue
        unit = ds[name].attrs.get("units")
        label = str(name).replace("Q charge or discharge", "Q charge/discharge")
        label = label.replace("ox or red", "ox/red")
        key = f"{label}/{_YADG_UNITS.get(unit, unit)}" if unit else label
        raw[key] = np.asarray(ds[name].values)
    if "time/s" not in raw:
        raise DatasetError(f"{path}: .mpr file holds no time column (yadg read "
                           f"{sorted(raw)[:20]})")
    frame = pd.DataFrame(raw)
    meta = tree.attrs.get("original_metadata") or {}
    technique = (meta.get("settings") or {}).get("technique") if isinstance(meta, dict) else None
    columns, attrs = biologic_columns(frame, path=path, technique=technique or None)
    attrs.update({"format": "BioLogic .mpr",
                  "reader": f"{_version('yadg')} (galvani: {str(galvani_error)[:120]})"})
    if "uts" in ds.coords and ds["uts"].size:
        import datetime as _dt

        attrs["start"] = _dt.datetime.fromtimestamp(
            float(ds["uts"].values[0]) - float(frame["time/s"].iloc[0]), tz=_dt.UTC
        ).isoformat()
    return columns, attrs


_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+([eE][-+]?\d+)?$")


def read_mpt_columns(path):
    """Parse an EC-Lab text export ``.mpt``; return ``(columns, attrs)``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such .mpt file")
    try:
        with open(path, encoding="cp1252", errors="replace", newline="") as fh:
            first = fh.readline()
            if "EC-Lab ASCII FILE" in first or "BT-Lab ASCII FILE" in first:
                m = re.search(r"Nb header lines\s*:\s*(\d+)", fh.readline())
                if not m:
                    raise DatasetError(
                        f"{path}: EC-Lab text file without its 'Nb header lines : N' line "
                        "(line 2); expected an EC-Lab ASCII export"
                    )
                n_header = int(m.group(1))
                header = [first, f"Nb header lines : {n_header}\n"]
                header += [fh.readline() for _ in range(max(n_header - 2, 0))]
                names_line = header[-1]
            else:  # an export without the header block: the first line names the columns
                n_header, header, names_line = 1, [first], first
            data_line = fh.readline()
    except DatasetError:
        raise
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e})") from e
    if "time/s" not in names_line:
        raise DatasetError(
            f"{path}: no 'time/s' in the column line (line {n_header}) of this EC-Lab text "
            f"file; found {names_line.strip()[:200]!r}"
        )
    technique = None
    for line in header[2:6]:
        key = line.strip().lower()
        if key in _LONG_NAMES:
            technique = _LONG_NAMES[key]
            break
        if "impedance spectroscopy" in key:
            technique = line.strip()
            break
    fields = data_line.rstrip("\r\n").split("\t")
    decimal = "," if any(_DECIMAL_COMMA.match(f.strip()) for f in fields) else "."
    try:
        # EC-Lab writes XXX where a value could not be computed (e.g. the first time)
        raw = pd.read_csv(path, sep="\t", skiprows=n_header - 1, encoding="cp1252",
                          decimal=decimal, encoding_errors="replace", low_memory=False,
                          na_values=["XXX"])
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"{path}: not a readable EC-Lab text file ({type(e).__name__}: {e})") \
            from e
    raw = raw.loc[:, [c for c in raw.columns if not str(c).startswith("Unnamed:")]]
    raw.columns = [str(c).strip() for c in raw.columns]
    for c in raw.columns:
        if not pd.api.types.is_numeric_dtype(raw[c]):
            from asymflux.io._tables import first_non_number

            k, value = first_non_number(raw[c], decimal=decimal)[0] or (0, raw[c].iloc[0])
            raise DatasetError(
                f"{path}: column {c!r} holds {value!r} (data row {k + 1}, line "
                f"{n_header + 1 + k}) where a number is expected (decimal separator read "
                f"as {decimal!r})"
            )
    loops = [int(m.group(1)) for h in header
             if (m := re.search(r"Loop\s+\d+\s+from point number\s+(\d+)\s+to", h))]
    early: list[str] = []
    if "time/s" in raw.columns:
        no_time = raw["time/s"].isna().to_numpy()
        if no_time.any():
            # a record without a time is not a record of the time series: drop it, say so,
            # and move the loops' first points to the rows that remain
            kept_before = np.cumsum(~no_time) - (~no_time)
            loops = sorted({int(kept_before[k]) for k in loops if 0 <= k < len(raw)})
            raw = raw.loc[~no_time].reset_index(drop=True)
            early.append(f"{int(no_time.sum())} record(s) without a time (EC-Lab's 'XXX') "
                         "dropped")
    columns, attrs = biologic_columns(raw, path=path, technique=technique,
                                      loop_starts=loops or None)
    attrs.update({"format": "BioLogic EC-Lab text export (.mpt)",
                  "reader": f"pandas {pd.__version__}"})
    if early:
        attrs["warnings"] = [*attrs.get("warnings", []), *early]
    m = next((re.search(r"Acquisition started on\s*:\s*(.+)", h) for h in header
              if "Acquisition started on" in h), None)
    if m:
        attrs["start"] = m.group(1).strip()
    return columns, attrs
