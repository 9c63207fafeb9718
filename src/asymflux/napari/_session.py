"""The curation dock's model, without Qt or napari: :class:`CurationSession`.

What the dock works on (the stack, its dataset, the :class:`asymflux.curation.Curation`
of its particles, the chosen particle, the user's analysis choices) and every action the
dock's buttons run (detect, accept, merge, undo, save, the particle's analysis, the fit,
the exports), as plain methods that take and return data. A notebook or a test can drive
it as the widget does; the widget (:mod:`._widget`) only wires its panels to it and
mirrors it into napari layers, listening to :meth:`CurationSession.connect`.

>>> import numpy as np
>>> session = CurationSession()
>>> stack = np.ones((3, 8, 8))
>>> stack[:, 2:5, 2:5] = 2.0
>>> session.load(stack, name="demo").labels.shape
(8, 8)
>>> int(session.curation.labels.max())
0
>>> session.status_text()
'0 particles | saved | not saveable'
"""

from __future__ import annotations

import inspect
import os
import warnings
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from asymflux.curation import Curation

__all__ = ["EVENTS", "CurationSession", "capacity_per_frame"]

EVENTS = ("loaded", "labels", "particle", "dataset", "saved", "fit")
"""What :meth:`CurationSession.connect`'s callbacks are told changed: a new stack
(``loaded``), the labels or annotations (``labels``), the chosen particle (``particle``),
the dataset's clock / capacity (``dataset``), a save (``saved``), a fit (``fit``)."""


def capacity_per_frame(dataset, n_frames) -> np.ndarray:
    """Capacity at each frame (mAh/g, shape ``(n_frames,)``, NaN where unknown).

    Each problem of the cycler data (not on the frames' clock, NaN cells, no capacity) is
    issued as one :class:`asymflux.io.EchemWarning` (the widget shows it as a
    notification): never lost, never a silent NaN.
    """
    from asymflux.io import EchemWarning

    if dataset.echem is None:  # no cycler data: the plots use time
        return np.full(n_frames, np.nan)
    try:
        cap, problems = dataset.capacity_report()
    except ValueError as e:
        cap, problems = None, [f"{dataset.path}: no capacity per frame ({e})"]
    for p in problems:
        warnings.warn(p, EchemWarning, stacklevel=3)
    if cap is None or np.shape(cap) != (n_frames,):
        return np.full(n_frames, np.nan)
    return np.asarray(cap, dtype=float)


#: *illumination* as :func:`asymflux.analysis.analyze_path`'s (``asymflux analyze
#: --illumination``).
_ILLUMINATION = {"auto": "auto", "on": True, "off": None}


def _calibration_options(illumination=None, dark=None, flat=None) -> dict:
    """The choices *illumination*, *dark* and *flat* as keyword options of
    :func:`asymflux.analysis.analyze_dataset`, only those not at their defaults (so that
    the defaults give ``asymflux analyze``'s options exactly)."""
    out = {}
    key = "auto" if illumination is None else illumination
    if isinstance(key, str):
        key = key.strip().lower()
        if key not in _ILLUMINATION:
            raise ValueError(f"illumination must be one of {', '.join(_ILLUMINATION)}, got "
                             f"{illumination!r}")
        value = _ILLUMINATION[key]
    else:
        value = True if key is True else None
    if value != "auto":
        out["illumination"] = value
    for name, given in (("dark", dark), ("flat", flat)):
        if given is not None and str(given).strip() not in ("", "."):
            out[name] = given if isinstance(given, np.ndarray) else Path(given)
    return out


def _as_array(stack, raw):
    """A corrected stack (``asymflux.analysis.calibrate_stack`` /
    ``resolve_illumination``'s) as an array for the dI movie: lazy (dask, a frame a chunk)
    when ``raw`` is, else read once; ``raw`` itself when nothing was corrected."""
    if stack is raw:
        return raw
    if type(raw).__module__.startswith("dask.") or not isinstance(raw, np.ndarray):
        import dask.array as da

        return da.from_array(stack, chunks=(1, *stack.shape[1:]), asarray=False)
    return stack[:]


