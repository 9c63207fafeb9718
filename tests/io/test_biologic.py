"""BioLogic's raw columns -> our table, case by case, on small synthetic tables.

The seam is :func:`asymflux.io._biologic.biologic_columns` (what galvani, yadg and the
``.mpt`` reader all hand their columns to); a few cases go end to end through a small
EC-Lab text export (``read_mpt``). Cycle summaries are tested on synthetic protocols.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from asymflux.io import DatasetError, cycle_summary
from asymflux.io._biologic import biologic_columns
from asymflux.io._counters import counter_kind, counter_restarts
from asymflux.io.echem import EchemWarning, read_mpt

RNG = np.random.default_rng(27)


def _cp(n=400, dt=10.0, current_mA=0.5, noise=0.0):
    """A chronopotentiometry record: +I for n/2 records, -I for n/2 (step 1, then 2)."""
    t = np.arange(n) * dt
    i = np.where(np.arange(n) < n // 2, current_mA, -current_mA)
    i = i * (1 + noise * RNG.standard_normal(n))
    inc = np.r_[0.0, i[1:] * dt / 3600.0]  # mAh per record: what flowed since the last
    q = np.cumsum(inc)  # mAh
    ns = np.where(np.arange(n) < n // 2, 1, 2)
    return t, i, inc, q, ns


def test_old_eclab_cumulative_dq_column_is_not_summed():
    """Older EC-Lab: the column galvani names dQ/C holds (Q-Qo)/C. Read by content, the
    charge is linear in time, not quadratic."""
    t, i, inc, q, ns = _cp(noise=0.01)
    raw = pd.DataFrame({"time/s": t, "Ewe/V": 3.7, "I/mA": i, "Ns": ns,
                        "dQ/C": (q * 3.6).astype(np.float32),
                        "(Q-Qo)/C": (q * 3.6).astype(np.float32)})
    cols, attrs = biologic_columns(raw, path="cp.mpr", technique="CP")
    np.testing.assert_allclose(cols["charge_mAh"], q - q[0], atol=1e-6)
    assert "dQ/C: cumulative" in attrs["charge_columns"]
    assert "(Q-Qo)/C: cumulative" in attrs["charge_columns"]
    assert "I/mA" in attrs["charge_columns"]  # what it was compared with
    assert any("dQ/C holds a cumulative charge" in w for w in attrs["warnings"])
    # summing it, as its name says, would be 1.5-2x off and more: what this guards against
    assert abs(np.cumsum((q * 3.6)[1:])[-1] / 3.6 / q[-1]) > 10


def test_true_increments_in_dq_column_are_summed():
    t, i, inc, q, ns = _cp(noise=0.01)
    raw = pd.DataFrame({"time/s": t, "Ewe/V": 3.7, "I/mA": i, "Ns": ns,
                        "dQ/C": inc * 3.6, "(Q-Qo)/C": q * 3.6})
    cols, attrs = biologic_columns(raw, path="cp.mpr", technique="CP")
    np.testing.assert_allclose(cols["charge_mAh"], q - q[0], atol=1e-9)
    assert "dQ/C: increments" in attrs["charge_columns"]
    assert not attrs.get("warnings")


def test_cumulative_dq_without_current_judged_against_q_minus_qo():
    """No I/mA (GCPL files often have none): judged against (Q-Qo)'s steps."""
    t, i, inc, q, ns = _cp()
    raw = {"time/s": t, "Ewe/V": np.full(t.size, 3.7), "Ns": ns,
           "control/V/mA": np.where(ns == 1, 0.5, -0.5),
           "dQ/C": q * 3.6, "(Q-Qo)/C": q * 3.6}
    cols, attrs = biologic_columns(raw, path="gcpl.mpr", technique="GCPL")
    np.testing.assert_allclose(cols["charge_mAh"], q - q[0], atol=1e-9)
    assert "dQ/C: cumulative" in attrs["charge_columns"] and "(Q-Qo)/C" in attrs["charge_columns"]
    # the current comes from the charge, not the set point
    np.testing.assert_allclose(cols["current_mA"][1:], i[1:], rtol=1e-6)


