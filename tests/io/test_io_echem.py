"""Cycler readers on real BioLogic files, CSV, capacity integration and cycle summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _io_testutils import require_echem_dir, snapshot

from asymflux.io import (
    DatasetError,
    cycle_summary,
    integrate_capacity,
    label_half_cycles,
    read_echem,
    read_echem_csv,
    read_mpr,
)

JDB = "jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"
MB = "00_test_04_MB_C01.mpr"
BIOL = "biol.mpr"
OCV = "00_test_01_OCV_C01.mpr"


@pytest.fixture
def echem_dir():
    return require_echem_dir()


@pytest.mark.parametrize(
    ("name", "n_rows", "columns", "v_range", "i_max"),
    [
        (
            JDB,
            46102,
            ["time_s", "voltage_V", "current_mA", "charge_mAh", "half_cycle"],
            (1.99, 3.81),
            0.0888,
        ),
        (
            MB,
            1501,
            ["time_s", "voltage_V", "current_mA", "charge_mAh", "half_cycle"],
            (-1.66, -1.64),
            0.0454,
        ),
        (
            BIOL,
            23561,
            ["time_s", "voltage_V", "current_mA", "charge_mAh", "half_cycle"],
            (0.12, 1.0),
            0.3252,
        ),
    ],
)
def test_read_mpr_real_files(echem_dir, name, n_rows, columns, v_range, i_max):
    df = read_mpr(echem_dir / name)
    assert len(df) == n_rows
    assert list(df.columns) == columns
    for c in ("time_s", "voltage_V", "current_mA", "charge_mAh"):
        assert df[c].dtype == np.float64
    assert df["half_cycle"].dtype == np.int64
    t = df["time_s"].to_numpy()
    assert np.all(np.diff(t) >= 0)
    v = df["voltage_V"]
    assert v_range[0] <= v.min() and v.max() <= v_range[1]
    assert df["current_mA"].abs().max() == pytest.approx(i_max, rel=2e-3)  # mA, not A or µA
    assert df.attrs["source"].endswith(name)
    assert "start" in df.attrs
    assert "capacity_mAh_g" not in df.columns  # needs the active mass


def test_read_mpr_capacity_from_mass_matches_integrated_current(echem_dir):
    df = read_mpr(echem_dir / JDB, active_mass_mg=4.0)
    assert df.attrs["active_mass_mg"] == 4.0
    # (Q-Qo) in mAh / mass in g
    np.testing.assert_allclose(df["capacity_mAh_g"], df["charge_mAh"] / 4e-3, rtol=0, atol=1e-9)
    integrated = integrate_capacity(df["time_s"], df["current_mA"], active_mass_mg=4.0)
    # the cycler's own charge counter and our trapezoid agree to ~0.1 % of the range
    span = np.ptp(df["capacity_mAh_g"])
    assert np.max(np.abs(integrated - df["capacity_mAh_g"])) < 5e-3 * span
    # 0.0888 mA on 4 mg for the first charge: about 200 mAh/g, a plausible cathode
    assert 250 < span < 350


def test_open_circuit_file_needs_no_current_only_when_told(echem_dir, tmp_path):
    before = snapshot(echem_dir)
    with pytest.raises(DatasetError) as e:
        read_mpr(echem_dir / OCV)
    msg = str(e.value)
    assert OCV in msg and "current_mA" in msg and "I/mA" in msg and "Ewe/V" in msg
    df = read_mpr(echem_dir / OCV, required=("time_s", "voltage_V"))
    assert len(df) == 2 and list(df.columns) == ["time_s", "voltage_V"]
    assert snapshot(echem_dir) == before


def test_mpr_unknown_column_id_names_file_and_column(echem_dir, monkeypatch):
    """A column galvani does not know (here: 'I/mA', id 8, forgotten) is a clear DatasetError."""
    from galvani import BioLogic

    monkeypatch.delitem(BioLogic.VMPdata_colID_dtype_map, 8)
    with pytest.raises(DatasetError) as e:
        read_mpr(echem_dir / MB)
    msg = str(e.value)
    assert MB in msg and "Column ID 8" in msg and "unknown" in msg


def test_mpr_not_an_mpr_file(tmp_path):
    bad = tmp_path / "broken.mpr"
    bad.write_bytes(b"BIO-LOGIC MODULAR FILE\x1a" + b"\0" * 40)
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError, match="broken.mpr"):
        read_mpr(bad)
    with pytest.raises(DatasetError, match="missing.mpr"):
        read_mpr(tmp_path / "missing.mpr")
    assert snapshot(tmp_path) == before


def test_truncated_real_mpr(echem_dir, tmp_path):
    data = (echem_dir / MB).read_bytes()
    cut = tmp_path / "cut.mpr"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(DatasetError, match="cut.mpr"):
        read_mpr(cut)


def test_cycle_summary_real_gcpl(echem_dir):
    df = read_mpr(echem_dir / JDB, active_mass_mg=5.0)
    s = cycle_summary(df)
    assert list(s.columns[:6]) == [
        "cycle",
        "start_time_s",
        "end_time_s",
        "charge_capacity_mAh_g",
        "discharge_capacity_mAh_g",
        "coulombic_efficiency",
    ]
    # the file starts with a discharge (cycle 0), then 6 charge/discharge cycles
    assert s["cycle"].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert s.loc[0, "charge_capacity_mAh_g"] == 0.0
    full = s[s["cycle"] >= 1]
    assert np.all(full["charge_capacity_mAh_g"].between(180, 200))
    assert np.all(full["discharge_capacity_mAh_g"].between(165, 180))
    assert np.all(full["coulombic_efficiency"].between(0.85, 0.95))
    # rate: 0.0888 mA on 5 mg
    np.testing.assert_allclose(full["charge_rate_mA_g"], 0.0888 / 5e-3, rtol=2e-3)
    # totals: all positive / negative charge is accounted for
    q = df["current_mA"].to_numpy()
    assert s["charge_capacity_mAh_g"].sum() == pytest.approx(
        integrate_capacity(df["time_s"], np.clip(q, 0, None), active_mass_mg=5.0)[-1], rel=1e-6
    )
    # BioLogic's own half-cycle counter sees as many half-cycles as we do
    assert len(np.unique(label_half_cycles(df["current_mA"]))) == len(np.unique(df["half_cycle"]))


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
    # samples every 10 s: the trapezoid gives half of each 10 s step edge to each side, so the
    # first charge (no edge before it) is 5 s short of 1 h and the second is complete
    np.testing.assert_allclose(
        s["charge_capacity_mAh_g"], np.array([3595, 3600]) / 3600 / 2e-3, rtol=1e-12
    )
    np.testing.assert_allclose(s["discharge_capacity_mAh_g"], 6480 / 3600 * 0.5 / 2e-3, rtol=2e-3)
    np.testing.assert_allclose(s["coulombic_efficiency"], 0.9 / 1.0, rtol=3e-3)
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
    with pytest.raises(DatasetError, match="active_mass_mg"):
        integrate_capacity(t, t, active_mass_mg=0)


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
    pd.testing.assert_frame_equal(df2, ours)
    with pytest.raises(DatasetError) as e:
        read_echem_csv(q, sep=";")
    assert "theirs.csv" in str(e.value) and "time_s" in str(e.value)
    with pytest.raises(DatasetError, match=r"Volt.*not in the file"):
        read_echem_csv(q, sep=";", columns={"Volt": "voltage_V"})


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


def test_read_echem_unknown_type(tmp_path):
    with pytest.raises(DatasetError, match=r"x\.xlsx"):
        read_echem(tmp_path / "x.xlsx")
