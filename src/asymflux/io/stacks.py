"""Image-stack readers: (OME-)TIFF, a folder of TIFF frames, zarr, ``.npy``, HDF5.

Each reader of a bare stack returns a :class:`RawStack` ``(stack, time_s, pixel_nm, source)``
where ``time_s`` and ``pixel_nm`` are ``None`` when the file does not say. Stacks are
``(time, row, col)`` in the file's dtype; ``lazy=True`` gives a :class:`dask.array.Array`
that reads frames on demand (its first chunk is decoded at open, and a chunk that cannot be
decoded later raises :class:`DatasetError` naming the file). TDMS movies and the instrument
HDF5 layout: :mod:`asymflux.io.instrument`; one reader for any kind: :func:`asymflux.io.read_stack`
(:mod:`asymflux.io.readers`); HDF5 files as datasets: :func:`asymflux.io.read_hdf5`
(:mod:`asymflux.io.dataset`). This module imports neither.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from asymflux.io._errors import DatasetError

__all__ = [
    "RawStack",
    "attrs_pixel_and_time",
    "check_stack",
    "check_time_s",
    "imagej_pixel_and_time",
    "ome_pixel_and_time",
    "open_tiff",
    "open_zarr_array",
    "read_npy",
    "read_tiff",
    "read_tiff_folder",
    "read_zarr",
    "tiff_files",
]

_TIFF_SUFFIXES = (".tif", ".tiff")
_HDF5_SUFFIXES = (".h5", ".hdf5", ".he5", ".nxs")
_LENGTH_TO_NM = {
    "nm": 1.0,
    "µm": 1e3,
    "um": 1e3,
    "μm": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "mm": 1e6,
    "cm": 1e7,
    "m": 1e9,
    "Å": 0.1,
    "A": 0.1,
    "pm": 1e-3,
}
_TIME_TO_S = {
    "s": 1.0,
    "sec": 1.0,
    "ms": 1e-3,
    "µs": 1e-6,
    "us": 1e-6,
    "μs": 1e-6,
    "ns": 1e-9,
    "min": 60.0,
    "h": 3600.0,
}


class RawStack(NamedTuple):
    """A stack as read from a file, with what the file says about it."""

    stack: object  #: (time, row, col) ndarray, memmap or dask array
    time_s: np.ndarray | None  #: (n_frames,) s, or None when the file does not say
    pixel_nm: float | None  #: nm, or None when the file does not say
    source: str  #: the file or folder


# ---------------------------------------------------------------------------- checks


def check_stack(stack, *, source="stack"):
    """Raise :class:`DatasetError` unless ``stack`` is a non-empty (time, row, col) array."""
    shape = getattr(stack, "shape", None)
    if shape is None:
        raise DatasetError(
            f"{source}: expected an array (time, row, col), got {type(stack).__name__}"
        )
    if len(shape) == 2:
        raise DatasetError(
            f"{source}: a 2-D image of shape {tuple(shape)} where a stack (time, row, col) is expected"
        )
    if len(shape) != 3:
        raise DatasetError(
            f"{source}: expected a 3-D stack (time, row, col), got shape {tuple(shape)}"
        )
    if min(shape) == 0:
        raise DatasetError(f"{source}: empty stack of shape {tuple(shape)}")
    dtype = np.dtype(stack.dtype)
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise DatasetError(f"{source}: stack dtype {dtype} is not numeric")
    if np.issubdtype(dtype, np.complexfloating):
        raise DatasetError(f"{source}: stack dtype {dtype} holds complex numbers; expected "
                           "real intensities (integers or floats)")
    return stack


def check_time_s(time_s, n_frames: int, *, source="time_s") -> np.ndarray:
    """Return ``time_s`` as float64, or raise naming ``source`` if it does not fit the frames.

    It must be 1-D with one entry per frame, finite and strictly increasing.
    """
    t = np.asarray(time_s, dtype=np.float64)
    if t.ndim != 1:
        raise DatasetError(f"{source}: frame times must be 1-D, got shape {t.shape}")
    if t.size != n_frames:
        raise DatasetError(
            f"{source}: {t.size} frame times for {n_frames} frames; need one time per frame"
        )
    if not np.all(np.isfinite(t)):
        raise DatasetError(f"{source}: frame times contain NaN or infinite values")
    back = np.flatnonzero(np.diff(t) <= 0)
    if back.size:
        k = int(back[0])
        raise DatasetError(
            f"{source}: frame time goes backwards (or repeats) at frame {k + 1} "
            f"({t[k]:g} s -> {t[k + 1]:g} s); frame times must be strictly increasing"
        )
    return t


#: Pixel sizes asymflux accepts, nm: from 1 nm (far below any optical microscope's) to
#: 100 µm. Outside, a value is a unit mistake (m or µm written as nm, 1e300, a boolean)
#: that would give absurd areas and model meshes, not a measurement.
PIXEL_NM_RANGE = (1.0, 1e5)
#: Frame intervals accepted, s: positive, up to 10^7 s (about four months).
FRAME_INTERVAL_S_RANGE = (0.0, 1e7)


def check_number(value, *, source, name, low=None, high=None, low_inclusive=True,
                 high_inclusive=True, unit="", text=False) -> float:
    """``float(value)``, or :class:`DatasetError` naming ``source``, ``name`` and the range.

    Booleans (``true`` is not 1), None, NaN, infinities and values out of range are
    refused; so is text unless ``text=True`` (attributes that instruments write as text).
    """
    from asymflux._validate import _interval, check_range

    if text and isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if text and isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            pass  # refused below, as text
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "fiu":
        value = value.reshape(())[()]
    try:
        return check_range(name, value, low, high, low_inclusive=low_inclusive,
                           high_inclusive=high_inclusive)
    except ValueError as e:
        msg = str(e)
        if low is not None and low >= 0:
            for a, b in (("must be in ", "must be a positive number in "),
                         ("must be a number in ", "must be a positive number in "),
                         ("must be a finite number in ", "must be a finite positive number in ")):
                msg = msg.replace(a, b, 1)
        if unit:
            interval = _interval(low, high, low_inclusive, high_inclusive)
            msg = msg.replace(interval, f"{interval} {unit}", 1)
        raise DatasetError(f"{source}: {msg}") from None


def check_pixel_nm(value, *, source, text=False) -> float:
    """The pixel size in nm, or :class:`DatasetError`: a number in :data:`PIXEL_NM_RANGE`."""
    return check_number(value, source=source, name="pixel_nm", low=PIXEL_NM_RANGE[0],
                        high=PIXEL_NM_RANGE[1], unit="nm", text=text)


def _check_pixel_nm(value, *, source) -> float:
    """A positive pixel size in any unit (a number written as text accepted, a boolean not):
    instrument attributes, scaled to nm by the caller; the nm range is checked by
    :class:`~asymflux.io.Dataset`."""
    return check_number(value, source=source, name="pixel size", low=0.0,
                        low_inclusive=False, text=True)


def check_frame_interval_s(value, *, source, name="frame_interval_s") -> float:
    """A frame interval in s, or :class:`DatasetError`: positive, in :data:`FRAME_INTERVAL_S_RANGE`."""
    return check_number(value, source=source, name=name, low=FRAME_INTERVAL_S_RANGE[0],
                        high=FRAME_INTERVAL_S_RANGE[1], low_inclusive=False, unit="s")


# ---------------------------------------------------------------------------- TIFF


class _LogCatcher(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _tifffile_errors():
    """Collect the errors tifffile logs (it logs, not raises, on broken page chains)."""
    logger = logging.getLogger("tifffile")
    catcher = _LogCatcher()
    logger.addHandler(catcher)
    old_propagate = logger.propagate
    logger.propagate = False
    try:
        yield catcher.messages
    finally:
        logger.removeHandler(catcher)
        logger.propagate = old_propagate


def open_tiff(path: Path):
    """Open a TIFF, parse every page, check the data lie inside the file; return TiffFile
    (the caller closes it). DatasetError naming the file if it cannot be read."""
    import tifffile

    if not path.is_file():
        raise DatasetError(f"{path}: no such TIFF file")
    size = path.stat().st_size
    with _tifffile_errors() as errors:
        try:
            tif = tifffile.TiffFile(path)
        except Exception as e:  # noqa: BLE001
            raise DatasetError(f"{path}: not a readable TIFF file ({type(e).__name__}: {e})") from e
        try:
            n_pages = len(tif.pages)
            series = tif.series
        except Exception as e:  # noqa: BLE001
            tif.close()
            raise DatasetError(f"{path}: corrupt TIFF ({type(e).__name__}: {e})") from e
    if errors:
        tif.close()
        raise DatasetError(f"{path}: truncated or corrupt TIFF: {errors[0]}")
    if n_pages == 0 or not series:
        tif.close()
        raise DatasetError(f"{path}: TIFF file holds no image")
    for k, page in enumerate(tif.pages):
        offsets = getattr(page, "dataoffsets", ())
        counts = getattr(page, "databytecounts", ())
        if offsets and max(o + c for o, c in zip(offsets, counts, strict=False)) > size:
            tif.close()
            raise DatasetError(
                f"{path}: truncated TIFF: the data of page {k} end beyond the end of the file "
                f"({size} bytes)"
            )
    return tif


_CHANNEL_AXES = "CS"  # tifffile: C = channel, S = sample (RGB/RGBA components)


def _index(value, n, *, name, axis, source, desc):
    """``value`` as an index into an axis of length ``n``, or raise naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DatasetError(f"{source}: {name}= must be an int index, got {value!r}")
    if not 0 <= int(value) < n:
        raise DatasetError(
            f"{source}: {name}={value} is out of range for axis {axis!r} of size {n} ({desc}); "
            f"valid: 0 to {n - 1}"
        )
    return int(value)


