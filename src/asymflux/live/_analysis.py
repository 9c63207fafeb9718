"""The Qt-free core of live mode: measure the particles of a movie while it is written."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asymflux.io import DatasetError
from asymflux.paper import UNREACTED_THRESHOLD

from ._sources import CyclerTail, open_movie, read_manifest

__all__ = ["LiveAnalysis", "LiveUpdate", "FinalResult"]

#: Frames measured in one call of the batch measurement (bounds the memory of a catch-up).
_BATCH_FRAMES = 16

#: ``illumination="auto"``: the illumination's pattern of a new frame is compared with the
#: reference's (two fits of the smooth field) on every this many frames, and on the last
#: frame; when it has changed, every frame so far is measured again with the correction.
PROBE_EVERY = 4

#: The idle timeout is at least this many frame intervals (:meth:`LiveAnalysis.idle_limit_s`).
IDLE_FRAME_INTERVALS = 3.0


@dataclass
class LiveUpdate:
    """What one :meth:`LiveAnalysis.update` changed.

    Attributes
    ----------
    new_frames : list of int
        Frames measured by this update.
    capacity_frames : list of int
        Frames whose capacity became known (the cycler caught up with them).
    detected : bool
        The particles were detected (or the masks taken) in this update.
    n_frames : int
        Frames measured so far.
    finished : bool
        The writer left its finished marker (all frames are in).
    rows : pandas.DataFrame or None
        The timeseries rows of ``new_frames`` (columns of :attr:`LiveAnalysis.timeseries`,
        capacity as known now), for appending to a table: O(new rows).
    remeasured : bool
        An ``"auto"`` correction (``illumination`` or ``normalize``) was switched on by this
        update: every frame before ``new_frames`` was measured again with it, so the rows
        of earlier updates are replaced (``rows`` then holds every row so far).
    """

    new_frames: list = field(default_factory=list)
    capacity_frames: list = field(default_factory=list)
    detected: bool = False
    n_frames: int = 0
    finished: bool = False
    rows: object = None
    remeasured: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.new_frames or self.capacity_frames or self.detected or self.remeasured)


@dataclass
class FinalResult:
    """The batch analysis of the finished files, and how far the live values were from it.

    Attributes
    ----------
    particles, timeseries : pandas.DataFrame
        Exactly what ``asymflux analyze`` writes for the same files and options.
    labels : (n_row, n_col) int array
    max_abs_difference : dict
        Per numeric column of the timeseries, the largest |live − batch| over all
        particles and frames (NaN on one side and not the other counts as inf).
    """

    particles: object
    timeseries: object
    labels: np.ndarray
    max_abs_difference: dict


class LiveAnalysis:
    """Follow a growing movie and cycler file; measure each new frame as it lands.

    The measurement of a frame is that of ``asymflux analyze`` (:func:`asymflux.analysis.
    particle_timeseries` with the same options), run on the reference frame(s) and the new
    frames only, so a frame costs O(frame), not O(movie): the reference frame(s) and the
    labels are kept, and only the particles' pixels (and the registration region around
    them) of a new frame are read and used.

    Rules (see ``docs/live.md``):

    - particles are detected once the first ``n_reference_frames`` (1) frames are
      complete, on their mean (:func:`asymflux.analysis.detect_particles` of
      :func:`asymflux.analysis.reference_image`), exactly as the batch analysis does;
      ``masks`` skips the detection;
    - a frame's capacity is filled in once the cycler has a complete record at or after
      its time (NaN until then);
    - partial frames and partial cycler rows are never read (:mod:`asymflux.live._sources`).

    Parameters
    ----------
    source : path
        A movie (HDF5 ``.h5``, ``.zarr``, TIFF folder) or a ``demo-live`` folder (its
        ``live.json`` names the movie, the cycler file and the reading options).
    echem : path, optional, keyword-only
        The cycler file (any brand :func:`asymflux.io.read_echem` reads).
    active_mass_mg, pixel_nm, frame_interval_s : float, optional, keyword-only
        As for ``asymflux analyze`` of a bare stack.
    masks : (n_row, n_col) int array, optional, keyword-only
        Particle labels used as given.
    threshold, edge_px, register, asymmetry_threshold : keyword-only
        As for :func:`asymflux.analysis.analyze_dataset`.
    normalize : "auto", "frame_mean" or None, keyword-only
        As for :func:`asymflux.analysis.analyze_dataset` (default ``"auto"``, as ``asymflux
        analyze``; None: raw intensities). ``"auto"``: switched
        on (:func:`asymflux.analysis.resolve_normalization`) as soon as a new frame's
        particle-free background has drifted by more than the batch's limit; every frame
        measured before is then measured again (:attr:`LiveUpdate.remeasured`).
    illumination : "auto", True, False or None, keyword-only
        Each frame divided by its own smooth spatial illumination before registration and
        dI, as :func:`asymflux.analysis.analyze_path` / ``asymflux analyze --illumination``
        (:func:`asymflux.analysis.resolve_illumination`; default ``"auto"``, as
        ``analyze``: switched on as soon as a new frame's illumination pattern has changed
        by more than the batch's limit, and every frame measured before measured again).
    dark, flat : path-like or (row, col) array, optional, keyword-only
        The camera's dark and flat-field frames, as ``asymflux analyze --dark/--flat``
        (:func:`asymflux.analysis.calibrate_stack`): applied to every frame before
        detection.
    cache : bool or path-like, keyword-only
        The final batch analysis (:meth:`finish`) through the results cache
        (:func:`asymflux.analysis.analyze_path`'s ``cache``; ``docs/cache.md``).

    Attributes
    ----------
    movie : MovieSource
    cycler : CyclerTail or None
    labels : (n_row, n_col) int array or None
        Until the particles are detected, None.
    n_frames : int
        Frames measured.
    time_s : (n_frames,) float array
        Their times, s (read-only).
    """

    def __init__(self, source, *, echem=None, active_mass_mg=None, pixel_nm=None,
                 frame_interval_s=None, masks=None, threshold=UNREACTED_THRESHOLD, edge_px=2,
                 register=True, normalize="auto", asymmetry_threshold=None, cache=True,
                 illumination="auto", dark=None, flat=None):
        from asymflux.analysis import check_analysis_options

        source = Path(source)
        if not source.exists():
            raise ValueError(f"{source}: no such file or folder (the movie to watch)")
        manifest = read_manifest(source) if source.is_dir() else None
        if manifest is None and (source / "metadata.json").is_file():
            raise ValueError(f"{source}: a dataset folder is complete, not being written; "
                             "analyse it with 'asymflux analyze', or watch the movie file "
                             "that is being written")
        self.source = source
        self.manifest = manifest
        if manifest is not None:
            movie = source / manifest["movie"]
            if echem is None and manifest.get("echem"):
                echem = source / manifest["echem"]
            if active_mass_mg is None:
                active_mass_mg = manifest.get("active_mass_mg")
            if manifest.get("movie_format") == "tiff":
                pixel_nm = pixel_nm if pixel_nm is not None else manifest.get("pixel_nm")
                frame_interval_s = (frame_interval_s if frame_interval_s is not None
                                    else manifest.get("frame_interval_s"))
        else:
            movie = source
        if normalize not in (None, "frame_mean", "auto"):
            raise ValueError(f"normalize must be None, 'auto' or 'frame_mean', got "
                             f"{normalize!r}")
        if not (illumination is None or illumination is False or illumination is True
                or illumination == "auto"):
            raise ValueError(f"illumination must be 'auto', True, False or None, got "
                             f"{illumination!r}")
        opts = {"threshold": threshold, "edge_px": edge_px}
        if asymmetry_threshold is not None:
            opts["asymmetry_threshold"] = asymmetry_threshold
        check_analysis_options(**opts)
        kind = {"h5": "hdf5", "zarr": "zarr", "tiff": "tiff-folder"}.get(
            (manifest or {}).get("movie_format"))
        self.movie = open_movie(movie, pixel_nm=pixel_nm, frame_interval_s=frame_interval_s,
                                kind=kind)
        self.echem_path = None if echem is None else Path(echem)
        self.cycler = (None if echem is None
                       else CyclerTail(echem, active_mass_mg=active_mass_mg))
        self.active_mass_mg = active_mass_mg
        self._given = {"pixel_nm": pixel_nm, "frame_interval_s": frame_interval_s}
        self.threshold, self.edge_px, self.register = threshold, edge_px, register
        #: the options as asked (``"auto"`` kept), for the final batch analysis
        self.normalize_option, self.illumination_option = normalize, illumination
        #: what the frames are measured with now: an ``"auto"`` becomes on (``"frame_mean"``
        #: / True) once a frame needs it, else stays off (None)
        self.normalize = None if normalize == "auto" else normalize
        self.illumination = None if illumination == "auto" or illumination is False \
            else illumination
        self.dark, self.flat = dark, flat
        self.auto_warnings = []  # why an "auto" correction was switched on
        self._finishing = False  # the movie is finished: its last frame is probed
        self._probed = 0  # frames measured when the illumination was last probed
        self.asymmetry_threshold = asymmetry_threshold
        self.cache = cache
        self.n_reference_frames = 1
        self.masks = masks
        self.labels = None
        self._ref = None  # (n_ref, row, col) float64 reference frames
        self._last_raw = None  # the last raw frame measured (duplicated frames)
        self._chunks = []  # per-update measurement tables (frames without capacity column)
        self._time = np.zeros(0)
        self._cap = np.zeros(0)
        self._cap_known = np.zeros(0, bool)
        self._cyc = np.zeros((0, 2))  # voltage_V, current_mA per frame, with the capacity
        self.n_frames = 0
        self.finished = False
        self.last_change = time.monotonic()
        self.started = time.monotonic()
        self._last_frame_at = None  # monotonic time new frames last arrived
        self._longest_wait_s = 0.0  # longest wall-clock wait between arrivals of frames
        self.final = None
        _warm_up()

    # ------------------------------------------------------------------ names
    @property
    def name(self) -> str:
        """The ``dataset`` column: what ``asymflux analyze`` calls the movie."""
        p = self.movie.path
        if self.movie.kind == "hdf5":
            return p.stem  # read_instrument_hdf5: metadata name = the file's stem
        return p.name.split(".")[0]  # read_dataset of a bare stack

    @property
    def time_s(self) -> np.ndarray:
        """``(n_frames,)`` time of each frame measured so far, s (read-only)."""
        t = self._time[: self.n_frames]
        t.flags.writeable = False
        return t

    @property
    def idle_s(self) -> float:
        """Seconds since the movie or the cycler file last grew."""
        return time.monotonic() - self.last_change

    @property
    def frame_interval_s(self) -> float:
        """The movie's pace so far, s: the largest of its frames' median time step, the
        given frame interval (``frame_interval_s=``, a demo-live folder's) and the longest
        wall-clock wait between new frames (0 when none is known yet)."""
        step = float(np.median(np.diff(self._time[: self.n_frames]))) if self.n_frames > 1 else 0.0
        given = float(self.movie.frame_interval_s or 0.0)
        return max(step if np.isfinite(step) else 0.0, given, self._longest_wait_s)

    def idle_limit_s(self, floor_s: float) -> float:
        """The idle timeout for this movie: ``floor_s``, or :data:`IDLE_FRAME_INTERVALS`
        times :attr:`frame_interval_s` if longer (a movie of a frame a minute is not
        declared finished between two frames)."""
        return max(float(floor_s), IDLE_FRAME_INTERVALS * self.frame_interval_s)

    # ------------------------------------------------------------------ update
    def update(self) -> LiveUpdate:
        """Look at the files again and measure what is new.

        Returns
        -------
        LiveUpdate
        """
        up = LiveUpdate()
        finished = self.movie.finished
        self._finishing = finished
        n_complete = self.movie.poll()
        if self.cycler is not None and self._poll_cycler():
            self.last_change = time.monotonic()
        if n_complete > self.n_frames:
            now = self.last_change = time.monotonic()
            if self._last_frame_at is not None:
                self._longest_wait_s = max(self._longest_wait_s, now - self._last_frame_at)
            self._last_frame_at = now
            first_chunk = len(self._chunks)
            if self.labels is None and n_complete >= self.n_reference_frames:
                self._detect()
                up.detected = True
            if self.labels is not None:
                self._time = self.movie.time_s(n_complete)
                k0 = self.n_frames
                while k0 < n_complete:
                    k1 = min(n_complete, k0 + _BATCH_FRAMES)
                    if self._measure(k0, k1) and k0 > 0:
                        up.remeasured = True  # every row so far changed
                        first_chunk = 0
                    up.new_frames.extend(range(k0, k1))
                    k0 = k1
        up.capacity_frames = self._fill_capacity(final=finished)
        if up.new_frames or up.remeasured:
            up.rows = self._table(self._chunks[first_chunk:])
        self.finished = finished and self.movie.poll() == self.n_frames
        up.finished = self.finished
        up.n_frames = self.n_frames
        return up

    def _poll_cycler(self) -> bool:
        try:
            return self.cycler.poll()
        except OSError as e:
            raise DatasetError(f"{self.cycler.path}: cannot read the cycler file "
                               f"({e.strerror or type(e).__name__})") from e

    def _read(self, k0, k1) -> np.ndarray:
        """Frames k0:k1 of the movie; a failed read names the file and the frames."""
        try:
            return np.asarray(self.movie.read(k0, k1))
        except OSError as e:
            why = " ".join(str(e).split()) or type(e).__name__
            frames = f"frame {k0}" if k1 == k0 + 1 else f"frames {k0} to {k1 - 1}"
            raise DatasetError(f"{self.movie.path}: cannot read {frames} of the movie "
                               f"({why})") from e

    def _detect(self):
        from asymflux.analysis import blank_frame_reason, check_labels, reference_image

        n_ref = self.n_reference_frames
        ref = self._read(0, n_ref)
        for k in range(n_ref):
            why = blank_frame_reason(ref[k])
            if why:
                raise ValueError(f"{self.movie.path}: reference frame {k} holds no image ({why}); "
                                 "nothing to analyse")
        if self.movie.pixel_nm is None:
            raise ValueError(f"{self.movie.path}: the movie does not give the pixel size: pass "
                             "--pixel-nm P (pixel_nm=)")
        if self.masks is not None:
            labels = check_labels(self.masks, ref.shape[1:], name="masks")
            if not np.any(labels):
                raise ValueError("masks: hold no particle (every pixel is 0, background)")
        else:
            from asymflux.analysis import detect_reference

            labels = detect_reference(reference_image(self._calibrated(ref),
                                                      n_reference_frames=n_ref),
                                      pixel_nm=self.movie.pixel_nm)  # as the batch does
            if not np.any(labels):
                raise ValueError(f"{self.movie.path}: no particle detected in the reference "
                                 "image (frame 0); check the movie, or give --masks")
        self._ref = ref
        self.labels = labels

    def _calibrated(self, stack):
        """``stack`` through the dark and flat frames, as the batch reads it
        (:func:`asymflux.analysis.calibrate_stack`; ValueError naming the file)."""
        from asymflux.analysis import calibrate_stack

        try:
            return calibrate_stack(stack, dark=self.dark, flat=self.flat,
                                   n_reference_frames=self.n_reference_frames)
        except ValueError as e:
            raise ValueError(f"{self.movie.path}: {e}") from e

    def corrected_frames(self, raw):
        """``raw`` frames (a reference frame first, then others; ``(k, row, col)``) as the
        measurement sees them now: calibrated (dark, flat) and, when the illumination
        correction is on, each divided by its own illumination field relative to the
        first frame's. Switches nothing on (what a display shows: the dI frames of
        :class:`asymflux._live_feed.LiveFeed`). Returns a float64 array."""
        stack = self._illuminated(self._calibrated(raw), n_reference_frames=1)
        return np.asarray(stack[:], dtype=np.float64)

    def _illuminated(self, stack, *, n_reference_frames):
        """``stack`` divided by each frame's illumination field when that correction is on
        (:func:`asymflux.analysis.resolve_illumination`), else ``stack`` itself."""
        from asymflux.analysis import resolve_illumination

        if self.illumination is not True:
            return stack
        stack, _ = resolve_illumination(stack, self.labels, True, threshold=self.threshold,
                                        n_reference_frames=n_reference_frames)
        return stack

    def _corrected(self, raw, *, probe=True):
        """``raw`` (the reference frame(s), then new frames) as the batch measures it:
        calibrated (dark, flat), divided by each frame's illumination when that is on, and
        the ``normalize`` to use. An ``"auto"`` correction still off is switched on when
        these frames need it, by the batch's own test
        (:func:`asymflux.analysis.resolve_illumination` on the reference frame(s) and the
        last frame, when ``probe``; :func:`asymflux.analysis.resolve_normalization`);
        returns ``(stack, normalize, switched)``."""
        from types import SimpleNamespace

        from asymflux.analysis import resolve_illumination, resolve_normalization

        n_ref = self.n_reference_frames
        stack, switched = self._calibrated(raw), False
        if self.illumination is None and self.illumination_option == "auto" and probe:
            ends = self._calibrated(raw[[*range(n_ref), len(raw) - 1]])
            _, said = resolve_illumination(ends, self.labels, "auto", threshold=self.threshold,
                                           n_reference_frames=n_ref, name=self.name)
            if said:
                self.illumination, switched = True, True
                self.auto_warnings.extend(said)
        stack = self._illuminated(stack, n_reference_frames=n_ref)
        if stack is not raw:  # a few frames, each corrected once (the same values)
            stack = np.asarray(stack[:])
        if self.normalize is None and self.normalize_option == "auto":
            ds = SimpleNamespace(metadata={"name": self.name}, path=None, stack=stack)
            norm, said = resolve_normalization(ds, "auto", stack, self.labels,
                                               threshold=self.threshold,
                                               n_reference_frames=n_ref)
            if norm is not None:
                self.normalize, switched = "frame_mean", True
                self.auto_warnings.extend(said)
        return stack, self.normalize, switched

    def _remeasure(self, k1) -> None:
        """Measure frames 0:k1 again (an ``"auto"`` correction was just switched on)."""
        k0 = 0
        while k0 < k1:
            if k0 == 0:
                self._chunks, self.n_frames = [], 0
            k = min(k1, k0 + _BATCH_FRAMES)
            # the other "auto" correction switched on meanwhile: from the start again
            k0 = 0 if self._measure(k0, k, check_auto=False) and k0 > 0 else k

    def _measure(self, k0, k1, *, check_auto=True) -> bool:
        """Measure frames k0:k1 exactly as the batch analysis does: the same function on
        the reference frame(s) followed by these frames (calibrated and corrected as the
        batch does). Returns True when an ``"auto"`` correction was switched on (the frames
        before k0 were then measured again)."""
        from asymflux.analysis import particle_timeseries

        n_ref = self.n_reference_frames
        new = self._read(k0, k1)
        raw = np.concatenate([self._ref.astype(new.dtype, copy=False), new])
        # the illumination's pattern is looked at every PROBE_EVERY frames and at the end
        probe = check_auto and (self._finishing or k0 == 0
                                or (k1 - 1) // PROBE_EVERY > (k0 - 1) // PROBE_EVERY)
        stack, normalize, switched = self._corrected(raw, probe=probe)
        if probe:
            self._probed = k1
        if switched and check_auto and k0 > 0:
            self._remeasure(k0)
        t = np.r_[self._time[:n_ref], self._time[k0:k1]]
        normalize = self.normalize
        if normalize == "frame_mean":  # the instrument's own reading, as the batch uses it
            recorded = self.movie.frame_intensity(k1)
            if recorded is not None and recorded.size >= k1:
                normalize = np.r_[recorded[:n_ref], recorded[k0:k1]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ts = particle_timeseries(
                stack, self.labels, pixel_nm=self.movie.pixel_nm, time_s=t,
                threshold=self.threshold, edge_px=self.edge_px, register=self.register,
                n_reference_frames=n_ref, normalize=normalize, n_threads=1)
        ts = ts[ts["frame"] >= n_ref].copy()
        ts["frame"] = ts["frame"] - n_ref + k0
        self._duplicated_frames(ts, new, k0)
        self._chunks.append(ts)
        grow = k1 - self._cap.size
        if grow > 0:
            self._cap = np.r_[self._cap, np.full(grow, np.nan)]
            self._cap_known = np.r_[self._cap_known, np.zeros(grow, bool)]
            self._cyc = np.r_[self._cyc, np.full((grow, 2), np.nan)]
        self.n_frames = k1
        return switched

    def _duplicated_frames(self, ts, new, k0) -> None:
        """The ``duplicated_frame`` flag of the rows of frames k0.. as the batch sets it (a
        frame identical to the one before it in the movie): the measured chunk starts with
        the reference frame(s), so its first frame was compared with them, not with frame
        k0 − 1. Set here from the raw frames (the previous one kept)."""
        from asymflux.analysis import QUALITY_FLAGS

        before = None if k0 == 0 else self._last_raw
        same = []
        for frame in new:
            same.append(before is not None and np.array_equal(frame, before, equal_nan=True))
            before = frame
        self._last_raw = np.array(new[-1], copy=True)
        order = list(QUALITY_FLAGS)
        dup = dict(zip(range(k0, k0 + len(new)), same, strict=True))

        def fix(flags, frame):
            names = [n for n in str(flags).split(";") if n and n != "duplicated_frame"]
            if dup.get(int(frame)):
                names.append("duplicated_frame")
            names.sort(key=lambda n: order.index(n) if n in order else len(order))
            return ";".join(names)

        if "quality_flags" in ts:
            ts["quality_flags"] = [fix(f, k) for f, k in zip(ts["quality_flags"], ts["frame"],
                                                              strict=True)]

    def _probe_last(self) -> None:
        """At the end: the last frame's illumination looked at, if it was not (``"auto"``),
        and every frame measured again if it switches the correction on."""
        if self.illumination is not None or self.illumination_option != "auto" \
                or self.labels is None or self.n_frames == 0 or self._probed >= self.n_frames:
            return
        k = self.n_frames
        new = self._read(k - 1, k)
        raw = np.concatenate([self._ref.astype(new.dtype, copy=False), new])
        self._probed = k
        if self._corrected(raw, probe=True)[2]:
            self._remeasure(k)

    def _fill_capacity(self, *, final=False) -> list:
        if self.cycler is None or self.n_frames == 0:
            return []
        todo = np.flatnonzero(~self._cap_known[: self.n_frames])
        if not todo.size:
            return []
        t = self._time[todo]
        ready = todo[(t <= self.cycler.last_time_s)] if not final else todo
        if not ready.size:
            return []
        self._cap[ready] = self.cycler.capacity_at(self._time[ready])
        for j, col in enumerate(("voltage_V", "current_mA")):
            self._cyc[ready, j] = self.cycler.column_at(col, self._time[ready])
        self._cap_known[ready] = True
        return [int(k) for k in ready]

    # ------------------------------------------------------------------ tables
    @property
    def timeseries(self):
        """One row per particle and frame so far, the columns of ``asymflux analyze``'s
        ``timeseries.csv`` (capacity NaN where the cycler has not reached the frame)."""
        import pandas as pd

        from asymflux.analysis import TIMESERIES_COLUMNS

        if not self._chunks:
            return pd.DataFrame({c: [] for c in ["dataset", *TIMESERIES_COLUMNS]})
        return self._table(self._chunks)

    def _table(self, chunks):
        """The measurement tables ``chunks`` as timeseries rows (sorted by particle, frame;
        capacity as known now, the ``dataset`` column)."""
        import pandas as pd

        ts = pd.concat(chunks, ignore_index=True)
        ts = ts.sort_values(["particle_id", "frame"], kind="stable", ignore_index=True)
        frames = ts["frame"].to_numpy()
        ts["capacity_mAh_g"] = self._cap[frames]
        ts.insert(0, "dataset", self.name)
        # the cycler's clock is the movie's here (offset 0), as asymflux analyze's columns
        at = list(ts.columns).index("capacity_mAh_g") + 1
        ts.insert(at, "cycler_time_s", ts["time_s"].to_numpy(np.float64))
        ts.insert(at + 1, "voltage_V", self._cyc[frames, 0])
        ts.insert(at + 2, "current_mA", self._cyc[frames, 1])
        return ts

    @property
    def particles(self):
        """One row per particle: :func:`asymflux.analysis.summarize_particles` of the
        frames so far, with ``dataset`` and ``ageing`` as ``asymflux analyze`` writes."""
        from asymflux.analysis import summarize_particles

        ts = self.timeseries
        kw = {}
        if self.asymmetry_threshold is not None:
            kw["asymmetry_threshold"] = self.asymmetry_threshold
        if not len(ts):
            import pandas as pd

            from asymflux.analysis import PARTICLE_COLUMNS

            return pd.DataFrame({c: [] for c in ["dataset", "ageing", *PARTICLE_COLUMNS]})
        p = summarize_particles(ts, **kw)
        if "ageing" not in p.columns:
            p.insert(1, "ageing", "unknown")
        p["dataset"] = self.name
        return p

    # ------------------------------------------------------------------ the end
    def finish(self, *, progress=False) -> FinalResult:
        """The finished files through the batch pipeline (``asymflux analyze``'s code path),
        compared with the live values.

        Call when :attr:`finished` (or when the source stopped growing: the last frame,
        withheld while it might be half written, is then measured too).

        Returns
        -------
        FinalResult
        """
        self.movie.finish()
        self.update()
        self._probe_last()
        self.movie.close()
        try:
            return self._final(progress)
        except OSError as e:
            where = e.filename or self.movie.path
            raise DatasetError(f"{where}: cannot read it for the batch analysis of the finished "
                               f"files ({e.strerror or type(e).__name__})") from e

    def _final(self, progress):
        from asymflux.analysis import analyze_path

        options = {"threshold": self.threshold, "register": self.register,
                   "edge_px": self.edge_px, "normalize": self.normalize_option}
        if self.asymmetry_threshold is not None:
            options["asymmetry_threshold"] = self.asymmetry_threshold
        read = {"echem": self.echem_path, "active_mass_mg": self.active_mass_mg}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            particles, ts, labels, name = analyze_path(
                self.movie.path, pixel_nm=self._given["pixel_nm"],
                frame_interval_s=self._given["frame_interval_s"], masks=self.masks,
                options=options, progress=progress, read=read, cache=self.cache,
                illumination=self.illumination_option, dark=self.dark, flat=self.flat)
        particles["dataset"] = name
        ts["dataset"] = name
        diff = compare_timeseries(self.timeseries, ts)
        self.final = FinalResult(particles, ts, labels, diff)
        return self.final

    def close(self):
        self.movie.close()
        if self.cycler is not None:
            self.cycler.close()


def _warm_up():
    """Import what measuring a frame needs now, not when the first frame lands (seconds on a
    busy machine: the first frames would otherwise wait for the imports)."""
    import pandas  # noqa: F401
    import scipy.ndimage  # noqa: F401
    import skimage.morphology  # noqa: F401

    from asymflux.analysis import (  # noqa: F401 - each imports its module
        detect_particles,
        estimate_drift,
        particle_timeseries,
        summarize_particles,
    )


def compare_timeseries(live, batch) -> dict:
    """Largest |live − batch| per numeric column, matching rows by (particle_id, frame);
    a row or a NaN on one side only counts as inf."""
    cols = [c for c in batch.columns if c not in ("dataset", "particle_id", "frame")
            and np.issubdtype(batch[c].dtype, np.number)]
    key = ["particle_id", "frame"]
    m = batch[key + cols].merge(live[key + cols], on=key, how="outer",
                                suffixes=("_batch", "_live"), indicator=True)
    out = {}
    both = (m["_merge"] == "both").to_numpy()
    for c in cols:
        a = m[f"{c}_batch"].to_numpy(np.float64)
        b = m[f"{c}_live"].to_numpy(np.float64)
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        d = np.where(nan_a & nan_b, 0.0, np.abs(a - b))
        d = np.where(nan_a ^ nan_b, np.inf, d)
        d = np.where(both, d, np.inf)
        out[c] = float(np.max(d)) if d.size else 0.0
    return out
