"""Growing inputs: a movie being written (HDF5 SWMR, zarr, TIFF folder) and a cycler file.

Every source answers two questions without reading more than it must:

- how many frames are *complete* (:meth:`MovieSource.poll`), and
- the pixels of frames ``k0:k1`` of those (:meth:`MovieSource.read`).

A frame is complete, in this order of evidence:

1. the writer's frame counter says so: the HDF5 dataset ``frames_written`` (next to
   ``movie``) or the zarr attribute ``frames_written``, written by the writer *after*
   the frame's pixels were flushed (``asymflux demo-live`` does);
2. a TIFF file (hidden files and other suffixes are never read, as
   :func:`asymflux.io.read_tiff_folder` ignores them) once tifffile reads all of it and
   either a later frame file exists, or its size held across two polls, or the source
   is finished: a frame written in place is never read half written. A file that does
   not read although a later frame exists (or the source is finished) is an error
   naming it (:class:`FrameError`);
3. otherwise (an HDF5 or zarr writer without a counter) frame ``k`` is complete when frame
   ``k + 1`` exists, so the last frame, which may be half written, is withheld
4. until the source is *finished*: a marker file ``<movie>.finished`` beside the movie
   (``movie.h5.finished``, ``movie.zarr.finished``, ``frames.finished``) no older than the
   movie's data (a stale marker, left by an earlier run, is ignored:
   :attr:`MovieSource.stale_marker`), or the caller decides the source stopped growing
   (idle timeout) and calls :meth:`MovieSource.finish`.

A frame *exists* when its pixels are stored, not when a pre-declared shape reaches it: an
HDF5 dataset or zarr array created with its final shape is counted by its written chunks
(HDF5: the chunk index, zarr: the chunk keys in the store), looked up for the new frames
only, and the declared shape is never read or allocated.

The cycler file is read by :class:`CyclerTail`: a text file (CSV, EC-Lab ``.mpt``) up to
its last complete line only (a half-written last row is never parsed), a binary file
(``.mpr``) whole, each time it grows, through :func:`asymflux.io.read_echem` -- the reader
``asymflux analyze --echem`` uses -- so the capacities agree with the batch ones.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np

from asymflux.io import DatasetError

__all__ = ["CyclerTail", "FrameError", "MovieSource", "finished_marker", "open_movie"]


class FrameError(DatasetError):
    """A frame file of a growing movie that will not become readable (junk, or a frame of
    another shape): raised by :meth:`MovieSource.poll`, not retried."""

#: Name of the writer's frame counter: an HDF5 dataset beside ``movie`` or a zarr attribute.
FRAMES_WRITTEN = "frames_written"

_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
_TIFF_SUFFIXES = (".tif", ".tiff")
#: TIFF frames kept from the completeness check until read (the rest are read again).
_TIFF_KEEP = 32


def finished_marker(movie) -> Path:
    """The marker a writer leaves when a movie is complete: ``<movie>.finished`` beside it."""
    movie = Path(movie)
    return movie.with_name(movie.name + ".finished")


def _written_frames(shape, chunks, done, exists) -> int:
    """How many leading frames have their pixels stored: chunk units along axis 0 from the
    one holding frame ``done`` (known written before) on, while every chunk of the unit
    exists (``exists(grid_index)``); a missing unit followed by a written one counts too
    (zarr does not store a chunk that is all fill value). A unit of several frames counts
    all of them."""
    c0 = max(1, int(chunks[0]))
    tiles = list(itertools.product(*(range(-(-int(n) // max(1, int(c))))
                                     for n, c in zip(shape[1:], chunks[1:], strict=True))))

    def unit(j):
        return all(exists((j, *t)) for t in tiles)

    j = done // c0
    while j * c0 < shape[0] and (unit(j) or ((j + 1) * c0 < shape[0] and unit(j + 1))):
        j += 1
    return min(int(shape[0]), j * c0)


def movie_kind(path) -> str:
    """``"hdf5"``, ``"zarr"`` or ``"tiff-folder"`` from the path's name (and, for a folder
    that is not ``.zarr``, its being a folder); ValueError naming the path otherwise."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(_HDF5_SUFFIXES):
        return "hdf5"
    if name.endswith(".zarr") or (path / "zarr.json").is_file() or (path / ".zarray").is_file():
        return "zarr"
    if path.is_dir():
        return "tiff-folder"
    raise ValueError(f"{path}: cannot follow this kind of movie while it is written; expected an "
                     "HDF5 file (.h5), a zarr array (.zarr) or a folder of TIFF frames")


