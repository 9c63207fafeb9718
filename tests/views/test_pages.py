"""Logic of the dashboard views without a browser: parameters in, data out."""

from __future__ import annotations

import io
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pn = pytest.importorskip("panel")
hv = pytest.importorskip("holoviews")

from asymflux.model.calibration import FILM_RESISTANCE_ETA_0_3_OHM_M2  # noqa: E402
from asymflux.views import CohortBrowser, ModelExplorer  # noqa: E402
from asymflux.views import _compute as C  # noqa: E402
from tests._helpers.server import COHORT_DATASETS  # noqa: E402


@pytest.fixture(scope="module")
def explorer(demo_data):
    return ModelExplorer(dataset="aged")


def test_theta_maps_follow_parameters(explorer):
    maps = explorer.theta_maps()
    assert list(maps["minutes"]) == [5.0, 10.0, 15.0, 20.0]
    assert maps["reached"].all()
    blocked = explorer.theta_maps(eta=0.3, blocked_fraction=0.5)
    clean = explorer.theta_maps(eta=1.0, blocked_fraction=0.0)
    # a blocked left side keeps the left half more lithiated than the right
    th = blocked["theta"].iloc[1]
    n = th.shape[1]
    assert np.nanmean(th[:, : n // 2]) > np.nanmean(th[:, n // 2 :]) + 0.01
    thc = clean["theta"].iloc[1]
    assert abs(np.nanmean(thc[:, : n // 2]) - np.nanmean(thc[:, n // 2 :])) < 0.005


def test_fast_rate_ends_early_and_is_marked(explorer):
    maps = explorer.theta_maps(rate_mA_g=800.0)
    assert not maps["reached"].iloc[-1]
    assert np.all(np.isnan(maps["theta"].iloc[-1]))


def test_rate_table_has_paper_curves_and_current(explorer):
    t = explorer.rate_table(eta=0.3, blocked_fraction=0.25)
    assert set(t["blocked"]) == {"none", "180:0.25:0.7", "180:0.25:0.3", C.CURRENT_LABEL}
    wide = t.pivot(index="rate_mA_g", columns="blocked", values="li_extracted")
    assert np.all(np.diff(wide["none"].to_numpy()) < 0)  # less Li at higher rate
    assert np.all(wide["none"] > wide["180:0.25:0.3"])
    np.testing.assert_allclose(wide[C.CURRENT_LABEL], wide["180:0.25:0.3"])
    assert explorer.current_li_extracted(rate_mA_g=400.0) == pytest.approx(
        wide.loc[400.0, "180:0.25:0.3"])


@pytest.mark.parametrize("eta, rate", [(1.0, 50.0), (0.3, 400.0)])
def test_rate_points_on_the_sweep_mesh_match_the_default_mesh(eta, rate):
    from asymflux import model

    fine = model.simulate(C._params(1.0), model.disk_mesh(C.FIG4_RADIUS_UM),
                          C.make_surface(eta, 0.25), [model.Charge(rate)])
    assert C.li_extracted(eta, 0.25, rate) == pytest.approx(fine.li_extracted[-1], abs=5e-5)


def test_a_curves_missing_rates_run_side_by_side_once(monkeypatch):
    """Fig. 5b's points of one surface: the rates not in the table yet are computed together,
    in one run (``_compute.li_extracted_at_rates``), a single missing rate alone
    (``_compute.li_extracted``); points already there are reused; the values are each
    rate's own run's within 1e-4 per f.u.; a failed run is run again when asked again."""
    from asymflux.views import _pool as P

    monkeypatch.setattr(P, "_pool", lambda: None)  # in this process, to count the calls
    monkeypatch.setattr(P, "_FUTURES", type(P._FUTURES)())
    calls = []
    batch, one = C.li_extracted_at_rates, C.li_extracted
    fail = []

    def counted_batch(*args):
        calls.append(args[2])
        if fail:
            raise fail.pop()
        return batch(*args)

    def counted_one(*args):
        calls.append(args[2])
        return one(*args)

    monkeypatch.setattr(C, "li_extracted_at_rates", counted_batch)
    monkeypatch.setattr(C, "li_extracted", counted_one)
    film = 0.2
    first, started = P._submit_points(1.0, 0.25, [100.0, 400.0], 1.0, film)
    assert started and calls == [(100.0, 400.0)]
    more, started = P._submit_points(1.0, 0.25, [50.0, 100.0, 400.0, 50.0], 1.0, film)
    assert started and calls[1:] == [50.0]  # only the new rate; a rate asked twice once
    assert more[1] is first[0] and more[2] is first[1] and len(more) == 3
    again, started = P._submit_points(1.0, 0.25, [400.0, 50.0], 1.0, film)
    assert not started and len(calls) == 2
    for rate, fut in zip([50.0, 100.0, 400.0], more, strict=True):
        assert fut.result() == pytest.approx(one(1.0, 0.25, rate, 1.0, film), abs=1e-4)

    fail.append(RuntimeError("the solver failed"))
    lost, _ = P._submit_points(1.0, 0.25, [200.0, 300.0], 1.0, film)
    for fut in lost:
        with pytest.raises(RuntimeError, match="solver failed"):
            fut.result()
    retried, started = P._submit_points(1.0, 0.25, [200.0, 300.0, 100.0], 1.0, film)
    assert started and calls[2:] == [(200.0, 300.0), (200.0, 300.0)]
    assert retried[0].result() == pytest.approx(one(1.0, 0.25, 200.0, 1.0, film), abs=1e-4)
    assert retried[2] is first[0]

    # one rate failing alone leaves the others' points
    monkeypatch.setattr(C, "li_extracted_at_rates",
                        lambda *args: [0.5, RuntimeError("rate 150 failed")])
    mixed, _ = P._submit_points(0.3, 0.25, [75.0, 150.0], 1.0)
    assert mixed[0].result() == 0.5
    with pytest.raises(RuntimeError, match="rate 150"):
        mixed[1].result()


def test_a_run_cancelled_when_the_pool_stopped_is_run_again(monkeypatch):
    """A future cancelled by the pool's shutdown (``cancel_futures``) counts as failed: asking
    for its result again runs it again instead of raising CancelledError."""
    from concurrent.futures import Future

    from asymflux.views import _pool as P

    monkeypatch.setattr(P, "_pool", lambda: None)
    monkeypatch.setattr(P, "_FUTURES", type(P._FUTURES)())
    cancelled = Future()
    assert cancelled.cancel()
    P._FUTURES[P._point_key(1.0, 0.0, 400.0, 1.0)] = cancelled
    (fut,), started = P._submit_points(1.0, 0.0, [400.0], 1.0)
    assert started and fut is not cancelled
    assert fut.result() == pytest.approx(C.li_extracted(1.0, 0.0, 400.0), abs=1e-12)


def test_comparison_same_code_path(explorer):
    comp = explorer.comparison()
    m, s = comp["measured"], comp["simulated"]
    assert m.source == "measured" and s.source == "simulated"
    assert set(comp["timeseries"]["source"]) == {"measured", "simulated"}
    # same analysis columns for both, capacities of the simulated frames are measured ones
    assert list(m.timeseries.columns) == list(s.timeseries.columns)
    assert np.all(np.isin(s.capacity_mAh_g, m.capacity_mAh_g))
    assert m.kymograph.shape[0] == m.dI.shape[0] and s.kymograph.shape[0] == s.dI.shape[0]
    # blocked on the left like the measured particle 1: the core is displaced
    d = s.timeseries["offset_nm"].to_numpy()
    assert np.nanmax(d) > 100
    sym = explorer.comparison(eta=1.0, blocked_fraction=0.0)["simulated"].timeseries
    assert np.nanmax(sym["offset_nm"].to_numpy()[:15]) < np.nanmax(d[:15])


@pytest.mark.parametrize("film_ohm_m2", [None, 0.2], ids=["prescribed", "kinetic"])
def test_simulated_twin_mesh_is_fine_enough(explorer, monkeypatch, film_ohm_m2):
    # the twin runs on a coarser mesh than the demo data (PARTICLE_MESH) to answer a slider
    # quickly; through the PSF and the pixels its d(capacity) must not tell the difference
    from asymflux.views import _jobs as J

    m = J.measured(explorer.dataset, 1)
    kw = dict(eta=0.3, blocked_fraction=0.25, angle_deg=180.0, rate_mA_g=100.0,
              film_ohm_m2=film_ohm_m2)
    coarse = C.simulated_particle(m.mask, m.pixel_nm, m.capacity_mAh_g, **kw).timeseries
    monkeypatch.setattr(C, "PARTICLE_MESH", (16, 48))
    fine = C.simulated_particle(m.mask, m.pixel_nm, m.capacity_mAh_g, **kw).timeseries
    assert len(coarse) == len(fine) > 10
    d_c, d_f = coarse["offset_nm"].to_numpy(), fine["offset_nm"].to_numpy()
    # the same frames have a core (d itself may be NaN on one side only where the last
    # core is just below or above min_core_px: "core too small")
    has_c = coarse["offset_reason"].isin(["", "core too small"]).to_numpy()
    has_f = fine["offset_reason"].isin(["", "core too small"]).to_numpy()
    assert np.array_equal(has_c, has_f)
    assert np.sum(np.isnan(d_c) != np.isnan(d_f)) <= 1
    assert np.nanmax(d_f) > 200  # an asymmetric core, so the comparison means something
    assert np.nanmax(np.abs(d_c - d_f)) < 15.0  # nm; pixels are 65 nm


def test_sliders_and_parameters_stay_in_sync(explorer):
    from param import edit_constant

    w = explorer.eta_slider
    with edit_constant(w):
        w.param.update(value=0.55, value_throttled=0.55)
    assert explorer.settings.eta == pytest.approx(0.55)
    explorer.settings.rate_mA_g = 200.0
    assert explorer.rate_slider.value_throttled == 200.0
    explorer.settings.param.update(eta=0.3, rate_mA_g=100.0)
    assert explorer.eta_slider.value_throttled == pytest.approx(0.3)
    # a slider being dragged (value, not yet released) does not change the settings
    explorer.eta_slider.value = 0.8
    assert explorer.settings.eta == pytest.approx(0.3)
    explorer.eta_slider.value = 0.3


def _figures(root):
    from bokeh.models import Plot

    return {p.title.text: p for p in root.select({"type": Plot}) if p.title is not None}


def _image_sum(fig):
    from bokeh.models import GlyphRenderer

    total = 0.0
    for r in fig.select({"type": GlyphRenderer}):
        for key, v in r.data_source.data.items():
            if key == "image":
                total += float(np.nansum(np.asarray(v[0], dtype=float)))
    return total


def test_plots_render_and_update_in_place(demo_data):
    """A slider change updates the same Bokeh figures' data (DynamicMaps), titles included."""
    from bokeh.document import Document
    from param import edit_constant

    hv.extension("bokeh")
    view = ModelExplorer(dataset="aged")
    root = view.__panel__().get_root(Document())
    figs = _figures(root)
    maps = {t: f for t, f in figs.items() if "min" in t and "mA/g" in t}
    assert len(maps) == 4
    assert any(t.startswith("Fig. 5b") for t in figs)
    assert any(t.startswith("d(capacity)") for t in figs)
    assert any(t.startswith("simulated") for t in figs)
    assert any(t.startswith("measured line-cut") for t in figs)
    ids = {id(f) for f in figs.values()}
    before = {id(f): _image_sum(f) for f in maps.values()}
    with edit_constant(view.rate_slider):
        view.rate_slider.param.update(value=200.0, value_throttled=200.0)
    after = _figures(root)
    assert {id(f) for f in after.values()} == ids  # same figures ...
    # drawn on a 2-D canvas: WebGL without a GPU cost the page more than the plots do
    assert {f.output_backend for f in after.values()} == {"canvas"}
    assert sum(t.startswith("200 mA/g") for t in after) == 4  # ... new titles ...
    changed = [abs(_image_sum(f) - before[id(f)]) > 1e-6 for f in after.values() if id(f) in before]
    assert sum(changed) >= 3  # ... new θ maps (the 20-min one may end 'not reached')
    assert view.maps_title.object.endswith("D × 1")
    rate = next(t for t in after if t.startswith("Fig. 5b"))
    assert ", 200 mA/g" in rate


def test_broken_dataset_gives_alert_and_recovers(explorer, tmp_path):
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "metadata.json").write_text("{not json")
    explorer.dataset = str(bad)
    assert explorer.alert.visible and "broken" in explorer.alert.object
    assert explorer.particle_select.options == []
    # the titles say there is no particle, never "particle None"
    assert explorer.particle_id is None
    assert explorer._offset_fig.title.text == "d(capacity), no particle"
    titles = []
    explorer._kymograph = lambda movie, title: titles.append(title)  # instance attribute
    try:
        explorer._measured_kymograph(explorer.dataset, None)
    finally:
        del explorer._kymograph
    assert titles == ["measured line-cut, no particle"]
    explorer.dataset = "aged"
    assert not explorer.alert.visible and explorer.particle_id == 1


def test_upload_zip(explorer, demo_data):
    buf = io.BytesIO()
    folder = demo_data["aged"]
    with zipfile.ZipFile(buf, "w") as zf:
        for p in folder.rglob("*"):
            if p.is_file():
                zf.write(p, "aged/" + str(p.relative_to(folder)))
    explorer.upload.filename = "aged.zip"
    explorer.upload.value = buf.getvalue()
    assert not explorer.alert.visible
    assert explorer.dataset.endswith("aged")
    assert explorer.particle_id == 1
    explorer.upload.filename = "x.zip"
    explorer.upload.value = b"not a zip"
    assert explorer.alert.visible and "not a zip" in explorer.alert.object
    explorer.dataset = "aged"


def test_zip_member_outside_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil/metadata.json", "{}")
    with pytest.raises(C.DatasetSpecError, match="escapes"):
        C.extract_zip(buf.getvalue())


def test_cohort_browser_counts_and_particles(demo_data):
    view = CohortBrowser(datasets=",".join(COHORT_DATASETS))
    view.load()
    assert not view.errors
    stats = view.stats
    assert set(stats["ageing"]) == {"fresh", "3-4.3V 50mA/g 200 cycles"}
    assert (stats["n_symmetric"] + stats["n_asymmetric"] + stats["n_undetermined"]
            == stats["n_particles"]).all()
    assert ((stats["ci_low"] <= stats["fraction_asymmetric"])
            & (stats["fraction_asymmetric"] <= stats["ci_high"])).all()
    assert view.particle is not None
    movie = view.particle_movie()
    assert movie.dI.ndim == 3 and movie.kymograph.shape[0] == movie.dI.shape[0]
    assert view.player.end == movie.dI.shape[0] - 1
    # the player opens on the first frame with signal, not the blank reference frame 0
    peak = np.nanmax(np.abs(movie.dI).reshape(movie.dI.shape[0], -1), axis=1)
    f = view.player.value
    assert f > 0 and peak[f] >= 0.1 * peak.max() and (peak[:f] < 0.1 * peak.max()).all()
    # choose another particle through the widget
    other = [v for v in view.particle_select.options.values()
             if v != f"{view.particle[0]}|{view.particle[1]}"][0]
    view.particle_select.value = other
    assert f"{view.particle[0]}|{view.particle[1]}" == other
    hv.extension("bokeh")
    view._as_row(view._particle_plot(view.particle)).get_root()
    view._as_row(view._cohort_plot(view.stats)).get_root()


def test_first_signal_frame():
    from asymflux.views.cohort import first_signal_frame

    dI = np.zeros((5, 4, 4))
    dI[:, 0, 0] = np.nan
    dI[1, 1, 1] = 1e-6  # noise below a tenth of the peak
    dI[3, 2, 2] = -0.5
    dI[4, 2, 2] = 1.0
    assert first_signal_frame(dI) == 3
    assert first_signal_frame(np.zeros((3, 2, 2))) == 0
    assert first_signal_frame(np.full((3, 2, 2), np.nan)) == 0
    assert first_signal_frame(np.empty((0, 0, 0))) == 0


def test_cohort_browser_broken_dataset(demo_data, tmp_path):
    view = CohortBrowser(datasets=f"{COHORT_DATASETS[0]},{tmp_path / 'missing'}")
    view.load()
    assert len(view.errors) == 1 and view.alert.visible
    assert view.stats["n_particles"].sum() > 0  # the good dataset is still shown
    view.datasets = str(tmp_path / "missing")
    assert view.stats is None and view.alert.visible


@pytest.mark.slow
def test_fit_button_sets_sliders_to_the_fitted_arc(explorer):
    """Demo 'aged' particle 1 is blocked at 180 deg on 30 % of its perimeter with eta 0.25."""
    explorer.particle_id = 1
    result = explorer.fit_particle()
    assert result is not None and result.model == "one arc"
    s = explorer.settings
    assert abs((s.angle_deg - 180 + 180) % 360 - 180) < 15
    assert s.eta == pytest.approx(0.25, abs=0.1)
    assert s.blocked_fraction == pytest.approx(0.30, abs=0.1)
    assert explorer.eta_slider.value == pytest.approx(s.eta)
    assert "sliders set" in explorer._fit_info.object


def test_fit_button_awaits_the_worker(explorer):
    """The button's handler is a coroutine awaiting the worker's fit (the server keeps
    serving meanwhile); it sets the sliders as fit_particle does (same cached fit)."""
    import asyncio
    import inspect

    assert inspect.iscoroutinefunction(explorer.fit_particle_async)
    explorer.settings.param.update(eta=1.0, blocked_fraction=0.0, angle_deg=0.0)
    explorer.particle_id = 1
    result = asyncio.run(explorer.fit_particle_async())
    assert result is not None and result.model == "one arc"
    assert abs((explorer.settings.angle_deg - 180 + 180) % 360 - 180) < 15
    assert not explorer.fit_button.loading


def test_a_failing_fit_is_reported_in_the_page(explorer, monkeypatch):
    from asymflux.views import _pool as P

    def broken(*_a, **_k):
        raise ValueError("no capacity per frame")

    monkeypatch.setattr(P, "fit", broken)
    explorer.particle_id = 1
    assert explorer.fit_particle() is None
    assert explorer.alert.visible and "no capacity per frame" in explorer.alert.object
    assert not explorer.fit_button.loading


def test_one_update_recomputes_the_model_graph_once_with_public_bokeh_api():
    """HoloViews wraps each plot update in ``doc.models.freeze()``, after which Bokeh walks
    the whole page; within ``one_update`` the walk happens once, at the end, and Bokeh's
    model manager is left as it was (nothing replaced on it)."""
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource, Range1d
    from bokeh.plotting import figure

    from asymflux.views import _bokeh as B

    doc, fig = Document(), figure()
    source = ColumnDataSource({"x": [0, 1], "y": [0, 1]})
    fig.line("x", "y", source=source)
    doc.add_root(fig)
    calls = []
    real = doc.models.recompute
    doc.models.recompute = lambda: (calls.append(1), real())
    before = set(vars(doc.models))
    new_range = Range1d(0, 5)
    with B.one_update(doc):
        for _ in range(3):  # three plots updated, as HoloViews does
            with doc.models.freeze():
                source.data = {"x": [0, 1, 2], "y": [1, 2, 3]}
        with doc.models.freeze():
            fig.x_range = new_range
        assert calls == []
    assert calls == [1]  # one walk, and the new model is the page's
    assert doc.models.get_by_id(new_range.id) is new_range
    assert set(vars(doc.models)) == before and doc.models._freeze_count == 0
    with B.one_update(None):  # no document (notebook, tests): nothing to do
        pass


def test_common_uses_no_private_bokeh_api():
    import inspect

    from asymflux.views import _bokeh as B

    src = inspect.getsource(B)
    assert "_pop_freeze" not in src and "_freeze_count" not in src


def test_fig5e_conditions_fresh_first_then_as_given():
    from asymflux import plots

    names = ["3-4.3V 200mA/g 200 cycles", "3-4.3V 50mA/g 200 cycles", "fresh"]  # sorted
    given = ["fresh", "3-4.3V 50mA/g 200 cycles", "3-4.3V 200mA/g 200 cycles"]
    assert plots.condition_order(names, given) == given
    assert plots.condition_order(names, given[::-1])[0] == "fresh"
    assert plots.condition_order(["aged 300 cycles", "aged 50 cycles", "Fresh"]) == [
        "Fresh", "aged 50 cycles", "aged 300 cycles"]


def test_fig5e_bars_and_diamonds_on_two_axes(demo_data):
    from bokeh.models import Scatter, VBar, Whisker

    hv.extension("bokeh")
    view = CohortBrowser(datasets=",".join(reversed(COHORT_DATASETS)))
    view.load()
    assert view.stats["ageing"].iloc[0] == "fresh"  # given second, drawn first
    fig = hv.render(view._cohort_plot(view.stats))
    assert list(fig.x_range.factors) == list(view.stats["ageing"])
    assert "fraction" in fig.extra_y_ranges and fig.extra_y_ranges["fraction"].end == 1
    glyphs = [type(r.glyph) for r in fig.renderers]
    assert VBar in glyphs and Scatter in glyphs
    whiskers = [a for a in fig.center if isinstance(a, Whisker)]
    assert whiskers and {w.y_range_name for w in whiskers} == {"fraction"}  # the intervals
    assert {ax.axis_label for ax in fig.left + fig.right} == {
        "number of particles", "fraction asymmetric (95 % Wilson CI)"}


def _download(button) -> tuple[bytes, str]:
    """What a FileDownload sends when clicked (the callback, through Panel)."""
    import base64

    button._clicks += 1
    return base64.b64decode(button.data.split(",", 1)[1]), button.filename


MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "svg": b"<?xml", "pdf": b"%PDF-"}


def test_cohort_downloads(demo_data):
    import pandas as pd

    view = CohortBrowser(datasets=",".join(COHORT_DATASETS))
    view.load()
    view.__panel__()
    # the table shows every column within its width (nothing cut at the right): the columns
    # fitted to the width, the fractions and their interval with three decimals
    table = view.stats_table
    assert list(table.value.columns) == list(view.stats.columns)
    assert {"ci_low", "ci_high"} <= set(table.value.columns)
    assert table.layout == "fit_columns" and not table.hidden_columns
    assert not table.widths and not table.frozen_columns
    assert {table.formatters[c].format for c in ("ci_low", "ci_high")} == {"0.000"}
    files = {k: _download(b) for k, b in view.downloads.items()}
    for key, (data, name) in files.items():
        assert data, key
        ext = key.rsplit(".", 1)[1]
        assert name.endswith(f".{ext}"), key
        if ext != "csv":
            assert data.startswith(MAGIC[ext]), key
    assert {k for k in files if not k.endswith(".csv")} == {
        f"{f}.{fmt}" for f in ("fig5e", *view.PARTICLE_FIGURES) for fmt in ("png", "svg", "pdf")}
    # the datasets and the particle are written in the figures, not only in the file names
    svg = files["kymograph.svg"][0].decode()
    assert view.datasets in svg and f"particle {view.particle[1]}" in svg
    assert view.datasets in files["fig5e.svg"][0].decode()
    # the CSV is the table the page shows, in its order
    shown = view.stats
    got = pd.read_csv(io.BytesIO(files["fig5e.csv"][0]))
    pd.testing.assert_frame_equal(got, shown.reset_index(drop=True), check_dtype=False)
    particles = pd.read_csv(io.BytesIO(files["particles.csv"][0]))
    assert len(particles) == len(view.particles)
    assert list(particles["particle_id"]) == list(view.particles["particle_id"])
    ts = pd.read_csv(io.BytesIO(files["timeseries.csv"][0]))
    np.testing.assert_allclose(ts["offset_nm"], view.particle_movie().timeseries["offset_nm"])


def test_explorer_downloads(explorer):
    import pandas as pd

    explorer.settings.param.update(eta=0.3, blocked_fraction=0.25, rate_mA_g=100.0)
    files = {k: _download(b) for k, b in explorer.downloads.items()}
    assert {k for k in files if k.endswith(".png")} == {f"{f}.png" for f in explorer.FIGURES}
    for key, (data, _name) in files.items():
        if key.endswith(".png"):
            assert data.startswith(b"\x89PNG") and len(data) > 1000, key
    rate = pd.read_csv(io.BytesIO(files["fig5b.csv"][0]))
    pd.testing.assert_frame_equal(rate, explorer.rate_table().reset_index(drop=True),
                                  check_dtype=False)
    d = pd.read_csv(io.BytesIO(files["d_capacity.csv"][0]))
    want = explorer.comparison()["timeseries"]
    assert list(d["source"].unique()) == ["measured", "simulated"]
    np.testing.assert_allclose(d["offset_nm"], want["offset_nm"])
    maps = pd.read_csv(io.BytesIO(files["theta_maps.csv"][0]))
    assert sorted(maps["minutes"].unique()) == [5.0, 10.0, 15.0, 20.0]
    th = explorer.theta_maps()["theta"].iloc[0]
    np.testing.assert_allclose(maps.loc[maps["minutes"] == 5.0, "theta"], np.ravel(th))
    assert "eta0.3_fraction0.25" in files["fig5b.csv"][1]


def _mpl_figures(monkeypatch):
    """The matplotlib figures :func:`asymflux.plots.render` saves, as it saves them."""
    from asymflux import plots

    seen = []
    write = plots._write_subtitle
    monkeypatch.setattr(plots, "_write_subtitle",
                        lambda fig, text: (seen.append(fig), write(fig, text))[1])
    return seen


def test_explorer_figures_have_colour_bars_settings_and_three_formats(explorer, monkeypatch):
    """Every figure of the model explorer as PNG, SVG and PDF: valid files, the θ maps and
    kymographs with colour bars, the settings written in the figure (text in the SVG), the
    Fig. 5b legend beside the axes (not over the current point)."""
    explorer.settings.param.update(eta=0.3, blocked_fraction=0.25, angle_deg=180.0, rate_mA_g=100.0)
    figs = _mpl_figures(monkeypatch)
    for fmt in ("png", "svg", "pdf"):
        assert {k for k in explorer.downloads if k.endswith(f".{fmt}")} == {
            f"{f}.{fmt}" for f in explorer.FIGURES}
    for f in explorer.FIGURES:
        for fmt in ("png", "svg", "pdf"):
            data, name = _download(explorer.downloads[f"{f}.{fmt}"])
            assert data.startswith(MAGIC[fmt]) and name.endswith(f".{fmt}"), (f, fmt)
            if fmt == "svg":
                svg = data.decode()
                if f != "kymograph_measured":  # the measurement depends on no setting
                    text = explorer.settings_text(particle=f in ("d_capacity",
                                                                 "kymograph_simulated"))
                    assert text in svg and "100 mA/g" in text, (f, text)
                if f in ("kymograph_measured", "kymograph_simulated", "d_capacity"):
                    assert "dataset aged, particle 1" in svg, f
    by_name = dict(zip([f for f in explorer.FIGURES for _ in range(3)], figs, strict=True))
    # colour bars: an axes beyond the plots' own (4 θ maps + 1 bar; a kymograph + 1 bar)
    assert len(by_name["theta_maps"].axes) == 5
    for f in ("kymograph_measured", "kymograph_simulated"):
        assert len(by_name[f].axes) == 2
        assert by_name[f].axes[1].get_ylabel() == "differential intensity"
    # Fig. 5b: the legend outside the axes, so it hides no point
    fig = by_name["fig5b"]
    ax = fig.axes[0]
    legend = ax.get_legend()
    renderer = fig.canvas.get_renderer()
    assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))


def test_png_without_a_display(tmp_path):
    """The PNG files are drawn by matplotlib's Agg canvas: no display, browser or webdriver."""
    import os
    import subprocess
    import sys

    code = (
        "import pandas as pd\n"
        "from asymflux import plots\n"
        "plots.use_backend('bokeh')\n"
        "s = pd.DataFrame({'ageing': ['x 200 cycles', 'fresh'], 'n_symmetric': [3, 5],"
        " 'n_asymmetric': [3, 1], 'fraction_asymmetric': [0.5, 1 / 6],"
        " 'ci_low': [0.2, 0.03], 'ci_high': [0.8, 0.56]})\n"
        "a = plots.to_png(plots.fig5e_figure, s)\n"
        "b = plots.to_png(plots.differential_frame, [[0.0, 0.1], [0.2, 0.3]], 65.0)\n"
        "import holoviews as hv\n"
        "assert hv.Store.current_backend == 'bokeh'\n"
        "print(a[:4] == b[:4] == b'\\x89PNG')\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"


def test_views_load_their_own_extensions():
    """A view created first in a fresh interpreter (as the first page of a server) finds its
    HoloViews backend loaded by itself."""
    import subprocess
    import sys

    code = ("import holoviews as hv\n"
            "from asymflux.views import CohortBrowser\n"
            "v = CohortBrowser(datasets='')\n"
            "assert 'bokeh' in hv.Store.renderers and hv.Store.current_backend == 'bokeh'\n"
            "v._as_row(v._cohort_plot(None)).get_root()\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


# --------------------------------------------------------------------- issue 15: dashboard items


def test_folder_scan_never_counts_crash_leftovers(demo_data, tmp_path):
    import shutil

    root = tmp_path / "cohort"
    root.mkdir()
    for name in ("a", "b"):
        shutil.copytree(demo_data[COHORT_DATASETS[0]], root / name)
    # leftovers of interrupted writes: hidden, never data
    shutil.copytree(root / "a", root / ".a.tmp-12345")
    shutil.copytree(root / "b", root / ".b.old-67890")
    (root / ".asymflux-partial").mkdir()
    shutil.copytree(root / "a", root / ".asymflux-partial" / "c")
    specs = C.dataset_specs(str(root))
    assert [Path(s).name for s in specs] == ["a", "b"]


def test_a_particle_the_dataset_lacks_is_reported(demo_data):
    view = ModelExplorer(dataset="aged", particle_arg="999")
    assert view.particle_id == 1
    assert view.notice.visible and "999" in view.notice.object
    assert "showing particle 1" in view.notice.object
    view = ModelExplorer(dataset="aged", particle_arg="abc")
    assert view.notice.visible and "not a particle number" in view.notice.object
    view = ModelExplorer(dataset="aged", particle_arg="2")
    assert view.particle_id == 2 and not view.notice.visible


def test_size_limit_message_and_analyse_anyway(demo_data, tmp_path, monkeypatch):
    import shutil

    from asymflux.views import _jobs as J

    copy = tmp_path / "limited"
    shutil.copytree(demo_data["aged"], copy)  # not in the table of analyses yet
    monkeypatch.setenv(J.MAX_VALUES_ENV, "1000")
    view = ModelExplorer(dataset=str(copy))
    assert view.alert.visible and "limit" in view.alert.object
    assert J.MAX_VALUES_ENV in view.alert.object and view.large_button.visible
    assert view.particle_id is None
    view.large_button.clicks += 1
    assert not view.alert.visible and view.particle_id is not None


def test_uploads_are_removed_and_bad_zips_named(explorer, demo_data, tmp_path, monkeypatch):
    import tempfile

    from asymflux.views import _runtime as R

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    buf = io.BytesIO()
    folder = demo_data["aged"]
    with zipfile.ZipFile(buf, "w") as zf:
        for p in folder.rglob("*"):
            if p.is_file():
                zf.write(p, "aged/" + str(p.relative_to(folder)))
    view = ModelExplorer(dataset="aged")
    view.upload.filename = "aged.zip"
    view.upload.value = buf.getvalue()
    assert not view.alert.visible
    assert len(list(tmp_path.glob("asymflux-upload-*"))) == 1
    view._session_end()  # what the server calls when the session ends
    assert not list(tmp_path.glob("asymflux-upload-*"))
    # a damaged zip: the file and the member named, nothing left behind
    data = bytearray(buf.getvalue())
    i = data.find(b"metadata.json") + len(b"metadata.json") + 5
    data[i:i + 20] = bytes(20)
    view.upload.filename = "damaged.zip"
    view.upload.value = bytes(data)
    assert view.alert.visible and "damaged.zip" in view.alert.object
    assert "BadZipFile**: " not in view.alert.object.split("damaged.zip")[0]
    assert not list(tmp_path.glob("asymflux-upload-*"))
    view.upload.filename = "x.zip"
    view.upload.value = b"not a zip"
    assert "x.zip: not a zip file" in view.alert.object and "expected" in view.alert.object
    assert not list(tmp_path.glob("asymflux-upload-*"))
    R.shutdown()  # the server's stop removes what is left (and restarts nothing)


def test_unexpected_errors_name_the_dataset():
    from asymflux.views import _errors as E

    text = E.error_text(OverflowError("cannot convert float infinity to integer"),
                        source="/data/run7")
    assert "/data/run7" in text and "unexpected" in text
    assert "OverflowError" not in text  # no class names on the page (#28)
    assert E.error_text(C.DatasetSpecError("x.zip: not a zip file"), source="x.zip") == \
        "**Cannot open this**: x.zip: not a zip file"
    from asymflux.io import DatasetError

    assert E.error_text(DatasetError("m.json: bad")).startswith("**Cannot use this dataset**")


def test_analysis_job_in_a_worker_can_be_cancelled(tmp_path, monkeypatch):
    """The server's analyses run in a worker process: progress, and Cancel kills it."""
    import time

    from asymflux.views import _jobs as J
    from tests._helpers.server import write_large_lazy_dataset

    path = write_large_lazy_dataset(tmp_path / "large", shape=(400, 1024, 1024))
    monkeypatch.setenv(J.MAX_VALUES_ENV, "1e8")
    job = J.start_analysis(str(path))
    with pytest.raises(J.DatasetTooLarge, match="400 x 1,024 x 1,024"):
        job.future.result(timeout=120)
    job = J.start_analysis(str(path), allow_large=True)
    deadline = time.monotonic() + 120
    while job.process is None or job.status.startswith(("waiting", "starting")):
        assert time.monotonic() < deadline and not job.future.done(), job.describe()
        time.sleep(0.2)
    proc = job.process
    job.release()  # the only waiter: the process is killed
    with pytest.raises(J.AnalysisStopped, match="cancelled"):
        job.future.result(timeout=30)
    assert not proc.is_alive()


def test_a_worker_whose_server_closed_the_pipe_ends_quietly(demo_data, capfd):
    """A cancelled job's worker may still be reporting when the server closes the pipe:
    it ends without a traceback (the server log stays clean) and without raising."""
    import multiprocessing
    import os

    from asymflux.views import _jobs as J

    fork = multiprocessing.get_context("fork")  # its stderr is this test's captured fd 2
    ours, theirs = fork.Pipe()
    ours.close()  # the server stopped listening before the worker's first report
    worker = fork.Process(target=J._job_main,
                          args=(theirs, str(demo_data["aged"]), False, None, os.getpid()))
    worker.start()
    try:
        worker.join(120)
        assert worker.exitcode == 0
    finally:
        if worker.is_alive():
            worker.kill()
            worker.join()
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert "BrokenPipe" not in out + err


def test_the_libraries_are_left_out_of_full_garbage_collections():
    """A process freezes what is alive (gc.freeze) once; each simulation worker what it
    imported: a full collection then does not walk NumPy's, SciPy's, Bokeh's... objects
    (0.2-0.4 s pauses in the middle of slider moves before)."""
    import gc
    import subprocess
    import sys

    from asymflux.views import _pool as P

    code = ("import gc; from asymflux.views import _runtime as R; "
            "assert gc.get_freeze_count() == 0; assert R.freeze_long_lived_objects(); "
            "n = gc.get_freeze_count(); assert n > 50000, n; "
            "assert not R.freeze_long_lived_objects(); assert gc.get_freeze_count() == n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert P._pool() is not None  # the views' worker processes, as in a server
    assert P._submit(gc.get_freeze_count).result(timeout=120) > 50000



def test_a_page_freezes_once_loaded_and_unfreezes_when_its_session_ends(monkeypatch):
    # in a server: frozen at the page's load (not before: nothing outside a server), and
    # unfrozen when that session ends, so its document is not kept; a second page loaded
    # meanwhile neither freezes again nor unfreezes at its end
    import gc

    import panel as pn

    from asymflux.views import _runtime as R

    loads, ends = [], []
    monkeypatch.setattr(pn.state, "onload", loads.append)
    monkeypatch.setattr(R, "on_session_end", ends.append)
    monkeypatch.setattr(R, "in_server", lambda: False)
    R.freeze_while_session_open()
    assert not loads
    monkeypatch.setattr(R, "in_server", lambda: True)
    assert gc.get_freeze_count() == 0 and not R._GC_FROZEN
    try:
        R.freeze_while_session_open()
        R.freeze_while_session_open()  # a second page
        assert len(loads) == 2
        loads[0]()  # the first page loads: frozen, unfrozen at its session's end
        assert gc.get_freeze_count() > 0 and ends == [R.unfreeze_long_lived_objects]
        loads[1]()  # the second: already frozen, nothing more
        assert len(ends) == 1
        ends[0]()
        assert gc.get_freeze_count() == 0 and not R._GC_FROZEN
    finally:
        R.unfreeze_long_lived_objects()


def test_a_closed_pages_runs_publish_nothing_and_none_start(demo_data, monkeypatch):
    # a page closed while its runs were going: when its session ends, Bokeh destroys its
    # figures (emptied of their renderers), and a run finishing later raised "d(capacity),
    # particle 1: 4 layers for 0 renderers" in the server's log (seen when a page was closed
    # while its dataset's analysis ran: the analysis ended, the page's twin was started, and
    # was published after the session's end). Now it publishes nothing, and a settings or
    # particle change after the end (an analysis ending late) starts no runs
    import asyncio
    from concurrent.futures import Future

    import param

    from asymflux.views import _pool, _runtime

    ends = []
    monkeypatch.setattr(_runtime, "on_session_end", ends.append)
    view = ModelExplorer(dataset="aged")
    published, started = [], []
    monkeypatch.setattr(view, "_publish", published.append)
    monkeypatch.setattr(_pool, "prefetch", lambda *a, **kw: started.append(a) or {})
    with param.parameterized.discard_events(view.settings):
        view.settings.eta = 0.45  # the settings of runs still going, current
    keys = view._keys(view.model_settings())
    done = Future()
    done.set_result(None)
    futures = {kind: [done] for kind in keys}
    asyncio.run(view._publish_when_done(keys, futures, 0.0))  # the page still open
    assert sorted(next(iter(k)) for k in published) == sorted(keys)
    published.clear()
    for end in ends:  # the session ends (what the server calls)
        end()
    asyncio.run(view._publish_when_done(keys, {**futures, "preview": [done]}, 0.0))
    assert published == []
    view.settings.eta = 0.5
    view.particle_id = None
    assert started == [] and published == []


def test_the_timing_mode_logs_slow_garbage_collections(monkeypatch, capsys):
    import gc

    from asymflux.views import _runtime as R

    monkeypatch.delenv(R.TIMING_ENV, raising=False)
    assert not R.log_slow_collections()
    monkeypatch.setenv(R.TIMING_ENV, "1")
    monkeypatch.setattr(R, "SLOW_COLLECTION_S", -1.0)  # every collection is "slow"
    try:
        assert R.log_slow_collections() and R.log_slow_collections()  # registered once
        assert gc.callbacks.count(R._gc_timer) == 1
        gc.collect()
    finally:
        while R._gc_timer in gc.callbacks:
            gc.callbacks.remove(R._gc_timer)
    assert "garbage collection of generation 2 took" in capsys.readouterr().err


# ---------------------------------------------------------------- the kinetic surface


def _set_slider(widget, value):
    from param import edit_constant

    with edit_constant(widget):
        widget.param.update(value=value, value_throttled=value)


@pytest.fixture
def kinetic_view(demo_data):
    view = ModelExplorer(dataset="aged")
    yield view
    view.settings.surface_model = "prescribed"


def test_switching_to_kinetic_changes_the_model_result(kinetic_view):
    view = kinetic_view
    assert view.eta_slider.visible and not view.film_slider.visible
    pres_curves, pres_maps = view.curves(), view.theta_maps()
    pres_rate, pres_twin = view.current_li_extracted(), view.comparison()["simulated"]
    view.settings.surface_model = "kinetic"
    assert view.film_slider.visible and not view.eta_slider.visible
    # the calibration's η ≈ 0.3 (model.calibration.FILM_RESISTANCE_ETA_0_3_OHM_M2, 0.171 Ω m²)
    assert view.model_settings()["film_ohm_m2"] == pytest.approx(FILM_RESISTANCE_ETA_0_3_OHM_M2)
    kin_curves, kin_maps = view.curves(), view.theta_maps()
    charging = pres_curves["minutes"] > 0
    # prescribed: the arc passes η = 0.3 of the clean flux at every instant; kinetic: the
    # ratio follows the state (η ~0.3 early, falling as the clean surface empties)
    np.testing.assert_allclose(pres_curves.loc[charging, "flux_ratio"], 0.3)
    kin = kin_curves.loc[kin_curves["minutes"] > 0, "flux_ratio"].to_numpy()
    assert np.ptp(kin) > 0.1 and 0.2 < kin[kin_curves["minutes"][1:] <= 5].mean() < 0.45
    assert not np.allclose(pres_curves["voltage_V"], kin_curves["voltage_V"])
    diff = [np.nanmax(np.abs(a - b)) for a, b in zip(pres_maps["theta"], kin_maps["theta"], strict=True)]
    assert max(diff) > 1e-3
    assert view.current_li_extracted() != pytest.approx(pres_rate, abs=1e-6)
    kin_twin = view.comparison()["simulated"]
    assert not np.allclose(kin_twin.timeseries["offset_nm"], pres_twin.timeseries["offset_nm"],
                           equal_nan=True)
    # the η slider does nothing to a kinetic surface (the film replaced it)
    _set_slider(view.eta_slider, 0.7)
    np.testing.assert_array_equal(view.curves()["flux_ratio"], kin_curves["flux_ratio"])
    _set_slider(view.eta_slider, 0.3)


def test_film_slider_maps_log10_to_ohm_m2(kinetic_view):
    view = kinetic_view
    view.settings.surface_model = "kinetic"
    w = view.film_slider
    assert w.start == -3.0 and w.end == 0.5
    # default: docs/calibration.md, η ≈ 0.3
    assert w.value == pytest.approx(np.log10(FILM_RESISTANCE_ETA_0_3_OHM_M2))
    for pos, ohm_m2 in ((-1.0, 0.1), (0.0, 1.0), (-2.0, 0.01), (np.log10(0.028), 0.028),
                        (-0.5, 0.316)):
        _set_slider(w, pos)
        assert view.settings.film_resistance_ohm_m2 == pytest.approx(ohm_m2, rel=1e-12)
        assert view.model_settings()["film_ohm_m2"] == pytest.approx(ohm_m2, rel=1e-12)
    view.settings.film_resistance_ohm_m2 = 0.05  # parameter -> slider
    assert w.value == pytest.approx(np.log10(0.05)) and w.value_throttled == w.value
    view.settings.film_resistance_ohm_m2 = 0.20
    # a thicker film passes less: the flux ratio falls as R grows
    early = {}
    for r in (0.01, 0.2, 2.0):
        c = view.curves(film_ohm_m2=r)
        early[r] = c.loc[(c["minutes"] > 0) & (c["minutes"] <= 5), "flux_ratio"].mean()
    assert early[0.01] > early[0.2] > early[2.0]


def test_flux_ratio_and_voltage_plots_have_data(demo_data):
    from bokeh.document import Document

    hv.extension("bokeh")
    view = ModelExplorer(dataset="aged")
    figs = _figures(view.__panel__().get_root(Document()))
    flux = next(f for t, f in figs.items() if t.startswith("flux ratio of the arc"))
    volt = next(f for t, f in figs.items() if t.startswith("voltage vs Li"))

    def columns(fig):
        return [r.data_source.data for r in fig.renderers]

    (fdata,) = columns(flux)
    measured, model_v = columns(volt)
    assert len(fdata["minutes"]) > 50 and np.all(np.isfinite(fdata["flux_ratio"][1:]))
    assert len(model_v["voltage_V"]) > 50 and np.all(np.isfinite(model_v["voltage_V"]))
    # the aged demo dataset has a cycler voltage: drawn beside the model's, against capacity
    assert len(measured["voltage_V"]) > 10
    assert 3.0 < np.nanmedian(measured["voltage_V"]) < 4.5
    before = np.array(fdata["flux_ratio"])
    view.settings.surface_model = "kinetic"
    (fdata,) = columns(flux)  # the same figure, its data replaced in place
    assert not np.allclose(before[1:], np.asarray(fdata["flux_ratio"])[1:])
    assert "(kinetic)" in flux.title.text
    assert "kinetic surface" in view.curves_info.object
    assert "kinetic" in view.maps_title.object


def _cli_simulate(tmp_path, surface_flag, rate_mA_g, minutes, pixel_nm):
    import subprocess
    import sys

    out = tmp_path / "cli.npz"
    script = "import sys; from asymflux.cli import main; sys.exit(main(sys.argv[1:]))"
    subprocess.run([sys.executable, "-c", script, "simulate", "--out", str(out), *surface_flag,
                    "--rate-mA-g", repr(rate_mA_g), "--pixel-nm", repr(pixel_nm),
                    "--minutes", ",".join(repr(m) for m in minutes),
                    "--mesh", "x".join(str(n) for n in C.MAPS_MESH)], check=True)
    return np.load(out)


@pytest.mark.parametrize("kinetic", [True, False])
def test_page_numbers_equal_the_cli(demo_data, tmp_path, kinetic):
    """GUI = CLI: the θ maps, V(t) and flux ratio the page shows are what
    ``asymflux simulate --film C:F:R`` (or ``--blocked C:F:η``) writes for the same settings."""
    from bokeh.document import Document

    hv.extension("bokeh")
    view = ModelExplorer(dataset="aged", surface_model="kinetic" if kinetic else "prescribed",
                         rate_mA_g=200.0, angle_deg=150.0, blocked_fraction=0.3, eta=0.4)
    figs = _figures(view.__panel__().get_root(Document()))
    if kinetic:
        _set_slider(view.film_slider, -1.2)  # 10^-1.2 -> 0.0631 Ω m²
        assert view.settings.film_resistance_ohm_m2 == 0.0631
        flag = ["--film", f"150:0.3:{view.settings.film_resistance_ohm_m2!r}"]
    else:
        flag = ["--blocked", "150:0.3:0.4"]
    minutes = C.run_minutes()
    cli = _cli_simulate(tmp_path, flag, 200.0, minutes, view.settings.pixel_nm)
    # what the page shows: the figures' data sources ...
    flux = next(f for t, f in figs.items() if t.startswith("flux ratio of the arc"))
    volt = next(f for t, f in figs.items() if t.startswith("voltage vs Li"))
    page_t = np.asarray(flux.renderers[0].data_source.data["minutes"])
    page_eta = np.asarray(flux.renderers[0].data_source.data["flux_ratio"])
    page_v = np.asarray(volt.renderers[1].data_source.data["voltage_V"])
    at = np.searchsorted(page_t, np.asarray(minutes) - 1e-9)
    np.testing.assert_allclose(page_t[at], minutes, rtol=0, atol=1e-9)
    np.testing.assert_allclose(page_v[at], cli["voltage_V"], rtol=1e-12)
    np.testing.assert_allclose(page_eta[at], cli["arc_flux_ratio"][:, 0], rtol=1e-12)
    # ... the numbers in its text ...
    for m in C.FIG4_MINUTES:
        i = minutes.index(m)
        assert f"{cli['voltage_V'][i]:.4f}" in view.curves_info.object
        assert f"{cli['arc_flux_ratio'][i, 0]:.4f}" in view.curves_info.object
    # ... and the θ maps (5/10/15/20 min, 40 nm pixels)
    maps = view.theta_maps()
    for k, m in enumerate(C.FIG4_MINUTES):
        np.testing.assert_allclose(maps["theta"].iloc[k], cli["theta"][minutes.index(m)],
                                   rtol=1e-12, equal_nan=True)
    meta = __import__("json").loads(str(cli["metadata"]))
    assert meta["surface"] == ("kinetic" if kinetic else "prescribed")


def test_preview_mesh_is_a_coarse_version_of_the_maps(demo_data):
    """The coarse preview shown while the fine θ maps run is the same model on a coarser
    mesh: close to the fine maps, and labelled as a preview in the page."""
    view = ModelExplorer(dataset="aged")
    fine = view.theta_maps()
    coarse = view.theta_maps(mesh=C.PREVIEW_MESH)
    for a, b in zip(fine["theta"], coarse["theta"], strict=True):
        assert np.nanmax(np.abs(a - b)) < 0.08
    s = view.model_settings()
    key = (*s.values(), "preview")
    view._publish({"maps": key})
    assert "coarse preview" in view.maps_title.object and "refining" in view.maps_title.object
    assert "(coarse preview)" in view._flux_fig.title.text
    assert all("(coarse preview)" in f.title.text for f in view._map_figs)
    view._publish({"maps": (*s.values(), "fine")})
    assert "preview" not in view.maps_title.object
    assert "preview" not in view._flux_fig.title.text
    assert all("preview" not in f.title.text for f in view._map_figs)


def test_the_analysis_warnings_show_under_the_dataset(demo_data, tmp_path):
    """What `asymflux analyze` prints as warnings (here: NaN capacity cells in the cycler
    file) is shown on the page too, not only kept in the table's attributes."""
    import shutil

    import pandas as pd

    from asymflux.analysis import analyze_path

    copy = tmp_path / "nan-cells"
    shutil.copytree(demo_data["aged"], copy)
    echem = pd.read_csv(copy / "echem.csv")
    echem.loc[10:20, "capacity_mAh_g"] = float("nan")
    echem.to_csv(copy / "echem.csv", index=False)
    particles = analyze_path(copy)[0]
    problems = particles.attrs.get("warnings", [])
    assert problems, "the CLI's analysis should warn about NaN capacity cells"
    view = ModelExplorer(dataset=str(copy))
    assert not view.alert.visible
    shown = view._dataset_info.object
    assert shown.count("**Warning:**") == len(set(problems))
    assert "NaN" in shown and "echem.csv" in shown


# --------------------------------------------------------------------- issue 14: the explorer


def test_explorer_settings_import_without_panel():
    """The explorer's settings (the sliders' parameters) are a Panel-free Parameterized:
    importing and using them loads no panel, bokeh or holoviews."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from asymflux.views._settings import ExplorerSettings\n"
            "s = ExplorerSettings(eta=0.7)\n"
            "s.surface_model = 'kinetic'; s.film_log10 = -1.0\n"
            "assert s.model_settings()['film_ohm_m2'] == 0.1\n"
            "print(sorted(m for m in ('panel', 'bokeh', 'holoviews') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_changing_a_setting_changes_the_result():
    from asymflux.views._settings import ExplorerSettings

    s = ExplorerSettings(blocked_fraction=0.25, rate_mA_g=200.0)
    before = s.curves()
    np.testing.assert_allclose(before.loc[before["minutes"] > 0, "flux_ratio"], 0.3)
    s.eta = 0.7
    after = s.curves()
    np.testing.assert_allclose(after.loc[after["minutes"] > 0, "flux_ratio"], 0.7)
    assert not np.allclose(before["voltage_V"], after["voltage_V"])
    li = s.li_extracted()
    s.surface_model = "kinetic"
    assert s.li_extracted() != pytest.approx(li, abs=1e-6)
    # the film resistance and its log10 (the slider's position) follow each other
    s.film_log10 = -1.2
    assert s.film_resistance_ohm_m2 == 0.0631
    s.film_resistance_ohm_m2 = 0.05
    assert s.film_log10 == pytest.approx(np.log10(0.05))


def test_explorer_widgets_are_made_from_the_settings(demo_data):
    """The sliders are linked to the settings' parameters (from_param), not synced by hand:
    another view on the same settings object moves with it."""
    from asymflux.views._settings import ExplorerSettings

    explorer = ModelExplorer(dataset="aged")
    assert isinstance(explorer.settings, ExplorerSettings)
    other = ModelExplorer(settings=explorer.settings, dataset="aged")
    _set_slider(other.fraction_slider, 0.5)
    assert explorer.settings.blocked_fraction == 0.5
    assert explorer.fraction_slider.value_throttled == 0.5
    assert explorer.maps_ready[1] == 0.5  # the plots follow the settings
    explorer.settings.blocked_fraction = 0.25
    assert other.fraction_slider.value == 0.25


def test_curve_builders_make_the_page_figures(demo_data):
    """V(t) and the flux ratio come from asymflux.plots builders (a notebook makes the same
    figures); the page's figures are theirs, with the data of the θ maps' run."""
    from bokeh.document import Document

    from asymflux import plots

    hv.extension("bokeh")
    view = ModelExplorer(dataset="aged")
    figs = _figures(view.__panel__().get_root(Document()))
    flux = next(f for t, f in figs.items() if t.startswith("flux ratio of the arc"))
    volt = next(f for t, f in figs.items() if t.startswith("voltage vs Li"))
    curves, measured = view.curves(), view.measured_voltage()
    el = plots.flux_ratio_vs_time(curves)
    (curve,) = el
    np.testing.assert_array_equal(curve.dimension_values("flux_ratio"),
                                  flux.renderers[0].data_source.data["flux_ratio"])
    notebook = hv.render(el, backend="bokeh")
    assert flux.yaxis[0].axis_label == notebook.yaxis[0].axis_label
    assert flux.xaxis[0].axis_label == notebook.xaxis[0].axis_label
    el = plots.voltage_vs_capacity(curves, measured)
    meas, model = el
    np.testing.assert_array_equal(meas.dimension_values("voltage_V"),
                                  volt.renderers[0].data_source.data["voltage_V"])
    np.testing.assert_array_equal(model.dimension_values("voltage_V"),
                                  volt.renderers[1].data_source.data["voltage_V"])
    assert volt.yaxis[0].axis_label == hv.render(el, backend="bokeh").yaxis[0].axis_label
    assert len(plots.voltage_vs_capacity(None)) == 2  # both layers, empty


def test_both_views_load_through_one_shared_loader(demo_data, tmp_path, monkeypatch):
    """The explorer and the cohort browser share _widgets.DatasetLoader (alert, progress,
    'Analyse anyway', uploads, load token); the cohort's uploads are removed at the end of
    its session too."""
    import tempfile

    from asymflux.views import _widgets as W

    explorer = ModelExplorer(dataset="aged")
    cohort = CohortBrowser(datasets=COHORT_DATASETS[0])
    for view in (explorer, cohort):
        assert isinstance(view.loader, W.DatasetLoader)
        assert view.alert is view.loader.alert and view.upload is view.loader.upload
        token = view.loader.new_load()
        assert view.loader.current(token) and not view.loader.current(token - 1)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    buf = io.BytesIO()
    folder = demo_data[COHORT_DATASETS[0]]
    with zipfile.ZipFile(buf, "w") as zf:
        for p in folder.rglob("*"):
            if p.is_file():
                zf.write(p, "one/" + str(p.relative_to(folder)))
    cohort.upload.filename = "one.zip"
    cohort.upload.value = buf.getvalue()
    assert cohort.datasets.endswith("one") and not cohort.alert.visible
    assert len(list(tmp_path.glob("asymflux-upload-*"))) == 1
    cohort._session_end()
    assert not list(tmp_path.glob("asymflux-upload-*"))
    cohort.upload.filename = "bad.zip"
    cohort.upload.value = b"not a zip"
    assert cohort.alert.visible and "bad.zip" in cohort.alert.object


@contextmanager
def _counting_model_walks(doc):
    """Make ``doc`` the current document and yield the list that gets one item per walk over
    its models (``doc.models.recompute``); both undone at the end."""
    calls = []
    real = doc.models.recompute
    doc.models.recompute = lambda: (calls.append(1), real())
    old = pn.state.curdoc
    pn.state.curdoc = doc
    try:
        yield calls
    finally:
        pn.state.curdoc = old
        doc.models.recompute = real


def test_publications_walk_no_models(demo_data):
    """The θ maps and curves, d(capacity), the simulated line-cut and Fig. 5b are plain data
    sources replaced in place: their publication (the maps' twice a slider move: preview and
    final) needs no walk over the page's models (50-70 ms of the server's loop each)."""
    from bokeh.document import Document

    hv.extension("bokeh")
    view = ModelExplorer(dataset="aged")
    doc = Document()
    doc.add_root(view.__panel__().get_root(doc))
    with _counting_model_walks(doc) as calls:
        keys = view._keys(view.model_settings(eta=0.45))
        view.theta_maps(eta=0.45)
        view._publish({"maps": keys["maps"]})
        assert calls == []
        assert view._map_figs[0].title.text == "100 mA/g, 5 min"
        view._publish({"twin": keys["twin"], "rate": keys["rate"]})
        assert calls == []
        assert view._rate_fig.title.text.startswith(f"Fig. 5b ({C.FIG5B_END_SHORT}): η 0.45, ")


def test_titles_fit_their_plots_and_kymograph_ticks_do_not_crowd():
    """Map titles stay short (preview and 'not reached' give the rate's place to the state),
    and the line-cut kymograph asks for at most four distance ticks."""
    from asymflux import plots

    titles = [ModelExplorer._map_title(800.0, 20.0, reached, preview)
              for reached in (True, False) for preview in (False, True)]
    assert max(map(len, titles)) <= 23, titles  # 160-pixel frames, 8-point font
    assert ModelExplorer._map_title(100.0, 5.0) == "100 mA/g, 5 min"
    assert "coarse preview" in ModelExplorer._map_title(100.0, 5.0, preview=True)
    assert all(len(t) <= 51 for t in ModelExplorer._curve_titles(True, " (coarse preview)"))
    hv.extension("bokeh")
    fig = hv.render(plots.kymograph(np.zeros((3, 50)), np.linspace(0, 2800, 50),
                                    [0.0, 10.0, 20.0]), backend="bokeh")
    assert fig.xaxis[0].ticker.desired_num_ticks == 4
    # the cohort browser's particle plots (380 pixels wide): the movie's title names the
    # particle, the PNG files name it in theirs
    from types import SimpleNamespace

    import pandas as pd

    movie = SimpleNamespace(kymograph=np.zeros((3, 50)), distance_nm=np.linspace(0, 2800, 50),
                            capacity_mAh_g=np.array([0.0, 10.0, 20.0]), boundaries=None,
                            timeseries=pd.DataFrame({"capacity_mAh_g": [0.0, 1.0],
                                                     "offset_nm": [0.0, 5.0]}))
    for make in (CohortBrowser._kymograph_plot, CohortBrowser._offset_plot):
        page = hv.render(make(movie, "cohort-3-4.3V-50mA_g-1", 12), backend="bokeh")
        assert len(page.title.text) <= 28, page.title.text
        full = hv.render(make(movie, "cohort-3-4.3V-50mA_g-1", 12, True), backend="bokeh")
        assert full.title.text.endswith("cohort-3-4.3V-50mA_g-1 / 12")


def test_twin_and_rate_plots_are_updated_not_rebuilt(demo_data):
    """d(capacity), the simulated line-cut and Fig. 5b are drawn once and then updated in
    place, as the θ maps are: after a settings change the same Bokeh figures and data
    sources hold the new data, equal to what their asymflux.plots builders draw (titles,
    axis labels, legends, every column), and publishing them walks none of the page's
    models."""
    from bokeh.document import Document
    from bokeh.models import GlyphRenderer

    hv.extension("bokeh")
    view = ModelExplorer(dataset="aged")
    doc = Document()
    doc.add_root(view.__panel__().get_root(doc))
    figs = {"offset": view._offset_fig, "simulated": view._sim_kymo_fig,
            "rate": view._rate_fig}
    panes = {"offset": view.offset_pane, "simulated": view.simulated_pane,
             "rate": view.rate_pane}
    assert all(panes[k].object is figs[k] for k in figs)
    in_doc = {id(m) for m in doc.models}
    assert all(id(f) in in_doc for f in figs.values())

    def sources(fig):  # the glyphs' renderers
        return [r for r in fig.renderers if isinstance(r, GlyphRenderer)]

    def snapshot(fig):
        return [{k: np.asarray(v).copy() for k, v in r.data_source.data.items()}
                for r in sources(fig)]

    srcs = {k: [id(r.data_source) for r in sources(f)] for k, f in figs.items()}
    before = {k: snapshot(f) for k, f in figs.items()}
    titles = {k: f.title.text for k, f in figs.items()}
    with _counting_model_walks(doc) as calls:
        view.settings.param.update(eta=0.45, rate_mA_g=200.0)
    assert calls == []  # data sources only: no model added, nothing to walk
    assert {"offset": view.offset_pane.object, "simulated": view.simulated_pane.object,
            "rate": view.rate_pane.object} == figs  # the same figures ...
    assert {k: [id(r.data_source) for r in sources(f)]
            for k, f in figs.items()} == srcs  # ... and data sources

    def same(u, v):  # numbers within rounding; text (the flags' hover) exactly
        if u.dtype.kind in "OUS" or v.dtype.kind in "OUS":
            return u.astype(str).tolist() == v.astype(str).tolist()
        return np.allclose(u, v, equal_nan=True)

    def differs(a, b):
        return any(set(x) != set(y) or any(
            x[c].shape != y[c].shape or not same(x[c], y[c])
            for c in x) for x, y in zip(a, b, strict=True))

    for k, f in figs.items():  # ... with new data
        assert differs(before[k], snapshot(f)), k
    assert "η 0.45" in figs["simulated"].title.text != titles["simulated"]
    assert ", 200 mA/g" in figs["rate"].title.text
    assert figs["offset"].title.text.startswith("d(capacity), particle ")
    # what the builders draw for the same settings: the same title, axes, legend and data
    keys = view._keys(view.model_settings())
    for k, (el, title) in {"offset": view._offset_plot(keys["twin"]),
                           "simulated": view._simulated_kymograph(keys["twin"]),
                           "rate": view._rate_plot(keys["rate"])}.items():
        ref = hv.render(el, backend="bokeh")
        fig = figs[k]
        assert fig.title.text == title
        assert fig.xaxis[0].axis_label == ref.xaxis[0].axis_label, k
        assert fig.yaxis[0].axis_label == ref.yaxis[0].axis_label, k
        legend = [[i.label for i in g.legend[0].items] if g.legend else [] for g in (fig, ref)]
        assert legend[0] == legend[1], k
        assert [type(r.glyph).__name__ for r in sources(fig)] == \
            [type(r.glyph).__name__ for r in sources(ref)]
        assert not differs(snapshot(ref), snapshot(fig)), k
    span = next(r for r in figs["rate"].renderers if not isinstance(r, GlyphRenderer))
    assert span.location == 200.0



def test_arc_outline_is_the_red_curve_of_the_surface_outline():
    from asymflux import model, plots

    quarter = model.Surface([model.BlockedArc(180.0, 0.25, 0.3), model.BlockedArc(20.0, 0.1, 0.5)])
    x, y = plots.arc_outline_xy(quarter, 1.2)
    assert np.count_nonzero(np.isnan(x)) == 2 == np.count_nonzero(np.isnan(y))  # one per arc
    ok = np.isfinite(x)
    np.testing.assert_allclose(np.hypot(x[ok], y[ok]), 1.2)
    first = np.degrees(np.arctan2(y[ok], x[ok]) % (2 * np.pi))[:10]
    assert np.all((first >= 135.0 - 1e-9) & (first <= 225.0 + 1e-9))  # the quarter at 180°
    red = plots.surface_outline(quarter, 1.2).get(1)
    np.testing.assert_array_equal(red.dimension_values(0), x)
    np.testing.assert_array_equal(red.dimension_values(1), y)
    assert [a.size for a in plots.arc_outline_xy(model.Surface(), 1.2)] == [0, 0]


def test_theta_maps_are_coloured_as_bokehs_mapper_would():
    # the θ maps are sent coloured (RGBA): the colours LinearColorMapper(low, high) gives
    from bokeh.palettes import Viridis256

    from asymflux.views.model_explorer import _rgba_image, _rgba_palette

    lut = _rgba_palette(Viridis256)
    r, g, b = (int(Viridis256[0][i:i + 2], 16) for i in (1, 3, 5))
    assert lut[0] == r | g << 8 | b << 16 | 255 << 24
    low, high = 0.85, 0.97
    step = (high - low) / 256
    img = _rgba_image(np.array([[low - 0.1, low, low + 128.5 * step, high, high + 0.1, np.nan]]),
                      low, high, lut)
    assert img.dtype == np.uint32 and img.shape == (1, 6)
    assert list(img[0]) == [lut[0], lut[0], lut[128], lut[255], lut[255], 0xFFFFFFFF]
    # no range: at (or above) high the last colour, as BokehJS; infinities are not NaN
    assert np.all(_rgba_image(np.full((2, 2), 0.9), 0.9, 0.9, lut) == lut[255])
    assert list(_rgba_image(np.array([[-np.inf, np.inf]]), low, high, lut)[0]) == \
        [lut[0], lut[255]]


def test_the_stylesheet_change_matches_the_installed_bokeh():
    # browser-free half of test_browser_served.py's check: the installed Bokeh is one the change
    # was checked with, and its BokehJS bundle still holds the method as checked
    import re
    from pathlib import Path

    import bokeh
    from bokeh.document import Document

    from asymflux.views import _bokehjs_patch as S

    assert ".".join(bokeh.__version__.split(".")[:2]) in S.STYLESHEET_PATCH_BOKEH, \
        f"Bokeh {bokeh.__version__}: check core/dom.InlineStyleSheet._update, then list it"
    js = (Path(bokeh.__file__).parent / "server/static/js/bokeh.min.js").read_text()
    methods = re.findall(r"_update\(\w+\)\{this\.el\.textContent=\w+\}", js)
    assert methods and all(re.match(S.STYLESHEET_UPDATE_SOURCE, m) for m in methods)
    assert not re.match(S.STYLESHEET_UPDATE_SOURCE, "_update(t){this.el.textContent=e}")
    doc = Document()
    assert S.skip_unchanged_stylesheets(doc) and not S.skip_unchanged_stylesheets(doc)  # once