def test_lone_cumulative_column_judged_against_the_set_point_on_galvanostatic_records():
    t, i, inc, q, ns = _cp()
    raw = {"time/s": t, "Ewe/V": np.full(t.size, 3.7), "Ns": ns,
           "control/V/mA": np.where(ns == 1, 0.5, -0.5), "dQ/C": q * 3.6}
    cols, attrs = biologic_columns(raw, path="cp.mpr", technique="CP",
                                   mode=np.ones(t.size, dtype=np.int64))
    np.testing.assert_allclose(cols["charge_mAh"], q - q[0], atol=1e-9)
    assert "dQ/C: cumulative" in attrs["charge_columns"]
    assert "control/V/mA" in attrs["charge_columns"]


def test_chronoamperometry_cumulative_counter_restarting_at_a_loop():
    """CA: a decaying current; the cumulative column restarts at the second loop, which
    the file does not list: found from the jump back to zero."""
    n, dt = 600, 5.0
    t = np.arange(n) * dt
    k = np.arange(n) % 300
    i = 2.0 * np.exp(-k / 60.0) + 0.05
    i *= 1 + 0.02 * RNG.standard_normal(n)
    inc = np.r_[0.0, i[1:] * dt / 3600.0]
    cum = np.cumsum(inc)
    counter = np.where(np.arange(n) < 300, cum, cum - cum[299])  # restarts at record 300
    raw = pd.DataFrame({"time/s": t, "Ewe/V": 4.2, "I/mA": i, "Ns": np.zeros(n),
                        "dQ/C": (counter * 3.6).astype(np.float32)})
    cols, attrs = biologic_columns(raw, path="ca.mpr", technique="CA")
    assert "dQ/C: cumulative" in attrs["charge_columns"]
    assert "1 jump(s) to zero" in attrs["charge_from"]
    np.testing.assert_allclose(cols["charge_mAh"][-1], cum[-1], rtol=1e-4)


def test_counter_kind_and_restarts_directly():
    r = np.r_[0.0, np.full(99, 0.01)]
    cum = np.cumsum(r)
    assert counter_kind(r, r)[0] == "increments"
    assert counter_kind(cum, r)[0] == "cumulative"
    assert counter_kind(RNG.standard_normal(100), r)[0] is None  # neither fits: undecided
    assert counter_kind(cum, np.zeros(100))[0] is None  # nothing passed: cannot tell
    restarted = np.r_[cum[:50], cum[50:] - cum[49]]
    assert np.flatnonzero(counter_restarts(restarted, reference_increments=r)).tolist() == [50]
    assert not counter_restarts(cum - cum[50]).any()  # crossing zero is no restart


def test_no_reference_falls_back_to_the_name_and_says_so():
    t = np.arange(50.0)
    raw = {"time/s": t, "Ewe/V": np.full(50, 3.7), "dq/mA.h": np.full(50, 1e-4)}
    cols, attrs = biologic_columns(raw, path="x.mpr", technique="GCPL")
    assert "by its name (nothing independent to compare with)" in attrs["charge_columns"]
    assert cols["charge_mAh"][-1] == pytest.approx(49e-4)


# ---------------------------------------------------------------------------- Ewe only


def _write_mpt(path, table: dict, technique="Galvanostatic Cycling with Potential Limitation"):
    names = list(table)
    header = ["EC-Lab ASCII FILE", "Nb header lines : 5", "", technique, "\t".join(names)]
    rows = ["\t".join(f"{table[c][k]}" for c in names) for k in range(len(table[names[0]]))]
    path.write_text("\n".join(header + rows) + "\n", encoding="cp1252")
    return path


def test_ewe_only_rest_records_read_with_zero_current(tmp_path):
    t = np.arange(5) * 60.0
    p = _write_mpt(tmp_path / "ocv_step.mpt", {"mode": [3] * 5, "Ns": [4] * 5, "time/s": t,
                                                "Ewe/V": 3.7 + 1e-3 * np.arange(5)})
    df = read_mpt(p)
    assert (df["current_mA"] == 0).all() and (df["charge_mAh"] == 0).all()
    assert df.attrs["open_circuit"] is True
    assert "mode flag is 3" in df.attrs["current_from"]