class MovieSource:
    """A movie that may still be growing (base class; see :func:`open_movie`).

    Attributes
    ----------
    path : Path
    kind : str
        ``"hdf5"``, ``"zarr"`` or ``"tiff-folder"``.
    n_complete : int
        Frames known complete after the last :meth:`poll`.
    """

    kind = "?"
    #: The count ``_poll`` returns holds also once the source is finished (TIFF files
    #: that were checked), rather than every frame present.
    _count_is_final = False

    def __init__(self, path, *, pixel_nm=None, frame_interval_s=None):
        self.path = Path(path)
        self._pixel_nm = pixel_nm
        self.frame_interval_s = frame_interval_s
        self.n_complete = 0
        self.n_seen = 0  # frames present (complete or not)
        self.last_error = None  # why the last poll could not read the movie
        self.stale_marker = False  # a finished marker older than the movie's data was seen
        self._finished = False
        self._written = 0  # frames known to have their pixels stored

    # -- to implement
    def _poll(self, finished: bool) -> tuple[int, int | None]:
        """``(frames present, frames the writer says are complete or None)``."""
        raise NotImplementedError

    def _data_mtime_ns(self):
        """When the movie's data last changed (ns), for telling a stale marker."""
        return self.path.stat().st_mtime_ns

    def read(self, k0: int, k1: int) -> np.ndarray:
        """Frames ``k0:k1`` (all < :attr:`n_complete`): (k1 - k0, row, col) array."""
        raise NotImplementedError

    def file_pixel_nm(self):
        return None

    def file_time_s(self, n):
        return None

    def frame_intensity(self, n):
        """The writer's per-frame illumination of the first ``n`` frames, or None."""
        return None

    def close(self) -> None:
        pass

    # -- common
    @property
    def exists(self) -> bool:
        return self.path.exists()

    @property
    def marker_present(self) -> bool:
        """The writer's finished marker is there and no older than the movie's data (a
        marker older than the data is left from an earlier run: ignored)."""
        try:
            marker = finished_marker(self.path).stat().st_mtime_ns
        except OSError:
            return False
        try:
            data = self._data_mtime_ns()
        except OSError:
            data = None
        if data is not None and marker < data:
            self.stale_marker = True
            return False
        return True

    def finish(self) -> None:
        """Declare the movie complete (writer gone): every present frame counts."""
        self._finished = True

    @property
    def finished(self) -> bool:
        return self._finished or self.marker_present

    def poll(self) -> int:
        """Look at the source again; return the number of complete frames (never fewer
        than before)."""
        finished = self.finished  # looked at before the frames: a marker means all are in
        if not self.exists:
            return self.n_complete
        try:
            present, counted = self._poll(finished)
        except FrameError:
            raise  # a frame that will not become readable: not a retry
        except (OSError, ValueError, KeyError) as e:  # being created or rewritten: next poll
            self.last_error = " ".join(str(e).split()) or type(e).__name__
            return self.n_complete
        self.last_error = None
        self.n_seen = present
        if finished and not self._count_is_final:
            n = present  # the writer is done: every frame the finished file holds
        elif counted is not None:
            n = min(counted, present)
        else:
            n = max(0, present - 1)  # the last frame may be half written
        self.n_complete = max(self.n_complete, n)
        return self.n_complete

    @property
    def pixel_nm(self):
        """The given pixel size, else the file's (nm), else None."""
        return self._pixel_nm if self._pixel_nm is not None else self.file_pixel_nm()

    def time_s(self, n: int) -> np.ndarray:
        """Times of the first ``n`` frames, s, as :func:`asymflux.io.read_dataset` gives them
        for the finished file (a prefix of them)."""
        if self.frame_interval_s is not None:
            return np.arange(n, dtype=np.float64) * float(self.frame_interval_s)
        t = self.file_time_s(n)
        if t is None:
            raise ValueError(f"{self.path}: the movie does not give frame times: pass "
                             "--frame-interval-s S (frame_interval_s=)")
        return t


