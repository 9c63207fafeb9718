"""Cycler formats beyond the brands' own files: the Battery Data Format (CSV, gzip,
Parquet), Arbin and archive CSV exports, EC-Lab 11.5x text exports, Arbin ``.res``
files that navani cannot convert, and Maccor layouts that are refused.

Independent readers: navani (BDF), mdb-export (Arbin ``.res``), pandas on the raw table.
"""

from __future__ import annotations

import gzip
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from asymflux.io import DatasetError, echem_format, read_echem
from asymflux.io.echem import EchemWarning
from tests._helpers.io_utils import require_echem_dir, snapshot

ARBIN = "arbin_example.res"


def _read(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EchemWarning)
        return read_echem(path, **kw)


def _bdf_table(n=60, *, machine_names=False):
    """A charge then a discharge at 1 mA with the BDF's unsigned capacity counters."""
    t = np.arange(n, dtype=float) * 10.0
    i_a = np.where(np.arange(n) < n // 2, 1e-3, -1e-3)
    i_a[0] = 0.0
    dq_ah = np.r_[0.0, i_a[1:] * np.diff(t) / 3600.0]
    charging = np.cumsum(np.where(dq_ah > 0, dq_ah, 0.0))
    discharging = np.cumsum(np.where(dq_ah < 0, -dq_ah, 0.0))
    v = 3.5 + 0.5 * np.cumsum(dq_ah) / 0.01
    names = (["test_time_second", "voltage_volt", "current_ampere", "charging_capacity_ah",
              "discharging_capacity_ah", "step_count"] if machine_names else
             ["Test Time / s", "Voltage / V", "Current / A", "Charging Capacity / Ah",
              "Discharging Capacity / Ah", "Step Count / 1"])
    step = np.where(np.arange(n) < n // 2, 1, 2)
    return pd.DataFrame(dict(zip(names, [t, v, i_a, charging, discharging, step],
                                 strict=True)))


@pytest.mark.parametrize("suffix", [".bdf", ".bdf.gz", ".bdf.parquet", ".csv", ".dat"])
@pytest.mark.parametrize("machine_names", [False, True])
def test_battery_data_format_in_every_container(tmp_path, suffix, machine_names):
    table = _bdf_table(machine_names=machine_names)
    path = tmp_path / f"cell{suffix}"
    if suffix == ".bdf.parquet":
        table.to_parquet(path)
    elif suffix == ".bdf.gz":
        with gzip.open(path, "wt") as fh:
            table.to_csv(fh, index=False)
    else:
        table.to_csv(path, index=False)
    df = _read(path, active_mass_mg=2.0)
    assert df.attrs["format"] == "Battery Data Format (BDF)"
    t, v, i = (table.iloc[:, k].to_numpy() for k in range(3))
    np.testing.assert_allclose(df["time_s"], t, rtol=1e-12)
    np.testing.assert_allclose(df["voltage_V"], v, rtol=1e-12)
    np.testing.assert_allclose(df["current_mA"], 1000 * i, rtol=1e-12)  # A -> mA
    net_mAh = 1000 * (table.iloc[:, 3] - table.iloc[:, 4]).to_numpy()
    np.testing.assert_allclose(df["charge_mAh"], net_mAh - net_mAh[0], atol=1e-12)
    assert "Charging Capacity" in df.attrs["charge_from"] or \
        "charging_capacity_ah" in df.attrs["charge_from"]
    assert df["step"].tolist() == table.iloc[:, 5].tolist()
    np.testing.assert_allclose(df["capacity_mAh_g"], df["charge_mAh"] / 2e-3)


def test_battery_data_format_agrees_with_navani(tmp_path):
    from navani import echem as navani_echem

    path = tmp_path / "cell.bdf"
    _bdf_table().to_csv(path, index=False)
    theirs = navani_echem.echem_file_loader(str(path))
    ours = _read(path)
    np.testing.assert_allclose(ours["time_s"], theirs["Time"], rtol=1e-12)
    np.testing.assert_allclose(ours["voltage_V"], theirs["Voltage"], rtol=1e-12)
    np.testing.assert_allclose(ours["current_mA"], theirs["Current"], rtol=1e-12)


def test_battery_data_format_without_counters_integrates_the_current(tmp_path):
    table = _bdf_table().iloc[:, :3]
    path = tmp_path / "cell.bdf"
    table.to_csv(path, index=False)
    df = _read(path)
    assert "integrated" in df.attrs["charge_from"]
    t, i = table["Test Time / s"].to_numpy(), table["Current / A"].to_numpy() * 1000
    # a record reports what flowed since the one before: 1 mA for 29 intervals of 10 s, then
    # -1 mA for 30 intervals (the sign change is a step edge: the later current counts)
    assert df["charge_mAh"].iloc[-1] == pytest.approx((29 - 30) * 10 / 3600, abs=1e-9)
    assert df["current_mA"].to_numpy() == pytest.approx(i)
    assert t.size == len(df)


def test_battery_data_format_without_a_current_names_the_format_and_column(tmp_path):
    path = tmp_path / "cell.bdf"
    _bdf_table().iloc[:, :2].to_csv(path, index=False)
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError) as e:
        read_echem(path)
    msg = str(e.value)
    assert "cell.bdf" in msg and "Battery Data Format" in msg and "'Current / A'" in msg
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("content, match", [
    (b"\x1f\x8b\x08\x00garbage", "damaged gzip"),
    (gzip.compress(b"\x00\x01\x02binary"), "does not hold a text table"),
    (b"PAR1 not really parquet", "not a readable Parquet table"),
])
def test_broken_compressed_tables_are_refused_naming_the_file(tmp_path, content, match):
    path = tmp_path / "broken.bdf.gz"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=match) as e:
        read_echem(path)
    assert "broken.bdf.gz" in str(e.value)


