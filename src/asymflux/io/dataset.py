"""The dataset folder: :class:`Dataset`, :func:`read_dataset`, :func:`write_dataset`.

See ``docs/dataset-format.md`` for the layout. Every write is atomic: a whole dataset is
written into a temporary folder (in the hidden ``.asymflux-partial/`` beside it) and
swapped with the previous folder in one step (:func:`asymflux._atomic.atomic_folder`), so
a reader finds the old complete dataset or the new one, never a mix or nothing. Rewriting a
dataset keeps its curation (``annotations.csv``, ``masks.tif``, their ``.prev`` copies,
``curation.autosave.npz``) and any other file it does not write itself. Single files go
through :func:`asymflux._atomic.atomic_path`. Leftovers of interrupted writes are never
read and are removed when found.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import math
import os
import re
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from asymflux._atomic import (
    atomic_folder,
    atomic_path,
    default_mode,
    is_leftover,
    link_into,
    restore_moved_aside,
)
from asymflux.io._csv import ROUND_TRIP
from asymflux.io._errors import DatasetError
from asymflux.io.echem import (
    ECHEM_COLUMNS,
    EchemWarning,
    _finish,
    _warn,
    check_echem,
    integrate_capacity,
)
from asymflux.io.instrument import _read_layout, is_instrument_hdf5
from asymflux.io.readers import read_stack
from asymflux.io.stacks import (
    _HDF5_SUFFIXES,
    _check_pixel_nm,
    _hdf5_stack,
    _hdf5_trace,
    _open_hdf5,
    _open_tiff,
    check_frame_interval_s,
    check_number,
    check_pixel_nm,
    check_stack,
    check_time_s,
    read_tiff,
    read_zarr,
)

__all__ = [
    "ANNOTATION_COLUMNS",
    "FORMAT",
    "REQUIRED_METADATA",
    "VERSION",
    "Dataset",
    "CURATION_FILES",
    "DATA_FILES",
    "NUMERIC_METADATA",
    "check_masks",
    "dataset_folders",
    "read_annotations",
    "read_dataset",
    "read_masks",
    "write_annotations",
    "write_dataset",
    "write_masks",
]

FORMAT = "asymflux-dataset"
VERSION = 1
#: Fields ``metadata.json`` must have (besides ``format``, ``version``, ``pixel_nm``, ``stack``).
REQUIRED_METADATA = ("material", "ageing", "rate_mA_g", "cell")
#: Numeric ``metadata.json`` fields besides ``pixel_nm``: (low, high, unit), low excluded. A
#: boolean, text, NaN or a value out of range is refused (``true`` is not 1); None = unknown.
NUMERIC_METADATA = {
    "rate_mA_g": (0.0, 1e5, "mA/g"),
    "active_mass_mg": (0.0, 1e6, "mg"),
}
#: ``metadata.json`` fields that hold text (a number is accepted and read as text).
_TEXT_METADATA = ("name", "material", "ageing", "cell")
#: Columns of ``annotations.csv``; ``particle_id`` and ``class`` are required, the rest are text.
ANNOTATION_COLUMNS = ("particle_id", "class", "notes", "who", "when")
_TEXT_COLUMNS = ("class", "notes", "who", "when")
_STACK_FILES = {"ome-tiff": "stack.ome.tif", "zarr": "stack.zarr"}
#: What :func:`write_dataset` writes into a dataset folder (besides masks and annotations).
DATA_FILES = ("metadata.json", "frames.csv", "echem.csv", "stack.ome.tif", "stack.zarr",
              "ground_truth")
#: The curation of a dataset folder, kept when the dataset is rewritten.
CURATION_FILES = ("masks.tif", "annotations.csv", "masks.prev.tif", "annotations.prev.csv",
                  "curation.autosave.npz")
_OME_DTYPES = {
    "bool",
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "float32",
    "float64",
    "complex64",
    "complex128",
}


# ---------------------------------------------------------------------------- checks


def check_masks(masks, frame_shape, *, source="masks") -> np.ndarray:
    """Return ``masks`` as an ndarray, or raise naming ``source``.

    Masks are a (row, col) integer (or bool) label image, 0 = background, no negative
    labels, with the shape of one frame.
    """
    m = np.asarray(masks)
    if m.ndim != 2:
        raise DatasetError(
            f"{source}: masks must be a 2-D label image (row, col), got shape {m.shape}"
        )
    if tuple(m.shape) != tuple(frame_shape):
        raise DatasetError(
            f"{source}: mask shape {tuple(m.shape)} differs from the stack's frame shape "
            f"{tuple(frame_shape)} (row, col)"
        )
    if not (np.issubdtype(m.dtype, np.integer) or m.dtype == np.bool_):
        raise DatasetError(f"{source}: masks must be integer labels, got dtype {m.dtype}")
    if np.issubdtype(m.dtype, np.signedinteger) and m.size and m.min() < 0:
        raise DatasetError(f"{source}: masks have negative labels (min {m.min()}); 0 is background")
    return m


def check_metadata_values(meta: dict, *, source) -> dict:
    """Raise :class:`DatasetError` naming ``source`` and the field unless the numeric fields
    (:data:`NUMERIC_METADATA`) are numbers in range (or None) and the text fields are text
    or numbers; return ``meta``."""
    for key, (low, high, unit) in NUMERIC_METADATA.items():
        if meta.get(key) is not None:
            check_number(meta[key], source=source, name=key, low=low, high=high,
                         low_inclusive=False, unit=unit)
    for key in _TEXT_METADATA:
        value = meta.get(key)
        if isinstance(value, (bool, np.bool_, list, dict)):
            raise DatasetError(
                f"{source}: {key} must be text, got {json.dumps(value, default=str)}"
            )
    if "synthetic" in meta and not isinstance(meta["synthetic"], (bool, np.bool_)):
        raise DatasetError(f"{source}: synthetic must be true or false, got {meta['synthetic']!r}")
    return meta


def _normalize_annotations(df, *, source="annotations") -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise DatasetError(
            f"{source}: annotations must be a pandas DataFrame, got {type(df).__name__}"
        )
    missing = [c for c in ("particle_id", "class") if c not in df.columns]
    if missing:
        raise DatasetError(
            f"{source}: annotation table lacks column(s) {missing}; it has {list(df.columns)} "
            f"(expected {list(ANNOTATION_COLUMNS)})"
        )
    df = df.reset_index(drop=True).copy()
    pid = df["particle_id"]
    if not pd.api.types.is_integer_dtype(pid):
        try:
            as_int = pid.astype(np.int64)
        except (TypeError, ValueError):
            raise DatasetError(
                f"{source}: particle_id must be integers, got dtype {pid.dtype}"
            ) from None
        if not np.array_equal(as_int.to_numpy(), pid.to_numpy()):
            raise DatasetError(f"{source}: particle_id must be integers, got {pid.tolist()[:5]}...")
        df["particle_id"] = as_int
    df["particle_id"] = df["particle_id"].astype(np.int64)
    for c in _TEXT_COLUMNS:
        if c in df.columns:
            col = df[c]
            if pd.api.types.is_datetime64_any_dtype(col):
                col = col.map(lambda x: "" if pd.isna(x) else x.isoformat())
            df[c] = col.map(
                lambda x: "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)
            ).astype(object)
    return df


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON serializable")


# ---------------------------------------------------------------------------- Dataset


@dataclass(eq=False)
class Dataset:
    """One operando experiment: image stack, frame times, electrochemistry, curation.

    Parameters
    ----------
    stack : (time, row, col) ndarray or dask array
        Any numeric dtype; lazy (dask) for zarr stacks read with ``lazy=True``.
    time_s : (n_frames,) array_like
        Frame times, s, strictly increasing, on the same clock as ``echem.time_s``.
    pixel_nm : float
        Pixel size, nm. Copied into ``metadata["pixel_nm"]``.
    echem : DataFrame, optional
        ``time_s, voltage_V, current_mA, capacity_mAh_g`` (+ any other columns).
        When ``capacity_mAh_g`` is missing it is computed with
        ``metadata["active_mass_mg"]``: from ``charge_mAh`` (the cycler's charge counter)
        if present, else integrated from ``current_mA``.
    metadata : dict
        As ``metadata.json`` minus the file names: ``material``, ``ageing``,
        ``rate_mA_g``, ``cell``, ``name``, ``active_mass_mg``, ... ``format`` and
        ``version`` are filled in.
    masks : (row, col) int ndarray, optional
        Particle labels, 0 = background.
    annotations : DataFrame, optional
        ``particle_id, class, notes, who, when``; text columns are stored as str (missing
        values as ``""``).
    ground_truth : dict, optional
        Synthetic datasets only, e.g. ``{"particles": DataFrame, "theta": ndarray,
        "masks": ndarray}`` (see ``docs/dataset-format.md``).
    path : Path, optional
        The folder it was read from / written to.

    Raises
    ------
    DatasetError
        Not a (time, row, col) stack, frame times that do not match the frames or go
        backwards, bad pixel size, echem time going backwards, masks of the wrong shape.
    """

    stack: object
    time_s: np.ndarray
    pixel_nm: float
    echem: pd.DataFrame | None = None
    metadata: dict = field(default_factory=dict)
    masks: np.ndarray | None = None
    annotations: pd.DataFrame | None = None
    ground_truth: dict | None = None
    path: Path | None = None

    def __post_init__(self):
        src = f"Dataset({self.path})" if self.path is not None else "Dataset"
        check_stack(self.stack, source=f"{src}.stack")
        self.time_s = check_time_s(self.time_s, self.stack.shape[0], source=f"{src}.time_s")
        self.pixel_nm = check_pixel_nm(self.pixel_nm, source=src)
        if self.metadata is not None and not isinstance(self.metadata, dict):
            raise DatasetError(f"{src}.metadata: expected a dict, got {type(self.metadata).__name__}")
        meta = dict(self.metadata or {})
        check_metadata_values(meta, source=f"{src}.metadata")
        meta.pop("stack", None)
        meta.setdefault("format", FORMAT)
        meta.setdefault("version", VERSION)
        meta["pixel_nm"] = self.pixel_nm
        self.metadata = meta
        if self.echem is not None:
            echem = check_echem(self.echem, source=f"{src}.echem", required=("time_s",)).copy()
            mass = meta.get("active_mass_mg")
            if "capacity_mAh_g" not in echem.columns and mass and len(echem):
                if "charge_mAh" in echem.columns:  # the cycler's own counter (.mpr (Q-Qo))
                    q = echem["charge_mAh"].to_numpy(np.float64)
                    finite = np.flatnonzero(np.isfinite(q))
                    q0 = q[finite[0]] if finite.size else np.nan
                    echem["capacity_mAh_g"] = (q - q0) / (float(mass) / 1000.0)
                elif "current_mA" in echem.columns:
                    echem["capacity_mAh_g"] = _integrate_finite(
                        echem["time_s"], echem["current_mA"], mass, echem)
            if mass:
                echem.attrs["active_mass_mg"] = float(mass)
            self.echem = echem
        if self.masks is not None:
            self.masks = check_masks(self.masks, self.stack.shape[1:], source=f"{src}.masks")
        if self.annotations is not None:
            self.annotations = _normalize_annotations(self.annotations, source=f"{src}.annotations")
        if self.path is not None:
            self.path = Path(self.path)

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.stack.shape[0])

    def capacity_at_frames(self) -> np.ndarray:
        """Capacity at each frame time, linearly interpolated from the echem table.

        NaN capacity cells are left out (the capacity is interpolated between the finite
        ones). Frames outside the time range of the finite cells get NaN. Each such
        problem, and the cycler reader's own warnings (``echem.attrs["warnings"]``), is
        issued as an :class:`~asymflux.io.EchemWarning` (:meth:`capacity_report` returns
        them as text instead).

        Returns
        -------
        capacity_mAh_g : (n_frames,) ndarray of float64
            mAh/g; NaN for frames outside the echem time range.

        Raises
        ------
        DatasetError
            No echem table, or it has neither ``capacity_mAh_g`` nor ``current_mA`` with
            ``metadata["active_mass_mg"]``.
        """
        cap, problems = self.capacity_report()
        for p in problems:
            warnings.warn(p, EchemWarning, stacklevel=2)
        return cap

    def capacity_report(self) -> tuple[np.ndarray, list[str]]:
        """:meth:`capacity_at_frames` and its warnings, one line of text each (no warning
        is issued): NaN capacity cells, frames outside the cycler's time range (all of
        them: the two are not on one clock), an echem table with no record, and the
        reader's ``echem.attrs["warnings"]``."""
        where = self.path or self.metadata.get("name") or "Dataset"
        if self.echem is None:
            raise DatasetError(f"{where}: no electrochemistry table (echem is None)")
        e = self.echem
        src = e.attrs.get("source") or f"{where}: echem"
        problems = [w if str(src) in w else f"{src}: {w}" for w in e.attrs.get("warnings", [])]
        if "capacity_mAh_g" in e.columns:
            cap = e["capacity_mAh_g"].to_numpy(np.float64)
        elif "current_mA" in e.columns and self.metadata.get("active_mass_mg"):
            cap = _integrate_finite(e["time_s"], e["current_mA"],
                                    self.metadata["active_mass_mg"], None)
        else:
            raise DatasetError(
                f"{where}: echem has no capacity_mAh_g; give current_mA and "
                "metadata['active_mass_mg'] to integrate it"
            )
        t = e["time_s"].to_numpy(np.float64)
        n = self.n_frames
        if t.size == 0:
            return np.full(n, np.nan), [*problems, f"{src}: no cycler record; capacity is NaN "
                                                   "for every frame"]
        good = np.isfinite(cap) & np.isfinite(t)
        if not good.any():
            return np.full(n, np.nan), [*problems, f"{src}: no finite capacity_mAh_g value "
                                                   f"(all {cap.size} are NaN or infinite); "
                                                   "capacity is NaN for every frame"]
        if not good.all():
            problems.append(f"{src}: {int((~good).sum())} of {cap.size} capacity_mAh_g values "
                            "are NaN or infinite; capacity is interpolated between the others")
        t_rec = t[np.isfinite(t)]  # the records' time range, NaN capacities included
        t0, t1 = float(t_rec.min()), float(t_rec.max())
        t, cap = t[good], cap[good]
        frames = np.asarray(self.time_s, dtype=np.float64)
        out = np.interp(frames, t, cap, left=np.nan, right=np.nan)
        off_clock = (frames < t0) | (frames > t1)
        outside = np.flatnonzero(off_clock)
        # within the records but where the capacity cells are NaN: not the clock's fault
        in_nan = np.flatnonzero(~off_clock & ((frames < t[0]) | (frames > t[-1])))
        if outside.size == n:
            problems.append(
                f"{src}: no frame lies within the cycler's records ({t0:g} to {t1:g} s; "
                f"frames {frames[0]:g} to {frames[-1]:g} s): not on one clock; "
                "capacity is NaN for every frame")
        elif outside.size:
            problems.append(
                f"{src}: {outside.size} of {n} frames (frame {_ranges(outside)}) lie outside "
                f"the cycler's records ({t0:g} to {t1:g} s); their capacity is NaN")
        if in_nan.size:
            problems.append(
                f"{src}: {in_nan.size} of {n} frames (frame {_ranges(in_nan)}) fall where the "
                f"cycler's capacity_mAh_g cells are NaN (finite from {t[0]:g} to {t[-1]:g} s "
                "only); their capacity is NaN")
        return out, problems