# ----------------------------------------------------------------------------- HDF5


class _Prefix:
    """The first ``n`` values of an h5py dataset, looking like one (``[()]``, attrs, name)."""

    def __init__(self, dset, n):
        self._d, self._n = dset, n
        self.attrs, self.name, self.shape = dset.attrs, dset.name, (n, *dset.shape[1:])

    def __getitem__(self, key):
        if key != ():
            raise KeyError(key)
        if self._d.ndim == 2 and _frame_axis(self._d) == 1:  # traces along axis 0
            return self._d[:, : self._n]
        return self._d[: self._n]  # never the whole (perhaps pre-declared) dataset


def _frame_axis(dset) -> int:
    """The axis of a 2-D timing dataset that counts frames: the one that can grow (the
    writer resizes it frame by frame), else the longer one."""
    if dset.ndim != 2:
        return 0
    growing = [k for k, m in enumerate(dset.maxshape or ()) if m is None]
    if len(growing) == 1:
        return growing[0]
    return 1 if dset.shape[1] > dset.shape[0] else 0


def _counter(value, *, source) -> int:
    """The writer's frame counter as a whole number >= 0, else ValueError naming it (the
    poll then waits: a counter being written, or one that lies, never counts frames)."""
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iuf":
        raise ValueError(f"{source}: the frame counter must be one whole number, got {value!r}")
    v = float(arr.reshape(-1)[0])
    if not np.isfinite(v) or v < 0 or v != int(v):
        raise ValueError(f"{source}: the frame counter must be a whole number >= 0, got {v!r}")
    return int(v)


class HDF5Movie(MovieSource):
    """An HDF5 movie of the instrument layout (``movie`` + ``camera_timing``), followed in
    SWMR read mode: ``refresh()`` of the datasets at every poll."""

    kind = "hdf5"

    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        self._f = None
        self._swmr = False

    def _open(self):
        import h5py

        from asymflux.io.instrument import find_layout

        if self._f is not None:
            return
        try:
            f = h5py.File(self.path, "r", libver="latest", swmr=True)
            self._swmr = True
        except OSError:  # not written in SWMR mode (or by an older HDF5): plain reads
            f = h5py.File(self.path, "r")
            self._swmr = False
        try:
            group = find_layout(f)
        except Exception:
            f.close()
            raise
        if group is None:
            names = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            f.close()
            if not names:  # a file just created: nothing in it yet
                raise OSError(f"{self.path}: no dataset yet")
            raise ValueError(f"{self.path}: no 3-D dataset 'movie' (the instrument layout); it "
                             f"holds {names[:8]}")
        self._f, self._group = f, group

    def _datasets(self):
        g = self._group
        return g["movie"], g.get("camera_timing"), g.get(FRAMES_WRITTEN), g.get("average_intensity")

    def _poll(self, finished):
        if self._f is not None and not self._swmr:  # a plain file: open it again to see more
            self.close()
        self._open()
        movie, timing, counter, _ = self._datasets()
        for d in (movie, timing, counter):
            if d is not None and self._swmr:
                d.refresh()
        present = self._written = self._stored_frames(movie)
        if timing is not None and timing.ndim in (1, 2):
            present = min(present, int(timing.shape[_frame_axis(timing)]))
        counted = None if counter is None else _counter(
            counter[()] if counter.size else [], source=f"{self.path}:{counter.name}")
        return present, counted

    def _stored_frames(self, movie) -> int:
        """Frames whose chunks are in the file (a contiguous dataset: its shape, once it
        has storage)."""
        if movie.chunks is None:
            return int(movie.shape[0]) if movie.id.get_storage_size() else 0
        if not hasattr(movie.id, "get_chunk_info_by_coord"):  # HDF5 < 1.10.5: the shape
            return int(movie.shape[0])
        chunks = movie.chunks

        def exists(index):
            offset = tuple(i * c for i, c in zip(index, chunks, strict=True))
            return movie.id.get_chunk_info_by_coord(offset).byte_offset is not None

        return _written_frames(movie.shape, chunks, self._written, exists)

    def read(self, k0, k1):
        self._open()
        movie = self._datasets()[0]
        if self._swmr:
            movie.refresh()
        return np.asarray(movie[k0:k1])

    def file_pixel_nm(self):
        from asymflux.io.instrument import layout_pixel_nm

        self._open()
        return layout_pixel_nm(self._f, self._group, self._group["movie"], source=self.path)

    def file_time_s(self, n):
        from asymflux.io.instrument import camera_times

        self._open()
        timing = self._datasets()[1]
        if timing is None:
            raise ValueError(f"{self.path}: no dataset 'camera_timing' (the frame times) next to "
                             "the movie; pass --frame-interval-s S")
        if self._swmr:
            timing.refresh()
        t, *_ = camera_times(_Prefix(timing, n), n, source=f"{self.path}:{timing.name}",
                             hint="pass --frame-interval-s")
        return t

    def frame_intensity(self, n):
        self._open()
        avg = self._datasets()[3]
        if avg is None:
            return None
        if self._swmr:
            avg.refresh()
        return np.asarray(avg[:n], dtype=np.float64)

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None


