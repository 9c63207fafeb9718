"""The napari *Live* switch: follow a movie while the instrument writes it.

A thin view on :class:`asymflux._live_feed.LiveFeed` (Qt-free; it drives
:class:`asymflux.live.LiveAnalysis`). Switching *Live* on starts the feed in a napari worker
thread (``create_worker`` over :meth:`LiveFeed.run`: the files are read and the frames
measured there, never in the GUI thread); every snapshot it yields is shown here:

- the registered differential movie (dI = I/I0 − 1) as an image layer that grows by the
  new frames (a buffer that doubles: appending costs O(frame)); the viewer follows the
  latest frame;
- the particles as a labels layer (outlines), O_COM / O_Li-rich as points per frame;
- the chosen particle's line-cut kymograph (Fig. 5c) right of the field;
- each particle's latest d, d/R_eq, capacity and classification in a table, and
  d(capacity) of every particle in a plot.

Switching it off stops the thread at its next poll. When the movie is finished the table
holds the numbers of ``asymflux analyze`` of the finished files (``LiveFeed`` runs the
batch pipeline at the end).
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, Container, FloatSpinBox, Label, LineEdit, SpinBox, Table

from asymflux.export import symmetric_limit

from ._display import diverging_colormap, make_canvas
from ._reader import METADATA_KEY

__all__ = ["LivePanel"]

TABLE_COLUMNS = {"particle_id": "particle", "frame": "frame", "capacity_mAh_g": "mAh/g",
                 "offset_nm": "d (nm)", "offset_norm": "d/R_eq",
                 "classification": "classification"}
"""Columns of :meth:`asymflux._live_feed.LiveSnapshot.d_table` shown, and their headers."""


KYMOGRAPH_SCALE = (4.0, 2.0)
"""Screen pixels per (frame, line sample) of the kymograph layer (a few frames stay visible)."""


class _Growing:
    """A (n, row, col) float32 movie that grows by appending frames (capacity doubles)."""

    def __init__(self):
        self.buf = None
        self.n = 0

    def append(self, frames) -> np.ndarray:
        frames = np.asarray(frames, dtype=np.float32)
        need = self.n + len(frames)
        if self.buf is None or need > len(self.buf):
            cap = max(need, 2 * (0 if self.buf is None else len(self.buf)), 8)
            buf = np.zeros((cap, *frames.shape[1:]), np.float32)
            if self.buf is not None:
                buf[: self.n] = self.buf[: self.n]
            self.buf = buf
        self.buf[self.n:need] = frames
        self.n = need
        return self.buf[: self.n]


class LivePanel(Container):
    """The *Live* switch: source path, poll interval, status, table and d(capacity) plot.

    Parameters
    ----------
    viewer : napari.viewer.Viewer

    Attributes
    ----------
    feed : asymflux._live_feed.LiveFeed or None
    worker : napari GeneratorWorker or None
        The thread following the source (None when off).
    snapshot : asymflux._live_feed.LiveSnapshot or None
        The last one shown.
    dI_layer, labels_layer, com_layer, li_rich_layer, kymograph_layer : layers or None
    """

    def __init__(self, viewer, **kwargs):
        super().__init__(labels=True, **kwargs)
        self.viewer = viewer
        self.feed = self.worker = self.snapshot = None
        self.dI_layer = self.labels_layer = self.com_layer = self.li_rich_layer = None
        self.kymograph_layer = None
        self._movie = _Growing()
        self._stop = False
        self.source = LineEdit(label="live source",
                               tooltip="a demo-live folder, an .h5 / .zarr movie or a TIFF "
                                       "folder being written")
        self.poll_s = FloatSpinBox(label="poll every (s)", value=0.5, min=0.05, max=60, step=0.1)
        self.idle_s = FloatSpinBox(label="idle timeout (s)", value=60, min=1, max=3600)
        self.live = CheckBox(text="Live: follow the source while it is written", value=False)
        self.particle = SpinBox(label="kymograph of particle", value=1, min=1, max=2**31 - 1)
        self.status = Label(label="", value="Live is off")
        import pandas as pd

        self.table = Table(value=pd.DataFrame({c: [] for c in TABLE_COLUMNS.values()}))
        self.table.read_only = True
        self.table.min_height = 200
        self.table.native.verticalHeader().setVisible(False)
        self.extend([self.source, self.poll_s, self.idle_s, self.live, self.particle,
                     self.status, self.table])
        self.live.changed.connect(self._on_switch)
        self.particle.changed.connect(lambda *_: self._show_kymograph())
        self._figure, self._canvas = make_canvas(self, figsize=(3.2, 2.4), min_height_px=180)
        # the window closes: the thread stops at its next poll (napari waits for it at exit)
        self.native.destroyed.connect(self._request_stop)

    def _request_stop(self, *_):
        self._stop = True

    # ------------------------------------------------------------------ the switch
    def _on_switch(self, on):
        if on:
            if self.worker is None:
                self.start()
        else:
            self.stop()

    def start(self, source=None):
        """Follow ``source`` (default: the source field) in a worker thread; returns it."""
        from napari.qt.threading import create_worker

        from asymflux._live_feed import LiveFeed

        if source is not None:
            self.source.value = str(source)
        if not str(self.source.value).strip():
            self.status.value = "give the live source first (a folder or movie being written)"
            self._set_switch(False)
            return None
        self._reset()
        self.feed = LiveFeed(str(self.source.value).strip(), idle_timeout_s=self.idle_s.value)
        self._stop = False
        worker = create_worker(self.feed.run, poll_s=float(self.poll_s.value),
                               stop=lambda: self._stop)
        worker.yielded.connect(self.show)
        worker.finished.connect(lambda: self._ended(worker))
        self.worker = worker
        self.status.value = f"following {self.source.value} …"
        self._set_switch(True)
        worker.start()
        return worker

    def stop(self):
        """Stop following (the thread ends at its next poll)."""
        self._stop = True
        if self.worker is not None:
            self.worker.quit()
        self._set_switch(False)

    def _ended(self, worker):
        if worker is self.worker:
            self.worker = None
            if self.snapshot is None or not self.snapshot.done:
                self.status.value = (self.snapshot.message + " (stopped)"
                                     if self.snapshot is not None else "Live is off")
            self._set_switch(False)

    def _set_switch(self, on):
        if bool(self.live.value) != on:
            with self.live.changed.blocked():
                self.live.value = on

    def _reset(self):
        self._movie = _Growing()
        self.snapshot = None

    # ------------------------------------------------------------------ showing a snapshot
    def show(self, snap):
        """Show a :class:`~asymflux._live_feed.LiveSnapshot` (GUI thread)."""
        from napari.utils.notifications import show_error, show_info

        self.snapshot = snap
        self.status.value = snap.message
        if snap.state == "error":
            show_error(f"asymflux live: {snap.message}")
            return
        if snap.new_dI is not None and len(snap.new_dI):
            self._show_movie(self._movie.append(snap.new_dI), snap)
        if snap.labels is not None:
            self._show_labels(snap.labels)
        self._show_points(snap.timeseries)
        self._show_table(snap)
        self._show_kymograph()
        self._plot(snap)
        if snap.state == "finished":
            show_info(f"asymflux live: {snap.message}")

    def _layer_alive(self, layer):
        return layer is not None and layer in self.viewer.layers

    def _show_movie(self, movie, snap):
        x = symmetric_limit(movie[-1])
        if self._layer_alive(self.dI_layer):
            self.dI_layer.data = movie
            self.dI_layer.contrast_limits = (-x, x)
        else:
            self.dI_layer = self.viewer.add_image(
                movie, name="live dI", colormap=diverging_colormap(), contrast_limits=(-x, x),
                metadata={METADATA_KEY: {"role": "live dI"}})
            self.viewer.reset_view()
        self.viewer.dims.set_current_step(0, len(movie) - 1)

    def _show_labels(self, labels):
        if self._layer_alive(self.labels_layer):
            if not np.array_equal(self.labels_layer.data, labels):
                self.labels_layer.data = labels
            return
        self.labels_layer = self.viewer.add_labels(
            labels, name="live particles", opacity=0.8,
            metadata={METADATA_KEY: {"role": "live particles"}})
        self.labels_layer.contour = 2

    def _points(self, attr, data, name, color):
        layer = getattr(self, attr)
        if self._layer_alive(layer):
            layer.data = data
            return layer
        layer = self.viewer.add_points(data, ndim=3, name=name, face_color=color,
                                       border_color="black", size=4)
        setattr(self, attr, layer)
        return layer

    def _show_points(self, ts):
        if ts is None or not len(ts):
            return
        for attr, (r, c), name, color in (("com_layer", ("com_row", "com_col"), "live O_COM",
                                           "yellow"),
                                          ("li_rich_layer", ("li_rich_row", "li_rich_col"),
                                           "live O_Li-rich", "cyan")):
            pts = np.column_stack([ts["frame"].to_numpy(float), ts[r].to_numpy(float),
                                   ts[c].to_numpy(float)])
            self._points(attr, pts[np.isfinite(pts).all(axis=1)], name, color)

    def _show_table(self, snap):
        self.table.value = snap.d_table()[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS)
        self.table.native.resizeColumnsToContents()

    def d_table(self):
        """The table as shown (a DataFrame with the snapshot's column names)."""
        df = self.table.to_dataframe()
        df.columns = list(TABLE_COLUMNS)
        return df

    def _show_kymograph(self):
        snap = self.snapshot
        if snap is None or not snap.kymographs:
            return
        pid = int(self.particle.value)
        if pid not in snap.kymographs:
            pid = min(snap.kymographs)
        kymo = snap.kymographs[pid][0]
        x = symmetric_limit(kymo)
        translate = (0.0, float(snap.labels.shape[-1] + 10))
        name = f"live kymograph (particle {pid})"
        if self._layer_alive(self.kymograph_layer):
            self.kymograph_layer.data = kymo
            self.kymograph_layer.contrast_limits = (-x, x)
            self.kymograph_layer.name = name
        else:
            self.kymograph_layer = self.viewer.add_image(
                kymo, name=name, colormap=diverging_colormap(), contrast_limits=(-x, x),
                translate=translate, scale=KYMOGRAPH_SCALE,
                metadata={METADATA_KEY: {"role": "live kymograph"}})
            self.viewer.reset_view()

    # ------------------------------------------------------------------ plot
    def _plot(self, snap):
        if self._figure is None or snap.timeseries is None or not len(snap.timeseries):
            return
        fig = self._figure
        fig.clear()
        ax = fig.add_subplot(111)
        ts = snap.timeseries
        cls = {} if snap.particles is None or not len(snap.particles) else dict(
            zip(snap.particles["particle_id"], snap.particles["classification"], strict=True))
        use_time = not np.isfinite(ts["capacity_mAh_g"].to_numpy(float)).any()
        for pid, grp in ts.groupby("particle_id"):
            grp = grp.sort_values("frame")
            x = grp["time_s"] / 60.0 if use_time else grp["capacity_mAh_g"]
            ax.plot(x, grp["offset_nm"], "o-", ms=2, lw=1,
                    label=f"{pid} {cls.get(pid, '')}")
        ax.set_xlabel("time (min)" if use_time else "capacity (mAh/g)", fontsize=8)
        ax.set_ylabel("d (nm)", fontsize=8)
        ax.set_title(f"live d(capacity): {snap.n_frames} frame(s)"
                     + (" — final" if snap.state == "finished" else ""), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, ncol=2, loc="upper left")
        self._canvas.draw_idle()
