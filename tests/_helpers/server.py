"""Shared by the browser tests and ``benchmarks/bench_dashboard.py``: serve the dashboards in a
subprocess on a free localhost port, drive Debian chromium, read what the plots show."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("ASYMFLUX_CHROMIUM") or "/usr/bin/chromium"  # tools/prereqs.py
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DASHBOARDS = [str(ROOT / "dashboards" / "model_explorer.py"), str(ROOT / "dashboards" / "cohort.py")]

# Per plot: its title text and a checksum of every number its data sources hold.
PLOT_SIGNATURES_JS = """() => {
  const out = [];
  for (const doc of Bokeh.documents) for (const m of doc.all_models) {
    if (!m.renderers || !m.title || m.title.text === undefined) continue;
    let s = 0, n = 0;
    for (const r of m.renderers) {
      const ds = r.data_source;
      if (!ds || !ds.data) continue;
      const data = ds.data instanceof Map ? ds.data : new Map(Object.entries(ds.data));
      for (const [k, v] of data) {
        const stack = [v];
        while (stack.length && n < 500000) {
          const x = stack.pop();
          if (typeof x === 'number') { if (isFinite(x)) { s += x; n++; } }
          else if (x && typeof x !== 'string' && x.length !== undefined) {
            for (let i = 0; i < x.length; i++) stack.push(x[i]);
          }
        }
      }
    }
    out.push([m.title.text, s.toPrecision(10), n]);
  }
  return out;
}"""


# Records, in the page, when each plot's data last changed and was painted (two animation
# frames after the change), and when a key was last released: a timing that costs the page
# nothing between events. (Polling PLOT_SIGNATURES_JS walks every number of every plot, ~20 ms
# of the page's main thread a call: on two cores that slows the server being timed.)
CHANGE_RECORDER_JS = """() => {
  if (window.__asymflux) return;
  const rec = window.__asymflux = {keyup: null, painted: []};
  const seen = new Set();
  const attach = (plot, ds) => {
    if (!ds || seen.has(ds.id + '/' + plot.id)) return;
    seen.add(ds.id + '/' + plot.id);
    const note = () => requestAnimationFrame(() => requestAnimationFrame(
      () => rec.painted.push([plot.id, plot.title.text, performance.now()])));
    ds.change.connect(note);
    if (ds.patching) ds.patching.connect(note);
    if (ds.streaming) ds.streaming.connect(note);
  };
  for (const doc of Bokeh.documents) for (const m of doc.all_models) {
    if (!m.renderers || !m.title || m.title.text === undefined) continue;
    for (const r of m.renderers) attach(m, r.data_source);
    m.change.connect(() => { for (const r of m.renderers) attach(m, r.data_source); });
  }
  document.addEventListener('keyup', () => { rec.keyup = performance.now(); rec.painted = []; },
                            true);
}"""
CHANGES_JS = "() => window.__asymflux"


def painted_since_keyup(page) -> dict:
    """Seconds from the last key release to the first paint of each plot kind changed since
    (:func:`map_groups` kinds), from :data:`CHANGE_RECORDER_JS`'s record."""
    rec = page.evaluate(CHANGES_JS) or {}
    t0 = rec.get("keyup")
    out = {}
    if t0 is None:
        return out
    for _id, title, t in rec.get("painted", []):
        for kind, rows in map_groups([(title, 0, 0)]).items():
            if rows and kind not in out:
                out[kind] = (t - t0) / 1000.0
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent_fn():
    """A ``preexec_fn`` that makes the child get SIGINT when its parent dies (Linux
    PR_SET_PDEATHSIG), so that a server whose test session was killed stops too (on SIGINT it
    shuts its worker pool down); None elsewhere. libc is loaded here, in the parent: the
    child, between fork and exec, only makes the system call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, int(signal.SIGINT))  # 1 = PR_SET_PDEATHSIG


def kill_group(proc: subprocess.Popen, *, grace_s: float = 3.0) -> None:
    """Stop ``proc`` and every process of its process group (it must lead one: started with
    ``start_new_session=True``): SIGTERM to all of them, then SIGKILL after ``grace_s``."""
    pgid = proc.pid
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break  # the whole group is gone
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            proc.poll()
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            continue
        break
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


@contextmanager
def serve(env_cache: str, *, timeout_s: float = 120.0, log_path=None, dashboards=None,
          probe: str = "/model_explorer", started: list | None = None, env: dict | None = None):
    """``panel serve`` both dashboards (or the files ``dashboards``); yields the base URL.
    Ready when ``probe`` answers: a page (which opens a session, running its app) or, to
    leave the first page to the test, a static file (:data:`STATIC_PROBE`). The server, its
    worker processes and anything else they start are killed at the end (their own process
    group), also when the test fails or the run is interrupted. ``started``: a list the
    server's ``Popen`` is appended to; ``env``: more environment variables."""
    port = free_port()
    env = dict(os.environ, ASYMFLUX_CACHE=str(env_cache), PYTHONUNBUFFERED="1", **(env or {}))
    cmd = [sys.executable, "-m", "panel", "serve", *(dashboards or DASHBOARDS), "--port", str(port),
           "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}",
           "--num-procs", "1"]
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    if log_path:
        _SERVER_LOGS.append(log_path)
    try:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent_fn())
    except BaseException:
        if log_path:
            log.close()
        raise
    url = f"http://127.0.0.1:{port}"
    if started is not None:
        started.append(proc)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"panel serve exited with code {proc.returncode}")
            try:
                urllib.request.urlopen(url + probe, timeout=60).read(100)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"panel serve did not answer within {timeout_s} s") from None
                time.sleep(0.5)
        yield url
    finally:
        kill_group(proc)
        if log_path:
            log.close()


