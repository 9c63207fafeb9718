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


#: BioLogic charge columns -> factor to mAh, in order of preference (float64 mA.h first).
#: Whether each holds per-record increments or a cumulative counter is decided by its
#: content (:func:`_charge_kinds`), not its name: older EC-Lab versions write the
#: cumulative charge in the column galvani names ``dQ/C``.
CHARGE_COLUMNS = {"dq/mA.h": 1.0, "dQ/mA.h": 1.0, "dq/C": 1.0 / 3.6, "dQ/C": 1.0 / 3.6,
                  "(Q-Qo)/mA.h": 1.0, "(Q-Qo)/C": 1.0 / 3.6}
#: What a charge column holds by its name (used only when the content cannot tell).
_KIND_BY_NAME = {"dq/mA.h": "increments", "dQ/mA.h": "increments", "dq/C": "increments",
                 "dQ/C": "increments", "(Q-Qo)/mA.h": "cumulative", "(Q-Qo)/C": "cumulative"}
#: EC-Lab's ``mode`` flag (bits 0-1 of ``flags``; a column of the ``.mpt`` export):
#: 1 galvanostatic (CC), 2 potentiostatic (CV), 3 rest (open circuit).
MODE_REST = 3
_MODES = {1: "galvanostatic", 2: "potentiostatic", 3: "rest", 0: "undefined"}


def _names(raw) -> list[str]:
    if isinstance(raw, np.ndarray):
        return list(raw.dtype.names)
    return list(raw.keys()) if isinstance(raw, dict) else list(raw.columns)


def _drop_impedance_rows(path, raw, names, loop_starts, mode):
    """Drop rows with a frequency (impedance steps within a time series); say so."""
    n = len(raw[names[0]]) if names else 0
    cols = {c: np.asarray(raw[c]) for c in names}
    marks = [c for c in ("freq/Hz", "|Z|/Ohm") if c in cols]
    if not marks or n == 0:
        return cols, n, None, loop_starts, mode, None
    eis = np.zeros(n, dtype=bool)
    for c in marks:  # a frequency, or an impedance modulus, on the row
        v = np.asarray(cols[c], dtype=np.float64)
        eis |= np.isfinite(v) & (v > 0)
    if not eis.any():
        return cols, n, None, loop_starts, mode, None
    if eis.all():
        raise DatasetError(
            f"{path}: this is an impedance measurement (every row has {' or '.join(marks)}): "
            "one row per frequency, not a cycler time series")
    keep = ~eis
    kept = {c: v[keep] for c, v in cols.items()}
    if loop_starts is not None:
        before = np.cumsum(keep) - keep
        loop_starts = sorted({int(before[k]) for k in np.asarray(loop_starts, dtype=np.int64)
                              if 0 <= k < n})
    if mode is not None:
        mode = np.asarray(mode)[keep]
    steps = ""
    if "Ns" in cols:
        steps = f" (step(s) Ns {sorted({int(x) for x in np.asarray(cols['Ns'])[eis]})})"
    warning = (f"{int(eis.sum())} impedance record(s){steps} (with {' or '.join(marks)} > 0) "
               "dropped from the time series: one row per frequency, not a time record; "
               "the charge counters carry across them")
    return kept, int(keep.sum()), keep, loop_starts, mode, (cols, warning)


def _references(cols, t, *, current, current_name, mode, exclude):
    """Independent per-record charges, mAh, to judge a charge column by, best first:
    ``[(increments, what they are), ...]``."""
    from asymflux.io._counters import charge_increments, counter_increments

    out = []
    if current is not None and t is not None:
        step = cols["Ns"] if "Ns" in cols else None
        out.append((charge_increments(t, current, step=step),
                    f"the integral of {current_name} dt"))
    for name in ("(Q-Qo)/mA.h", "(Q-Qo)/C"):
        if name in cols and name != exclude:
            q = np.asarray(cols[name], dtype=np.float64) * CHARGE_COLUMNS[name]
            out.append((counter_increments(q), f"the steps of {name}"))
            break
    if "Q charge/discharge/mA.h" in cols and "half cycle" in cols:
        hc = np.asarray(cols["half cycle"])
        out.append((counter_increments(np.asarray(cols["Q charge/discharge/mA.h"], np.float64),
                                       resets=np.r_[False, hc[1:] != hc[:-1]]),
                    "the steps of Q charge/discharge/mA.h"))
    setp = next((c for c in ("control/mA", "control/V/mA") if c in cols), None)
    if setp is not None and mode is not None and t is not None and len(t) > 2:
        # galvanostatic records: the set point is the current (in CV holds it is a voltage)
        cc = (np.asarray(mode) == 1)
        r = np.full(len(t), np.nan)
        r[1:] = np.where(cc[1:] & cc[:-1], np.asarray(cols[setp], np.float64)[1:]
                         * np.diff(t) / 3600.0, np.nan)
        out.append((r, f"{setp} x dt on galvanostatic records (mode 1)"))
    return out


