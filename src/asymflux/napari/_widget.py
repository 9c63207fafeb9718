"""The particle-curation dock widget: a thin magicgui view on :class:`asymflux.curation.Curation`.

Every button calls a named method (``detect``, ``accept``, ``merge``, ``undo``,
``save``, ...) that can be called from a script or a test. The model holds the truth
(labels + per-particle table, undo, autosave); the widget mirrors it into a napari
Labels layer (pixel changes through ``layer.data_setitem`` grouped with
``layer.block_history()``, so napari's own undo sees one step per action) and the
layer's ``features``. Pixels painted with napari's tools are taken into the model (one
undoable "paint" step, autosaved) whenever the layer reports a paint and before every
action.

The dock is made of small panels, each a few controls and the buttons that call this
widget's methods: :class:`~._data_panel.DataPanel` (dataset, stack, clock offset),
:class:`~._options_panel.OptionsPanel` (the analysis choices, turned into
:func:`asymflux.analysis.analyze_dataset`'s options by
:func:`asymflux.analysis.analysis_options`), :class:`~._curation_panel.CurationPanel`,
:class:`~._particle_panel.ParticlePanel` (with the quality lines of
:class:`~._quality_panel.QualityPanel` and d(capacity)), :class:`~._export_panel.ExportPanel`
and the *Live* :class:`~._live.LivePanel` (docs/napari.md).
"""

from __future__ import annotations

import contextlib
import warnings
import zlib
from pathlib import Path

import numpy as np
from magicgui.widgets import Container, Label

from asymflux.curation import Curation
from asymflux.export import symmetric_limit

from ._curation_panel import CurationPanel
from ._data_panel import DataPanel
from ._display import button_row, diverging_colormap
from ._export_panel import ExportPanel
from ._options_panel import OptionsPanel
from ._particle_panel import ParticlePanel
from ._reader import METADATA_KEY, user_message

__all__ = ["CurationWidget"]


def _check_signal(stack, source) -> None:
    """Refuse a stack whose first or last frame holds no image (reads only those two)."""
    from asymflux.analysis._pipeline import check_stack_signal

    check_stack_signal(stack, name=str(source))


def _capacity(dataset, n_frames) -> np.ndarray:
    """Capacity at each frame (NaN where unknown); each problem of the cycler data (not on
    the frames' clock, NaN cells, no capacity) is issued as one warning, which the widget
    shows as a notification: never lost, never a silent NaN."""
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


DOCK_WIDTH_PX = 400
"""Width the dock asks for at most (its controls scroll sideways when it is narrower than
they are; the user may widen it)."""


