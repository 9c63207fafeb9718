"""The Live page following `asymflux demo-live` (a real writer process): in Python, to the
numbers of `asymflux analyze`, and served alone in a fresh `panel serve`, in chromium.

``ASYMFLUX_LIVE_SCREENSHOT=/tmp/live_page.png`` keeps a screenshot of the page mid-run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests._helpers.server import CHROMIUM, ROOT, STATIC_PROBE, launch, serve, watch_errors

N_FRAMES = 12
LOG_PROBLEMS = re.compile(r"Traceback|\bERROR\b|Error running|No plotting extension|Exception")


def _start_writer(src, log, *, frames=N_FRAMES, interval_s=1.0):
    return subprocess.Popen(
        [sys.executable, "-m", "asymflux.cli", "demo-live", str(src), "--frames", str(frames),
         "--interval-s", str(interval_s), "--format", "h5"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _kill(proc):
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _wait(predicate, timeout_s, what, poll_s=0.05):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}")


# The page's text, shadow roots included (Bokeh renders into them; body.innerText misses it).
PAGE_TEXT_JS = """() => { const out = []; const walk = (root) => {
  const tw = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  while (tw.nextNode()) out.push(tw.currentNode.nodeValue);
  for (const el of root.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot); };
  walk(document); return out.join(' '); }"""


def _page_text(page) -> str:
    return page.evaluate(PAGE_TEXT_JS)


@pytest.fixture
def writer(tmp_path):
    """``asymflux demo-live`` writing into ``tmp_path/live`` (killed at teardown)."""
    from asymflux import datasets

    datasets.path("fresh")  # simulated once (cached), not inside the writer's timing
    src = tmp_path / "live"
    log = open(tmp_path / "writer.log", "w")  # noqa: SIM115
    proc = _start_writer(src, log)
    try:
        _wait(lambda: (src / "live.json").is_file() or proc.poll() is not None, 60,
              "demo-live to start")
        assert (src / "live.json").is_file(), (tmp_path / "writer.log").read_text()
        proc.src = src
        proc.manifest = json.loads((src / "live.json").read_text())
        yield proc
    finally:
        _kill(proc)
        log.close()


def _analyze(manifest, out):
    from asymflux.cli import main

    assert main(manifest["analyze"].split()[1:-1] + [str(out)]) == 0
    return pd.read_csv(out / "particles.csv"), pd.read_csv(out / "timeseries.csv")


def test_live_page_follows_demo_live_to_the_numbers_of_analyze(writer, tmp_path):
    from asymflux.views import LivePage

    page = LivePage(source=str(writer.src), poll_s=0.2)
    assert page.feed is None
    # hold the writer while the feed opens the source (its first poll imports the analysis:
    # seconds on a busy machine); it keeps its pace after SIGCONT, so frames land one by one
    os.killpg(writer.pid, signal.SIGSTOP)
    try:
        page.settings.live = True  # the switch
        assert page.feed is not None
        page.step()
    finally:
        os.killpg(writer.pid, signal.SIGCONT)
    marker = writer.src / writer.manifest["finished_marker"]
    seen = []

    def intermediate():
        snap = page.step()
        if snap is not None and snap.state == "running" and 2 <= snap.n_frames < N_FRAMES \
                and writer.poll() is None and not marker.exists():
            seen.append((snap, page.table()))
            return True
        return False

    _wait(intermediate, 90, "intermediate results while the writer writes", poll_s=0.2)
    snap, table = seen[0]
    assert len(table) == snap.n_particles > 0
    assert (table["frame"] == snap.n_frames - 1).all()
    assert snap.last_dI is not None and snap.kymographs
    pn_root = page.__panel__().get_root()  # the page's plots build from an intermediate state
    assert pn_root is not None

    final = page.follow(timeout_s=120)
    assert final.state == "finished", final.message
    assert page.feed is None and not page.settings.live  # the switch goes off at the end
    assert writer.wait(30) == 0
    particles, ts = _analyze(writer.manifest, tmp_path / "batch")
    last = ts.sort_values(["particle_id", "frame"]).groupby("particle_id").tail(1)
    shown = page.table()
    assert shown["particle_id"].tolist() == last["particle_id"].tolist()
    for col in ("capacity_mAh_g", "offset_nm", "offset_norm", "unreacted_fraction"):
        np.testing.assert_allclose(shown[col].to_numpy(float), last[col].to_numpy(float),
                                   rtol=0, atol=1e-9, err_msg=col)
    assert shown["classification"].tolist() == particles["classification"].tolist()
    for col in ("offset_nm", "capacity_mAh_g"):  # the d(capacity) curves: every frame
        np.testing.assert_allclose(final.timeseries[col].to_numpy(float),
                                   ts[col].to_numpy(float), rtol=0, atol=1e-9, err_msg=col)
    assert max(final.max_abs_difference.values()) <= 1e-9  # the live rows were the batch's
    kymo = final.kymographs[int(last["particle_id"].iloc[0])][0]
    assert kymo.shape[0] == N_FRAMES  # a kymograph row per frame
    assert page.__panel__().get_root() is not None


def test_live_page_without_a_source_says_so():
    from asymflux.views import LivePage

    page = LivePage()
    page.settings.live = True
    assert page.feed is None and not page.settings.live
    assert page.alert.visible and "source" in page.alert.object


@pytest.mark.browser
def test_live_page_served_alone_follows_in_chromium(tmp_path, session_cache):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    from asymflux import datasets

    datasets.path("fresh")
    src = tmp_path / "live"
    log_path = tmp_path / "serve.log"
    wlog = open(tmp_path / "writer.log", "w")  # noqa: SIM115
    proc = None
    try:
        with serve(session_cache, log_path=log_path, probe=STATIC_PROBE,
                   dashboards=[str(ROOT / "dashboards" / "live.py")]) as url, \
                sync_playwright() as p:
            browser = launch(p)
            try:
                page = browser.new_page(viewport={"width": 1450, "height": 1100})
                page.set_default_timeout(120_000)
                errors = watch_errors(page)
                query = urllib.parse.urlencode({"source": str(src), "poll_s": "0.5"})
                page.goto(f"{url}/live?{query}")
                page.get_by_text("Live is off.").wait_for()
                proc = _start_writer(src, wlog, frames=20)
                _wait(lambda: (src / "live.json").is_file() or proc.poll() is not None, 60,
                      "demo-live to start")
                page.locator(".bk-Switch").first.click()
                # the particle count and a d value appear while the writer still writes
                page.get_by_text(re.compile(r"\d+ particles")).first.wait_for()
                page.get_by_text(re.compile(r"following movie\.h5: \d+ frame")).first.wait_for()
                running = proc.poll() is None
                text = _page_text(page)
                n = int(re.search(r"following movie\.h5: (\d+) frame", text).group(1))
                assert running and 1 <= n < 20, f"no intermediate state: {n} frames shown"
                # the particles of the demo (its masks: 5); the 38-px speck the detection counted
                # as a sixth particle before its default minimum area (6 PSF areas) is not one
                assert re.search(r"\b5 particles\b", text), re.findall(r".{0,60}particles", text)
                shot = os.environ.get("ASYMFLUX_LIVE_SCREENSHOT")
                if shot:
                    page.wait_for_timeout(1000)
                    page.screenshot(path=shot, full_page=True)
                page.get_by_text(re.compile("finished: 20 frame")).first.wait_for()
                assert "asymmetric" in _page_text(page)
                assert not errors, errors
            finally:
                browser.close()
    finally:
        _kill(proc)
        wlog.close()
    log = log_path.read_text(errors="replace")
    assert not LOG_PROBLEMS.search(log), log[-3000:]


def test_live_page_downloads_its_tables():
    """The Live page's tables as CSV files, as shown at the click; none before a frame."""
    import base64
    import io

    from asymflux._live_feed import LiveSnapshot
    from asymflux.views import LivePage

    def download(button):
        button._clicks += 1
        return base64.b64decode(button.data.split(",", 1)[1]), button.filename

    page = LivePage(source="/data/run7/live/")
    assert set(page.downloads) == {"table.csv", "timeseries.csv", "particles.csv"}
    with pytest.raises(ValueError, match="nothing to download"):
        page.downloads["table.csv"].callback()
    ts = pd.DataFrame({"particle_id": [1, 1, 2, 2], "frame": [0, 1, 0, 1],
                       "capacity_mAh_g": [0.0, 5.0, 0.0, 5.0],
                       "offset_nm": [0.0, 12.0, 0.0, 1.0], "offset_norm": [0.0, 0.02, 0, 0.001],
                       "unreacted_fraction": [1.0, 0.8, 1.0, 0.9]})
    particles = pd.DataFrame({"particle_id": [1, 2], "classification": ["asymmetric",
                                                                        "symmetric"]})
    page.snapshot = LiveSnapshot(state="running", n_frames=2, timeseries=ts,
                                 particles=particles, labels=np.array([[0, 1], [2, 0]]))
    files = {k: download(b) for k, b in page.downloads.items()}
    table, name = files["table.csv"]
    pd.testing.assert_frame_equal(pd.read_csv(io.BytesIO(table)), page.table(),
                                  check_dtype=False)
    assert name == "live_table_live_2frames.csv"
    pd.testing.assert_frame_equal(pd.read_csv(io.BytesIO(files["timeseries.csv"][0])), ts)
    got = pd.read_csv(io.BytesIO(files["particles.csv"][0]))
    assert got["classification"].tolist() == ["asymmetric", "symmetric"]
    page.snapshot = LiveSnapshot(state="finished", n_frames=2, timeseries=ts,
                                 particles=particles)
    assert download(page.downloads["timeseries.csv"])[1] == "live_timeseries_live_final.csv"
    page.__panel__()  # the buttons are in the page