# ----------------------------------------------------------------------------- zarr


class ZarrMovie(MovieSource):
    """A zarr array appended along axis 0; its metadata is read again at every poll."""

    kind = "zarr"

    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        self._arr = self._attrs = None

    def _open_array(self):
        from asymflux.io.stacks import open_zarr_array

        arr, attrs = open_zarr_array(self.path)  # DatasetError (ValueError) while half made
        self._arr, self._attrs = arr, attrs
        return arr, attrs

    def _poll(self, finished):
        arr, attrs = self._open_array()
        if arr.ndim != 3:
            raise ValueError(f"{self.path}: expected a 3-D (time, row, col) array")
        counted = attrs.get(FRAMES_WRITTEN)
        self._written = present = self._stored_frames(arr)
        return present, None if counted is None else _counter(
            counted, source=f"{self.path}: attribute {FRAMES_WRITTEN}")

    def _stored_frames(self, arr) -> int:
        """Frames whose chunks (shards) are keys of the store (the declared shape is not)."""
        try:
            from zarr.core.sync import sync

            store, encode = arr.store_path, arr.metadata.encode_chunk_key
        except (ImportError, AttributeError):  # zarr 2: the shape
            return int(arr.shape[0])
        prefix = f"{store.path}/" if store.path else ""
        grid = getattr(arr, "shards", None) or arr.chunks

        def exists(index):
            return sync(store.store.exists(prefix + encode(index)))

        return _written_frames(arr.shape, grid, self._written, exists)

    def _data_mtime_ns(self):
        names = ("zarr.json", ".zarray", ".zattrs", ".zgroup")
        times = [(self.path / n).stat().st_mtime_ns for n in names if (self.path / n).exists()]
        return max([self.path.stat().st_mtime_ns, *times])

    def read(self, k0, k1):
        if self._arr is None or self._arr.shape[0] < k1:
            self._open_array()
        return np.asarray(self._arr[k0:k1])

    def file_pixel_nm(self):
        if self._attrs is None:
            self._open_array()
        px = self._attrs.get("pixel_nm")
        return None if px is None else float(px)

    def file_time_s(self, n):
        from asymflux.io.stacks import attrs_pixel_and_time

        if self._attrs is None:
            self._open_array()
        attrs = dict(self._attrs)
        if attrs.get("time_s") is not None:
            attrs["time_s"] = list(attrs["time_s"])[:n]
        return attrs_pixel_and_time(attrs, n, source=self.path)[1]


# ----------------------------------------------------------------------------- TIFF