def _scroll_area(body):
    """A :class:`QScrollArea` around ``body`` (both scroll bars as needed) that asks for
    at most :data:`DOCK_WIDTH_PX` of width and needs very little: the dock leaves the image
    canvas its room."""
    from qtpy.QtCore import QSize, Qt
    from qtpy.QtWidgets import QFrame, QScrollArea

    class ScrollArea(QScrollArea):
        def sizeHint(self):  # noqa: N802 - Qt's name
            hint = super().sizeHint()
            return QSize(min(hint.width(), DOCK_WIDTH_PX), hint.height())

        def minimumSizeHint(self):  # noqa: N802 - Qt's name
            return QSize(min(super().minimumSizeHint().width(), DOCK_WIDTH_PX // 2),
                         super().minimumSizeHint().height())

    area = ScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setWidget(body)
    return area


class CurationWidget(Container):
    """Dock widget: differential intensity, particle detection, curation, trajectories.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari.

    Attributes
    ----------
    curation : asymflux.curation.Curation or None
        The model (None until a stack is attached).
    labels_layer, image_layer, dI_layer, kymograph_layer : napari layers or None
    com_layer, li_rich_layer : napari Points layers or None
        O_COM and O_Li-rich of the particle shown by :meth:`show_particle`, as
        (frame, row, col) points.
    particle_table : pandas.DataFrame or None
        That particle's table (:func:`asymflux.analysis.analyze_particle`: registered,
        the rows ``asymflux analyze`` writes for it).
    fit_result : asymflux.fit.FitResult or None
        The last *Fit blocking* (:func:`asymflux.fit.fit_analysis`, as ``asymflux fit``).
    """

    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.curation: Curation | None = None
        self.dataset = None
        self.stack = None
        self.pixel_nm = 1.0
        self.time_s = None
        self.capacity_mAh_g = None
        self.image_layer = None
        self.labels_layer = None
        self.dI_layer = None
        self.com_layer = None
        self.li_rich_layer = None
        self.lines_layer = None
        self.kymograph_layer = None
        self.particle_table = None
        self.fit_result = None
        self.arcs_layer = None
        self._pushing = False
        self._syncing_particle = False
        self._opening = False
        self._pull_scheduled = False

        # --- data: dataset, stack layer, clock offset
        self.data_panel = DataPanel(self, self._image_layer_choices)
        self._path, self._source = self.data_panel.path, self.data_panel.source
        self._time_offset = self.data_panel.time_offset
        # --- analysis options (asymflux.analysis.analysis_options, as asymflux analyze)
        self.options_panel = OptionsPanel()
        detect_row = self._row(("dI", self.show_differential), ("Detect particles", self.detect))
        # --- curation
        self.curation_panel = CurationPanel(self)
        self._particle = self.curation_panel.particle
        # --- the selected particle: O_COM / O_Li-rich, quality, d(capacity), kymograph, fit
        self.particle_panel = ParticlePanel(self)
        self.quality_panel = self.particle_panel.quality
        self._figure, self._canvas = self.particle_panel.figure, self.particle_panel.canvas
        # --- export
        self._export = ExportPanel(self)
        self._status = Label(label="", value="no stack: open a dataset or pick a stack layer")
        # every control in a scrollable body (:func:`_scroll_area`): at its natural width,
        # ~570 px, the dock squeezed the image canvas on a 1600 x 1000 screen
        self._body = Container(labels=True)
        self._body.extend([self.data_panel, self.options_panel, detect_row, self.curation_panel,
                           self.particle_panel, self._export, self._status])
        self._particle.changed.connect(self._on_particle_spin)
        # --- live: follow a movie while it is written (asymflux.napari._live)
        from ._live import LivePanel

        self.live_panel = LivePanel(self.viewer, label="live")
        self._body.native.layout().addWidget(self.live_panel.native)
        self.scroll_area = _scroll_area(self._body.native)
        self.native.layout().addWidget(self.scroll_area)
        self.native.layout().setContentsMargins(0, 0, 0, 0)

        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layer_inserted)
        layers.events.removed.connect(self._on_layer_removed)
        self.viewer.dims.events.current_step.connect(self._on_frame)
        self._auto_attach()

    # ------------------------------------------------------------------ small helpers

    def _row(self, *buttons) -> Container:
        return button_row(self.run, *buttons)

    def run(self, method, *args, **kwargs):
        """Call ``method`` as a button does: errors and warnings become notifications."""
        from napari.utils.notifications import show_error, show_warning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return method(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - a click must never raise
                show_error(f"asymflux: {user_message(None, e)}")
            finally:
                for w in caught:
                    if issubclass(w.category, UserWarning):
                        show_warning(f"asymflux: {user_message(None, w.message)}")

    def _image_layer_choices(self, *_):
        from napari.layers import Image

        out = []
        for layer in self.viewer.layers:
            if isinstance(layer, Image) and layer.ndim == 3 and layer is not self.dI_layer:
                out.append((layer.name, layer))
        return out

    @staticmethod
    def _meta(layer) -> dict:
        return dict((layer.metadata or {}).get(METADATA_KEY, {}) or {})

    def _require(self):
        if self.curation is None or self.labels_layer is None:
            raise RuntimeError("no stack attached: open a dataset or pick a stack layer first")
        if self.labels_layer not in self.viewer.layers:
            self.viewer.add_layer(self.labels_layer)
        self._pull()
        return self.curation

    def _source_name(self) -> str:
        """The dataset folder / file of the attached stack (or its layer), for messages."""
        if self.dataset is not None and self.dataset.path is not None:
            return str(self.dataset.path)
        meta = self._meta(self.image_layer) if self.image_layer is not None else {}
        if meta.get("source"):
            return str(meta["source"])
        return f"layer {self.image_layer.name!r}" if self.image_layer is not None else "stack"

    def _pid(self, particle_id) -> int:
        pid = int(self._particle.value if particle_id is None else particle_id)
        if pid == 0:
            raise ValueError("select a particle first (particle 0 is the background)")
        return pid

    # ------------------------------------------------------------------ layers <-> model

    def _on_layer_inserted(self, event=None):
        # a reader adds its layers one by one: attach once they are all in
        if self.curation is None and not self._opening:
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, self._auto_attach)

    def _on_layer_removed(self, event=None):
        layer = getattr(event, "value", None)
        for attr in ("image_layer", "dI_layer", "com_layer", "li_rich_layer", "lines_layer",
                     "kymograph_layer"):
            if getattr(self, attr) is layer:
                setattr(self, attr, None)

    def _auto_attach(self):
        if self.curation is not None:
            return
        for layer in reversed(list(self.viewer.layers)):
            if self._meta(layer).get("role") == "stack":
                self.run(self.attach, layer)
                return

    def attach(self, layer=None):
        """Work on an image layer (a stack opened by the asymflux reader, or any 3-D image).

        For a dataset folder, the curation (masks, annotations and any autosave of
        unsaved edits) is loaded from it and saved back into it.
        """
        from napari.layers import Labels
        from napari.utils.notifications import show_info, show_warning

        from asymflux.io import read_dataset

        if self.curation is not None and self.labels_layer is not None:
            self._pull()  # pixels painted but not yet taken in are autosaved before switching
        layer = layer if layer is not None else self._source.value
        if layer is None:
            raise ValueError("no stack layer: open a dataset first")
        if layer.ndim != 3:
            raise ValueError(f"layer {layer.name!r} is not a (time, row, col) stack")
        meta = self._meta(layer)
        stack = layer.data
        n_frames = int(stack.shape[0])
        source = meta.get("source") or meta.get("path") or f"layer {layer.name!r}"
        # everything is read and checked first: a bad input changes nothing in the widget
        _check_signal(stack, source)
        dataset = None
        if meta.get("path"):
            dataset = read_dataset(meta["path"], lazy=True)
            curation = Curation.from_dataset(dataset)
            if dataset.echem is not None and self._time_offset.value.strip():
                from asymflux.analysis import apply_time_offset

                dataset = apply_time_offset(dataset, self._time_offset.value.strip(),
                                            masks=curation.labels if np.any(curation.labels)
                                            else None)
            pixel_nm = float(dataset.pixel_nm)
            time_s = np.asarray(dataset.time_s, dtype=float)
            capacity = _capacity(dataset, n_frames)
        else:
            curation = Curation(np.zeros(stack.shape[1:], np.int32))
            pixel_nm = float(meta.get("pixel_nm") or 1.0)
            time_s = np.arange(n_frames, dtype=float)
            capacity = np.full(n_frames, np.nan)
        self.image_layer, self.stack, self.dataset, self.curation = layer, stack, dataset, curation
        self.pixel_nm, self.time_s, self.capacity_mAh_g = pixel_nm, time_s, capacity
        # adopt the reader's labels layer of the same stack, else make one
        labels = None
        for lyr in self.viewer.layers:
            m = self._meta(lyr)
            if isinstance(lyr, Labels) and m.get("role") == "particles" and meta.get("source") \
                    and m.get("source") == meta.get("source"):
                labels = lyr
        if labels is None:
            name = f"{meta.get('name') or layer.name} particles"
            labels = self.viewer.add_labels(
                np.array(self.curation.labels), name=name, opacity=0.6,
                metadata={METADATA_KEY: {**meta, "role": "particles"}})
        self._connect_labels(labels)
        self._push()
        if self._source.value is not layer:
            with contextlib.suppress(ValueError):
                self._source.reset_choices()
                self._source.value = layer
        if self.curation.recovered_from is not None:
            show_warning(f"asymflux: restored unsaved curation from {self.curation.recovered_from}"
                         " (Save to keep it)")
        elif meta.get("path") is None:
            show_info("asymflux: this stack is not in a dataset folder; curation cannot be saved")
        self._update_status()
        return self.curation

    def _connect_labels(self, layer):
        if self.labels_layer is not None and self.labels_layer is not layer:
            with contextlib.suppress(Exception):
                self.labels_layer.events.paint.disconnect(self._on_paint)
                self.labels_layer.events.selected_label.disconnect(self._on_selected_label)
        self.labels_layer = layer
        layer.events.paint.connect(self._on_paint)
        layer.events.selected_label.connect(self._on_selected_label)

    def _on_paint(self, event=None):
        # napari may emit `paint` before the pixels are written: take them a moment later
        if not self._pushing and not self._pull_scheduled:
            from qtpy.QtCore import QTimer

            self._pull_scheduled = True
            QTimer.singleShot(0, lambda: self.run(self._pull_and_refresh))

    def _pull_and_refresh(self):
        self._pull_scheduled = False
        if self._pull():
            self._push_features()
            self._update_status()

    def _pull(self) -> bool:
        """Take pixels edited in the layer (napari brush, fill, napari undo) into the model."""
        if self.curation is None or self.labels_layer is None:
            return False
        data = np.asarray(self.labels_layer.data)
        if data.shape != self.curation.labels.shape:
            raise ValueError(f"labels layer {self.labels_layer.name!r} has shape {data.shape}, "
                             f"expected {self.curation.labels.shape}")
        return self.curation.update_labels(data, description="paint")

    def _push(self):
        """Mirror the model into the labels layer (pixels as one napari undo step, features)."""
        cur, layer = self.curation, self.labels_layer
        self._pushing = True
        try:
            data = layer.data
            target = cur.labels
            if not isinstance(data, np.ndarray) or data.dtype != target.dtype:
                layer.data = np.array(target)
            else:
                index = np.flatnonzero(data.ravel() != target.ravel())
                if index.size:
                    idx = np.unravel_index(index, target.shape)
                    with layer.block_history():
                        layer.data_setitem(idx, target.ravel()[index])
            self._push_features()
        finally:
            self._pushing = False

    def _push_features(self):
        feats = self.curation.features
        feats.insert(0, "index", feats["particle_id"].to_numpy())
        self.labels_layer.features = feats
        self._show_row()

    def _on_selected_label(self, event=None):
        if self._syncing_particle or self.labels_layer is None:
            return
        self._syncing_particle = True
        try:
            self._particle.value = int(self.labels_layer.selected_label)
        finally:
            self._syncing_particle = False
        self._show_row()

    def _on_particle_spin(self, value=None):
        if self._syncing_particle or self.labels_layer is None:
            return
        self._syncing_particle = True
        try:
            if int(self._particle.value) > 0:
                self.labels_layer.selected_label = int(self._particle.value)
        finally:
            self._syncing_particle = False
        self._show_row()

    def _show_row(self):
        """Show the selected particle's class / status / notes in the widget."""
        pid = int(self._particle.value)
        if self.curation is None or pid == 0 or pid not in set(self.curation.particle_ids()):
            self.curation_panel.show_row("no particle selected" if pid == 0
                                         else f"particle {pid}: none")
            return
        self.curation_panel.show_row(self.curation.row(pid))

    def _update_status(self):
        cur = self.curation
        if cur is None:
            return
        f = cur.features
        counts = f["status"].value_counts()
        parts = [f"{len(f)} particles"] + [f"{counts[s]} {s}" for s in counts.index]
        where = cur.path.name if cur.path is not None else "not saveable"
        state = "unsaved (autosaved)" if cur.dirty and cur.path is not None else (
            "unsaved" if cur.dirty else "saved")
        self._status.value = f"{', '.join(parts)} | {state} | {where}"

    def _after_edit(self):
        self._push()
        self._update_status()

    # ------------------------------------------------------------------ actions: data

    def open_dataset(self, path=None):
        """Open a dataset folder / stack through the asymflux reader and attach to it.

        A broken file gives an error notification naming it (no layers are added).
        """
        from ._reader import read_path

        path = Path(path if path is not None else self._path.value)
        layers = []
        self._opening = True
        try:
            for data, kwargs, kind in (t for t in read_path(path) if t[0] is not None):
                layers.append(getattr(self.viewer, f"add_{kind}")(data, **kwargs))
        finally:
            self._opening = False
        if layers:
            stack = next(lyr for lyr in layers if self._meta(lyr).get("role") == "stack")
            return self.attach(stack)
        return None

    def analysis_options(self, *, rolling=True) -> dict:
        """The user's choices (:class:`~._options_panel.OptionsPanel`) as keyword arguments
        of :func:`asymflux.analysis.analyze_dataset`, through
        :func:`asymflux.analysis.analysis_options`: the options and defaults of ``asymflux
        analyze`` (*normalise illumination* ``auto``, *Register drift* on). Without
        ``rolling``, never a rolling differential (what the fit uses)."""
        return self.options_panel.options(rolling=rolling)

    def differential_options(self, *, rolling=True) -> dict:
        """The dI settings as keyword arguments of
        :func:`asymflux.analysis.registered_differential`: reference frames, the
        illumination normalisation as :func:`asymflux.analysis.analyze_dataset` resolves it
        (:func:`~asymflux.analysis.resolve_normalization`: ``auto`` is ``frame_mean`` when
        the background drifts, else none; ``frame_mean`` is the dataset's recorded frame
        intensity, else the mean of the pixels away from all particles) and, with
        ``rolling``, the rolling differential."""
        from asymflux.analysis import particle_free_pixels, resolve_normalization

        chosen = self.analysis_options(rolling=rolling)
        options = {"n_reference_frames": chosen["n_reference_frames"]}
        labels = self._curated_labels()
        norm, _said = resolve_normalization(
            self._analysis_dataset(), chosen["normalize"], self.stack, labels,
            threshold=chosen["threshold"], n_reference_frames=chosen["n_reference_frames"],
            rolling_frames=chosen.get("rolling_frames"))
        if norm is not None:
            options["normalize"] = norm
            if isinstance(norm, str) and labels.any():
                options["background_mask"] = particle_free_pixels(labels)
        if "rolling_frames" in chosen:
            options["rolling_frames"] = chosen["rolling_frames"]
        return options

    def _curated_labels(self) -> np.ndarray:
        if self.curation is not None:
            return np.asarray(self.curation.labels)
        return np.zeros(self.stack.shape[1:], np.int32)

    def analyze_particle(self, particle_id=None, *, rolling=True, crop=False):
        """The selected particle through the dataset pipeline of ``asymflux analyze``
        (:func:`asymflux.analysis.analyze_dataset_particle` with :meth:`analysis_options`
        and the curated labels): the same numbers, quality flags and ranges as ``asymflux
        analyze`` and ``asymflux fit`` give it."""
        import inspect

        from asymflux.analysis import analyze_dataset_particle

        cur = self._require()
        pid = self._pid(particle_id)
        if pid not in set(cur.particle_ids()):
            raise ValueError(f"particle {pid} does not exist")
        accepted = inspect.signature(analyze_dataset_particle).parameters
        options = {k: v for k, v in self.analysis_options(rolling=rolling).items()
                   if k in accepted}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return analyze_dataset_particle(self._analysis_dataset(), pid,
                                            masks=np.asarray(cur.labels), crop=crop,
                                            n_threads=1, **options)

    @staticmethod
    def _options_key(options) -> dict:
        """``options`` with arrays replaced by checksums (to tell whether a dI layer is current)."""
        return {k: v if v is None or isinstance(v, str | int) else
                zlib.crc32(np.ascontiguousarray(v).tobytes()) for k, v in options.items()}

    def show_differential(self, n_reference_frames=None):
        """Add (or refresh) the differential stack as an image layer.

        dI = I/I0 − 1, or I_t/I_(t−n) − 1 with *Rolling differential*, after dividing
        each frame by its illumination with *Normalise illumination*
        (:meth:`differential_options`), registered with *Register drift* as ``asymflux
        analyze`` registers it (:func:`asymflux.analysis.registered_differential`: the
        frames line up with the particle outlines; lazy for a lazy stack, after one pass
        for the drift). Diverging colormap with white at dI = 0 and red for delithiation
        (dI > 0); contrast limits ±x, x from the last frame.
        """
        if self.stack is None:
            raise RuntimeError("no stack attached: open a dataset or pick a stack layer first")
        options = self.differential_options()
        if n_reference_frames:
            options["n_reference_frames"] = int(n_reference_frames)
        dI, key = self._movie(options)
        x = symmetric_limit(dI[-1])
        name = f"{self.image_layer.name} dI" if self.image_layer is not None else "dI"
        if self.dI_layer is not None and self.dI_layer in self.viewer.layers:
            self.dI_layer.data = dI
            self.dI_layer.contrast_limits = (-x, x)
        else:
            self.dI_layer = self.viewer.add_image(
                dI, name=name, colormap=diverging_colormap(), contrast_limits=(-x, x),
                metadata={METADATA_KEY: {"role": "dI"}})
        self.dI_layer.metadata[METADATA_KEY]["options"] = key
        if self.labels_layer is not None and self.labels_layer in self.viewer.layers:
            # particles as outlines on top, so that dI inside them stays visible
            self.labels_layer.contour = 2
            self.viewer.layers.move(self.viewer.layers.index(self.labels_layer),
                                    len(self.viewer.layers))
        return self.dI_layer

    def _movie_key(self, options) -> dict:
        """What the registered dI movie depends on: ``options``, *Register drift* and the
        labels (the registration region and the background are taken around them)."""
        labels = self.curation.labels if self.curation is not None else None
        register = bool(self.options_panel.register.value)
        return {**self._options_key(options), "register": register,
                "labels": None if labels is None
                else zlib.crc32(np.ascontiguousarray(labels).tobytes())}

    def _movie(self, options):
        """``(registered dI movie, its key)`` for ``options`` (:meth:`differential_options`)."""
        from asymflux.analysis import registered_differential

        labels = self.curation.labels if self.curation is not None else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            dI, _shifts = registered_differential(self.stack, labels,
                                                  register=bool(self.options_panel.register.value),
                                                  **options)
        return dI, self._movie_key(options)

    def _dI(self, *, rolling=True):
        """The registered dI movie of the current settings (the dI layer's, if current)."""
        options = self.differential_options(rolling=rolling)
        layer = self.dI_layer
        if layer is not None and layer in self.viewer.layers and \
                layer.metadata.get(METADATA_KEY, {}).get("options") == self._movie_key(options):
            return layer.data
        return self._movie(options)[0]

    def detect(self, min_area_px=None):
        """Detect particles on the reference image (mean of the first frames) into the labels.

        Replaces all labels and annotations as one undoable step.
        """
        from asymflux.analysis import reference_image

        cur = self._require()
        n_ref = int(self.options_panel.n_ref.value)
        from asymflux.analysis._detect import default_min_area_px
        from asymflux.analysis._pipeline import detect_reference

        known = self.dataset is not None or (self.image_layer is not None and
                                             self._meta(self.image_layer).get("pixel_nm"))
        min_area = int(min_area_px or self.options_panel.min_area.value) or \
            default_min_area_px(self.pixel_nm if known else None)
        ref = reference_image(self.stack, n_reference_frames=n_ref)
        labels = detect_reference(ref, detect_kwargs={"min_area_px": min_area})  # as analyze
        if not np.any(labels):  # refused before the labels are touched
            where = self._source_name()
            raise ValueError(f"{where}: no particle detected in the reference image (mean of "
                             f"the first {n_ref} frame(s)) with min area {min_area} px; check "
                             "the stack, lower the min area, or paint the particles")
        cur.replace_labels(labels, description="detect particles")
        self._after_edit()
        return labels

    # ------------------------------------------------------------------ actions: curation

    def accept(self, particle_id=None):
        """Accept the selected particle."""
        self._require().accept(self._pid(particle_id))
        self._after_edit()

    def reject(self, particle_id=None):
        """Reject the selected particle."""
        self._require().reject(self._pid(particle_id))
        self._after_edit()

    def flag(self, particle_id=None):
        """Flag the selected particle for a second look."""
        self._require().flag(self._pid(particle_id))
        self._after_edit()

    def set_class(self, particle_class=None, particle_id=None):
        """Set the class of the selected particle (default: the class box)."""
        self._require().set_class(self._pid(particle_id),
                                  particle_class or self.curation_panel.klass.value)
        self._after_edit()

    def set_notes(self, notes=None, particle_id=None):
        """Set the notes of the selected particle (default: the notes box)."""
        self._require().set_notes(self._pid(particle_id),
                                  self.curation_panel.notes.value if notes is None else notes)
        self._after_edit()

    def merge(self, ids=None):
        """Merge particles (default: the selected one and 'merge with'); return the kept id."""
        cur = self._require()
        if ids is None:
            ids = [self._pid(None), int(self.curation_panel.other.value)]
        keep = cur.merge(ids)
        self._particle.value = keep
        self._after_edit()
        return keep

    def split(self, particle_id=None, line=None):
        """Split the selected particle in two (or into its pieces); return the ids."""
        ids = self._require().split(self._pid(particle_id), line=line)
        self._after_edit()
        return ids

    def delete(self, particle_id=None):
        """Delete the selected particle (pixels to background)."""
        self._require().delete(self._pid(particle_id))
        self._after_edit()

    def relabel(self):
        """Renumber the particles 1..n; return ``{old: new}``."""
        mapping = self._require().relabel_sequential()
        pid = int(self._particle.value)
        if pid in mapping:
            self._particle.value = mapping[pid]
        self._after_edit()
        return mapping

    def undo(self):
        """Undo the last edit (any action or paint stroke); return its description."""
        d = self._require().undo()
        self._after_edit()
        return d

    def redo(self):
        """Redo the last undone edit; return its description."""
        d = self._require().redo()
        self._after_edit()
        return d

    def save(self):
        """Save masks and annotations into the dataset folder (atomic, previous kept)."""
        from napari.utils.notifications import show_info

        cur = self._require()
        if cur.path is None:
            raise RuntimeError("this stack is not in a dataset folder: nowhere to save the "
                               "curation (write a dataset with asymflux.io.write_dataset)")
        cur.save()
        self._update_status()
        show_info(f"asymflux: curation saved in {cur.path}")
        return cur.path

    # ------------------------------------------------------------------ actions: export

    def export_table(self, path=None):
        """Write the curated particles table as CSV: every particle analysed as ``asymflux
        analyze`` does with the widget's options, joined with its class, status and notes
        (:func:`asymflux.export.analyze_curation`). ``path``: the *table file* box, else
        ``curated_particles.csv`` in the dataset folder. Atomic; returns the path."""
        from napari.utils.notifications import show_info

        from asymflux import export

        cur = self._require()
        path = export.check_table_path(path or self._export.table_path(cur.path))
        table = export.analyze_curation(self._analysis_dataset(), cur, **self.analysis_options())
        export.write_table(path, table)
        show_info(f"asymflux: {len(table)} curated particles written to {path}")
        return path

    def export_movie(self, path=None, particle_id=None, fps=None):
        """Write the selected particle's registered differential crop (:meth:`analyze_particle`)
        as a movie (:func:`asymflux.export.write_particle_movie`): ``.mp4`` (with
        imageio-ffmpeg) or ``.gif`` coloured like the dI layer, ``.tif`` the dI values.
        ``path``: the *movie file* box, else ``particle_<id>_dI.mp4`` (``.gif`` without
        imageio-ffmpeg) in the dataset folder. Atomic; returns the path."""
        from napari.utils.notifications import show_info

        from asymflux import export

        cur = self._require()
        pid = self._pid(particle_id)
        path = export.check_movie_path(path or self._export.movie_path(pid, cur.path))
        particle = self.analyze_particle(pid, crop=True)
        export.write_particle_movie(path, particle, fps=fps or self._export.fps.value)
        show_info(f"asymflux: movie of particle {pid} written to {path}")
        return path

    def set_time_offset(self, value=None):
        """Put the dataset's cycler table on the camera's clock: cycler time = frame time +
        ``value`` s (default: the *clock offset* field; ``"auto"`` estimates it from the
        particles' mean intensity, :func:`asymflux.analysis.apply_time_offset`). The
        capacity per frame of the plots, the particle tables and the fit follow.

        Returns
        -------
        asymflux.analysis.TimeOffset
        """
        from napari.utils.notifications import show_info

        from asymflux.analysis import apply_time_offset

        text = str(self._time_offset.value if value is None else value).strip() or "0"
        if self.dataset is None or self.dataset.echem is None:
            raise ValueError("clock offset: no cycler data (open a dataset folder with its "
                             "echem.csv first)")
        masks = None
        if self.curation is not None and np.any(self.curation.labels):
            masks = np.asarray(self.curation.labels)
        shifted = apply_time_offset(self.dataset, text, masks=masks)
        capacity = _capacity(shifted, int(self.stack.shape[0]))
        self.dataset, self.capacity_mAh_g = shifted, capacity
        if value is not None:
            self._time_offset.value = text
        show_info(f"asymflux: clock offset {shifted.time_offset} (cycler time = frame time + "
                  "offset)")
        return shifted.time_offset

    def _analysis_dataset(self):
        """The dataset the stack came from, else one made of the stack (no echem)."""
        if self.dataset is not None:
            return self.dataset
        from asymflux.io import Dataset

        name = self.image_layer.name if self.image_layer is not None else "stack"
        return Dataset(stack=self.stack, time_s=self.time_s, pixel_nm=self.pixel_nm,
                       metadata={"name": name})

    # ------------------------------------------------------------------ actions: analysis

    def show_particle(self, particle_id=None):
        """O_COM and O_Li-rich of a particle over time as Points layers, d(capacity) plotted.

        Returns the particle's table (:meth:`analyze_particle`: registered, the rows
        ``asymflux analyze`` writes for it with the same options).
        """
        pid = self._pid(particle_id)
        table = self.analyze_particle(pid).timeseries
        self.particle_table = table
        frames = table["frame"].to_numpy(float)
        com = np.column_stack([frames, table["com_row"], table["com_col"]])
        li = np.column_stack([frames, table["li_rich_row"], table["li_rich_col"]])
        com = com[np.isfinite(com).all(axis=1)]
        li = li[np.isfinite(li).all(axis=1)]
        self.com_layer = self._points("com_layer", com, "O_COM", "yellow", pid)
        self.li_rich_layer = self._points("li_rich_layer", li, "O_Li-rich", "cyan", pid)
        self.particle_panel.plot(table, pid)
        self.quality_panel.show(table, self._current_frame(table),
                                asymmetry_threshold=self.analysis_options().get(
                                    "asymmetry_threshold"))
        return table

    def _current_frame(self, table=None):
        """The viewer's frame (its time slider), if it is one of the table's frames."""
        step = self.viewer.dims.current_step
        frame = int(step[0]) if len(step) >= 3 else None
        if table is not None and frame not in set(table["frame"].astype(int)):
            return None
        return frame

    def _on_frame(self, event=None):
        # the time slider moved: the shown particle's d and flags at the new frame
        if self.particle_table is not None and self._current_frame(self.particle_table) is not None:
            self.quality_panel.show_frame(self._current_frame())

    def particle_quality(self, frame=None) -> dict:
        """What the *quality* panel shows of the particle of :meth:`show_particle` (at
        ``frame``, default: the viewer's): :func:`asymflux.napari._quality.particle_quality`,
        the numbers of ``particles.csv`` and ``timeseries.csv`` for it."""
        if self.particle_table is None:
            raise RuntimeError("show a particle first (Show O_COM / O_Li-rich)")
        return self.quality_panel.show_frame(frame if frame is not None else self._current_frame(
            self.particle_table))

    def _points(self, attr, data, name, color, pid):
        layer = getattr(self, attr)
        meta = {METADATA_KEY: {"role": name, "particle_id": pid}}
        if layer is not None and layer in self.viewer.layers:
            layer.data = data
            layer.metadata.update(meta)
            return layer
        return self.viewer.add_points(data, ndim=3, name=name, face_color=color, border_color="black",
                                      size=5, metadata=meta)

    def fit_blocking(self, particle_id=None, max_arcs=2, rate_mA_g=None):
        """Infer the selected particle's blocked arcs (:meth:`analyze_particle`, then
        :func:`asymflux.fit.fit_analysis`: the same pipeline and fit as ``asymflux fit``)
        and draw them as paths around it; waits
        for the fit (10-60 s). The *Fit blocking* button runs
        :meth:`start_fit_blocking` instead, which keeps napari responsive.

        The charge rate comes from the dataset's metadata (or ``rate_mA_g``). Returns the
        :class:`asymflux.fit.FitResult`, also kept as ``self.fit_result``.
        """
        from napari.utils import progress

        from asymflux.fit import fit_analysis

        pid, mask, args, kwargs = self._fit_inputs(particle_id, max_arcs, rate_mA_g)
        with progress(total=1, desc=f"fitting particle {pid}") as bar:
            result = fit_analysis(*args, **kwargs)
            bar.update(1)
        return self._show_fit(pid, mask, result)

    def start_fit_blocking(self, particle_id=None, max_arcs=2, rate_mA_g=None):
        """:meth:`fit_blocking` with the fit in a background thread (napari's
        ``create_worker``): returns the started worker at once; the arcs are drawn (and
        ``self.fit_result`` set) when it returns, an error becomes a notification."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        from asymflux.fit import fit_analysis

        pid, mask, args, kwargs = self._fit_inputs(particle_id, max_arcs, rate_mA_g)
        worker = create_worker(fit_analysis, *args, **kwargs,
                               _progress={"desc": f"fitting particle {pid}"})
        worker.returned.connect(lambda result: self.run(self._show_fit, pid, mask, result))
        worker.errored.connect(lambda e: show_error(
            f"asymflux: fitting particle {pid} failed: {user_message(None, e)}"))
        self._status.value = f"fitting particle {pid} in the background (10-60 s) …"
        worker.start()
        return worker

    def _fit_inputs(self, particle_id, max_arcs, rate_mA_g):
        """``(particle id, its mask, fit_analysis's args, kwargs)``, read in the GUI thread:
        the particle through :meth:`analyze_particle` (registered, never a rolling
        differential: the blocking model predicts dI relative to the reference)."""
        pid = self._pid(particle_id)
        if rate_mA_g is None:
            rate_mA_g = (self.dataset.metadata.get("rate_mA_g") if self.dataset is not None else None)
        if rate_mA_g is None:
            raise ValueError("unknown charge rate: open a dataset folder with rate_mA_g in its metadata")
        particle = self.analyze_particle(pid, rolling=False, crop=True)
        mask = self.curation.labels == pid
        return pid, mask, (particle,), {"rate_mA_g": float(rate_mA_g), "max_arcs": max_arcs}

    def _show_fit(self, pid, mask, result):
        """Draw a fit's arcs around particle ``pid`` and report it; returns ``result``."""
        from types import SimpleNamespace

        from napari.utils.notifications import show_info

        from asymflux.plots import arc_outline_xy

        self.fit_result = result
        rows, cols = np.nonzero(mask)
        rc, cc = rows.mean(), cols.mean()
        radius = 1.15 * np.sqrt(mask.sum() / np.pi)
        # the arcs as plots draws them (x right, y up), in (row, col): row = rc - y
        x, y = arc_outline_xy(SimpleNamespace(arcs=result.arcs), radius, n=96)
        points = np.column_stack([rc - y, cc + x])
        pieces = (p[np.isfinite(p).all(axis=1)] for p in np.split(points, np.flatnonzero(np.isnan(x))))
        paths = [p for p in pieces if len(p) >= 2]
        meta = {METADATA_KEY: {"role": "fitted arcs", "particle_id": pid, **result.summary()}}
        if self.arcs_layer is not None and self.arcs_layer in self.viewer.layers:
            self.viewer.layers.remove(self.arcs_layer)
        self.arcs_layer = None
        if paths:
            self.arcs_layer = self.viewer.add_shapes(
                paths, shape_type="path", edge_color="magenta", edge_width=2,
                name=f"fitted arcs (particle {pid})", metadata=meta)
        text = ", ".join(f"{a.center_deg:.0f}° × {a.fraction:.2f} at η {a.eta:.2f}" for a in result.arcs)
        message = (f"asymflux: particle {pid}: {result.model}"
                   f"{': ' + text if text else ''} (D × {result.diffusivity_scale:.2g})")
        self._status.value = message
        show_info(message)
        return result

    def add_line_layer(self):
        """Add (or select) the Shapes layer in which to draw kymograph lines."""
        if self.lines_layer is None or self.lines_layer not in self.viewer.layers:
            ndim = self.stack.ndim if self.stack is not None else 3
            self.lines_layer = self.viewer.add_shapes(
                ndim=ndim, name="kymograph lines", edge_color="lime", edge_width=1.5,
                metadata={METADATA_KEY: {"role": "lines"}})
        self.viewer.layers.selection.active = self.lines_layer
        self.lines_layer.mode = "add_line"
        return self.lines_layer

    def kymograph(self, line=None):
        """dI along the last line of the lines layer, for every frame, as an image layer
        (the registered dI movie of :meth:`show_differential`).

        The image has x = position along the line (pixels), y = frame; it is placed to
        the right of the field of view. Returns the layer (``metadata["asymflux"]`` has
        ``distance_nm``, ``start`` and ``end``).
        """
        from asymflux.analysis import line_kymograph

        if self.stack is None:
            raise RuntimeError("no stack attached: open a dataset or pick a stack layer first")
        if line is None:
            layer = self.lines_layer
            if layer is None or layer not in self.viewer.layers or len(layer.data) == 0:
                raise ValueError("draw a line first (Draw line, then click-drag on the image)")
            line = np.asarray(layer.data[-1], dtype=float)
            line = line[[0, -1], -2:]
        start, end = np.asarray(line, dtype=float).reshape(2, 2)
        kymo, distance_nm = line_kymograph(self._dI(), start, end, pixel_nm=self.pixel_nm)
        x = symmetric_limit(kymo)
        meta = {METADATA_KEY: {"role": "kymograph", "distance_nm": distance_nm.tolist(),
                               "start": start.tolist(), "end": end.tolist()}}
        translate = (0.0, float(self.stack.shape[-1] + 10))
        if self.kymograph_layer is not None and self.kymograph_layer in self.viewer.layers:
            self.kymograph_layer.data = kymo
            self.kymograph_layer.contrast_limits = (-x, x)
            self.kymograph_layer.metadata.update(meta)
        else:
            self.kymograph_layer = self.viewer.add_image(
                kymo, name="kymograph", colormap=diverging_colormap(), contrast_limits=(-x, x),
                translate=translate, metadata=meta)
        return self.kymograph_layer
