"""Make the README screenshots from the running applications.

    .venv/bin/python tools/screenshots.py                 # all three
    .venv/bin/python tools/screenshots.py napari cohort   # some of them

- ``docs/images/napari_plugin.png``: napari (under ``xvfb-run`` when there is no display)
  with the demo ``aged`` dataset, the asymflux dock widget, the dI layer, particle 1
  selected and its d(capacity) plotted.
- ``docs/images/model_explorer.png`` / ``docs/images/cohort_browser.png``: ``panel serve``
  of ``dashboards/model_explorer.py`` / ``dashboards/cohort.py`` in its own process group
  (killed afterwards), captured by Debian's chromium driven with playwright once every
  plot holds data.

The demo data are built on first use (cached, ``$ASYMFLUX_CACHE``); the cohort page
analyses all cohort datasets (about a minute on two cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
CHROMIUM = os.environ.get("ASYMFLUX_CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NAPARI_SIZE = (1600, 1250)
DOCK_WIDTH = 560
PAGE_SIZE = {"width": 1500, "height": 1100}

# Titles of the Bokeh plots whose data sources hold at least one number.
TITLES_WITH_DATA_JS = """() => {
  const out = [];
  if (!window.Bokeh) return out;
  for (const doc of Bokeh.documents) for (const m of doc.all_models) {
    if (!m.renderers || !m.title || m.title.text === undefined) continue;
    let n = 0;
    for (const r of m.renderers) {
      const ds = r.data_source;
      if (!ds || !ds.data) continue;
      const data = ds.data instanceof Map ? ds.data : new Map(Object.entries(ds.data));
      for (const v of data.values()) if (v && v.length) n += v.length;
    }
    if (n) out.push(String(m.title.text));
  }
  return out;
}"""


def explorer_ready(titles) -> bool:
    return (sum(" min" in t and "mA/g" in t for t in titles) >= 4
            and any(t.startswith("d(capacity)") for t in titles)
            and any(t.startswith("Fig. 5b") for t in titles)
            and any(t.startswith("simulated") for t in titles))


def cohort_ready(titles) -> bool:
    return (any(t.startswith("Fig. 5e") for t in titles)
            and any(": frame " in t for t in titles)
            and any(t.startswith("line-cut kymograph") for t in titles))


# name: (app file, page, ready when, image, seconds to wait for it)
PAGES = {
    "model-explorer": ("dashboards/model_explorer.py", "/model_explorer", explorer_ready,
                       "model_explorer.png", 600.0),
    "cohort": ("dashboards/cohort.py", "/cohort", cohort_ready, "cohort_browser.png", 1200.0),
}


# ----------------------------------------------------------------------------- napari


def napari_screenshot(out: Path, *, particle_id: int = 1, frame: int = 20) -> Path:
    """napari with the plugin on the demo aged dataset, ``particle_id`` selected and its
    d(capacity) plotted, the dI layer at ``frame``; saved to ``out``."""
    import napari
    from PIL import Image
    from qtpy.QtCore import Qt

    viewer = napari.Viewer(show=True)
    try:
        viewer.window._qt_window.resize(*NAPARI_SIZE)
        viewer.open_sample("asymflux", "aged")
        dock, widget = viewer.window.add_plugin_dock_widget("asymflux", "Curate particles")
        if widget.curation is None:
            widget.attach(viewer.layers["aged"])
        widget.show_differential()
        widget._particle.value = particle_id  # as when clicking the particle in the layer
        table = widget.show_particle(particle_id)
        viewer.layers.selection.active = widget.labels_layer
        viewer.dims.set_point(0, frame)
        _settle()
        viewer.window._qt_window.resizeDocks([dock], [DOCK_WIDTH], Qt.Orientation.Horizontal)
        _settle()
        viewer.reset_view()
        _settle()
        d = table["offset_nm"].to_numpy(float)
        print(f"particle {particle_id}: d from {d[0]:.0f} to max {max(d[d == d]):.0f} nm, "
              f"{int((d == d).sum())} of {d.size} frames defined")
        image = viewer.screenshot(canvas_only=False, flash=False)
        Image.fromarray(image[..., :3]).save(out)
    finally:
        viewer.close()
    return out


def _settle(seconds: float = 1.0) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def _run_napari_here_or_under_xvfb(out: Path) -> None:
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or \
            os.environ.get("QT_QPA_PLATFORM"):
        napari_screenshot(out)
        print(f"wrote {out}")
        return
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        raise SystemExit("no display and no xvfb-run: install xvfb (tools/install-system-deps.sh)")
    cmd = [xvfb, "-a", "-s", f"-screen 0 {NAPARI_SIZE[0] + 100}x{NAPARI_SIZE[1] + 100}x24",
           sys.executable, __file__, "napari", "--out-napari", str(out)]
    subprocess.run(cmd, check=True)


# ----------------------------------------------------------------------------- dashboards


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        try:  # the server is gone; its workers too?
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break


def dashboard_screenshot(name: str, out: Path, *, timeout_s: float | None = None) -> Path:
    """``panel serve`` one dashboard, open it in chromium, wait for every plot, save ``out``
    (on a timeout, what the page showed goes to ``out`` with ``.timeout.png``)."""
    from playwright.sync_api import sync_playwright

    app, route, ready, _, wait_s = PAGES[name]
    timeout_s = wait_s if timeout_s is None else timeout_s
    port = _free_port()
    cmd = [sys.executable, "-m", "panel", "serve", str(ROOT / app), "--port", str(port),
           "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}",
           "--num-procs", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"panel serve exited with code {proc.returncode}")
            try:
                urllib.request.urlopen(url + "/static/js/bokeh.min.js", timeout=10).read(10)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("panel serve did not answer within 120 s") from None
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=PAGE_SIZE)
                page.goto(url + route, timeout=timeout_s * 1000)
                deadline = time.monotonic() + timeout_s
                titles = []
                while not ready(titles):
                    if time.monotonic() > deadline:
                        page.screenshot(path=str(out.with_suffix(".timeout.png")), full_page=True)
                        raise TimeoutError(f"{route}: plots not ready in {timeout_s} s: {titles}")
                    page.wait_for_timeout(500)
                    try:
                        titles = page.evaluate(TITLES_WITH_DATA_JS)
                    except Exception:  # noqa: BLE001 - page between documents
                        titles = []
                page.wait_for_timeout(2000)  # let the last plots paint
                page.screenshot(path=str(out), full_page=True)
                print(f"{route}: {len(titles)} plots: {', '.join(sorted(titles))}")
            finally:
                browser.close()
    finally:
        _kill_group(proc)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = ["napari", *PAGES]
    parser.add_argument("which", nargs="*", metavar="NAME",
                        help=f"screenshots to make: {', '.join(names)} (default: all)")
    parser.add_argument("--out-napari", type=Path, default=IMAGES / "napari_plugin.png")
    args = parser.parse_args(argv)
    unknown = [w for w in args.which if w not in names]
    if unknown:  # (argparse's choices= refuses an empty list for nargs="*" on Python 3.11)
        parser.error(f"unknown screenshot(s) {', '.join(unknown)}: choose from {', '.join(names)}")
    which = args.which or names
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name in which:
        if name == "napari":
            _run_napari_here_or_under_xvfb(args.out_napari)
        else:
            out = IMAGES / PAGES[name][3]
            dashboard_screenshot(name, out)
            print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