def _ranges(idx) -> str:
    """``[0, 1, 2, 7]`` -> ``"0-2, 7"`` (at most a few runs, then ``...``)."""
    runs, start = [], int(idx[0])
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        if b != a + 1:
            runs.append((start, int(a)))
            start = int(b)
    runs.append((start, int(idx[-1])))
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:4])
    return text + (", ..." if len(runs) > 4 else "")


def _integrate_finite(time_s, current_mA, mass, echem) -> np.ndarray:
    """Capacity integrated from the current over its finite samples (a NaN current is
    left out rather than turning every later capacity into NaN); reported in
    ``echem.attrs["warnings"]`` when ``echem`` is given."""
    t = np.asarray(time_s, dtype=np.float64)
    i = np.asarray(current_mA, dtype=np.float64)
    ok = np.isfinite(i)
    if ok.all():
        return integrate_capacity(t, i, active_mass_mg=mass)
    out = np.full(t.size, np.nan)
    if ok.sum() >= 1:
        out[ok] = integrate_capacity(t[ok], i[ok], active_mass_mg=mass)
    if echem is not None:
        msg = (f"{int((~ok).sum())} of {i.size} current_mA values are NaN or infinite; "
               "capacity integrated over the others")
        echem.attrs.setdefault("warnings", [])
        if msg not in echem.attrs["warnings"]:
            echem.attrs["warnings"] = [*echem.attrs["warnings"], msg]
    return out


