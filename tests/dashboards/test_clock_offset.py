"""The dashboards' clock offset (issue 27): the cohort page's and the model explorer's field,
passed to the dataset's analysis, part of every cache key it affects; the numbers the pages
show equal ``asymflux analyze --time-offset-s`` for the same input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asymflux import io, optics
from asymflux.cli import main
from asymflux.views import _compute as C
from asymflux.views import _jobs as J
from asymflux.views import _pool as P

OFFSET_S = 137.0  # the cycler's clock reads the camera's + this
FRAME_S = 30.0


def _clock_dataset():
    """Two particles whose occupancy follows the cycler's charge (a rest, a charge from 300
    to 1200 s, a rest, on the cycler's clock), imaged every 30 s on the camera's clock."""
    rng = np.random.default_rng(3)
    shape = (48, 64)
    rr, cc = np.mgrid[:shape[0], :shape[1]]
    labels = np.zeros(shape, np.int32)
    for k, (r0, c0, rad) in enumerate(((16, 18, 9), (30, 44, 11)), start=1):
        labels[(rr - r0) ** 2 + (cc - c0) ** 2 <= rad ** 2] = k
    t = np.arange(0.0, 2400.0 + 5.0, 10.0)
    i = np.where((t >= 300.0) & (t < 1200.0), 0.05, 0.0)
    q = np.concatenate([[0.0], np.cumsum(0.5 * (i[1:] + i[:-1]) * np.diff(t))]) / 3.6  # mAh/g
    echem = pd.DataFrame({"time_s": t, "voltage_V": 3.6 + 0.4 * q / q.max() + 0.05 * (i > 0),
                          "current_mA": i, "capacity_mAh_g": q})
    cam_t = np.arange(60) * FRAME_S
    theta = 1.0 - 0.6 * np.interp(cam_t + OFFSET_S, t, q) / q.max()
    dI = optics.dI_from_theta(theta, theta_ref=1.0)
    base = np.where(labels > 0, 1.0, 0.5)
    stack = base[None] * (1 + (labels[None] > 0) * dI[:, None, None])
    stack = stack * (1 + 0.002 * rng.standard_normal(stack.shape))
    return io.Dataset(stack=stack.astype(np.float32), time_s=cam_t, pixel_nm=65.0, echem=echem,
                      metadata={"name": "clock", "active_mass_mg": 1.0, "material": "NMC",
                                "ageing": "fresh", "rate_mA_g": 50.0, "cell": "synthetic"},
                      masks=labels)


@pytest.fixture(scope="module")
def clock_folder(tmp_path_factory):
    return str(io.write_dataset(_clock_dataset(), tmp_path_factory.mktemp("clock") / "clock"))


@pytest.fixture(scope="module")
def cli_results(clock_folder, tmp_path_factory):
    """``asymflux analyze --time-offset-s`` of the dataset: ``{offset text: folder}``."""
    out = {}
    for text in ("auto", "-20"):
        folder = tmp_path_factory.mktemp("cli") / "res"
        assert main(["analyze", clock_folder, "--out", str(folder), "--time-offset-s", text]) == 0
        out[text] = folder
    return out


def test_the_offset_text_a_page_takes():
    assert C.time_offset_value("") is None and C.time_offset_value(None) is None
    assert C.time_offset_value(" Auto ") == "auto"
    assert C.time_offset_value("-12.5") == -12.5 and C.time_offset_value("30 s") == 30.0
    for bad in ("soon", "nan", "inf"):
        with pytest.raises(C.DatasetSpecError, match="clock offset: expected seconds"):
            C.time_offset_value(bad)


@pytest.mark.parametrize("text", ["auto", "-20"])
def test_the_pages_numbers_equal_the_clis(clock_folder, cli_results, text):
    """J.analyzed (the page's analysis, outside a server) with an offset: the same offset,
    uncertainty and method, and the same per-frame capacity and d(capacity), as
    ``asymflux analyze --time-offset-s`` (clock.csv, particles.csv, timeseries.csv)."""
    ds, particles, ts, _labels = J.analyzed(clock_folder, time_offset_s=text)
    clock = pd.read_csv(cli_results[text] / "clock.csv")
    used = C.time_offset_used(particles, ds)
    assert used.method == clock.time_offset_method[0] == ("optical-rate" if text == "auto"
                                                         else "given")
    assert used.offset_s == pytest.approx(clock.time_offset_s[0], abs=1e-9)
    np.testing.assert_allclose(used.uncertainty_s, clock.time_offset_uncertainty_s[0],
                               equal_nan=True)
    if text == "auto":  # the estimate recovers the true offset within its uncertainty
        assert abs(used.offset_s - OFFSET_S) <= used.uncertainty_s
    cli_ts = pd.read_csv(cli_results[text] / "timeseries.csv")
    key = ["particle_id", "frame"]
    mine = ts.sort_values(key).reset_index(drop=True)
    theirs = cli_ts.sort_values(key).reset_index(drop=True)
    for col in ("capacity_mAh_g", "cycler_time_s", "voltage_V", "offset_nm", "mean_dI"):
        np.testing.assert_allclose(mine[col].to_numpy(float), theirs[col].to_numpy(float),
                                   rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=col)
    # the Panel-free functions behind it (views._compute): the same numbers
    plain_p, plain_ts, _ = C.analyze(C.load_dataset(clock_folder, time_offset_s=text))
    np.testing.assert_allclose(
        plain_ts.sort_values(key)["capacity_mAh_g"].to_numpy(float),
        mine["capacity_mAh_g"].to_numpy(float), equal_nan=True)
    assert C.time_offset_used(plain_p).offset_s == pytest.approx(used.offset_s, abs=1e-9)
    cli_p = pd.read_csv(cli_results[text] / "particles.csv").sort_values("particle_id")
    np.testing.assert_allclose(particles.sort_values("particle_id")["time_offset_s"],
                               cli_p["time_offset_s"])
    # the particle's movie (d(capacity) of the pages' plots) on the same capacities
    pid = int(particles["particle_id"].iloc[0])
    movie = J.measured(clock_folder, pid, time_offset_s=text)
    np.testing.assert_allclose(movie.capacity_mAh_g,
                               mine[mine.particle_id == pid]["capacity_mAh_g"], rtol=1e-9)


def test_the_offset_is_part_of_the_cache_keys(clock_folder):
    given = J.analyzed(clock_folder, time_offset_s="60")
    assert J.analyzed(clock_folder, time_offset_s=" 60 ") is given  # the same: not again
    assert J.analysis_ready(clock_folder, time_offset_s=60.0)
    assert not J.analysis_ready(clock_folder, time_offset_s=61.0)
    other = J.analyzed(clock_folder, time_offset_s=0)
    own = J.analyzed(clock_folder)  # none given: the dataset's own (as before)
    assert other is not given and own is not other
    assert C.time_offset_used(own[1], own[0]).method == "none"
    cap = {k: r[2].loc[r[2].particle_id == 1, "capacity_mAh_g"].to_numpy()
           for k, r in (("60", given), ("0", other))}
    assert not np.allclose(cap["60"], cap["0"], equal_nan=True)
    m60 = J.measured(clock_folder, 1, time_offset_s="60")
    assert J.measured(clock_folder, 1, time_offset_s=60.0) is m60
    np.testing.assert_allclose(J.measured(clock_folder, 1, time_offset_s=0).capacity_mAh_g,
                               cap["0"])
    # the simulated twin's key holds it too
    s = {"eta": 0.3, "blocked_fraction": 0.25, "angle_deg": 180.0, "rate_mA_g": 50.0,
         "diffusivity_scale": 1.0}
    keys = [P._simulated_call(clock_folder, 1, s, off)[1]["key"] for off in (60.0, 0.0)]
    assert keys[0] != keys[1]


def test_a_results_folder_refuses_an_offset_and_shows_its_own(cli_results):
    spec = str(cli_results["-20"])
    with pytest.raises(C.DatasetSpecError, match="own clock offset"):
        J.analyzed(spec, time_offset_s="5")
    _ds, particles, _ts, _l = J.analyzed(spec)
    used = C.time_offset_used(particles)
    assert (used.offset_s, used.method) == (-20.0, "given")


def test_the_worker_process_analyses_with_the_offset(clock_folder, cli_results):
    """start_analysis (a server's page): the worker estimates the offset once; the result
    and the dataset kept for the particles' movies carry it; the same as the CLI's."""
    with J._LOCK:  # analysed in this process by the tests above: not in the table here
        J._RESULTS.pop((clock_folder, J.dataset_stamp(clock_folder), "auto"), None)
    job = J.start_analysis(clock_folder, time_offset_s="auto")
    try:
        ds, particles, ts, _labels = job.future.result(timeout=240)
    finally:
        job.release()
    clock = pd.read_csv(cli_results["auto"] / "clock.csv")
    for used in (C.time_offset_used(particles), C.time_offset_used(None, ds)):
        assert used.method == "optical-rate"
        assert used.offset_s == pytest.approx(clock.time_offset_s[0], abs=1e-9)
    assert job.process is not None  # a worker's
    assert J.analysis_ready(clock_folder, time_offset_s="auto")
    # the Fit button's fit is given that estimate (not estimated again in its worker)
    assert J._used_offset(clock_folder, "auto") == C.time_offset_used(None, ds)
    assert J._used_offset(clock_folder, 5.0) == 5.0


def test_the_cohort_page_shows_the_offset_used(clock_folder):
    from asymflux.views.cohort import CohortBrowser

    page = CohortBrowser(datasets=clock_folder, time_offset="-20")
    page.load()
    assert page.particles is not None and (page.particles["time_offset_s"] == -20.0).all()
    assert "-20 s (given by the user)" in page.offset_used.object
    page.time_offset = "soon"  # a change re-loads: refused with the field's message
    assert "clock offset: expected seconds" in page.alert.object


def test_the_explorer_passes_the_offset(clock_folder, monkeypatch):
    """The explorer's field: the analysis, the measured particle and the twin's key take it;
    the slider keys of the maps and Fig. 5b do not (their latency untouched)."""
    from asymflux.views.model_explorer import ModelExplorer

    monkeypatch.setattr(P, "prefetch", lambda *a, **kw: {})  # no simulations here
    monkeypatch.setattr(ModelExplorer, "_publish", lambda self, keys: None)
    view = ModelExplorer(dataset=clock_folder, time_offset="-20")
    assert "-20 s (given by the user)" in view._dataset_info.object
    keys = view._keys(view.model_settings())
    assert keys["twin"][-1] == "-20"
    assert "-20" not in keys["maps"] and "-20" not in keys["rate"]
    m = view._measured_movie(clock_folder, view.particle_id, -20.0)
    assert m is J.measured(clock_folder, view.particle_id, time_offset_s="-20")
    pid, rate = view.particle_id, view.settings.rate_mA_g
    view.time_offset = "0"  # analysed again; the same particle and rate
    assert "0 s (given by the user)" in view._dataset_info.object
    assert (view.particle_id, view.settings.rate_mA_g) == (pid, rate)
