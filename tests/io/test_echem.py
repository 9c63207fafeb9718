"""Cycler readers on real files of every brand, compared with independent readers.

The files are in ``../shared/data/echem`` (never copied here). Independent readers:
yadg's own ``.mpr`` parser for BioLogic files (galvani is ours), NewareNDA directly for
Neware files (navani is ours), mdbtools' ``mdb-export`` for Arbin ``.res`` and pandas /
openpyxl for Excel exports.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest

from asymflux.io import (
    DatasetError,
    cycle_summary,
    integrate_capacity,
    label_half_cycles,
    read_echem,
    read_echem_csv,
)
from asymflux.io.echem import (
    EchemWarning,
    charge_increments,
    counter_increments,
    echem_format,
    read_mpt,
)
from tests._helpers.io_utils import read_echem_quietly as _read
from tests._helpers.io_utils import snapshot

JDB = "jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"
MB = "00_test_04_MB_C01.mpr"
BIOL = "biol.mpr"
OCV = "00_test_01_OCV_C01.mpr"
CCCV = "250116_kigr_gen6_01_02_GCPL_CD8.mpr"
ECLAB115 = "CellC_01_02_GCPL_C04.mpr"
PULSES = "commercial_cell_001__1753283786_C01.mpr"
PEIS = "PEIS.mpr"
ARBIN = "arbin_example.res"
NDA, NDAX = "test.nda", "test.ndax"
XLSX = "bs542_004_gr_li_50ua_50mv_1v_191020_Channel_11.xlsx"
GAMRY = ["gamry_chronopot_0A.DTA", "gamry_pwr800_discharge.DTA"]  # tests/io/test_gamry.py
MPR_FILES = [JDB, MB, BIOL, OCV, CCCV, ECLAB115, PULSES]
ALL_TIME_SERIES = [*MPR_FILES, ARBIN, NDA, NDAX, XLSX, *GAMRY]




@pytest.fixture(scope="module")
def yadg_mpr(echem_dir):
    """yadg's reading of each .mpr (its own parser), as {name: xarray.Dataset}."""
    from yadg import extractors

    out = {}

    def get(name):
        if name not in out:
            out[name] = extractors.extract(filetype="eclab.mpr", path=str(echem_dir / name)) \
                .to_dataset()
        return out[name]

    return get


# ---------------------------------------------------------------------------- every file


@pytest.mark.parametrize("name", ALL_TIME_SERIES)
def test_every_real_file_reads_with_the_same_columns(echem_dir, name):
    before = snapshot(echem_dir)
    df = _read(echem_dir / name, active_mass_mg=5.0)
    assert list(df.columns[:4]) == ["time_s", "voltage_V", "current_mA", "charge_mAh"]
    assert "capacity_mAh_g" in df.columns
    for c in ("time_s", "voltage_V", "current_mA", "charge_mAh", "capacity_mAh_g"):
        assert df[c].dtype == np.float64
        assert np.isfinite(df[c]).all(), c
    assert np.all(np.diff(df["time_s"]) >= 0)
    assert df["charge_mAh"].iloc[0] == 0.0
    np.testing.assert_allclose(df["capacity_mAh_g"], df["charge_mAh"] / 5e-3, rtol=1e-12)
    for key in ("source", "format", "reader", "current_from", "charge_from"):
        assert key in df.attrs, key
    assert "control" not in df.attrs["current_from"]  # never a set point
    assert snapshot(echem_dir) == before  # reading writes nothing


@pytest.mark.parametrize(
    ("name", "kind"),
    [(JDB, "biologic-mpr"), (ARBIN, "arbin-res"), (NDA, "neware-nda"), (NDAX, "neware-ndax"),
     (XLSX, "excel"), (GAMRY[0], "gamry-dta")],
)
def test_reader_chosen_by_content_not_suffix(echem_dir, tmp_path, name, kind):
    assert echem_format(echem_dir / name) == kind
    renamed = tmp_path / "cycler_data.dat"  # a misleading name: the content decides
    renamed.symlink_to(echem_dir / name)
    assert echem_format(renamed) == kind
    a, b = _read(echem_dir / name), _read(renamed)
    pd.testing.assert_frame_equal(a, b)


# ---------------------------------------------------------------------------- BioLogic


def _units(var):
    return var.attrs.get("units") or var.attrs.get("unit")