@pytest.fixture(scope="module")
def arbin_raw():
    """The Arbin records as mdb-export (mdbtools) prints them: independent of navani."""
    import subprocess

    if shutil.which("mdb-export") is None:
        pytest.skip("mdbtools not installed (apt-get install mdbtools)")
    path = require_echem_dir() / ARBIN
    out = subprocess.run(["mdb-export", str(path), "Channel_Normal_Table"], check=True,
                         capture_output=True).stdout
    import io

    return path, pd.read_csv(io.BytesIO(out)).sort_values("Data_Point").reset_index(drop=True)


@pytest.mark.parametrize("layout", ["mits-pro", "no-units", "battery-archive", "batterydata"])
def test_arbin_and_archive_csv_exports(tmp_path, arbin_raw, layout):
    """The same records as Arbin's CSV export (with or without units in the names) and as
    the Battery Archive / batterydata.org publish them read as the .res file itself."""
    res, raw = arbin_raw
    names = {
        "mits-pro": ["Test_Time(s)", "Voltage(V)", "Current(A)", "Charge_Capacity(Ah)",
                     "Discharge_Capacity(Ah)"],
        "no-units": ["Test_Time", "Voltage", "Current", "Charge_Capacity",
                     "Discharge_Capacity"],
        "battery-archive": ["Test_Time (s)", "Voltage (V)", "Current (A)",
                            "Charge_Capacity (Ah)", "Discharge_Capacity (Ah)"],
        "batterydata": ["Time_s", "Voltage_V", "Current_A", "Charge_Capacity_Ah",
                        "Discharge_Capacity_Ah"],
    }[layout]
    table = pd.DataFrame(dict(zip(names, [raw[c] for c in (
        "Test_Time", "Voltage", "Current", "Charge_Capacity", "Discharge_Capacity")],
        strict=True)))
    table.insert(0, "Cycle_Index", raw["Cycle_Index"])
    if layout == "no-units":  # the .res names: Arbin's bookkeeping columns say it is Arbin
        table.insert(0, "Step_Index", raw["Step_Index"])
        table.insert(0, "Data_Point", raw["Data_Point"])
    path = tmp_path / "export.csv"
    table.to_csv(path, index=False, float_format="%.17g")
    ours, direct = _read(path), _read(res)
    np.testing.assert_allclose(ours["time_s"], raw["Test_Time"], rtol=1e-12)
    np.testing.assert_allclose(ours["voltage_V"], raw["Voltage"], rtol=1e-12)
    np.testing.assert_allclose(ours["current_mA"], 1000 * raw["Current"], rtol=1e-12)
    np.testing.assert_allclose(ours["charge_mAh"], direct["charge_mAh"], rtol=1e-9, atol=1e-9)
    assert ours["cycle"].tolist() == raw["Cycle_Index"].tolist()


def test_arbin_res_that_navani_cannot_convert_is_read_from_its_records(arbin_raw, monkeypatch):
    """navani converts the whole Access database (some auxiliary tables break it); the
    records table alone, through mdb-export, gives the same table."""
    from asymflux.io import _navani

    res, raw = arbin_raw
    expected = _read(res)

    def refuse(path, kind):
        raise DatasetError(f"{path}: navani cannot read this Arbin .res file (IntegrityError: "
                           "UNIQUE constraint failed: Auxiliary_Table.Test_ID)")

    monkeypatch.setattr(_navani, "_navani_frame", refuse)
    df = _read(res)
    assert df.attrs["reader"].startswith("mdb-export") and "IntegrityError" in df.attrs["reader"]
    for c in ("time_s", "voltage_V", "current_mA", "charge_mAh", "step", "cycle"):
        np.testing.assert_allclose(df[c], expected[c], rtol=1e-12, atol=1e-12, err_msg=c)