def _charge_kinds(cols, t, *, current, current_name, mode, attrs):
    """{column: (values mAh, "increments" | "cumulative")} for the file's charge columns."""
    from asymflux.io._counters import counter_kind

    out = {}
    why = []
    for name, factor in CHARGE_COLUMNS.items():
        if name not in cols:
            continue
        values = np.asarray(cols[name], dtype=np.float64) * factor
        refs = _references(cols, t, current=current, current_name=current_name, mode=mode,
                           exclude=name)
        kind, tried = None, []
        for ref, ref_name in refs:  # the first reference that decides
            kind, m_inc, m_cum, k = counter_kind(values, ref)
            if kind is not None:
                break
            tried.append(f"{ref_name} on {k} records (misfit {m_inc:.3g} as increments, "
                         f"{m_cum:.3g} as a counter)")
        if kind is None:
            kind = _KIND_BY_NAME[name]
            how = ("nothing independent to compare with" if not refs else
                   "neither reading fits " + "; ".join(tried))
            why.append(f"{name}: {kind}, by its name ({how})")
        else:
            good, bad = (m_inc, m_cum) if kind == "increments" else (m_cum, m_inc)
            why.append(f"{name}: {kind} (its {'values' if kind == 'increments' else 'steps'} "
                       f"match {ref_name}: median misfit {good:.2g} on {k} records, "
                       f"{bad:.2g} read the other way)")
            if kind != _KIND_BY_NAME[name]:
                attrs.setdefault("warnings", []).append(
                    f"{name} holds {'a cumulative charge' if kind == 'cumulative' else 'per-record increments'}"
                    f", not {'increments' if kind == 'cumulative' else 'a cumulative charge'} as "
                    "its name says (read by its content)")
        out[name] = (values, kind)
    if why:
        attrs["charge_columns"] = "; ".join(why)
    return out


def _carry(values, keep):
    """Increments of the kept rows, each with those of the dropped rows just before it."""
    c = np.cumsum(np.where(np.isfinite(values), values, 0.0))
    idx = np.flatnonzero(keep)
    out = np.empty(idx.size)
    if idx.size:
        out[0] = values[idx[0]]
        out[1:] = np.diff(c[idx])
        lost = ~np.isfinite(values[idx])
        out[lost] = np.nan  # a missing increment stays missing (bridged below if it can be)
    return out


