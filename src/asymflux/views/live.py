"""Live page: follow a movie and its cycler file while the instrument writes them.

The latest differential frame, every particle's d(capacity), the classification table and
the chosen particle's line-cut kymograph, updated as frames land. The page drives an
:class:`asymflux._live_feed.LiveFeed` (over :class:`asymflux.live.LiveAnalysis`); in a
server a periodic callback (``pn.state.add_periodic_callback``) runs each poll in a thread
(:func:`asymflux.views._runtime.run_in_thread`), never in the Bokeh event loop, and shows
the result from the loop. When the writer is done the tables are those of ``asymflux
analyze`` of the finished files.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import numpy as np
import pandas as pd
import panel as pn
import param

from .. import plots
from . import _bokeh as B
from . import _runtime as R
from ._bokehjs_patch import skip_unchanged_stylesheets

TABLE_COLUMNS = ["particle_id", "classification", "frame", "capacity_mAh_g", "offset_nm",
                 "offset_norm", "unreacted_fraction"]
"""Columns of the page's table (:meth:`asymflux._live_feed.LiveSnapshot.d_table`)."""
_DTYPES = {"particle_id": "int64", "frame": "int64", "classification": "object"}


class LiveSettings(param.Parameterized):
    """What the Live page follows and how (Panel-free: usable from a notebook or a test)."""

    source = param.String(default="", doc=(
        "A demo-live folder, an .h5 / .zarr movie or a TIFF folder being written."))
    poll_s = param.Number(default=1.0, bounds=(0.1, 60), doc="Seconds between looks.")
    idle_timeout_s = param.Number(default=60.0, bounds=(1, 3600), doc=(
        "Finish when nothing new arrived for this long (as asymflux watch)."))
    live = param.Boolean(default=False, doc="Follow the source (the switch).")
    particle = param.Selector(default=None, objects=[], check_on_set=False, allow_None=True,
                              doc="The particle whose kymograph and line-cut are shown.")


