"""The particle-curation dock widget: a thin magicgui view on a :class:`~._session.CurationSession`.

Every button calls a named method (``detect``, ``accept``, ``merge``, ``undo``,
``save``, ...) that can be called from a script or a test and hands off to the Qt-free
session (:mod:`._session`: the stack, its dataset, the :class:`asymflux.curation.Curation`,
the chosen particle, the analysis choices and every action). The model holds the truth
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
from pathlib import Path

import numpy as np
from magicgui.widgets import Container, Label

from asymflux.export import symmetric_limit

from ._curation_panel import CurationPanel
from ._data_panel import DataPanel
from ._display import button_row, diverging_colormap
from ._export_panel import ExportPanel
from ._options_panel import OptionsPanel
from ._particle_panel import ParticlePanel
from ._reader import METADATA_KEY, user_message
from ._session import CurationSession

__all__ = ["CurationWidget"]


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

    A thin view on a :class:`~._session.CurationSession` (:attr:`session`, Qt-free): each
    action method hands off to it in one line (after taking pixels painted in napari into
    it); its events redraw the labels layer, the particle selector and the status line.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari.

    Attributes
    ----------
    session : CurationSession
        The model: stack, dataset, curation, chosen particle, analysis choices, actions.
    curation, dataset, stack, pixel_nm, time_s, capacity_mAh_g, particle_table, fit_result
        The session's (read-only views).
    labels_layer, image_layer, dI_layer, kymograph_layer : napari layers or None
    com_layer, li_rich_layer : napari Points layers or None
        O_COM and O_Li-rich of the particle shown by :meth:`show_particle`, as
        (frame, row, col) points.
    """

    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.session = CurationSession()
        self.image_layer = None
        self.labels_layer = None
        self.dI_layer = None
        self.com_layer = None
        self.li_rich_layer = None
        self.lines_layer = None
        self.kymograph_layer = None
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
        self._status = Label(label="", value=self.session.status_text())
        # every control in a scrollable body (:func:`_scroll_area`): at its natural width,
        # ~570 px, the dock squeezed the image canvas on a 1600 x 1000 screen
        self._body = Container(labels=True)
        self._body.extend([self.data_panel, self.options_panel, detect_row, self.curation_panel,
                           self.particle_panel, self._export, self._status])
        self._particle.changed.connect(self._on_particle_spin)
        for control in self.options_panel:
            control.changed.connect(self._on_options)
        self._on_options()
        self.session.connect(self._on_session)
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

    # ------------------------------------------------------------------ the session's state

    curation = property(lambda self: self.session.curation)
    dataset = property(lambda self: self.session.dataset)
    stack = property(lambda self: self.session.stack)
    pixel_nm = property(lambda self: self.session.pixel_nm)
    time_s = property(lambda self: self.session.time_s)
    capacity_mAh_g = property(lambda self: self.session.capacity_mAh_g)
    particle_table = property(lambda self: self.session.particle_table)
    fit_result = property(lambda self: self.session.fit_result)

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

    def _ready(self) -> CurationSession:
        """The session, with the pixels painted in the labels layer taken in."""
        if self.session.curation is None or self.labels_layer is None:
            raise RuntimeError("no stack attached: open a dataset or pick a stack layer first")
        if self.labels_layer not in self.viewer.layers:
            self.viewer.add_layer(self.labels_layer)
        self._pull()
        return self.session

    def _require(self):
        return self._ready().curation

    def _on_options(self, *_):
        self.session.choices = self.options_panel.choices()
        self.session.cache = bool(self.options_panel.cache.value)

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
        unsaved edits) is loaded from it and saved back into it
        (:meth:`CurationSession.load`).
        """
        from napari.layers import Labels
        from napari.utils.notifications import show_info, show_warning

        if self.curation is not None and self.labels_layer is not None:
            self._pull()  # pixels painted but not yet taken in are autosaved before switching
        layer = layer if layer is not None else self._source.value
        if layer is None:
            raise ValueError("no stack layer: open a dataset first")
        if layer.ndim != 3:
            raise ValueError(f"layer {layer.name!r} is not a (time, row, col) stack")
        meta = self._meta(layer)
        # everything is read and checked first: a bad input changes nothing in the widget
        curation = self.session.load(
            layer.data, path=meta.get("path"),
            source=meta.get("source") or meta.get("path") or f"layer {layer.name!r}",
            name=layer.name, pixel_nm=meta.get("pixel_nm"),
            time_offset=self._time_offset.value)
        self.image_layer = layer
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
                np.array(curation.labels), name=name, opacity=0.6,
                metadata={METADATA_KEY: {**meta, "role": "particles"}})
        self._connect_labels(labels)
        self._push()
        if self._source.value is not layer:
            with contextlib.suppress(ValueError):
                self._source.reset_choices()
                self._source.value = layer
        if curation.recovered_from is not None:
            show_warning(f"asymflux: restored unsaved curation from {curation.recovered_from}"
                         " (Save to keep it)")
        elif meta.get("path") is None:
            show_info("asymflux: this stack is not in a dataset folder; curation cannot be saved")
        self._update_status()
        return curation

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
        self._pull()  # the session's "labels" event refreshes features and status

    def _pull(self) -> bool:
        """Take pixels edited in the layer (napari brush, fill, napari undo) into the model."""
        if self.curation is None or self.labels_layer is None:
            return False
        data = np.asarray(self.labels_layer.data)
        if data.shape != self.curation.labels.shape:
            raise ValueError(f"labels layer {self.labels_layer.name!r} has shape {data.shape}, "
                             f"expected {self.curation.labels.shape}")
        return self.session.take_labels(data)

    def _on_session(self, what):
        """The session changed: mirror it (labels layer, particle selector, status)."""
        if what == "labels" and self.labels_layer is not None:
            self._push()
            self._update_status()
        elif what == "particle" and int(self._particle.value) != self.session.particle_id:
            self._particle.value = self.session.particle_id
        elif what == "saved":
            self._update_status()

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
        self.session.select(int(self._particle.value))
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
        self.curation_panel.show_row(self.session.selected_row())

    def _update_status(self):
        if self.curation is not None:
            self._status.value = self.session.status_text()

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

        text = str(self._time_offset.value if value is None else value).strip() or "0"
        offset = self.session.set_time_offset(text)
        if value is not None:
            self._time_offset.value = text
        show_info(f"asymflux: clock offset {offset} (cycler time = frame time + offset)")
        return offset

    def analysis_options(self, *, rolling=True) -> dict:
        """The user's choices (:class:`~._options_panel.OptionsPanel`) as keyword arguments
        of :func:`asymflux.analysis.analyze_dataset`, through
        :func:`asymflux.analysis.analysis_options`: the options and defaults of ``asymflux
        analyze`` (*normalise illumination* ``auto``, *Register drift* on). Without
        ``rolling``, never a rolling differential (what the fit uses)."""
        return self.session.analysis_options(rolling=rolling)

    def differential_options(self, *, rolling=True) -> dict:
        """The dI settings as keyword arguments of
        :func:`asymflux.analysis.registered_differential`
        (:meth:`CurationSession.differential_options`)."""
        return self.session.differential_options(rolling=rolling)

    def analyze_particle(self, particle_id=None, *, rolling=True, crop=False):
        """The selected particle through the dataset pipeline of ``asymflux analyze``
        (:meth:`CurationSession.analyze_particle`)."""
        return self._ready().analyze_particle(particle_id, rolling=rolling, crop=crop)

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
        dI, key = self.session.movie(options)
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

    def _dI(self, *, rolling=True):
        """The registered dI movie of the current settings (the dI layer's, if current)."""
        options = self.differential_options(rolling=rolling)
        layer = self.dI_layer
        if layer is not None and layer in self.viewer.layers and \
                layer.metadata.get(METADATA_KEY, {}).get("options") == \
                self.session.movie_key(options):
            return layer.data
        return self.session.movie(options)[0]

    def detect(self, min_area_px=None):
        """Detect particles on the reference image (mean of the first frames) into the labels.

        Replaces all labels and annotations as one undoable step
        (:meth:`CurationSession.detect`).
        """
        return self._ready().detect(min_area_px)

    # ------------------------------------------------------------------ actions: curation

    def accept(self, particle_id=None):
        """Accept the selected particle."""
        self._ready().accept(particle_id)

    def reject(self, particle_id=None):
        """Reject the selected particle."""
        self._ready().reject(particle_id)

    def flag(self, particle_id=None):
        """Flag the selected particle for a second look."""
        self._ready().flag(particle_id)

    def set_class(self, particle_class=None, particle_id=None):
        """Set the class of the selected particle (default: the class box)."""
        self._ready().set_class(particle_class or self.curation_panel.klass.value, particle_id)

    def set_notes(self, notes=None, particle_id=None):
        """Set the notes of the selected particle (default: the notes box)."""
        self._ready().set_notes(self.curation_panel.notes.value if notes is None else notes,
                                particle_id)

    def merge(self, ids=None):
        """Merge particles (default: the selected one and 'merge with'); return the kept id."""
        session = self._ready()
        if ids is None:
            ids = [session.pid(), int(self.curation_panel.other.value)]
        return session.merge(ids)

    def split(self, particle_id=None, line=None):
        """Split the selected particle in two (or into its pieces); return the ids."""
        return self._ready().split(particle_id, line=line)

    def delete(self, particle_id=None):
        """Delete the selected particle (pixels to background)."""
        self._ready().delete(particle_id)

    def relabel(self):
        """Renumber the particles 1..n; return ``{old: new}``."""
        return self._ready().relabel()

    def undo(self):
        """Undo the last edit (any action or paint stroke); return its description."""
        return self._ready().undo()

    def redo(self):
        """Redo the last undone edit; return its description."""
        return self._ready().redo()

    def save(self):
        """Save masks and annotations into the dataset folder (atomic, previous kept)."""
        from napari.utils.notifications import show_info

        path = self._ready().save()
        show_info(f"asymflux: curation saved in {path}")
        return path

    # ------------------------------------------------------------------ actions: export

    def export_table(self, path=None):
        """Write the curated particles table as CSV: every particle analysed as ``asymflux
        analyze`` does with the widget's options, joined with its class, status and notes
        (:func:`asymflux.export.analyze_curation`). ``path``: the *table file* box, else
        ``curated_particles.csv`` in the dataset folder. Atomic; returns the path."""
        from napari.utils.notifications import show_info

        session = self._ready()
        path, table = session.export_table(path or self._export.table_path(session.curation.path))
        show_info(f"asymflux: {len(table)} curated particles written to {path}")
        return path

    def export_movie(self, path=None, particle_id=None, fps=None):
        """Write the selected particle's registered differential crop (:meth:`analyze_particle`)
        as a movie (:func:`asymflux.export.write_particle_movie`): ``.mp4`` (with
        imageio-ffmpeg) or ``.gif`` coloured like the dI layer, ``.tif`` the dI values.
        ``path``: the *movie file* box, else ``particle_<id>_dI.mp4`` (``.gif`` without
        imageio-ffmpeg) in the dataset folder. Atomic; returns the path."""
        from napari.utils.notifications import show_info

        session = self._ready()
        pid = session.pid(particle_id)
        path = session.export_movie(path or self._export.movie_path(pid, session.curation.path),
                                    pid, fps=fps or self._export.fps.value)
        show_info(f"asymflux: movie of particle {pid} written to {path}")
        return path

    # ------------------------------------------------------------------ actions: analysis

    def show_particle(self, particle_id=None):
        """O_COM and O_Li-rich of a particle over time as Points layers, d(capacity) plotted.

        Returns the particle's table (:meth:`analyze_particle`: registered, the rows
        ``asymflux analyze`` writes for it with the same options).
        """
        session = self._ready()
        pid = session.pid(particle_id)
        table = session.particle_timeseries(pid)
        com, li = session.centre_points(table)
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

        pid, mask, args, kwargs = self._ready().fit_inputs(particle_id, max_arcs, rate_mA_g)
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

        pid, mask, args, kwargs = self._ready().fit_inputs(particle_id, max_arcs, rate_mA_g)
        worker = create_worker(fit_analysis, *args, **kwargs,
                               _progress={"desc": f"fitting particle {pid}"})
        worker.returned.connect(lambda result: self.run(self._show_fit, pid, mask, result))
        worker.errored.connect(lambda e: show_error(
            f"asymflux: fitting particle {pid} failed: {user_message(None, e)}"))
        self._status.value = f"fitting particle {pid} in the background (10-60 s) …"
        worker.start()
        return worker

    def _show_fit(self, pid, mask, result):
        """Draw a fit's arcs around particle ``pid`` and report it; returns ``result``."""
        from napari.utils.notifications import show_info

        self.session.set_fit(result)
        paths = CurationSession.arc_paths(mask, result)
        meta = {METADATA_KEY: {"role": "fitted arcs", "particle_id": pid, **result.summary()}}
        if self.arcs_layer is not None and self.arcs_layer in self.viewer.layers:
            self.viewer.layers.remove(self.arcs_layer)
        self.arcs_layer = None
        if paths:
            self.arcs_layer = self.viewer.add_shapes(
                paths, shape_type="path", edge_color="magenta", edge_width=2,
                name=f"fitted arcs (particle {pid})", metadata=meta)
        message = f"asymflux: {CurationSession.fit_message(pid, result)}"
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
        if self.stack is None:
            raise RuntimeError("no stack attached: open a dataset or pick a stack layer first")
        if line is None:
            layer = self.lines_layer
            if layer is None or layer not in self.viewer.layers or len(layer.data) == 0:
                raise ValueError("draw a line first (Draw line, then click-drag on the image)")
            line = np.asarray(layer.data[-1], dtype=float)
            line = line[[0, -1], -2:]
        start, end = np.asarray(line, dtype=float).reshape(2, 2)
        kymo, distance_nm = self.session.kymograph(start, end, self._dI())
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
