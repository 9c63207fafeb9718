"""Cohort browser: asymmetric shrinking cores per ageing condition (Lun et al. 2025, Fig. 5e)
and any particle's differential movie, d(capacity) and line-cut kymograph."""

from __future__ import annotations

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
from . import _runtime as R
from . import _widgets as W
from ._bokehjs_patch import skip_unchanged_stylesheets
from ._settings import CohortSettings

CANVAS = {"plot.output_backend": "canvas"}
"""Bokeh options of the page's figures: drawn on a 2-D canvas, not WebGL (HoloViews'
default), which a browser without a GPU emulates and copies to the page: in headless
chromium the copies were a tenth of the browser's work until Fig. 5e showed (as in the
model explorer, ``model_explorer.CANVAS``)."""


def _on_canvas(obj):
    """``obj`` (a HoloViews element, overlay or DynamicMap) drawn on a canvas (:data:`CANVAS`)."""
    return obj.opts(backend_opts=CANVAS, backend="bokeh", clone=False)


def _parse(value) -> tuple[str, int]:
    spec, pid = str(value).rsplit("|", 1)
    return spec, int(pid)


def first_signal_frame(dI, *, fraction: float = 0.1) -> int:
    """The first frame of a differential movie with signal: the first whose largest
    ``|dI|`` reaches ``fraction`` of the movie's largest (0 for an empty or all-blank movie).

    Parameters
    ----------
    dI : array, shape (time, row, col)
        Differential movie (NaN outside the particle allowed).
    fraction : float
        Share of the movie's largest ``|dI|`` a frame must reach.
    """
    dI = np.asarray(dI, dtype=float)
    if dI.ndim != 3 or not dI.size:
        return 0
    with np.errstate(invalid="ignore"):
        peak = np.abs(np.where(np.isfinite(dI), dI, 0.0)).reshape(dI.shape[0], -1).max(axis=1)
    top = peak.max()
    if not top > 0:
        return 0
    return int(np.flatnonzero(peak >= fraction * top)[0])


STATS_DIGITS = {"fraction_asymmetric": "0.000", "ci_low": "0.000", "ci_high": "0.000"}
"""Number formats of the Fig. 5e table's fractions in the page (the CSV keeps every digit)."""

STATS_COLUMNS = ("ageing", "n_datasets", "n_particles", "n_symmetric", "n_asymmetric",
                 "n_undetermined", "fraction_asymmetric", "ci_low", "ci_high")
"""The Fig. 5e table's columns (:func:`asymflux.analysis.cohort_statistics`), whose headers
the page wraps."""

WRAPPED_HEADERS = {"columnDefaults": {"headerWordWrap": True}}
"""Tabulator configuration of the page's tables: a header longer than its column wraps onto
a second line (at the underscores, see :func:`wrapped_titles`) instead of being cut."""


def wrapped_titles(columns) -> dict:
    """Column titles as the tables show them: the column names of the CSV files, breakable
    after each underscore (a zero-width space), so that a narrow column's header wraps."""
    return {c: str(c).replace("_", "_\u200b") for c in columns}


def stats_table_widget(stats) -> pn.widgets.Tabulator:
    """The Fig. 5e table as the page shows it: every column within the table's width (the
    fractions with three decimals, the columns fitted to the width, none hidden), each
    header whole (wrapped onto two lines where its column is narrower), an ageing condition
    wider than its column wrapped in its cell."""
    from bokeh.models.widgets.tables import NumberFormatter

    return pn.widgets.Tabulator(
        stats, disabled=True, show_index=False, width=1100, height=220,
        layout="fit_columns", titles=wrapped_titles(STATS_COLUMNS),
        configuration=WRAPPED_HEADERS,
        formatters={**{c: NumberFormatter(format=f) for c, f in STATS_DIGITS.items()},
                    "ageing": {"type": "textarea"}})  # a long condition wraps, not cut


WRAPPED_COLUMNS = ("ageing", "quality_flags", "classification_reason")
"""The particle table's text columns whose long values wrap in their cells (the row grows)
rather than being cut: an ageing condition such as "3-4.3V 50mA/g 200 cycles" is wider
than its column."""