def _plan_axes(shape, axes, *, channel=None, z=None, frame_axis=None, source):
    """How to read an array of tifffile ``axes`` as (time, row, col).

    Returns ``(key, order, frame_letter)``: ``key`` indexes the array (an int on every
    dropped axis, ``slice(None)`` on the kept ones), ``order`` transposes the kept axes
    to (frame, Y, X), ``frame_letter`` is the axis read as frames.
    """
    shape, axes = tuple(int(n) for n in shape), str(axes)
    desc = f"axes {axes!r}, shape {shape}"
    if len(shape) != len(axes) or "Y" not in axes or "X" not in axes:
        raise DatasetError(f"{source}: cannot read {desc} as a stack (time, row, col)")
    size = dict(zip(axes, shape, strict=True))
    if frame_axis is not None:
        if not isinstance(frame_axis, str) or frame_axis not in axes or frame_axis in "YX":
            raise DatasetError(
                f"{source}: frame_axis={frame_axis!r} is not a non-image axis of this file ({desc})"
            )
    key: dict[str, int | slice] = {"Y": slice(None), "X": slice(None)}
    # channels (C, or the S samples of RGB): one is picked, never read as frames unasked
    chans = [a for a in axes if a in _CHANNEL_AXES and a != frame_axis]
    many = [a for a in chans if size[a] > 1]
    if len(many) > 1:
        raise DatasetError(
            f"{source}: {desc} has both channels (C) and samples (S); asymflux reads one "
            "channel of one-sample (grey) images"
        )
    for a in chans:
        if a in many:
            if channel is None:
                raise DatasetError(
                    f"{source}: {desc} holds {size[a]} channels (axis {a!r}); pass channel=K "
                    f"(0 to {size[a] - 1}; command line: --channel K) to read one of them"
                )
            key[a] = _index(channel, size[a], name="channel", axis=a, source=source, desc=desc)
        else:
            key[a] = 0
    if channel is not None and not many:
        if not chans:
            raise DatasetError(
                f"{source}: channel={channel!r} given but {desc} has no channel axis"
            )
        _index(channel, 1, name="channel", axis=chans[0], source=source, desc=desc)
    # depth: picked with z=, read as frames only when asked (frame_axis="Z")
    if "Z" in axes and frame_axis != "Z":
        if z is not None:
            key["Z"] = _index(z, size["Z"], name="z", axis="Z", source=source, desc=desc)
        elif size["Z"] == 1:
            key["Z"] = 0
    elif z is not None:
        if frame_axis == "Z":
            raise DatasetError(f"{source}: z= and frame_axis='Z' exclude each other ({desc})")
        raise DatasetError(f"{source}: z={z!r} given but {desc} has no depth axis 'Z'")
    rest = [a for a in axes if a not in key]
    if frame_axis is not None:
        frame = frame_axis
    else:
        big = [a for a in rest if size[a] > 1]
        if "Z" in big and len(big) > 1:
            raise DatasetError(
                f"{source}: {desc} has {size['Z']} depths (axis 'Z') besides the frames; "
                f"pass z=K (0 to {size['Z'] - 1}; command line: --z K) to read one depth"
            )
        if big == ["Z"]:
            raise DatasetError(
                f"{source}: {desc} is a Z stack (depth, not time); pass frame_axis='Z' "
                "(command line: --frame-axis Z) to read its depths as frames (they get no frame "
                "times)"
            )
        if not big:
            raise DatasetError(
                f"{source}: a 2-D image of shape {(size['Y'], size['X'])} where a stack "
                "(time, row, col) is expected"
            )
        if len(big) > 1:
            raise DatasetError(
                f"{source}: cannot read {desc} as a stack (time, row, col): expected one "
                "non-image axis (T, I or Q) besides Y, X once channel= / z= are picked"
            )
        frame = big[0]
    for a in rest:
        if a != frame:
            if size[a] > 1:
                raise DatasetError(
                    f"{source}: cannot read {desc} as a stack (time, row, col) along "
                    f"{frame!r}: axis {a!r} has {size[a]} entries too"
                )
            key[a] = 0
    key[frame] = slice(None)
    kept = [a for a in axes if isinstance(key[a], slice)]
    order = tuple(kept.index(a) for a in (frame, "Y", "X"))
    return tuple(key[a] for a in axes), order, frame