@pytest.mark.parametrize("name", [JDB, MB, OCV, CCCV, ECLAB115, PULSES])
def test_mpr_agrees_with_yadg(echem_dir, yadg_mpr, name):
    df = _read(echem_dir / name)
    y = yadg_mpr(name)
    assert _units(y["time"]) == "s"
    np.testing.assert_allclose(df["time_s"], y["time"].values, rtol=1e-12, atol=1e-9)
    assert _units(y["Ewe"]) == "V"
    np.testing.assert_allclose(df["voltage_V"], y["Ewe"].values, rtol=1e-6, atol=1e-7)
    if "I" in y:  # the measured current
        assert _units(y["I"]) == "mA"
        np.testing.assert_allclose(df["current_mA"], y["I"].values, rtol=1e-6, atol=1e-9)
    if "(Q-Qo)" in y:
        assert _units(y["(Q-Qo)"]) in ("mA·h", "mAh", "mA.h", "mA h")
        qq = y["(Q-Qo)"].values
        span = max(np.ptp(qq), 1e-12)
        np.testing.assert_allclose(df["charge_mAh"], qq - qq[0], rtol=0, atol=1e-6 * span)
    else:
        assert df.attrs.get("open_circuit") is True
        assert (df["current_mA"] == 0).all()


def test_eclab_11_5_file_is_read(echem_dir):
    df = _read(echem_dir / ECLAB115)
    assert len(df) == 33761
    assert df.attrs["technique"] == "GCPL"
    assert 0.3 < df["voltage_V"].min() and df["voltage_V"].max() < 5.0  # V, not mV
    assert df["current_mA"].abs().max() == pytest.approx(0.05, rel=0.02)


def test_cccv_hold_currents_follow_the_charge_not_the_set_point(echem_dir, yadg_mpr):
    """In CV holds the file's control/V/mA holds the set voltage; the current is d(charge)/dt."""
    df = _read(echem_dir / CCCV)
    y = yadg_mpr(CCCV)
    t = y["time"].values
    q = y["(Q-Qo)"].values
    hold = np.isfinite(y["control_V"].values) & (y["control_V"].values > 3.0)
    hold &= np.r_[False, np.diff(t) > 0]
    assert hold.sum() > 100  # the file has real CV holds
    dqdt = np.r_[0.0, np.diff(q) * 3600.0 / np.maximum(np.diff(t), 1e-12)]
    i = df["current_mA"].to_numpy()
    big = hold & (np.abs(dqdt) > 0.05)
    np.testing.assert_allclose(i[big], dqdt[big], rtol=0.02)
    assert np.abs(i[hold]).max() < 1.3  # never the 4.2-4.9 "mA" of the set point
    # the hold current decays, as a CV hold does
    assert np.abs(i[hold]).min() < 0.5 * np.abs(i[hold]).max()


@pytest.mark.parametrize("name", [JDB, CCCV, ECLAB115, PULSES])
def test_cycle_summary_matches_the_files_own_counter(echem_dir, yadg_mpr, name):
    """Our cycles' capacities equal BioLogic's Q charge/discharge of its real half cycles
    (over 1 % of the largest) within 0.5 %; all rows together hold all the file's charge."""
    y = yadg_mpr(name)
    file_q = pd.DataFrame({"hc": y["half cycle"].values, "q": y["Q charge or discharge"].values})
    g = file_q.groupby("hc")["q"]
    big = 0.01 * np.abs(file_q["q"]).max()
    s = cycle_summary(_read(echem_dir / name), active_mass_mg=1000.0)  # 1 g: mAh/g = mAh
    assert set(s["kind"]) <= {"cycle", "charge", "discharge", "pulses", "rest"}
    np.testing.assert_allclose(s["charge_capacity_mAh_g"].sum(), g.max().clip(0).sum(),
                               rtol=5e-3, atol=2e-6)
    np.testing.assert_allclose(s["discharge_capacity_mAh_g"].sum(), -g.min().clip(None, 0).sum(),
                               rtol=5e-3, atol=2e-6)
    if name == PULSES:  # potentiostatic pulses between rests: no half-cycle of its own
        assert (s["kind"] == "pulses").all() and s["coulombic_efficiency"].isna().all()
        return
    cycles = s[s["kind"].isin(["cycle", "charge", "discharge"])]
    ours_charge = [x for x in cycles["charge_capacity_mAh_g"] if x > big]
    ours_discharge = [x for x in cycles["discharge_capacity_mAh_g"] if x > big]
    theirs_charge = [x for x in g.max() if x > big]
    theirs_discharge = [-x for x in g.min() if x < -big]
    np.testing.assert_allclose(ours_charge, theirs_charge, rtol=5e-3, atol=2e-6)
    np.testing.assert_allclose(ours_discharge, theirs_discharge, rtol=5e-3, atol=2e-6)