class TiffFolderMovie(MovieSource):
    """A folder receiving one TIFF file per frame (complete once it has its final name)."""

    kind = "tiff-folder"
    _count_is_final = True

    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        self._files: list[Path] = []
        self._sizes: dict = {}  # size of each not yet complete file at the last poll
        self._ready: dict = {}  # frame index -> pixels read while checking it, until read()
        self._shape = None

    def _poll(self, finished):
        from asymflux.io.stacks import tiff_files

        self._files = files = tiff_files(self.path)
        k, sizes = self._written, {}
        while k < len(files):
            f = files[k]
            try:
                size = f.stat().st_size
            except FileNotFoundError:  # renamed or removed since the listing: next poll
                break
            later = k + 1 < len(files)
            stable = self._sizes.get(f.name) == size
            sizes[f.name] = size
            if not (later or stable or finished):  # may still be written in place
                break
            try:
                frame = _read_tiff(f)
            except Exception as e:  # noqa: BLE001 - which error depends on where it is cut
                if later or finished:
                    raise FrameError(f"{f}: not a readable TIFF frame ({type(e).__name__}: "
                                     f"{' '.join(str(e).split())}); remove it or replace "
                                     "it with the frame") from None
                break  # the last file, stable but not whole yet: a slow writer
            if self._shape is None:
                self._shape = frame.shape
            elif frame.shape != self._shape:
                raise FrameError(f"{f}: a frame of shape {frame.shape}, the movie's frames "
                                 f"are {self._shape}")
            if len(self._ready) < _TIFF_KEEP:  # a catch-up of many files: read again later
                self._ready[k] = frame
            k += 1
        self._sizes, self._written = sizes, k
        return len(files), k

    def read(self, k0, k1):
        return np.stack([self._ready.pop(k) if k in self._ready else _read_tiff(f)
                         for k, f in enumerate(self._files[k0:k1], start=k0)])

    def _data_mtime_ns(self):
        return self.path.stat().st_mtime_ns  # a frame file added or renamed into it

    def file_pixel_nm(self):
        from asymflux.io.stacks import imagej_pixel_and_time, ome_pixel_and_time, open_tiff

        if not self._files:
            return None
        tif = open_tiff(self._files[0])
        try:
            if tif.is_ome:
                return ome_pixel_and_time(tif, 1)[0]
            if tif.is_imagej:
                return imagej_pixel_and_time(tif, 1)[0]
        finally:
            tif.close()
        return None


def _read_tiff(path):
    import tifffile

    a = tifffile.imread(path)
    return a.reshape(tuple(n for n in a.shape if n > 1)) if a.ndim > 2 else a


def open_movie(path, *, pixel_nm=None, frame_interval_s=None, kind=None) -> MovieSource:
    """A :class:`MovieSource` for ``path`` (HDF5 file, zarr array or TIFF folder).

    Parameters
    ----------
    path : str or Path
    pixel_nm : float, optional, keyword-only
        Overrides the file's pixel size, nm.
    frame_interval_s : float, optional, keyword-only
        Frame ``k`` at ``k * frame_interval_s`` s (needed for TIFF folders).
    kind : {"hdf5", "zarr", "tiff-folder"}, optional, keyword-only
        Default: from the path (:func:`movie_kind`); give it for a movie not created yet.
    """
    kind = kind or movie_kind(path)
    cls = {"hdf5": HDF5Movie, "zarr": ZarrMovie, "tiff-folder": TiffFolderMovie}[kind]
    return cls(path, pixel_nm=pixel_nm, frame_interval_s=frame_interval_s)


# ----------------------------------------------------------------------------- cycler


_TEXT_PROBE = 4096


def _is_text(head: bytes) -> bool:
    if not head:
        return True
    if b"\0" in head or head.startswith(b"BIO-LOGIC") or head.startswith(b"PK"):
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        try:
            head.decode("cp1252")
        except UnicodeDecodeError:
            return False
    return True


