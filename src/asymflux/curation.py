"""Particle curation without a GUI: labels + a per-particle table, undo, safe saving.

:class:`Curation` holds a (row, col) label image (0 = background) and one row per
particle (``particle_id, class, status, notes, who, when``). Every edit (accept, reject,
flag, set_class, set_notes, merge, split, delete, relabel_sequential, or pixels painted
elsewhere via :meth:`Curation.update_labels`) is one undoable step. The napari widget
(:mod:`asymflux.napari`) is a thin view on this class; notebooks can use it directly:

>>> from asymflux.curation import Curation
>>> cur = Curation.load("my_experiment")            # doctest: +SKIP
>>> cur.accept(3); cur.set_class(3, "asymmetric")   # doctest: +SKIP
>>> cur.merge([4, 5]); cur.undo()                   # doctest: +SKIP
>>> cur.save()                                      # doctest: +SKIP

Saving (dataset folder, ``docs/dataset-format.md``):

- :meth:`Curation.save` writes ``masks.tif`` and ``annotations.csv`` (with an extra
  ``status`` column) through :func:`asymflux.io.write_masks` /
  :func:`asymflux.io.write_annotations`: each file is replaced atomically and the previous
  one is kept as ``masks.prev.tif`` / ``annotations.prev.csv``.
- :meth:`Curation.autosave` writes the whole state (labels and table) into one file,
  ``curation.autosave.npz``, atomically, by default after every edit. A successful
  :meth:`~Curation.save` removes it. So an autosave file on disk always holds edits newer
  than the saved files, and :meth:`Curation.load` restores it (``recovered_from`` tells
  from where). A crash loses at most the edits since the last autosave.

Nothing here imports napari or Qt.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import os
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "AUTOSAVE_NAME",
    "CLASSES",
    "FEATURE_COLUMNS",
    "STATUSES",
    "Curation",
    "CurationError",
    "CurationWarning",
]

#: Particle classes a curator can choose.
CLASSES = ("unclassified", "symmetric", "asymmetric", "exclude")
#: Curation states of a particle.
STATUSES = ("pending", "accepted", "rejected", "flagged")
#: Columns of :attr:`Curation.features`.
FEATURE_COLUMNS = ("particle_id", "class", "status", "notes", "who", "when")
#: Autosave file in the dataset folder.
AUTOSAVE_NAME = "curation.autosave.npz"
_AUTOSAVE_FORMAT = "asymflux-curation-autosave"
_TEXT = ("class", "status", "notes", "who", "when")
_DEFAULTS = {"class": "unclassified", "status": "pending", "notes": "", "who": "", "when": ""}


class CurationError(ValueError):
    """An edit that cannot be done (unknown particle, bad class, line missing the particle...)."""


class CurationWarning(UserWarning):
    """Something was read or written only partly (the message names the file)."""


def _now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _default_who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (containers): not worth failing for
        return "unknown"


def _empty_features() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype=object) for c in FEATURE_COLUMNS})
    df["particle_id"] = df["particle_id"].astype(np.int64)
    return df


def _text(x) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    return str(x)


@dataclass
class _Edit:
    """One undoable step: changed pixels (flat indices, old and new values) and the table."""

    description: str
    index: np.ndarray
    old: np.ndarray
    new: np.ndarray
    dtype_before: np.dtype
    dtype_after: np.dtype
    features_before: pd.DataFrame
    features_after: pd.DataFrame


class Curation:
    """Labels and per-particle annotations of one field of view, with undo and safe saving.

    Parameters
    ----------
    labels : (row, col) array_like of int
        Particle labels, 0 = background (bool masks become 0/1). Copied.
    features : DataFrame, optional
        Per-particle table with at least ``particle_id``; missing columns of
        :data:`FEATURE_COLUMNS` get defaults (class ``"unclassified"``, status
        ``"pending"``, empty text). Rows of particles not in ``labels`` are dropped (with a
        :class:`CurationWarning`); particles without a row get the defaults.
    path : str or Path, optional, keyword-only
        The dataset folder :meth:`save` and :meth:`autosave` write to.
    who : str, optional, keyword-only
        Curator name stored with each edit (default: the login name).
    autosave_every : int, keyword-only
        Autosave after this many edits (0: only when :meth:`autosave` is called).
        Needs ``path``.
    max_undo : int, keyword-only
        Undo steps kept.

    Attributes
    ----------
    recovered_from : Path or None
        The autosave file the state was restored from by :meth:`load`, if any.
    """

    def __init__(self, labels, features=None, *, path=None, who=None, autosave_every=1,
                 max_undo=200):
        lab = np.array(labels, copy=True)
        if lab.ndim != 2:
            raise CurationError(f"labels must be a 2-D (row, col) image, got shape {lab.shape}")
        if lab.dtype == np.bool_:
            lab = lab.astype(np.uint8)
        if not np.issubdtype(lab.dtype, np.integer):
            raise CurationError(f"labels must be integers, got dtype {lab.dtype}")
        if lab.size and lab.min() < 0:
            raise CurationError(f"labels must not be negative (min {lab.min()}); 0 is background")
        self._labels = lab
        self.path = Path(path) if path is not None else None
        self.who = who if who is not None else _default_who()
        self.autosave_every = int(autosave_every)
        self._undo: deque[_Edit] = deque(maxlen=int(max_undo))
        self._redo: deque[_Edit] = deque(maxlen=int(max_undo))
        self._since_autosave = 0
        self.dirty = False
        self.recovered_from: Path | None = None
        self._features = self._conform(features, source="features")

    # ------------------------------------------------------------------ construction

    def _conform(self, features, *, source) -> pd.DataFrame:
        """A clean table for the current labels, from ``features`` (may be None)."""
        ids = self.particle_ids()
        if features is None:
            df = _empty_features()
        else:
            df = pd.DataFrame(features).reset_index(drop=True).copy()
            if "particle_id" not in df.columns:
                raise CurationError(f"{source}: no particle_id column (has {list(df.columns)})")
            df["particle_id"] = df["particle_id"].astype(np.int64)
            if df["particle_id"].duplicated().any():
                dup = sorted(set(df.loc[df["particle_id"].duplicated(), "particle_id"]))
                raise CurationError(f"{source}: particle_id(s) {dup} appear more than once")
            for c in _TEXT:
                if c not in df.columns:
                    df[c] = _DEFAULTS[c]
                df[c] = df[c].map(_text).astype(object)
                df.loc[df[c] == "", c] = _DEFAULTS[c] if c in ("class", "status") else ""
            bad_class = sorted(set(df["class"]) - set(CLASSES))
            bad_status = sorted(set(df["status"]) - set(STATUSES))
            if bad_class or bad_status:
                warnings.warn(
                    f"{source}: unknown class value(s) {bad_class} / status value(s) {bad_status} "
                    f"kept as they are (expected classes {list(CLASSES)}, statuses {list(STATUSES)})",
                    CurationWarning, stacklevel=3)
            extra = sorted(set(df["particle_id"]) - set(ids.tolist()))
            if extra:
                warnings.warn(f"{source}: rows for particle(s) {extra} that are not in the labels "
                              "were dropped", CurationWarning, stacklevel=3)
            df = df[list(FEATURE_COLUMNS)]
            df = df[df["particle_id"].isin(ids)]
        missing = np.setdiff1d(ids, df["particle_id"].to_numpy())
        if missing.size:
            df = pd.concat([df, self._default_rows(missing)], ignore_index=True)
        return df.sort_values("particle_id", ignore_index=True)

    @staticmethod
    def _default_rows(ids, **values) -> pd.DataFrame:
        ids = np.asarray(ids, dtype=np.int64)
        d = {"particle_id": ids}
        for c in _TEXT:
            d[c] = np.array([values.get(c, _DEFAULTS[c])] * ids.size, dtype=object)
        return pd.DataFrame(d)

    @classmethod
    def from_dataset(cls, dataset, *, recover=True, **kwargs) -> Curation:
        """Curation of an :class:`asymflux.io.Dataset` (its masks and annotations).

        Parameters
        ----------
        dataset : Dataset
            Its ``masks`` (zeros if None) and ``annotations``; ``path`` (if a dataset
            folder) becomes :attr:`path`.
        recover : bool, keyword-only
            Restore ``curation.autosave.npz`` from the folder if there is one (unsaved
            edits of a session that ended without saving).
        **kwargs
            Passed to :class:`Curation` (``who``, ``autosave_every``, ``max_undo``).
        """
        frame_shape = tuple(dataset.stack.shape[1:])
        labels = dataset.masks if dataset.masks is not None else np.zeros(frame_shape, np.int32)
        folder = None
        if dataset.path is not None and (Path(dataset.path) / "metadata.json").is_file():
            folder = Path(dataset.path)
        source = str(folder / "annotations.csv") if folder else "annotations"
        cur = cls(labels, None, path=folder, **kwargs)
        autosave = folder / AUTOSAVE_NAME if recover and folder is not None else None
        newer = autosave is not None and autosave.is_file()
        if dataset.annotations is not None:
            # with an autosave on disk (newer edits, or a save interrupted between masks.tif
            # and annotations.csv) the saved files may disagree; they matter, and are
            # warned about, only if the autosave cannot be restored
            with warnings.catch_warnings():
                if newer:
                    warnings.simplefilter("ignore", CurationWarning)
                cur._features = cur._conform(dataset.annotations, source=source)
        if autosave is not None:
            cur._recover(autosave, frame_shape)
            if newer and cur.recovered_from is None and dataset.annotations is not None:
                cur._features = cur._conform(dataset.annotations, source=source)  # warns
        return cur

    @classmethod
    def load(cls, folder, *, recover=True, **kwargs) -> Curation:
        """Open the curation of a dataset folder (masks, annotations, autosave).

        Raises
        ------
        asymflux.io.DatasetError
            The folder or one of its files is broken (the message names the file).
        """
        from asymflux.io import read_dataset

        return cls.from_dataset(read_dataset(folder), recover=recover, **kwargs)

    def _recover(self, file: Path, frame_shape) -> None:
        if not file.is_file():
            return
        try:
            labels, features = _read_autosave(file)
            if tuple(labels.shape) != tuple(frame_shape):
                raise CurationError(f"labels shape {labels.shape} differs from the frames "
                                    f"{tuple(frame_shape)}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CurationWarning)
                restored = Curation(labels, features)
        except Exception as e:  # noqa: BLE001 - a broken autosave must not block opening
            why = str(e) if isinstance(e, CurationError) else (
                f"not a readable autosave file: {_plain(e)}")
            warnings.warn(f"{file}: autosave not restored, using the saved files ({why})",
                          CurationWarning, stacklevel=3)
            return
        self._labels = restored._labels
        self._features = restored._features
        self.recovered_from = file
        self.dirty = True

    # ------------------------------------------------------------------ state

    @property
    def labels(self) -> np.ndarray:
        """The label image (read-only view; edit through the methods)."""
        v = self._labels.view()
        v.flags.writeable = False
        return v

    @property
    def features(self) -> pd.DataFrame:
        """Per-particle table (a copy): :data:`FEATURE_COLUMNS`, sorted by ``particle_id``."""
        return self._features.copy()

    def particle_ids(self) -> np.ndarray:
        """Labels present in the image (without 0), ascending."""
        u = np.unique(self._labels)
        return u[u != 0].astype(np.int64)

    def annotations(self) -> pd.DataFrame:
        """The table as written to ``annotations.csv`` (``particle_id, class, notes, who,
        when, status``)."""
        cols = ["particle_id", "class", "notes", "who", "when", "status"]
        return self._features[cols].copy()

    def row(self, particle_id) -> dict:
        """The table row of one particle as a dict."""
        pid = self._ids(particle_id)[0]
        return self._features.loc[self._features["particle_id"] == pid].iloc[0].to_dict()

    @property
    def can_undo(self) -> bool:
        """Whether there is an edit to undo."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """Whether there is an undone edit to redo."""
        return bool(self._redo)

    @property
    def history(self) -> list[str]:
        """Descriptions of the undoable edits, oldest first."""
        return [e.description for e in self._undo]

    # ------------------------------------------------------------------ edit machinery

    def _ids(self, ids) -> list[int]:
        if isinstance(ids, (int, np.integer)):
            ids = [ids]
        try:
            out = [int(i) for i in ids]
        except (TypeError, ValueError):
            raise CurationError(f"particle ids must be integers, got {ids!r}") from None
        present = set(self._features["particle_id"].tolist())
        missing = [i for i in out if i not in present]
        if missing:
            raise CurationError(f"particle(s) {missing} do not exist "
                                f"(particles: {sorted(present)[:20]}{'...' if len(present) > 20 else ''})")
        if not out:
            raise CurationError("no particle given")
        return list(dict.fromkeys(out))

    def _stamp(self, df, ids) -> None:
        m = df["particle_id"].isin(ids)
        df.loc[m, "who"] = self.who
        df.loc[m, "when"] = _now_iso()

    def _commit(self, description, index, new_values, features_after, dtype_after=None):
        """Apply a pixel change (flat ``index`` → ``new_values``) and a new table as one step."""
        index = np.asarray(index, dtype=np.intp).ravel()
        dtype_before = self._labels.dtype
        if dtype_after is not None and dtype_after != dtype_before:
            self._labels = self._labels.astype(dtype_after)
        old = self._labels.ravel()[index].copy()
        new = np.asarray(new_values, dtype=self._labels.dtype)
        new = np.broadcast_to(new, index.shape).copy()
        np.put(self._labels, index, new)
        edit = _Edit(description, index, old, new, dtype_before, self._labels.dtype,
                     self._features, features_after.reset_index(drop=True))
        self._features = edit.features_after
        self._undo.append(edit)
        self._redo.clear()
        self._changed()
        return edit

    def _changed(self):
        self.dirty = True
        self._since_autosave += 1
        if self.path is not None and self.autosave_every > 0 and self._since_autosave >= self.autosave_every:
            try:
                self.autosave()
            except Exception as e:  # noqa: BLE001 - keep the edit; tell the user
                warnings.warn(f"{self.path / AUTOSAVE_NAME}: autosave failed ({_plain(e)}); "
                              "the edit is kept in memory: save to write it",
                              CurationWarning, stacklevel=4)

    def _new_id_dtype(self, max_id: int):
        if max_id <= np.iinfo(self._labels.dtype).max:
            return None
        return np.result_type(self._labels.dtype, np.min_scalar_type(max_id), np.int32)

    def undo(self) -> str | None:
        """Undo the last edit; return its description (None if nothing to undo)."""
        if not self._undo:
            return None
        e = self._undo.pop()
        np.put(self._labels, e.index, e.old)
        if e.dtype_before != e.dtype_after:
            self._labels = self._labels.astype(e.dtype_before)
        self._features = e.features_before
        self._redo.append(e)
        self._changed()
        return e.description

    def redo(self) -> str | None:
        """Redo the last undone edit; return its description (None if nothing to redo)."""
        if not self._redo:
            return None
        e = self._redo.pop()
        if e.dtype_before != e.dtype_after:
            self._labels = self._labels.astype(e.dtype_after)
        np.put(self._labels, e.index, e.new)
        self._features = e.features_after
        self._undo.append(e)
        self._changed()
        return e.description

    # ------------------------------------------------------------------ table edits

    def _set(self, ids, column, value, description):
        ids = self._ids(ids)
        df = self._features.copy()
        df.loc[df["particle_id"].isin(ids), column] = value
        self._stamp(df, ids)
        self._commit(f"{description} {', '.join(map(str, ids))}", [], [], df)

    def accept(self, ids) -> None:
        """Mark particle(s) ``ids`` (int or list) accepted."""
        self._set(ids, "status", "accepted", "accept")

    def reject(self, ids) -> None:
        """Mark particle(s) rejected (kept in the labels, left out of analyses)."""
        self._set(ids, "status", "rejected", "reject")

    def flag(self, ids) -> None:
        """Flag particle(s) for a second look."""
        self._set(ids, "status", "flagged", "flag")

    def set_status(self, ids, status: str) -> None:
        """Set the status (one of :data:`STATUSES`) of particle(s)."""
        if status not in STATUSES:
            raise CurationError(f"status must be one of {list(STATUSES)}, got {status!r}")
        self._set(ids, "status", status, f"status {status}:")

    def set_class(self, ids, particle_class: str) -> None:
        """Set the class (one of :data:`CLASSES`) of particle(s)."""
        if particle_class not in CLASSES:
            raise CurationError(f"class must be one of {list(CLASSES)}, got {particle_class!r}")
        self._set(ids, "class", particle_class, f"class {particle_class}:")

    def set_notes(self, ids, notes: str) -> None:
        """Replace the notes of particle(s) (any text, kept exactly)."""
        if not isinstance(notes, str):
            raise CurationError(f"notes must be text, got {type(notes).__name__}")
        self._set(ids, "notes", notes, "notes")

    # ------------------------------------------------------------------ pixel edits

    def merge(self, ids) -> int:
        """Merge particles into the one with the smallest id; return that id.

        The merged particle keeps its class, becomes ``"pending"``, and gets the non-empty
        notes of all merged particles joined with ``"; "``.
        """
        ids = sorted(self._ids(ids))
        if len(ids) < 2:
            raise CurationError(f"merge needs at least two particles, got {ids}")
        keep, others = ids[0], ids[1:]
        index = np.flatnonzero(np.isin(self._labels, others))
        df = self._features.copy()
        notes = [n for n in df.set_index("particle_id").loc[ids, "notes"] if n]
        df = df[~df["particle_id"].isin(others)].reset_index(drop=True)
        m = df["particle_id"] == keep
        df.loc[m, "status"] = "pending"
        df.loc[m, "notes"] = "; ".join(notes)
        self._stamp(df, [keep])
        self._commit(f"merge {', '.join(map(str, ids))}", index, keep, df)
        return keep

    def split(self, particle_id, *, line=None) -> list[int]:
        """Split a particle in two (or into its disconnected pieces); return the new ids.

        Parameters
        ----------
        particle_id : int
        line : ((row0, col0), (row1, col1)), optional, keyword-only
            Cut along this (infinite) line, in pixels. Without it: a particle made of
            several disconnected pieces is split into them, otherwise it is cut in two
            through its centre, across its longest axis.

        Returns
        -------
        list of int
            The ids of the pieces: the largest keeps ``particle_id``, the others get new
            ids above the current maximum. All pieces inherit the class, become
            ``"pending"``, and the new ones have empty notes.
        """
        from scipy import ndimage as ndi

        pid = self._ids(particle_id)[0]
        index = np.flatnonzero(self._labels.ravel() == pid)
        if index.size < 2:
            raise CurationError(f"particle {pid} has {index.size} pixel(s): nothing to split")
        rows, cols = np.unravel_index(index, self._labels.shape)
        if line is not None:
            (r0, c0), (r1, c1) = np.asarray(line, dtype=float).reshape(2, 2)
            if r0 == r1 and c0 == c1:
                raise CurationError("the split line has zero length")
            side = ((r1 - r0) * (cols - c0) - (c1 - c0) * (rows - r0)) > 0
            group = side.astype(np.int64)
            if group.min() == group.max():
                raise CurationError(f"the line {line} does not cut particle {pid}")
        else:
            comp, n = ndi.label(self._labels == pid)
            if n > 1:
                group = comp.ravel()[index] - 1
            else:
                xy = np.column_stack([rows, cols]).astype(float)
                xy -= xy.mean(axis=0)
                _, vecs = np.linalg.eigh(xy.T @ xy)
                group = (xy @ vecs[:, -1] > 0).astype(np.int64)
                if group.min() == group.max():
                    raise CurationError(f"particle {pid} cannot be cut in two")
        sizes = np.bincount(group)
        order = np.argsort(-sizes, kind="stable")  # largest piece first
        next_id = int(self._labels.max()) + 1
        new_ids = {int(order[0]): pid}
        for k, g in enumerate(order[1:]):
            new_ids[int(g)] = next_id + k
        lut = np.array([new_ids[g] for g in range(sizes.size)], dtype=np.int64)
        values = lut[group]
        df = self._features.copy()
        old = df.loc[df["particle_id"] == pid].iloc[0]
        added = sorted(v for v in new_ids.values() if v != pid)
        df.loc[df["particle_id"] == pid, "status"] = "pending"
        df = pd.concat([df, self._default_rows(added, **{"class": old["class"]})], ignore_index=True)
        self._stamp(df, [pid, *added])
        df = df.sort_values("particle_id", ignore_index=True)
        self._commit(f"split {pid}", index, values, df, dtype_after=self._new_id_dtype(max(added)))
        return [pid, *added]

    def delete(self, ids) -> None:
        """Remove particle(s): pixels to background, rows dropped."""
        ids = self._ids(ids)
        index = np.flatnonzero(np.isin(self._labels, ids))
        df = self._features[~self._features["particle_id"].isin(ids)]
        self._commit(f"delete {', '.join(map(str, ids))}", index, 0, df)

    def relabel_sequential(self) -> dict[int, int]:
        """Renumber the particles 1..n in the order of their ids; return ``{old: new}``."""
        ids = self.particle_ids()
        mapping = {int(o): k + 1 for k, o in enumerate(ids)}
        moved = {o: n for o, n in mapping.items() if o != n}
        if not moved:
            return mapping
        index = np.flatnonzero(np.isin(self._labels, list(moved)))
        values = np.searchsorted(ids, self._labels.ravel()[index]) + 1
        df = self._features.copy()
        df["particle_id"] = df["particle_id"].map(mapping).astype(np.int64)
        df = df.sort_values("particle_id", ignore_index=True)
        self._commit("relabel sequentially", index, values, df)
        return mapping

    def update_labels(self, labels, *, description="paint") -> bool:
        """Take pixel edits made elsewhere (a napari brush, a script) as one undoable step.

        Particles that appear get default rows, particles that vanish lose their row;
        the rows of the others are kept. Returns whether anything changed.
        """
        new = np.asarray(labels)
        if new.shape != self._labels.shape:
            raise CurationError(f"labels shape {new.shape} differs from {self._labels.shape}")
        if new.size and new.min() < 0:
            raise CurationError("labels must not be negative")
        index = np.flatnonzero(new.ravel() != self._labels.ravel())
        if index.size == 0:
            return False
        values = new.ravel()[index]
        dtype_after = self._new_id_dtype(int(values.max()))
        touched_old = np.unique(self._labels.ravel()[index])
        new_ids = np.setdiff1d(np.unique(values), [0])
        df = self._features
        # which touched particles survive? (check only the touched ones)
        after = self._labels.ravel().copy()
        after[index] = values
        gone = [int(i) for i in touched_old if i != 0 and not np.any(after == i)]
        df = df[~df["particle_id"].isin(gone)]
        added = np.setdiff1d(new_ids, df["particle_id"].to_numpy())
        if added.size:
            df = pd.concat([df, self._default_rows(added)], ignore_index=True)
        df = df.sort_values("particle_id", ignore_index=True)
        self._commit(description, index, values, df, dtype_after=dtype_after)
        return True

    def replace_labels(self, labels, *, description="new labels") -> None:
        """Replace all labels (e.g. a new detection) and reset the table, as one undoable step."""
        new = np.asarray(labels)
        if new.shape != self._labels.shape:
            raise CurationError(f"labels shape {new.shape} differs from {self._labels.shape}")
        index = np.flatnonzero(new.ravel() != self._labels.ravel())
        values = new.ravel()[index]
        ids = np.setdiff1d(np.unique(new), [0])
        dtype_after = self._new_id_dtype(int(ids.max())) if ids.size else None
        self._commit(description, index, values, self._default_rows(ids), dtype_after=dtype_after)

    # ------------------------------------------------------------------ saving

    def _folder(self, folder) -> Path:
        folder = Path(folder) if folder is not None else self.path
        if folder is None:
            raise CurationError("no dataset folder to save to: pass folder=... or set path")
        return folder

    def autosave(self, folder=None) -> Path:
        """Write the whole state to ``<folder>/curation.autosave.npz`` atomically."""
        from asymflux._atomic import atomic_path

        folder = self._folder(folder)
        target = folder / AUTOSAVE_NAME
        payload = {
            "format": _AUTOSAVE_FORMAT, "version": 1, "saved_at": _now_iso(),
            "features": {c: [int(v) if c == "particle_id" else str(v) for v in self._features[c]]
                         for c in FEATURE_COLUMNS},
        }
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, labels=self._labels,
                                    meta=np.array(json.dumps(payload, ensure_ascii=True)))
                fh.flush()
                os.fsync(fh.fileno())
        self._since_autosave = 0
        return target

    def save(self, folder=None) -> None:
        """Write ``masks.tif`` and ``annotations.csv`` into the dataset folder.

        Each file is replaced atomically and the previous one kept (``*.prev.*``, see
        :func:`asymflux.io.write_masks`). The state is autosaved first and the autosave
        removed only when both files are written, so a crash in between loses nothing.
        """
        from asymflux.io import write_annotations, write_masks

        folder = self._folder(folder)
        self.autosave(folder)
        write_masks(folder, self._labels)
        write_annotations(folder, self.annotations())
        (folder / AUTOSAVE_NAME).unlink(missing_ok=True)
        self.path = folder
        self.dirty = False
        self.recovered_from = None
        self._since_autosave = 0

    def discard_autosave(self) -> None:
        """Delete the autosave file (unsaved edits of an earlier session are then lost)."""
        if self.path is not None:
            (self.path / AUTOSAVE_NAME).unlink(missing_ok=True)
        self.recovered_from = None

    def __repr__(self):
        n = len(self._features)
        counts = self._features["status"].value_counts().to_dict()
        return (f"Curation({n} particles, {counts}, {'unsaved' if self.dirty else 'saved'}, "
                f"path={str(self.path) if self.path else None!r})")


def _plain(exc: BaseException) -> str:
    """An exception's message in one line, without its class name (for the user)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return text or "unreadable"


def _read_autosave(file: Path):
    """Read an autosave file: (labels, features DataFrame). Raises :class:`CurationError`
    (saying what was expected) on anything odd: empty, truncated, not a zip, another
    format, fields missing."""
    expected = "expected the .npz of labels and table that Curation.autosave writes"
    try:
        with np.load(file, allow_pickle=False) as z:
            labels = np.asarray(z["labels"])
            meta = json.loads(str(z["meta"][()]))
    except OSError as e:
        raise CurationError(f"cannot be read ({_plain(e)})") from None
    except Exception:  # noqa: BLE001 - empty, truncated, not a zip, not ours
        raise CurationError(f"not a readable autosave file; {expected}") from None
    if not isinstance(meta, dict) or meta.get("format") != _AUTOSAVE_FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise CurationError(f"not an asymflux autosave (format {fmt!r}); {expected}")
    try:
        feats = meta["features"]
        df = pd.DataFrame({c: feats[c] for c in FEATURE_COLUMNS})
        df["particle_id"] = df["particle_id"].astype(np.int64)
    except (KeyError, TypeError, ValueError):
        raise CurationError(f"its table is incomplete or malformed; {expected}") from None
    for c in _TEXT:
        df[c] = df[c].astype(object)
    return labels, df
