"""The napari *Live* switch following `asymflux demo-live` (a real writer process; needs Xvfb).

Run with ``xvfb-run -a .venv/bin/pytest tests/napari/test_live.py``. Set
``ASYMFLUX_LIVE_SCREENSHOT=/tmp/live_napari.png`` to keep a screenshot of the window mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari")

N_FRAMES = 12
INTERVAL_S = 1.0


def _kill(proc):
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.fixture
def writer(tmp_path):
    """``asymflux demo-live`` writing into ``tmp_path/live`` (killed at teardown)."""
    from asymflux import datasets

    datasets.path("fresh")  # simulated once (cached), not inside the writer's timing
    src = tmp_path / "live"
    log = open(tmp_path / "writer.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "asymflux.cli", "demo-live", str(src), "--frames",
         str(N_FRAMES), "--interval-s", str(INTERVAL_S), "--format", "h5"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        end = time.monotonic() + 60
        while not (src / "live.json").is_file() and proc.poll() is None \
                and time.monotonic() < end:
            time.sleep(0.05)
        assert (src / "live.json").is_file(), (tmp_path / "writer.log").read_text()
        proc.src = src
        yield proc
    finally:
        _kill(proc)
        log.close()


def _panel(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("asymflux", "Curate particles")
    return viewer, widget.live_panel


def test_live_switch_follows_demo_live_and_ends_equal_to_analyze(make_napari_viewer, qtbot,
                                                                 writer, tmp_path):
    from asymflux.analysis import registered_differential
    from asymflux.cli import main
    from asymflux.live import open_movie

    viewer, panel = _panel(make_napari_viewer)
    src = writer.src
    manifest = json.loads((src / "live.json").read_text())
    marker = src / manifest["finished_marker"]
    panel.source.value = str(src)
    # hold the writer while the feed opens the source in its thread (the first poll imports
    # the analysis: seconds on a busy machine); it keeps its pace after SIGCONT
    os.killpg(writer.pid, signal.SIGSTOP)
    try:
        panel.live.value = True  # the switch, as a click sets it
        assert panel.worker is not None
        qtbot.waitUntil(lambda: panel.feed.live is not None, timeout=60_000)
    finally:
        os.killpg(writer.pid, signal.SIGCONT)
    seen = []

    def intermediate():
        snap = panel.snapshot
        if snap is not None and snap.state == "running" and 2 <= snap.n_frames < N_FRAMES \
                and writer.poll() is None and not marker.exists():
            seen.append((snap.n_frames, panel.d_table(), len(panel.dI_layer.data)))
            return True
        return False

    qtbot.waitUntil(intermediate, timeout=90_000)
    n, table, n_layer = seen[0]
    assert n_layer == n  # the dI layer holds the frames measured so far
    assert len(table) == panel.snapshot.n_particles > 0  # every particle has its d
    assert np.isfinite(table["offset_nm"].astype(float)).any()
    assert panel.labels_layer is not None and panel.kymograph_layer is not None
    assert panel.viewer.dims.current_step[0] == n_layer - 1  # the viewer shows the latest frame
    shot = os.environ.get("ASYMFLUX_LIVE_SCREENSHOT")
    if shot:
        viewer.window.resize(1900, 1250)
        viewer.reset_view()
        qtbot.wait(300)
        viewer.window.screenshot(path=shot, canvas_only=False)

    qtbot.waitUntil(lambda: panel.snapshot.state == "finished", timeout=120_000)
    qtbot.waitUntil(lambda: panel.worker is None, timeout=10_000)  # the thread ended
    assert not panel.live.value  # the switch goes off by itself at the end
    assert writer.wait(30) == 0

    # asymflux analyze on the finished files: the widget's numbers, to 1e-9
    batch = tmp_path / "batch"
    assert main(manifest["analyze"].split()[1:-1] + [str(batch)]) == 0
    ts = pd.read_csv(batch / "timeseries.csv")
    particles = pd.read_csv(batch / "particles.csv")
    last = ts.sort_values(["particle_id", "frame"]).groupby("particle_id").tail(1)
    shown = panel.d_table()
    assert shown["particle_id"].astype(int).tolist() == last["particle_id"].tolist()
    assert (shown["frame"].astype(int) == N_FRAMES - 1).all()
    for col in ("capacity_mAh_g", "offset_nm", "offset_norm"):
        np.testing.assert_allclose(shown[col].astype(float), last[col].to_numpy(float),
                                   rtol=0, atol=1e-9, err_msg=col)
    assert shown["classification"].tolist() == particles["classification"].tolist()
    # the whole live curves too (the plot's data): the batch time series
    live_ts = panel.snapshot.timeseries
    for col in ("offset_nm", "capacity_mAh_g", "unreacted_fraction"):
        np.testing.assert_allclose(live_ts[col].to_numpy(float), ts[col].to_numpy(float),
                                   rtol=0, atol=1e-9, err_msg=col)
    # the dI layer, frame by frame, is the registered differential movie of the finished file
    movie = open_movie(src / manifest["movie"])
    movie.finish()
    stack = movie.read(0, movie.poll())
    movie.close()
    dI, _ = registered_differential(np.asarray(stack, float), panel.snapshot.labels)
    assert panel.dI_layer.data.shape == dI.shape
    np.testing.assert_allclose(panel.dI_layer.data, dI, atol=1e-5)


def test_switching_live_off_ends_the_thread(make_napari_viewer, qtbot, writer):
    _, panel = _panel(make_napari_viewer)
    panel.source.value = str(writer.src)
    panel.live.value = True
    worker = panel.worker
    qtbot.waitUntil(lambda: panel.snapshot is not None and panel.snapshot.n_frames >= 1,
                    timeout=90_000)
    panel.live.value = False
    qtbot.waitUntil(lambda: panel.worker is None and not worker.is_running, timeout=10_000)
    n = panel.snapshot.n_frames
    assert writer.poll() is None  # stopped while the writer still writes
    time.sleep(2.5 * INTERVAL_S)
    qtbot.wait(100)
    assert panel.snapshot.n_frames == n  # nothing followed after the switch went off
    assert "stopped" in panel.status.value


def test_live_switch_without_a_source_says_so(make_napari_viewer, tmp_path, qtbot):
    _, panel = _panel(make_napari_viewer)
    panel.live.value = True
    assert panel.worker is None and not panel.live.value
    assert "source" in panel.status.value
    panel.idle_s.value = 1
    panel.poll_s.value = 0.1
    panel.source.value = str(tmp_path / "nothing")
    panel.live.value = True
    qtbot.waitUntil(lambda: panel.worker is None, timeout=20_000)
    assert panel.snapshot.state == "error" and "nothing to follow" in panel.status.value