def ome_pixel_and_time(tif, n_frames):
    """``(pixel_nm, time_s)`` from an OME-TIFF's metadata (``tif`` a TiffFile): pixel size, nm,
    and ``(n_frames,)`` frame times, s; each None when the metadata do not give it."""
    import tifffile

    pixel_nm = time_s = None
    try:
        ome = tifffile.xml2dict(tif.ome_metadata)["OME"]
        image = ome["Image"][0] if isinstance(ome["Image"], list) else ome["Image"]
        pixels = image["Pixels"]
    except Exception:  # noqa: BLE001 - odd OME: fall back to "unknown"
        return None, None
    if "PhysicalSizeX" in pixels:
        unit = pixels.get("PhysicalSizeXUnit", "µm")
        if unit in _LENGTH_TO_NM:
            pixel_nm = float(pixels["PhysicalSizeX"]) * _LENGTH_TO_NM[unit]
    planes = pixels.get("Plane")
    if isinstance(planes, dict):
        planes = [planes]
    if planes and all("DeltaT" in p for p in planes):
        by_t = {}
        for p in planes:
            unit = p.get("DeltaTUnit", "s")
            if unit not in _TIME_TO_S:
                by_t = {}
                break
            by_t.setdefault(int(p.get("TheT", 0)), float(p["DeltaT"]) * _TIME_TO_S[unit])
        if len(by_t) == n_frames:
            time_s = np.array([by_t[k] for k in sorted(by_t)], dtype=np.float64)
    if time_s is None and "TimeIncrement" in pixels:
        unit = pixels.get("TimeIncrementUnit", "s")
        if unit in _TIME_TO_S:
            time_s = np.arange(n_frames) * float(pixels["TimeIncrement"]) * _TIME_TO_S[unit]
    return pixel_nm, time_s


