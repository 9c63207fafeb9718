"""What a live display shows, Qt-free and Panel-free: :class:`LiveFeed` over
:class:`asymflux.live.LiveAnalysis`.

The napari *Live* switch (:mod:`asymflux.napari._live`) and the dashboard's *Live* page
(:mod:`asymflux.views.live`) both drive one :class:`LiveFeed` from a worker thread: each
:meth:`LiveFeed.step` calls ``LiveAnalysis.update()`` once and adds, for the frames it
measured, what ``LiveAnalysis`` does not keep -- the registered differential frames (dI =
I/I0 − 1, :func:`asymflux.analysis.registered_differential` on the reference frame and the
new frames only, calibrated and illumination-corrected as they are measured
(``LiveAnalysis.corrected_frames``): O(frame) per frame, as the measurement) and each particle's line-cut
kymograph rows (:func:`asymflux.analysis.line_kymograph` along
:func:`asymflux.analysis.horizontal_line`, Fig. 5c). It returns a :class:`LiveSnapshot`
the GUI thread can show without touching the files.

When the movie is finished (the writer's marker, or nothing new for ``idle_timeout_s``),
:meth:`LiveFeed.step` calls ``LiveAnalysis.finish()``: the snapshot's tables are then those
of ``asymflux analyze`` of the finished files (the batch code path).

(Belongs in :mod:`asymflux.live` once that package is free to change; it only uses the
public API of ``LiveAnalysis`` and of its ``movie``.)
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["LiveFeed", "LiveSnapshot"]


@dataclass
class LiveSnapshot:
    """What a live display shows after one :meth:`LiveFeed.step` (shared read-only).

    Attributes
    ----------
    state : str
        ``"waiting"`` (no source yet), ``"running"``, ``"finished"`` (batch tables) or
        ``"error"``.
    message : str
        One line for the status bar.
    n_frames : int
        Frames measured.
    labels : (row, col) int array or None
        The particles, once detected.
    new_dI : (k, row, col) float array or None
        Registered dI of the frames measured by this step (``new_frames``).
    new_frames : list of int
    last_dI : (row, col) float array or None
        The latest frame's dI.
    timeseries, particles : pandas.DataFrame or None
        The live tables (``asymflux analyze``'s columns); after the end, the batch tables.
    kymographs : dict
        ``{particle_id: (kymograph (n_frames, n_points), distance_nm, line)}``;
        ``line`` = ``((row0, col0), (row1, col1))``.
    capacity_mAh_g : (n_frames,) float array
        Per frame (NaN until the cycler passes the frame).
    max_abs_difference : dict or None
        After the end: the largest |live − batch| per column.
    changed : bool
        Anything new since the previous snapshot.
    """

    state: str = "waiting"
    message: str = ""
    n_frames: int = 0
    labels: np.ndarray | None = None
    new_dI: np.ndarray | None = None
    new_frames: list = field(default_factory=list)
    last_dI: np.ndarray | None = None
    timeseries: object = None
    particles: object = None
    kymographs: dict = field(default_factory=dict)
    capacity_mAh_g: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pixel_nm: float = 1.0
    max_abs_difference: dict | None = None
    changed: bool = False

    @property
    def done(self) -> bool:
        return self.state in ("finished", "error")

    @property
    def n_particles(self) -> int:
        return 0 if self.labels is None else int(np.count_nonzero(np.unique(self.labels)))

    def d_table(self):
        """One row per particle: latest d (nm), d/R_eq, capacity and classification."""
        import pandas as pd

        cols = ["particle_id", "frame", "capacity_mAh_g", "offset_nm", "offset_norm",
                "unreacted_fraction", "classification"]
        ts = self.timeseries
        if ts is None or not len(ts):
            return pd.DataFrame({c: [] for c in cols})
        last = ts.sort_values(["particle_id", "frame"]).groupby("particle_id").tail(1)
        last = last[cols[:-1]].reset_index(drop=True)
        cls = {} if self.particles is None or not len(self.particles) else dict(
            zip(self.particles["particle_id"], self.particles["classification"], strict=True))
        last["classification"] = [cls.get(p, "") for p in last["particle_id"]]
        return last


class LiveFeed:
    """Follow ``source`` with :class:`asymflux.live.LiveAnalysis`; one :meth:`step` per poll.

    Parameters
    ----------
    source : path
        As for ``LiveAnalysis`` (a ``demo-live`` folder, an ``.h5``/``.zarr`` movie, a TIFF
        folder). A path that does not exist yet, or an empty folder, is waited for.
    idle_timeout_s : float, keyword-only
        Finish when nothing new arrived for this long, or for 3 frame intervals of a slower
        movie (``LiveAnalysis.idle_limit_s``, as ``asymflux watch``).
    **options
        Passed to ``LiveAnalysis`` (``echem``, ``active_mass_mg``, ...).
    """

    def __init__(self, source, *, idle_timeout_s=60.0, **options):
        self.source = Path(source)
        self.idle_timeout_s = float(idle_timeout_s)
        self.options = options
        self.live = None
        self.final = None
        self.error = None
        self._ref = None
        self._lines: dict = {}
        self._kymo: dict = {}  # pid -> list of (k, n_points) arrays
        self._distance: dict = {}
        self._last_dI = None
        self._created = time.monotonic()
        self._snapshot = LiveSnapshot(message=f"waiting for {self.source}")

    # ------------------------------------------------------------------ stepping
    def step(self) -> LiveSnapshot:
        """Look at the files once; measure what is new; finish at the end. Never raises:
        an error ends the feed with ``state == "error"`` and the message."""
        if self._snapshot.done:
            return self._with(changed=False)
        try:
            return self._step()
        except Exception as e:  # noqa: BLE001 - a display reports it, the thread ends cleanly
            self.error = e
            self.close()
            msg = " ".join(str(e).split()) or type(e).__name__
            self._snapshot = self._with(state="error", message=f"{type(e).__name__}: {msg}",
                                        changed=True)
            return self._snapshot

    def _ready(self) -> bool:
        """The source can be opened: a movie file, a ``.zarr``, or a folder holding the
        writer's ``live.json`` or a TIFF frame (a ``demo-live`` folder gets its movie before
        its ``live.json``: opened earlier, it would be taken for an empty TIFF folder)."""
        s = self.source
        if not s.exists():
            return False
        if not s.is_dir() or s.suffix == ".zarr" or (s / "live.json").is_file():
            return True
        return any(p.suffix.lower() in (".tif", ".tiff") and not p.name.startswith(".")
                   for p in s.iterdir())

    def _step(self) -> LiveSnapshot:
        from asymflux.live import LiveAnalysis

        if self.live is None:
            if not self._ready():
                if time.monotonic() - self._created > self.idle_timeout_s:
                    raise ValueError(f"{self.source}: nothing to follow within "
                                     f"{self.idle_timeout_s:g} s")
                return self._with(changed=False)
            self.live = LiveAnalysis(self.source, **self.options)
        live = self.live
        up = live.update()
        new_dI = self._measure(up.new_frames) if up.new_frames else None
        idle_limit_s = live.idle_limit_s(self.idle_timeout_s)  # grows with a slow movie
        if live.finished or (live.n_frames and live.idle_s > idle_limit_s):
            return self._finish(new_dI, list(up.new_frames))
        if live.n_frames == 0 and live.idle_s > self.idle_timeout_s:
            raise ValueError(f"{live.movie.path}: no frame arrived within "
                             f"{self.idle_timeout_s:g} s")
        if not up.changed:
            return self._with(changed=False)
        ts = live.timeseries
        self._snapshot = self._tables(ts, live.particles, state="running",
                                      new_dI=new_dI, new_frames=list(up.new_frames),
                                      message=self._running_text(ts))
        return self._snapshot

    def _running_text(self, ts) -> str:
        live = self.live
        cap = self._capacity(ts)
        known = int(np.isfinite(cap).sum())
        n = self._snapshot.n_particles if self.live.labels is None else int(
            np.count_nonzero(np.unique(live.labels)))
        return (f"following {live.movie.path.name}: {live.n_frames} frame(s) measured, "
                f"{known} with a capacity, {n} particle(s)")

    def _measure(self, frames) -> np.ndarray:
        """Registered dI of ``frames`` (consecutive) and their kymograph rows: the reference
        frame and these frames only."""
        from asymflux.analysis import horizontal_line, line_kymograph, registered_differential

        live = self.live
        if self._ref is None:
            self._ref = np.asarray(live.movie.read(0, 1), dtype=np.float64)
            for pid in np.unique(live.labels):
                if pid:
                    self._lines[int(pid)] = horizontal_line(live.labels == pid)
        k0, k1 = frames[0], frames[-1] + 1
        new = np.asarray(live.movie.read(k0, k1), dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frames = live.corrected_frames(np.concatenate([self._ref, new]))  # as measured
            dI, _ = registered_differential(frames, live.labels,
                                            register=live.register, n_reference_frames=1,
                                            normalize=live.normalize)
        dI = np.asarray(dI[1:], dtype=np.float32)
        pixel_nm = float(live.movie.pixel_nm or 1.0)
        for pid, (start, end) in self._lines.items():
            kymo, dist = line_kymograph(dI, start, end, pixel_nm=pixel_nm)
            self._kymo.setdefault(pid, []).append(kymo)
            self._distance[pid] = dist
        self._last_dI = dI[-1]
        return dI

    def _finish(self, new_dI, new_frames) -> LiveSnapshot:
        live = self.live
        if not live.finished:  # idle: every frame present counts (as watch does)
            live.movie.finish()
            up = live.update()
            if up.new_frames:
                more = self._measure(up.new_frames)
                new_dI = more if new_dI is None else np.concatenate([new_dI, more])
                new_frames = [*new_frames, *up.new_frames]
        final = live.finish()
        self.final = final
        live.close()
        worst = max(final.max_abs_difference.values(), default=0.0)
        self._snapshot = self._tables(
            final.timeseries, final.particles, state="finished", new_dI=new_dI,
            new_frames=new_frames,
            max_abs_difference=final.max_abs_difference,
            message=(f"finished: {live.n_frames} frame(s), {len(final.particles)} particle(s); "
                     f"tables of asymflux analyze (live vs batch: largest difference "
                     f"{worst:.3g})"))
        return self._snapshot

    # ------------------------------------------------------------------ snapshots
    @staticmethod
    def _capacity(ts) -> np.ndarray:
        if ts is None or not len(ts):
            return np.zeros(0)
        first = ts[ts["particle_id"] == ts["particle_id"].iloc[0]].sort_values("frame")
        cap = np.full(int(first["frame"].max()) + 1, np.nan)
        cap[first["frame"].to_numpy(int)] = first["capacity_mAh_g"].to_numpy(float)
        return cap

    def _tables(self, ts, particles, **kw) -> LiveSnapshot:
        kymos = {pid: (np.concatenate(rows), self._distance[pid], self._lines[pid])
                 for pid, rows in self._kymo.items() if rows}
        return LiveSnapshot(
            n_frames=self.live.n_frames, labels=self.live.labels, last_dI=self._last_dI,
            timeseries=ts, particles=particles, kymographs=kymos,
            capacity_mAh_g=self._capacity(ts), pixel_nm=float(self.live.movie.pixel_nm or 1.0),
            changed=True, **kw)

    def _with(self, **kw) -> LiveSnapshot:
        from dataclasses import replace

        return replace(self._snapshot, new_dI=None, new_frames=[], **kw)

    @property
    def snapshot(self) -> LiveSnapshot:
        """The latest snapshot."""
        return self._snapshot

    def run(self, *, poll_s=0.5, stop=None):
        """Step every ``poll_s`` seconds until the end (or ``stop()`` is true); yields each
        changed snapshot (a generator: napari's ``thread_worker`` runs it)."""
        try:
            while True:
                snap = self.step()
                if snap.changed:
                    yield snap
                if snap.done or (stop is not None and stop()):
                    return
                time.sleep(poll_s)
        finally:
            if not self._snapshot.done:
                self.close()

    def close(self):
        if self.live is not None:
            try:
                self.live.close()
            except Exception:  # noqa: BLE001 - closing a half-open file: nothing to do
                pass