def particle_table_widget() -> pn.widgets.Tabulator:
    """The pooled particles as the page shows them (:func:`_flags.particle_table`): the
    classification with its score's range over the dI threshold ± the pixel noise, the
    quality flags with their number of frames, the share of frames flagged (three decimals;
    the CSV keeps every digit); a click on a row shows that particle."""
    from bokeh.models.widgets.tables import NumberFormatter

    return pn.widgets.Tabulator(
        pd.DataFrame(columns=[*F.PARTICLE_TABLE_COLUMNS, "source_spec"]), disabled=True,
        show_index=False, width=1190, height=300, layout="fit_columns", selectable=1,
        titles=wrapped_titles([*F.PARTICLE_TABLE_COLUMNS, "source_spec"]),
        configuration=WRAPPED_HEADERS, hidden_columns=["source_spec"],
        formatters={**{c: NumberFormatter(format=F.SCORE_FORMAT) for c in F.NUMBER_COLUMNS},
                    # long text wraps in its cell (a row grows) rather than being cut
                    **{c: {"type": "textarea"} for c in WRAPPED_COLUMNS}},
        widths={"dataset": 160, "particle_id": 75, "ageing": 160, "classification": 115,
                "asymmetry_score": 95, "asymmetry_score_low": 95, "asymmetry_score_high": 95,
                "classification_reason": 140, "quality_flags": 170, "flagged_fraction": 80})