def imagej_pixel_and_time(tif, n_frames):
    """``(pixel_nm, time_s)`` from an ImageJ TIFF's metadata (``tif`` a TiffFile): pixel size,
    nm, and ``(n_frames,)`` frame times, s; each None when the metadata do not give it."""
    meta = tif.imagej_metadata or {}
    pixel_nm = time_s = None
    unit = meta.get("unit")
    if isinstance(unit, str):
        unit = unit.replace("\\u00B5", "µ")
    if unit in _LENGTH_TO_NM:
        tag = tif.pages[0].tags.get("XResolution")
        if tag is not None:
            num, den = tag.value
            if num > 0:
                pixel_nm = den / num * _LENGTH_TO_NM[unit]
    if meta.get("finterval"):
        tunit = meta.get("tunit", "s")
        tunit = {"sec": "s", "second": "s", "seconds": "s"}.get(tunit, tunit)
        if tunit in _TIME_TO_S:
            time_s = np.arange(n_frames) * float(meta["finterval"]) * _TIME_TO_S[tunit]
    return pixel_nm, time_s


class _NamedReads:
    """Array-like over a chunked store (zarr, tifffile's zarr store, h5py) for dask.

    A failed read (undecodable or corrupt chunk) raises :class:`DatasetError` naming the
    file, the frames and the codec, instead of the codec's bare error at compute time.
    """

    def __init__(self, array, *, source, codec=None):
        self.array = array
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.source = source
        self.codec = codec

    def __getitem__(self, key):
        try:
            return np.asarray(self.array[key])
        except DatasetError:
            raise
        except Exception as e:  # noqa: BLE001 - any codec / IO error
            raise DatasetError(_read_error(self.source, self.codec, key, e)) from e