@pytest.mark.parametrize("mode", [[3, 3, 1, 1, 1], [2] * 5])
def test_ewe_only_records_under_current_are_refused(tmp_path, mode):
    t = np.arange(5) * 60.0
    p = _write_mpt(tmp_path / "cc_step.mpt", {"mode": mode, "Ns": [1] * 5, "time/s": t,
                                               "Ewe/V": np.full(5, 3.7)})
    with pytest.raises(DatasetError, match=r"cc_step\.mpt.*no current.*mode flags say"):
        read_mpt(p)


def test_ewe_only_without_mode_flags_goes_by_the_technique(tmp_path):
    t = np.arange(5) * 60.0
    table = {"time/s": t, "Ewe/V": np.full(5, 3.7)}
    df = read_mpt(_write_mpt(tmp_path / "ocv.mpt", table, technique="Open Circuit Voltage"))
    assert (df["current_mA"] == 0).all() and "technique OCV" in df.attrs["current_from"]
    with pytest.raises(DatasetError, match=r"neither EC-Lab's mode flags nor its technique \(GCPL"):
        read_mpt(_write_mpt(tmp_path / "gcpl.mpt", table))


# ---------------------------------------------------------------------------- impedance rows


@pytest.mark.parametrize("marks", [("freq/Hz", "|Z|/Ohm"), ("freq/Hz",), ("|Z|/Ohm",)])
def test_impedance_rows_among_a_time_series_are_dropped_not_integrated(tmp_path, marks):
    """A modulo-bat sequence: CC charge, a PEIS step (rows with a frequency; the time
    column jumps through it), CC charge again."""
    t, i, inc, q, ns = _cp(n=60)
    i, inc = np.abs(i), np.abs(inc)
    eis = np.zeros(60, dtype=bool)
    eis[20:30] = True
    freq = np.where(eis, np.logspace(5, -1, 60), 0.0)
    i = np.where(eis, 0.0, i)
    inc = np.where(eis, 0.0, inc)
    inc[30] = 0.5 * 10 / 3600  # the first record after it: what flowed since the last one
    z = np.where(eis, 12.0, np.nan)
    table = {"time/s": t, "Ewe/V": np.full(60, 3.7), "I/mA": i, "Ns": np.where(eis, 2, 1),
             "dq/mA.h": inc, "freq/Hz": freq, "|Z|/Ohm": z}
    for c in ("freq/Hz", "|Z|/Ohm"):
        if c not in marks:
            del table[c]
    cols, attrs = biologic_columns(pd.DataFrame(table), path="mb.mpr", technique="MB")
    assert cols["time_s"].size == 50 and attrs["impedance_rows"] == 10
    assert any("10 impedance record(s)" in w for w in attrs["warnings"])
    np.testing.assert_allclose(cols["charge_mAh"][-1], inc.sum() - inc[0], rtol=1e-12)
    assert np.all(cols["current_mA"] > 0)  # never the impedance rows' (AC) mean
    # end to end: the warning is raised, the table holds no impedance row
    p = _write_mpt(tmp_path / "mb.mpt", {k: list(v) for k, v in table.items()},
                   technique="Modulo Bat")
    with pytest.warns(EchemWarning, match="impedance record"):
        df = read_mpt(p)
    assert len(df) == 50 and df.attrs["impedance_rows"] == 10


# ---------------------------------------------------------------------------- cycles


def _protocol(segments, dt=10.0):
    """(duration s, current mA) segments -> an echem table (counter = exact charge)."""
    t, i, t0 = [], [], 0.0
    for dur, cur in segments:
        tt = t0 + np.arange(0, dur, dt)
        t.append(tt)
        i.append(np.full(tt.size, float(cur)))
        t0 += dur
    t, i = np.concatenate(t), np.concatenate(i)
    q = np.cumsum(np.r_[0.0, i[1:] * np.diff(t) / 3600.0])
    return pd.DataFrame({"time_s": t, "current_mA": i, "charge_mAh": q,
                         "voltage_V": 3.5 + 0.1 * np.sign(i)})