def biologic_columns(raw, *, path, technique=None, loop_starts=None, mode=None):
    """Our columns from BioLogic's (a DataFrame, dict or structured array by column name).

    The seam between the parsers (galvani, yadg, the ``.mpt`` text) and our table:
    everything BioLogic-specific is decided here from the raw columns.

    Parameters
    ----------
    raw : DataFrame, dict of (n,) arrays or structured array
        The file's columns, named as EC-Lab exports them (``time/s``, ``I/mA``, ...).
    path : str or Path, keyword-only
        For messages.
    technique : str, optional, keyword-only
        EC-Lab's technique (``"GCPL"``, ``"OCV"``, ...), when the file says.
    loop_starts : sequence of int, optional, keyword-only
        First records of the technique's loops (where ``(Q-Qo)`` restarts).
    mode : (n,) array_like of int, optional, keyword-only
        EC-Lab's mode flag per record (1 CC, 2 CV, 3 rest); else a ``mode`` column of
        ``raw`` is used when there is one.

    Returns
    -------
    columns, attrs
        ``columns`` maps ours to arrays (None when absent); ``attrs`` says where each came
        from (``current_from``, ``charge_from``, ``charge_columns``: which charge column
        was read as increments and which as a cumulative counter, and why).
    """
    names = _names(raw)
    _refuse_impedance(path, technique, raw if not isinstance(raw, np.ndarray) else
                      {n: raw[n] for n in names})
    if mode is None and "mode" in names:
        mode = np.nan_to_num(np.asarray(raw["mode"], dtype=np.float64), nan=-1).astype(np.int64)
    n_all = len(raw[names[0]]) if names else 0
    cols, n, keep, loop_starts, mode, dropped = _drop_impedance_rows(
        path, raw, names, loop_starts, mode)
    attrs: dict = {"technique": technique, "_file_columns": names,
                   "_looked_for": {k: [c for c, _ in v] for k, v in MPR_COLUMNS.items()}}
    if dropped is not None:
        full, warning = dropped
        attrs["warnings"] = [warning]
        attrs["impedance_rows"] = int(n_all - n)
        attrs["impedance_rows_dropped"] = True
        for name in CHARGE_COLUMNS:  # increments carried across the dropped rows
            if name in full:
                cols[name + "#carried"] = _carry(np.asarray(full[name], np.float64), keep)
    found: dict[str, np.ndarray | None] = {}
    used: dict[str, str] = {}
    for ours, candidates in MPR_COLUMNS.items():
        found[ours] = None
        if ours in ("dq_mAh", "q_minus_qo_mAh"):
            continue  # decided by content below
        for theirs, factor in candidates:
            if theirs in cols:
                col = np.asarray(cols[theirs])
                if ours in ("step", "cycle", "half_cycle"):
                    col = np.nan_to_num(col.astype(np.float64)).astype(np.int64)
                else:
                    col = col.astype(np.float64) * factor
                found[ours] = col
                used[ours] = theirs
                break
    t = found["time_s"]
    from asymflux.io._counters import (
        counter_increments,
        counter_restarts,
        current_from_increments,
    )

    current = found["current_mA"]
    kinds = _charge_kinds(cols, t, current=current, current_name=used.get("current_mA"),
                          mode=mode, attrs=attrs)
    pick_inc = next((c for c, (_, k) in kinds.items() if k == "increments"), None)
    pick_cum = next((c for c in ("(Q-Qo)/mA.h", "(Q-Qo)/C", *kinds)
                     if c in kinds and kinds[c][1] == "cumulative"), None)
    if pick_inc is not None:
        factor = CHARGE_COLUMNS[pick_inc]
        carried = cols.get(pick_inc + "#carried")
        found["dq_mAh"] = kinds[pick_inc][0] if carried is None else carried * factor
        used["dq_mAh"] = pick_inc
    if pick_cum is not None:
        found["q_minus_qo_mAh"] = kinds[pick_cum][0]
        used["q_minus_qo_mAh"] = pick_cum
    # charge: increments summed, bridged by the cumulative counter's steps where both agree
    # (no float32 round-off summed over 1e5 records); else the cumulative counter with its
    # restarts (loops, and jumps to zero) undone; else Q charge/discharge (restarts every
    # half cycle)
    inc = None
    if found["dq_mAh"] is not None:
        dq = np.where(np.isfinite(found["dq_mAh"]), found["dq_mAh"], 0.0)
        inc = dq.copy()
        if n:
            inc[0] = 0.0
        attrs["charge_from"] = f"{used['dq_mAh']} (the cycler's charge increments), summed"
        if found["q_minus_qo_mAh"] is not None and n > 1:
            qq = found["q_minus_qo_mAh"]
            d = np.diff(qq)
            tol = 1e-5 * max(float(np.nanmax(np.abs(qq))), 1e-12) + 1e-9
            same = np.isfinite(d) & (np.abs(d - dq[1:]) <= tol)
            inc[1:] = np.where(same, d, dq[1:])
            # a missing increment (EC-Lab's XXX, an empty cell): the counter's step across it
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
        qq = found["q_minus_qo_mAh"]
        resets = np.zeros(n, dtype=bool)
        if loop_starts is not None:
            ls = np.asarray(loop_starts, dtype=np.int64)
            resets[ls[(ls > 0) & (ls < n)]] = True
        ref = None
        if current is not None and t is not None:
            from asymflux.io._counters import charge_increments

            # time gaps integrated too: a counter's step across a gap is no restart
            ref = charge_increments(t, current, step=cols.get("Ns"), max_gap_s=np.inf)
        jumps = counter_restarts(qq, reference_increments=ref) & ~resets
        resets |= jumps
        inc = counter_increments(qq, resets=resets)
        attrs["charge_from"] = f"{used['q_minus_qo_mAh']} (a cumulative counter; restarts at " \
            f"loops{f' and {int(jumps.sum())} jump(s) to zero' if jumps.any() else ''} undone)"
    elif found["q_half_cycle_mAh"] is not None and found["half_cycle"] is not None:
        hc = found["half_cycle"]
        resets = np.r_[False, hc[1:] != hc[:-1]]
        inc = counter_increments(found["q_half_cycle_mAh"], resets=resets)
        attrs["charge_from"] = f"{used['q_half_cycle_mAh']} (restarts at half cycles undone)"
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
        _no_current(path, technique, mode, n, attrs)
        if attrs.get("open_circuit"):
            current = np.zeros(n)
            inc = np.zeros(n)
    columns = {
        "time_s": t,
        "voltage_V": found["voltage_V"],
        "current_mA": current,
        "charge_mAh": None if inc is None else np.cumsum(inc),
        "step": found["step"],
        "cycle": found["cycle"],
        "half_cycle": found["half_cycle"],
    }
    return columns, attrs