def _read_error(source, codec, key, e) -> str:
    where = ""
    if isinstance(key, tuple) and key and isinstance(key[0], slice) and key[0].stop is not None:
        a, b = key[0].start or 0, key[0].stop - 1
        where = f" of frame {a}" if a == b else f" of frames {a} to {b}"
    how = f" ({codec}-compressed)" if codec else ""
    return f"{source}: cannot decode the data{where}{how}: {type(e).__name__}: {e}"


def _lazy(array, *, chunks, source, codec=None, lock=False):
    """A dask array over ``array`` whose failed reads name the file; the first chunk is read
    now, so that a file that cannot be decoded fails at open, not at the first compute."""
    import uuid

    import dask.array as da

    wrapped = _NamedReads(array, source=source, codec=codec)
    data = da.from_array(
        wrapped,
        chunks=chunks,
        lock=lock,
        name=f"{Path(str(source)).name}-{uuid.uuid4().hex}",
        meta=np.empty((0,) * wrapped.ndim, wrapped.dtype),
    )
    if data.size:
        first = tuple(slice(0, c[0]) for c in data.chunks)
        wrapped[first]
    return data


def _tiff_codec(tif) -> str | None:
    comp = getattr(tif.pages[0], "compression", None)
    name = getattr(comp, "name", None) or (str(comp) if comp is not None else None)
    return None if name in (None, "NONE", "1") else name


def read_tiff(
    path,
    *,
    lazy: bool = False,
    channel: int | None = None,
    z: int | None = None,
    frame_axis: str | None = None,
) -> RawStack:
    """Read a multi-page TIFF, OME-TIFF or ImageJ hyperstack as (time, row, col).

    Parameters
    ----------
    path : str or Path
        The ``.tif`` / ``.ome.tif`` file; compressed pages (LZW, deflate, zstd, JPEG, ...)
        are decoded by imagecodecs.
    lazy : bool, keyword-only
        Return a dask array reading pages on demand (through tifffile's zarr store)
        instead of loading the stack. The first frame is decoded at once, so an
        undecodable file fails here.
    channel : int, optional, keyword-only
        Index along the channel axis (tifffile axis ``C``, or ``S``: the samples of an RGB
        image). Required when that axis has more than one entry: a channel is never read
        as frames.
    z : int, optional, keyword-only
        Index along the depth axis ``Z``; required when the file has both frames and depths
        (T x Z x Y x X).
    frame_axis : str, optional, keyword-only
        The tifffile axis letter to read as frames, e.g. ``"Z"`` for a Z stack (refused
        otherwise: depths are not times). Default: the one non-image axis left after
        ``channel`` and ``z`` (``T``, or ``I`` / ``Q`` for a plain multi-page TIFF).

    Returns
    -------
    RawStack
        ``stack`` (time, row, col) in the file's dtype; ``pixel_nm`` from OME
        ``PhysicalSizeX`` or the ImageJ resolution and unit; ``time_s`` from OME
        ``Plane/DeltaT`` (or ``TimeIncrement``) or ImageJ ``finterval``, only when the
        frames are a time axis ``T``; ``None`` otherwise.

    Raises
    ------
    DatasetError
        Unreadable, truncated or undecodable file; a single 2-D image; several channels
        without ``channel=``; a Z stack without ``frame_axis="Z"``; more than one axis left
        to read as frames.
    """
    path = Path(path)
    tif = open_tiff(path)
    try:
        series = tif.series[0]
        shape, axes = tuple(series.shape), series.axes
        if len(tif.series) > 1:
            others = ", ".join(f"{tuple(s.shape)} {s.axes}" for s in tif.series[1:4])
            warnings.warn(
                f"{path}: holds {len(tif.series)} image series (e.g. stage positions); the "
                f"first, {shape} {axes}, is read and the others ({others}"
                f"{', ...' if len(tif.series) > 4 else ''}) are not", UserWarning, stacklevel=2)
        key, order, frame = _plan_axes(
            shape, axes, channel=channel, z=z, frame_axis=frame_axis, source=path
        )
        n_frames = shape[axes.index(frame)]
        pixel_nm = time_s = None
        if tif.is_ome:
            pixel_nm, time_s = ome_pixel_and_time(tif, n_frames)
        elif tif.is_imagej:
            pixel_nm, time_s = imagej_pixel_and_time(tif, n_frames)
        if frame != "T":  # ImageJ finterval / OME DeltaT describe time, not depth or channel
            time_s = None
        codec = _tiff_codec(tif)
        picks = any(isinstance(k, int) for k, n in zip(key, shape, strict=True) if n > 1)
        if not lazy and not picks:
            try:
                data = series.asarray()
            except Exception as e:  # noqa: BLE001
                raise DatasetError(_read_error(path, codec, None, e)) from e
            data = data.reshape(shape)[key].transpose(order)
    finally:
        tif.close()
    if lazy or picks:
        import tifffile
        import zarr

        store = tifffile.imread(path, aszarr=True, series=0)
        arr = zarr.open_array(store, mode="r")
        if tuple(arr.shape) != shape:
            raise DatasetError(
                f"{path}: tifffile's zarr view has shape {tuple(arr.shape)}, the series "
                f"{shape}; read it with lazy=False"
            )
        if lazy:
            data = _lazy(arr, chunks=arr.chunks, source=path, codec=codec)[key].transpose(order)
        else:
            try:
                data = _NamedReads(arr, source=path, codec=codec)[key].transpose(order)
            finally:
                store.close()
    if time_s is not None:
        time_s = check_time_s(time_s, data.shape[0], source=f"{path} (frame times in metadata)")
    return RawStack(check_stack(data, source=path), time_s, pixel_nm, str(path))