class LivePage(pn.viewable.Viewer):
    """The Live page over :class:`LiveSettings`.

    ``LivePage(source="live/")``; switch ``settings.live`` on to follow. Outside a server
    (notebooks, tests) nothing runs by itself: call :meth:`step` (one poll) or
    :meth:`follow` (until the end).
    """

    settings = param.ClassSelector(class_=LiveSettings, doc="What is followed.")
    snapshot = param.Parameter(default=None, doc="The last LiveSnapshot shown.")

    def __init__(self, settings=None, **params):
        B.load_extensions("tabulator")
        names = set(LiveSettings.param) - {"name"}
        given = {k: params.pop(k) for k in list(params) if k in names}
        settings = settings or LiveSettings(**given)
        super().__init__(settings=settings, **params)
        self.feed = None
        self._callback = None
        self._busy = False
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, width=1100)
        self.status = pn.pane.Markdown("Live is off.", width=1100)
        s = self.settings.param
        self.source_input = pn.widgets.TextInput.from_param(
            s.source, label="source (a demo-live folder, .h5 / .zarr movie or TIFF folder)",
            width=560)
        self.poll_input = pn.widgets.FloatInput.from_param(s.poll_s, label="poll every (s)",
                                                           width=110, step=0.1)
        self.idle_input = pn.widgets.FloatInput.from_param(s.idle_timeout_s,
                                                           label="idle timeout (s)", width=120)
        self.switch = pn.widgets.Switch.from_param(s.live, label="Live", margin=(28, 10))
        self.particle_select = pn.widgets.Select.from_param(s.particle, label="particle",
                                                            width=160)
        self.table_widget = pn.widgets.Tabulator(
            pn.bind(self._table, self.param.snapshot), disabled=True, show_index=False,
            width=1000, height=220, layout="fit_columns",
            titles={"particle_id": "particle", "capacity_mAh_g": "capacity (mAh/g)",
                    "offset_nm": "d (nm)", "offset_norm": "d / R_eq",
                    "unreacted_fraction": "unreacted fraction"})
        self.downloads = self._make_downloads()  # file name -> button: CSV/table
        self.settings.param.watch(self._on_switch, "live")
        R.on_session_end(self.stop)
        if R.in_server():  # the first poll then finds the analysis imported
            R.run_in_thread(_warm_up)
        skip_unchanged_stylesheets()  # the browser's style work per update (in a server)

    # ------------------------------------------------------------------ following
    def _on_switch(self, event):
        if event.new:
            self.start()
        else:
            self.stop()

    def start(self):
        """Start following ``settings.source`` (a new feed)."""
        from asymflux._live_feed import LiveFeed

        self.stop(switch=False)
        source = self.settings.source.strip()
        if not source:
            self._fail("give the source first: a demo-live folder or a movie being written")
            return
        self.alert.visible = False
        self.feed = LiveFeed(source, idle_timeout_s=self.settings.idle_timeout_s)
        self.snapshot = None
        self.status.object = f"following `{source}` …"
        if R.in_server():
            self._callback = pn.state.add_periodic_callback(
                self._poll, period=int(1000 * self.settings.poll_s))

    def stop(self, *, switch=True):
        """Stop following (the feed's files are closed once a running poll returns)."""
        if self._callback is not None:
            with contextlib.suppress(ValueError, KeyError, RuntimeError):  # session gone
                self._callback.stop()
            self._callback = None
        feed, self.feed = self.feed, None
        if feed is not None:
            if not self._busy:
                feed.close()
            if self.snapshot is not None and not self.snapshot.done:
                self.status.object = self.snapshot.message + " (stopped)"
        if switch and self.settings.live:
            self.settings.live = False

    async def _poll(self):
        """The periodic callback: one poll in a thread, shown from the event loop."""
        feed = self.feed
        if self._busy or feed is None:
            return
        self._busy = True
        try:
            snap = await asyncio.wrap_future(R.run_in_thread(feed.step))
        finally:
            self._busy = False
        if feed is not self.feed:  # stopped (or restarted) meanwhile
            feed.close()
            return
        self._show(snap)

    def step(self):
        """One poll, here and now (outside a server); returns the snapshot."""
        if self.feed is None:
            return self.snapshot
        snap = self.feed.step()
        self._show(snap)
        return snap

    def follow(self, *, timeout_s=600.0):
        """:meth:`step` every ``settings.poll_s`` until the feed ends (outside a server)."""
        if self.feed is None:
            self.settings.live = True
        end = time.monotonic() + timeout_s
        while self.feed is not None and time.monotonic() < end:
            snap = self.step()
            if snap is not None and snap.done:
                break
            time.sleep(self.settings.poll_s)
        return self.snapshot

    def _show(self, snap):
        if not snap.changed:
            return
        if snap.state == "error":
            self._fail(snap.message)
            return
        ids = [] if snap.labels is None else [int(p) for p in np.unique(snap.labels) if p]
        if ids and list(self.settings.param.particle.objects) != ids:
            self.settings.param.particle.objects = ids
            if self.settings.particle not in ids:
                self.settings.particle = ids[0]
        with pn.io.hold():
            self.snapshot = snap
            self.status.object = self._status_text(snap)
        if snap.done:
            self.stop()

    def _fail(self, message):
        self.alert.object = message
        self.alert.visible = True
        self.status.object = "Live is off."
        self.stop()

    @staticmethod
    def _status_text(snap) -> str:
        n = snap.n_particles
        head = (f"**{n} particle{'s' if n != 1 else ''}**, **{snap.n_frames} frame"
                f"{'s' if snap.n_frames != 1 else ''}**")
        return f"{head} — {snap.message}"

    # ------------------------------------------------------------------ data
    def table(self) -> pd.DataFrame:
        """Per particle: classification, the latest frame's capacity, d, d/R_eq."""
        return self._table(self.snapshot)

    @staticmethod
    def _table(snap) -> pd.DataFrame:
        if snap is None:  # the columns' types from the start (Tabulator keeps its formatters)
            return pd.DataFrame({c: pd.Series(dtype=_DTYPES.get(c, "float64"))
                                 for c in TABLE_COLUMNS})
        return snap.d_table()[TABLE_COLUMNS].astype(
            {c: t for c, t in _DTYPES.items() if c != "classification"})

    # ------------------------------------------------------------------ downloads
    # The tables as the page has them at the click (those of ``asymflux analyze`` of the
    # finished files once the writer is done); the state is in the file names.

    def _need_snapshot(self, what: str):
        snap = self.snapshot
        table = None if snap is None else getattr(snap, what)
        if table is None or not len(table):
            raise ValueError("no particles measured yet: nothing to download")
        return snap, table

    def _stem(self, snap) -> str:
        from pathlib import Path

        source = self.settings.source.strip().rstrip("/\\") or "live"
        state = "final" if snap.state == "finished" else f"{snap.n_frames}frames"
        return B.safe_name(f"{Path(source).name}_{state}")

    def _make_downloads(self):
        def table_csv():
            snap, _ = self._need_snapshot("timeseries")
            return B.csv_bytes(self._table(snap)), f"live_table_{self._stem(snap)}.csv"

        def timeseries_csv():
            snap, ts = self._need_snapshot("timeseries")
            return B.csv_bytes(ts), f"live_timeseries_{self._stem(snap)}.csv"

        def particles_csv():
            snap, particles = self._need_snapshot("particles")
            return B.csv_bytes(particles), f"live_particles_{self._stem(snap)}.csv"

        return {
            "table.csv": B.download_button("table (CSV)", "table.csv", table_csv),
            "timeseries.csv": B.download_button("time series (CSV)", "timeseries.csv",
                                                timeseries_csv),
            "particles.csv": B.download_button("particles (CSV)", "particles.csv",
                                               particles_csv),
        }

    # ------------------------------------------------------------------ plots
    def _frame_plot(self, snap, particle):
        if snap is None or snap.last_dI is None:
            return B.empty_plot("waiting for the first frame").opts(width=420, height=400)
        line = snap.kymographs.get(particle, (None, None, None))[2]
        last = snap.n_frames - 1
        cap = snap.capacity_mAh_g[last] if snap.capacity_mAh_g.size > last else np.nan
        title = (f"differential frame {last}" + (f", {cap:.1f} mAh/g" if np.isfinite(cap)
                                                  else ""))
        return plots.differential_frame(snap.last_dI, snap.pixel_nm, line=line,
                                        title=title).opts(width=420, height=400)

    def _offset_plot(self, snap):
        if snap is None or snap.timeseries is None or not len(snap.timeseries):
            return B.empty_plot("d(capacity): no frame measured yet").opts(width=520, height=400)
        ts = snap.timeseries.copy()
        cls = dict(zip(snap.particles["particle_id"], snap.particles["classification"],
                       strict=True)) if snap.particles is not None else {}
        ts["particle"] = [f"{p} ({cls.get(p, '?')})" for p in ts["particle_id"]]
        ts = ts[np.isfinite(ts["capacity_mAh_g"].to_numpy(float))]
        return plots.offset_vs_capacity(ts, by="particle", title=(
            f"d(capacity) (Fig. 5d), {snap.n_frames} frames"
            + (": final" if snap.state == "finished" else ""))).opts(width=520, height=400)

    def _kymograph_plot(self, snap, particle):
        from asymflux.analysis import kymograph_boundaries

        if snap is None or particle not in snap.kymographs:
            return B.empty_plot("kymograph: waiting for frames").opts(width=420, height=400)
        kymo, dist, _line = snap.kymographs[particle]
        cap = snap.capacity_mAh_g[: len(kymo)]
        return plots.kymograph(kymo, dist, cap, boundaries=kymograph_boundaries(kymo, dist),
                               title=f"line-cut kymograph (Fig. 5c): particle {particle}"
                               ).opts(width=420, height=400)

    def __panel__(self):
        p = self.settings.param.particle
        plots_row = pn.Row(
            pn.panel(pn.bind(self._frame_plot, self.param.snapshot, p), name="frame"),
            pn.panel(pn.bind(self._offset_plot, self.param.snapshot), name="d_capacity"),
            pn.panel(pn.bind(self._kymograph_plot, self.param.snapshot, p), name="kymograph"))
        return pn.Column(
            pn.pane.Markdown("## asymflux live: follow a movie while it is written", width=1100),
            self.alert,
            pn.Row(self.source_input, self.poll_input, self.idle_input, self.switch),
            self.status,
            pn.Row(self.particle_select),
            plots_row,
            pn.pane.Markdown("### Particles (latest frame; classification of the frames so "
                             "far, the batch's at the end)"),
            self.table_widget,
            pn.Row(pn.pane.Markdown("Download:", width=80, margin=(12, 5)),
                   *self.downloads.values()),
            width=1400,
        )


def _warm_up():
    """Import what following a source needs (seconds on a busy machine), before the switch."""
    import skimage.measure  # noqa: F401

    from asymflux import _live_feed, analysis  # noqa: F401
    from asymflux.live import LiveAnalysis  # noqa: F401

    for name in ("detect_particles", "particle_timeseries", "registered_differential",
                 "summarize_particles", "line_kymograph"):  # each imports its module
        getattr(analysis, name)