def test_cycle_summary_lists_no_junk_cycles(echem_dir):
    """EC-Lab 11.5 file: cycles 3-13 of the old summary lasted under 10 s each (the cycler
    bouncing between its limits at the end): now one "pulses" row; CE only for a real cycle."""
    s = cycle_summary(_read(echem_dir / ECLAB115), active_mass_mg=1000.0)
    assert s["kind"].tolist() == ["rest", "discharge", "cycle", "charge", "pulses"]
    assert s["cycle"].tolist() == [-1, 0, 1, 2, -1]
    ce = s["coulombic_efficiency"].to_numpy()
    assert np.isnan(ce[[0, 1, 3, 4]]).all() and 0.99 < ce[2] < 1.0
    pulses = s.iloc[-1]
    assert pulses["end_time_s"] - pulses["start_time_s"] < 15
    real = s[s["kind"] != "pulses"]
    assert ((real["end_time_s"] - real["start_time_s"]) >= 50).all()
    biol = cycle_summary(_read(echem_dir / BIOL), active_mass_mg=1000.0)
    # biol.mpr: a leading rest, then 4-h charge steps between rests and impedance
    # steps: one intermittent charge (it was 63 "cycles", most of zero capacity)
    assert biol["kind"].tolist() == ["rest", "charge"]


def test_pulse_file_charge_is_the_counter_not_the_integrated_samples(echem_dir):
    df = _read(echem_dir / PULSES)
    integrated = np.sum(0.5 * (df["current_mA"].to_numpy()[1:] + df["current_mA"].to_numpy()[:-1])
                        * np.diff(df["time_s"])) / 3600
    assert df["charge_mAh"].iloc[-1] == pytest.approx(-0.08462, rel=1e-3)
    assert abs(integrated / df["charge_mAh"].iloc[-1] - 1) > 0.04  # what naive integration gives


def test_impedance_file_refused_naming_the_technique(echem_dir):
    with pytest.raises(DatasetError) as e:
        read_echem(echem_dir / PEIS)
    msg = str(e.value)
    assert PEIS in msg and "PEIS" in msg.replace(PEIS, "") and "impedance" in msg


def test_open_circuit_file_reads_with_zero_current(echem_dir):
    df = _read(echem_dir / OCV)
    assert len(df) == 2
    assert (df["current_mA"] == 0).all() and (df["charge_mAh"] == 0).all()
    assert df.attrs["open_circuit"] is True and "open circuit" in df.attrs["current_from"]
    assert df.attrs["technique"] == "OCV"


def test_mixed_mb_file_with_impedance_rows_is_read(echem_dir):
    from galvani import BioLogic

    raw = BioLogic.MPRfile(str(echem_dir / BIOL)).data
    eis = raw["freq/Hz"] > 0  # galvani's reading: the impedance rows among the time series
    with pytest.warns(EchemWarning, match="impedance record"):
        df = read_echem(echem_dir / BIOL)
    assert len(df) == 23561 - eis.sum() and df.attrs["technique"] == "MB"
    assert df.attrs["impedance_rows"] == eis.sum() == 310
    np.testing.assert_array_equal(df["time_s"], raw["time/s"][~eis])
    qq = raw["(Q-Qo)/mA.h"][~eis]  # the counter carries across the dropped rows
    np.testing.assert_allclose(df["charge_mAh"], qq - qq[0], rtol=0, atol=1e-9)
    assert df["current_mA"].abs().max() == pytest.approx(0.3252, rel=2e-3)  # mA, not A or µA


def test_mpr_galvani_refusal_names_file_and_reason(echem_dir, monkeypatch):
    """When galvani meets a column ID it does not know and yadg cannot read the file
    either, the error names the file and both parsers' reasons."""
    from galvani import BioLogic
    from yadg.extractors.eclab import mpr as yadg_mpr_module

    def refuse(*args, **kwargs):
        raise NotImplementedError("Column ID 999 after column I/mA is unknown")

    def yadg_refuses(*args, **kwargs):
        raise KeyError(999)

    monkeypatch.setattr(BioLogic, "MPRfile", refuse)
    monkeypatch.setattr(yadg_mpr_module, "extract_from_path", yadg_refuses)
    with pytest.raises(DatasetError) as e:
        read_echem(echem_dir / MB)
    msg = str(e.value)
    assert MB in msg and "Column ID 999" in msg and "galvani" in msg and "yadg" in msg


def test_mpr_galvani_cannot_read_yadg_does(echem_dir, monkeypatch):
    """A column ID galvani does not know (yadg knows ~30 more: temperature probes,
    counter-electrode energies): yadg's reading is used, and it is the same table."""
    from galvani import BioLogic

    expected = _read(echem_dir / ECLAB115)

    def refuse(*args, **kwargs):
        raise NotImplementedError("Column ID 206 after column I/mA is unknown")

    monkeypatch.setattr(BioLogic, "MPRfile", refuse)
    df = _read(echem_dir / ECLAB115)
    assert df.attrs["reader"].startswith("yadg") and "Column ID 206" in df.attrs["reader"]
    assert df.attrs["technique"] == expected.attrs["technique"] == "GCPL"
    for c in ("time_s", "voltage_V", "current_mA", "charge_mAh", "step", "half_cycle"):
        np.testing.assert_allclose(df[c], expected[c], rtol=1e-12, atol=1e-12, err_msg=c)