def tiff_files(folder: Path) -> list[Path]:
    """The TIFF files of a folder of frames, in natural order (``frame2`` before
    ``frame10``); hidden files left out."""
    import tifffile

    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in _TIFF_SUFFIXES and not p.name.startswith(".")
    ]
    return [Path(f) for f in tifffile.natural_sorted([str(f) for f in files])]


def _read_frame(path: Path, shape) -> np.ndarray:
    """One frame of a TIFF folder; a failed decode names the file (and its codec)."""
    import tifffile

    try:
        return tifffile.imread(path).reshape(shape)
    except Exception as e:  # noqa: BLE001
        codec = None
        with contextlib.suppress(Exception), tifffile.TiffFile(path) as tif:
            codec = _tiff_codec(tif)
        raise DatasetError(_read_error(path, codec, None, e)) from e


def read_tiff_folder(path, *, lazy: bool = False) -> RawStack:
    """Read a folder of single-frame TIFFs, in natural order (``frame2`` before ``frame10``).

    Parameters
    ----------
    path : str or Path
        Folder holding ``*.tif`` / ``*.tiff`` files, one 2-D frame each.
    lazy : bool, keyword-only
        Return a dask array reading one file per frame on demand; the first file is
        decoded at once, so an undecodable folder fails here.

    Returns
    -------
    RawStack
        ``stack`` (n_files, row, col); ``pixel_nm`` from the first file's metadata;
        ``time_s`` None (a folder carries no frame times).
    """

    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: not a folder")
    files = tiff_files(path)
    if not files:
        raise DatasetError(f"{path}: no .tif/.tiff files in this folder")
    shapes = {}
    pixel_nm = None
    for k, f in enumerate(files):
        tif = open_tiff(f)
        try:
            s = tif.series[0]
            shp = tuple(n for n in s.shape if n > 1) if len(s.shape) > 2 else tuple(s.shape)
            shapes[f] = (shp, s.dtype)
            if k == 0:
                if tif.is_ome:
                    pixel_nm, _ = ome_pixel_and_time(tif, 1)
                elif tif.is_imagej:
                    pixel_nm, _ = imagej_pixel_and_time(tif, 1)
        finally:
            tif.close()
    shape0, dtype0 = shapes[files[0]]
    if len(shape0) != 2:
        raise DatasetError(f"{files[0]}: expected one 2-D frame per file, got shape {shape0}")
    if len(files) == 1:  # like a one-frame file: a movie has frames over time
        raise DatasetError(
            f"{path}: holds one TIFF ({files[0].name}), a 2-D image of shape {shape0} where a "
            "stack (time, row, col) is expected: a folder of frames needs one file per frame")
    for f in files:
        if shapes[f] != (shape0, dtype0):
            raise DatasetError(
                f"{f}: frame of shape {shapes[f][0]} / {shapes[f][1]} differs from the first "
                f"frame {files[0].name} ({shape0} / {dtype0})"
            )
    if lazy:
        import dask
        import dask.array as da

        _read_frame(files[0], shape0)  # decode one frame now: a bad codec fails at open
        frames = [
            da.from_delayed(dask.delayed(_read_frame)(f, shape0), shape=shape0, dtype=dtype0)
            for f in files
        ]
        data = da.stack(frames)
    else:
        data = np.stack([_read_frame(f, shape0) for f in files])
    return RawStack(check_stack(data, source=path), None, pixel_nm, str(path))