def _eclab_115_mpt(path, *, first_time="XXX", decimal=","):
    """EC-Lab 11.5x's text export: ``<Ewe/V>`` for the averaged potential, XXX where a
    value could not be computed, decimal commas on a European Windows."""
    cols = ["mode", "error", "time/s", "<Ewe/V>", "<I>/mA", "(Q-Qo)/C", "Ns"]
    rows = []
    for k in range(12):
        t = first_time if k == 0 else f"{10.0 * k:.4f}"
        q = 0.01 * 3.6 * k / 10  # C
        rows.append(["1", "0", t, f"{3.40 + 0.001 * k:.7f}", "0.0100000" if k else "0",
                     f"{q:.9E}", "0"])
    header = ["EC-Lab ASCII FILE", "Nb header lines : XX", "", "Chronopotentiometry", "",
              "EC-Lab for windows v11.50 (software)", ""]
    header += ["\t".join(cols)]
    header[1] = f"Nb header lines : {len(header)}"
    body = ["\t".join(v.replace(".", decimal) for v in r) for r in rows]
    path.write_bytes(("\r\n".join(header + body) + "\r\n").encode("cp1252"))
    return path


@pytest.mark.parametrize("decimal", [",", "."])
def test_eclab_11_5_text_export_with_xxx_and_averaged_potential(tmp_path, decimal):
    path = _eclab_115_mpt(tmp_path / "v1150_CP.mpt", decimal=decimal)
    assert echem_format(path) == "biologic-mpt"
    with pytest.warns(EchemWarning, match="1 record.*without a time.*dropped"):
        df = read_echem(path)
    assert len(df) == 11  # the record whose time is XXX is not a record of the time series
    np.testing.assert_allclose(df["time_s"], 10.0 * np.arange(1, 12))
    np.testing.assert_allclose(df["voltage_V"], 3.40 + 0.001 * np.arange(1, 12), rtol=1e-7)
    np.testing.assert_allclose(df["charge_mAh"], 0.01 * (np.arange(1, 12) - 1) / 10,
                               rtol=1e-8, atol=1e-12)


def test_maccor_layout_navani_does_not_read_is_refused_by_name(tmp_path):
    path = tmp_path / "maccor_002.txt"
    path.write_bytes(b"Name:\tCELL-015\r\nChannel:\t53\r\nTester\tMaccor #4\r\nDescription\t"
                     + b"\x00" * 64 + b"\r\nRec\tCycle P\tTestTime\tCurrent [A]\tVoltage [V]\r\n")
    with pytest.raises(DatasetError) as e:
        read_echem(path)
    msg = str(e.value)
    assert "maccor_002.txt" in msg and "Maccor" in msg and "Today's Date" in msg


def _ours(n=5):
    t = np.arange(n) * 1.5
    return pd.DataFrame({"time_s": t, "voltage_V": 3.5 + 0.01 * t,
                         "current_mA": np.full(n, 0.25)})


@pytest.mark.parametrize("layout", ["utf-16", "utf-8-bom", "semicolon-decimal-comma", "tab"])
def test_text_tables_in_the_layouts_spreadsheets_write(tmp_path, layout):
    """Excel's "Unicode text" (UTF-16), a UTF-8 byte-order mark, a European CSV (; and
    decimal commas) and tab-separated text all read without options."""
    table = _ours()
    path = tmp_path / "cycler.csv"
    if layout == "utf-16":
        table.to_csv(path, index=False, encoding="utf-16", sep="\t")
    elif layout == "utf-8-bom":
        table.to_csv(path, index=False, encoding="utf-8-sig")
    elif layout == "semicolon-decimal-comma":
        table.to_csv(path, index=False, sep=";", decimal=",")
    else:
        table.to_csv(path, index=False, sep="\t")
    assert echem_format(path) == "csv"
    df = _read(path)
    for c in table.columns:
        np.testing.assert_allclose(df[c], table[c], rtol=1e-12, err_msg=c)
    assert df["charge_mAh"].iloc[-1] == pytest.approx(0.25 * 6.0 / 3600)


@pytest.mark.parametrize("which", ["ours", "bdf"])
def test_excel_workbook_with_a_known_table_is_read(tmp_path, which):
    table = _ours() if which == "ours" else _bdf_table()
    path = tmp_path / "sheet.xlsx"
    table.to_excel(path, index=False)
    df = _read(path)
    assert df.attrs["format"].startswith("Excel workbook")
    np.testing.assert_allclose(df["time_s"], table.iloc[:, 0], rtol=1e-12)
    np.testing.assert_allclose(df["voltage_V"], table.iloc[:, 1], rtol=1e-12)