def test_cycle_summary_gitt_charge_is_one_half_cycle():
    """Intermittent titration: 10 charge pulses of 10 min between 1-h rests, then the same
    discharging: one cycle, not twenty."""
    seg = [(600, 1.0), (3600, 0.0)] * 10 + [(600, -1.0), (3600, 0.0)] * 10
    s = cycle_summary(_protocol(seg), active_mass_mg=1000.0)
    assert s["kind"].tolist() == ["cycle"] and s["cycle"].tolist() == [1]
    assert s["charge_capacity_mAh_g"].iloc[0] == pytest.approx(10 * 600 / 3600 - 10 / 3600)
    assert s["coulombic_efficiency"].iloc[0] == pytest.approx(6000 / 5990)


def test_cycle_summary_rest_pulses_and_junk_reported_as_such():
    seg = ([(1800, 0.0)]  # a leading rest
           + [(3600, 1.0), (600, 0.0), (3600, -1.0), (600, 0.0)]  # a real cycle
           + [(20, 2.0), (20, -2.0)] * 5 + [(600, 0.0)]  # pulses (resistance checks)
           + [(3600, 1.0), (600, 0.0), (3600, -0.9)]  # a second cycle
           + [(4, 1.0), (4, -1.0)] * 6)  # a cycler bouncing between its limits at the end
    s = cycle_summary(_protocol(seg, dt=2.0), active_mass_mg=1000.0)
    assert s["kind"].tolist() == ["rest", "cycle", "pulses", "cycle", "pulses"]
    assert s["cycle"].tolist() == [-1, 1, -1, 2, -1]
    ce = s["coulombic_efficiency"].to_numpy()
    assert np.isnan(ce[[0, 2, 4]]).all()
    np.testing.assert_allclose(ce[[1, 3]], [3600 / 3598, 0.9], rtol=2e-3)
    pulses = s.iloc[2]
    assert pulses["charge_capacity_mAh_g"] == pytest.approx(5 * 20 * 2 / 3600, rel=1e-9)


def test_cycle_summary_short_opposite_pulse_within_a_charge():
    """A 10-s discharge pulse in the middle of a charge: one charge, its net charge."""
    seg = [(1800, 1.0), (10, -1.0), (1800, 1.0), (3600, -1.0)]
    s = cycle_summary(_protocol(seg, dt=1.0), active_mass_mg=1000.0)
    assert s["kind"].tolist() == ["cycle"]
    assert s["charge_capacity_mAh_g"].iloc[0] == pytest.approx((3599 - 10) / 3600)
    assert s["discharge_capacity_mAh_g"].iloc[0] == pytest.approx(3600 / 3600)


