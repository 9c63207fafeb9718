"""Reading a dataset folder (its tables refused, naming the file and the column, when they
are separated by ';' or hold decimal commas) or a bare stack: :func:`read_dataset`,
:func:`read_masks`, :func:`read_annotations`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from asymflux._atomic import is_leftover, restore_moved_aside
from asymflux.io._csv import ROUND_TRIP
from asymflux.io._errors import DatasetError
from asymflux.io._hdf5 import read_hdf5
from asymflux.io.dataset import (
    _TEXT_COLUMNS,
    CURATION_FILES,
    DATA_FILES,
    FORMAT,
    REQUIRED_METADATA,
    VERSION,
    Dataset,
    _normalize_annotations,
    check_masks,
    check_metadata_values,
    is_dataset_folder,
)
from asymflux.io.echem import ECHEM_COLUMNS, check_echem
from asymflux.io.instrument import is_instrument_hdf5
from asymflux.io.readers import read_stack
from asymflux.io.stacks import (
    _HDF5_SUFFIXES,
    check_frame_interval_s,
    check_pixel_nm,
    check_time_s,
    open_tiff,
    read_tiff,
    read_zarr,
)

__all__ = ["read_annotations", "read_dataset", "read_masks"]

def _read_json(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing metadata file") from None
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _read_metadata(folder: Path) -> dict:
    path = folder / "metadata.json"
    meta = _read_json(path)
    if meta.get("format") != FORMAT:
        raise DatasetError(f"{path}: field 'format' must be {FORMAT!r}, got {meta.get('format')!r}")
    version = meta.get("version")
    if isinstance(version, bool) or version != VERSION:
        raise DatasetError(
            f"{path}: unsupported version {json.dumps(version, default=str)} (this asymflux "
            f"reads {VERSION}: the number {VERSION})"
        )
    missing = [k for k in ("pixel_nm", "stack", *REQUIRED_METADATA) if k not in meta]
    if missing:
        raise DatasetError(f"{path}: missing metadata field(s) {missing}")
    check_pixel_nm(meta["pixel_nm"], source=str(path))
    if not isinstance(meta["stack"], str):
        raise DatasetError(f"{path}: stack must be a file name (text), got "
                           f"{json.dumps(meta['stack'], default=str)}")
    check_metadata_values(meta, source=str(path))
    return meta


_FIX_CSV = ("asymflux reads comma-separated tables with a decimal point: convert it, e.g. "
            "pandas.read_csv(path, sep=';', decimal=',').to_csv(path, index=False)")
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d+,\d+([eE][-+]?\d+)?\s*$")


def _read_csv(path: Path, *, numeric=(), **kwargs) -> pd.DataFrame:
    """Read a CSV table of a dataset folder; the columns in ``numeric`` (those present) must
    hold numbers. A table separated by ';' or with decimal commas is refused naming the
    file, the column and the fix."""
    try:
        df = pd.read_csv(path, **{**ROUND_TRIP, **kwargs})
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{path}: empty file (no header, no data)") from None
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"{path}: not a readable CSV table ({type(e).__name__}: {e})") from e
    if len(df.columns) == 1 and any(sep in str(df.columns[0]) for sep in (";", "\t")):
        sep = ";" if ";" in str(df.columns[0]) else "tab"
        raise DatasetError(
            f"{path}: one column {str(df.columns[0])!r}: the table is separated by {sep!r}, "
            f"not commas (a decimal-comma locale?); {_FIX_CSV}"
        )
    for c in numeric:
        if c in df.columns and not pd.api.types.is_numeric_dtype(df[c]):
            values = df[c].dropna().astype(str)
            comma = values[values.str.match(_DECIMAL_COMMA)]
            if len(comma):
                raise DatasetError(
                    f"{path}: column {c!r} holds {comma.iloc[0]!r}: a number written with a "
                    f"decimal comma; {_FIX_CSV}"
                )
            bad = values[pd.to_numeric(values, errors="coerce").isna()]
            example = f" such as {bad.iloc[0]!r}" if len(bad) else ""
            raise DatasetError(
                f"{path}: column {c!r} must hold numbers, got text{example} (dtype "
                f"{df[c].dtype})"
            )
    return df


def _open_folder_stack(folder: Path, meta: dict, *, lazy: bool):
    name = meta["stack"]
    path = folder / name
    if Path(name).name != name or not path.exists():
        raise DatasetError(
            f"{folder / 'metadata.json'}: stack {name!r} not found in the dataset folder"
        )
    if name.lower().endswith(".zarr"):
        return read_zarr(path, lazy=lazy)
    if name.lower().endswith((".tif", ".tiff")):
        return read_tiff(path, lazy=lazy)
    raise DatasetError(
        f"{folder / 'metadata.json'}: unknown stack format {name!r} (expected .ome.tif or .zarr)"
    )


def read_masks(path) -> np.ndarray:
    """Read a (row, col) label image: a TIFF (``masks.tif``, as napari or Fiji save it) or a
    NumPy ``.npy`` file. :class:`DatasetError` (a ValueError) naming the file when it is
    missing, unreadable or not 2-D (singleton axes are dropped)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"masks file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            m = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise DatasetError(f"{path}: cannot read the mask image ({type(e).__name__}: {e})") from e
    elif suffix in (".tif", ".tiff"):

        tif = open_tiff(path)
        try:
            m = tif.series[0].asarray()
        except Exception as e:  # noqa: BLE001
            raise DatasetError(f"{path}: cannot read the mask image ({type(e).__name__}: {e})") from e
        finally:
            tif.close()
    else:
        raise DatasetError(f"masks file {path}: expected a .tif, .tiff or .npy label image")
    m = np.squeeze(m)
    if m.ndim != 2:
        raise DatasetError(f"masks file {path}: expected a 2-D (row, col) label image, "
                           f"got shape {m.shape}")
    return m