class CyclerTail:
    """A cycler file that grows: its complete records, read again when it grows.

    Parameters
    ----------
    path : str or Path
        CSV / text export (read up to its last newline) or a binary file such as an EC-Lab
        ``.mpr`` (read whole; a read that fails while the cycler is writing is retried at
        the next growth).
    active_mass_mg : float, optional
        Passed to :func:`asymflux.io.read_echem` (``capacity_mAh_g``).

    Attributes
    ----------
    table : pandas.DataFrame or None
        The last complete read (:func:`asymflux.io.read_echem` columns).
    error : str or None
        Why the last read failed (kept until a read succeeds).
    """

    def __init__(self, path, *, active_mass_mg=None):
        self.path = Path(path)
        self.active_mass_mg = active_mass_mg
        self.table = None
        self.error = None
        self._size = self._done = -1
        self._tmp = None

    def poll(self) -> bool:
        """Read the file again if it grew; True when :attr:`table` changed."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode):  # a FIFO or a device would block or never end
            raise DatasetError(f"{self.path}: the cycler file must be a regular file "
                               "(not a pipe, a device or a folder)")
        size = st.st_size
        if size == self._size:
            return False
        with open(self.path, "rb") as fh:
            data = fh.read()
        if _is_text(data[:_TEXT_PROBE]):
            complete = data[: data.rfind(b"\n") + 1]  # never a half-written last line
            if complete.count(b"\n") < 2:  # header only (or not even that): no record yet
                return False
        else:
            complete = data
        if len(complete) == self._done:  # only a half line was added
            self._size = len(data)
            return False
        changed = self._read(complete)
        if self.error is None:  # a failed read (binary file mid-write) is tried again
            self._size, self._done = len(data), len(complete)
        return changed

    def _read(self, content: bytes) -> bool:
        import warnings

        from asymflux.io import EchemWarning, read_echem

        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="asymflux-live-"))
        snap = self._tmp / self.path.name  # same name: the reader sniffs content, not suffix
        snap.write_bytes(content)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EchemWarning)
                table = read_echem(snap, active_mass_mg=self.active_mass_mg)
        except ValueError as e:
            self.error = str(e).replace(str(snap), str(self.path))
            return False
        self.error = None
        if self.table is not None and len(table) == len(self.table):
            return False
        self.table = table
        return True

    @property
    def last_time_s(self) -> float:
        """Time of the last record with a finite capacity, s (−inf without one)."""
        if self.table is None or "capacity_mAh_g" not in self.table:
            return -np.inf
        t = self.table["time_s"].to_numpy(np.float64)
        ok = np.isfinite(t) & np.isfinite(self.table["capacity_mAh_g"].to_numpy(np.float64))
        return float(t[ok].max()) if ok.any() else -np.inf

    def capacity_at(self, time_s) -> np.ndarray:
        """Capacity at ``time_s`` (mAh/g), interpolated as
        :meth:`asymflux.io.Dataset.capacity_report` does (NaN outside the records)."""
        return self.column_at("capacity_mAh_g", time_s)

    def column_at(self, column, time_s) -> np.ndarray:
        """``column`` of the records (e.g. ``voltage_V``) at ``time_s``, linearly
        interpolated between its finite values (NaN outside them, or without it)."""
        time_s = np.asarray(time_s, dtype=np.float64)
        if self.table is None or column not in self.table:
            return np.full(time_s.shape, np.nan)
        t = self.table["time_s"].to_numpy(np.float64)
        v = self.table[column].to_numpy(np.float64)
        good = np.isfinite(v) & np.isfinite(t)
        if not good.any():
            return np.full(time_s.shape, np.nan)
        return np.interp(time_s, t[good], v[good], left=np.nan, right=np.nan)

    def close(self):
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def read_manifest(folder) -> dict | None:
    """``folder/live.json`` written by ``asymflux demo-live`` (None if there is none)."""
    path = Path(folder) / "live.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != "asymflux-live":
        raise ValueError(f"{path}: field 'format' must be 'asymflux-live', got "
                         f"{meta.get('format') if isinstance(meta, dict) else meta!r}")
    if not isinstance(meta.get("movie"), str):
        raise ValueError(f"{path}: field 'movie' must name the movie file")
    return meta
