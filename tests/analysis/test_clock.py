"""The camera's clock against the cycler's: --time-offset-s, its estimate, the per-frame
cycler columns (issue 27)."""

import numpy as np
import pandas as pd
import pytest

from asymflux import analysis as an
from asymflux import io
from tests._helpers.clock import FRAME_S, clock_dataset, cycler_table


@pytest.mark.parametrize("offset_s", [0.0, 137.0, -95.0, 410.0])
def test_offset_recovered_within_its_uncertainty(offset_s):
    ds = clock_dataset(offset_s, seed=int(abs(offset_s)))
    est = an.estimate_dataset_time_offset(ds)
    assert est.method == "optical-rate"
    assert abs(est.offset_s - offset_s) <= est.uncertainty_s, est
    # the uncertainty is honest but useful: about a frame interval, not the movie
    assert FRAME_S / 2 <= est.uncertainty_s <= 3 * FRAME_S
    assert "R²" in est.detail


def test_no_step_in_the_movie_refused():
    ds = clock_dataset(0.0)
    e = ds.echem.copy()
    e["current_mA"] = 0.05
    e["capacity_mAh_g"] = np.linspace(0, 100, len(e))
    flat = io.Dataset(stack=ds.stack, time_s=ds.time_s, pixel_nm=65.0, echem=e, masks=ds.masks)
    with pytest.raises(ValueError, match="cannot be estimated.*--time-offset-s"):
        an.estimate_dataset_time_offset(flat)


def test_recorded_voltage_aligned_with_the_cycler_file():
    cyc = cycler_table(dt_s=2.0)
    true = 57.0
    cam_t = np.arange(0.0, 1800.0, 2.0)  # the camera's acquisition samples the voltage
    rec = pd.DataFrame({"time_s": cam_t,
                        "voltage_V": np.interp(cam_t + true, cyc.time_s, cyc.voltage_V)
                        + 0.001 * np.random.default_rng(1).standard_normal(cam_t.size)})
    ds = clock_dataset(true)
    ds.recorded_echem = rec
    est = an.estimate_dataset_time_offset(ds)
    assert est.method == "recorded-voltage"
    assert abs(est.offset_s - true) <= est.uncertainty_s <= 6.0  # half the 10-s cycler interval


def test_given_offset_shifts_capacity_and_cycler_columns():
    ds = clock_dataset(0.0)
    frames = np.array([0, 10, 25, 40])
    _, ts0 = an.analyze_dataset(ds, register=False)
    _, ts = an.analyze_dataset(ds, register=False, time_offset_s=120.0)
    one = ts[ts.particle_id == 1].set_index("frame")
    one0 = ts0[ts0.particle_id == 1].set_index("frame")
    e = ds.echem
    cyc_t = ds.time_s[frames] + 120.0
    np.testing.assert_allclose(one.loc[frames, "capacity_mAh_g"],
                               np.interp(cyc_t, e.time_s, e.capacity_mAh_g), rtol=1e-9)
    np.testing.assert_allclose(one.loc[frames, "cycler_time_s"], cyc_t)
    np.testing.assert_allclose(one.loc[frames, "voltage_V"], np.interp(cyc_t, e.time_s, e.voltage_V))
    np.testing.assert_allclose(one.loc[frames, "current_mA"],
                               np.interp(cyc_t, e.time_s, e.current_mA))
    # frame 10 at camera 300 s: cycler 420 s (charging) with the offset, 300 s without
    assert one.loc[10, "capacity_mAh_g"] > one0.loc[10, "capacity_mAh_g"]
    assert one0.loc[10, "current_mA"] == pytest.approx(0.05)
    # the record: columns and attrs of both tables
    p, _ = an.analyze_dataset(ds, register=False, time_offset_s=120.0)
    assert (p.time_offset_s == 120.0).all() and (p.time_offset_method == "given").all()
    assert ts.attrs["time_offset"]["time_offset_s"] == 120.0


def test_cycler_columns_nan_outside_the_record():
    ds = clock_dataset(0.0)
    at = an.cycler_at_frames(an.apply_time_offset(ds, -100.0))  # frames 0-3 before the cycler
    assert at.loc[:3, "voltage_V"].isna().all() and at.loc[4:, "voltage_V"].notna().all()
    e = ds.echem
    k = 20  # a frame on a cycler sample: its values exactly
    t = ds.time_s[k] - 100.0
    row = e[np.isclose(e.time_s, t)].iloc[0]
    assert at.loc[k, "voltage_V"] == row.voltage_V and at.loc[k, "current_mA"] == row.current_mA
    # applying again starts from the cycler's own clock (no double shift)
    twice = an.apply_time_offset(an.apply_time_offset(ds, -100.0), 30.0)
    np.testing.assert_allclose(twice.echem.time_s, e.time_s - 30.0)