def read_annotations(path) -> pd.DataFrame:
    """Read ``annotations.csv``: ``particle_id`` int64, text columns as str."""
    path = Path(path)
    df = _read_csv(path, numeric=("particle_id",), dtype={c: str for c in _TEXT_COLUMNS},
                   keep_default_na=False)
    return _normalize_annotations(df, source=str(path))


def _read_ground_truth(folder: Path) -> dict:
    gt = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        key = p.name.split(".")[0]
        if p.suffix == ".csv":
            gt[key] = _read_csv(p)
        elif p.suffix == ".npz":
            try:
                with np.load(p, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
            except Exception as e:  # noqa: BLE001 - a corrupt file of any kind
                raise DatasetError(
                    f"{p}: not a readable .npz file ({type(e).__name__}: {e})"
                ) from e
            gt[key] = arrays[key] if list(arrays) == [key] else arrays
        elif p.suffix in (".tif", ".tiff"):
            gt[key] = read_masks(p)
        elif p.suffix == ".json":
            gt[key] = _read_json(p)
    return gt


def _read_folder(folder: Path, *, lazy: bool) -> Dataset:
    meta = _read_metadata(folder)
    raw = _open_folder_stack(folder, meta, lazy=lazy)
    n = raw.stack.shape[0]
    frames_path = folder / "frames.csv"
    if not frames_path.is_file():
        raise DatasetError(f"{frames_path}: missing frame-time table (frame, time_s)")
    frames = _read_csv(frames_path, numeric=("frame", "time_s"))
    if "time_s" not in frames.columns:
        raise DatasetError(f"{frames_path}: no time_s column; it has {list(frames.columns)}")
    time_s = check_time_s(frames["time_s"].to_numpy(), n, source=str(frames_path))
    echem = None
    if (folder / "echem.csv").is_file():
        echem = _read_csv(folder / "echem.csv", numeric=(*ECHEM_COLUMNS, "charge_mAh"))
        check_echem(echem, source=str(folder / "echem.csv"), required=ECHEM_COLUMNS)
        echem.attrs["source"] = str(folder / "echem.csv")
    masks = None
    if (folder / "masks.tif").is_file():
        masks = check_masks(
            read_masks(folder / "masks.tif"), raw.stack.shape[1:], source=str(folder / "masks.tif")
        )
    annotations = None
    if (folder / "annotations.csv").is_file():
        annotations = read_annotations(folder / "annotations.csv")
    ground_truth = None
    if (folder / "ground_truth").is_dir():
        ground_truth = _read_ground_truth(folder / "ground_truth")
    meta = {k: v for k, v in meta.items() if k != "stack"}
    return Dataset(
        stack=raw.stack,
        time_s=time_s,
        pixel_nm=check_pixel_nm(meta["pixel_nm"], source=str(folder / "metadata.json")),
        echem=echem,
        metadata=meta,
        masks=masks,
        annotations=annotations,
        ground_truth=ground_truth,
        path=folder,
    )


def read_dataset(
    path,
    *,
    lazy: bool = True,
    pixel_nm: float | None = None,
    frame_interval_s: float | None = None,
    time_s=None,
    metadata: dict | None = None,
    channel: int | str | None = None,
    z: int | None = None,
    frame_axis: str | None = None,
) -> Dataset:
    """Read a dataset folder, or a bare stack (TIFF / OME-TIFF, TIFF folder, ``.zarr``, ``.npy``,
    ``.tdms``, an instrument HDF5 file).

    Parameters
    ----------
    path : str or Path
        A dataset folder (has ``metadata.json``) or a bare stack.
    lazy : bool, keyword-only
        Keep zarr / TIFF stacks on disk as dask arrays (``.npy`` is memory-mapped).
    pixel_nm : float, optional, keyword-only
        Bare stacks only: pixel size, nm (overrides the file's metadata).
    frame_interval_s : float, optional, keyword-only
        Bare stacks only: frame ``k`` at ``k * frame_interval_s`` s (overrides the file).
    time_s : (n_frames,) array_like, optional, keyword-only
        Bare stacks only: explicit frame times, s.
    metadata : dict, optional, keyword-only
        Bare stacks only: metadata for the Dataset (material, ageing, ...).
    channel, z, frame_axis : optional, keyword-only
        Bare stacks only: which channel / depth of a TIFF to read, and which axis is the
        frames (:func:`asymflux.io.read_tiff`); ``channel`` names a ``.tdms`` channel.

    An HDF5 file of the instrument layout (a ``movie`` dataset) is read by
    :func:`asymflux.io.read_hdf5` with its echem table; its frame times are its own
    (``camera_timing``).

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        Anything wrong with the files (the message names the file); for a bare stack
        without pixel size or frame times, which argument to pass.
    """
    path = Path(path)
    if is_leftover(path):
        raise DatasetError(f"{path}: a leftover of an interrupted write, not a dataset")
    if not path.exists() and restore_moved_aside(path.parent):
        pass  # a folder half-replaced by a killed writer is restored (nothing deleted)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if is_dataset_folder(path):
        given = [
            n
            for n, v in (
                ("pixel_nm", pixel_nm),
                ("frame_interval_s", frame_interval_s),
                ("time_s", time_s),
                ("metadata", metadata),
                ("channel", channel),
                ("z", z),
                ("frame_axis", frame_axis),
            )
            if v is not None
        ]
        if given:
            raise DatasetError(
                f"{path}: is a dataset folder; {', '.join(given)}= only apply to bare stacks "
                "(edit metadata.json / frames.csv instead)"
            )
        return _read_folder(path, lazy=lazy)
    if path.is_dir():
        parts = [n for n in (*DATA_FILES, *CURATION_FILES) if (path / n).exists()]
        if parts:
            raise DatasetError(
                f"{path / 'metadata.json'}: missing: {path} has {', '.join(parts)} as a "
                "dataset folder does, but no metadata.json (see docs/dataset-format.md); "
                "restore it, or write the folder again with io.write_dataset"
            )
    if pixel_nm is not None:
        pixel_nm = check_pixel_nm(pixel_nm, source=f"{path}: argument")
    if frame_interval_s is not None:
        frame_interval_s = check_frame_interval_s(frame_interval_s, source=f"{path}: argument")
    if path.is_file() and path.name.lower().endswith(_HDF5_SUFFIXES) and is_instrument_hdf5(path):
        if time_s is not None or frame_interval_s is not None:
            raise DatasetError(
                f"{path}: frame times come from its camera_timing; to use others, name the "
                "datasets: read_hdf5(path, stack='/movie', time_s='/...', pixel_nm=...)"
            )
        if channel is not None or z is not None or frame_axis is not None:
            raise DatasetError(f"{path}: channel= / z= / frame_axis= only apply to TIFF files")
        return read_hdf5(path, pixel_nm=pixel_nm, metadata=metadata, lazy=lazy)
    raw = read_stack(path, lazy=lazy, channel=channel, z=z, frame_axis=frame_axis)
    n = raw.stack.shape[0]
    if pixel_nm is None and raw.pixel_nm is not None:
        try:
            pixel_nm = check_pixel_nm(raw.pixel_nm, source=f"{path}: the file's metadata")
        except DatasetError as e:
            raise DatasetError(f"{e}; pass pixel_nm=... (nm) to override it") from None
    if pixel_nm is None:
        raise DatasetError(f"{path}: the file does not give the pixel size: pass pixel_nm=... (nm)")
    if time_s is not None and frame_interval_s is not None:
        raise DatasetError(f"{path}: pass time_s=... or frame_interval_s=..., not both")
    if time_s is not None:
        t = check_time_s(time_s, n, source="time_s argument")
    elif frame_interval_s is not None:
        t = np.arange(n, dtype=np.float64) * frame_interval_s
    elif raw.time_s is not None:
        t = raw.time_s
    else:
        raise DatasetError(
            f"{path}: the file does not give frame times: pass frame_interval_s=... (s) "
            "or time_s=[...] (one time per frame, s)"
        )
    meta = dict(metadata or {})
    meta.setdefault("name", path.name.split(".")[0])
    return Dataset(stack=raw.stack, time_s=t, pixel_nm=pixel_nm, metadata=meta, path=path)