# ---------------------------------------------------------------------------- reading


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


def _is_dataset_folder(path: Path) -> bool:
    return path.is_dir() and (path / "metadata.json").is_file()


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

        tif = _open_tiff(path)
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
    if _is_dataset_folder(path):
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


# ---------------------------------------------------------------------------- writing


def dataset_folders(folder) -> list[Path]:
    """The dataset folders directly inside ``folder`` (sorted); hidden entries (leftovers of
    interrupted writes among them) are never listed. Nothing is deleted."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir()
                  if not p.name.startswith(".") and _is_dataset_folder(p))


def _check_target(path: Path):
    if path.exists() and not _is_dataset_folder(path):
        what = "folder" if path.is_dir() else "file"
        raise DatasetError(
            f"{path}: exists and is not an asymflux dataset folder (no metadata.json); "
            f"refusing to replace this {what}"
        )


def _validate_for_write(ds: Dataset, path: Path, stack_format: str):
    if not isinstance(ds, Dataset):
        raise DatasetError(f"write_dataset: expected a Dataset, got {type(ds).__name__}")
    if stack_format not in _STACK_FILES:
        raise DatasetError(
            f"{path}: stack_format must be 'ome-tiff' or 'zarr', got {stack_format!r}"
        )
    # re-run the Dataset checks (fields may have been reassigned since construction)
    check_stack(ds.stack, source=f"{path}: stack")
    check_time_s(ds.time_s, ds.stack.shape[0], source=f"{path}: time_s")
    check_pixel_nm(ds.pixel_nm, source=str(path))
    check_metadata_values(ds.metadata or {}, source=f"{path}: metadata")
    missing = [k for k in REQUIRED_METADATA if k not in (ds.metadata or {})]
    if missing:
        raise DatasetError(
            f"{path}: missing metadata field(s) {missing}: set dataset.metadata[...] "
            f"(required: {list(REQUIRED_METADATA)})"
        )
    if stack_format == "ome-tiff" and np.dtype(ds.stack.dtype).name not in _OME_DTYPES:
        raise DatasetError(
            f"{path}: OME-TIFF cannot hold dtype {np.dtype(ds.stack.dtype)}; use "
            "stack_format='zarr' or cast the stack"
        )
    if ds.echem is not None:
        check_echem(ds.echem, source=f"{path}: echem", required=ECHEM_COLUMNS)
    if ds.masks is not None:
        check_masks(ds.masks, ds.stack.shape[1:], source=f"{path}: masks")
    if ds.annotations is not None:
        _normalize_annotations(ds.annotations, source=f"{path}: annotations")
    if ds.ground_truth is not None and not isinstance(ds.ground_truth, dict):
        raise DatasetError(
            f"{path}: ground_truth must be a dict, got {type(ds.ground_truth).__name__}"
        )
    try:
        json.dumps(ds.metadata, default=_json_default)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{path}: metadata cannot be written as JSON ({e})") from e


def _frame_chunks(shape, dtype, chunk_frames):
    if chunk_frames is None:
        frame_bytes = max(1, int(np.prod(shape[1:])) * np.dtype(dtype).itemsize)
        chunk_frames = max(1, min(shape[0], (4 << 20) // frame_bytes))
    return (int(chunk_frames), *shape[1:])


def _write_stack(stack, target: Path, stack_format: str, *, pixel_nm, time_s, chunk_frames):
    import dask.array as da

    lazy = isinstance(stack, da.Array)
    if stack_format == "zarr":
        import zarr

        chunks = _frame_chunks(stack.shape, stack.dtype, chunk_frames)
        arr = zarr.create_array(
            store=str(target),
            shape=stack.shape,
            chunks=chunks,
            dtype=stack.dtype,
            attributes={
                "axes": ["time", "row", "col"],
                "pixel_nm": pixel_nm,
                "time_s": [float(t) for t in time_s],
            },
        )
        if lazy:
            da.store(stack.rechunk(chunks), arr, lock=False)
        else:
            for k in range(0, stack.shape[0], chunks[0]):
                arr[k : k + chunks[0]] = np.asarray(stack[k : k + chunks[0]])
        return
    import tifffile

    nbytes = int(np.prod(stack.shape)) * np.dtype(stack.dtype).itemsize
    n = stack.shape[0]
    meta = {
        "axes": "TYX",
        "PhysicalSizeX": pixel_nm,
        "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": pixel_nm,
        "PhysicalSizeYUnit": "nm",
        "Plane": {"DeltaT": [float(t) for t in time_s], "DeltaTUnit": ["s"] * n},
        # deterministic: the same data give the same bytes (tifffile's default is random)
        "UUID": _content_uuid(stack, pixel_nm, time_s),
    }
    if lazy or isinstance(stack, np.memmap) or not isinstance(stack, np.ndarray):
        data = (np.asarray(stack[k]) for k in range(n))
        kwargs = {"shape": tuple(stack.shape), "dtype": np.dtype(stack.dtype)}
    else:
        data, kwargs = stack, {}
    tifffile.imwrite(
        target,
        data,
        ome=True,
        photometric="minisblack",
        metadata=meta,
        bigtiff=nbytes > 2**31 - 2**25,
        **kwargs,
    )


def _write_masks_file(target: Path, masks):
    import tifffile

    tifffile.imwrite(target, np.asarray(masks), photometric="minisblack", compression="zlib")


def _write_annotations_file(target: Path, df: pd.DataFrame):
    df.to_csv(target, index=False)


def _write_ground_truth(folder: Path, gt: dict):
    folder.mkdir()
    for key, value in gt.items():
        if not isinstance(key, str) or not key or "." in key or "/" in key or os.sep in key:
            raise DatasetError(
                f"ground_truth key {key!r}: must be a plain name (no dots or slashes)"
            )
        if isinstance(value, pd.DataFrame):
            value.to_csv(folder / f"{key}.csv", index=False)
        elif isinstance(value, np.ndarray) and key == "masks":
            _write_masks_file(folder / f"{key}.tif", value)
        elif isinstance(value, np.ndarray):
            np.savez_compressed(folder / f"{key}.npz", **{key: value})
        elif (
            isinstance(value, dict)
            and value
            and all(isinstance(v, np.ndarray) for v in value.values())
        ):
            np.savez_compressed(folder / f"{key}.npz", **value)
        else:
            (folder / f"{key}.json").write_text(
                json.dumps(value, indent=2, default=_json_default), encoding="utf-8"
            )


def write_dataset(
    dataset: Dataset,
    path,
    *,
    stack_format: str = "ome-tiff",
    chunk_frames: int | None = None,
) -> Path:
    """Write ``dataset`` as a dataset folder, atomically.

    Everything is written into a temporary folder in ``.asymflux-partial/`` beside
    ``path``, which then replaces ``path`` in one step: a reader (or a crash) finds the old
    complete dataset or the new one, never a mix or nothing. Nothing is written if the
    dataset is invalid.

    Rewriting an existing dataset folder keeps its curation and any file this function
    does not write itself (notes, ``*.prev.*``, ``curation.autosave.npz``):
    ``annotations.csv`` / ``masks.tif`` are kept unless ``dataset`` has its own annotations
    / masks; then the folder's versions, when different, become ``annotations.prev.csv`` /
    ``masks.prev.tif``. A kept ``masks.tif`` that does not fit the new frame shape is kept
    as ``masks.prev.tif`` only.

    Parameters
    ----------
    dataset : Dataset
        Needs ``metadata`` fields ``material``, ``ageing``, ``rate_mA_g``, ``cell``; an
        echem table, if any, with ``time_s, voltage_V, current_mA, capacity_mAh_g``.
    path : str or Path
        The dataset folder. If it exists it must be an asymflux dataset folder.
    stack_format : {"ome-tiff", "zarr"}, keyword-only
        ``stack.ome.tif`` (uncompressed, frame times and pixel size in the OME metadata) or
        ``stack.zarr`` (compressed chunks of ``chunk_frames`` frames; for stacks larger than
        memory; dask stacks are written chunk by chunk).
    chunk_frames : int, optional, keyword-only
        zarr only: frames per chunk (default: about 4 MB per chunk).

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    Missing ``metadata["name"]`` is set to the folder name. A lazy stack read from the
    folder being replaced is written before the old folder is removed, but the returned
    and the old Dataset objects then point at the new files only through ``path``.
    """
    path = Path(path)
    _validate_for_write(dataset, path, stack_format)
    _check_target(path)
    carry = _carry_curation(tuple(dataset.stack.shape[1:]))
    with _write_errors(path), atomic_folder(path, carry=carry) as tmp:
        stack_name = _STACK_FILES[stack_format]
        meta = {"format": FORMAT, "version": VERSION, "name": path.name}
        meta.update({k: v for k, v in dataset.metadata.items() if k not in ("format", "version")})
        meta["pixel_nm"] = float(dataset.pixel_nm)
        meta["stack"] = stack_name
        time_s = np.asarray(dataset.time_s, dtype=np.float64)
        _write_stack(
            dataset.stack,
            tmp / stack_name,
            stack_format,
            pixel_nm=float(dataset.pixel_nm),
            time_s=time_s,
            chunk_frames=chunk_frames,
        )
        pd.DataFrame({"frame": np.arange(time_s.size), "time_s": time_s}).to_csv(
            tmp / "frames.csv", index=False
        )
        if dataset.echem is not None:
            dataset.echem.to_csv(tmp / "echem.csv", index=False)
        if dataset.masks is not None:
            _write_masks_file(tmp / "masks.tif", dataset.masks)
        if dataset.annotations is not None:
            _write_annotations_file(
                tmp / "annotations.csv", _normalize_annotations(dataset.annotations)
            )
        if dataset.ground_truth:
            _write_ground_truth(tmp / "ground_truth", dataset.ground_truth)
        # metadata last: a folder without it is never mistaken for a complete dataset
        (tmp / "metadata.json").write_text(
            json.dumps(meta, indent=2, default=_json_default) + "\n", encoding="utf-8"
        )
    return path


@contextlib.contextmanager
def _write_errors(path: Path):
    """An OSError while writing a dataset folder names the folder and says why in words
    ("disk full"); the folder is unchanged (the write is one transaction)."""
    from asymflux._atomic import STAGING, describe_os_error

    try:
        yield
    except OSError as e:
        where = e.filename
        inner = f" ({Path(where).name})" if where and STAGING in Path(str(where)).parts else ""
        raise OSError(e.errno, f"cannot write the dataset folder{inner}: {describe_os_error(e)}; "
                      "the folder is unchanged", str(path)) from e


def _masks_fit(path: Path, frame_shape) -> bool:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            shape = tuple(d for d in tif.series[0].shape if d != 1)
    except Exception:  # noqa: BLE001 - an unreadable masks file does not fit
        return False
    return shape == tuple(frame_shape)


def _carry_curation(frame_shape):
    """``carry`` of :func:`atomic_folder` for a dataset rewrite: keep the old folder's
    curation and other files (see :func:`write_dataset`)."""

    def carry(old: Path, new: Path):
        for name, prev in (("masks.tif", "masks.prev.tif"),
                           ("annotations.csv", "annotations.prev.csv")):
            src = old / name
            if not src.is_file():
                continue
            if (new / name).exists():  # the dataset brings its own: keep the folder's as .prev
                if not filecmp.cmp(src, new / name, shallow=False):
                    link_into(src, new / prev)
            elif name == "masks.tif" and not _masks_fit(src, frame_shape):
                link_into(src, new / prev)
            else:
                link_into(src, new / name)
        for entry in old.iterdir():
            n = entry.name
            # everything else is kept, hidden entries too (a user's .notes.old-2024/ is no
            # leftover): the old folder is removed after the swap
            if (n in DATA_FILES or n in ("masks.tif", "annotations.csv")
                    or (new / n).exists() or (new / n).is_symlink()):
                continue
            link_into(entry, new / n)

    return carry


# ---------------------------------------------------------------------------- curation updates


def _frame_shape_of_folder(folder: Path) -> tuple[int, int]:
    meta = _read_metadata(folder)
    raw = _open_folder_stack(folder, meta, lazy=True)
    return tuple(raw.stack.shape[1:])


def _keep_previous(current: Path, previous: Path):
    if current.is_file():
        with atomic_path(previous) as tmp:
            shutil.copy2(current, tmp)


def write_masks(path, masks, *, keep_previous: bool = True) -> Path:
    """Replace ``masks.tif`` in an existing dataset folder, atomically.

    Parameters
    ----------
    path : str or Path
        The dataset folder.
    masks : (row, col) int array_like
        Labels, 0 = background, same shape as a frame of the stack.
    keep_previous : bool, keyword-only
        Copy the current ``masks.tif`` to ``masks.prev.tif`` first.

    Returns
    -------
    Path
        The written ``masks.tif``.
    """
    folder = _existing_dataset_folder(path)
    target = folder / "masks.tif"
    m = check_masks(masks, _frame_shape_of_folder(folder), source=str(target))
    return _replace_file(target, folder / "masks.prev.tif", lambda tmp: _write_masks_file(tmp, m),
                         keep_previous=keep_previous)


def write_annotations(path, annotations: pd.DataFrame, *, keep_previous: bool = True) -> Path:
    """Replace ``annotations.csv`` in an existing dataset folder, atomically.

    Parameters
    ----------
    path : str or Path
        The dataset folder.
    annotations : DataFrame
        ``particle_id`` (int), ``class`` and optionally ``notes``, ``who``, ``when``
        (text; ISO 8601 for ``when``) and any other columns.
    keep_previous : bool, keyword-only
        Copy the current ``annotations.csv`` to ``annotations.prev.csv`` first.

    Returns
    -------
    Path
        The written ``annotations.csv``.
    """
    folder = _existing_dataset_folder(path)
    target = folder / "annotations.csv"
    df = _normalize_annotations(annotations, source=str(target))
    _read_metadata(folder)
    return _replace_file(target, folder / "annotations.prev.csv",
                         lambda tmp: _write_annotations_file(tmp, df), keep_previous=keep_previous)


def _existing_dataset_folder(path) -> Path:
    folder = Path(path)
    if not _is_dataset_folder(folder):
        raise DatasetError(f"{folder}: not an asymflux dataset folder (no metadata.json)")
    return folder


def _replace_file(target: Path, previous: Path, write, *, keep_previous: bool) -> Path:
    """Replace one file of a dataset folder atomically, keeping its permissions and (optionally)
    a copy of the old version at ``previous``."""
    if keep_previous:
        _keep_previous(target, previous)
    mode = target.stat().st_mode & 0o777 if target.is_file() else default_mode(directory=False)
    with atomic_path(target) as tmp:
        write(tmp)
        os.chmod(tmp, mode)
    return target


def _content_uuid(stack, pixel_nm, time_s) -> str:
    """A name-based UUID from the stack's shape, dtype, first and last frames and timing."""
    import hashlib
    import uuid

    h = hashlib.sha1()
    h.update(repr((tuple(stack.shape), str(np.dtype(stack.dtype)), float(pixel_nm))).encode())
    h.update(np.asarray(time_s, dtype=float).tobytes())
    for k in {0, stack.shape[0] - 1}:
        h.update(np.ascontiguousarray(np.asarray(stack[k])).tobytes())
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, h.hexdigest())}"


# ---------------------------------------------------------------------------- HDF5


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
        attribute ``dataset.frame_intensity`` (n_frames,) float64 (not written by
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
    ds = Dataset(
        stack=p["stack"],
        time_s=p["time_s"],
        pixel_nm=p["pixel_nm"],
        echem=table,
        metadata=meta,
        path=path,
    )
    ds.frame_intensity = p["frame_intensity"]  # (n_frames,) or None; not written to disk
    return ds