STATIC_PROBE = "/static/js/bokeh.min.js"
"""A file ``panel serve`` serves without running any app (see :func:`serve`)."""

FIG5E_SHOWN_JS = """() => {
  window.__fig5e = null;
  const iv = setInterval(() => {
    if (!window.Bokeh) return;
    for (const doc of Bokeh.documents) for (const m of doc.all_models) {
      if (!m.title || !String(m.title.text || '').startsWith('Fig. 5e') || !m.renderers) continue;
      if (m.renderers.some(r => r.data_source && r.data_source.get_length
                                && r.data_source.get_length() > 0)) {
        window.__fig5e = (performance.timeOrigin + performance.now()) / 1000;
        clearInterval(iv);
        return;
      }
    }
  }, 20);
}"""
"""Installed in a cohort page (once ``window.Bokeh`` exists): polls it every 20 ms, on the
page's own thread, until a figure titled "Fig. 5e..." has a renderer with data, and sets
``window.__fig5e`` to that wall-clock second (``time.time()``'s clock): the page's time to
Fig. 5e without the test's polling of every plot (:func:`signatures`) slowing it."""


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def watch_errors(page) -> list:
    """Collect console errors and uncaught page errors into the returned list."""
    errors: list = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    return errors


def signatures(page) -> list:
    try:
        return sorted(map(tuple, page.evaluate(PLOT_SIGNATURES_JS)))
    except Exception:  # noqa: BLE001 - page between documents
        return []


_SERVER_LOGS: list = []
"""The log files of the servers :func:`serve` started (the newest last)."""


def _server_log_tail(n_chars: int = 4000) -> str:
    """The end of the newest server log, for a timeout's message: what the server was doing
    (with ``ASYMFLUX_DASHBOARD_TIMING`` set, when each plot's runs were done)."""
    if not _SERVER_LOGS:
        return ""
    try:
        text = Path(_SERVER_LOGS[-1]).read_bytes()[-n_chars:].decode(errors="replace")
    except OSError:
        return ""
    return f"\n--- end of the server's log {_SERVER_LOGS[-1]} ---\n{text}"


def wait_for(page, predicate, *, timeout_s: float, poll_s: float = 0.05):
    """Poll ``predicate(signatures(page))`` until true; return (elapsed s, signatures)."""
    t0 = time.monotonic()
    while True:
        sig = signatures(page)
        if predicate(sig):
            return time.monotonic() - t0, sig
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"plots did not reach the expected state in {timeout_s} s; "
                               f"titles: {[s[0] for s in sig]}" + _server_log_tail())
        page.wait_for_timeout(int(poll_s * 1000))


def groups(sig, prefixes) -> dict:
    """Signatures grouped by title prefix."""
    return {p: sorted(s for s in sig if str(s[0]).startswith(p)) for p in prefixes}


EXPLORER_GROUPS = ("100 mA/g", "d(capacity)", "measured line-cut", "simulated", "Fig. 5b")


def explorer_ready(sig) -> bool:
    titles = [str(s[0]) for s in sig]
    return (sum(" min" in t and "mA/g" in t for t in titles) >= 4
            and any(t.startswith("d(capacity)") for t in titles)
            and any(t.startswith("Fig. 5b") for t in titles)
            and any(t.startswith("simulated") for t in titles))