def _calibration_key(frame):
    """A dark or flat frame as part of a key: a file by its identity (size, time, content
    hash: a file rewritten under the same name is another key), an array by its content."""
    if frame is None:
        return None
    if isinstance(frame, (str, os.PathLike)):
        from asymflux.analysis import input_identity

        return input_identity(frame)
    a = np.ascontiguousarray(frame)
    return [a.shape, str(a.dtype), zlib.crc32(a.tobytes())]


def _options_key(options) -> dict:
    """``options`` with arrays replaced by checksums (to tell whether a dI movie is current)."""
    return {k: v if v is None or isinstance(v, str | int) else
            zlib.crc32(np.ascontiguousarray(v).tobytes()) for k, v in options.items()}


class CurationSession:
    """A stack being curated and analysed: the dock's state and actions, Qt-free.

    Attributes
    ----------
    stack : array-like, shape (time, row, col), or None
        The intensity stack (lazy or not).
    dataset : asymflux.io.Dataset or None
        The dataset folder the stack came from (None for a bare stack).
    curation : asymflux.curation.Curation or None
        The labels (row, col) and per-particle annotations, undo, autosave.
    pixel_nm, time_s, capacity_mAh_g : float, ndarray (time,), ndarray (time,)
        Pixel size (nm), frame times (s) and capacity at each frame (mAh/g, NaN unknown).
    name : str
        The stack's name (for messages and a stack-made dataset).
    particle_id : int
        The chosen particle (0: none, the background).
    choices : dict
        The user's analysis choices, parameters of
        :func:`asymflux.analysis.analysis_options` (the command line's defaults), and
        ``illumination`` (``"auto"``, ``"on"``, ``"off"``: ``asymflux analyze
        --illumination``), ``dark`` and ``flat`` (calibration frame files: ``--dark``,
        ``--flat``).
    cache : bool or path-like
        Analyses through the results cache (``docs/cache.md``): True (default) the user's,
        a folder that one, False none. Keyed on the dataset's data files, the curated
        labels' content, the particle and every option (:meth:`cache_inputs`).
    cache_hit : bool or None
        Whether the last analysis was read from the cache (None: not cacheable).
    particle_table : pandas.DataFrame or None
        The last :meth:`particle_timeseries`.
    fit_result : asymflux.fit.FitResult or None
        The last fit (:meth:`fit` / :meth:`set_fit`).
    """

    def __init__(self, *, choices=None):
        self.stack = None
        self.dataset = None
        self.curation: Curation | None = None
        self.pixel_nm = 1.0
        self.pixel_known = False
        self.time_s = None
        self.capacity_mAh_g = None
        self.name = "stack"
        self.source = None
        self.particle_id = 0
        self.choices = dict(choices or {})
        self.particle_table = None
        self.fit_result = None
        self.cache = True
        self.cache_hit = None
        self._callbacks = []

    # ------------------------------------------------------------------ events

    def connect(self, callback):
        """Call ``callback(what)`` after each change, ``what`` one of :data:`EVENTS`."""
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback):
        self._callbacks.remove(callback)

    def _emit(self, what):
        for callback in list(self._callbacks):
            callback(what)

    # ------------------------------------------------------------------ data

    def load(self, stack, *, path=None, source=None, name="stack", pixel_nm=None,
             time_offset=""):
        """Work on ``stack`` (time, row, col): of the dataset folder ``path`` (its curation,
        with any autosave of unsaved edits, its clock and cycler data; ``time_offset``: the
        cycler's clock, :func:`asymflux.analysis.apply_time_offset`), else a bare stack
        (``pixel_nm`` if known, frame times 0, 1, ...; its curation cannot be saved).

        Everything is read and checked first: a bad input changes nothing. Returns the
        :class:`~asymflux.curation.Curation`.
        """
        from asymflux.analysis import check_stack_signal
        from asymflux.io import read_dataset

        if np.ndim(stack) != 3:
            raise ValueError(f"{source or name}: not a (time, row, col) stack "
                             f"(shape {np.shape(stack)})")
        n_frames = int(stack.shape[0])
        source = str(source or path or name)
        check_stack_signal(stack, name=source)
        dataset = None
        if path:
            dataset = read_dataset(path, lazy=True)
            curation = Curation.from_dataset(dataset)
            offset = str(time_offset or "").strip()
            if dataset.echem is not None and offset:
                from asymflux.analysis import apply_time_offset

                dataset = apply_time_offset(dataset, offset, masks=curation.labels
                                            if np.any(curation.labels) else None)
            pixel, known = float(dataset.pixel_nm), True
            time_s = np.asarray(dataset.time_s, dtype=float)
            capacity = capacity_per_frame(dataset, n_frames)
        else:
            curation = Curation(np.zeros(stack.shape[1:], np.int32))
            pixel, known = float(pixel_nm or 1.0), bool(pixel_nm)
            time_s = np.arange(n_frames, dtype=float)
            capacity = np.full(n_frames, np.nan)
        self.stack, self.dataset, self.curation = stack, dataset, curation
        self.pixel_nm, self.pixel_known, self.time_s = pixel, known, time_s
        self.capacity_mAh_g, self.name, self.source = capacity, str(name), source
        self.particle_table = self.fit_result = None
        self._emit("loaded")
        return curation

    def require(self) -> Curation:
        """The curation; a clear error when no stack is loaded."""
        if self.curation is None:
            raise RuntimeError("no stack attached: open a dataset or pick a stack layer first")
        return self.curation

    def _require_stack(self):
        if self.stack is None:
            raise RuntimeError("no stack attached: open a dataset or pick a stack layer first")
        return self.stack

    def source_name(self) -> str:
        """The dataset folder / file of the stack (or its name), for messages."""
        if self.dataset is not None and self.dataset.path is not None:
            return str(self.dataset.path)
        return self.source or self.name

    def analysis_dataset(self):
        """The dataset the stack came from, else one made of the stack (no echem)."""
        if self.dataset is not None:
            return self.dataset
        from asymflux.io import Dataset

        return Dataset(stack=self.stack, time_s=self.time_s, pixel_nm=self.pixel_nm,
                       metadata={"name": self.name})

    def set_time_offset(self, value="0"):
        """Put the dataset's cycler table on the camera's clock: cycler time = frame time +
        ``value`` s (``"auto"``: estimated from the particles' mean intensity,
        :func:`asymflux.analysis.apply_time_offset`); the capacity per frame follows.
        Returns the :class:`asymflux.analysis.TimeOffset`."""
        from asymflux.analysis import apply_time_offset

        text = str(value).strip() or "0"
        if self.dataset is None or self.dataset.echem is None:
            raise ValueError("clock offset: no cycler data (open a dataset folder with its "
                             "echem.csv first)")
        masks = None
        if self.curation is not None and np.any(self.curation.labels):
            masks = np.asarray(self.curation.labels)
        shifted = apply_time_offset(self.dataset, text, masks=masks)
        capacity = capacity_per_frame(shifted, int(self.stack.shape[0]))
        self.dataset, self.capacity_mAh_g = shifted, capacity
        self._emit("dataset")
        return shifted.time_offset

    # ------------------------------------------------------------------ the chosen particle

    def select(self, particle_id):
        """Choose particle ``particle_id`` (0: none)."""
        pid = int(particle_id)
        if pid != self.particle_id:
            self.particle_id = pid
            self._emit("particle")

    def pid(self, particle_id=None) -> int:
        """``particle_id``, else the chosen particle; an error for the background (0)."""
        pid = int(self.particle_id if particle_id is None else particle_id)
        if pid == 0:
            raise ValueError("select a particle first (particle 0 is the background)")
        return pid

    def selected_row(self):
        """The chosen particle's curation row (``Curation.row``), or a message (a str)."""
        pid = int(self.particle_id)
        if self.curation is None or pid == 0 or pid not in set(self.curation.particle_ids()):
            return "no particle selected" if pid == 0 else f"particle {pid}: none"
        return self.curation.row(pid)

    def status_text(self) -> str:
        """Particles by status, saved or not, where: the dock's status line."""
        cur = self.curation
        if cur is None:
            return "no stack: open a dataset or pick a stack layer"
        f = cur.features
        counts = f["status"].value_counts()
        parts = [f"{len(f)} particles"] + [f"{counts[s]} {s}" for s in counts.index]
        where = cur.path.name if cur.path is not None else "not saveable"
        state = "unsaved (autosaved)" if cur.dirty and cur.path is not None else (
            "unsaved" if cur.dirty else "saved")
        return f"{', '.join(parts)} | {state} | {where}"

    # ------------------------------------------------------------------ analysis options

    def analysis_options(self, *, rolling=True) -> dict:
        """:attr:`choices` as keyword arguments of :func:`asymflux.analysis.analyze_dataset`
        (:func:`asymflux.analysis.analysis_options`, and the ``illumination``, ``dark`` and
        ``flat`` of ``asymflux analyze`` when not at their defaults); without ``rolling``,
        never a rolling differential (what the fit uses)."""
        from asymflux.analysis import analysis_options

        choices = dict(self.choices)
        calibration = _calibration_options(*(choices.pop(k, None)
                                             for k in ("illumination", "dark", "flat")))
        if not rolling:
            choices["rolling_frames"] = None
        return {**analysis_options(**choices), **calibration}

    def corrected_stack(self, labels=None):
        """``(stack, warnings)``: the stack as ``asymflux analyze`` measures it with
        :meth:`analysis_options`: through the dark and flat frames
        (:func:`asymflux.analysis.calibrate_stack`), then divided by each frame's smooth
        illumination when ``illumination`` is on, or ``"auto"`` and the pattern changes
        over the particles of ``labels`` (default: the curated ones;
        :func:`asymflux.analysis.resolve_illumination`). The stack itself when neither
        applies."""
        from asymflux.analysis import calibrate_stack, resolve_illumination

        stack = self._require_stack()
        chosen = self.analysis_options(rolling=False)
        n_ref = chosen["n_reference_frames"]
        stack = calibrate_stack(stack, dark=chosen.get("dark"), flat=chosen.get("flat"),
                                n_reference_frames=n_ref)
        labels = self.curated_labels() if labels is None else np.asarray(labels)
        if not labels.any():
            return stack, []
        return resolve_illumination(stack, labels, chosen.get("illumination", "auto"),
                                    threshold=chosen["threshold"], n_reference_frames=n_ref,
                                    name=self.name)

    def curated_labels(self) -> np.ndarray:
        if self.curation is not None:
            return np.asarray(self.curation.labels)
        return np.zeros(self._require_stack().shape[1:], np.int32)

    def differential_options(self, *, rolling=True) -> dict:
        """The dI settings as keyword arguments of
        :func:`asymflux.analysis.registered_differential`: reference frames, the
        illumination normalisation as :func:`asymflux.analysis.analyze_dataset` resolves it
        (:func:`~asymflux.analysis.resolve_normalization`, on :meth:`corrected_stack`) and,
        with ``rolling``, the rolling differential."""
        from asymflux.analysis import particle_free_pixels, resolve_normalization

        chosen = self.analysis_options(rolling=rolling)
        options = {"n_reference_frames": chosen["n_reference_frames"]}
        labels = self.curated_labels()
        stack, _said = self.corrected_stack(labels)
        norm, _said = resolve_normalization(
            self.analysis_dataset(), chosen["normalize"], stack, labels,
            threshold=chosen["threshold"], n_reference_frames=chosen["n_reference_frames"],
            rolling_frames=chosen.get("rolling_frames"))
        if norm is not None:
            options["normalize"] = norm
            if isinstance(norm, str) and labels.any():
                options["background_mask"] = particle_free_pixels(labels)
        if "rolling_frames" in chosen:
            options["rolling_frames"] = chosen["rolling_frames"]
        return options

    @property
    def register(self) -> bool:
        return bool(self.choices.get("register", True))

    def movie_key(self, options) -> dict:
        """What the registered dI movie depends on: ``options``, *register* and the labels
        (the registration region and the background are taken around them)."""
        labels = self.curation.labels if self.curation is not None else None
        chosen = self.analysis_options(rolling=False)
        return {**_options_key(options), "register": self.register,
                "illumination": str(chosen.get("illumination")),
                **{k: _calibration_key(chosen.get(k)) for k in ("dark", "flat")},
                "labels": None if labels is None
                else zlib.crc32(np.ascontiguousarray(labels).tobytes())}

    def movie(self, options=None):
        """``(registered dI movie, its key)`` for ``options`` (default
        :meth:`differential_options`): :func:`asymflux.analysis.registered_differential`
        of :meth:`corrected_stack` (the frames ``asymflux analyze`` measures), shape
        (time, row, col)."""
        from asymflux.analysis import registered_differential

        self._require_stack()
        options = self.differential_options() if options is None else options
        labels = self.curation.labels if self.curation is not None else None
        stack = _as_array(self.corrected_stack(labels)[0], self.stack)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            dI, _shifts = registered_differential(stack, labels, register=self.register,
                                                  **options)
        return dI, self.movie_key(options)

    def kymograph(self, start, end, dI=None):
        """dI along the line ``start`` -> ``end`` ((row, col) pixels) for every frame:
        ``(kymograph (time, position), distance_nm)``
        (:func:`asymflux.analysis.line_kymograph` of ``dI``, default :meth:`movie`)."""
        from asymflux.analysis import line_kymograph

        self._require_stack()
        dI = self.movie()[0] if dI is None else dI
        return line_kymograph(dI, np.asarray(start, float), np.asarray(end, float),
                              pixel_nm=self.pixel_nm)

    # ------------------------------------------------------------------ curation

    def _edited(self, result=None):
        self._emit("labels")
        return result

    def take_labels(self, labels) -> bool:
        """Take labels edited elsewhere (napari's brush) as one undoable "paint" step;
        True if anything changed."""
        cur = self.require()
        data = np.asarray(labels)
        if data.shape != cur.labels.shape:
            raise ValueError(f"labels of shape {data.shape}, expected {cur.labels.shape}")
        changed = cur.update_labels(data, description="paint")
        if changed:
            self._emit("labels")
        return changed

    def detect(self, min_area_px=None):
        """Detect particles on the reference image (mean of the first frames), as
        ``asymflux analyze`` does, into the labels: all labels and annotations replaced as
        one undoable step. Returns the labels (row, col)."""
        from asymflux.analysis import (
            calibrate_stack,
            default_min_area_px,
            detect_reference,
            reference_image,
        )

        cur = self.require()
        n_ref = int(self.choices.get("n_reference_frames", 1))
        min_area = int(min_area_px or self.choices.get("min_area_px") or 0) or \
            default_min_area_px(self.pixel_nm if self.pixel_known else None)
        chosen = self.analysis_options(rolling=False)
        ref = reference_image(calibrate_stack(self._require_stack(), dark=chosen.get("dark"),
                                              flat=chosen.get("flat"), n_reference_frames=n_ref),
                              n_reference_frames=n_ref)  # the batch detects on these frames
        labels = detect_reference(ref, detect_kwargs={"min_area_px": min_area})
        if not np.any(labels):  # refused before the labels are touched
            raise ValueError(f"{self.source_name()}: no particle detected in the reference image "
                             f"(mean of the first {n_ref} frame(s)) with min area {min_area} px; "
                             "check the stack, lower the min area, or paint the particles")
        cur.replace_labels(labels, description="detect particles")
        return self._edited(labels)

    def accept(self, particle_id=None):
        """Accept the chosen particle."""
        self._edited(self.require().accept(self.pid(particle_id)))

    def reject(self, particle_id=None):
        """Reject the chosen particle."""
        self._edited(self.require().reject(self.pid(particle_id)))

    def flag(self, particle_id=None):
        """Flag the chosen particle for a second look."""
        self._edited(self.require().flag(self.pid(particle_id)))

    def set_class(self, particle_class, particle_id=None):
        """Set the chosen particle's class."""
        self._edited(self.require().set_class(self.pid(particle_id), particle_class))

    def set_notes(self, notes, particle_id=None):
        """Set the chosen particle's notes."""
        self._edited(self.require().set_notes(self.pid(particle_id), notes))

    def merge(self, ids):
        """Merge particles ``ids``; the kept one becomes the chosen particle. Returns its id."""
        keep = self.require().merge(ids)
        self.select(keep)
        return self._edited(keep)

    def split(self, particle_id=None, line=None):
        """Split the chosen particle in two (or into its pieces); returns the ids."""
        return self._edited(self.require().split(self.pid(particle_id), line=line))

    def delete(self, particle_id=None):
        """Delete the chosen particle (pixels to background)."""
        self._edited(self.require().delete(self.pid(particle_id)))

    def relabel(self):
        """Renumber the particles 1..n (the chosen one follows); returns ``{old: new}``."""
        mapping = self.require().relabel_sequential()
        if self.particle_id in mapping:
            self.select(mapping[self.particle_id])
        return self._edited(mapping)

    def undo(self):
        """Undo the last edit (any action or paint stroke); returns its description."""
        return self._edited(self.require().undo())

    def redo(self):
        """Redo the last undone edit; returns its description."""
        return self._edited(self.require().redo())

    def save(self) -> Path:
        """Save masks and annotations into the dataset folder (atomic, previous kept)."""
        cur = self.require()
        if cur.path is None:
            raise RuntimeError("this stack is not in a dataset folder: nowhere to save the "
                               "curation (write a dataset with asymflux.io.write_dataset)")
        cur.save()
        self._emit("saved")
        return cur.path

    # ------------------------------------------------------------------ a particle's analysis

    def analyze_particle(self, particle_id=None, *, rolling=True, crop=False):
        """The chosen particle through the dataset pipeline of ``asymflux analyze``
        (:func:`asymflux.analysis.analyze_dataset_particle` with :meth:`analysis_options`
        and the curated labels): the same numbers, quality flags and ranges as ``asymflux
        analyze`` and ``asymflux fit`` give it."""
        from asymflux.analysis import analyze_dataset_particle

        cur = self.require()
        pid = self.pid(particle_id)
        if pid not in set(cur.particle_ids()):
            raise ValueError(f"particle {pid} does not exist")
        accepted = inspect.signature(analyze_dataset_particle).parameters
        options = {k: v for k, v in self.analysis_options(rolling=rolling).items()
                   if k in accepted}
        labels = np.asarray(cur.labels)

        def compute():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return analyze_dataset_particle(self.analysis_dataset(), pid, masks=labels,
                                                crop=crop, n_threads=1, **options)

        return self._cached("napari.particle", {"particle_id": pid, "crop": bool(crop),
                                                "options": options}, labels, compute,
                            lambda r: r.timeseries)

    # ------------------------------------------------------------------ the results cache

    def cache_inputs(self):
        """``(input files, what identifies the stack)`` of the results cache's key, or None
        when the stack cannot be identified (an in-memory stack: no file; not cached).

        A dataset folder: its data files (``asymflux.io.dataset.DATA_FILES``: metadata,
        frame times, cycler table, stack), not its curation files (the labels analysed are
        keyed by their content, and annotations change no number), with the clock offset
        applied. A stack file: the file, the stack's shape, pixel size and frame times, and
        its first and last frames' pixels (another channel or plane of the file)."""
        from asymflux.analysis import dataset_time_offset
        from asymflux.io.dataset import DATA_FILES

        if self.stack is None:
            return None
        ident = {"name": self.name, "shape": list(self.stack.shape),
                 "dtype": str(self.stack.dtype)}
        path = getattr(self.dataset, "path", None) if self.dataset is not None else None
        if path is not None:
            ident["time_offset"] = dataset_time_offset(self.dataset).as_dict()
            return [Path(path) / n for n in DATA_FILES], ident
        source = Path(self.source) if self.source else None
        if source is None or not source.exists():
            return None
        # the first and last frames' pixels too: a file's channel or z plane read as a
        # stack of the same shape is another stack
        ident.update(pixel_nm=self.pixel_nm, time_s=np.asarray(self.time_s, float),
                     frames=[np.asarray(self.stack[k]) for k in (0, -1)])
        return [source], ident

    def _cached(self, kind, options, labels, compute, table_of):
        """``compute()`` through the results cache (:attr:`cache`), keyed on
        :meth:`cache_inputs`, ``labels`` (their content) and ``options``; sets
        :attr:`cache_hit`. A value read from the cache issues its warnings again (its
        ``table_of(value).attrs["warnings"]``), as a computed one does."""
        from asymflux.analysis import cached, lookup

        found = None if self.cache is False else self.cache_inputs()
        if found is None:
            self.cache_hit = None
            return compute()
        inputs, ident = found
        key = {"stack": ident, "labels": np.ascontiguousarray(labels), **options}
        value = lookup(kind, inputs, key, cache=self.cache)
        if value is None:
            self.cache_hit = False
            return cached(kind, inputs, key, compute, cache=self.cache)
        self.cache_hit = True
        from asymflux.io import EchemWarning

        for w in table_of(value).attrs.get("warnings", []):
            warnings.warn(w, EchemWarning, stacklevel=3)
        return value

    def particle_timeseries(self, particle_id=None):
        """The chosen particle's table (:meth:`analyze_particle`'s ``timeseries``, the rows
        ``asymflux analyze`` writes for it), kept as :attr:`particle_table`."""
        self.particle_table = self.analyze_particle(particle_id).timeseries
        return self.particle_table

    @staticmethod
    def centre_points(table):
        """``(O_COM, O_Li-rich)`` of a particle's table as (frame, row, col) points, shape
        (n, 3) each (frames where a centre is unknown left out)."""
        frames = table["frame"].to_numpy(float)
        com = np.column_stack([frames, table["com_row"], table["com_col"]])
        li = np.column_stack([frames, table["li_rich_row"], table["li_rich_col"]])
        return com[np.isfinite(com).all(axis=1)], li[np.isfinite(li).all(axis=1)]

    def fit_inputs(self, particle_id=None, max_arcs=2, rate_mA_g=None):
        """``(particle id, its mask, fit_analysis's args, kwargs)``: the particle through
        :meth:`analyze_particle` (registered, never a rolling differential: the blocking
        model predicts dI relative to the reference), the rate from the dataset's
        metadata unless given."""
        pid = self.pid(particle_id)
        if rate_mA_g is None:
            rate_mA_g = (self.dataset.metadata.get("rate_mA_g") if self.dataset is not None
                         else None)
        if rate_mA_g is None:
            raise ValueError("unknown charge rate: open a dataset folder with rate_mA_g in its "
                             "metadata")
        particle = self.analyze_particle(pid, rolling=False, crop=True)
        mask = self.require().labels == pid
        from asymflux.fit import charge_rest_start_s

        rest = charge_rest_start_s(self.dataset) if self.dataset is not None else None
        return pid, mask, (particle,), {"rate_mA_g": float(rate_mA_g), "max_arcs": max_arcs,
                                        "rest_start_s": rest}  # a rest is not charge (as fit)

    def fit(self, particle_id=None, max_arcs=2, rate_mA_g=None):
        """Fit the chosen particle's blocked arcs (:func:`asymflux.fit.fit_analysis`, as
        ``asymflux fit``; 10-60 s); returns the :class:`asymflux.fit.FitResult`."""
        from asymflux.fit import fit_analysis

        pid, mask, args, kwargs = self.fit_inputs(particle_id, max_arcs, rate_mA_g)
        return self.set_fit(fit_analysis(*args, **kwargs))

    def set_fit(self, result):
        """Keep a fit's result (from :meth:`fit` or a background worker); returns it."""
        self.fit_result = result
        self._emit("fit")
        return result

    @staticmethod
    def arc_paths(mask, result, *, n=96) -> list:
        """A fit's arcs as paths around the particle ``mask`` (row, col): a list of (m, 2)
        (row, col) arrays, drawn as :func:`asymflux.plots.arc_outline_xy` draws them at
        1.15 × the particle's equivalent radius."""
        from asymflux.plots import arc_outline_xy

        rows, cols = np.nonzero(mask)
        rc, cc = rows.mean(), cols.mean()
        radius = 1.15 * np.sqrt(mask.sum() / np.pi)
        # the arcs as plots draws them (x right, y up), in (row, col): row = rc - y
        x, y = arc_outline_xy(SimpleNamespace(arcs=result.arcs), radius, n=n)
        points = np.column_stack([rc - y, cc + x])
        pieces = (p[np.isfinite(p).all(axis=1)] for p in np.split(points, np.flatnonzero(np.isnan(x))))
        return [p for p in pieces if len(p) >= 2]

    @staticmethod
    def fit_message(pid, result) -> str:
        text = ", ".join(f"{a.center_deg:.0f}° × {a.fraction:.2f} at η {a.eta:.2f}"
                         for a in result.arcs)
        return (f"particle {pid}: {result.model}{': ' + text if text else ''} "
                f"(D × {result.diffusivity_scale:.2g})")

    # ------------------------------------------------------------------ exports

    def export_table(self, path):
        """Write the curated particles table as CSV at ``path``: every particle analysed as
        ``asymflux analyze`` does with :meth:`analysis_options`, joined with its class,
        status and notes (:func:`asymflux.export.analyze_curation`). Atomic; returns
        ``(path, table)``."""
        from asymflux import export

        cur = self.require()
        path = export.check_table_path(path)
        labels = np.asarray(cur.labels)
        options = self.analysis_options()
        if not labels.any():
            raise ValueError("no particles to export: the labels are empty (detect particles "
                             "first)")

        def compute():
            from asymflux.analysis import analyze_dataset

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return analyze_dataset(self.analysis_dataset(), masks=labels, **options)

        particles, _ = self._cached("napari.dataset", {"options": options}, labels, compute,
                                    lambda r: r[0])
        table = export.curated_particles(particles, cur)  # as export.analyze_curation joins
        export.write_table(path, table)
        return path, table

    def export_movie(self, path, particle_id=None, *, fps=5.0):
        """Write the chosen particle's registered differential crop (:meth:`analyze_particle`)
        as a movie at ``path`` (:func:`asymflux.export.write_particle_movie`). Atomic;
        returns the path."""
        from asymflux import export

        self.require()
        pid = self.pid(particle_id)
        path = export.check_movie_path(path)
        export.write_particle_movie(path, self.analyze_particle(pid, crop=True), fps=fps)
        return path
