"""Read a bare stack of any kind: the one place that picks a stack reader by the input's kind.

Above :mod:`asymflux.io.stacks` (TIFF, zarr, ``.npy``) and :mod:`asymflux.io.instrument`
(TDMS, the instrument HDF5 layout); :mod:`asymflux.io.dataset` builds on it.
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
            "stack='/...', time_s='/...', ...) (this file has no 'movie' dataset of the "
            "instrument layout)"
        )
    raise DatasetError(
        f"{path}: unknown stack format (expected .tif, .ome.tif, a TIFF folder, .zarr, .npy, "
        ".tdms or an instrument .h5)"
    )