def particle_loaded(sig) -> bool:
    """The explorer's dataset is analysed and its particle read: the measured line-cut names a
    particle (before, the simulated twin has nothing to be computed from)."""
    return explorer_ready(sig) and any(
        str(s[0]).startswith("measured line-cut, particle ")
        and not str(s[0]).endswith("None") and s[2] > 0 for s in sig)


def map_groups(sig) -> dict:
    """Explorer plots by kind: maps, d(capacity), measured/simulated line-cut, Fig. 5b, the
    arc's flux ratio and the voltage."""
    kinds = {"maps": lambda t: " min" in t and ("mA/g" in t or t.endswith(PREVIEW_MARK + ")"))
             and not t.startswith("Fig"),
             "d(capacity)": lambda t: t.startswith("d(capacity)"),
             "measured": lambda t: t.startswith("measured line-cut"),
             "simulated": lambda t: t.startswith("simulated"),
             "fig5b": lambda t: t.startswith("Fig. 5b"),
             "flux": lambda t: t.startswith("flux ratio of the arc"),
             "voltage": lambda t: t.startswith("voltage vs Li")}
    return {k: sorted(s for s in sig if f(str(s[0]))) for k, f in kinds.items()}


PREVIEW_MARK = "coarse preview"
"""In a plot's title: it shows the coarse preview (the fine result is still running)."""


def paints_since_keyup(page) -> dict:
    """From :data:`CHANGE_RECORDER_JS`'s record, seconds from the last key release to the
    paints of each plot kind: ``{kind: (first paint, first paint of the final result)}``
    (the final result: a title without :data:`PREVIEW_MARK`; None when not painted yet)."""
    rec = page.evaluate(CHANGES_JS) or {}
    t0 = rec.get("keyup")
    out: dict = {}
    if t0 is None:
        return out
    for _id, title, t in rec.get("painted", []):
        for kind, rows in map_groups([(title, 0, 0)]).items():
            if not rows:
                continue
            s = (t - t0) / 1000.0
            first, final = out.get(kind, (None, None))
            out[kind] = (s if first is None else first,
                         s if final is None and PREVIEW_MARK not in str(title) else final)
    return out


VISIBLE_HANDLES = ".noUi-handle:visible"
"""The explorer's slider handles on screen, in page order: η (or, with the kinetic surface,
the film resistance), blocked fraction, rate, arc centre, diffusivity scale."""

EXPLORER_DATASET = "aged"
COHORT_DATASETS = ("cohort-fresh-1", "cohort-3-4.3V-50mA_g-1")
"""Small demo datasets used by the tests (and the benchmark)."""


def write_large_lazy_dataset(path, *, shape=(4000, 2048, 2048)) -> Path:
    """A dataset folder whose ``stack.zarr`` declares ``shape`` (uint16; 4000 frames of 2048 x
    2048: 34 GB) with only its first and last frames written (three bright disks); the other
    chunks are never written and read as the fill value. Takes a few MB of disk."""
    import numpy as np
    import pandas as pd
    import zarr

    from asymflux import io

    path = Path(path)
    n, h, w = shape
    small = io.Dataset(stack=np.full((2, 8, 8), 1000, np.uint16), time_s=np.array([0.0, 1.0]),
                       pixel_nm=65.0, echem=None,
                       metadata={"name": "large-lazy", "material": "NMC", "ageing": "fresh",
                                 "rate_mA_g": 100.0, "cell": "test"})
    io.write_dataset(small, path, stack_format="zarr")
    attrs = dict(zarr.open_array(path / "stack.zarr", mode="r").attrs)
    import shutil

    shutil.rmtree(path / "stack.zarr")
    z = zarr.open_array(path / "stack.zarr", mode="w", shape=(n, h, w), chunks=(1, h, w),
                        dtype="uint16", fill_value=1000)
    attrs["time_s"] = [float(t) for t in range(n)]
    attrs["fill_value_is_data"] = True  # sparse on purpose: read, with a warning (#28)
    z.attrs.update(attrs)
    yy, xx = np.mgrid[:h, :w]
    img = np.full((h, w), 1000, np.uint16)
    for cy, cx in ((h // 6, w // 6), (h // 2, w // 2), (4 * h // 5, w // 3)):
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < (min(h, w) // 60) ** 2] = 1500
    z[0] = img
    z[n - 1] = img
    pd.DataFrame({"frame": np.arange(n), "time_s": np.arange(n, dtype=float)}).to_csv(
        path / "frames.csv", index=False)
    return path
