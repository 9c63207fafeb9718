"""Model explorer: the diffusion model beside a measured particle (Lun et al. 2025, Fig. 4, 5b-d)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import param

from .. import plots
from . import _bokeh as B
from . import _compute as C
from . import _errors as E
from . import _flags as F
from . import _jobs as J
from . import _pool as P
from . import _runtime as R
from . import _widgets as W
from ._bokehjs_patch import skip_unchanged_stylesheets
from ._settings import (  # noqa: F401 - RATE_LABELS, SURFACE_MODELS: names of this module too
    DSCALE_OPTIONS,
    MODEL_SETTINGS,
    RATE_LABELS,
    SURFACE_MODELS,
    TABLE_KINDS,
    ExplorerSettings,
)
from ._settings import model_settings as _model_settings

PAGE_WIDTH = 1480
"""Width of the page in screen pixels (controls 340 + plots 1120 + margins)."""

FINE, PREVIEW = "fine", "preview"
"""The last item of a θ-map key: the run on ``_compute.MAPS_MESH`` or the coarse preview on
``_compute.PREVIEW_MESH`` shown while it runs."""

OFFSET_CURVES = ("measured", "simulated")
"""The curves of d(capacity), in drawing order (each also when it has no rows: the figure is
updated in place and keeps its layers)."""

QUALITY_CURVES = ("measured",)
"""The curves of d(capacity) drawn with their band (the dI threshold ± the pixel noise) and
their flagged frames (:func:`asymflux.plots.offset_vs_capacity`'s ``quality``)."""

PREVIEW_TAG = " (coarse preview)"
"""Appended to the titles of the plots that show the coarse preview."""


def _timing(t0: float, what: str, detail=None) -> None:
    """With :data:`asymflux.views._runtime.TIMING_ENV` set: print ``what`` (and ``detail``)
    and the seconds since ``t0`` (``time.perf_counter``) to stderr; nothing is formatted
    otherwise."""
    if R.timing_on():
        what = what if detail is None else f"{what} {detail}"
        print(f"asymflux timing: {what} at {time.perf_counter() - t0:.3f} s", file=sys.stderr,
              flush=True)


PREFETCH_ON = ("eta", "blocked_fraction", "angle_deg", "rate_mA_g", "diffusivity_scale",
               "surface_model", "film_resistance_ohm_m2", "pixel_nm", "ocv_table",
               "diffusivity_table")
"""The settings whose change starts the runs the plots need (``film_log10`` follows
``film_resistance_ohm_m2``)."""


def _film_formatter():
    """The film slider's label: its position log10(R) shown as R in Ω m²."""
    from bokeh.models import CustomJSTickFormatter

    return CustomJSTickFormatter(code="return Number(Math.pow(10, tick).toPrecision(3)) + ' Ω m²'")


def _dynamic(bound):
    """A HoloViews DynamicMap over a function bound (``pn.bind``) to parameters."""
    import holoviews as hv

    plots.use_backend("bokeh")
    return hv.DynamicMap(bound)


CANVAS = {"plot.output_backend": "canvas"}
"""Bokeh options of the explorer's figures: drawn on a 2-D canvas. HoloViews asks for WebGL by
default, which a browser without a GPU emulates and then copies to the page, and these
figures are small (images of 60 x 60 pixels, curves of a few hundred points): in headless
chromium the copies alone took 0.35 s of every slider change."""


def _framewise(obj):
    """Axis and colour ranges from each new frame (the plots are updated in place), drawn
    on a canvas (:data:`CANVAS`)."""
    import holoviews as hv

    for el in obj.traverse(lambda x: x, [hv.Element]):  # in place: the plots are built anew
        el.opts(framewise=True, backend_opts=CANVAS, clone=False)
    return obj


def _render_once(element, **opts):
    """The Bokeh figure of a HoloViews figure builder's ``element`` (options ``opts``,
    drawn on a canvas), to be updated in place by :func:`_put`."""
    import holoviews as hv

    plots.use_backend("bokeh")
    return hv.render(_framewise(element.opts(**opts)), backend="bokeh")


def _layer_data(el):
    """What HoloViews' Bokeh plot of the layer ``el`` puts into its data source (the same
    columns, computed the same way: see ``holoviews.plotting.bokeh``'s ``QuadMeshPlot``);
    a vertical line's location."""
    import holoviews as hv
    from holoviews.core.util import cartesian_product, dimension_sanitizer

    if isinstance(el, hv.VLine):
        return float(el.data)
    if isinstance(el, hv.QuadMesh):  # 1-D coordinates: quads, hover at their centres
        x, y, z = el.dimensions()[:3]
        xc, yc = (el.interface.coords(el, d, edges=True, ordered=True) for d in (x, y))
        x0, y0 = cartesian_product([xc[:-1], yc[:-1]], copy=True)
        x1, y1 = cartesian_product([xc[1:], yc[1:]], copy=True)
        return {"left": x0, "right": x1,
                dimension_sanitizer(z.name): el.dimension_values(z, flat=False).T.flatten(),
                "bottom": y0, "top": y1,
                dimension_sanitizer(x.name): el.dimension_values(x),
                dimension_sanitizer(y.name): el.dimension_values(y)}
    return {dimension_sanitizer(d.name): el.dimension_values(d) for d in el.kdims + el.vdims}


def _particle_name(particle_id) -> str:
    """``"particle 3"``, or ``"no particle"`` when none is shown (a dataset that could not be
    read: the alert says why) -- never ``"particle None"`` in a title."""
    return "no particle" if particle_id is None else f"particle {int(particle_id)}"


def _put(fig, element, title) -> None:
    """Replace the data of the figure ``fig`` (:func:`_render_once` of the same builder) by
    ``element``'s, layer by layer, and its title: the update in place of the θ maps and
    curves (a few ms), instead of a new figure."""
    import holoviews as hv

    layers = list(element) if isinstance(element, hv.Overlay) else [element]
    if len(layers) != len(fig.renderers):
        raise ValueError(f"{title}: {len(layers)} layers for {len(fig.renderers)} renderers")
    for renderer, el in zip(fig.renderers, layers, strict=True):
        data = _layer_data(el)
        if isinstance(data, float):
            renderer.location = data
        else:
            renderer.data_source.data = data
    fig.title.text = title


def _put_layers(fig, layers, title) -> None:
    """As :func:`_put`, from a builder's layers as data (:func:`asymflux.plots.fig5b_layers`,
    :func:`~asymflux.plots.offset_layers`: the columns HoloViews' Bokeh plots of those
    layers hold; a vertical line's location), without building the HoloViews elements
    (~0.1 s of the server's loop per update for Fig. 5b)."""
    if len(layers) != len(fig.renderers):
        raise ValueError(f"{title}: {len(layers)} layers for {len(fig.renderers)} renderers")
    for renderer, (kind, _label, data) in zip(fig.renderers, layers, strict=True):
        if kind == "vline":
            renderer.location = float(data)
        elif kind == "band":  # a patch, as HoloViews' Area draws it
            x, y = plots.band_xy(*(data[c] for c in data.columns[:3]))
            renderer.data_source.data = {"x": x, "y": y}
        else:
            renderer.data_source.data = {c: data[c].to_numpy() for c in data.columns}
    fig.title.text = title


WHITE_RGBA = np.uint32(0xFFFFFFFF)
"""White, as Bokeh's packed RGBA (the θ maps' NaN colour)."""


def _rgba_palette(palette) -> np.ndarray:
    """``#rrggbb`` colours as Bokeh's packed RGBA (uint32, red in the lowest byte)."""
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in palette], dtype=np.uint32)
    return rgb[:, 0] | rgb[:, 1] << 8 | rgb[:, 2] << 16 | np.uint32(255) << 24


def _rgba_image(values, low, high, lut) -> np.ndarray:
    """``values`` (row, col) coloured as Bokeh's ``LinearColorMapper(low, high)`` of palette
    ``lut`` (:func:`_rgba_palette`) colours them: ``high`` and above the last colour, below
    ``low`` the first, equal steps between; NaN white. Packed RGBA (uint32)."""
    v = np.asarray(values, dtype=float)
    n = lut.size
    idx = np.zeros(v.shape)
    if low is not None and high is not None:
        with np.errstate(invalid="ignore"):
            if high > low:
                idx = np.floor((v - low) / (high - low) * n)
            idx = np.where(v >= high, n - 1, idx)  # as BokehJS: the top first
    idx = np.clip(np.nan_to_num(idx, nan=0.0, posinf=n - 1, neginf=0.0), 0, n - 1)
    return np.where(np.isnan(v), WHITE_RGBA, lut[idx.astype(np.intp)]).astype(np.uint32)


def _echem_voltage(ds) -> pd.DataFrame | None:
    """``capacity_mAh_g, voltage_V`` of a dataset's echem table (finite rows), or None."""
    e = getattr(ds, "echem", None)
    if e is None or "voltage_V" not in e or "capacity_mAh_g" not in e:
        return None
    t = e[["capacity_mAh_g", "voltage_V"]].apply(pd.to_numeric, errors="coerce").dropna()
    return t.reset_index(drop=True) if len(t) else None


