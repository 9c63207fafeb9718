"""The curation files of a dataset folder: :func:`write_masks` and
:func:`write_annotations` replace ``masks.tif`` / ``annotations.csv`` atomically, keeping the
previous version as ``masks.prev.tif`` / ``annotations.prev.csv``; a rewrite of the whole
folder keeps them (:func:`_carry_curation`)."""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from asymflux._atomic import atomic_path, default_mode, link_into
from asymflux.io._errors import DatasetError
from asymflux.io._folder import _open_folder_stack, _read_metadata
from asymflux.io.dataset import (
    DATA_FILES,
    _normalize_annotations,
    check_masks,
    is_dataset_folder,
    masks_fit,
)

__all__ = ["write_annotations", "write_masks"]

def _write_masks_file(target: Path, masks):
    import tifffile

    tifffile.imwrite(target, np.asarray(masks), photometric="minisblack", compression="zlib")


def _write_annotations_file(target: Path, df: pd.DataFrame):
    df.to_csv(target, index=False)


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
            elif name == "masks.tif" and not masks_fit(src, frame_shape):
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
    if not is_dataset_folder(folder):
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