# ---------------------------------------------------------------------------- zarr, npy


def open_zarr_array(path: Path):
    """``(array, attrs)`` of a zarr store: the array itself, or a group's array named
    ``stack`` (else ``0``, OME-Zarr's full resolution, else its only one), with the group's
    and the array's attributes. DatasetError naming the store otherwise."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"{path}: not a readable zarr store ({type(e).__name__}: {e})") from e
    if isinstance(node, zarr.Array):
        return node, dict(node.attrs)
    arrays = dict(node.arrays())
    for name in ("stack", "0"):  # ours, then OME-Zarr's full-resolution level
        if name in arrays:
            return arrays[name], {**dict(node.attrs), **dict(arrays[name].attrs)}
    if len(arrays) == 1:
        (arr,) = arrays.values()
        return arr, {**dict(node.attrs), **dict(arr.attrs)}
    raise DatasetError(
        f"{path}: zarr group with arrays {sorted(arrays)}; expected one array, or one named 'stack'"
    )


def attrs_pixel_and_time(attrs: Mapping, n_frames: int, *, source):
    """``(pixel_nm, time_s)`` from a zarr store's attributes (``pixel_nm``; ``time_s``, else
    ``frame_interval_s``), checked (DatasetError naming ``source``); each None if absent."""
    pixel_nm = attrs.get("pixel_nm")
    pixel_nm = None if pixel_nm is None else check_pixel_nm(
        pixel_nm, source=f"{source} (attribute pixel_nm)")
    time_s = attrs.get("time_s")
    if time_s is None and attrs.get("frame_interval_s") is not None:
        step = check_frame_interval_s(attrs["frame_interval_s"],
                                      source=f"{source} (attribute frame_interval_s)")
        time_s = np.arange(n_frames) * step
    if time_s is not None:
        time_s = check_time_s(time_s, n_frames, source=f"{source} (frame times in attributes)")
    return pixel_nm, time_s


#: A zarr stack with fewer than this fraction of its declared chunks stored is refused before
#: any work: most of its frames would read as the fill value (an analysis of nothing, which
#: can take hours on a large declared shape).
MIN_STORED_FRACTION = 0.5


#: zarr attribute by which a store's writer says its unstored chunks are meant as the fill
#: value (left out on purpose): then few stored chunks are only a warning.
FILL_IS_DATA = "fill_value_is_data"


def _check_stored_chunks(arr, *, source, attrs=None):
    """Count the chunks a zarr array stores before any work: none or fewer than
    :data:`MIN_STORED_FRACTION` of those declared is refused (DatasetError) unless the
    attributes say ``fill_value_is_data: true``; some missing is a warning giving the
    fraction stored."""
    try:  # lists the store's keys: no chunk is read
        stored, declared = int(arr.nchunks_initialized), int(arr.nchunks)
    except Exception:  # noqa: BLE001 - a store that cannot list its chunks: say nothing
        return
    if stored >= declared:
        return
    frac = stored / declared
    shape = " x ".join(map(str, arr.shape))
    fill = f"the fill value ({arr.fill_value!r})"
    on_purpose = (attrs or {}).get(FILL_IS_DATA) is True
    if stored == 0 and not on_purpose:
        raise DatasetError(
            f"{source}: no image: none of the {declared} chunks of its declared {shape} stack "
            f"is stored (never written); every frame would read as {fill}")
    if frac < MIN_STORED_FRACTION and not on_purpose:
        raise DatasetError(
            f"{source}: only {stored} of the {declared} chunks of its declared {shape} stack "
            f"are stored ({100 * frac:.2g}%): the rest were never written and would read as "
            f"{fill}; expected a stack whose frames are stored (a copy or an acquisition "
            "that stopped? rewrite the frames that hold data into a new stack; or, if the "
            f"missing chunks are meant as the fill value, set the attribute {FILL_IS_DATA}: "
            "true)")
    warnings.warn(
        f"{source}: {declared - stored} of its {declared} chunks are not stored "
        f"({100 * frac:.3g}% stored; never written, or equal to the fill value throughout: "
        f"zarr does not store those); their frames read as {fill}",
        UserWarning, stacklevel=3)


def read_zarr(path, *, lazy: bool = True) -> RawStack:
    """Open a zarr array (time, row, col) -- lazily, through dask.

    Parameters
    ----------
    path : str or Path
        A zarr array, or a group holding one array (or one named ``stack`` or ``0``).
    lazy : bool, keyword-only
        True (default): a :class:`dask.array.Array` with the store's chunks; only the
        first chunk is read (and decoded) now, so a corrupt store fails at open. A chunk
        never written reads as the fill value. False: load into memory.

    Returns
    -------
    RawStack
        ``pixel_nm`` and ``time_s`` (or ``frame_interval_s``) from the array attributes.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such zarr store")
    arr, attrs = open_zarr_array(path)
    check_stack(arr, source=path)
    pixel_nm, time_s = attrs_pixel_and_time(attrs, arr.shape[0], source=path)
    _check_stored_chunks(arr, source=path, attrs=attrs)
    codec = _zarr_codec(arr)
    if lazy:
        data = _lazy(arr, chunks=arr.chunks, source=path, codec=codec)
    else:
        data = _NamedReads(arr, source=path, codec=codec)[...]
    return RawStack(data, time_s, pixel_nm, str(path))


