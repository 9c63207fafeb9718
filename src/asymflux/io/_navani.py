"""Neware, Arbin, Landt/Lanhe, Ivium and Maccor files, through navani (the Grey group's loader).

navani parses each brand (Neware with NewareNDA, Arbin ``.res`` with galvani's
``res2sqlite`` and Debian's ``mdbtools``, Excel exports with pandas) and keeps the
file's own columns beside its constructed ones. We take time and voltage from navani's
``Time`` / ``Voltage`` and the current and charge from the file's own columns, whose
units their names say (navani leaves Arbin's current and capacities in A and Ah).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from asymflux.io._errors import DatasetError

#: navani's suffix for each kind of file (it chooses its parser by suffix).
_SUFFIX = {
    "neware-nda": ".nda",
    "neware-ndax": ".ndax",
    "arbin-res": ".res",
    "ivium-txt": ".txt",
    "maccor-txt": ".txt",
}
_BRAND = {
    "neware-nda": "Neware .nda",
    "neware-ndax": "Neware .ndax",
    "arbin-res": "Arbin .res",
    "excel": "cycler Excel export",
    "ivium-txt": "Ivium text export",
    "maccor-txt": "Maccor text export",
}

#: The file's current column -> factor to mA (first found wins).
CURRENT_COLUMNS = (
    ("Current(mA)", 1.0), ("Current/mA", 1.0), ("I /mA", 1.0), ("Current(A)", 1000.0),
    ("Amps", 1000.0), ("Amps(mA)", 1.0),
)
#: (charge counter, discharge counter, factor to mAh): non-negative, restart at steps/cycles.
COUNTER_PAIRS = (
    ("Charge_Capacity(mAh)", "Discharge_Capacity(mAh)", 1.0),
    ("Charge_Capacity(Ah)", "Discharge_Capacity(Ah)", 1000.0),
    ("Chg. Cap.(mAh)", "DChg. Cap.(mAh)", 1.0),
    ("Charge_Capacity", "Discharge_Capacity", 1000.0),  # Arbin .res: Ah
)
#: One unsigned counter for charge and discharge alike (signed by the current).
SINGLE_COUNTERS = (("Capacity/mAh", 1.0), ("Capacity(mAh)", 1.0), ("Amp-hr", 1000.0),
                   ("Amp-hr(mAh)", 1.0))
STEP_COLUMNS = ("Step", "Step_Index", "Step Index")
CYCLE_COLUMNS = ("Cycle", "Cycle_Index", "Cycle Index", "Cyc#")


@contextlib.contextmanager
def _quiet_fds():
    """Silence the parsers' own printing, Python's and their subprocesses' (mdb-export).

    Yields a list that holds, once the block is left, what was printed (its last lines
    name the reason of a failure).
    """
    import os
    import sys

    printed: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        saved = [os.dup(1), os.dup(2)]
        out = io.StringIO()
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(out):
                yield printed
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            printed.append(out.getvalue() + sink.read().decode("utf-8", "replace"))


def _navani_frame(path: Path, kind: str) -> pd.DataFrame:
    from navani import echem as navani_echem

    if kind == "arbin-res" and shutil.which("mdb-export") is None:
        raise DatasetError(
            f"{path}: Arbin .res files are Access databases; reading them needs mdbtools' "
            "mdb-export (Debian/Ubuntu: apt-get install mdbtools; macOS: brew install mdbtools)"
        )
    suffix = _SUFFIX.get(kind)
    if kind == "excel":
        with open(path, "rb") as fh:
            suffix = ".xlsx" if fh.read(2) == b"PK" else ".xls"
    with contextlib.ExitStack() as stack:
        target = path
        if path.suffix.lower() != suffix:  # navani picks its parser by suffix: give it one
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="asymflux-")))
            target = tmp / f"cycler{suffix}"
            target.symlink_to(path.resolve())
        printed: list[str] = []
        try:
            with _quiet_fds() as printed, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                df = navani_echem.echem_file_loader(str(target))
        except DatasetError:
            raise
        except Exception as e:  # noqa: BLE001 - navani/NewareNDA/galvani errors: name the file
            said = [ln.strip() for ln in "".join(printed).splitlines() if ln.strip()]
            reason = f"{type(e).__name__}: {e}".strip()
            if said and (not str(e).strip() or len(reason) < 20):
                reason += f"; the parser said: {said[-1][:200]}"
            raise DatasetError(
                f"{path}: navani cannot read this {_BRAND.get(kind, kind)} file ({reason})"
            ) from e
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise DatasetError(f"{path}: {_BRAND.get(kind, kind)} file holds no records")
    return df.reset_index(drop=True)


def _numeric(df: pd.DataFrame, name: str, *, path) -> np.ndarray:
    col = pd.to_numeric(df[name], errors="coerce").to_numpy(np.float64)
    return col


def read_navani_columns(path, kind: str):
    """Read ``path`` (of ``kind``, see :func:`asymflux.io.echem.echem_format`) via navani."""
    from asymflux.io._biologic import _version
    from asymflux.io._counters import counter_increments

    path = Path(path)
    try:
        df = _navani_frame(path, kind)
    except DatasetError as e:
        if kind != "arbin-res" or shutil.which("mdb-export") is None:
            raise
        # navani converts the whole database (galvani's res2sqlite), which fails on some
        # auxiliary tables; the records themselves are one table: read it alone
        return _arbin_records(path, navani_error=e)
    names = list(df.columns)
    attrs: dict = {"format": _BRAND.get(kind, kind), "reader": _version("navani"),
                   "_file_columns": names,
                   "_looked_for": {"time_s": ["Time"], "voltage_V": ["Voltage"],
                                   "current_mA": [c for c, _ in CURRENT_COLUMNS] + ["Current"]}}
    n = len(df)
    t = _numeric(df, "Time", path=path) if "Time" in df.columns else None
    if t is not None and kind.startswith("neware") and n > 1:
        # navani builds Neware's time from 1-s time stamps at each step start plus the step
        # time: at a step edge it can step back by less than the stamps' resolution
        back = np.diff(t) < 0
        if back.any() and np.all(np.diff(t)[back] > -1.0):
            t = np.maximum.accumulate(t)
            attrs["warnings"] = [f"{int(back.sum())} record time(s) moved forward by < 1 s: "
                                 "Neware step starts are stamped to the second"]
    v = _numeric(df, "Voltage", path=path) if "Voltage" in df.columns else None
    current = None
    for name, factor in CURRENT_COLUMNS:
        if name in df.columns:
            current = _numeric(df, name, path=path) * factor
            attrs["current_from"] = name
            break
    if current is None and "Current" in df.columns:
        # Arbin .res keeps Arbin's amperes; navani's other readers give mA
        factor = 1000.0 if kind == "arbin-res" else 1.0
        current = _numeric(df, "Current", path=path) * factor
        attrs["current_from"] = "Current (A)" if factor != 1.0 else "Current (mA)"
    step = next((df[c] for c in STEP_COLUMNS if c in df.columns), None)
    cycle = next((df[c] for c in CYCLE_COLUMNS if c in df.columns), None)
    step = None if step is None else pd.to_numeric(step, errors="coerce").fillna(-1).to_numpy()
    cycle = None if cycle is None else pd.to_numeric(cycle, errors="coerce").fillna(-1).to_numpy()
    step_change = None if step is None else np.r_[False, step[1:] != step[:-1]]
    # Neware resets its counters at every step; Arbin's run through a cycle. A counter
    # that goes down restarted in any case.
    resets = step_change if kind.startswith("neware") else None
    charge = None
    for up, down, factor in COUNTER_PAIRS:
        if up in df.columns and down in df.columns:
            inc = (counter_increments(_numeric(df, up, path=path) * factor, resets=resets,
                                      unsigned=True)
                   - counter_increments(_numeric(df, down, path=path) * factor, resets=resets,
                                        unsigned=True))
            charge = np.cumsum(inc)
            attrs["charge_from"] = f"{up} - {down} (restarts undone)"
            break
    if charge is None and current is not None:
        for name, factor in SINGLE_COUNTERS:
            if name in df.columns:
                sign = np.sign(np.nan_to_num(current))
                inc = counter_increments(_numeric(df, name, path=path) * factor,
                                         resets=step_change, unsigned=True, sign=sign)
                charge = np.cumsum(inc)
                attrs["charge_from"] = f"{name}, signed by the current (restarts undone)"
                break
    if "Timestamp" in df.columns and n:
        with contextlib.suppress(Exception):
            attrs["start"] = pd.Timestamp(df["Timestamp"].iloc[0]).isoformat()
    columns = {"time_s": t, "voltage_V": v, "current_mA": current, "charge_mAh": charge,
               "step": step, "cycle": cycle}
    return columns, attrs


def _arbin_records(path: Path, *, navani_error: DatasetError):
    """An Arbin ``.res`` file's ``Channel_Normal_Table`` through ``mdb-export`` alone."""
    import subprocess

    from asymflux.io._tables import ARBIN_RECORDS, dialect_columns

    try:
        out = subprocess.run(["mdb-export", str(path), "Channel_Normal_Table"],
                             capture_output=True, timeout=600, check=True)
        df = pd.read_csv(io.BytesIO(out.stdout))
    except (subprocess.SubprocessError, OSError, ValueError) as e:
        raise DatasetError(
            f"{navani_error}; mdb-export cannot read its Channel_Normal_Table either "
            f"({type(e).__name__})"
        ) from e
    if df.empty:
        raise DatasetError(f"{path}: Arbin .res file holds no records (Channel_Normal_Table "
                           "is empty)")
    if "Test_ID" in df.columns and df["Test_ID"].nunique() > 1:
        raise DatasetError(f"{path}: Arbin .res file holds {df['Test_ID'].nunique()} tests "
                           "(Test_ID); expected one")
    if "Data_Point" in df.columns:
        df = df.sort_values("Data_Point", kind="stable").reset_index(drop=True)
    got = ARBIN_RECORDS.find(df.columns)
    if got is None:
        raise DatasetError(f"{path}: Arbin .res Channel_Normal_Table lacks Test_Time, Voltage "
                           f"or Current; it has {list(df.columns)}")
    columns, attrs = dialect_columns(df, ARBIN_RECORDS, got, path=path)
    from asymflux.io._biologic import _version

    attrs.update({"format": "Arbin .res", "current_from": "Current (A)",
                  "reader": f"mdb-export (mdbtools), pandas {pd.__version__}; "
                            f"{_version('navani')} could not: {str(navani_error)[-160:]}"})
    return columns, attrs