def test_mpr_not_an_mpr_file(tmp_path):
    bad = tmp_path / "broken.mpr"
    bad.write_bytes(b"BIO-LOGIC MODULAR FILE\x1a" + b"\0" * 40)
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError, match="broken.mpr"):
        read_echem(bad)
    with pytest.raises(DatasetError, match="missing.mpr"):
        read_echem(tmp_path / "missing.mpr")
    assert snapshot(tmp_path) == before


def test_truncated_real_mpr(echem_dir, tmp_path):
    data = (echem_dir / MB).read_bytes()
    cut = tmp_path / "cut.mpr"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(DatasetError, match="cut.mpr"):
        read_echem(cut)


# ---------------------------------------------------------------------------- .mpt


def _write_mpt(path, rows, *, decimal=".", technique="Galvanostatic Cycling with Potential "
               "Limitation", loops=()):
    cols = ["mode", "ox/red", "time/s", "control/V/mA", "Ewe/V", "I/mA", "dq/mA.h",
            "(Q-Qo)/mA.h", "half cycle", "Ns"]
    header = ["EC-Lab ASCII FILE", "Nb header lines : XX", "", technique, "",
              "Run on channel : 1 (SN 1234)", "Acquisition started on : 01/16/2025 14:05:54.213"]
    if loops:
        header += [f"Number of loops : {len(loops)}"]
        header += [f"Loop {k} from point number {a} to {b}" for k, (a, b) in enumerate(loops)]
    header += ["", "\t".join(cols)]
    header[1] = f"Nb header lines : {len(header)}"
    lines = ["\t".join(f"{v:.9g}".replace(".", decimal) if isinstance(v, float) else str(v)
                       for v in r) for r in rows]
    path.write_bytes(("\r\n".join(header + lines) + "\r\n").encode("cp1252"))
    return path


def _mpt_rows(n=40, *, reset_at=None):
    rows, qq = [], 0.0
    for k in range(n):
        t = 10.0 * k
        i = 0.5 if k else 0.0
        dq = i * 10 / 3600 if k else 0.0
        qq = dq if (reset_at is not None and k == reset_at) else qq + dq
        # during the CV hold (k >= 20) control/V/mA is the set *voltage*
        control = 4.2 if k >= 20 else 0.5
        rows.append([2 if k >= 20 else 1, 1, t, control, 3.7 + 0.001 * k, i, dq, qq,
                     1, 1 if k < 20 else 2])
    return rows


@pytest.mark.parametrize("decimal", [".", ","])
def test_mpt_text_export(tmp_path, decimal):
    p = _write_mpt(tmp_path / "export.mpt", _mpt_rows(), decimal=decimal)
    assert echem_format(p) == "biologic-mpt"
    df = read_echem(p, active_mass_mg=1.0)
    assert len(df) == 40 and df.attrs["technique"] == "GCPL"
    np.testing.assert_allclose(df["time_s"], 10.0 * np.arange(40))
    np.testing.assert_allclose(df["current_mA"].iloc[1:], 0.5)  # never the 4.2 set point
    np.testing.assert_allclose(df["charge_mAh"].iloc[-1], 0.5 * 390 / 3600, rtol=1e-6)
    assert df.attrs["start"].startswith("01/16/2025")
    assert df["step"].tolist() == [1] * 20 + [2] * 20


def test_mpt_counter_restart_at_a_loop_is_undone(tmp_path):
    rows = _mpt_rows(reset_at=25)
    for r in rows:  # drop dq: (Q-Qo) alone, restarting at the loop
        r[6] = float("nan")
    p = _write_mpt(tmp_path / "loops.mpt", [r[:6] + r[7:] for r in rows], loops=[(0, 24), (25, 39)])
    text = p.read_text(encoding="cp1252").replace("\tdq/mA.h", "")
    p.write_text(text, encoding="cp1252")
    df = read_mpt(p)
    assert "restarts at loops undone" in df.attrs["charge_from"]
    np.testing.assert_allclose(df["charge_mAh"].iloc[-1], 0.5 * 390 / 3600, rtol=1e-6)
    assert np.all(np.diff(df["charge_mAh"]) > 0)


def test_mpt_impedance_refused(tmp_path):
    p = _write_mpt(tmp_path / "eis.mpt", _mpt_rows(3),
                   technique="Potentio Electrochemical Impedance Spectroscopy")
    with pytest.raises(DatasetError, match=r"eis\.mpt.*impedance.*PEIS"):
        read_echem(p)


