"""Movies over several half-cycles: found from the cycler's current, each measured against
its own reference frame (charge, then discharge, then charge)."""

import numpy as np
import pandas as pd
import pytest

from asymflux import analysis as an
from asymflux import io, optics
from asymflux.analysis._half_cycles import find_half_cycles, frame_segments

R_PX, CENTER, SHAPE, PIXEL_NM = 20, (36, 36), (72, 72), 65.0
FRAME_S, HALF_S, REST_S = 40.0, 600.0, 120.0
MASS_MG, CURRENT_MA = 10.0, 1.0  # 100 mA/g
# (direction, start s, unit vector (row, col) towards which the core is pushed)
PHASES = [("charge", 0.0, (0, 1)), ("discharge", HALF_S + REST_S, (0, -1)),
          ("charge", 2 * (HALF_S + REST_S), (-1, 0))]
FRONT_PX, SWING = 4.0, 0.4


def _theta(progress, towards, before):
    """θ of a half-cycle at ``progress`` in [0, 1]: the region not yet changed (a disk of
    radius R (1 - progress), tangent to the edge ``towards``) keeps ``before``; outside it θ
    moves to its end value over FRONT_PX."""
    rr, cc = np.indices(SHAPE)
    r = R_PX * (1 - progress)
    c = (CENTER[0] + towards[0] * (R_PX - r), CENTER[1] + towards[1] * (R_PX - r))
    out = np.clip(np.hypot(rr - c[0], cc - c[1]) - r, 0, None)
    return out


def two_cycle_movie():
    """Charge, rest, discharge, rest, charge: the movie, its cycler table and the true
    offset d (px) and direction of the unchanged region's centre per frame."""
    t_end = PHASES[-1][1] + HALF_S
    frames_t = np.arange(0.0, t_end + 1, FRAME_S)
    part = np.hypot(*(np.indices(SHAPE) - np.array(CENTER)[:, None, None])) <= R_PX
    theta = np.full((frames_t.size, *SHAPE), np.nan)
    truth = np.full(frames_t.size, np.nan)
    high, low = optics.DEFAULT_THETA_REF, optics.DEFAULT_THETA_REF - SWING
    state = np.full(SHAPE, high)
    k = 0
    for direction, start, towards in PHASES:
        before = state.copy()
        target = low if direction == "charge" else high
        while k < frames_t.size and (frames_t[k] < start + HALF_S + REST_S or
                                     direction == PHASES[-1][0] and start == PHASES[-1][1]):
            p = float(np.clip((frames_t[k] - start) / HALF_S, 0, 1))
            out = _theta(p, towards, before)
            state = before + (target - before) * (1 - np.exp(-out / FRONT_PX))
            theta[k][part] = state[part]
            truth[k] = R_PX * p
            k += 1
    matrix = optics.carbon_matrix(SHAPE, np.random.default_rng(0), pixel_nm=PIXEL_NM)
    stack = optics.microscope(theta, np.random.default_rng(0), coverage=part.astype(float),
                              particle_reflectivity=1.0, matrix_reflectivity=matrix,
                              pixel_nm=PIXEL_NM, noise=False, offset_counts=0.0)
    et = np.arange(0.0, t_end + 1, 10.0)
    current = np.zeros(et.size)
    for direction, start, _ in PHASES:
        on = (et >= start) & (et < start + HALF_S)
        current[on] = CURRENT_MA if direction == "charge" else -CURRENT_MA
    echem = pd.DataFrame({"time_s": et, "voltage_V": 3.8, "current_mA": current})
    ds = io.Dataset(stack=stack, time_s=frames_t, pixel_nm=PIXEL_NM, echem=echem,
                    metadata={"name": "cycles", "ageing": "fresh", "active_mass_mg": MASS_MG,
                              "rate_mA_g": 100.0},
                    masks=part.astype(np.int32))
    return ds, truth


@pytest.fixture(scope="module")
def analysed():
    ds, truth = two_cycle_movie()
    particles, ts = an.analyze_dataset(ds)
    return ds, truth, particles, ts


def test_find_half_cycles_rule():
    t = np.arange(0.0, 3000, 10)
    i = np.zeros(t.size)
    i[(t >= 100) & (t < 700)] = 1.0
    i[(t >= 400) & (t < 460)] = 0.0      # a pause: still the same charge
    i[(t >= 800) & (t < 810)] = -1.0     # a 10 s pulse: not a half-cycle
    i[(t >= 900) & (t < 1500)] = -0.8
    i[(t >= 1600) & (t < 2200)] = 0.5
    i[t == 1550] = 50.0                   # a glitch: neither a half-cycle nor the scale
    i += 1e-4                             # rest noise below 1 % of the working current
    hc = find_half_cycles(t, i)
    assert list(hc.direction) == ["charge", "discharge", "charge"]
    np.testing.assert_allclose(hc.start_s, [100, 900, 1600])
    np.testing.assert_allclose(hc.end_s, [700, 1500, 2200])
    # frames every 50 s from 20 s: reference frames at or before each start
    seg = frame_segments(np.arange(20.0, 2500, 50), hc)
    assert [(a, d) for a, _b, d, _k in seg] == [(0, "charge"), (17, "discharge"),
                                               (31, "charge")]
    assert [b for _a, b, _d, _k in seg] == [17, 31, 50]
    assert find_half_cycles(t, np.zeros(t.size)).empty
    with pytest.raises(ValueError, match="one value per record"):
        find_half_cycles(t, i[:-1])