def test_bad_offsets_refused():
    ds = clock_dataset(0.0)
    with pytest.raises(ValueError, match="seconds or 'auto'"):
        an.apply_time_offset(ds, "soon")
    with pytest.raises(ValueError, match="finite"):
        an.apply_time_offset(ds, float("nan"))


def test_cli_time_offset(tmp_path, capsys):
    from asymflux.cli import main

    folder = io.write_dataset(clock_dataset(137.0), tmp_path / "clock")
    out = tmp_path / "out"
    assert main(["analyze", str(folder), "--out", str(out), "--time-offset-s", "auto",
                 "--no-register"]) == 0
    clock = pd.read_csv(out / "clock.csv")
    assert clock.time_offset_method[0] == "optical-rate"
    assert abs(clock.time_offset_s[0] - 137.0) <= clock.time_offset_uncertainty_s[0]
    ts = pd.read_csv(out / "timeseries.csv")
    for col in ("cycler_time_s", "voltage_V", "current_mA"):
        assert col in ts.columns
    np.testing.assert_allclose(ts.cycler_time_s - ts.time_s, clock.time_offset_s[0])
    p = pd.read_csv(out / "particles.csv")
    assert np.allclose(p.time_offset_s, clock.time_offset_s[0])
    assert main(["analyze", str(folder), "--out", str(out), "--time-offset-s", "-20",
                 "--no-register"]) == 0
    assert pd.read_csv(out / "clock.csv").time_offset_s[0] == -20.0
    assert main(["analyze", str(folder), "--out", str(out), "--time-offset-s", "x"]) == 2
    assert "--time-offset-s" in capsys.readouterr().err


def test_incremental_capacity_of_a_linear_curve():
    v = np.linspace(3.6, 4.0, 200)
    q = 500 * (v - 3.6)
    vb, dq = an.incremental_capacity(v, q, bin_V=0.02)
    assert vb.size == 20
    np.testing.assert_allclose(dq, 500, rtol=1e-6)


@pytest.fixture(scope="module")
def analysed():
    ds = clock_dataset(0.0)
    return an.analyze_dataset(ds, register=False)


def test_incremental_capacity_table_and_plot(analysed):
    from asymflux import plots

    _, ts = analysed
    tab = an.incremental_capacity_table(ts, bin_V=0.01)
    assert set(tab.segment) == {"charge"}  # rest frames (zero current) left out
    # the synthetic voltage is linear in capacity while charging: dQ/dV constant
    e = cycler_table()
    charging = e[e.current_mA > 0]
    slope = np.polyfit(charging.voltage_V, charging.capacity_mAh_g, 1)[0]
    np.testing.assert_allclose(tab.dqdv_mAh_g_V, slope, rtol=0.02)
    assert (tab.dmean_dI_dV > 0).all()  # the optical signal rises with voltage on charge
    fig = plots.dqdv_optical(tab)
    left, right = fig
    curve, optical = left.values()
    np.testing.assert_allclose(curve.dimension_values("dqdv_mAh_g_V"),
                               tab.sort_values("voltage_V").dqdv_mAh_g_V)
    scaled = optical.dimension_values("dqdv_mAh_g_V")
    assert np.nanmax(np.abs(scaled)) == pytest.approx(np.nanmax(np.abs(tab.dqdv_mAh_g_V)))
    assert len(plots.dqdv_optical(an.incremental_capacity_table(ts.iloc[:0]))) == 2
    with pytest.raises(ValueError, match="one dataset"):
        an.incremental_capacity_table(pd.concat([ts, ts.assign(dataset="other")]))


def test_cohort_page_dqdv_of_the_particles_dataset(analysed):
    pytest.importorskip("panel")
    from asymflux.views.cohort import CohortBrowser

    _, ts = analysed
    b = CohortBrowser(datasets="nothing")  # nothing is loaded before the page is shown
    b._series = {"clock": ts}
    left, _ = b._dqdv_plot(("clock", 1))
    assert left.opts.get().kwargs["title"].endswith(": clock")
    assert "no dQ/dV" in b._dqdv_plot(("other", 1)).opts.get().kwargs["title"]