# ---------------------------------------------------------------------------- other brands


def test_neware_agrees_with_newarenda(echem_dir):
    from NewareNDA.NewareNDA import read as nda_read

    for name in (NDA, NDAX):
        df = _read(echem_dir / name)
        raw = nda_read(str(echem_dir / name))
        assert len(df) == len(raw)
        np.testing.assert_allclose(df["voltage_V"], raw["Voltage"], rtol=1e-6)
        np.testing.assert_allclose(df["current_mA"], raw["Current(mA)"], rtol=1e-6)
        # the counters restart at every step: per step, our charge change is the counter
        step = raw["Step"].to_numpy()
        last = np.r_[step[1:] != step[:-1], True]
        first = np.r_[True, step[1:] != step[:-1]]
        net = (raw["Charge_Capacity(mAh)"] - raw["Discharge_Capacity(mAh)"]).to_numpy(float)
        ours = df["charge_mAh"].to_numpy()
        ours_step = ours[last] - ours[first] + (net[first])  # first record's own count
        np.testing.assert_allclose(ours_step, net[last], rtol=5e-3, atol=1e-7)


@pytest.mark.skipif(shutil.which("mdb-export") is None, reason="mdbtools not installed")
def test_arbin_res_agrees_with_mdbtools(echem_dir, tmp_path):
    out = subprocess.run(["mdb-export", str(echem_dir / ARBIN), "Channel_Normal_Table"],
                         check=True, capture_output=True, text=True).stdout
    (tmp_path / "t.csv").write_text(out)
    raw = pd.read_csv(tmp_path / "t.csv").sort_values("Data_Point")
    df = _read(echem_dir / ARBIN)
    np.testing.assert_allclose(df["time_s"], raw["Test_Time"], rtol=1e-9)
    np.testing.assert_allclose(df["voltage_V"], raw["Voltage"], rtol=1e-6)
    np.testing.assert_allclose(df["current_mA"], 1000 * raw["Current"], rtol=1e-6)  # A -> mA
    net = 1000 * (raw["Charge_Capacity"] - raw["Discharge_Capacity"]).to_numpy()
    # Arbin's counters run through a cycle and restart with the next
    s = cycle_summary(df, active_mass_mg=1000.0)
    cyc = raw["Cycle_Index"].to_numpy()
    end = np.r_[cyc[1:] != cyc[:-1], True]
    theirs = 1000 * raw["Charge_Capacity"].to_numpy()[end]
    ours = s["charge_capacity_mAh_g"].to_numpy()
    np.testing.assert_allclose(ours[ours > 0], theirs[theirs > 0], rtol=5e-3)
    assert df["charge_mAh"].iloc[-1] == pytest.approx(
        np.sum(net[end]) - net[0], rel=5e-3)


def test_arbin_excel_agrees_with_pandas(echem_dir):
    sheets = pd.read_excel(echem_dir / XLSX, sheet_name=None, engine="openpyxl")
    raw = pd.concat([v for k, v in sheets.items() if k.startswith("Channel") and "Chart" not in k])
    df = _read(echem_dir / XLSX)
    np.testing.assert_allclose(df["time_s"], raw["Test_Time(s)"], rtol=1e-12)
    np.testing.assert_allclose(df["voltage_V"], raw["Voltage(V)"], rtol=1e-12)
    np.testing.assert_allclose(df["current_mA"], 1000 * raw["Current(A)"], rtol=1e-12)
    net = 1000 * (raw["Charge_Capacity(Ah)"] - raw["Discharge_Capacity(Ah)"]).to_numpy()
    inc = np.diff(df["charge_mAh"].to_numpy())
    same = np.diff(raw["Cycle_Index"].to_numpy()) == 0
    np.testing.assert_allclose(inc[same], np.diff(net)[same], atol=1e-9)