def test_two_cycle_movie_d_per_half_cycle(analysed):
    ds, truth, particles, ts = analysed
    assert list(ts.columns[:6]) == ["dataset", "particle_id", "frame", "half_cycle",
                                    "direction", "net_capacity_mAh_g"]
    n = ds.stack.shape[0]
    hc = ts["half_cycle"].to_numpy()
    assert len(ts) == n and list(np.unique(hc)) == [0, 1, 2]
    starts = [int(np.flatnonzero(hc == k)[0]) for k in range(3)]
    assert starts == [0, 18, 36]  # the frames at 0, 720 and 1440 s
    assert list(ts.groupby("half_cycle")["direction"].first()) == ["charge", "discharge",
                                                                 "charge"]
    # each half-cycle's reference frame: dI = 0 there, capacity counted from it
    assert np.allclose(ts["mean_dI"].to_numpy()[starts], 0, atol=1e-12)
    assert np.allclose(ts["capacity_mAh_g"].to_numpy()[starts], 0)
    t = ts["time_s"].to_numpy()
    start_s = np.array([p[1] for p in PHASES])[hc]
    expected = np.clip(t - start_s, 0, HALF_S) * CURRENT_MA / MASS_MG * 1000 / 3600
    np.testing.assert_allclose(ts["capacity_mAh_g"], expected, atol=0.3)  # records: 10 s
    # discharge: dI falls (the particle lithiates back), capacity still counts up
    dis = ts[ts.direction == "discharge"]
    assert (dis["mean_dI"].iloc[3:] < -0.02).all()
    assert dis["net_capacity_mAh_g"].is_monotonic_decreasing
    # d per half-cycle against the truth, where the core is neither tiny nor whole
    d_px = ts["offset_nm"].to_numpy() / PIXEL_NM
    ok = (truth >= 3) & (truth <= 14)
    for k, (_dir, _start, towards) in enumerate(PHASES):
        sel = ok & (hc == k)
        assert sel.sum() >= 8
        np.testing.assert_allclose(d_px[sel], truth[sel], atol=1.5)
        angle = np.degrees(np.arctan2(-towards[0], towards[1]))
        wrapped = (ts["offset_angle_deg"].to_numpy()[sel] - angle + 180) % 360 - 180
        np.testing.assert_allclose(wrapped, 0, atol=5)
    # one particle row per half-cycle, each classified on its own frames
    assert list(particles[["particle_id", "half_cycle", "direction"]].itertuples(
        index=False, name=None)) == [(1, 0, "charge"), (1, 1, "discharge"), (1, 2, "charge")]
    assert (particles["classification"] == "asymmetric").all()
    wrapped = (particles["direction_deg"].to_numpy() - [0, 180, 90] + 180) % 360 - 180
    np.testing.assert_allclose(wrapped, 0, atol=5)


def test_two_cycle_movie_as_one_charge_was_wrong(analysed):
    """What the analysis did before: the discharge and the second charge against frame 0
    give no offset at all (dI stays above the threshold once charged)."""
    ds, truth, _particles, ts = analysed
    whole = an.particle_timeseries(ds.stack, ds.masks, pixel_nm=PIXEL_NM, register=True)
    hc = ts["half_cycle"].to_numpy()
    np.testing.assert_array_equal(whole["offset_nm"].to_numpy()[hc == 0],
                                  ts["offset_nm"].to_numpy()[hc == 0])
    assert not np.allclose(whole["offset_nm"].to_numpy()[hc == 1],
                           ts["offset_nm"].to_numpy()[hc == 1], equal_nan=True)


def test_two_cycle_movie_streamed_equals(analysed):
    """The crops' path (instrument-scale frames) cuts the half-cycles the same way."""
    from asymflux.analysis._streaming import analyze_streaming

    ds, _truth, particles, ts = analysed
    p2, ts2 = analyze_streaming(ds)
    pd.testing.assert_frame_equal(ts2, ts, check_dtype=False, atol=1e-9)
    pd.testing.assert_frame_equal(p2, particles, check_dtype=False, atol=1e-9)


