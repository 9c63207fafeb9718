"""Write a movie and a cycler CSV frame by frame, the way an instrument does (``demo-live``).

:class:`LiveWriter` appends frames to an HDF5 file in SWMR mode, a zarr array or a folder
of TIFF files, and rows to a CSV, so that a reader following them
(:class:`asymflux.live.LiveAnalysis`) can tell complete frames and rows from partial ones:

- HDF5: created with ``libver="latest"`` under a temporary name, switched to SWMR mode and
  then renamed into place (a reader never meets a file not yet in SWMR mode). ``movie``
  (uint16, chunks of one frame) and ``camera_timing`` are resized and flushed per frame;
  the frame counter ``frames_written`` is written and flushed *last*.
- zarr: one chunk per frame, appended along axis 0; the attribute ``frames_written`` is
  updated after the chunk is written.
- TIFF folder: each frame is written to a hidden temporary name (``.frame_00012.tif.part``)
  and renamed to ``frame_00012.tif``.
- cycler CSV: each row is appended, flushed, and may be written in two parts (``split``),
  so a reader can meet a half-written last line.

:meth:`LiveWriter.finish` closes the movie and then leaves the marker
``<movie>.finished`` (:func:`asymflux.live.finished_marker`); a marker left from an earlier
run is removed when the writer starts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ._sources import FRAMES_WRITTEN, finished_marker

__all__ = ["LiveWriter", "MOVIE_NAMES", "write_demo_live"]

#: The movie's name in a demo-live folder, per format.
MOVIE_NAMES = {"h5": "movie.h5", "zarr": "movie.zarr", "tiff": "frames"}
CYCLER_NAME = "cycler.csv"
CYCLER_COLUMNS = ("time_s", "voltage_V", "current_mA", "charge_mAh")


class LiveWriter:
    """Append frames (and cycler rows) to a movie that readers may follow.

    Parameters
    ----------
    movie : path
        ``*.h5`` (HDF5, SWMR), ``*.zarr`` or a folder for TIFF frames (created).
    frame_shape : (n_row, n_col)
    pixel_nm : float
        Written into the file (HDF5 ``movie`` attribute, zarr attribute); not into TIFFs.
    frame_interval_s : float, optional
        zarr: attribute ``frame_interval_s`` (the frame times). HDF5 takes each frame's
        time in :meth:`write_frame` (``camera_timing``, s).
    cycler : path, optional
        CSV to append rows to (header :data:`CYCLER_COLUMNS`).
    dtype : numpy dtype
        Of the frames (default uint16).
    """

    def __init__(self, movie, *, frame_shape, pixel_nm, frame_interval_s=None, cycler=None,
                 dtype=np.uint16):
        self.movie = Path(movie)
        self.kind = ("h5" if self.movie.suffix.lower() in (".h5", ".hdf5") else
                     "zarr" if self.movie.suffix.lower() == ".zarr" else "tiff")
        self.frame_shape = tuple(int(n) for n in frame_shape)
        self.dtype = np.dtype(dtype)
        self.n_frames = 0
        self._csv = None
        # a marker left by an earlier run would say this movie is finished before it starts
        finished_marker(self.movie).unlink(missing_ok=True)
        if self.kind == "h5":
            self._open_h5(pixel_nm)
        elif self.kind == "zarr":
            import zarr

            attrs = {"pixel_nm": float(pixel_nm), FRAMES_WRITTEN: 0}
            if frame_interval_s is not None:
                attrs["frame_interval_s"] = float(frame_interval_s)
            self._z = zarr.create_array(store=str(self.movie), shape=(0, *self.frame_shape),
                                        chunks=(1, *self.frame_shape), dtype=self.dtype,
                                        attributes=attrs)
        else:
            self.movie.mkdir(parents=True, exist_ok=False)
        if cycler is not None:
            self._csv = open(cycler, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._csv.write(",".join(CYCLER_COLUMNS) + "\n")
            self._csv.flush()

    def _open_h5(self, pixel_nm):
        import h5py

        tmp = self.movie.with_name(f".{self.movie.name}.part")
        f = h5py.File(tmp, "w", libver="latest")
        r, c = self.frame_shape
        self._movie = f.create_dataset("movie", shape=(0, r, c), maxshape=(None, r, c),
                                       chunks=(1, r, c), dtype=self.dtype)
        self._movie.attrs["pixel_nm"] = float(pixel_nm)
        self._timing = f.create_dataset("camera_timing", shape=(0,), maxshape=(None,),
                                        chunks=(256,), dtype=np.float64)
        self._timing.attrs["units"] = "s"
        self._count = f.create_dataset(FRAMES_WRITTEN, data=np.int64(0))
        f.swmr_mode = True
        os.replace(tmp, self.movie)
        self._f = f

    # ------------------------------------------------------------------ frames
    def write_frame(self, frame, *, time_s=None, complete=True):
        """Append one frame (n_row, n_col).

        Parameters
        ----------
        frame : (n_row, n_col) array
        time_s : float, optional
            HDF5: the frame's time, s (``camera_timing``); required there.
        complete : bool
            Mark it complete (the frame counter, or the TIFF rename). ``False`` leaves it
            half written, as an instrument between writing the pixels and marking them
            (for tests); :meth:`mark_complete` finishes it.
        """
        frame = np.asarray(frame, dtype=self.dtype).reshape(self.frame_shape)
        k = self.n_frames
        if self.kind == "h5":
            if time_s is None:
                raise ValueError("write_frame: time_s is required for HDF5 movies")
            self._movie.resize(k + 1, axis=0)
            self._movie[k] = frame
            self._timing.resize(k + 1, axis=0)
            self._timing[k] = float(time_s)
            self._movie.flush()
            self._timing.flush()
        elif self.kind == "zarr":
            self._z.append(frame[None], axis=0)
        else:
            import tifffile

            tifffile.imwrite(self._part(k), frame)
        self.n_frames = k + 1
        if complete:
            self.mark_complete()

    def _part(self, k):
        return self.movie / f".frame_{k:05d}.tif.part"

    def mark_complete(self):
        """Say that every frame written so far is complete."""
        n = self.n_frames
        if self.kind == "h5":
            self._count[()] = n
            self._count.flush()
        elif self.kind == "zarr":
            self._z.attrs[FRAMES_WRITTEN] = n
        else:
            for k in range(n):
                part = self._part(k)
                if part.exists():
                    os.replace(part, self.movie / f"frame_{k:05d}.tif")

    # ------------------------------------------------------------------ cycler
    def write_row(self, values, *, split=False, pause_s=0.0):
        """Append one cycler row (values of :data:`CYCLER_COLUMNS`), flushed.

        ``split=True`` writes it in two parts, flushed apart (``pause_s`` between them), so
        a reader may see the first half alone.
        """
        line = ",".join(repr(float(v)) for v in values) + "\n"
        if split:
            half = len(line) // 2
            self._csv.write(line[:half])
            self._csv.flush()
            if pause_s:
                time.sleep(pause_s)
            line = line[half:]
        self._csv.write(line)
        self._csv.flush()

    def write_partial_row(self, text):
        """Append text without a newline (a row the cycler has not finished)."""
        self._csv.write(text)
        self._csv.flush()

    # ------------------------------------------------------------------ end
    def close(self):
        """Close the files (no finished marker)."""
        if self.kind == "h5" and getattr(self, "_f", None) is not None:
            self._f.close()
            self._f = None
        if self._csv is not None:
            self._csv.close()
            self._csv = None

    def finish(self):
        """Close everything, then leave the marker ``<movie>.finished``."""
        from .._atomic import write_text_atomic

        self.close()
        write_text_atomic(finished_marker(self.movie), f"{self.n_frames}\n")


def write_demo_live(out, *, dataset="fresh", n_frames=None, interval_s=1.0, fmt="h5",
                    split_rows=True, log=print):
    """Write a demo dataset into ``out`` progressively, as an instrument records it.

    The dataset is simulated once (:func:`asymflux.datasets.load`, cached); then, every
    ``interval_s`` seconds, the cycler rows up to the next frame's time are appended to
    ``out/cycler.csv`` and the frame to the movie. ``out/live.json`` says what is where
    (read by ``asymflux watch OUT``).

    Parameters
    ----------
    out : path
        Folder (created; must be new or empty).
    dataset : str, keyword-only
        A demo dataset (:func:`asymflux.datasets.list_datasets`).
    n_frames : int, optional, keyword-only
        Write only the first ``n_frames`` frames (default all).
    interval_s : float, keyword-only
        Wall-clock seconds between frames (0: as fast as possible).
    fmt : {"h5", "zarr", "tiff"}, keyword-only
    split_rows : bool, keyword-only
        Write every cycler row in two flushed parts (a reader sees half lines).
    log : callable or None, keyword-only
        Called with a progress line per frame.

    Returns
    -------
    dict
        The manifest written to ``out/live.json``.
    """
    import json

    from .. import datasets
    from .._atomic import write_text_atomic

    if fmt not in MOVIE_NAMES:
        raise ValueError(f"--format {fmt!r}: expected one of {', '.join(MOVIE_NAMES)}")
    ds = datasets.load(dataset, lazy=False)
    stack = np.asarray(ds.stack)
    total = stack.shape[0]
    n = total if n_frames is None else int(n_frames)
    if not 2 <= n <= total:
        raise ValueError(f"--frames {n}: the demo dataset {dataset!r} has {total} frames; "
                         f"expected 2 to {total}")
    time_s = np.asarray(ds.time_s, dtype=np.float64)[:n]
    step = np.diff(time_s)
    interval = float(step[0])
    if not np.allclose(step, interval, rtol=0, atol=1e-9):
        raise ValueError(f"demo dataset {dataset!r}: frames are not evenly spaced")
    mass = float(ds.metadata.get("active_mass_mg", datasets.ACTIVE_MASS_MG))
    echem = ds.echem
    et = echem["time_s"].to_numpy(np.float64)
    keep = et <= time_s[-1] + 1e-9
    charge = np.round(echem["capacity_mAh_g"].to_numpy(np.float64) * mass / 1000.0, 12)
    rows = np.column_stack([et, echem["voltage_V"].to_numpy(np.float64),
                            echem["current_mA"].to_numpy(np.float64), charge])[keep]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    movie = out / MOVIE_NAMES[fmt]
    cycler = out / CYCLER_NAME
    reading = [] if fmt != "tiff" else ["--pixel-nm", f"{ds.pixel_nm:g}",
                                        "--frame-interval-s", f"{interval:g}"]
    manifest = {
        "format": "asymflux-live", "version": 1, "dataset": dataset, "movie": movie.name,
        "echem": cycler.name, "active_mass_mg": mass, "pixel_nm": float(ds.pixel_nm),
        "frame_interval_s": interval, "n_frames": n, "movie_format": fmt,
        "finished_marker": finished_marker(movie).name,
        "analyze": " ".join(["asymflux", "analyze", str(movie), "--echem", str(cycler),
                             "--active-mass-mg", f"{mass:g}", *reading, "--out", "DIR"]),
    }
    writer = LiveWriter(movie, frame_shape=stack.shape[1:], pixel_nm=ds.pixel_nm,
                        frame_interval_s=interval, cycler=cycler, dtype=stack.dtype)
    write_text_atomic(out / "live.json", json.dumps(manifest, indent=2) + "\n")
    if log:
        log(f"writing {n} frames of {dataset!r} ({fmt}) into {out}, one every {interval_s:g} s")
    due = time.monotonic()  # the next frame's wall-clock time (no catching up after a pause)
    pause = min(0.05, 0.2 * interval_s)
    r = 0
    try:
        for k in range(n):
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            due = max(due, time.monotonic() - 0.5 * interval_s) + interval_s
            while r < len(rows) and rows[r, 0] <= time_s[k] + 1e-9:
                writer.write_row(rows[r], split=split_rows, pause_s=pause)
                r += 1
            writer.write_frame(stack[k], time_s=time_s[k])
            if log:
                log(f"frame {k + 1}/{n} (t = {time_s[k]:g} s)")
        while r < len(rows):
            writer.write_row(rows[r])
            r += 1
    except BaseException:
        writer.close()
        raise
    writer.finish()
    if log:
        log(f"finished: {n} frames in {movie}, cycler {cycler}; marker "
            f"{finished_marker(movie).name}")
    return manifest