def test_arbin_without_mdbtools_says_what_to_install(echem_dir, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(DatasetError, match=r"arbin_example\.res.*mdbtools"):
        read_echem(echem_dir / ARBIN)


def test_ivium_text_export(tmp_path):
    t = np.arange(0, 3600.0, 60.0)
    i = np.where(t < 1800, 0.2, -0.2)
    p = tmp_path / "ivium.txt"
    pd.DataFrame({"time /s": t, "I /mA": i, "E /V": 3.8 + 0 * t}).to_csv(p, sep="\t", index=False)
    assert echem_format(p) == "ivium-txt"
    df = _read(p, active_mass_mg=1.0)
    np.testing.assert_allclose(df["current_mA"], i)
    s = cycle_summary(df)
    # 30 samples of 60 s at 0.2 mA, the first charge sample counting nothing before it
    assert s["charge_capacity_mAh_g"].iloc[0] == pytest.approx(0.2 * 29 * 60 / 3600 / 1e-3)
    assert s["discharge_capacity_mAh_g"].iloc[0] == pytest.approx(0.2 * 30 * 60 / 3600 / 1e-3)


# ---------------------------------------------------------------------------- not cycler files


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "empty"), (b"\x89HDF\r\n\x1a\n" + b"\0" * 32, "HDF5"), (b"II*\x00" + b"\0" * 32, "TIFF"),
     (b"PK\x03\x04" + b"\0" * 32, "zip"), (b"\x00\x01\x02garbage" * 4, "binary")],
)
def test_not_a_cycler_file(tmp_path, content, expected):
    p = tmp_path / "cell.mpr"
    p.write_bytes(content)
    with pytest.raises(DatasetError) as e:
        read_echem(p)
    assert "cell.mpr" in str(e.value) and expected in str(e.value)


@pytest.mark.parametrize("name", [ARBIN, NDA, NDAX, XLSX, JDB])
@pytest.mark.parametrize("cut", [100, 0.5])
def test_truncated_real_files_one_line_error(echem_dir, tmp_path, capfd, name, cut):
    data = (echem_dir / name).read_bytes()
    p = tmp_path / f"cut_{name}"
    p.write_bytes(data[: cut if isinstance(cut, int) else int(len(data) * cut)])
    with pytest.raises(DatasetError) as e:
        read_echem(p)
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # nothing the parsers print reaches the user


def test_header_only_csv(tmp_path):
    p = tmp_path / "header.csv"
    p.write_text("time_s,voltage_V,current_mA\n")
    with pytest.raises(DatasetError, match=r"header\.csv.*no records"):
        read_echem(p)


def test_read_echem_missing_and_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"x\.xlsx.*no such"):
        read_echem(tmp_path / "x.xlsx")
    with pytest.raises(DatasetError, match="not a file"):
        read_echem(tmp_path)


# ---------------------------------------------------------------------------- the arithmetic


def test_counter_increments_undo_restarts():
    # a non-negative counter restarting at every step (Neware): 0 .1 .2 | .05 .15 | .1
    q = np.array([0.0, 0.1, 0.2, 0.05, 0.15, 0.1])
    np.testing.assert_allclose(counter_increments(q, unsigned=True), [0, .1, .1, .05, .1, .1])
    # a signed counter restarting at a known loop start
    qq = np.array([0.0, -0.1, -0.2, -0.05, -0.15])
    resets = np.array([0, 0, 0, 1, 0], bool)
    np.testing.assert_allclose(counter_increments(qq, resets=resets), [0, -.1, -.1, -.05, -.1])
    np.testing.assert_allclose(counter_increments(q, unsigned=True, sign=-np.ones(6)),
                               [0, -.1, -.1, -.05, -.1, -.1])


def test_charge_increments_no_gap_no_step_edge():
    t = np.array([0.0, 10, 20, 30, 40, 10040, 10050])
    i = np.array([1.0, 1, 1, -1, -1, -1, -1])
    problems = []
    q = charge_increments(t, i, problems=problems) * 3600
    # within a step: trapezoid; at the sign change: the later record's current; the gap: nothing
    np.testing.assert_allclose(q, [0, 10, 10, -10, -10, 0, -10])
    assert problems and "time gap" in problems[0]
    q = charge_increments(t, i, step=[1, 1, 1, 1, 2, 2, 2], max_gap_s=1e9) * 3600
    np.testing.assert_allclose(q, [0, 10, 10, 0, -10, -10000, -10])


def test_nan_current_is_reported_not_spread(tmp_path):
    p = tmp_path / "nan.csv"
    pd.DataFrame({"time_s": np.arange(10.0), "voltage_V": 3.7,
                  "current_mA": [1, 1, 1, np.nan, 1, 1, 1, 1, 1, 1]}).to_csv(p, index=False)
    with pytest.warns(EchemWarning, match="NaN"):
        df = read_echem(p, active_mass_mg=1.0)
    assert np.isfinite(df["capacity_mAh_g"]).all()
    assert any("NaN" in w for w in df.attrs["warnings"])


