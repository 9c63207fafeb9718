"""Read a bare stack of any kind: the one place that picks a stack reader by the input's kind.

Above :mod:`asymflux.io.stacks` (TIFF, zarr, ``.npy``) and :mod:`asymflux.io.instrument`
(TDMS, the instrument HDF5 layout); :func:`asymflux.io.read_dataset` builds on it.
"""

from __future__ import annotations

from pathlib import Path

from asymflux.io._errors import DatasetError
from asymflux.io.instrument import is_instrument_hdf5, read_instrument_stack, read_tdms
from asymflux.io.stacks import (
    _HDF5_SUFFIXES,
    _TIFF_SUFFIXES,
    RawStack,
    read_npy,
    read_tiff,
    read_tiff_folder,
    read_zarr,
)

__all__ = ["read_stack"]


def read_stack(
    path,
    *,
    lazy: bool = True,
    channel: int | str | None = None,
    z: int | None = None,
    frame_axis: str | None = None,
) -> RawStack:
    """Read a bare stack by its kind: TIFF file, folder of TIFFs, ``.zarr``, ``.npy``,
    ``.tdms``, or an HDF5 file of the instrument layout (a ``movie`` dataset).

    ``channel``, ``z`` and ``frame_axis`` go to :func:`read_tiff`; for ``.tdms``,
    ``channel`` is the channel name (:func:`asymflux.io.read_tdms`). Other HDF5 files need
    their dataset names: :func:`read_hdf5`.
    """
    path = Path(path)
    name = path.name.lower()
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    is_tiff = not path.is_dir() and name.endswith(_TIFF_SUFFIXES)
    is_tdms = not path.is_dir() and name.endswith(".tdms")
    given = [
        k for k, v in (("channel", channel), ("z", z), ("frame_axis", frame_axis)) if v is not None
    ]
    if given and not is_tiff and not (is_tdms and given == ["channel"]):
        raise DatasetError(
            f"{path}: {', '.join(given)}= only apply to TIFF files (and channel= to .tdms)"
        )
    if path.is_dir():
        if (
            name.endswith(".zarr")
            or (path / "zarr.json").exists()
            or (path / ".zarray").exists()
            or (path / ".zgroup").exists()
        ):
            return read_zarr(path, lazy=lazy)
        return read_tiff_folder(path, lazy=lazy)
    if is_tiff:
        return read_tiff(path, lazy=lazy, channel=channel, z=z, frame_axis=frame_axis)
    if name.endswith(".npy"):
        return read_npy(path, lazy=lazy)
    if is_tdms:
        return read_tdms(path, channel=channel, lazy=lazy)
    if name.endswith(_HDF5_SUFFIXES):
        if is_instrument_hdf5(path):
            return read_instrument_stack(path, lazy=lazy)
        raise DatasetError(
            f"{path}: HDF5 files need the dataset names: use asymflux.io.read_hdf5(path, "
            f"stack='/...', time_s='/...', ...) ({_hdf5_contents(path)})"
        )
    raise DatasetError(
        f"{path}: unknown stack format (expected .tif, .ome.tif, a TIFF folder, .zarr, .npy, "
        ".tdms or an instrument .h5)"
    )


def _hdf5_contents(path) -> str:
    """Why an HDF5 file is not the instrument layout, and which datasets could be a stack."""
    import h5py

    found: list[str] = []
    movie: list[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and len(found) < 200:
            kind = obj.dtype.kind
            desc = f"/{name} {obj.shape} {obj.dtype}"
            if name.rsplit("/", 1)[-1] == "movie":
                movie.append(desc)
            if obj.ndim == 3 and kind in "uif":
                found.append(desc)

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except Exception as e:  # noqa: BLE001 - not HDF5, or a broken link: say so
        return f"it cannot be opened as HDF5: {type(e).__name__}: {e}"
    out = []
    if movie:
        out.append(f"its 'movie' is {movie[0]}, where the instrument layout has a 3-D "
                   "(frames, rows, cols) array of numbers")
    else:
        out.append("this file has no 'movie' dataset of the instrument layout")
    out.append(f"3-D numeric datasets: {found[:10]}" if found else "it holds no 3-D numeric "
               "dataset that could be a stack")
    return "; ".join(out)