def _no_current(path, technique, mode, n, attrs):
    """A file without current or charge counter: open circuit if its mode flags (or, without
    them, its technique) say so; else ``attrs["_no_current"]`` says why it cannot be read."""
    if mode is not None:
        m = np.asarray(mode, dtype=np.int64)
        rest = m == MODE_REST
        if m.size and rest.any() and not np.isin(m, (1, 2)).any():
            other = "" if rest.all() else f", {int((~rest).sum())} record(s) with no mode"
            attrs["current_from"] = ("zero: open circuit (EC-Lab's mode flag is 3, rest, on "
                                     f"every record{other}; technique {technique or 'unknown'})")
            attrs["charge_from"] = "zero: open circuit"
            attrs["open_circuit"] = True
            return
        values, counts = np.unique(m, return_counts=True)
        said = ", ".join(f"{c} record(s) mode {v} ({_MODES.get(int(v), 'unknown')})"
                         for v, c in zip(values, counts, strict=True))
        attrs["_no_current"] = (
            f"the file records no current and no charge counter, and its mode flags say "
            f"{said}: only rest (mode 3) records can be read as zero current")
        return
    if technique in _OPEN_CIRCUIT:
        attrs["current_from"] = f"zero: open circuit (technique {technique}, no current recorded)"
        attrs["charge_from"] = "zero: open circuit"
        attrs["open_circuit"] = True
        return
    attrs["_no_current"] = (
        "the file records no current and no charge counter, and neither EC-Lab's mode flags "
        f"nor its technique ({technique or 'not stated'}) say the cell was at open circuit")


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
    mode = None
    if "mode" in (getattr(mpr, "flags_dict", None) or {}):
        mode = mpr.get_flag("mode")  # bits 0-1 of the flags byte: 1 CC, 2 CV, 3 rest
    columns, attrs = biologic_columns(
        data, path=path, technique=technique, loop_starts=getattr(mpr, "loop_index", None),
        mode=mode,
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
        if str(name).endswith("_uncertainty") or name == "control_V":
            continue
        unit = ds[name].attrs.get("units")
        if name == "control_I":  # yadg's set current (galvanostatic records): never read as
            # the current, only to judge the charge columns by (mode 1 records)
            if unit == "mA":
                raw["control/mA"] = np.asarray(ds[name].values)
            continue
        if name == "Q charge or discharge" and unit == "C":
            # yadg labels galvani's column 211 (Q charge/discharge/mA.h) "C"; its values are
            # mA.h (equal to galvani's and to the steps of (Q-Qo)/mA.h on real files)
            unit = "mA·h"
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