def test_cycle_summary_synthetic_exact():
    # 1 mA for 1 h charge, rest, 0.5 mA for 1.8 h discharge, twice, on 2 mg
    seg = [(3600, 1.0), (600, 0.0), (6480, -0.5), (600, 0.0)] * 2
    t, i, t0 = [], [], 0.0
    for dur, cur in seg:
        tt = t0 + np.arange(0, dur, 10.0)
        t.append(tt)
        i.append(np.full(tt.size, cur))
        t0 += dur
    t = np.concatenate(t)
    i = np.concatenate(i)
    echem = pd.DataFrame({"time_s": t, "current_mA": i, "voltage_V": 3.0 + 0.1 * i})
    s = cycle_summary(echem, active_mass_mg=2.0)
    assert s["cycle"].tolist() == [1, 2]
    # a record reports what flowed since the one before: the first record (t = 0) counts
    # nothing, every later step's first record its own 10 s
    np.testing.assert_allclose(
        s["charge_capacity_mAh_g"], np.array([3590, 3600]) / 3600 / 2e-3, rtol=1e-12
    )
    np.testing.assert_allclose(s["discharge_capacity_mAh_g"], 6480 / 3600 * 0.5 / 2e-3, rtol=1e-12)
    np.testing.assert_allclose(s["charge_rate_mA_g"], 500.0, rtol=1e-9)
    np.testing.assert_allclose(s["discharge_rate_mA_g"], 250.0, rtol=1e-9)
    anode = cycle_summary(echem, active_mass_mg=2.0, first="discharge")
    assert anode["cycle"].tolist() == [0, 1, 2]  # the leading charge is cycle 0
    with pytest.raises(DatasetError, match="active_mass_mg"):
        cycle_summary(echem)


def test_integrate_capacity_constant_current():
    t = np.linspace(0, 3600, 101)
    cap = integrate_capacity(t, np.ones_like(t), active_mass_mg=1.0)
    assert cap[0] == 0.0
    assert cap[-1] == pytest.approx(1000.0)  # 1 mAh on 1 mg
    for bad in (0, -1, True, "x", float("nan")):
        with pytest.raises(DatasetError, match="active_mass_mg"):
            integrate_capacity(t, t, active_mass_mg=bad)


def test_label_half_cycles_rests_join_previous():
    i = np.array([0, 0, 1, 1, 0, 0, -1, -1, 0, 1, 1e-9])
    assert label_half_cycles(i).tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2]
    assert label_half_cycles(np.zeros(4)).tolist() == [0, 0, 0, 0]


def test_read_echem_csv_our_names_and_mapping(tmp_path):
    t = np.linspace(0, 7200, 50)
    ours = pd.DataFrame(
        {"time_s": t, "voltage_V": np.linspace(3, 4, 50), "current_mA": np.full(50, 0.1)}
    )
    p = tmp_path / "ours.csv"
    ours.to_csv(p, index=False)
    df = read_echem_csv(p, active_mass_mg=0.5)
    np.testing.assert_array_equal(df["time_s"], t)
    assert df["capacity_mAh_g"].iloc[-1] == pytest.approx(0.1 * 2 / 0.5e-3)
    theirs = ours.rename(
        columns={"time_s": "Time (s)", "voltage_V": "Ewe (V)", "current_mA": "I (mA)"}
    )
    q = tmp_path / "theirs.csv"
    theirs.to_csv(q, index=False, sep=";")
    df2 = read_echem(
        q, columns={"Time (s)": "time_s", "Ewe (V)": "voltage_V", "I (mA)": "current_mA"}, sep=";"
    )
    pd.testing.assert_frame_equal(df2[ours.columns], ours)
    with pytest.raises(DatasetError) as e:
        read_echem_csv(q, sep=";")
    assert "theirs.csv" in str(e.value) and "time_s" in str(e.value)
    with pytest.raises(DatasetError, match=r"Volt.*not in the file"):
        read_echem_csv(q, sep=";", columns={"Volt": "voltage_V"})


def test_decimal_comma_csv_named(tmp_path):
    p = tmp_path / "comma.csv"
    p.write_text("time_s;voltage_V;current_mA\n0;3,7;0,1\n1;3,71;0,1\n")
    with pytest.raises(DatasetError) as e:
        read_echem(p, sep=";")
    assert "comma.csv" in str(e.value) and "voltage_V" in str(e.value) and "decimal" in str(e.value)
    df = read_echem(p, sep=";", decimal=",")
    assert df["voltage_V"].tolist() == [3.7, 3.71]


def test_read_echem_csv_time_backwards(tmp_path):
    p = tmp_path / "back.csv"
    pd.DataFrame({"time_s": [0.0, 1.0, 2.0, 1.5, 3.0], "voltage_V": 3.7, "current_mA": 0.1}).to_csv(
        p, index=False
    )
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError) as e:
        read_echem_csv(p)
    assert "back.csv" in str(e.value) and "backwards" in str(e.value) and "row 3" in str(e.value)
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------- command line