def test_cycler_file_on_an_absolute_clock(tmp_path):
    """A cycler file timed from the epoch, frames from 0: refused without an offset, naming
    time_offset_s; a given offset or the estimate aligns them."""
    from asymflux.analysis import analyze_path

    epoch = 1.7e9
    ds = clock_dataset(137.0)
    e = ds.echem.copy()
    e["time_s"] = e["time_s"] + epoch  # the cycler's clock: epoch + 137 s at frame 0
    csv = tmp_path / "cycler.csv"
    e.to_csv(csv, index=False)
    bare = io.Dataset(stack=ds.stack, time_s=ds.time_s, pixel_nm=65.0, masks=ds.masks,
                      metadata={**ds.metadata})
    folder = io.write_dataset(bare, tmp_path / "movie")
    read = {"echem": csv, "active_mass_mg": 1.0}
    with pytest.raises(ValueError, match="time_offset_s"):
        analyze_path(folder, read=read)
    p, ts, _, _ = analyze_path(folder, read=read, time_offset_s=epoch + 137.0,
                               options={"register": False})
    assert p.time_offset_method.iloc[0] == "given"
    one = ts[ts.particle_id == 1]
    np.testing.assert_allclose(one.capacity_mAh_g,
                               np.interp(ds.time_s + 137.0, e.time_s - epoch, e.capacity_mAh_g))
    p, ts, _, _ = analyze_path(folder, read=read, time_offset_s="auto",
                               options={"register": False})
    assert abs(p.time_offset_s.iloc[0] - (epoch + 137.0)) <= p.time_offset_uncertainty_s.iloc[0]


def test_instrument_file_recorded_voltage_against_a_cycler_file(tmp_path):
    """An instrument HDF5 file (its potentiostat values on the camera's clock) analysed with
    a separate cycler file on the cycler's clock: 'auto' aligns the two voltages."""
    import h5py

    from asymflux.analysis import analyze_path

    true = 57.0
    ds = clock_dataset(true)
    cyc = cycler_table(dt_s=2.0)
    t_rec = np.arange(0.0, 1780.0, 1.0)  # the acquisition's samples, camera clock
    v_rec = np.interp(t_rec + true, cyc.time_s, cyc.voltage_V)
    i_rec = np.interp(t_rec + true, cyc.time_s, cyc.current_mA)
    h5 = tmp_path / "run.h5"
    with h5py.File(h5, "w") as f:
        f["movie"] = ds.stack
        f["movie"].attrs["pixel_nm"] = 65.0
        f["camera_timing"] = ds.time_s
        f["potentiostat_value"] = np.vstack([t_rec, v_rec, i_rec])
    csv = tmp_path / "cycler.csv"
    cyc.to_csv(csv, index=False)
    p, ts, _, _ = analyze_path(h5, read={"echem": csv, "active_mass_mg": 1.0},
                               masks=ds.masks, time_offset_s="auto",
                               options={"register": False})
    assert p.time_offset_method.iloc[0] == "recorded-voltage"
    assert abs(p.time_offset_s.iloc[0] - true) <= p.time_offset_uncertainty_s.iloc[0] <= 1.5
    one = ts[ts.particle_id == 1]
    np.testing.assert_allclose(one.voltage_V, np.interp(one.cycler_time_s, cyc.time_s,
                                                        cyc.voltage_V))


def test_one_particle_takes_the_offset(analysed):
    _, ts = analysed
    ds = clock_dataset(0.0)
    rows = ts[ts.particle_id == 1].reset_index(drop=True)
    one = an.analyze_dataset_particle(ds, 1, register=False, time_offset_s=60.0).timeseries
    e = ds.echem
    np.testing.assert_allclose(one.capacity_mAh_g,
                               np.interp(rows.time_s + 60.0, e.time_s, e.capacity_mAh_g,
                                         right=np.nan))


def test_analyze_path_takes_text_and_a_time_offset(tmp_path):
    from asymflux.analysis import analyze_path

    ds = clock_dataset(0.0)
    e = ds.echem.copy()
    e["time_s"] = e["time_s"] + 5000.0  # no overlap without the offset
    csv = tmp_path / "cycler.csv"
    e.to_csv(csv, index=False)
    bare = io.Dataset(stack=ds.stack, time_s=ds.time_s, pixel_nm=65.0, masks=ds.masks,
                      metadata=ds.metadata)
    folder = io.write_dataset(bare, tmp_path / "movie")
    read = {"echem": csv, "active_mass_mg": 1.0}
    for given in ("5000", an.TimeOffset(5000.0, method="given")):
        p, _, _, _ = analyze_path(folder, read=read, time_offset_s=given,
                                  options={"register": False})
        assert p.time_offset_s.iloc[0] == 5000.0
