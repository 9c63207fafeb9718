"""Image-stack readers: (OME-)TIFF, a folder of TIFF frames, zarr, ``.npy``, HDF5.

Each reader of a bare stack returns a :class:`RawStack` ``(stack, time_s, pixel_nm, source)``
where ``time_s`` and ``pixel_nm`` are ``None`` when the file does not say. Stacks are
``(time, row, col)`` in the file's dtype; ``lazy=True`` gives a :class:`dask.array.Array`
that reads frames on demand.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from asymflux.io._errors import DatasetError

__all__ = [
    "RawStack",
    "check_stack",
    "check_time_s",
    "read_hdf5",
    "read_npy",
    "read_stack",
    "read_tiff",
    "read_tiff_folder",
    "read_zarr",
]

_TIFF_SUFFIXES = (".tif", ".tiff")
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


def _check_pixel_nm(value, *, source) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{source}: pixel_nm must be a positive number, got {value!r}") from None
    if not np.isfinite(x) or x <= 0:
        raise DatasetError(f"{source}: pixel_nm must be a positive number, got {value!r}")
    return x


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


def _open_tiff(path: Path):
    """Open a TIFF, parse every page, check the data lie inside the file; return TiffFile."""
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


def _squeeze_axes(shape, axes, *, source):
    """Which axes to drop so that the stack is (time, row, col); raise if impossible."""
    keep = [i for i, (n, a) in enumerate(zip(shape, axes, strict=True)) if n > 1 or a in "YX"]
    kept_axes = "".join(axes[i] for i in keep)
    if len(keep) == 2 and kept_axes.endswith("YX") or len(shape) == 2:
        raise DatasetError(
            f"{source}: a 2-D image of shape {tuple(shape[i] for i in keep)} where a stack "
            "(time, row, col) is expected"
        )
    if len(keep) != 3 or not kept_axes.endswith("YX"):
        raise DatasetError(
            f"{source}: cannot read axes {axes!r} of shape {tuple(shape)} as a stack "
            "(time, row, col): expected one non-image axis (T, Z, I or Q) besides Y, X"
        )
    return keep


def _ome_pixel_and_time(tif, n_frames):
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


def _imagej_pixel_and_time(tif, n_frames):
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


def read_tiff(path, *, lazy: bool = False) -> RawStack:
    """Read a multi-page TIFF, OME-TIFF or ImageJ hyperstack as (time, row, col).

    Parameters
    ----------
    path : str or Path
        The ``.tif`` / ``.ome.tif`` file.
    lazy : bool, keyword-only
        Return a dask array reading pages on demand (through tifffile's zarr store)
        instead of loading the stack.

    Returns
    -------
    RawStack
        ``stack`` (time, row, col) in the file's dtype; ``pixel_nm`` from OME
        ``PhysicalSizeX`` or the ImageJ resolution and unit; ``time_s`` from OME
        ``Plane/DeltaT`` (or ``TimeIncrement``) or ImageJ ``finterval``; ``None`` when absent.

    Raises
    ------
    DatasetError
        Unreadable or truncated file; a single 2-D image; more than one non-image axis.
    """
    path = Path(path)
    tif = _open_tiff(path)
    try:
        series = tif.series[0]
        shape, axes = tuple(series.shape), series.axes
        keep = _squeeze_axes(shape, axes, source=path)
        n_frames = shape[keep[0]]
        if tif.is_ome:
            pixel_nm, time_s = _ome_pixel_and_time(tif, n_frames)
        elif tif.is_imagej:
            pixel_nm, time_s = _imagej_pixel_and_time(tif, n_frames)
        else:
            pixel_nm = time_s = None
        if not lazy:
            try:
                data = series.asarray()
            except Exception as e:  # noqa: BLE001
                raise DatasetError(
                    f"{path}: cannot read the image data ({type(e).__name__}: {e})"
                ) from e
            data = data.reshape(tuple(shape[i] for i in keep))
    finally:
        tif.close()
    if lazy:
        import dask.array as da
        import tifffile
        import zarr

        store = tifffile.imread(path, aszarr=True, series=0)
        data = da.from_zarr(zarr.open_array(store, mode="r"))
        if data.ndim != 3:
            data = data.reshape(tuple(shape[i] for i in keep))
    if time_s is not None:
        time_s = check_time_s(time_s, data.shape[0], source=f"{path} (frame times in metadata)")
    return RawStack(check_stack(data, source=path), time_s, pixel_nm, str(path))


def _tiff_files(folder: Path) -> list[Path]:
    import tifffile

    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in _TIFF_SUFFIXES and not p.name.startswith(".")
    ]
    return [Path(f) for f in tifffile.natural_sorted([str(f) for f in files])]


def read_tiff_folder(path, *, lazy: bool = False) -> RawStack:
    """Read a folder of single-frame TIFFs, in natural order (``frame2`` before ``frame10``).

    Parameters
    ----------
    path : str or Path
        Folder holding ``*.tif`` / ``*.tiff`` files, one 2-D frame each.
    lazy : bool, keyword-only
        Return a dask array reading one file per frame on demand.

    Returns
    -------
    RawStack
        ``stack`` (n_files, row, col); ``pixel_nm`` from the first file's metadata;
        ``time_s`` None (a folder carries no frame times).
    """
    import tifffile

    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: not a folder")
    files = _tiff_files(path)
    if not files:
        raise DatasetError(f"{path}: no .tif/.tiff files in this folder")
    shapes = {}
    pixel_nm = None
    for k, f in enumerate(files):
        tif = _open_tiff(f)
        try:
            s = tif.series[0]
            shp = tuple(n for n in s.shape if n > 1) if len(s.shape) > 2 else tuple(s.shape)
            shapes[f] = (shp, s.dtype)
            if k == 0:
                if tif.is_ome:
                    pixel_nm, _ = _ome_pixel_and_time(tif, 1)
                elif tif.is_imagej:
                    pixel_nm, _ = _imagej_pixel_and_time(tif, 1)
        finally:
            tif.close()
    shape0, dtype0 = shapes[files[0]]
    if len(shape0) != 2:
        raise DatasetError(f"{files[0]}: expected one 2-D frame per file, got shape {shape0}")
    for f in files:
        if shapes[f] != (shape0, dtype0):
            raise DatasetError(
                f"{f}: frame of shape {shapes[f][0]} / {shapes[f][1]} differs from the first "
                f"frame {files[0].name} ({shape0} / {dtype0})"
            )
    if lazy:
        import dask
        import dask.array as da

        frames = [
            da.from_delayed(
                dask.delayed(lambda p: tifffile.imread(p).reshape(shape0))(f),
                shape=shape0,
                dtype=dtype0,
            )
            for f in files
        ]
        data = da.stack(frames)
    else:
        data = np.stack([tifffile.imread(f).reshape(shape0) for f in files])
    return RawStack(check_stack(data, source=path), None, pixel_nm, str(path))


# ---------------------------------------------------------------------------- zarr, npy


def _open_zarr_array(path: Path):
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


def _attrs_pixel_and_time(attrs: Mapping, n_frames: int, *, source):
    pixel_nm = attrs.get("pixel_nm")
    pixel_nm = None if pixel_nm is None else _check_pixel_nm(pixel_nm, source=source)
    time_s = attrs.get("time_s")
    if time_s is None and attrs.get("frame_interval_s") is not None:
        time_s = np.arange(n_frames) * float(attrs["frame_interval_s"])
    if time_s is not None:
        time_s = check_time_s(time_s, n_frames, source=f"{source} (frame times in attributes)")
    return pixel_nm, time_s


def read_zarr(path, *, lazy: bool = True) -> RawStack:
    """Open a zarr array (time, row, col) -- lazily, through dask.

    Parameters
    ----------
    path : str or Path
        A zarr array, or a group holding one array (or one named ``stack`` or ``0``).
    lazy : bool, keyword-only
        True (default): a :class:`dask.array.Array` with the store's chunks, nothing
        read until computed. False: load into memory.

    Returns
    -------
    RawStack
        ``pixel_nm`` and ``time_s`` (or ``frame_interval_s``) from the array attributes.
    """
    import dask.array as da

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such zarr store")
    arr, attrs = _open_zarr_array(path)
    check_stack(arr, source=path)
    pixel_nm, time_s = _attrs_pixel_and_time(attrs, arr.shape[0], source=path)
    data = da.from_zarr(arr) if lazy else arr[...]
    return RawStack(data, time_s, pixel_nm, str(path))


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


def read_stack(path, *, lazy: bool = True) -> RawStack:
    """Read a bare stack by its kind: TIFF file, folder of TIFFs, ``.zarr``, ``.npy``."""
    path = Path(path)
    name = path.name.lower()
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_dir():
        if (
            name.endswith(".zarr")
            or (path / "zarr.json").exists()
            or (path / ".zarray").exists()
            or (path / ".zgroup").exists()
        ):
            return read_zarr(path, lazy=lazy)
        return read_tiff_folder(path, lazy=lazy)
    if name.endswith(_TIFF_SUFFIXES):
        return read_tiff(path, lazy=lazy)
    if name.endswith(".npy"):
        return read_npy(path, lazy=lazy)
    if name.endswith((".h5", ".hdf5", ".he5", ".nxs")):
        raise DatasetError(
            f"{path}: HDF5 files need the dataset names: use asymflux.io.read_hdf5(path, "
            "stack='/...', time_s='/...', ...)"
        )
    raise DatasetError(
        f"{path}: unknown stack format (expected .tif, .ome.tif, a TIFF folder, .zarr or .npy)"
    )


# ---------------------------------------------------------------------------- HDF5


def read_hdf5(
    path,
    *,
    stack: str,
    time_s: str | None = None,
    echem: Mapping[str, str] | None = None,
    pixel_nm: float | str | None = None,
    frame_interval_s: float | None = None,
    active_mass_mg: float | None = None,
    metadata: Mapping | None = None,
    lazy: bool = True,
):
    """Read an operando experiment from an HDF5 file as instrument software writes it.

    Parameters
    ----------
    path : str or Path
        The ``.h5`` file.
    stack : str, keyword-only
        Name of the (time, row, col) image dataset, e.g. ``"/camera/frames"``.
    time_s : str, optional, keyword-only
        Name of the frame-time dataset (n_frames,), seconds.
    echem : mapping, optional, keyword-only
        ``{our column: dataset name}``, e.g. ``{"time_s": "/pstat/t", "voltage_V":
        "/pstat/E", "current_mA": "/pstat/I"}``; 1-D datasets of equal length, our units.
    pixel_nm : float or str, optional, keyword-only
        Pixel size in nm, or the name of a scalar dataset holding it. Default: the stack
        dataset's ``pixel_nm`` attribute.
    frame_interval_s : float, optional, keyword-only
        Used when ``time_s`` is not given: frame ``k`` at ``k * frame_interval_s``.
    active_mass_mg : float, optional, keyword-only
        Active mass, mg; ``capacity_mAh_g`` is integrated from the current when the
        mapping has no capacity.
    metadata : mapping, optional, keyword-only
        Metadata for the dataset (material, ageing, rate_mA_g, cell, ...).
    lazy : bool, keyword-only
        True: the stack is a dask array over the open HDF5 dataset (the file stays open
        while it is referenced). False: loaded into memory.

    Returns
    -------
    Dataset
    """
    import h5py
    import pandas as pd

    from asymflux.io.dataset import Dataset
    from asymflux.io.echem import _finish

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such HDF5 file")
    try:
        f = h5py.File(path, "r")
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"{path}: not a readable HDF5 file ({type(e).__name__}: {e})") from e

    def get(name, what):
        obj = f.get(name)
        if not isinstance(obj, h5py.Dataset):
            raise DatasetError(f"{path}: no dataset {name!r} (given as {what})")
        return obj

    try:
        dset = get(stack, "stack")
        check_stack(dset, source=f"{path}:{stack}")
        n = dset.shape[0]
        if time_s is not None:
            t = check_time_s(get(time_s, "time_s")[()], n, source=f"{path}:{time_s}")
        elif frame_interval_s is not None:
            t = np.arange(n) * float(frame_interval_s)
        elif "time_s" in dset.attrs:
            t = check_time_s(dset.attrs["time_s"], n, source=f"{path}:{stack} attribute time_s")
        else:
            raise DatasetError(
                f"{path}: no frame times: pass time_s='/name/of/times' or frame_interval_s=..."
            )
        if isinstance(pixel_nm, str):
            px = _check_pixel_nm(get(pixel_nm, "pixel_nm")[()], source=f"{path}:{pixel_nm}")
        elif pixel_nm is not None:
            px = _check_pixel_nm(pixel_nm, source="pixel_nm")
        elif "pixel_nm" in dset.attrs:
            px = _check_pixel_nm(
                dset.attrs["pixel_nm"], source=f"{path}:{stack} attribute pixel_nm"
            )
        else:
            raise DatasetError(
                f"{path}: no pixel size: pass pixel_nm=... (nm, or the name of a dataset)"
            )
        table = None
        if echem:
            cols = {}
            for ours, name in echem.items():
                col = np.asarray(get(name, f"echem[{ours!r}]")[()])
                if col.ndim != 1:
                    raise DatasetError(
                        f"{path}: echem dataset {name!r} must be 1-D, got shape {col.shape}"
                    )
                cols[ours] = col.astype(np.float64) if col.dtype.kind in "fiu" else col
            lengths = {k: len(v) for k, v in cols.items()}
            if len(set(lengths.values())) > 1:
                raise DatasetError(f"{path}: echem datasets differ in length: {lengths}")
            table = _finish(
                pd.DataFrame(cols),
                source=str(path),
                active_mass_mg=active_mass_mg,
                required=("time_s",),
            )
        if lazy:
            import dask.array as da

            data = da.from_array(dset, chunks=(1, *dset.shape[1:]))
        else:
            data = dset[()]
    except BaseException:
        f.close()
        raise
    if not lazy:
        f.close()
    meta = dict(metadata or {})
    if active_mass_mg is not None:
        meta.setdefault("active_mass_mg", float(active_mass_mg))
    meta.setdefault("name", path.stem)
    return Dataset(stack=data, time_s=t, pixel_nm=px, echem=table, metadata=meta, path=path)