def test_cli_echem_writes_table_and_cycles(echem_dir, tmp_path, capsys):
    from asymflux.cli import main

    out, cyc = tmp_path / "table.csv", tmp_path / "cycles.csv"
    assert main(["echem", str(echem_dir / CCCV), "--active-mass-mg", "10", "--out", str(out),
                 "--cycles", str(cyc)]) == 0
    table, cycles = pd.read_csv(out), pd.read_csv(cyc)
    assert list(table.columns[:4]) == ["time_s", "voltage_V", "current_mA", "charge_mAh"]
    direct = cycle_summary(_read(echem_dir / CCCV, active_mass_mg=10.0))
    np.testing.assert_allclose(cycles["charge_capacity_mAh_g"], direct["charge_capacity_mAh_g"])
    assert "no measured current" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["PEIS.mpr"], "PEIS"), (["test.nda", "--active-mass-mg", "-1"], "active_mass_mg"),
     (["test.nda", "--out", "{input}"], "is the input file"), (["test.nda", "--out", "{dir}"],
                                                               "is a folder"),
     (["nope.mpr"], "no such")],
)
def test_cli_echem_bad_input(echem_dir, tmp_path, capsys, args, expected):
    from asymflux.cli import main

    args = [a.format(input=echem_dir / "test.nda", dir=tmp_path, tmp=tmp_path) for a in args]
    args[0] = str(echem_dir / args[0])
    before, before_data = snapshot(tmp_path), snapshot(echem_dir)
    assert main(["echem", *args]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before and snapshot(echem_dir) == before_data


def test_neware_second_resolution_step_starts_nudged_forward(tmp_path, monkeypatch):
    """navani's Neware time (1-s step-start stamps + step time) may step back < 1 s at an edge."""
    from asymflux.io import _navani

    frame = pd.DataFrame({
        "Time": [0.0, 10.0, 20.4, 20.0, 30.0], "Voltage": [3.7] * 5,
        "Current(mA)": [1.0, 1.0, 1.0, -1.0, -1.0], "Step": [1, 1, 1, 2, 2],
        "Charge_Capacity(mAh)": [0, 10 / 3600, 20.4 / 3600, 0, 0],
        "Discharge_Capacity(mAh)": [0, 0, 0, 0, 10 / 3600],
    })
    monkeypatch.setattr(_navani, "_navani_frame", lambda path, kind: frame.copy())
    p = tmp_path / "cell.nda"
    p.write_bytes(b"NEWARE" + b"\0" * 64)
    with pytest.warns(EchemWarning, match="stamped to the second"):
        df = read_echem(p)
    assert np.all(np.diff(df["time_s"]) >= 0)
    np.testing.assert_allclose(df["charge_mAh"].iloc[-1], 10.4 / 3600)
    frame.loc[3, "Time"] = 15.0  # 5 s back: not a rounding artefact, refused
    with pytest.raises(DatasetError, match="backwards"):
        read_echem(p)


def test_unsigned_mean_current_replaced_by_the_counter(tmp_path):
    """Some CV exports write <I>/mA as a magnitude; the charge counter keeps the sign."""
    n = 60
    t = np.arange(n) * 10.0
    i = np.where(np.arange(n) < 30, 0.5, -0.5)
    dq = np.r_[0.0, i[1:] * 10 / 3600]
    rows = [[1, 1, t[k], 0.0, 3.7, abs(i[k]), dq[k], np.cumsum(dq)[k], 0, 1] for k in range(n)]
    p = _write_mpt(tmp_path / "cv.mpt", rows, technique="Cyclic Voltammetry")
    p.write_text(p.read_text(encoding="cp1252").replace("\tI/mA\t", "\t<I>/mA\t"), encoding="cp1252")
    with pytest.warns(EchemWarning, match="disagrees in sign"):
        df = read_mpt(p)
    np.testing.assert_allclose(df["current_mA"].iloc[1:], i[1:], rtol=1e-6)


def test_an_mpr_read_leaves_no_file_open(echem_dir):
    """galvani given a path opens the file and never closes it (#28): we give it ours."""
    import gc

    from asymflux.io import EchemWarning, read_echem

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EchemWarning)
        warnings.simplefilter("error", ResourceWarning)
        table = read_echem(echem_dir / "00_test_04_MB_C01.mpr")
        gc.collect()  # an unclosed file would warn here (an error in this block)
    assert len(table) == 1501
    import psutil

    open_files = [f.path for f in psutil.Process().open_files()]
    assert not any(p.endswith(".mpr") for p in open_files), open_files


def test_cli_echem_cycles_without_a_mass_are_in_mah(echem_dir, tmp_path, capsys):
    from asymflux.cli import main

    assert main(["echem", str(echem_dir / "test.nda"), "--cycles", str(tmp_path / "c.csv")]) == 0
    c = pd.read_csv(tmp_path / "c.csv")
    assert {"charge_capacity_mAh", "discharge_capacity_mAh"} <= set(c.columns)
    assert not any(col.endswith("_mAh_g") for col in c.columns)