def _readable_offset(text):
    """A clock offset typed in the page (:func:`_compute.time_offset_value`), None when it
    cannot be read (the page's alert says why)."""
    try:
        return C.time_offset_value(text)
    except ValueError:
        return None


def _warnings_markdown(problems) -> str:
    """The analysis' warnings (``particles.attrs["warnings"]``, what ``asymflux analyze``
    prints) as Markdown lines under the dataset's description; empty when there are none."""
    lines = list(dict.fromkeys(" ".join(str(w).split()) for w in problems))
    if not lines:
        return ""
    return "\n\n**Warning:** " + "\n\n**Warning:** ".join(lines)


class ModelExplorer(pn.viewable.Viewer):
    """Sliders for the surface blocking and the rate; θ maps at 5/10/15/20 min (Fig. 4), the
    simulated and measured d(capacity) and line-cut kymographs (Fig. 5c, d) of a particle
    of a dataset, and Li extracted against rate (Fig. 5b) with the current setting marked.
    The surface is the paper's prescribed flux ratio η or a kinetic one (Butler-Volmer
    through a film of resistance ``film_resistance_ohm_m2``: ``surface_model``); the
    θ maps' run also gives the arc's flux ratio and V(t), drawn beside the dataset's measured
    voltage (:meth:`curves`, :meth:`measured_voltage`). Every run uses the user's OCV and
    D(θ) tables when uploaded (:meth:`load_table`, the CSV files of ``asymflux simulate
    --ocv / --diffusivity``; :meth:`reset_material`), drawn and named on the page.

    The model's settings are :attr:`settings`, a Panel-free
    :class:`~asymflux.views._settings.ExplorerSettings`: pass one, or its parameters, to
    the constructor (``ModelExplorer(eta=0.7)``), or set them later
    (``view.settings.eta = 0.7``). The sliders are made from its parameters
    (``Widget.from_param``): a slider sets its parameter when the handle is released
    (``value_throttled``), and follows it. The data behind each plot come from the methods
    :meth:`theta_maps`, :meth:`rate_table`, :meth:`comparison` (cached, in worker processes).
    """

    settings = param.ClassSelector(class_=ExplorerSettings, doc=(
        "The model's settings (the sliders' parameters)."))
    dataset = param.String(default="aged",
                           doc="Demo dataset name, or path of a dataset folder / zip.")
    particle_id = param.Integer(default=None, allow_None=True,
                                doc="Particle of the dataset (default: the first one).")
    time_offset = param.String(default="", doc=(
        "The dataset's camera-cycler clock offset, s (cycler time = frame time + offset), or "
        "'auto' (estimated, as `asymflux analyze --time-offset-s auto`); empty: the "
        "dataset's own. A change analyses the dataset again; the sliders are untouched."))
    particle_arg = param.String(default=None, allow_None=True, doc=(
        "The page's ``?particle=`` argument as typed: checked against the dataset's particles "
        "when it is loaded (a clear message when it is not one of them)."))
    allow_large = param.Boolean(default=False, doc=(
        "Analyse a stack above the dashboard's size limit (_jobs.max_values()); set by the "
        "'Analyse anyway' button, reset when the dataset changes."))
    maps_ready = param.Parameter(default=None, precedence=-1, doc=(
        "(η, fraction, angle, rate, D scale, film, material, 'fine' or 'preview') whose θ "
        "maps and curves are computed: the map plots and the V(t) and flux-ratio plots "
        "follow it."))
    twin_ready = param.Parameter(default=None, precedence=-1, doc=(
        "(η, fraction, angle, rate, D scale, film, material, dataset, particle, clock "
        "offset) whose simulated twin is computed: d(capacity) and the simulated kymograph "
        "follow it."))
    rate_ready = param.Parameter(default=None, precedence=-1, doc=(
        "(η, fraction, rate, D scale, film, material) whose Fig. 5b points are computed: "
        "Fig. 5b follows it."))

    def __init__(self, settings: ExplorerSettings | None = None, **params):
        B.load_extensions()  # this page's own: it may be the first one served
        model = {k: params.pop(k) for k in list(params)
                 if k in ExplorerSettings.param and k != "name"}
        # a rate given here (or with the settings) is kept when the first dataset loads;
        # otherwise, and for every dataset loaded later, the model takes the dataset's rate
        self._keep_rate = "rate_mA_g" in model or settings is not None
        if settings is None:
            settings = ExplorerSettings(**model)
        elif model:
            settings.param.update(model)
        super().__init__(settings=settings, **params)
        # False once the page's session has ended (its Bokeh models are then destroyed): a
        # run finishing later publishes nothing, and no new runs are started for it
        self._open = True
        R.on_session_end(self._page_closed)
        # dataset loading off the event loop (a worker process in a server): the alert, the
        # progress and Cancel, 'Analyse anyway' for a stack above the size limit, the upload
        self.loader = W.DatasetLoader(on_analyse_anyway=self._analyse_anyway,
                                      on_upload=lambda folder: setattr(self, "dataset", folder),
                                      on_upload_error=lambda e, name: self._show_error(
                                          e, source=name))
        self.alert, self.progress = self.loader.alert, self.loader.progress
        self.large_button, self.upload = self.loader.large_button, self.loader.upload
        self.notice = pn.pane.Alert("", alert_type="warning", visible=False, width=1000)
        # the particle asked for (page argument or constructor), checked when the dataset is
        # loaded; particle_id stays None until then
        self._requested = self.particle_arg if self.particle_arg is not None else (
            None if self.particle_id is None else str(self.particle_id))
        self.particle_id = None
        # the sliders, made from the settings' parameters: each sets its parameter when the
        # handle is released (throttled) and follows it; the film resistance on a log scale
        # (its log10 parameter, shown in Ω m²) takes the η slider's place when the surface
        # switch is on kinetic
        S = self.settings.param
        self.eta_slider = pn.widgets.FloatSlider.from_param(S.eta, format="0.00",
                                                            throttled=True)
        self.fraction_slider = pn.widgets.FloatSlider.from_param(
            S.blocked_fraction, format="0.00", throttled=True)
        # any rate: drag within RATE_SLIDER_MA_G or type one; the paper's rates one click away
        self.rate_slider = pn.widgets.EditableFloatSlider.from_param(S.rate_mA_g, format="0.[0]",
                                                                     throttled=True)
        self.rate_buttons = pn.Row(*(self._rate_button(label, rate)
                                     for label, rate in RATE_LABELS.items()), width=320)
        self.angle_slider = pn.widgets.FloatSlider.from_param(S.angle_deg, format="0",
                                                              throttled=True)
        self.dscale_slider = pn.widgets.DiscreteSlider.from_param(S.diffusivity_scale,
                                                                  throttled=True)
        self.film_slider = pn.widgets.FloatSlider.from_param(S.film_log10,
                                                             format=_film_formatter(),
                                                             throttled=True)
        self.surface_switch = pn.widgets.RadioButtonGroup.from_param(
            S.surface_model, orientation="vertical", width=300)
        self.sliders = {
            "eta": self.eta_slider, "blocked_fraction": self.fraction_slider,
            "rate_mA_g": self.rate_slider, "angle_deg": self.angle_slider,
            "diffusivity_scale": self.dscale_slider, "film_resistance_ohm_m2": self.film_slider,
        }
        self._show_surface_widgets()
        self.dataset_input = pn.widgets.TextInput.from_param(
            self.param.dataset, name="dataset (demo name or folder path; Enter to load)")
        self.offset_input = pn.widgets.TextInput.from_param(
            self.param.time_offset, name="clock offset (s, or auto; empty: none; Enter)",
            placeholder="cycler time = frame time + offset")
        self.particle_select = pn.widgets.Select(label="particle", options=[])
        self.fit_button = pn.widgets.Button(name="Fit blocking of this particle (~30 s)",
                                            button_type="primary", width=300)
        self.fit_button.on_click(self.fit_particle_async)
        self._fit_info = pn.pane.Markdown("", width=320)
        # the chosen particle's classification with its confidence and its quality flags
        # (its row of the dataset's particles.csv), under the particle selector
        self._particle_quality = pn.pane.Markdown("", width=320)
        self._particles = None
        self.fit_result = None
        self._dataset_info = pn.pane.Markdown("", width=320)
        # the user's material: an OCV and a D(θ) table (CSV, as `asymflux simulate --ocv /
        # --diffusivity`), the curves in use drawn, the built-in set one click away
        self.table_uploads = {kind: pn.widgets.FileInput(accept=".csv", multiple=False,
                                                         width=200)
                              for kind in TABLE_KINDS}
        for kind, w in self.table_uploads.items():
            w.param.watch(lambda e, kind=kind: self._table_uploaded(kind, e), "value")
        self.material_reset = pn.widgets.Button(label="Built-in OCV and D(θ)", width=300)
        self.material_reset.on_click(lambda _e: self.reset_material())
        self.material_info = pn.pane.Markdown("", width=320)
        self._table_error = False  # the alert shows a table's error
        self.material_pane = self._make_material_figure()
        self.settings.param.watch(self._show_material, ["ocv_table", "diffusivity_table"])
        self._show_material()

        # V(t) and the arc's flux ratio: Bokeh figures drawn once by their asymflux.plots
        # builders, whose data sources are then updated in place (a few ms a change)
        self.curves_info = pn.pane.Markdown("", width=1000, margin=(0, 10))
        self._curves_key = None
        self.flux_pane, self.voltage_pane = self._make_curve_plots()
        self._maps_key = None
        self._make_map_figures()
        # d(capacity), the simulated line-cut and Fig. 5b: also Bokeh figures drawn once by
        # their builders and then updated in place (rebuilding them as HoloViews plots cost
        # 0.25-0.34 s of the server's loop each a change)
        self._twin_key = self._rate_key = None
        self._make_twin_and_rate_figures()

        self.particle_select.param.watch(self._on_particle, "value")
        self.param.watch(self._show_particle_quality, "particle_id")
        self.param.watch(self._on_dataset, "dataset")
        self.param.watch(self._on_time_offset, "time_offset")
        self._load_particles()

        # Every plot's data is updated in place (no new Bokeh figures to build and send): the
        # θ maps, the two curves, d(capacity), the simulated line-cut and Fig. 5b are Bokeh
        # figures whose data sources are replaced, the measured line-cut a HoloViews
        # DynamicMap (it changes only with the dataset or the particle). A change of the
        # settings (a slider's release) starts, side by side in worker processes, every
        # simulation the change needs (_pool.prefetch); in a server each kind of plot is
        # then updated as soon as its own runs are done (the *_ready parameters, set from the event loop), so a quick
        # plot does not wait behind a slow one and the server keeps answering meanwhile;
        # the θ maps and curves first show a coarse preview when theirs is done first.
        self.settings.param.watch(self._prefetch, list(PREFETCH_ON))
        self.param.watch(self._prefetch, ["dataset", "particle_id"])
        self.settings.param.watch(self._show_surface_widgets, "surface_model")
        measured = [self.param.dataset, self.param.particle_id, self.param.time_offset]
        self.maps_title = pn.pane.Markdown("", margin=(0, 10), width=1000)
        self._publish(self._keys(self.settings.model_settings()))
        self.map_panes = [pn.pane.Bokeh(f, margin=0, name=f"theta_map_{m:g}min")
                          for f, m in zip(self._map_figs, C.FIG4_MINUTES, strict=True)]
        self.offset_pane = pn.pane.Bokeh(self._offset_fig, name="offset")
        self.measured_pane = pn.pane.HoloViews(
            _dynamic(pn.bind(self._measured_kymograph, *measured)), name="measured_kymograph")
        self.simulated_pane = pn.pane.Bokeh(self._sim_kymo_fig, name="simulated_kymograph")
        self.rate_pane = pn.pane.Bokeh(self._rate_fig, name="rate_capability")
        self.downloads = self._make_downloads()  # file name -> button: PNG/figure, CSV/table
        # the runs of the settings' neighbours (previews, Fig. 5b's curves) once the page is
        # open, as the dataset (see _load_particles): a page that never connects starts none
        if R.in_server():
            pn.state.onload(self._prefetch)
        else:
            self._prefetch()
        skip_unchanged_stylesheets()  # the browser's style work per update (in a server)

    # ------------------------------------------------------------------ settings

    def _show_surface_widgets(self, *_events):
        """The η slider for the prescribed surface, the film slider for the kinetic one."""
        kinetic = self.settings.kinetic
        self.eta_slider.visible = not kinetic
        self.film_slider.visible = kinetic

    @property
    def kinetic(self) -> bool:
        """True when the surface is kinetic (Butler-Volmer through a film)."""
        return self.settings.kinetic

    # ------------------------------------------------------------------ material

    def load_table(self, kind: str, data: bytes, filename: str) -> bool:
        """The upload of a table (``kind`` ``"ocv"`` or ``"diffusivity"``): used by every
        run from now on (:meth:`ExplorerSettings.load_table`, the readers of ``asymflux
        simulate --ocv / --diffusivity``). A bad file changes nothing: its error (naming
        the file, the column and what was expected) goes to the page's alert. Returns
        whether the table is used."""
        what = TABLE_KINDS[kind]
        try:
            self.settings.load_table(kind, data, filename)
        except ValueError as e:
            E.log_exception(e)
            self.alert.object = (f"**Cannot use this {what}** (the runs keep "
                                 f"{'their' if self.settings.material else 'the built-in'} "
                                 f"curves): {' '.join(str(e).split())}")
            self.alert.visible = self._table_error = True
            return False
        except Exception as e:  # noqa: BLE001 - shown in the page
            self._show_error(e, prefix=what, source=filename)
            self._table_error = True
            return False
        if self._table_error:  # the table's error is answered
            self.alert.visible = self._table_error = False
        return True

    def reset_material(self) -> None:
        """The built-in OCV and D(θ) again; the upload fields emptied (the same file can be
        uploaded again)."""
        for w in self.table_uploads.values():
            w.clear()  # the browser's field
            w.param.update(value=None, filename=None)  # the same file then loads again
        if self._table_error:
            self.alert.visible = self._table_error = False
        self.settings.reset_material()

    def _table_uploaded(self, kind, event):
        if event.new:
            self.load_table(kind, event.new, self.table_uploads[kind].filename)

    def _make_material_figure(self):
        """The OCV and D(θ) in use (:meth:`ExplorerSettings.material_curves`): one small
        figure, OCV on the left axis, D (log) on the right, updated in place."""
        from bokeh.models import ColumnDataSource, DataRange1d, LogAxis, LogScale, Range1d
        from bokeh.plotting import figure

        f = figure(width=330, height=210, output_backend="canvas", toolbar_location=None,
                   x_axis_label="θ (Li occupancy)", y_axis_label="OCV (V vs Li)",
                   title="", tools="")
        f.title.text_font_size = "8pt"
        self._material_src = ColumnDataSource({"theta": [], "voltage_V": [],
                                               "diffusivity_m2_s": []})
        ocv = f.line("theta", "voltage_V", source=self._material_src,
                     color=plots.MODEL_VOLTAGE_COLOR, line_width=2, legend_label="OCV")
        f.y_range = DataRange1d(renderers=[ocv])  # the OCV's axis from the OCV alone
        f.extra_y_ranges = {"d": Range1d(1e-16, 1e-13)}
        f.extra_y_scales = {"d": LogScale()}
        f.add_layout(LogAxis(y_range_name="d", axis_label="D (m²/s)"), "right")
        f.line("theta", "diffusivity_m2_s", source=self._material_src, y_range_name="d",
               color="#ff7f0e", line_width=2, line_dash="dashed", legend_label="D(θ)")
        f.legend.location = "bottom_left"
        f.legend.label_text_font_size = "8pt"
        self._material_fig = f
        return pn.pane.Bokeh(f, name="material_curves")

    def _show_material(self, *_events) -> None:
        """The material in use, in words and as curves."""
        material = self.settings.material
        self.material_info.object = ("**In use**: " + C.material_label(material)
                                     + (" (from your tables)" if material is not None else ""))
        curves = self.settings.material_curves()
        d = curves["diffusivity_m2_s"].to_numpy()
        with B.one_update(pn.state.curdoc):
            self._material_src.data = {c: curves[c].to_numpy() for c in curves.columns}
            self._material_fig.extra_y_ranges["d"].update(start=float(d.min()) / 2,
                                                          end=float(d.max()) * 2)
            self._material_fig.title.text = C.material_label(material, short=True)

    def model_settings(self, **overrides) -> dict:
        """The current model settings (what every plot is computed from,
        :meth:`ExplorerSettings.model_settings`)."""
        return self.settings.model_settings(**overrides)

    def _keys(self, s) -> dict:
        """What each kind of plot is computed from, for settings ``s``."""
        model = tuple(_model_settings(s[n] for n in MODEL_SETTINGS).values())
        return {"maps": (*model, FINE),
                "twin": (*model, self.dataset, self.particle_id, self.time_offset),
                "rate": (model[0], model[1], model[3], model[4], model[5], model[6])}

    def _publish(self, keys: dict) -> None:
        """Let the plots of the given kinds show the settings in ``keys``."""
        if "maps" in keys:
            key = keys["maps"]
            self.maps_title.object = self._maps_title(_model_settings(key), key[-1])
        # one message to the page for all the figures this updates; all of them plain data
        # sources replaced in place, no walk over the page's models (_bokeh.one_update)
        with B.one_update(pn.state.curdoc, freeze=False):
            if "maps" in keys:
                self._update_maps(keys["maps"])
                self._update_curves(keys["maps"])
            if "twin" in keys:
                self._update_twin(keys["twin"])
            if "rate" in keys:
                self._update_rate(keys["rate"])
            self.param.update({f"{kind}_ready": key for kind, key in keys.items()})

    def _prefetch(self, *_events):
        """Start every simulation the current settings need and update the plots: in a
        server each kind when its runs are done; elsewhere (notebook, tests) at once, the
        plots then waiting for their runs."""
        if not self._open:  # a closed page (e.g. its dataset's analysis ended after it)
            return
        t0 = time.perf_counter()
        s = self.settings.model_settings()
        keys = self._keys(s)
        futures = P.prefetch(s, pixel_nm=float(self.settings.pixel_nm), dataset=self.dataset,
                             particle_id=self.particle_id, preview=R.in_server(),
                             time_offset_s=self._offset())
        if not R.in_server():
            self._publish(keys)
            return

        async def publish_when_done():
            await self._publish_when_done(keys, futures, t0)

        _timing(t0, "change submitted:", s)
        pn.state.execute(publish_when_done)
        # while nobody waits: the reference curves one D-scale step away
        i = DSCALE_OPTIONS.index(min(DSCALE_OPTIONS,
                                     key=lambda d: abs(d - float(s["diffusivity_scale"]))))
        P.warm_rate_curves(DSCALE_OPTIONS[max(0, i - 1): i + 2], s["material"])

    async def _publish_when_done(self, keys: dict, futures: dict, t0: float) -> None:
        """Publish each kind of plot's settings once its runs are done (in the order they
        finish), unless the settings have moved on meanwhile or the page's session has ended
        (its figures are destroyed then: emptied of their renderers)."""
        import asyncio

        def current(kind):
            return self._keys(self.settings.model_settings())[kind] if self._open else None

        async def one(kind):
            await asyncio.gather(*(asyncio.wrap_future(f) for f in futures.get(kind, ())),
                                 return_exceptions=True)  # a failure is shown by its plot
            _timing(t0, f"{kind} computed")
            if current(kind) == keys[kind]:
                self._publish({kind: keys[kind]})
                _timing(t0, f"{kind} published")

        async def preview():
            # the coarse θ maps and curves first, unless the fine ones are there already
            done = futures.get("maps", ())
            if all(f.done() for f in done):
                return
            await asyncio.gather(*(asyncio.wrap_future(f) for f in futures["preview"]),
                                 return_exceptions=True)
            _timing(t0, "preview computed")
            if not all(f.done() for f in done) and current("maps") == keys["maps"]:
                self._publish({"maps": (*keys["maps"][:-1], PREVIEW)})
                _timing(t0, "preview published")

        await asyncio.gather(*(one(kind) for kind in keys),
                             *([preview()] if "preview" in futures else []))

    # ------------------------------------------------------------------ datasets

    def _session_end(self):
        """What the server calls when the session ends (:meth:`DatasetLoader.end_session`)."""
        self.loader.end_session()

    def _page_closed(self):
        """The page's session has ended: nothing more is published or started for it."""
        self._open = False

    def _on_dataset(self, event):
        self.particle_id = None
        self._requested = None
        self.allow_large = False
        self._load_particles()

    def _on_time_offset(self, event):
        """Another clock offset: the dataset analysed again (the same particle, rate and
        sliders)."""
        self._requested = None if self.particle_id is None else str(self.particle_id)
        self._keep_rate = True
        self.particle_id = None
        self.allow_large = False
        self._load_particles()

    def _offset(self):
        """The clock offset typed (:func:`_compute.time_offset_value`); None (the dataset's
        own) when it cannot be read: :meth:`_load_particles` reports it."""
        return _readable_offset(self.time_offset)

    def _measured_now(self, spec, pid):
        return J.measured(spec, pid, time_offset_s=self._offset())

    def _on_particle(self, event):
        if event.new is None or event.new == self.particle_id:
            return
        if not R.in_server():
            self.particle_id = int(event.new)
            return
        pid, spec = int(event.new), self.dataset

        async def read_then_show():  # the particle's movie is read off the event loop
            fut = R.run_in_thread(self._measured_now, spec, pid)
            if await self.progress.wait([(fut, f"reading particle {pid} of {spec}")],
                                        "loading") and self.dataset == spec \
                    and self.particle_select.value == pid:  # not chosen again meanwhile
                self.particle_id = pid

        pn.state.execute(read_then_show)

    def _analyse_anyway(self):
        self.allow_large = True
        self._load_particles()

    def _load_particles(self):
        """Analyse the dataset (cached) and fill the particle list; errors go to the alert.
        In a server the analysis runs in a worker process (:func:`_jobs.start_analysis`)
        while the page shows its progress: returns None at once. Elsewhere returns True when
        the dataset could be used."""
        token = self.loader.new_load()
        try:
            C.time_offset_value(self.time_offset)
        except ValueError as e:
            return self._load_failed(e)
        if R.in_server():

            async def load():
                await self._load_async(token)

            # once the page is open (at once when it already is): a session whose page never
            # connects (a link preview, a health check, a readiness probe) analyses nothing,
            # and a HoloViews plot of it that refreshes before the connection reschedules its
            # refresh on every tick (state._unblocked) until the session is dropped 15-30 s
            # later: a core of the server's CPU that slowed every other page's updates
            pn.state.onload(load)
            return None
        try:
            result = J.analyzed(self.dataset, allow_large=self.allow_large,
                                time_offset_s=self.time_offset)
        except Exception as e:  # noqa: BLE001 - shown in the page
            return self._load_failed(e)
        return self._loaded(result)

    async def _load_async(self, token):
        spec = self.dataset
        self.particle_select.options = []
        self._dataset_info.object = ""
        self.notice.visible = False
        job = J.start_analysis(spec, allow_large=self.allow_large,
                               time_offset_s=self.time_offset)
        finished = await self.progress.wait([job], f"analysing dataset {spec}")
        if not self.loader.current(token):
            return  # another dataset asked for meanwhile
        if not finished:
            self._show_error(J.AnalysisStopped(
                f"{spec}: analysis cancelled; press Enter in the dataset field to start it again"))
            return
        try:
            result = job.future.result()
        except Exception as e:  # noqa: BLE001 - shown in the page
            self._load_failed(e)
            return
        pid = self._pick_particle(result[1])
        if pid is not None:  # read its movie off the event loop before the plots ask for it
            fut = R.run_in_thread(self._measured_now, spec, pid)
            if not await self.progress.wait([(fut, f"reading particle {pid} of {spec}")],
                                            "loading") or not self.loader.current(token):
                return
        self._loaded(result)

    def _show_particle_quality(self, *_event):
        """The chosen particle's classification, its confidence and its quality flags (the
        dataset's particles.csv row: :func:`_flags.particle_quality_markdown`)."""
        p, pid = self._particles, self.particle_id
        rows = (p[p["particle_id"].astype(int) == int(pid)]
                if p is not None and pid is not None else None)
        self._particle_quality.object = (
            F.particle_quality_markdown(rows.iloc[0].to_dict())
            + " On d(capacity): the band is the measured d with the dI threshold ± the pixel "
              f"noise, a cross a flagged frame, a triangle a flagged frame without d "
              f"({F.FLAGS_DOC})." if rows is not None and len(rows) else "")

    def _load_failed(self, exc):
        self._particles = None
        self._particle_quality.object = ""
        self._show_error(exc, prefix=f"Dataset {self.dataset!r} could not be used",
                         source=self.dataset)
        self.large_button.visible = isinstance(exc, J.DatasetTooLarge)
        self._show_measured_voltage(None)
        self.particle_select.options = []
        self._dataset_info.object = ""
        return False

    def _pick_particle(self, particles):
        """The particle to show: the one asked for, else the first; a particle asked for that
        the dataset does not have is reported in :attr:`notice`."""
        ids = [int(i) for i in particles["particle_id"]]
        if not ids:
            return None
        want = self._requested if self._requested is not None else self.particle_id
        if want is None:
            return self.particle_id if self.particle_id in ids else ids[0]
        text = str(want).strip()
        listed = ", ".join(map(str, ids[:12])) + (", ..." if len(ids) > 12 else "")
        try:
            pid = int(text)
        except ValueError:
            pid = None
        if pid in ids:
            return pid
        why = ("is not a particle number" if pid is None
               else f"is not a particle of dataset {self.dataset!r}")
        self.notice.object = (f"particle={text!r} {why} (its particles: {listed}); "
                              f"showing particle {ids[0]} instead.")
        self.notice.visible = True
        return ids[0]

    def _loaded(self, result):
        ds, particles, _ts, _labels = result
        self._show_measured_voltage(ds)
        from asymflux.analysis import cohort_rows

        opts = {f"{int(r.particle_id)} ({r.classification})": int(r.particle_id)
                for r in cohort_rows(particles).itertuples()}  # once (several half-cycles)
        ids = list(opts.values())
        if not ids:
            self._show_error(ValueError(f"{self.dataset}: no particles found"))
            return False
        pid = self._pick_particle(particles)
        self._requested = None
        self._particles = cohort_rows(particles)
        meta = ds.metadata or {}
        # the model at the dataset's rate (a 70 mA/g movie against a 70 mA/g twin), unless
        # the page was made with a rate; the rate stays free to move afterwards
        if self._keep_rate:
            self._keep_rate = False
        else:
            self.settings.use_dataset_rate(meta)
        if self.particle_id != pid:
            self.particle_id = pid
        else:
            self._show_particle_quality()
        self.particle_select.param.update(options=opts, value=self.particle_id)
        self._dataset_info.object = (
            f"**{meta.get('name', self.dataset)}**: {meta.get('ageing', '?')}, measured at "
            f"{meta.get('rate_mA_g', '?')} mA/g; {len(ids)} particles"
            + (" (synthetic)" if meta.get("synthetic") else "")
            + f"; clock offset used (cycler time = frame time + offset): "
              f"{C.time_offset_used(particles, ds)}"
            + _warnings_markdown(particles.attrs.get("warnings", [])))
        self.alert.visible = False
        return True

    def fit_particle(self):
        """Fit one blocked arc and a diffusivity scale to the chosen measured particle
        (:func:`asymflux.fit.fit_dataset`, the function behind ``asymflux fit``) and move
        the sliders to the fitted values; waits for the fit (10-60 s, in a worker process).
        The *Fit* button runs :meth:`fit_particle_async` instead, so the page keeps
        answering. Returns the :class:`~asymflux.fit.FitResult` (None on failure, with
        the message in the page)."""
        pid = self._fit_start()
        if pid is None:
            return None
        try:
            result = P.fit(self.dataset, pid, time_offset_s=self._offset()).result()
        except Exception as e:  # noqa: BLE001 - shown in the page
            return self._fit_failed(pid, e)
        return self._fit_done(pid, result)

    async def fit_particle_async(self, *_event):
        """:meth:`fit_particle` for the button: awaits the worker process's fit, so the
        server keeps serving (this page's sliders included) meanwhile."""
        import asyncio

        pid = self._fit_start()
        if pid is None:
            return None
        try:
            result = await asyncio.wrap_future(P.fit(self.dataset, pid,
                                                     time_offset_s=self._offset()))
        except Exception as e:  # noqa: BLE001 - shown in the page
            return self._fit_failed(pid, e)
        return self._fit_done(pid, result)

    def _fit_start(self):
        if self.particle_id is None and R.in_server():
            self._fit_info.object = "no particle yet: wait for the dataset's analysis"
            return None
        if self.particle_id is None and not self._load_particles():
            return None
        pid = int(self.particle_id)
        self.fit_button.loading = True
        self._fit_info.object = f"fitting particle {pid} … (10-60 s)"
        return pid

    def _fit_failed(self, pid, exc):
        self.fit_button.loading = False
        self._show_error(exc, prefix=f"Fitting particle {pid} failed")
        self._fit_info.object = ""
        return None

    def _fit_done(self, pid, result):
        """Move the sliders to a fit's values and describe it; returns ``result``."""
        self.fit_button.loading = False
        self.fit_result = result
        scale = min(DSCALE_OPTIONS, key=lambda d: abs(np.log(d / result.diffusivity_scale)))
        # one update: the fit's arcs have a prescribed η (one prefetch for all the sliders)
        if result.arcs:
            (arc,) = result.arcs
            self.settings.param.update(
                surface_model="prescribed", eta=float(np.clip(arc.eta, 0.05, 1.0)),
                blocked_fraction=float(np.clip(arc.fraction, 0.0, 0.75)),
                angle_deg=float(arc.center_deg) % 360.0, diffusivity_scale=scale)
            u = result.uncertainties
            self._fit_info.object = (
                f"**fit, particle {pid}**: arc at {arc.center_deg:.0f}° "
                f"± {u.get('center_deg_1', float('nan')):.0f}°, fraction {arc.fraction:.2f}, "
                f"η {arc.eta:.2f} ± {u.get('eta_1', float('nan')):.2f}, D × "
                f"{result.diffusivity_scale:.2g} (rms dI {result.rms:.3f}); sliders set.")
        else:
            self.settings.param.update(surface_model="prescribed", eta=1.0,
                                       diffusivity_scale=scale)
            self._fit_info.object = (f"**fit, particle {pid}**: no blocking "
                                     f"(D × {result.diffusivity_scale:.2g}); η set to 1.")
        return result

    def _show_error(self, exc, prefix=None, source=None):
        E.log_exception(exc)
        text = E.error_text(exc, source=source)
        self.alert.object = f"{prefix}: {text}" if prefix else text
        self.alert.visible = True

    # ------------------------------------------------------------------ data

    def theta_maps(self, **overrides) -> pd.DataFrame:
        """θ maps at 5/10/15/20 min for the current settings (one row of Fig. 4)."""
        s = self.model_settings(**overrides)
        return P.theta_maps(s["eta"], s["blocked_fraction"], s["angle_deg"], s["rate_mA_g"],
                            s["diffusivity_scale"], float(self.settings.pixel_nm), s["film_ohm_m2"],
                            s.get("mesh", C.MAPS_MESH), s.get("material"))

    def curves(self, **overrides) -> pd.DataFrame:
        """V(t) and the arc's flux ratio of the θ maps' run (:func:`_compute.run_curves`):
        ``minutes, capacity_mAh_g, voltage_V, flux_ratio``; the same run and numbers as
        ``asymflux simulate`` (``--film`` for the kinetic surface) at
        ``_compute.run_minutes()``."""
        return self.theta_maps(**overrides).attrs["curves"]

    def measured_voltage(self, dataset=None) -> pd.DataFrame | None:
        """The loaded dataset's cycler voltage against capacity (``capacity_mAh_g,
        voltage_V``), None when its echem table has none."""
        try:
            ds = J.analyzed(self.dataset if dataset is None else dataset,
                            time_offset_s=self._offset())[0]
        except Exception:  # noqa: BLE001 - the dataset's own alert says why
            return None
        return _echem_voltage(ds)

    def rate_table(self, **overrides) -> pd.DataFrame:
        """Fig. 5b: Li extracted at the cut-off against rate, the paper's surfaces and the
        current setting (``blocked == "current setting"``)."""
        s = self.model_settings(**overrides)
        return P.rate_table(s["eta"], s["blocked_fraction"], s["diffusivity_scale"],
                            s["film_ohm_m2"], s.get("material"))

    def current_li_extracted(self, **overrides) -> float:
        s = self.model_settings(**overrides)
        return P.li_extracted(s["eta"], s["blocked_fraction"], s["rate_mA_g"],
                              s["diffusivity_scale"], s["film_ohm_m2"], s.get("material"))

    def comparison(self, **overrides) -> dict:
        """The measured particle and its simulated twin, measured the same way.

        Returns
        -------
        dict
            ``measured``, ``simulated`` (:class:`asymflux.views._compute.ParticleMovie`) and
            ``timeseries`` (both time series stacked, column ``source``).
        """
        s = self.model_settings(**overrides)
        dataset = overrides.get("dataset", self.dataset)
        pid = overrides.get("particle_id", self.particle_id)
        offset = overrides.get("time_offset", self.time_offset)
        if pid is None:
            _ds, particles, _ts, _l = J.analyzed(dataset, time_offset_s=offset)
            pid = int(particles["particle_id"].iloc[0])
        m = J.measured(dataset, pid, time_offset_s=offset)
        sim = P.simulated(dataset, pid, s["eta"], s["blocked_fraction"], s["angle_deg"],
                          s["rate_mA_g"], s["diffusivity_scale"], s["film_ohm_m2"],
                          time_offset_s=offset, material=s.get("material"))
        ts = pd.concat([m.timeseries, sim.timeseries], ignore_index=True)
        return {"measured": m, "simulated": sim, "timeseries": ts, "particle_id": pid}

    # ------------------------------------------------------------------ plots

    def _maps_data(self, key):
        """:meth:`theta_maps` for ``key`` = (settings..., 'fine' or 'preview'); on failure
        NaN maps and the alert."""
        s = _model_settings(key)
        mesh = C.PREVIEW_MESH if key[-1] == PREVIEW else C.MAPS_MESH
        try:
            return self.theta_maps(**s, mesh=mesh)
        except Exception as e:  # noqa: BLE001 - shown in the page
            self._show_error(e, prefix="θ maps")
            return C.empty_theta_maps(pixel_nm=float(self.settings.pixel_nm))

    def _make_map_figures(self) -> None:
        """The four θ maps (Fig. 4, one row): Bokeh figures drawn like
        :func:`asymflux.plots.fig4_theta_maps` (one colour range, white where NaN, the
        perimeter and the arc in red), whose data sources a change replaces in place (the
        HoloViews version spent 0.2-0.7 s of the server's loop a change rebuilding them)."""
        from bokeh.models import ColorBar, ColumnDataSource, LinearColorMapper
        from bokeh.palettes import Viridis256
        from bokeh.plotting import figure

        palette = Viridis256 if plots.THETA_CMAP == "viridis" else plots.THETA_CMAP
        # the colour bar's scale; the images are coloured here (_rgba_image), as this mapper
        # would in the browser (which spent ~50 ms a slider move on it)
        self._map_mapper = LinearColorMapper(palette=palette, nan_color="white")
        self._map_lut = _rgba_palette(palette)
        r = C.FIG4_RADIUS_UM * 1.08
        phi = np.linspace(0, 2 * np.pi, 361)
        self._map_figs, self._map_srcs = [], []
        self._arc_src = ColumnDataSource({"x": [], "y": []})
        for k, _m in enumerate(C.FIG4_MINUTES):
            last = k == len(C.FIG4_MINUTES) - 1
            f = figure(frame_width=160, frame_height=160, x_range=(-r, r), y_range=(-r, r),
                       x_axis_label="x (µm)", y_axis_label="y (µm)" if k == 0 else None,
                       output_backend="canvas", tools="pan,wheel_zoom,reset,save",
                       title="", toolbar_location=None)
            f.title.text_font_size = "8pt"
            src = ColumnDataSource({"image": [np.full((1, 1), WHITE_RGBA, dtype=np.uint32)],
                                    "x": [-1.0], "y": [-1.0], "dw": [2.0], "dh": [2.0]})
            f.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=src)
            f.line(C.FIG4_RADIUS_UM * np.cos(phi), C.FIG4_RADIUS_UM * np.sin(phi),
                   color="black", line_width=1)
            f.line("x", "y", source=self._arc_src, color="red", line_width=4)
            if last:
                f.add_layout(ColorBar(color_mapper=self._map_mapper, width=8,
                                      title="θ"), "right")
            self._map_figs.append(f)
            self._map_srcs.append(src)

    def _update_maps(self, key) -> None:
        """Put the θ maps for ``key`` (see :attr:`maps_ready`) into the map figures."""
        if key is None or key == self._maps_key:
            return
        self._maps_key = key
        s = _model_settings(key)
        data = self._maps_data(key)
        surface = C.make_surface(s["eta"], s["blocked_fraction"], s["angle_deg"],
                                 s["film_ohm_m2"])
        x, y = plots.arc_outline_xy(surface, C.FIG4_RADIUS_UM)  # the red arcs
        self._arc_src.data = {"x": x, "y": y}
        finite = [t for t in data["theta"] if np.any(np.isfinite(t))]
        if finite:
            self._map_mapper.update(low=float(min(np.nanmin(t) for t in finite)),
                                    high=float(max(np.nanmax(t) for t in finite)))
        low, high = self._map_mapper.low, self._map_mapper.high
        preview = key[-1] == PREVIEW
        for f, src, row in zip(self._map_figs, self._map_srcs, data.itertuples(), strict=True):
            x, y = np.asarray(row.x_um), np.asarray(row.y_um)
            dx = abs(x[1] - x[0]) if x.size > 1 else 1.0
            dy = abs(y[1] - y[0]) if y.size > 1 else 1.0
            reached = bool(np.any(np.isfinite(row.theta)))
            # rows run from the top (y descending): Bokeh draws row 0 at the bottom
            src.data = {"image": [_rgba_image(np.asarray(row.theta, dtype=float)[::-1],
                                              low, high, self._map_lut)],
                        "x": [float(x.min() - dx / 2)], "y": [float(y.min() - dy / 2)],
                        "dw": [float(np.ptp(x) + dx)], "dh": [float(np.ptp(y) + dy)]}
            f.title.text = self._map_title(s["rate_mA_g"], row.minutes, reached, preview)

    @staticmethod
    def _map_title(rate_mA_g, minutes, reached=True, preview=False) -> str:
        """One θ map's title, short enough for its 160-pixel frame: the rate and the time;
        the rate gives way to the state when the map is a coarse preview or not reached
        (the heading above the maps says which settings)."""
        if preview:
            return f"{minutes:g} min{PREVIEW_TAG}"
        if not reached:
            return f"{minutes:g} min (not reached)"
        return f"{rate_mA_g:g} mA/g, {minutes:g} min"

    @staticmethod
    def _maps_title(s, which=FINE) -> str:
        label = C.surface_label(float(s["eta"]), float(s["blocked_fraction"]),
                                float(s["angle_deg"]), s.get("film_ohm_m2"))
        state = (f" — **coarse preview** ({C.PREVIEW_MESH[0]} × {C.PREVIEW_MESH[1]} mesh), "
                 "refining…" if which == PREVIEW else "")
        material = s.get("material")
        used = f"; {C.material_label(material, short=True)}" if material is not None else ""
        return (f"#### θ maps (Fig. 4): {label}, D × {float(s['diffusivity_scale']):g}{used}"
                f"{state}")

    def _rate_inputs(self, key):
        """``(table, rate, point, title)`` of Fig. 5b for ``key`` = (η, fraction, rate,
        D scale, film, material)."""
        eta, blocked_fraction, rate_mA_g, diffusivity_scale, film, material = key
        s = dict(eta=float(eta), blocked_fraction=float(blocked_fraction),
                 rate_mA_g=float(rate_mA_g), diffusivity_scale=float(diffusivity_scale),
                 film_ohm_m2=film, material=material)
        try:
            table = self.rate_table(**s)
            point = self.current_li_extracted(**s)
        except Exception as e:  # noqa: BLE001 - shown in the page
            self._show_error(e, prefix="Rate capability")
            table = C.rate_table(s["eta"], s["blocked_fraction"], point=lambda *a: np.nan)
            point = np.nan
        now = f"film {film:.3g} Ω m²" if film is not None else f"η {s['eta']:g}"
        return (table, s["rate_mA_g"], point,
                f"Fig. 5b ({C.FIG5B_END_SHORT}): {now}, {s['rate_mA_g']:g} mA/g → "
                f"{point:.4f}")

    def _rate_plot(self, key):
        """Fig. 5b for ``key`` (:meth:`_rate_inputs`): ``(HoloViews overlay of
        :func:`asymflux.plots.fig5b_rate_capability`, title)``."""
        table, rate_mA_g, point, title = self._rate_inputs(key)
        return self._rate_element(table, rate_mA_g, point), title

    @staticmethod
    def _rate_labels():
        labels = {k: v[0] for k, v in C.REFERENCE_SURFACES.items()}
        labels[C.CURRENT_LABEL] = C.CURRENT_LABEL  # fixed: the plot is updated in place
        return labels

    @staticmethod
    def _rate_element(table, rate_mA_g, point):
        return plots.fig5b_rate_capability(table, current_rate_mA_g=rate_mA_g,
                                           current_li_extracted=point, logx=True,
                                           labels=ModelExplorer._rate_labels())

    def _make_twin_and_rate_figures(self) -> None:
        """d(capacity), the simulated line-cut kymograph and Fig. 5b: Bokeh figures drawn
        once, empty, by their builders (:func:`asymflux.plots.offset_vs_capacity`,
        :func:`~asymflux.plots.kymograph`, :func:`~asymflux.plots.fig5b_rate_capability`,
        also the notebooks' and the PNG downloads'), whose data sources a change then
        replaces in place (:meth:`_update_twin`, :meth:`_update_rate`), as the θ maps'
        and the curves'."""
        from bokeh.models import DataRange1d, Title

        s = self.settings.model_settings()
        empty_ts = pd.DataFrame({"source": [], "capacity_mAh_g": [], "offset_nm": []})
        self._offset_fig = _render_once(self._offset_element(empty_ts, "d(capacity)"),
                                        width=380, height=320)
        self._sim_kymo_fig = _render_once(self._kymograph_element(None, "simulated"),
                                          width=340, height=320)
        table = C.rate_table(s["eta"], s["blocked_fraction"], point=lambda *a: np.nan)
        self._rate_fig = _render_once(
            self._rate_element(table, float(s["rate_mA_g"]), np.nan),
            width=600, height=380, legend_position="bottom_left")
        for f in (self._offset_fig, self._rate_fig):  # self-adjusting axes, as the curves'
            f.x_range, f.y_range = DataRange1d(), DataRange1d()
        # the user's tables the runs use, under the title (which fills the plot's width)
        self._rate_material = Title(text="", text_font_size="9pt", text_font_style="italic")
        self._rate_fig.add_layout(self._rate_material, "above")

    def _update_twin(self, key) -> None:
        """Put d(capacity) and the simulated line-cut for ``key`` (see :attr:`twin_ready`)
        into their figures, in place."""
        if key is None or key == self._twin_key:
            return
        self._twin_key = key
        ts, title = self._offset_inputs(key)
        _put_layers(self._offset_fig, plots.offset_layers(ts, curves=OFFSET_CURVES,
                                                          quality=QUALITY_CURVES), title)
        _put(self._sim_kymo_fig, *self._simulated_kymograph(key))
        quads = self._sim_kymo_fig.renderers[0].data_source.data  # tight axes, as HoloViews'
        if len(quads["left"]):
            self._sim_kymo_fig.x_range.update(start=float(np.min(quads["left"])),
                                              end=float(np.max(quads["right"])))
            self._sim_kymo_fig.y_range.update(start=float(np.min(quads["bottom"])),
                                              end=float(np.max(quads["top"])))

    def _update_rate(self, key) -> None:
        """Put Fig. 5b for ``key`` (see :attr:`rate_ready`) into its figure, in place; the
        same key (a move of the arc's angle) changes nothing."""
        if key is None or key == self._rate_key:
            return
        self._rate_key = key
        table, rate_mA_g, point, title = self._rate_inputs(key)
        _put_layers(self._rate_fig, plots.fig5b_layers(
            table, current_rate_mA_g=rate_mA_g, current_li_extracted=point,
            labels=self._rate_labels()), title)
        material = key[-1]
        self._rate_material.text = ("" if material is None else
                                    "your material: " + C.material_label(material, short=True))

    def _make_curve_plots(self):
        """The flux-ratio and voltage figures, drawn once by their builders
        (:func:`asymflux.plots.flux_ratio_vs_time`, :func:`~asymflux.plots.voltage_vs_capacity`,
        also the notebooks') as Bokeh figures with self-adjusting axes; a change replaces
        their data sources' data in place (:meth:`_update_curves`)."""
        import holoviews as hv
        from bokeh.models import DataRange1d

        size = {"width": 480, "height": 300, "backend_opts": CANVAS,
                "fontsize": {"title": "10pt"}}  # a preview's title fits the width
        flux = hv.render(plots.flux_ratio_vs_time(None).opts(**size), backend="bokeh")
        volt = hv.render(plots.voltage_vs_capacity(None).opts(**size), backend="bokeh")
        flux.x_range = DataRange1d()  # the flux ratio's axis stays 0-1.1
        volt.x_range, volt.y_range = DataRange1d(), DataRange1d()
        (self._flux_src,) = (r.data_source for r in flux.renderers)
        self._vm_src, self._v_src = (r.data_source for r in volt.renderers)  # measured, model
        self._flux_fig, self._volt_fig = flux, volt
        return (pn.pane.Bokeh(flux, name="flux_ratio"), pn.pane.Bokeh(volt, name="voltage"))

    @staticmethod
    def _curve_titles(kinetic: bool, tag: str = "") -> tuple[str, str]:
        """Titles of the flux-ratio and voltage figures (short: the rate and the surface are
        in the θ maps' heading)."""
        what = "particle potential" if kinetic else "highest surface OCV"
        return (f"flux ratio of the arc ({'kinetic' if kinetic else 'prescribed'}){tag}",
                f"voltage vs Li ({what}){tag}")

    def _update_curves(self, key) -> None:
        """Put the θ-map run's V(t) and flux ratio for ``key`` (see :attr:`maps_ready`) into
        the figures' data sources, in place."""
        if key is None or key == self._curves_key:
            return
        self._curves_key = key
        s = _model_settings(key)
        data = self._maps_data(key)
        cur = data.attrs.get("curves")
        if cur is None or not len(cur):
            cur = C.empty_theta_maps().attrs["curves"]
        tag = PREVIEW_TAG if key[-1] == PREVIEW else ""
        kinetic = s["film_ohm_m2"] is not None
        self._flux_src.data = {"minutes": cur["minutes"].to_numpy(),
                               "flux_ratio": cur["flux_ratio"].to_numpy()}
        self._v_src.data = {"capacity_mAh_g": cur["capacity_mAh_g"].to_numpy(),
                            "voltage_V": cur["voltage_V"].to_numpy()}
        self._flux_fig.title.text, self._volt_fig.title.text = self._curve_titles(kinetic, tag)
        self.curves_info.object = self._curves_text(cur, kinetic, tag)

    @staticmethod
    def _curves_text(cur, kinetic, tag="") -> str:
        """The numbers under the curves: V and the flux ratio at the θ maps' times."""
        at = cur.set_index("minutes")
        times = [m for m in C.FIG4_MINUTES if m in at.index]
        if not times:
            return ""
        v = ", ".join(f"{at.loc[m, 'voltage_V']:.4f}" for m in times)
        r = ", ".join(f"{at.loc[m, 'flux_ratio']:.4f}" for m in times)
        mins = "/".join(f"{m:g}" for m in times)
        model = "kinetic surface" if kinetic else "prescribed η"
        return (f"At {mins} min ({model}{tag}): V = {v} V; flux ratio of the arc = {r}. "
                "The same numbers as `asymflux simulate` with these settings "
                "(docs/dashboards.md says which output times).")

    def _show_measured_voltage(self, ds) -> None:
        """The dataset's cycler voltage in the voltage figure (empty when it has none). Like
        every direct change of a Bokeh model here, inside ``_bokeh.one_update`` (Panel's
        ``hold``, which dispatches it also from a coroutine, where the document is not
        locked)."""
        v = _echem_voltage(ds) if ds is not None else None
        with B.one_update(pn.state.curdoc):
            self._vm_src.data = {
                "capacity_mAh_g": np.asarray([] if v is None else v["capacity_mAh_g"]),
                "voltage_V": np.asarray([] if v is None else v["voltage_V"])}

    def _measured_movie(self, dataset, particle_id, offset=None):
        if particle_id is None:  # the dataset could not be used: the alert says why
            return None
        try:
            return J.measured(dataset, int(particle_id), time_offset_s=offset)
        except Exception as e:  # noqa: BLE001 - shown in the page
            self._show_error(e, prefix="Measured particle")
            return None

    def _simulated_movie(self, s, dataset, particle_id, offset=None):
        if particle_id is None:
            return None
        try:
            return P.simulated(dataset, int(particle_id), s["eta"], s["blocked_fraction"],
                               s["angle_deg"], s["rate_mA_g"], s["diffusivity_scale"],
                               s["film_ohm_m2"], time_offset_s=offset,
                               material=s.get("material"))
        except Exception as e:  # noqa: BLE001 - shown in the page
            self._show_error(e, prefix="Simulated particle")
            return None

    def _offset_inputs(self, key):
        """``(timeseries, title)`` of d(capacity) of the measured particle and its simulated
        twin (Fig. 5d), for ``key`` = (η, fraction, angle, rate, D scale, film, dataset,
        particle, clock offset)."""
        s, (dataset, particle_id, offset) = _model_settings(key), key[len(MODEL_SETTINGS):]
        offset = _readable_offset(offset)
        movies = [self._measured_movie(dataset, particle_id, offset),
                  self._simulated_movie(s, dataset, particle_id, offset)]
        ts = pd.concat([m.timeseries for m in movies if m is not None]
                       or [pd.DataFrame({"source": [], "capacity_mAh_g": [], "offset_nm": []})],
                       ignore_index=True)
        return ts, f"d(capacity), {_particle_name(particle_id)}"

    def _offset_plot(self, key):
        """d(capacity) for ``key`` (:meth:`_offset_inputs`): ``(HoloViews overlay, title)``."""
        ts, title = self._offset_inputs(key)
        return self._offset_element(ts, title), title

    @staticmethod
    def _offset_element(ts, title):
        return plots.offset_vs_capacity(ts, curves=OFFSET_CURVES, quality=QUALITY_CURVES,
                                        title=title)

    @staticmethod
    def _kymograph_element(movie, title):
        if movie is None:
            return plots.kymograph(np.empty((0, 0)), [], [], boundaries=pd.DataFrame(),
                                   title=title)
        return plots.kymograph(movie.kymograph, movie.distance_nm, movie.capacity_mAh_g,
                               boundaries=movie.boundaries, title=title)

    def _kymograph(self, movie, title):
        return _framewise(self._kymograph_element(movie, title).opts(width=340, height=320))

    def _measured_kymograph(self, dataset, particle_id, time_offset=None):
        """Line-cut kymograph of the measured particle (Fig. 5c)."""
        return self._kymograph(self._measured_movie(dataset, particle_id,
                                                    _readable_offset(time_offset)),
                               f"measured line-cut, {_particle_name(particle_id)}")

    def _simulated_kymograph(self, key):
        """Line-cut kymograph of the simulated twin (Fig. 5c), same measurement, for ``key``
        as in :meth:`_offset_plot`: ``(HoloViews overlay, title)``."""
        s, (dataset, particle_id, offset) = _model_settings(key), key[len(MODEL_SETTINGS):]
        offset = _readable_offset(offset)
        what = (f"η {s['eta']:.2g}" if s["film_ohm_m2"] is None
                else f"film {s['film_ohm_m2']:.3g} Ω m²")
        # short enough for the plot's width: the arc's fraction and angle are in the θ maps'
        # heading
        title = f"simulated, {what}"
        return (self._kymograph_element(self._simulated_movie(s, dataset, particle_id, offset),
                                        title),
                title)

    # ------------------------------------------------------------------ downloads
    # What the page shows for the current settings (the parameters), as files: each figure
    # drawn again by the same builder with HoloViews' matplotlib backend (PNG), the data as CSV.

    def _stem(self) -> str:
        s = self.model_settings()
        first = (f"eta{s['eta']:g}" if s["film_ohm_m2"] is None
                 else f"film{s['film_ohm_m2']:g}ohm_m2")
        material = s.get("material")  # the user's tables: named in the file's name too
        tables = "".join(f"_{what}-{Path(t.name).stem}" for what, t in
                         zip(("ocv", "D"), material or (), strict=False) if t is not None)
        return B.safe_name(f"{first}_fraction{s['blocked_fraction']:g}_"
                           f"{s['angle_deg']:g}deg_{s['rate_mA_g']:g}mA_g_D{s['diffusivity_scale']:g}"
                           f"{tables}")

    def _maps_with_surface(self):
        s = self.model_settings()
        data = self.theta_maps()
        data = data.assign(surface=[f"{s['rate_mA_g']:g} mA/g"] * len(data))
        return data, C.make_surface(s["eta"], s["blocked_fraction"], s["angle_deg"],
                                    s["film_ohm_m2"])

    def theta_maps_table(self) -> pd.DataFrame:
        """The θ maps as a long table: ``minutes, x_um, y_um, theta`` (one row a pixel; NaN
        outside the particle or after the end of the run)."""
        rows = []
        for r in self.theta_maps().itertuples():
            xx, yy = np.meshgrid(r.x_um, r.y_um)
            rows.append(pd.DataFrame({"minutes": r.minutes, "x_um": xx.ravel(),
                                      "y_um": yy.ravel(), "theta": np.ravel(r.theta)}))
        return pd.concat(rows, ignore_index=True)

    FIGURES = ("theta_maps", "d_capacity", "kymograph_measured", "kymograph_simulated",
               "fig5b")
    """The figures of the page, as :meth:`figure_png` names them."""

    def settings_text(self, *, particle: bool = True) -> str:
        """The settings a downloaded figure was computed with, in words (written in the
        figure, not only in its file name)."""
        s = self.model_settings()
        label = C.surface_label(float(s["eta"]), float(s["blocked_fraction"]),
                                float(s["angle_deg"]), s.get("film_ohm_m2"))
        text = (f"{label}; {s['rate_mA_g']:g} mA/g; D × {float(s['diffusivity_scale']):g}")
        if s.get("material") is not None:
            text += f"; {C.material_label(s['material'], short=True)}"
        if particle:
            text += f"; dataset {self.dataset}, {_particle_name(self.particle_id)}"
        return "asymflux model explorer — " + text

    def figure_png(self, figure: str) -> tuple[bytes, str]:
        """One figure of the page (:attr:`FIGURES`) for the current settings as PNG:
        :meth:`figure_file` with ``fmt="png"``."""
        return self.figure_file(figure, "png")

    def figure_file(self, figure: str, fmt: str = "png") -> tuple[bytes, str]:
        """One figure of the page (:attr:`FIGURES`) for the current settings, drawn again by
        its builder with HoloViews' matplotlib backend, with colour bars and the settings
        written above it (:meth:`settings_text`): ``(PNG, SVG or PDF bytes, file name)``."""
        s, stem = self.model_settings(), self._stem()
        wide = {"fig_inches": (6, 4), "aspect": "auto"}
        if figure == "theta_maps":
            data, surface = self._maps_with_surface()
            return plots.render(plots.fig4_theta_maps, data,
                                surfaces={data["surface"].iloc[0]: surface},
                                radius_um=C.FIG4_RADIUS_UM, colorbar=True, fmt=fmt,
                                subtitle=self.settings_text(particle=False),
                                mpl_opts={"fig_inches": 2.4}), \
                f"theta_maps_{stem}.{fmt}"
        if figure == "fig5b":
            # the legend beside the axes: inside, it hid the current setting's point
            return plots.render(plots.fig5b_rate_capability, self.rate_table(),
                                current_rate_mA_g=s["rate_mA_g"],
                                current_li_extracted=self.current_li_extracted(), logx=True,
                                fmt=fmt, subtitle=self.settings_text(particle=False),
                                mpl_opts={**wide, "fig_inches": (9, 4.5),
                                          "legend_position": "right"}), \
                f"fig5b_{stem}.{fmt}"
        comp = self.comparison()
        pid = comp["particle_id"]
        sub = self.settings_text()
        if figure == "d_capacity":
            return plots.render(plots.offset_vs_capacity, comp["timeseries"],
                                curves=OFFSET_CURVES, quality=QUALITY_CURVES,
                                title=f"d(capacity), particle {pid}", fmt=fmt, subtitle=sub,
                                mpl_opts=wide), f"d_capacity_particle{pid}_{stem}.{fmt}"
        if figure == "kymograph_measured":
            return plots.render(self._kymograph_plot, comp["measured"],
                                f"measured line-cut, particle {pid}", fmt=fmt,
                                colorbar_label=plots.KYMOGRAPH_LABEL,
                                subtitle=f"dataset {self.dataset}, particle {pid}",
                                mpl_opts=wide), \
                f"kymograph_measured_particle{pid}.{fmt}"
        if figure == "kymograph_simulated":
            return plots.render(self._kymograph_plot, comp["simulated"],
                                f"simulated line-cut, particle {pid}", fmt=fmt,
                                colorbar_label=plots.KYMOGRAPH_LABEL, subtitle=sub,
                                mpl_opts=wide), \
                f"kymograph_simulated_particle{pid}_{stem}.{fmt}"
        raise ValueError(f"unknown figure {figure!r}; one of {self.FIGURES}")

    @staticmethod
    def _kymograph_plot(movie, title):
        return plots.kymograph(movie.kymograph, movie.distance_nm, movie.capacity_mAh_g,
                               boundaries=movie.boundaries, title=title)

    def _make_downloads(self):
        def file(figure, fmt):
            return lambda: self.figure_file(figure, fmt)

        def csv(make, name):
            return lambda: (B.csv_bytes(make()), f"{name}_{self._stem()}.csv")

        labels = {"theta_maps": "θ maps", "d_capacity": "d(capacity)",
                  "kymograph_measured": "measured kymograph",
                  "kymograph_simulated": "simulated kymograph", "fig5b": "Fig. 5b"}
        out = {f"{f}.png": B.download_button(f"{labels[f]} (PNG)", f"{f}.png", file(f, "png"),
                                             width=210 if "kymograph" in f else 170)
               for f in self.FIGURES}
        # the same figures as SVG and PDF (vector: for papers and posters)
        out.update({f"{f}.{fmt}": B.download_button(f"{labels[f]} ({fmt.upper()})",
                                                    f"{f}.{fmt}", file(f, fmt),
                                                    width=210 if "kymograph" in f else 170)
                    for fmt in ("svg", "pdf") for f in self.FIGURES})
        tables = {"theta_maps": self.theta_maps_table,
                  "d_capacity": lambda: self.comparison()["timeseries"],
                  "fig5b": self.rate_table, "curves": self.curves}
        labels["curves"] = "V(t), flux ratio"
        out.update({f"{f}.csv": B.download_button(f"{labels[f]} (CSV)", f"{f}.csv", csv(make, f))
                    for f, make in tables.items()})
        return out

    # ------------------------------------------------------------------ layout

    def _rate_button(self, label, rate):
        """A button that sets the rate to one of the paper's rates (★)."""
        button = pn.widgets.Button(name=label, width=66, margin=(0, 4))
        button.on_click(lambda _event: setattr(self.settings, "rate_mA_g", float(rate)))
        return button

    def controls(self):
        widgets = []
        for n, w in self.sliders.items():
            if n in ("eta", "film_resistance_ohm_m2"):
                continue
            widgets.append(w)
            if n == "rate_mA_g":
                widgets.append(self.rate_buttons)
        return pn.Column(
            "### Model",
            self.surface_switch,
            self.eta_slider, self.film_slider,
            *widgets,
            pn.pane.Markdown("Sliders act when the handle is released (or on each arrow key)."),
            "### Measured particle",
            self.dataset_input,
            self.offset_input,
            pn.Row(pn.pane.Markdown("or upload a zipped dataset folder:"), self.upload),
            self._dataset_info,
            self.particle_select,
            self._particle_quality,
            self.fit_button,
            self._fit_info,
            "### Material (OCV, D(θ))",
            pn.pane.Markdown("Your tables, CSV as `asymflux simulate --ocv / --diffusivity`: "
                             "columns `theta,voltage_V` / `theta,diffusivity_m2_s`.",
                             width=320),
            pn.Row(pn.pane.Markdown("OCV table:", width=100), self.table_uploads["ocv"]),
            pn.Row(pn.pane.Markdown("D(θ) table:", width=100),
                   self.table_uploads["diffusivity"]),
            self.material_reset,
            self.material_info,
            self.material_pane,
            width=340,
        )

    def __panel__(self):
        # Fixed widths throughout: a Column sized by its content would otherwise squeeze the
        # Row of plots to the width of the title and collapse the bokeh grids to nothing.
        return pn.Column(
            pn.pane.Markdown("## asymflux model explorer: asymmetric Li flux in a single particle "
                             "(Lun et al. 2025)", width=1000),
            self.alert,
            self.notice,
            self.loader,
            pn.Row(self.controls(),
                   pn.Column(self.maps_title, pn.Row(*self.map_panes),
                             pn.Row(self.offset_pane, self.measured_pane, self.simulated_pane),
                             pn.Row(self.flux_pane, self.voltage_pane),
                             self.curves_info,
                             self.rate_pane,
                             pn.pane.Markdown("Download (current settings):", margin=(10, 10)),
                             pn.Row(*(b for n, b in self.downloads.items() if n.endswith(".png"))),
                             *(pn.Row(*(b for n, b in self.downloads.items()
                                        if n.endswith(ext))) for ext in (".svg", ".pdf")),
                             pn.Row(*(b for n, b in self.downloads.items() if n.endswith(".csv"))),
                             width=1120),
                   width=PAGE_WIDTH),
            width=PAGE_WIDTH,
        )