def test_excel_workbook_of_unknown_columns_names_them(tmp_path):
    path = tmp_path / "notes.xlsx"
    pd.DataFrame({"sample": ["a", "b"], "mass": [1.0, 2.0]}).to_excel(path, index=False)
    with pytest.raises(DatasetError) as e:
        read_echem(path)
    msg = str(e.value)
    assert "notes.xlsx" in msg and "['sample', 'mass']" in msg


def test_ivium_idf_is_refused_with_the_export_to_use(tmp_path):
    path = tmp_path / "run.idf"
    path.write_text("[Main]\nVersion=2\nTitle=CV\n[primary_data]\n3\n0.0 3.5 0.1\n")
    with pytest.raises(DatasetError) as e:
        read_echem(path)
    assert "run.idf" in str(e.value) and "Ivium" in str(e.value) and ".txt" in str(e.value)


def test_unitless_current_without_arbins_columns_is_not_taken_as_amperes(tmp_path):
    """"Current" alone could be any lab's mA: without Arbin's own columns the table is not
    read as Arbin's (amperes), and the message lists what it has."""
    path = tmp_path / "generic.csv"
    path.write_text("Test_Time,Voltage,Current\n0,3.5,10\n1,3.6,10\n2,3.7,10\n")
    with pytest.raises(DatasetError, match=r"generic\.csv.*'Test_Time', 'Voltage', 'Current'"):
        read_echem(path)


@pytest.mark.parametrize("column, match", [
    (pd.to_datetime(["2025-01-01 10:00:00", "2025-01-01 10:00:01", "2025-01-01 10:00:02"]),
     "dates, times of day or durations"),
    ([True, True, False], "true/false"),
])
def test_time_or_current_columns_that_are_not_numbers_are_refused(tmp_path, column, match):
    table = _bdf_table(3)
    if isinstance(column, list):
        table["Current / A"] = column
    else:
        table["Test Time / s"] = column
    path = tmp_path / "cell.bdf.parquet"
    table.to_parquet(path)
    with pytest.raises(DatasetError, match=match):
        read_echem(path)


def test_a_duration_time_column_is_read_in_seconds(tmp_path):
    table = _bdf_table(5)
    table["Test Time / s"] = pd.to_timedelta(table["Test Time / s"], unit="s")
    path = tmp_path / "cell.bdf.parquet"
    table.to_parquet(path)
    np.testing.assert_allclose(_read(path)["time_s"], 10.0 * np.arange(5))


def test_a_net_counter_that_disagrees_with_the_current_is_not_used(tmp_path):
    table = _bdf_table(8).iloc[:, :3]
    table["Current / A"] = 1.0
    table["Net Capacity / Ah"] = [0, 1, 2, 3, 0, -1, -2, -3]  # restarts, sign unknown
    path = tmp_path / "cell.bdf"
    table.to_csv(path, index=False)
    with pytest.warns(EchemWarning, match="Net Capacity / Ah disagrees with the current"):
        df = read_echem(path)
    assert "integrated" in df.attrs["charge_from"]
    assert df["charge_mAh"].iloc[-1] == pytest.approx(1000 * 70 / 3600)


def test_thousands_separators_are_not_taken_for_decimal_commas(tmp_path):
    path = tmp_path / "us.txt"
    path.write_text("time_s\tvoltage_V\tcurrent_mA\n0\t3.5\t1,250\n1\t3.6\t1,250\n")
    with pytest.raises(DatasetError, match=r"us\.txt: column 'current_mA' must hold numbers, "
                                           r"found '1,250'.*separator '\\t'"):
        read_echem(path)


def test_a_missing_value_in_an_mpt_is_a_missing_value(tmp_path):
    path = _eclab_115_mpt(tmp_path / "gap.mpt", first_time="0.0000")
    lines = path.read_bytes().decode("cp1252").split("\r\n")
    fields = lines[12].split("\t")
    fields[4] = ""  # an empty <I>/mA cell
    lines[12] = "\t".join(fields)
    path.write_bytes("\r\n".join(lines).encode("cp1252"))
    with pytest.warns(EchemWarning, match="1 NaN or infinite value"):
        df = read_echem(path)
    assert len(df) == 12 and np.isnan(df["current_mA"].iloc[4])


def test_a_table_split_across_sheets_is_joined_and_an_info_sheet_skipped(tmp_path):
    table = _ours(10)
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as xl:
        pd.DataFrame({"note": ["cell 7", "NMC811"]}).to_excel(xl, sheet_name="Info", index=False)
        table.iloc[:6].to_excel(xl, sheet_name="Data_1", index=False)
        table.iloc[6:].to_excel(xl, sheet_name="Data_2", index=False)
    with pytest.warns(EchemWarning, match=r"one table across 2 sheets \['Data_1', 'Data_2'\]"):
        df = read_echem(path)
    np.testing.assert_allclose(df["time_s"], table["time_s"])
    assert "sheets 'Data_1', 'Data_2'" in df.attrs["format"]
