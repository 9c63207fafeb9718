"""The napari plugin: manifest, reader, sample data, curation widget (needs Xvfb)."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari")

from asymflux.curation import AUTOSAVE_NAME, Curation  # noqa: E402

NOTES = 'crack at 3 o\'clock, "see Fig. 2"\nsecond line ✓ , NA  '


@pytest.fixture
def folder(tmp_path):
    """A copy of the small 'fresh' demo dataset (never edit the cache)."""
    from asymflux import datasets

    dst = tmp_path / "fresh"
    shutil.copytree(datasets.path("fresh"), dst)
    return dst


@pytest.fixture
def notifications():
    """Notifications shown from now on (napari's notification manager records them)."""
    from napari.utils.notifications import notification_manager

    start = len(notification_manager.records)

    class _Rec:
        def messages(self, severity=None):
            out = notification_manager.records[start:]
            return [str(n.message) for n in out
                    if severity is None or str(n.severity).lower().endswith(severity)]

    return _Rec()


def _dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("asymflux", "Curate particles")
    return widget


def _opened(make_napari_viewer, folder, **kwargs):
    viewer = make_napari_viewer(**kwargs)
    w = _dock(viewer)
    w.open_dataset(folder)
    return viewer, w


def _features(layer):
    return pd.DataFrame(layer.features).drop(columns="index").reset_index(drop=True)


# ---------------------------------------------------------------- manifest, reader, samples


def test_npe2_finds_and_validates_the_manifest():
    import npe2

    pm = npe2.PluginManager()
    pm.discover()
    mf = pm.get_manifest("asymflux")
    assert mf.name == "asymflux"
    contrib = mf.contributions
    assert {s.key for s in contrib.sample_data} == {"fresh", "aged"}
    assert [w.display_name for w in contrib.widgets] == ["Curate particles"]
    assert contrib.readers[0].accepts_directories
    for cmd in contrib.commands:  # every python_name resolves
        mod, _, attr = cmd.python_name.partition(":")
        __import__(mod)
        assert hasattr(sys.modules[mod], attr), cmd.python_name
    npe2_cli = Path(sys.executable).with_name("npe2")
    proc = subprocess.run([str(npe2_cli), "validate", "asymflux"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_get_reader_declines_what_it_cannot_read(tmp_path):
    from asymflux.napari import napari_get_reader

    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "plain").mkdir()
    for p in [tmp_path / "notes.txt", tmp_path / "plain", tmp_path / "missing.ome.tif",
              str(tmp_path / "missing.zarr"), [tmp_path / "a", tmp_path / "b"], None, 3, b"\x00"]:
        assert napari_get_reader(p) is None


def test_reader_opens_dataset_folder_lazily(make_napari_viewer, folder):
    import dask.array as da

    viewer = make_napari_viewer()
    layers = viewer.open(folder, plugin="asymflux")
    assert [lyr._type_string for lyr in layers] == ["image", "labels"]
    stack, labels = layers
    assert isinstance(stack.data, da.Array) and stack.data.shape == (49, 256, 256)
    assert stack.metadata["asymflux"]["path"] == str(folder)
    assert labels.data.shape == (256, 256) and labels.data.max() > 0
    assert set(labels.features["status"]) == {"pending"}


def test_reader_opens_ome_tiff_and_zarr_stacks(make_napari_viewer, folder, tmp_path):
    import dask.array as da

    from asymflux.io import read_dataset, write_dataset

    viewer = make_napari_viewer()
    (tiff_layer,) = viewer.open(folder / "stack.ome.tif", plugin="asymflux")
    assert isinstance(tiff_layer.data, da.Array) and tiff_layer.data.shape[0] == 49
    write_dataset(read_dataset(folder), tmp_path / "as_zarr", stack_format="zarr")
    (zarr_layer,) = viewer.open(tmp_path / "as_zarr" / "stack.zarr", plugin="asymflux")
    assert isinstance(zarr_layer.data, da.Array)
    assert np.array_equal(np.asarray(zarr_layer.data[10]), np.asarray(tiff_layer.data[10]))


def test_long_zarr_stack_opens_fast_and_lazily(make_napari_viewer, tmp_path):
    import dask.array as da

    from asymflux.io import Dataset, write_dataset

    n = 2000
    stack = da.random.default_rng(0).integers(100, 4000, (n, 96, 96), chunks=(200, 96, 96)).astype(np.uint16)
    ds = Dataset(stack=stack, time_s=np.arange(n) * 2.0, pixel_nm=65.0,
                 metadata={"material": "NMC", "ageing": "fresh", "rate_mA_g": 100.0, "cell": "x"})
    write_dataset(ds, tmp_path / "long", stack_format="zarr")
    viewer = make_napari_viewer()
    t0 = time.perf_counter()
    (layer,) = viewer.open(tmp_path / "long", plugin="asymflux")
    assert time.perf_counter() - t0 < 15
    assert isinstance(layer.data, da.Array) and layer.data.shape == (n, 96, 96)


def test_sample_data(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("asymflux", "fresh")
    names = [lyr.name for lyr in viewer.layers]
    assert names == ["fresh", "fresh particles"]
    assert viewer.layers["fresh"].data.shape == (49, 256, 256)


def test_broken_dataset_file_gives_a_notification(make_napari_viewer, folder, notifications):
    (folder / "metadata.json").write_text("{ not json")
    viewer = make_napari_viewer()
    layers = viewer.open(folder, plugin="asymflux")  # no traceback
    assert layers == [] and len(viewer.layers) == 0
    errors = notifications.messages("error")
    assert any(str(folder / "metadata.json") in m and "JSON" in m for m in errors), errors


def test_broken_masks_via_the_widget_gives_a_notification(make_napari_viewer, folder, notifications):
    (folder / "masks.tif").write_bytes(b"II*\x00garbage")
    viewer = make_napari_viewer()
    w = _dock(viewer)
    assert w.open_dataset(folder) is None
    assert any(str(folder / "masks.tif") in m for m in notifications.messages("error"))


def test_broken_autosave_gives_a_warning(make_napari_viewer, folder, notifications):
    (folder / AUTOSAVE_NAME).write_bytes(b"garbage")
    viewer = make_napari_viewer()
    w = _dock(viewer)
    w.run(w.open_dataset, folder)
    assert w.curation is not None and w.curation.recovered_from is None
    assert any(AUTOSAVE_NAME in m for m in notifications.messages("warning"))


# ---------------------------------------------------------------- widget actions


def test_the_dock_leaves_the_canvas_its_room(make_napari_viewer):
    """The dock's controls scroll (a QScrollArea): it asks for at most 400 px of width and
    can be made narrower, instead of its controls squeezing the image canvas."""
    from qtpy.QtWidgets import QScrollArea

    from asymflux.napari._widget import DOCK_WIDTH_PX

    viewer = make_napari_viewer()
    dock, w = viewer.window.add_plugin_dock_widget("asymflux", "Curate particles")
    assert isinstance(w.scroll_area, QScrollArea) and w.scroll_area.widget() is w._body.native
    assert dock.minimumSizeHint().width() < 450
    assert dock.sizeHint().width() <= DOCK_WIDTH_PX + 20
    # everything is inside the scrolled body: the controls, the plot and the live panel
    # the panels' controls fit in the dock's width (they scroll vertically only): every
    # button is whole at the width the dock asks for (was ~570 px before the panels)
    assert w._body.native.minimumSizeHint().width() <= DOCK_WIDTH_PX
    body = w._body.native
    for widget in (w.live_panel.native, w._status.native, w._path.native,
                   *([w._canvas] if w._canvas is not None else [])):
        assert body.isAncestorOf(widget), widget
    from qtpy.QtWidgets import QPushButton

    texts = {b.text() for b in body.findChildren(QPushButton)}
    assert "Show O_COM / O_Li-rich" in texts, texts  # its underscores kept (magicgui's eat them)


def test_differential_layer_is_diverging_and_lazy(make_napari_viewer, folder):
    import dask.array as da

    _, w = _opened(make_napari_viewer, folder)
    layer = w.show_differential()
    assert isinstance(layer.data, da.Array)
    lo, hi = layer.contrast_limits
    assert lo == -hi and hi > 0
    white, red, blue = layer.colormap.map(np.array([0.5, 1.0, 0.0]))
    assert np.allclose(white[:3], 1.0)
    assert red[0] > 0.3 and red[0] > 2 * red[2]  # positive dI (delithiation) is red
    assert blue[2] > blue[0]


def test_detect_and_status_actions_change_the_layer(make_napari_viewer, folder):
    _, w = _opened(make_napari_viewer, folder)
    L = w.labels_layer
    L.data = np.zeros_like(L.data)  # start from nothing: detection must find particles
    w.detect()
    ids = sorted(set(np.unique(L.data)) - {0})
    assert len(ids) >= 4
    a, b, c = ids[:3]
    w.accept(a)
    w.reject(b)
    w.flag(c)
    w.set_class("asymmetric", a)
    w.set_notes(NOTES, b)
    f = _features(L).set_index("particle_id")
    assert f.loc[a, "status"] == "accepted" and f.loc[a, "class"] == "asymmetric"
    assert f.loc[b, "status"] == "rejected" and f.loc[b, "notes"] == NOTES
    assert f.loc[c, "status"] == "flagged"
    # selecting a label in the layer drives the widget's particle
    L.selected_label = c
    assert w._particle.value == c
    w.accept()
    assert _features(L).set_index("particle_id").loc[c, "status"] == "accepted"


def test_pixel_edits_and_undo(make_napari_viewer, folder):
    _, w = _opened(make_napari_viewer, folder)
    L = w.labels_layer
    ids = sorted(set(np.unique(L.data)) - {0})
    start = (L.data.copy(), _features(L))

    keep = w.merge(ids[:2])
    assert keep == ids[0] and ids[1] not in np.unique(L.data)
    assert len(L.features) == len(ids) - 1
    w.undo()
    assert np.array_equal(L.data, start[0])
    pd.testing.assert_frame_equal(_features(L), start[1])
    w.redo()
    assert ids[1] not in np.unique(L.data)
    w.undo()

    new = w.split(ids[2])
    assert len(new) == 2 and set(new) <= set(np.unique(L.data))
    w.delete(ids[3])
    assert ids[3] not in np.unique(L.data)
    mapping = w.relabel()
    assert sorted(set(np.unique(L.data)) - {0}) == list(range(1, len(mapping) + 1))
    for _ in range(3):
        w.undo()
    assert np.array_equal(L.data, start[0])
    pd.testing.assert_frame_equal(_features(L), start[1])


def test_napari_undo_and_brush_edits_reach_the_model(make_napari_viewer, folder, qtbot):
    _, w = _opened(make_napari_viewer, folder)
    L = w.labels_layer
    ids = sorted(set(np.unique(L.data)) - {0})
    before = L.data.copy()
    w.merge(ids[:2])
    L.undo()  # napari's own undo: the merge is one step
    assert np.array_equal(L.data, before)
    w.accept(ids[0])  # the next action first takes the layer's pixels into the model
    assert np.array_equal(w.curation.labels, before)
    # a brush stroke (data_setitem emits a paint event)
    rr, cc = np.mgrid[5:9, 5:9]
    L.data_setitem((rr.ravel(), cc.ravel()), 99)
    qtbot.waitUntil(lambda: np.array_equal(w.curation.labels, L.data), timeout=5000)
    assert 99 in set(_features(L)["particle_id"])
    assert w.curation.history[-1] == "paint"
    w.undo()
    assert 99 not in np.unique(L.data)


def test_particle_points_plot_and_kymograph(make_napari_viewer, folder):
    viewer, w = _opened(make_napari_viewer, folder)
    pid = int(sorted(set(np.unique(w.labels_layer.data)) - {0})[0])
    table = w.show_particle(pid)
    assert set(table["particle_id"]) == {pid} and len(table) == 49
    com, li = w.com_layer, w.li_rich_layer
    assert com.name == "O_COM" and li.name == "O_Li-rich"
    assert com.data.shape == (49, 3) and 0 < li.data.shape[0] <= 49
    rows, cols = np.nonzero(w.curation.labels == pid)
    assert rows.min() - 1 <= com.data[0, 1] <= rows.max() + 1
    assert cols.min() - 1 <= com.data[0, 2] <= cols.max() + 1
    ax = w._figure.axes[0]
    assert len(ax.lines) == 1 and ax.get_ylabel() == "d (nm)"

    lines = w.add_line_layer()
    r0 = float(rows.mean())
    lines.add_lines(np.array([[0, r0, cols.min() - 5.0], [0, r0, cols.max() + 5.0]]))
    kymo = w.kymograph()
    assert kymo.data.ndim == 2 and kymo.data.shape[0] == 49
    assert kymo.data.shape[1] >= cols.max() - cols.min() + 10
    assert np.isfinite(kymo.data).any()
    assert kymo.colormap.name == w.show_differential().colormap.name


def test_illumination_options_reach_the_core_functions(make_napari_viewer, folder):
    import dask.array as da

    from asymflux import analysis

    _, w = _opened(make_napari_viewer, folder)
    pid = int(sorted(set(np.unique(w.labels_layer.data)) - {0})[0])
    # the default is the command line's: normalise when the background drifts ("auto")
    assert w.options_panel.normalize.value == "auto"
    assert w.analysis_options() == analysis.analysis_options()
    w.options_panel.normalize.value = "off"
    assert w.differential_options() == {"n_reference_frames": 1}
    plain = np.asarray(w.show_differential().data)
    plain_table = w.show_particle(pid)

    w.options_panel.normalize.value = "on"
    options = w.differential_options()
    assert options["normalize"] == "frame_mean"
    np.testing.assert_array_equal(options["background_mask"],
                                  analysis.particle_free_pixels(w.curation.labels))
    layer = w.show_differential()
    assert isinstance(layer.data, da.Array)
    normalised = np.asarray(layer.data)
    registered, _ = analysis.registered_differential(np.asarray(w.stack), w.curation.labels,
                                                     **options)
    np.testing.assert_allclose(normalised, registered, atol=1e-6)
    assert np.abs(normalised - plain).max() > 1e-4  # the demo lamp drifts by up to 1 %
    assert not np.allclose(w.show_particle(pid)["mean_dI"], plain_table["mean_dI"])

    w.options_panel.rolling.value = 3
    assert w.differential_options()["rolling_frames"] == 3
    rolling = np.asarray(w.show_differential().data)
    assert np.isnan(rolling[:3]).all() and np.isfinite(rolling[3:]).any()
    table = w.show_particle(pid)
    assert (table["offset_reason"][:3] == "no valid pixels").all()
    assert "rolling_frames" not in w.differential_options(rolling=False)  # what the fit uses
    w.options_panel.rolling.value = 0
    w.options_panel.normalize.value = "off"
    np.testing.assert_array_equal(np.asarray(w.show_differential().data), plain)


def test_quality_panel_shows_what_analyze_writes(make_napari_viewer, folder):
    """The quality panel's numbers (flags per particle and per frame, d with its range, the
    class with its range of max d/R_eq) are those of ``asymflux analyze`` on the same input
    (particles.csv, timeseries.csv), default options on both sides."""
    from asymflux.analysis import analyze_dataset
    from asymflux.io import read_dataset

    viewer, w = _opened(make_napari_viewer, folder)
    particles, ts = analyze_dataset(read_dataset(folder), masks=w.curation.labels)
    particles = particles.set_index("particle_id")
    n_flags = ts.groupby("particle_id")["quality_flags"].apply(lambda f: (f != "").sum())
    assert n_flags.max() >= 3  # the demo's particle 4: background drift on 3 frames, and more
    shown_flags = set()
    for pid in (int(n_flags.index[0]), int(n_flags.idxmax())):
        w.show_particle(pid)
        expected = particles.loc[pid]
        rows = ts[ts["particle_id"] == pid].set_index("frame")
        flagged = rows.index[rows["quality_flags"] != ""]
        for frame in (5, *flagged, int(rows["offset_nm"].last_valid_index()),
                      int(rows.index.max())):
            viewer.dims.set_current_step(0, frame)  # the time slider moves the panel
            q = w.quality_panel.values
            assert q["frame"] == frame
            assert pd.Series(q).equals(pd.Series(w.particle_quality(frame)))  # NaN == NaN
            r = rows.loc[frame]
            np.testing.assert_allclose([q["offset_nm"], q["d_nm_low"], q["d_nm_high"]],
                                       [r["offset_nm"], r["d_nm_low"], r["d_nm_high"]],
                                       rtol=1e-9, equal_nan=True)
            assert q["frame_flags"] == (r["quality_flags"] or "")
            assert q["offset_reason"] == r["offset_reason"]
            text = w.quality_panel.lines["frame flags"].value
            assert text.startswith(f"frame {frame} flags: ")
            assert all(f in text for f in q["frame_flags"].split(";"))
            shown_flags.update(f for f in q["frame_flags"].split(";") if f)
        assert q["classification"] == expected["classification"]
        assert q["quality_flags"] == (expected["quality_flags"] or "")
        np.testing.assert_allclose(
            [q["asymmetry_score"], q["asymmetry_score_low"], q["asymmetry_score_high"],
             q["flagged_fraction"]],
            [expected["max_offset_norm"], expected["asymmetry_score_low"],
             expected["asymmetry_score_high"], expected["flagged_fraction"]],
            rtol=1e-9, equal_nan=True)
        assert w.quality_panel.lines["class"].value.startswith(f"class {q['classification']}:")
        for flag in expected["quality_flags"].split(";"):  # "name:n_frames"
            assert flag.split(":")[0] in w.quality_panel.lines["particle flags"].value
    assert shown_flags == {"core_too_small", "background_drift"}


@pytest.mark.slow
def test_quality_panel_under_a_sliding_beam_is_analyzes(make_napari_viewer, tmp_path):
    """A beam sliding across the field: the dock corrects each frame's illumination as
    ``asymflux analyze`` does, so the quality panel shows analyze's numbers; the camera
    choices (illumination field, dark / flat frames, results cache) reach the session."""
    from asymflux.analysis import analyze_path
    from tests.napari._beam import beam_folder

    folder = beam_folder(tmp_path / "beam")
    particles, ts, _, _ = analyze_path(folder, cache=False)
    viewer, w = _opened(make_napari_viewer, folder)
    assert w.options_panel.illumination.value == "auto" and w.session.cache is True
    assert "dark" not in w.analysis_options() and "illumination" not in w.analysis_options()
    particles = particles.set_index("particle_id")
    for pid in particles.index:
        table = w.show_particle(int(pid))
        rows = ts[ts["particle_id"] == pid].set_index("frame")
        for frame in (3, int(rows.index.max())):
            viewer.dims.set_current_step(0, frame)
            q = w.quality_panel.values
            np.testing.assert_allclose([q["offset_nm"], q["d_nm_low"], q["d_nm_high"]],
                                       rows.loc[frame, ["offset_nm", "d_nm_low", "d_nm_high"]]
                                       .to_numpy(float), rtol=1e-9, equal_nan=True)
        assert q["classification"] == particles.loc[pid, "classification"]
        np.testing.assert_allclose(q["asymmetry_score"], particles.loc[pid, "max_offset_norm"],
                                   rtol=1e-9)
        assert len(table) == len(rows)
    w.options_panel.illumination.value = "off"
    np.save(tmp_path / "dark.npy", np.zeros(w.stack.shape[1:]))
    w.options_panel.dark.value = tmp_path / "dark.npy"
    w.options_panel.cache.value = False
    options = w.analysis_options()
    assert options["illumination"] is None and options["dark"] == tmp_path / "dark.npy"
    assert w.session.cache is False
    pid = int(particles.index[0])
    off = w.show_particle(pid)  # raw intensities (less a dark frame of 0): other numbers
    assert not np.allclose(off["offset_nm"], ts[ts["particle_id"] == pid]["offset_nm"],
                           equal_nan=True)


def test_buttons_report_errors_as_notifications(make_napari_viewer, folder, notifications):
    _, w = _opened(make_napari_viewer, folder)
    w._particle.value = 0
    w.run(w.accept)  # no particle selected
    assert any("select a particle" in m for m in notifications.messages("error"))


# ---------------------------------------------------------------- saving


def test_save_close_reopen_is_exact(make_napari_viewer, folder):
    viewer, w = _opened(make_napari_viewer, folder)
    L = w.labels_layer
    ids = sorted(set(np.unique(L.data)) - {0})
    w.accept(ids[0])
    w.set_class("symmetric", ids[0])
    w.set_notes(NOTES, ids[1])
    w.set_class("exclude", ids[1])
    w.split(ids[2])
    w.merge([ids[3], ids[4]])
    saved_labels, saved_features = L.data.copy(), _features(L)
    w.save()
    assert not (folder / AUTOSAVE_NAME).exists()
    viewer.close()

    viewer2 = make_napari_viewer()
    layers = viewer2.open(folder, plugin="asymflux")
    assert np.array_equal(layers[1].data, saved_labels)
    pd.testing.assert_frame_equal(_features(layers[1]), saved_features)
    w2 = _dock(viewer2)
    w2.attach(layers[0])
    assert w2.labels_layer is layers[1]
    assert np.array_equal(w2.curation.labels, saved_labels)
    pd.testing.assert_frame_equal(w2.curation.features, saved_features)


def test_crash_between_autosave_and_save_loses_at_most_the_last_edit(make_napari_viewer, folder):
    viewer, w = _opened(make_napari_viewer, folder)
    L = w.labels_layer
    ids = sorted(set(np.unique(L.data)) - {0})
    w.accept(ids[0])
    w.set_notes(NOTES, ids[0])
    w.merge(ids[1:3])  # autosaved after every edit
    state = (L.data.copy(), _features(L))
    w.curation.autosave_every = 0  # the next edit is not autosaved: the worst case
    w.reject(ids[0])
    del w, L  # crash: nothing saved
    viewer.close()

    cur = Curation.load(folder)
    assert cur.recovered_from is not None
    assert np.array_equal(cur.labels, state[0])
    pd.testing.assert_frame_equal(cur.features, state[1])
    viewer2 = make_napari_viewer()
    w2 = _dock(viewer2)
    w2.open_dataset(folder)  # restores the autosave into the layer
    assert np.array_equal(w2.labels_layer.data, state[0])
    pd.testing.assert_frame_equal(_features(w2.labels_layer), state[1])


def _grab(qwidget):
    from qtpy.QtGui import QImage

    img = qwidget.grab().toImage().convertToFormat(QImage.Format.Format_RGBA8888)
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    arr = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 4].reshape(img.height(), img.width(), 4).copy()


def test_screenshot_with_plugin_docked_is_not_blank(make_napari_viewer, folder, qtbot):
    viewer, w = _opened(make_napari_viewer, folder, show=True)
    viewer.window._qt_window.resize(1400, 900)
    qtbot.waitUntil(lambda: w.native.isVisible(), timeout=5000)
    w.show_differential()
    w.show_particle(int(sorted(set(np.unique(w.labels_layer.data)) - {0})[0]))
    viewer.dims.set_point(0, 40)
    img = viewer.screenshot(canvas_only=False, flash=False)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400
    rgb = img[..., :3].reshape(-1, 3)
    assert len(np.unique(rgb, axis=0)) > 200
    assert rgb.std() > 20
    # the dock widget itself is drawn (buttons, text, the d(capacity) plot)
    assert w.native.isVisible() and w.native.width() > 200
    dock = _grab(w.native)[..., :3].reshape(-1, 3)
    assert len(np.unique(dock, axis=0)) > 50 and dock.std() > 20


def test_widget_attaches_to_a_dataset_opened_from_napari(make_napari_viewer, folder, qtbot):
    from napari.layers import Labels

    viewer = make_napari_viewer()
    w = _dock(viewer)
    assert w.curation is None
    viewer.open(folder, plugin="asymflux")
    qtbot.waitUntil(lambda: w.curation is not None, timeout=5000)
    labels = [lyr for lyr in viewer.layers if isinstance(lyr, Labels)]
    assert labels == [w.labels_layer]  # the reader's layer is adopted, not duplicated
    assert w.image_layer is viewer.layers[0]


def test_fit_button_runs_in_the_background(make_napari_viewer, folder, notifications, qtbot):
    """The button's fit runs in a worker thread: the call returns before the result, which
    arrives through Qt's event loop and is then drawn and reported."""
    viewer, w = _opened(make_napari_viewer, folder)
    worker = w.start_fit_blocking(4, max_arcs=0)  # no arcs: the quickest fit
    assert w.fit_result is None and "in the background" in w._status.value
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: w.fit_result is not None, timeout=10_000)
    assert w.fit_result.model == "none" and not w.fit_result.arcs
    assert any("particle 4: none" in m for m in notifications.messages())
    with pytest.raises(ValueError, match="does not exist"):
        w.start_fit_blocking(999)


def test_fit_blocking_draws_the_fitted_arc(make_napari_viewer, folder, notifications):
    """The widget's Fit action calls asymflux.fit (as `asymflux fit` does): demo 'fresh'
    particle 4 is blocked at 298 deg on 43 % of its perimeter with eta 0.21."""
    viewer, w = _opened(make_napari_viewer, folder)
    result = w.fit_blocking(4, max_arcs=1)
    assert result.model == "one arc"
    (arc,) = result.arcs
    assert abs((arc.center_deg - 298 + 180) % 360 - 180) < 15
    assert abs(arc.eta - 0.21) < 0.1
    layer = w.arcs_layer
    assert layer in viewer.layers and len(layer.data) == 1
    assert layer.metadata["asymflux"]["model"] == "one arc"
    # drawn by plots.arc_outline_xy around the particle: the arc's direction and width
    rows, cols = np.nonzero(w.curation.labels == 4)
    path = np.asarray(layer.data[0])
    phi = np.rad2deg(np.arctan2(rows.mean() - path[:, 0], path[:, 1] - cols.mean()))
    rel = (phi - arc.center_deg + 180) % 360 - 180
    np.testing.assert_allclose([rel.min(), rel.max()], [-180 * arc.fraction, 180 * arc.fraction],
                               atol=1.0)
    np.testing.assert_allclose(np.hypot(*(path - [rows.mean(), cols.mean()]).T),
                               1.15 * np.sqrt(rows.size / np.pi), rtol=1e-6)
    assert any("particle 4: one arc" in m for m in notifications.messages())


# ---------------------------------------------------------------- exports


def test_export_table_and_movie(make_napari_viewer, folder, notifications):
    """Export table: analyze's particle table of the curated labels joined with the classes
    and notes (asymflux.export); Export movie: the selected particle's registered crop."""
    import tifffile
    from PIL import Image

    from asymflux.analysis import analyze_dataset
    from asymflux.export import default_movie_suffix
    from asymflux.io import read_dataset

    _, w = _opened(make_napari_viewer, folder)
    ids = sorted(set(np.unique(w.labels_layer.data)) - {0})
    w.set_class("asymmetric", ids[0])
    w.set_notes(NOTES, ids[1])
    w.reject(ids[2])
    path = w.export_table()  # the box is empty: into the dataset folder
    assert path == folder / "curated_particles.csv"
    table = pd.read_csv(path, keep_default_na=False).set_index("particle_id")
    assert table.loc[ids[0], "class"] == "asymmetric" and table.loc[ids[1], "notes"] == NOTES
    assert table.loc[ids[2], "status"] == "rejected"
    expected, _ = analyze_dataset(read_dataset(folder), masks=w.curation.labels)
    np.testing.assert_allclose(table.loc[expected["particle_id"], "max_offset_norm"],
                               expected["max_offset_norm"], rtol=1e-9)
    assert any("curated particles written" in m for m in notifications.messages())

    chosen = folder.parent / "chosen.csv"  # the file box (the save dialog fills it)
    w._export.table_file.value = chosen
    w.run(w._export[-1][0].changed.emit)  # the button
    assert chosen.is_file() and pd.read_csv(chosen)["particle_id"].tolist() == ids

    w._particle.value = ids[3]
    movie = w.export_movie()
    assert movie == folder / f"particle_{ids[3]}_dI{default_movie_suffix()}"
    w._export.movie_file.value = folder.parent / "p.gif"
    w._export.fps.value = 10
    w.run(w._export[-1][1].changed.emit)
    with Image.open(folder.parent / "p.gif") as im:
        assert im.n_frames == 49 and im.info["duration"] == 100
    tif = w.export_movie(folder.parent / "p.tif")
    crop = w.analyze_particle(ids[3], crop=True).crop
    np.testing.assert_array_equal(tifffile.imread(tif), crop.dI.astype(np.float32))

    w.run(w.export_movie, folder.parent / "p.avi")  # errors become notifications
    assert any("unknown format" in m for m in notifications.messages("error"))
    assert not (folder.parent / "p.avi").exists()


def test_clock_offset_field_shifts_the_capacity(make_napari_viewer, folder, notifications):
    _, w = _opened(make_napari_viewer, folder)
    e = w.dataset.echem
    before = np.array(w.capacity_mAh_g)
    off = w.run(w.set_time_offset, "120")  # a button's way: warnings become notifications
    assert off.offset_s == 120.0 and off.method == "given"
    assert any("outside the cycler's records" in m for m in notifications.messages("warning"))
    expected = np.interp(w.time_s + 120.0, e["time_s"], e["capacity_mAh_g"], right=np.nan)
    np.testing.assert_allclose(w.capacity_mAh_g, expected)
    assert not np.allclose(w.capacity_mAh_g[:5], before[:5])
    assert any("clock offset 120 s" in m for m in notifications.messages())
    w.set_time_offset("0")  # from the cycler's own clock again, never added up
    np.testing.assert_allclose(w.capacity_mAh_g, before)
    w.run(w.set_time_offset, "soon")
    assert any("seconds or 'auto'" in m for m in notifications.messages("error"))