def test_cli_bare_two_cycle_movie_with_its_cycler_file(tmp_path, analysed):
    """`asymflux analyze movie.tif --echem cycler.csv`: the half-cycles of the cycler file
    cut the movie, as for a dataset (timeseries.csv and particles.csv)."""
    import tifffile

    from asymflux.cli import main

    ds, _truth, particles, ts = analysed
    movie, cell, masks = tmp_path / "movie.tif", tmp_path / "cell.csv", tmp_path / "masks.tif"
    tifffile.imwrite(movie, np.asarray(ds.stack, dtype=np.float32))
    tifffile.imwrite(masks, ds.masks.astype(np.uint16))
    ds.echem.to_csv(cell, index=False)
    assert main(["analyze", str(movie), "--out", str(tmp_path / "r"), "--pixel-nm", "65",
                 "--frame-interval-s", str(FRAME_S), "--echem", str(cell),
                 "--active-mass-mg", str(MASS_MG), "--masks", str(masks)]) == 0
    got = pd.read_csv(tmp_path / "r" / "timeseries.csv")
    np.testing.assert_array_equal(got["half_cycle"], ts["half_cycle"])
    assert list(got["direction"]) == list(ts["direction"])
    np.testing.assert_allclose(got["offset_nm"], ts["offset_nm"], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(got["capacity_mAh_g"], ts["capacity_mAh_g"], atol=1e-9)
    got_p = pd.read_csv(tmp_path / "r" / "particles.csv")
    assert list(got_p["direction"]) == list(particles["direction"])


def test_cohort_counts_a_multi_cycle_particle_once(analysed):
    """Rows per particle and half-cycle: the cohort counts each particle on its first
    charge half-cycle; rows of single-charge datasets are all kept."""
    from asymflux.analysis._results import cohort_rows

    _ds, _truth, particles, _ts = analysed
    first = particles.assign(classification=["asymmetric", "symmetric", "symmetric"])
    single = first.iloc[:1].drop(columns=["half_cycle", "direction"]).assign(
        dataset="other", classification="symmetric")
    both = pd.concat([first, single], ignore_index=True)
    rows = cohort_rows(both)
    assert list(rows["dataset"]) == ["cycles", "other"]
    assert list(rows["half_cycle"].fillna(-1)) == [0, -1]
    stats = an.cohort_statistics(both, by="ageing")
    assert int(stats["n_particles"].iloc[0]) == 2 and int(stats["n_asymmetric"].iloc[0]) == 1
    # a movie that starts on discharge: its first charge counts
    dis_first = first.assign(direction=["discharge", "charge", "discharge"])
    assert list(cohort_rows(dis_first)["half_cycle"]) == [1]


def test_capacity_counted_from_the_first_frame_with_one(analysed):
    """Frames before the cycler's first record have no capacity: the first half-cycle's
    capacity is counted from its first frame with one (said in the warnings)."""
    from asymflux.analysis._half_cycles import measure_half_cycles

    ds, _truth, _particles, ts = analysed
    raw = an.particle_timeseries(ds.stack, ds.masks, pixel_nm=PIXEL_NM, register=True)
    net = ts["net_capacity_mAh_g"].to_numpy().copy()
    net[:2] = np.nan
    seg = frame_segments(ds.time_s, find_half_cycles(ds.echem.time_s, ds.echem.current_mA))
    first = [(0, seg[0][1], "charge", 0), (seg[0][1], ds.stack.shape[0], "charge", 1)]
    out = measure_half_cycles(raw, first, lambda frames, **kw: an.particle_timeseries(
        frames, ds.masks, pixel_nm=PIXEL_NM, **kw), stack=ds.stack, capacity_mAh_g=net)
    cap = out["capacity_mAh_g"].to_numpy()
    assert np.isnan(cap[:2]).all() and cap[2] == 0
    np.testing.assert_allclose(cap[2:seg[0][1]], net[2:seg[0][1]] - net[2])
    assert any("counted from frame 2" in w for w in out.attrs["warnings"])


def test_one_particle_has_the_datasets_half_cycles(analysed):
    """analyze_dataset_particle (asymflux fit, the dashboards, napari): the same rows as
    analyze_dataset over several half-cycles."""
    ds, _truth, _particles, ts = analysed
    one = an.analyze_dataset_particle(ds, 1, crop=False)
    # the one-particle table has no cycler columns (cycler_time_s, voltage_V, current_mA:
    # the explorer's measured and simulated tables keep one set of columns)
    assert set(ts.columns) - set(one.timeseries.columns) == {"cycler_time_s", "voltage_V",
                                                             "current_mA"}
    pd.testing.assert_frame_equal(one.timeseries.reset_index(drop=True),
                                  ts[ts.particle_id == 1][list(one.timeseries.columns)]
                                  .reset_index(drop=True), check_dtype=False, atol=1e-9)
    np.testing.assert_allclose(one.capacity_mAh_g, ts["capacity_mAh_g"])