def test_cycle_summary_rule_is_adjustable_and_checked():
    seg = [(30, 1.0), (30, -1.0)] * 3
    df = _protocol(seg, dt=1.0)
    assert cycle_summary(df, active_mass_mg=1.0)["kind"].tolist() == ["pulses"]
    s = cycle_summary(df, active_mass_mg=1.0, min_half_cycle_s=20)
    assert s["kind"].tolist() == ["cycle"] * 3
    assert "20 s" in s.attrs["half_cycle_rule"]
    with pytest.raises(DatasetError, match="min_half_cycle_s"):
        cycle_summary(df, active_mass_mg=1.0, min_half_cycle_s=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        empty = cycle_summary(df.assign(current_mA=0.0, charge_mAh=0.0), active_mass_mg=1.0)
    assert empty["kind"].tolist() == ["rest"]


def test_cumulative_counter_restarting_at_every_step_of_a_cp_sequence():
    """CP steps of different lengths, the counter restarting at each: small restarts too."""
    seg_n = [200, 5, 80, 3, 150]
    cur = [0.5, -0.5, 0.2, 1.0, -0.3]
    dt = 2.0
    i = np.concatenate([np.full(k, c) for k, c in zip(seg_n, cur, strict=True)])
    n = i.size
    t = np.arange(n) * dt
    inc = np.r_[0.0, i[1:] * dt / 3600.0]
    ns = np.concatenate([np.full(k, j) for j, k in enumerate(seg_n)])
    counter = np.zeros(n)
    for j in range(len(seg_n)):
        m = ns == j
        counter[m] = np.cumsum(inc[m])
    raw = {"time/s": t, "Ewe/V": np.full(n, 3.7), "I/mA": i, "Ns": ns, "dQ/C": counter * 3.6}
    cols, attrs = biologic_columns(raw, path="cp.mpr", technique="CP")
    assert "dQ/C: cumulative" in attrs["charge_columns"]
    np.testing.assert_allclose(cols["charge_mAh"], np.cumsum(inc), atol=1e-12)


# ---------------------------------------------------------------------------- real files


@pytest.fixture(scope="module")
def galvani_raw():
    from galvani import BioLogic

    from tests._helpers.io_utils import require_echem_dir

    folder = require_echem_dir()
    cache = {}

    def get(name):
        if name not in cache:
            mpr = BioLogic.MPRfile(str(folder / name))
            cache[name] = (pd.DataFrame({c: mpr.data[c] for c in mpr.data.dtype.names}),
                           mpr.get_flag("mode"))
        return cache[name]

    return get


@pytest.mark.parametrize("name", ["jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr",
                                  "commercial_cell_001__1753283786_C01.mpr",
                                  "250116_kigr_gen6_01_02_GCPL_CD8.mpr"])
@pytest.mark.parametrize("layout", ["old", "new", "old-alone", "old-bare"])
def test_real_file_as_an_older_eclab_would_write_it(galvani_raw, name, layout):
    """galvani's raw columns of a real file, the increments replaced by what an older
    EC-Lab writes under the name dQ/C (the cumulative (Q-Qo), float32 coulombs) or by
    true increments in coulombs: the charge is galvani's (Q-Qo) either way."""
    raw, mode = galvani_raw(name)
    qq = raw["(Q-Qo)/mA.h"].to_numpy()
    old = raw.drop(columns=["dq/mA.h", "(Q-Qo)/mA.h"])
    old["dQ/C"] = (qq * 3.6 if layout.startswith("old") else np.r_[0, np.diff(qq)] * 3.6).astype(np.float32)
    if layout in ("old", "new"):
        old["(Q-Qo)/C"] = (qq * 3.6).astype(np.float32)
    if layout == "old-bare":  # nothing to judge by but the current or the set point
        old = old.drop(columns=["Q charge/discharge/mA.h"])
    cols, attrs = biologic_columns(old, path=name, technique="CP", mode=mode)
    expected = "increments" if layout == "new" else "cumulative"
    assert f"dQ/C: {expected} (" in attrs["charge_columns"]
    span = np.ptp(qq)
    np.testing.assert_allclose(cols["charge_mAh"], qq - qq[0], rtol=0, atol=2e-5 * span + 1e-7)


def test_an_undecided_reference_gives_way_to_the_next():
    """A current that barely flows (records too few to judge by) -> (Q-Qo) decides."""
    t, i, inc, q, ns = _cp()
    i_flat = np.zeros_like(i)
    i_flat[5] = 0.5  # one record with a current: too few to judge
    raw = {"time/s": t, "Ewe/V": np.full(t.size, 3.7), "I/mA": i_flat, "Ns": ns,
           "dQ/C": q * 3.6, "(Q-Qo)/C": q * 3.6}
    cols, attrs = biologic_columns(raw, path="cp.mpr", technique="CP")
    assert "dQ/C: cumulative (its steps match the steps of (Q-Qo)/C" in attrs["charge_columns"]
    np.testing.assert_allclose(cols["charge_mAh"], q - q[0], atol=1e-9)


def test_cycle_summary_a_current_spike_does_not_make_the_cycles_rest():
    seg = [(3600, 0.1), (2, 500.0), (3600, -0.1)]
    s = cycle_summary(_protocol(seg, dt=1.0), active_mass_mg=1000.0)
    assert s["kind"].tolist() == ["cycle"]
    # the spike (2 s) is within the charge: its charge counts, as the counter says
    assert s["charge_capacity_mAh_g"].iloc[0] == pytest.approx((3599 * 0.1 + 2 * 500) / 3600)


@pytest.mark.parametrize("name", ["jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr",
                                  "00_test_04_MB_C01.mpr", "biol.mpr",
                                  "250116_kigr_gen6_01_02_GCPL_CD8.mpr",
                                  "CellC_01_02_GCPL_C04.mpr",
                                  "commercial_cell_001__1753283786_C01.mpr"])
def test_real_files_charge_columns_decided_by_content(galvani_raw, name):
    """Every real file's dq is read as increments, (Q-Qo) as a counter, each by its
    content (not by name), and the total charge is galvani's (Q-Qo) span."""
    from asymflux.io import read_echem
    from tests._helpers.io_utils import require_echem_dir

    raw, _ = galvani_raw(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EchemWarning)
        df = read_echem(require_echem_dir() / name)
    why = df.attrs["charge_columns"]
    assert "dq/mA.h: increments (its values match" in why
    assert "(Q-Qo)/mA.h: cumulative (its steps match" in why
    assert "by its name" not in why
    freq = raw["freq/Hz"].to_numpy() if "freq/Hz" in raw else np.zeros(len(raw))
    qq = raw["(Q-Qo)/mA.h"].to_numpy()[~(freq > 0)]
    assert df["charge_mAh"].iloc[-1] == pytest.approx(qq[-1] - qq[0], abs=1e-6 * np.ptp(qq))


@pytest.mark.parametrize("name", ["00_test_01_OCV_C01.mpr",
                                  "jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"])
def test_the_yadg_route_reads_mode_flags_and_charge_columns_the_same(galvani_raw, monkeypatch,
                                                                     name):
    """When galvani cannot read a file, yadg's columns go through the same seam."""
    from galvani import BioLogic

    from asymflux.io import read_echem
    from tests._helpers.io_utils import require_echem_dir

    path = require_echem_dir() / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EchemWarning)
        by_galvani = read_echem(path)

        def refuse(*args, **kwargs):
            raise NotImplementedError("Column ID 999 is unknown")

        monkeypatch.setattr(BioLogic, "MPRfile", refuse)
        by_yadg = read_echem(path)
    assert by_yadg.attrs["reader"].startswith("yadg")
    assert by_yadg.attrs["current_from"] == by_galvani.attrs["current_from"]
    assert by_yadg.attrs.get("charge_columns") == by_galvani.attrs.get("charge_columns")
    np.testing.assert_allclose(by_yadg["charge_mAh"], by_galvani["charge_mAh"], atol=1e-9)


def test_a_counter_crossing_zero_over_a_time_gap_is_no_restart():
    """Discharging through zero across a recording gap (records every 10 s, then one
    after 2 h): the counter's step is real charge, not a restart."""
    t = np.r_[np.arange(100) * 10.0, 990 + 7200.0, 990 + 7200 + np.arange(1, 50) * 10.0]
    i = np.full(t.size, -1.0)
    inc = np.r_[0.0, i[1:] * np.diff(t) / 3600.0]
    q = 2.23 + np.cumsum(inc)  # from +2.23 mAh down, crossing zero in the gap
    assert q[99] > 1.7 and abs(q[100]) < 0.1 * q[99]
    raw = {"time/s": t, "Ewe/V": np.full(t.size, 3.7), "I/mA": i, "Ns": np.zeros(t.size),
           "dQ/C": q * 3.6}
    cols, attrs = biologic_columns(raw, path="cp.mpr", technique="CP")
    assert "dQ/C: cumulative" in attrs["charge_columns"] and "jump" not in attrs["charge_from"]
    np.testing.assert_allclose(cols["charge_mAh"], q - q[0], atol=1e-9)
