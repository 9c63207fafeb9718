"""The dataset type: :class:`Dataset` (a stack, its frame times, electrochemistry and
curation; the capacity at each frame), the dataset folder's constants and the checks of its
parts (layout: ``docs/dataset-format.md``).

Reading a folder or a bare stack is :mod:`asymflux.io._folder`, writing a folder
:mod:`asymflux.io._writers`, replacing its masks or annotations
:mod:`asymflux.io._curation_files`, HDF5 files :mod:`asymflux.io._hdf5`.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from asymflux.io._errors import DatasetError
from asymflux.io.echem import EchemWarning, check_echem, integrate_capacity
from asymflux.io.stacks import check_number, check_pixel_nm, check_stack, check_time_s

__all__ = [
    "ANNOTATION_COLUMNS",
    "CURATION_FILES",
    "DATA_FILES",
    "FORMAT",
    "NUMERIC_METADATA",
    "REQUIRED_METADATA",
    "VERSION",
    "Dataset",
    "check_masks",
    "dataset_folders",
    "is_dataset_folder",
    "masks_fit",
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


#: What :func:`write_dataset` writes into a dataset folder (besides masks and annotations).
DATA_FILES = ("metadata.json", "frames.csv", "echem.csv", "stack.ome.tif", "stack.zarr",
              "ground_truth")
#: The curation of a dataset folder, kept when the dataset is rewritten.
CURATION_FILES = ("masks.tif", "annotations.csv", "masks.prev.tif", "annotations.prev.csv",
                  "curation.autosave.npz")


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
    frame_intensity : (n_frames,) ndarray of float64, optional
        The instrument's own per-frame mean intensity (an instrument HDF5 file's
        ``average_intensity``, :func:`asymflux.io.read_hdf5`), used to normalise the
        illumination; not written by :func:`~asymflux.io.write_dataset`.

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
    frame_intensity: np.ndarray | None = None

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


# ---------------------------------------------------------------------------- dataset folders


def is_dataset_folder(path: Path) -> bool:
    """True if ``path`` is a dataset folder (a folder with a ``metadata.json``)."""
    return path.is_dir() and (path / "metadata.json").is_file()


def dataset_folders(folder) -> list[Path]:
    """The dataset folders directly inside ``folder`` (sorted); hidden entries (leftovers of
    interrupted writes among them) are never listed. Nothing is deleted."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir()
                  if not p.name.startswith(".") and is_dataset_folder(p))


def masks_fit(path: Path, frame_shape) -> bool:
    """True if the masks TIFF at ``path`` can be read and has the frames' ``(row, col)``
    shape (an unreadable file does not fit)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            shape = tuple(d for d in tif.series[0].shape if d != 1)
    except Exception:  # noqa: BLE001 - an unreadable masks file does not fit
        return False
    return shape == tuple(frame_shape)
