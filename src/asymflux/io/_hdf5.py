"""HDF5 files as a :class:`~asymflux.io.Dataset`: :func:`read_hdf5` (datasets named by
hand, or the instrument layout read by :func:`read_instrument_hdf5`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from asymflux.io._errors import DatasetError
from asymflux.io.dataset import Dataset
from asymflux.io.echem import _finish, _warn
from asymflux.io.instrument import _read_layout
from asymflux.io.stacks import (
    _check_pixel_nm,
    _hdf5_stack,
    _hdf5_trace,
    _open_hdf5,
    check_frame_interval_s,
    check_pixel_nm,
    check_stack,
    check_time_s,
)

__all__ = ["read_hdf5"]

def read_hdf5(
    path,
    *,
    stack: str | None = None,
    time_s: str | tuple[str, int] | None = None,
    echem: Mapping[str, str | tuple[str, int]] | None = None,
    pixel_nm: float | str | None = None,
    frame_interval_s: float | None = None,
    active_mass_mg: float | None = None,
    metadata: Mapping | None = None,
    lazy: bool = True,
):
    """Read an operando experiment from an HDF5 file as instrument software writes it.

    With no ``stack``, the file must have the instrument layout (a 3-D ``movie`` dataset;
    see below). Otherwise the datasets are named by hand.

    Parameters
    ----------
    path : str or Path
        The ``.h5`` file.
    stack : str, optional, keyword-only
        Name of the (time, row, col) image dataset, e.g. ``"/camera/frames"``. Default:
        the instrument layout's ``movie``.
    time_s : str, optional, keyword-only
        Name of the frame-time dataset (n_frames,), seconds, or ``(name, k)``: the k-th
        trace of a 2-D dataset.
    echem : mapping, optional, keyword-only
        ``{our column: dataset}``, e.g. ``{"time_s": "/pstat/t", "voltage_V":
        "/pstat/E", "current_mA": "/pstat/I"}``; 1-D datasets of equal length, our units.
        ``(name, k)`` takes the k-th trace of a 2-D dataset (along its shorter axis), e.g.
        ``{"time_s": ("/potentiostat_value", 0), "voltage_V": ("/potentiostat_value", 1)}``.
    pixel_nm : float or str, optional, keyword-only
        Pixel size in nm, or the name of a scalar dataset holding it. Default: the stack
        dataset's ``pixel_nm`` attribute (instrument layout: ``pixel_nm``,
        ``pixel_size_nm`` or ``pixel_size_um`` on ``movie``, its group or the file).
    frame_interval_s : float, optional, keyword-only
        Used when ``time_s`` is not given: frame ``k`` at ``k * frame_interval_s``.
    active_mass_mg : float, optional, keyword-only
        Active mass, mg; ``capacity_mAh_g`` is integrated from the current when the
        mapping has no capacity.
    metadata : mapping, optional, keyword-only
        Metadata for the dataset (material, ageing, rate_mA_g, cell, ...).
    lazy : bool, keyword-only
        True: the stack is a dask array over the open HDF5 dataset, chunked along time
        (the file stays open while it is referenced; the first chunk is read now, so an
        undecodable file fails here). False: loaded into memory.

    Returns
    -------
    Dataset

    Notes
    -----
    The instrument layout (the Cambridge charge-photometry pipeline) is read as follows;
    ``stage_position`` is not read.

    ``movie`` (frames, rows, cols)
        The stack.
    ``camera_timing``
        Frame times. 1-D (n_frames,); or 2-D with one axis of length n_frames, of which
        the first entry along the other axis is taken as the time stamp. Unit from an
        attribute ``units`` / ``unit`` (``s``, ``ms``, ``us``, ...), seconds if none.
        Stamps that are absolute Unix times (1999-2103 in seconds) become seconds after
        the first frame, and ``metadata["start"]`` gets the first frame's UTC time.
    ``average_intensity``
        Per-frame mean intensity (1-D, or 2-D as ``camera_timing``): kept as the
        field ``dataset.frame_intensity`` (n_frames,) float64 (not written by
        :func:`write_dataset`) and its name in ``metadata["average_intensity_dataset"]``.
    ``potentiostat_value``
        1-D (n_frames): assumed the measured voltage, V, one value per camera frame
        (a ``units`` / ``unit`` attribute may say ``mV``, or a current). 2-D: 3 traces
        read as (time, voltage, current), 4 as (voltage, current, charge, time), each
        only when the traces pass checks (time non-decreasing, voltage in [-5, 10] V);
        otherwise refused with the recipe to map them by hand. ``echem.attrs["assumed"]``
        says what was assumed (``docs/formats.md``). No current means no capacity.
    ``potentiostat_block``
        Assumed to be the protocol step / block per frame: echem column ``block``.

    Raises
    ------
    DatasetError
        A missing or misshapen dataset (the message names it, and how to map it by hand),
        no frame times, no pixel size, echem columns of different lengths.
    """
    if stack is None:
        given = [
            k
            for k, v in (
                ("time_s", time_s),
                ("echem", echem),
                ("frame_interval_s", frame_interval_s),
            )
            if v is not None
        ]
        if given:
            raise DatasetError(
                f"{path}: {', '.join(given)}= name datasets by hand and need stack='/...' too "
                "(without stack=, the instrument layout's own fields are read)"
            )
        return read_instrument_hdf5(
            path, pixel_nm=pixel_nm, active_mass_mg=active_mass_mg, metadata=metadata, lazy=lazy
        )
    return _read_hdf5_mapped(
        path,
        stack=stack,
        time_s=time_s,
        echem=echem,
        pixel_nm=pixel_nm,
        frame_interval_s=frame_interval_s,
        active_mass_mg=active_mass_mg,
        metadata=metadata,
        lazy=lazy,
    )


def _read_hdf5_mapped(
    path, *, stack, time_s, echem, pixel_nm, frame_interval_s, active_mass_mg, metadata, lazy
):
    import h5py

    path = Path(path)
    f = _open_hdf5(path)

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
            t = check_time_s(_hdf5_trace(f, time_s, "time_s", path=path), n,
                             source=f"{path}:{time_s}")
        elif frame_interval_s is not None:
            t = np.arange(n) * check_frame_interval_s(frame_interval_s,
                                                      source=f"{path}: argument")
        elif "time_s" in dset.attrs:
            t = check_time_s(dset.attrs["time_s"], n, source=f"{path}:{stack} attribute time_s")
        else:
            raise DatasetError(
                f"{path}: no frame times: pass time_s='/name/of/times' or frame_interval_s=..."
            )
        if isinstance(pixel_nm, str):
            px = _check_pixel_nm(get(pixel_nm, "pixel_nm")[()], source=f"{path}:{pixel_nm}")
        elif pixel_nm is not None:
            px = check_pixel_nm(pixel_nm, source=f"{path}: argument")
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
            for ours, spec in echem.items():
                col = _hdf5_trace(f, spec, f"echem[{ours!r}]", path=path)
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
        data = _hdf5_stack(dset, source=f"{path}:{stack}", lazy=lazy)
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


def read_instrument_hdf5(
    path, *, pixel_nm=None, active_mass_mg=None, metadata=None, lazy: bool = True
):
    """Read an instrument HDF5 file (layout recognised by its datasets) as a Dataset.

    See :func:`asymflux.io.read_hdf5` (called with no ``stack=``) for what is read.
    """
    path = Path(path)
    p = _read_layout(path, pixel_nm=pixel_nm, lazy=lazy, need_pixel=True, echem=True)
    table = None
    if p["echem"]:
        df = pd.DataFrame(p["echem"])
        df.attrs.update(p["echem_attrs"])
        table = _finish(df, source=str(path), active_mass_mg=active_mass_mg, required=("time_s",))
        _warn(table, p["echem_warnings"], source=str(path))
    meta = dict(metadata or {})
    if active_mass_mg is not None:
        meta.setdefault("active_mass_mg", float(active_mass_mg))
    if p["start"] is not None:
        meta.setdefault("start", p["start"])
    if p["timing_trace"] is not None:
        meta["camera_timing_trace"] = list(p["timing_trace"])  # [dataset, k]
    if p["intensity_name"] is not None:
        meta["average_intensity_dataset"] = p["intensity_name"]
    meta.setdefault("name", path.stem)
    return Dataset(
        stack=p["stack"],
        time_s=p["time_s"],
        pixel_nm=p["pixel_nm"],
        echem=table,
        metadata=meta,
        path=path,
        frame_intensity=p["frame_intensity"],  # (n_frames,) or None; not written to disk
    )
