"""napari reader: dataset folders, OME-TIFF and zarr stacks, opened lazily.

Stacks are passed to napari as dask arrays (nothing is read until a frame is shown), so
a long movie opens in seconds with bounded memory. A file that looks like ours but is
broken gives a napari error notification naming the file and the problem, and no
layers (the npe2 "null layer" sentinel ``[(None,)]``), not a traceback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["dataset_layers", "napari_get_reader", "read_path", "stack_layers"]

#: Key of the layer metadata the plugin reads back (``layer.metadata["asymflux"]``).
METADATA_KEY = "asymflux"


def _single_path(path) -> Path | None:
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, (str, Path)):
        return None
    return Path(path)


def _kind(p: Path) -> str | None:
    """'dataset', 'stack' or None (not ours)."""
    name = p.name.lower()
    if p.is_dir() and (p / "metadata.json").is_file():
        return "dataset"
    if name.endswith((".ome.tif", ".ome.tiff")) and p.is_file():
        return "stack"
    if name.endswith(".zarr") and p.exists():
        return "stack"
    return None


def napari_get_reader(path):
    """Return :func:`read_path` for a dataset folder, OME-TIFF or zarr stack, else None.

    Never raises: anything unexpected about ``path`` gives None.
    """
    try:
        p = _single_path(path)
        if p is None or _kind(p) is None:
            return None
    except Exception:  # noqa: BLE001 - a reader probe must never raise
        return None
    return read_path


def _contrast_limits(stack) -> list[float]:
    """Contrast limits from the first frame only (never the whole lazy stack)."""
    frame = np.asarray(stack[0], dtype=np.float64)
    finite = frame[np.isfinite(frame)]
    if finite.size == 0:
        return [0.0, 1.0]
    lo, hi = np.percentile(finite, [0.5, 99.8])
    if not hi > lo:
        hi = lo + 1.0
    return [float(lo), float(hi)]


def stack_layers(stack, *, name, metadata) -> list[tuple]:
    """Layer data for a (time, row, col) stack (dask arrays stay lazy)."""
    return [(stack, {"name": name, "metadata": {METADATA_KEY: dict(metadata)},
                     "contrast_limits": _contrast_limits(stack), "colormap": "gray"}, "image")]


def dataset_layers(dataset, *, name=None) -> list[tuple]:
    """Layer data for an :class:`asymflux.io.Dataset`: its stack and (if any) its masks.

    The masks layer carries the saved annotations in its ``features`` (class, status,
    notes, who, when); the curation widget picks both layers up through
    ``layer.metadata["asymflux"]``.
    """
    from asymflux.curation import Curation

    folder = Path(dataset.path) if dataset.path is not None else None
    is_folder = folder is not None and (folder / "metadata.json").is_file()
    name = name or dataset.metadata.get("name") or (folder.name if folder else "stack")
    meta = {"path": str(folder) if is_folder else None,
            "source": str(folder) if folder else None,
            "pixel_nm": float(dataset.pixel_nm), "name": name}
    layers = stack_layers(dataset.stack, name=name, metadata={**meta, "role": "stack"})
    if dataset.masks is not None:
        cur = Curation.from_dataset(dataset, recover=False)
        feats = cur.features
        feats.insert(0, "index", feats["particle_id"].to_numpy())
        layers.append((np.array(cur.labels), {
            "name": f"{name} particles", "features": feats, "opacity": 0.6,
            "metadata": {METADATA_KEY: {**meta, "role": "particles"}}}, "labels"))
    return layers


def read_path(path) -> list[tuple]:
    """Read a dataset folder or a bare stack into napari layer data.

    Errors are shown as a napari notification (naming the file and the problem) and
    give the null-layer sentinel ``[(None,)]``.
    """
    p = _single_path(path)
    try:
        from asymflux.io import read_dataset, read_stack

        if p is None:
            raise ValueError(f"{path}: open one dataset folder or stack at a time")
        if _kind(p) == "dataset":
            return dataset_layers(read_dataset(p, lazy=True))
        raw = read_stack(p, lazy=True)
        meta = {"path": None, "source": str(p), "name": p.name.split(".")[0],
                "pixel_nm": None if raw.pixel_nm is None else float(raw.pixel_nm),
                "role": "stack"}
        return stack_layers(raw.stack, name=meta["name"], metadata=meta)
    except Exception as e:  # noqa: BLE001 - report, never a traceback
        _notify_error(p if p is not None else path, e)
        return [(None,)]


def _notify_error(path, exc) -> None:
    from napari.utils.notifications import show_error

    msg = str(exc)
    show_error(f"asymflux: {msg}" if str(path) in msg else f"asymflux: {path}: {msg}")