class CohortBrowser(pn.viewable.Viewer):
    """Counts and fractions of symmetric / asymmetric particles per ageing condition with
    95 % Wilson intervals (Fig. 5e); choosing a particle shows its differential movie (a
    player and the frame), d(capacity) and line-cut kymograph.

    The datasets pooled and their clock offset are :attr:`settings`, a Panel-free
    :class:`~asymflux.views._settings.CohortSettings`: pass one, or its parameters, to the
    constructor (``CohortBrowser(datasets="cohorts")``), or set them later (here, as
    ``view.datasets``, or on ``view.settings``); a change loads them. ``datasets`` is a
    demo group (``"cohorts"``, ``"cohort-fresh"``, ...), dataset names or paths separated by
    commas, a folder holding dataset folders, or an ``asymflux analyze`` output folder (or a
    folder of them): its tables are read, not analysed again, and its particles show their
    d(capacity) (the movie is not in the folder). Datasets that cannot be read are listed in
    the alert; the others are still shown.
    """

    settings = param.ClassSelector(class_=CohortSettings, doc=(
        "The datasets pooled and their clock offset (the text fields' parameters)."))
    particle = param.Parameter(default=None, doc="(dataset spec, particle id) shown.")
    particles = param.DataFrame(default=None, allow_None=True,
                                doc="All particles (analysis.summarize_particles rows).")
    stats = param.DataFrame(default=None, allow_None=True,
                            doc="analysis.cohort_statistics by ageing.")
    errors = param.List(default=[], doc="Messages of the datasets that could not be used.")
    allow_large = param.Boolean(default=False, doc=(
        "Analyse stacks above the dashboard's size limit (_jobs.max_values()); set by the "
        "'Analyse anyway' button, reset when the datasets change."))

    def __init__(self, settings: CohortSettings | None = None, **params):
        B.load_extensions("tabulator")  # this page's own: it may be the first one served
        given = {k: params.pop(k) for k in list(params)
                 if k in CohortSettings.param and k != "name"}
        if settings is None:
            settings = CohortSettings(**given)
        elif given:
            settings.param.update(given)
        super().__init__(settings=settings, **params)
        self._loaded_for = None
        # False once the page's session has ended (its Bokeh models are then destroyed): an
        # analysis or a particle's movie finishing later shows nothing, and nothing new starts
        self._open = True
        R.on_session_end(self._page_closed)
        # in a server the datasets are read and analysed in worker processes: the alert,
        # progress and Cancel, 'Analyse anyway' for stacks above the size limit, the upload
        self.loader = W.DatasetLoader(
            on_analyse_anyway=self._analyse_anyway,
            on_upload=lambda folder: setattr(self.settings, "datasets", folder),
            on_upload_error=lambda e, name: self._fail([E.error_text(e, source=name)]),
            alert_width=1100)
        self.alert, self.progress = self.loader.alert, self.loader.progress
        self.large_button, self.upload = self.loader.large_button, self.loader.upload
        self.datasets_input = pn.widgets.TextInput.from_param(
            self.settings.param.datasets,
            name="datasets (demo group, names/paths separated by commas, a folder, or an "
                 "analyze results folder; Enter)",
            width=700)
        self.offset_input = pn.widgets.TextInput.from_param(
            self.settings.param.time_offset, name="clock offset (s, or auto; empty: none; Enter)",
            placeholder="cycler time = frame time + offset", width=260)
        # the clock offset used: one line (a summary), each dataset's in a closed card
        self.offset_used = pn.pane.Markdown("", width=1100, margin=(0, 10))
        self.offset_details = pn.pane.Markdown("", width=1060)
        self.offset_card = pn.Card(self.offset_details, title="clock offset per dataset",
                                   collapsed=True, visible=False, width=1100)
        self.particle_select = pn.widgets.Select(label="particle", options={}, width=420)
        # the frame as the movie's title and timeseries.csv's `frame` number it (0: the
        # reference), said in the line under the player (frame_info): Panel's player (1.9)
        # does not redraw its own value label when the value is set from Python (it showed
        # "frame: 0" beside a movie titled "frame 1"), so it shows none
        self.player = pn.widgets.Player(label="frame (0 = the reference)", start=0, end=1,
                                        value=0, interval=300, loop_policy="loop",
                                        show_value=False, width=360)
        self.frame_info = pn.pane.Markdown("", width=1100, margin=(0, 10))
        self.player.param.watch(self._show_frame_info, "value")
        self.particle_table = particle_table_widget()
        self.particle_table.param.watch(self._on_table_selection, "selection")
        self.particle_info = pn.pane.Markdown("", width=1100, margin=(0, 10))
        self.flags_legend = pn.pane.Markdown("", width=1060)
        self.flags_card = pn.Card(self.flags_legend, title="what the band, the marks and the "
                                  "quality flags mean", collapsed=True, width=1180)
        self.summary = pn.pane.Markdown("", width=1100)
        self.settings.param.watch(self._on_datasets, ["datasets", "time_offset"])
        self.particle_select.param.watch(self._on_select, "value")
        self.param.watch(self._on_particle, "particle")
        # one HoloViews pane per figure in Panel Rows (no bokeh GridPlot, see model_explorer)
        self.cohort_pane = pn.panel(pn.bind(self._as_row, pn.bind(self._cohort_plot, self.param.stats)),
                                    name="cohorts")
        self.particle_pane = pn.panel(
            pn.bind(self._as_row, pn.bind(self._particle_plot, self.param.particle)),
            name="particle", loading_indicator=True)
        self.downloads = self._make_downloads()  # file name -> button: PNG/figure, CSV/table
        self._series = {}  # spec -> the dataset's timeseries (the dQ/dV figure)
        self.dqdv_pane = pn.panel(pn.bind(self._as_row, pn.bind(self._dqdv_plot,
                                                                 self.param.particle)),
                                  name="dqdv")

    @property
    def datasets(self) -> str:
        """The datasets pooled (:attr:`CohortSettings.datasets` of :attr:`settings`)."""
        return self.settings.datasets

    @datasets.setter
    def datasets(self, value: str) -> None:
        self.settings.datasets = value

    @property
    def time_offset(self) -> str:
        """Their clock offset (:attr:`CohortSettings.time_offset` of :attr:`settings`)."""
        return self.settings.time_offset

    @time_offset.setter
    def time_offset(self, value: str) -> None:
        self.settings.time_offset = value

    # ------------------------------------------------------------------ loading

    def _begin_load(self):
        """A new load: its token, and the dataset specs (None, with the page told why, if
        the datasets cannot be listed, or the clock offset is not understood)."""
        self.loader.new_load()
        try:
            C.time_offset_value(self.time_offset)
        except Exception as e:  # noqa: BLE001
            self._fail([E.error_text(e)])
            return None
        try:
            return C.dataset_specs(self.datasets)
        except Exception as e:  # noqa: BLE001
            self._fail([f"{self.datasets!r}: {E.error_text(e, source=self.datasets)}"])
            return None

    def load(self):
        """Analyse every dataset (cached), pool the particles, compute the statistics (here
        and now: a server's page calls :meth:`load_async` instead)."""
        specs = self._begin_load()
        if specs is None:
            return
        outcomes = {}
        for spec in specs:
            try:
                outcomes[spec] = J.analyzed(spec, allow_large=self.allow_large,
                                            time_offset_s=self.time_offset)
            except Exception as e:  # noqa: BLE001 - one broken dataset must not stop the rest
                outcomes[spec] = e
        self._pool(outcomes)

    async def load_async(self):
        """:meth:`load` for a server's page: the datasets are analysed in worker processes
        (:func:`_jobs.start_analysis`) while the page shows the progress and a Cancel
        button, and the server serves the other pages. The page's particles part joins it
        once this load is over (:meth:`_show_rest`)."""
        try:
            await self._load_async()
        finally:
            self._show_rest()

    async def _load_async(self):
        import asyncio

        R.timing_mark("cohort page: loading starts")
        specs = self._begin_load()
        if specs is None:
            return
        token = self.loader.token
        jobs = {spec: J.start_analysis(spec, allow_large=self.allow_large,
                                       time_offset_s=self.time_offset) for spec in specs}
        title = f"analysing {len(jobs)} dataset{'s' if len(jobs) > 1 else ''}"
        finished = await self.progress.wait(list(jobs.values()), title)
        R.timing_mark("cohort page: analyses done")
        if not self._open or not self.loader.current(token):
            return  # the page closed, or other datasets asked for meanwhile
        if not finished:
            self._fail([f"{self.datasets}: analysis cancelled; press Enter in the datasets "
                        "field to start it again"])
            return
        outcomes = {}
        for spec, job in jobs.items():
            try:
                outcomes[spec] = job.future.result()
            except Exception as e:  # noqa: BLE001 - one broken dataset must not stop the rest
                outcomes[spec] = e
        # Fig. 5e and the tables at once; the first particle's movie is then read off the
        # event loop (_on_select: its progress under the tables) and shown
        self._pool(outcomes, show_particle=False)
        R.timing_mark("cohort page: Fig. 5e and the tables sent")
        await asyncio.sleep(0.05)  # Fig. 5e's update written before the particles' part

    def load_cached(self) -> bool:
        """Show the datasets when every one's analysis is in the results cache (read, not
        measured: :func:`_jobs.cached_result`), as :meth:`load` would; else nothing (no
        analysis, no demo dataset built). What the page does when ``panel serve --warm``
        runs it at the server's start (:func:`_runtime.warming`): the libraries imported,
        the analyses and the first particle's movie read into the server's memory, every
        figure built once, so that the first page a browser opens shows Fig. 5e at once.
        Returns whether they were shown."""
        specs = self._begin_load()
        if not specs:
            return False
        outcomes = {}
        for spec in specs:
            hit = J.cached_result(spec, time_offset_s=self.time_offset)
            if hit is None:
                return False
            outcomes[spec] = hit
        self._pool(outcomes)
        self._show_rest()  # every figure built once
        return True

    def _request_load(self):
        if not self._open:
            return
        if R.warming():
            self.load_cached()
        elif R.in_server():
            pn.state.execute(self.load_async)
        else:
            self.load()

    def _on_datasets(self, _event):
        self.allow_large = False
        self._request_load()

    def _analyse_anyway(self):
        self.allow_large = True
        self._request_load()

    def _session_end(self):
        """What the server calls when the session ends (:meth:`DatasetLoader.end_session`)."""
        self.loader.end_session()

    def _page_closed(self):
        """The page's session has ended: nothing more is shown or started for it."""
        self._open = False

    def _first_particle(self, particles) -> tuple[str, int]:
        """The particle shown after loading: the one shown before if it is still there, else
        the first asymmetric one, else the first."""
        values = [(str(r.source_spec), int(r.particle_id)) for r in particles.itertuples()]
        if self.particle in values:
            return self.particle
        asym = np.flatnonzero(particles["classification"].to_numpy() == "asymmetric")
        return values[int(asym[0])] if len(asym) else values[0]

    def _pool(self, outcomes: dict, *, show_particle: bool = True):
        """Show the pooled particles of ``{spec: analyzed result or exception}``, and the
        particle chosen (:meth:`_first_particle`): at once (``show_particle``), or as a
        choice of the particle menu (:meth:`_on_select`: in a server its movie is read off
        the event loop while Fig. 5e and the tables are already on the page). Nothing once
        the page has closed."""
        if not self._open:
            return
        analyzed, errors, used = {}, [], {}
        for spec, result in outcomes.items():
            if isinstance(result, BaseException):
                E.log_exception(result)
                errors.append(f"{spec}: {E.error_text(result, source=spec, name_source=False)}")
                if isinstance(result, J.DatasetTooLarge):
                    self.large_button.visible = True
            else:
                ds, particles, ts, labels = result
                analyzed[spec] = (particles, ts, labels)
                name = (str(particles["dataset"].iloc[0])
                        if "dataset" in particles and len(particles) else spec)
                used[name] = C.time_offset_used(particles, ds)
        self._series = {spec: r[1] for spec, r in analyzed.items()}
        if not analyzed:
            self._fail(errors or ["no datasets"])
            return
        particles, stats = C.cohort_tables(analyzed)
        # fresh first, then the aged conditions in the order the datasets were given
        stats = plots.fig5e_order(stats, particles["ageing"])
        self.errors = errors
        self.alert.object = ("Some datasets could not be used:\n\n- " + "\n- ".join(errors)
                             if errors else "")
        self.alert.visible = bool(errors)
        from asymflux.analysis import cohort_rows

        options = {}
        for r in cohort_rows(particles).itertuples():  # a particle once (several half-cycles)
            options[f"{r.dataset} / {int(r.particle_id)} ({r.classification}; {r.ageing})"] = (
                f"{r.source_spec}|{int(r.particle_id)}")
        self.param.update(particles=particles, stats=stats)
        shown = F.particle_table(particles)
        self.particle_table.param.update(value=shown, selection=[])
        flags = {f for v in shown.get("quality_flags", []) for f in F.flag_names(v)}
        self.flags_legend.object = F.flags_legend_markdown(flags)
        chosen = self._first_particle(particles)
        if show_particle:
            self.particle = chosen
        # options and value at once: no passing selection of the first option
        value = f"{chosen[0]}|{chosen[1]}"
        if self.particle_select.value == value and self.particle != chosen:
            self.particle_select.param.update(options=options)
            self.particle_select.param.trigger("value")  # the same choice, not shown yet
        else:
            self.particle_select.param.update(options=options, value=value)
        n = len(cohort_rows(particles))
        self.summary.object = (f"{n} particles in {len(analyzed)} datasets, "
                               f"{int(stats['n_asymmetric'].sum())} asymmetric.")
        self.offset_used.object = self.offset_text(used)
        self.offset_details.object = self.offset_table(used)
        self.offset_card.param.update(title=f"clock offset per dataset ({len(used)})",
                                      visible=len(used) > 1)
        self._loaded_for = (self.datasets, self.time_offset)

    @staticmethod
    def offset_text(used: dict) -> str:
        """The clock offsets used, ``{dataset: TimeOffset}``, in one line: the offset when
        every dataset has the same, else their range (each dataset's: :meth:`offset_table`)."""
        if not used:
            return ""
        head = "Clock offset used (cycler time = frame time + offset): "
        texts = {str(off) for off in used.values()}
        if len(texts) == 1:
            n = len(used)
            return head + texts.pop() + (f", every one of the {n} datasets" if n > 1 else "")
        s = [float(off.offset_s) for off in used.values()]
        return (head + f"{min(s):g} to {max(s):g} s over the {len(used)} datasets (each "
                "dataset's, with how it was found, in the card below)")

    @staticmethod
    def offset_table(used: dict) -> str:
        """The clock offset of each dataset, ``{dataset: TimeOffset}``, one line each."""
        if not used:
            return ""
        return "| dataset | clock offset used |\n| --- | --- |\n" + "\n".join(
            f"| {name} | {off} |" for name, off in used.items())

    def _fail(self, errors):
        if not self._open:  # the page has closed: nobody to tell
            return
        self._loaded_for = (self.datasets, self.time_offset)
        self.offset_used.object = ""
        self.offset_details.object = ""
        self.offset_card.visible = False
        self.particle_table.param.update(value=self.particle_table.value.iloc[:0], selection=[])
        self.particle_info.object = self.frame_info.object = ""
        self.errors = list(errors)
        self.alert.object = "Datasets could not be used:\n\n- " + "\n- ".join(errors)
        self.alert.visible = True
        self.param.update(particles=None, stats=None)
        self.particle_select.options = {}
        self.particle = None
        self.summary.object = ""

    def _on_select(self, event):
        if event.new is None or _parse(event.new) == self.particle:
            return
        chosen = _parse(event.new)
        if not R.in_server():
            self.particle = chosen
            return

        async def read_then_show():  # the particle's movie is read off the event loop
            fut = R.run_in_thread(self.particle_movie, chosen)
            if await self.progress.wait([(fut, f"reading particle {chosen[1]} of "
                                               f"{chosen[0]}")], "loading") \
                    and self._open and self.particle_select.value == event.new:  # still so
                self.particle = chosen  # a failure is reported by _on_particle

        pn.state.execute(read_then_show)

    def _on_particle(self, event):
        if event.new is None:
            return
        self._show_particle_info(event.new)
        try:
            movie = self.particle_movie(event.new)
        except Exception as e:  # noqa: BLE001 - shown in the page; the other pages go on
            E.log_exception(e)
            spec, pid = event.new
            self.alert.object = (f"Particle {pid} of dataset {spec} could not be read: "
                                 f"{E.error_text(e, source=spec, name_source=False)}")
            self.alert.visible = True
            return
        n = int(movie.dI.shape[0])
        # a new particle opens on its first frame with signal (a differential movie's frame
        # 0 is its blank reference); the range first, then the frame in it
        self.player.end = max(n - 1, 1)
        before = self.player.value
        self.player.value = first_signal_frame(movie.dI)
        if self.player.value == before:
            self._show_frame_info()

    def _table_row(self, particle):
        """The particle table's row index of ``(spec, id)`` (None if it is not there)."""
        t = self.particle_table.value
        if particle is None or t is None or "source_spec" not in t or not len(t):
            return None
        hit = np.flatnonzero((t["source_spec"].astype(str).to_numpy() == str(particle[0]))
                             & (t["particle_id"].astype(int).to_numpy() == int(particle[1])))
        return int(hit[0]) if hit.size else None

    def _show_particle_info(self, particle):
        """The chosen particle's classification, its confidence and flags (its table row),
        and its row selected in the table."""
        row = self._table_row(particle)
        if row is None:
            self.particle_info.object = ""
            return
        self.particle_info.object = F.particle_quality_markdown(
            self.particle_table.value.iloc[row].to_dict())
        if self.particle_table.selection != [row]:
            self.particle_table.selection = [row]

    def _on_table_selection(self, event):
        """A click on a row of the particle table shows that particle."""
        t = self.particle_table.value
        if not event.new or t is None or event.new[0] >= len(t):
            return
        r = t.iloc[event.new[0]]
        value = f"{r['source_spec']}|{int(r['particle_id'])}"
        if value in self.particle_select.options.values() \
                and value != self.particle_select.value:
            self.particle_select.value = value

    def _show_frame_info(self, *_event):
        """The line under the player: the frame shown, its capacity, d with its range and
        its quality flags (the row of the particle's time series)."""
        if self.particle is None:
            self.frame_info.object = ""
            return
        try:
            movie = self.particle_movie()
        except Exception:  # noqa: BLE001 - the page says why elsewhere
            self.frame_info.object = ""
            return
        ts = movie.timeseries
        f = int(self.player.value)
        row = ts[ts["frame"] == f] if "frame" in ts else ts.iloc[f:f + 1]
        self.frame_info.object = (F.frame_quality_markdown(row.iloc[0].to_dict(),
                                                           n_frames=len(ts))
                                  if len(row) else "")

    # ------------------------------------------------------------------ data

    def particle_movie(self, particle=None) -> C.ParticleMovie:
        """The chosen particle: differential movie, time series and kymograph."""
        spec, pid = particle if particle is not None else self.particle
        return J.measured(spec, pid, time_offset_s=self.time_offset)

    # ------------------------------------------------------------------ plots

    @staticmethod
    def _as_row(obj):
        import holoviews as hv

        if isinstance(obj, hv.Layout):
            return pn.Row(*[pn.pane.HoloViews(_on_canvas(p)) for p in obj])
        return pn.pane.HoloViews(_on_canvas(obj))

    def _cohort_plot(self, stats):
        if stats is None or not len(stats):
            return B.empty_plot("no particles")
        R.timing_mark("cohort page: Fig. 5e being built")
        return plots.fig5e_cohorts(stats, order=list(stats["ageing"]), width=1000)

    def _particle_plot(self, particle):
        import holoviews as hv

        if particle is None:
            return B.empty_plot("choose a particle")
        R.timing_mark("cohort page: the particle's figures being built")
        try:
            movie = self.particle_movie(particle)
        except Exception as e:  # noqa: BLE001
            E.log_exception(e)
            return B.empty_plot(f"particle {particle[1]}: "
                                f"{E._without_class_names(' '.join(str(e).split()))[:200]}")
        spec, pid = particle
        name = movie.timeseries["dataset"].iloc[0] if "dataset" in movie.timeseries else spec
        dI = movie.dI
        cap = movie.capacity_mAh_g
        frame_stream = self.player.param.value
        if not dI.size:  # an analyze output's particle: d(capacity) from its table only
            def marker(frame):
                f = int(np.clip(frame, 0, dI.shape[0] - 1))
                return hv.VLine(float(cap[f]) if np.isfinite(cap[f]) else 0.0).opts(
                    color="grey")

            d = self._offset_plot(movie, name, pid)
            title = f"{name} / {pid}: d(capacity) ({movie.extra.get('no_movie', 'no movie')})"
            return (d * hv.DynamicMap(pn.bind(marker, frame_stream))).opts(
                width=760, height=340, title=title)

        def frame_image(frame):
            return self._frame_plot(movie, name, pid, frame)

        def frame_marker(frame):
            f = int(np.clip(frame, 0, dI.shape[0] - 1))
            return hv.VLine(float(cap[f]) if np.isfinite(cap[f]) else 0.0).opts(color="grey")

        def kymo_marker(frame):
            f = int(np.clip(frame, 0, dI.shape[0] - 1))
            return hv.HLine(float(cap[f]) if np.isfinite(cap[f]) else 0.0).opts(color="blue")

        movie_dm = hv.DynamicMap(pn.bind(frame_image, frame_stream)).opts(
            width=380, height=380, framewise=True)
        d = self._offset_plot(movie, name, pid)
        d = (d * hv.DynamicMap(pn.bind(frame_marker, frame_stream))).opts(width=380, height=340)
        k = self._kymograph_plot(movie, name, pid)
        k = (k * hv.DynamicMap(pn.bind(kymo_marker, frame_stream))).opts(width=380, height=340)
        return hv.Layout([movie_dm, d, k]).cols(3).opts(shared_axes=False)

    def _dqdv_plot(self, particle):
        """dQ/dV beside the mean optical signal of the chosen particle's dataset."""
        from asymflux.analysis import incremental_capacity_table

        ts = self._series.get(particle[0]) if particle is not None else None
        if ts is None or "voltage_V" not in ts or not np.isfinite(ts["voltage_V"]).any():
            return B.empty_plot("no cycler voltage per frame: no dQ/dV")
        name = ts["dataset"].iloc[0] if "dataset" in ts else particle[0]
        fig = plots.dqdv_optical(incremental_capacity_table(ts),
                                 title=f"dQ/dV and the mean optical signal: {name}")
        return fig.opts(shared_axes=False).map(lambda o: o.opts(width=540, height=320),
                                               ["Overlay"])

    # The figures of a particle, from the builders of asymflux.plots (also for the PNG files).

    @staticmethod
    def _frame_plot(movie, name, pid, frame):
        dI, cap = movie.dI, movie.capacity_mAh_g
        f = int(np.clip(frame, 0, dI.shape[0] - 1))
        c = cap[f] if np.isfinite(cap[f]) else float("nan")
        return plots.differential_frame(dI[f], movie.pixel_nm, line=movie.line,
                                        title=f"{name} / {pid}: frame {f}, {c:.1f} mAh/g")

    # In the page the particle is named by the movie's title (the two plots' titles, with it,
    # were cut at their 380-pixel width); the PNG files (full=True) name it in theirs.

    @staticmethod
    def _offset_plot(movie, name, pid, full=False):
        return plots.offset_vs_capacity(
            movie.timeseries, by=None, quality=True,
            title="d(capacity) (Fig. 5d)" + (f": {name} / {pid}" if full else ""))

    @staticmethod
    def _kymograph_plot(movie, name, pid, full=False):
        return plots.kymograph(
            movie.kymograph, movie.distance_nm, movie.capacity_mAh_g,
            boundaries=movie.boundaries,
            title="line-cut kymograph (Fig. 5c)" + (f": {name} / {pid}" if full else ""))

    # ------------------------------------------------------------------ downloads

    def _chosen(self):
        """(movie, dataset name, particle id, file-name stem) of the chosen particle."""
        if self.particle is None:
            raise ValueError("no particle chosen")
        movie = self.particle_movie()
        spec, pid = self.particle
        name = movie.timeseries["dataset"].iloc[0] if "dataset" in movie.timeseries else spec
        return movie, name, pid, B.safe_name(f"{name}_particle{pid}")

    def _need_stats(self) -> pd.DataFrame:
        if self.stats is None or not len(self.stats):
            raise ValueError("no particles: nothing to download")
        return self.stats

    def settings_text(self) -> str:
        """What a downloaded figure shows, written in it (not only in its file name)."""
        return f"asymflux cohort browser — datasets: {self.datasets}"

    def fig5e_png(self) -> bytes:
        """Fig. 5e as shown (PNG, drawn with matplotlib)."""
        return self.fig5e_file("png")

    def fig5e_file(self, fmt: str = "png") -> bytes:
        """Fig. 5e as shown (PNG, SVG or PDF, drawn with matplotlib), the datasets written
        above it."""
        stats = self._need_stats()
        return plots.render(plots.fig5e_figure, stats, order=list(stats["ageing"]), fmt=fmt,
                            subtitle=self.settings_text())

    PARTICLE_FIGURES = ("frame", "d_capacity", "kymograph")
    """The chosen particle's figures, as :meth:`particle_png` names them."""

    def particle_png(self, figure: str) -> tuple[bytes, str]:
        """:meth:`particle_file` as PNG."""
        return self.particle_file(figure, "png")

    def particle_file(self, figure: str, fmt: str = "png") -> tuple[bytes, str]:
        """One of the chosen particle's figures (:attr:`PARTICLE_FIGURES`; the movie at the
        player's frame) drawn with HoloViews' matplotlib backend, with its colour bar and
        the dataset and particle written above it: ``(PNG, SVG or PDF bytes, file name)``."""
        movie, name, pid, stem = self._chosen()
        if figure in ("frame", "kymograph") and not movie.dI.size:
            raise ValueError(f"{name} / {pid}: no movie: "
                             f"{movie.extra.get('no_movie', 'no frames')}")
        size = {"fig_inches": (5.5, 4), "aspect": "auto"}
        sub = f"{self.settings_text()}; {name} / particle {pid}"
        if figure == "frame":
            frame = int(self.player.value)
            return plots.render(self._frame_plot, movie, name, pid, frame, fmt=fmt,
                                subtitle=sub, mpl_opts={"fig_inches": 4.5}), \
                f"{stem}_frame{frame}.{fmt}"
        if figure == "d_capacity":
            return plots.render(self._offset_plot, movie, name, pid, True, fmt=fmt,
                                subtitle=sub, mpl_opts=size), f"{stem}_d_capacity.{fmt}"
        if figure == "kymograph":
            return plots.render(self._kymograph_plot, movie, name, pid, True, fmt=fmt,
                                subtitle=sub, colorbar_label=plots.KYMOGRAPH_LABEL,
                                mpl_opts=size), f"{stem}_kymograph.{fmt}"
        raise ValueError(f"unknown figure {figure!r}; one of {self.PARTICLE_FIGURES}")

    def _make_downloads(self):
        def timeseries_csv():
            movie, _name, _pid, stem = self._chosen()
            return B.csv_bytes(movie.timeseries), f"{stem}_timeseries.csv"

        def file(figure, fmt):
            return lambda: self.particle_file(figure, fmt)

        def fig5e(fmt):
            return lambda: self.fig5e_file(fmt)

        def particles_csv():
            if self.particles is None:
                raise ValueError("no particles: nothing to download")
            return B.csv_bytes(self.particles)

        return {
            **{f"fig5e.{fmt}": B.download_button(f"Fig. 5e ({fmt.upper()})", f"fig5e.{fmt}",
                                                 fig5e(fmt), width=130 if fmt == "png" else 70)
               for fmt in plots.FORMATS},
            "fig5e.csv": B.download_button("Fig. 5e table (CSV)", "fig5e.csv",
                                           lambda: B.csv_bytes(self._need_stats())),
            "particles.csv": B.download_button("all particles (CSV)", "particles.csv",
                                               particles_csv),
            **{f"{f}.{fmt}": B.download_button(f"{label} ({fmt.upper()})", f"{f}.{fmt}",
                                               file(f, fmt))
               for fmt in plots.FORMATS for f, label in (
                ("frame", "movie frame"), ("d_capacity", "d(capacity)"),
                ("kymograph", "kymograph"))},
            "timeseries.csv": B.download_button("particle time series (CSV)",
                                                "timeseries.csv", timeseries_csv, width=210),
        }

    # ------------------------------------------------------------------ layout

    def table(self) -> pd.DataFrame | None:
        """Fig. 5e numbers (``stats``) for display/download."""
        return self.stats

    def __panel__(self):
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.onload(self._load_once)
        else:
            self._load_once()
        skip_unchanged_stylesheets()  # the browser's style work per update (in a server)
        stats_table = self.stats_table = stats_table_widget(
            pn.bind(lambda s: s if s is not None else pd.DataFrame(), self.param.stats))
        d = self.downloads
        label = {"width": 80, "margin": (12, 5)}
        page = [
            pn.pane.Markdown("## asymflux cohort browser: asymmetric shrinking cores per ageing "
                             "condition (Lun et al. 2025, Fig. 5e)", width=1100),
            self.alert,
            self.loader,
            pn.Row(self.datasets_input, pn.Column(pn.pane.Markdown("or upload a zipped dataset "
                                                                   "folder:"), self.upload,
                                                  width=320)),
            self.offset_input,
            self.summary,
            self.offset_used,
            self.offset_card,
            self.cohort_pane,
            stats_table,
        ]
        rest = [
            pn.Row(pn.pane.Markdown("Download:", **label), d["fig5e.png"], d["fig5e.svg"],
                   d["fig5e.pdf"], d["fig5e.csv"], d["particles.csv"]),
            pn.pane.Markdown("### Particles (click a row to show it)"),
            self.particle_table,
            self.flags_card,
            pn.pane.Markdown("### Particle"),
            pn.Row(self.particle_select, self.player),
            self.particle_info,
            self.frame_info,
            self.particle_pane,
            pn.Row(pn.pane.Markdown("Download:", **label), d["frame.png"], d["d_capacity.png"],
                   d["kymograph.png"], d["timeseries.csv"]),
            *(pn.Row(pn.pane.Markdown("", **label), d[f"frame.{fmt}"], d[f"d_capacity.{fmt}"],
                     d[f"kymograph.{fmt}"]) for fmt in ("svg", "pdf")),
            pn.pane.Markdown("### dQ/dV and the mean optical signal (the particle's dataset)"),
            self.dqdv_pane,
        ]
        # In a server the page opens with Fig. 5e's part only: the particles' part joins it
        # once Fig. 5e is shown (_show_rest): the browser's first layout and the update
        # bringing Fig. 5e are the smaller and quicker for it
        self._rest = rest if R.in_server() else []
        self._layout = pn.Column(*page, *([] if self._rest else rest), width=1200)
        return self._layout

    def _show_rest(self):
        """The page's particles part (tables, particle, dQ/dV, downloads) added below Fig. 5e
        (once; a page built outside a server has it from the start)."""
        rest, self._rest = getattr(self, "_rest", []), []
        if rest and self._open:
            self._layout.extend(rest)

    def _load_once(self):
        R.timing_mark("cohort page: loaded in the browser")
        if self._loaded_for != (self.datasets, self.time_offset):
            self._request_load()
        else:  # shown already: the whole page
            self._show_rest()