def _zarr_codec(arr) -> str | None:
    codecs = getattr(arr, "compressors", None)
    if codecs is None:
        one = getattr(arr, "compressor", None)
        codecs = () if one is None else (one,)
    names = [
        getattr(c, "codec_id", None) or type(c).__name__.removesuffix("Codec").lower()
        for c in codecs
    ]
    return "+".join(names) or None


def read_npy(path, *, lazy: bool = True) -> RawStack:
    """Read a ``.npy`` stack (time, row, col), memory-mapped when ``lazy`` (default).

    ``.npy`` carries no pixel size or frame times: both come back ``None``.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such .npy file")
    try:
        data = np.load(path, mmap_mode="r" if lazy else None, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"{path}: not a readable .npy file ({type(e).__name__}: {e})") from e
    return RawStack(check_stack(data, source=path), None, None, str(path))


# ---------------------------------------------------------------------------- HDF5


def _hdf5_stack(dset, *, source, lazy: bool):
    """An h5py (time, row, col) dataset as a dask array chunked along time (the HDF5 chunk's
    time extent, at most 128 MiB; else one frame; the first chunk read now), or loaded."""
    codec = dset.compression
    if not lazy:
        return _NamedReads(dset, source=source, codec=codec)[()]
    frame_bytes = max(1, int(np.prod(dset.shape[1:])) * dset.dtype.itemsize)
    t_chunk = min(dset.chunks[0] if dset.chunks else 1, max(1, (128 << 20) // frame_bytes))
    return _lazy(dset, chunks=(t_chunk, *dset.shape[1:]), source=source, codec=codec, lock=True)


def _hdf5_trace(f, spec, what, *, path):
    """A 1-D trace from a dataset name, or ``(name, k)``: the k-th trace of a 2-D dataset
    (taken along its shorter axis: quantities x samples or samples x quantities)."""
    import h5py

    name, k = (spec, None) if isinstance(spec, str) else tuple(spec)
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise DatasetError(f"{path}: no dataset {name!r} (given as {what})")
    col = np.asarray(obj[()])
    if k is not None:
        if col.ndim != 2:
            raise DatasetError(
                f"{path}: ({name!r}, {k}) given as {what}, but {name!r} is not 2-D "
                f"(shape {col.shape})"
            )
        col = col if col.shape[0] <= col.shape[1] else col.T
        if not 0 <= int(k) < col.shape[0]:
            raise DatasetError(
                f"{path}: ({name!r}, {k}) given as {what}: {name!r} of shape {obj.shape} has "
                f"{col.shape[0]} traces (0 to {col.shape[0] - 1})"
            )
        col = col[int(k)]
    if col.ndim != 1:
        raise DatasetError(f"{path}: echem dataset {name!r} must be 1-D, got shape {col.shape}")
    return col


def _open_hdf5(path: Path):
    """``h5py.File(path, "r")``, or a :class:`DatasetError` naming the file."""
    import h5py

    if not path.is_file():
        raise DatasetError(f"{path}: no such HDF5 file")
    try:
        return h5py.File(path, "r")
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"{path}: not a readable HDF5 file ({type(e).__name__}: {e})") from e
