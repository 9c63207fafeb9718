"""Writing a dataset folder: :func:`write_dataset`.

Every write is atomic: a whole dataset is written into a temporary folder (in the hidden
``.asymflux-partial/`` beside it) and swapped with the previous folder in one step
(:func:`asymflux._atomic.atomic_folder`), so a reader finds the old complete dataset or the
new one, never a mix or nothing. Rewriting a dataset keeps its curation (``annotations.csv``,
``masks.tif``, their ``.prev`` copies, ``curation.autosave.npz``) and any other file it does
not write itself. Single files go through :func:`asymflux._atomic.atomic_path`. Leftovers of
interrupted writes are never read and are removed when found.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from asymflux._atomic import atomic_folder
from asymflux.io._curation_files import (
    _carry_curation,
    _write_annotations_file,
    _write_masks_file,
)
from asymflux.io._errors import DatasetError
from asymflux.io.dataset import (
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
from asymflux.io.stacks import check_pixel_nm, check_stack, check_time_s

__all__ = ["write_dataset"]

_STACK_FILES = {"ome-tiff": "stack.ome.tif", "zarr": "stack.zarr"}
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


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON serializable")


def _check_target(path: Path):
    if path.exists() and not is_dataset_folder(path):
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
