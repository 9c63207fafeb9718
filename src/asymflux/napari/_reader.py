"""napari reader: dataset folders, OME-TIFF and zarr stacks, opened lazily.

Stacks are passed to napari as dask arrays (nothing is read until a frame is shown), so
a long movie opens in seconds with bounded memory. A file that looks like ours but is
broken gives one napari error notification naming the file and the problem (one line,
no exception class names), and no layers (the npe2 "null layer" sentinel ``[(None,)]``),
not a traceback. That includes a folder with a dataset's files but no ``metadata.json``,
and a stack whose first or last frame holds no image (all NaN, or one value: a blank
exposure or zarr chunks never written). A stack with several channels (an OME-TIFF with
a ``C`` axis, or RGB samples) opens as one layer per channel (``[channel K]``), each
what ``read_stack(path, channel=K)`` reads; the widget works on the one picked.
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


#: Files of a dataset folder (docs/dataset-format.md): a folder holding one of them is
#: claimed as a dataset even without ``metadata.json``, so that the reader says what is
#: missing instead of napari saying that no reader was found.
DATASET_FILES = ("metadata.json", "frames.csv", "echem.csv", "masks.tif", "annotations.csv",
                 "stack.ome.tif", "stack.zarr", "curation.autosave.npz")


def _kind(p: Path) -> str | None:
    """'dataset', 'stack' or None (not ours)."""
    name = p.name.lower()
    if p.is_dir() and any((p / f).exists() for f in DATASET_FILES):
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


def _check_signal(stack, source) -> None:
    """Refuse a stack whose first or last frame holds no image (reads only those two)."""
    from asymflux.analysis import check_stack_signal

    check_stack_signal(stack, name=str(source))


def _channels(p: Path) -> int:
    """Number of channels of a TIFF stack (C axis, or the S samples of RGB): 0 if none."""
    import tifffile

    if not p.name.lower().endswith((".tif", ".tiff")) or not p.is_file():
        return 0
    try:
        with tifffile.TiffFile(p) as tif:
            series = tif.series[0]
            axes, shape = series.axes, series.shape
    except Exception:  # noqa: BLE001 - read_stack words the error
        return 0
    sizes = [n for a, n in zip(axes, shape, strict=False) if a in "CS" and n > 1]
    return int(sizes[0]) if len(sizes) == 1 else 0


def _stack_file_layers(p: Path) -> list[tuple]:
    """Layer data of a bare stack file: one layer, or one per channel."""
    from asymflux.io import read_stack

    name = p.name.split(".")[0]
    n_channels = _channels(p)
    picks = [None] if n_channels == 0 else list(range(n_channels))
    layers = []
    for k in picks:
        raw = read_stack(p, lazy=True) if k is None else read_stack(p, lazy=True, channel=k)
        _check_signal(raw.stack, p if k is None else f"{p} (channel {k})")
        meta = {"path": None, "source": str(p) if k is None else f"{p}#channel={k}",
                "name": name if k is None else f"{name} [channel {k}]",
                "pixel_nm": None if raw.pixel_nm is None else float(raw.pixel_nm),
                "role": "stack"}
        if k is not None:
            meta["channel"] = k
        layers += stack_layers(raw.stack, name=meta["name"], metadata=meta)
    for layer in layers[1:]:  # the first channel shown, the others a click away
        layer[1]["visible"] = False
    return layers


def read_path(path) -> list[tuple]:
    """Read a dataset folder or a bare stack into napari layer data.

    Errors are shown as a napari notification (naming the file and the problem) and
    give the null-layer sentinel ``[(None,)]``. A dataset whose masks hold no particle
    opens (to detect or paint them) with a warning notification.
    """
    import warnings

    p = _single_path(path)
    try:
        from asymflux.io import read_dataset

        if p is None:
            raise ValueError(f"{path}: open one dataset folder or stack at a time")
        if not p.exists():
            raise ValueError(f"{p}: does not exist")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if _kind(p) == "dataset":
                ds = read_dataset(p, lazy=True)
                _check_signal(ds.stack, p)
                layers = dataset_layers(ds)
                if ds.masks is not None and not np.any(ds.masks):
                    _notify(p, f"{p / 'masks.tif'}: the particle masks hold no particle "
                               "(every pixel is 0, background): detect or paint them before "
                               "analysing", warning=True)
            else:
                layers = _stack_file_layers(p)
        for w in caught:  # e.g. the cycler's problems: shown, never lost
            if issubclass(w.category, UserWarning):
                _notify(p, str(w.message), warning=True)
        return layers
    except Exception as e:  # noqa: BLE001 - report, never a traceback
        _notify_error(p if p is not None else path, e)
        return [(None,)]


def user_message(path, exc_or_text) -> str:
    """One line for the user: the message (naming ``path`` if it does not) with no
    exception class names (``(TiffFileError: x)`` becomes ``(x)``)."""
    import re

    msg = " ".join(str(exc_or_text).split())
    if not msg and isinstance(exc_or_text, BaseException):
        msg = "failed without a message"
    # "ClassName: text" and "ClassName('text')" as written by Python and libraries
    names = r"(?:[A-Za-z_]\w*\.)*(?:[A-Z]\w*(?:Error|Exception|Warning)|BadZipFile|LargeZipFile)" \
        r"|(?:zlib|struct|binascii)\.error"
    msg = re.sub(rf"\b(?:{names}): ", "", msg)
    msg = re.sub(rf"\b(?:{names})\((.*?)\)", r"\1", msg)
    msg = re.sub(rf"\b(?:{names})\b", "error", msg)
    if path is not None and str(path) not in msg:
        msg = f"{path}: {msg}"
    return msg


def _notify(path, text, *, warning=False) -> None:
    from napari.utils.notifications import show_error, show_warning

    (show_warning if warning else show_error)(f"asymflux: {user_message(path, text)}")


def _notify_error(path, exc) -> None:
    _notify(path, exc)
