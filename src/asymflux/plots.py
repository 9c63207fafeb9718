"""HoloViews figure builders: one function per figure, shared by notebooks, dashboards
and ``asymflux demo``. Each takes tidy data (from :mod:`asymflux.figures` or
:mod:`asymflux.analysis`) and returns a HoloViews object; render it with the bokeh
backend in notebooks/dashboards or save it with :func:`save_png`.
"""

from __future__ import annotations

import textwrap
import threading

import numpy as np
import pandas as pd

THETA_CMAP = "viridis"
KYMOGRAPH_LABEL = "differential intensity"
"""The quantity of the differential movies and kymographs (their colour bars' label)."""


def _headless_matplotlib() -> None:
    """Make matplotlib draw off screen (Agg) when nothing has chosen its backend yet and no
    notebook kernel runs: PNGs for files and downloads need no display, and a server or a
    test process whose DISPLAY points to a closed X server must not pick a GUI backend."""
    import sys

    if "matplotlib.pyplot" in sys.modules or "ipykernel" in sys.modules:
        return
    import matplotlib

    matplotlib.use("Agg")


def use_backend(name: str = "bokeh"):
    """Load a HoloViews plotting backend (``"bokeh"`` for notebooks and dashboards,
    ``"matplotlib"`` for PNG files) and make it the current one."""
    import holoviews as hv

    if name == "matplotlib" and name not in hv.Store.renderers:
        _headless_matplotlib()
    if name not in hv.Store.renderers:
        hv.extension(name, logo=False)
    hv.Store.set_current_backend(name)
    return hv


def _hv():
    import holoviews as hv

    if not hv.Store.renderers:
        use_backend("bokeh")
    return hv


def _style(element, common=None, *, bokeh=None, matplotlib=None):
    """Apply options for every loaded backend (bokeh and matplotlib name some differently)."""
    import holoviews as hv

    for backend, extra in (("bokeh", bokeh), ("matplotlib", matplotlib)):
        if backend in hv.Store.renderers:
            opts = {**(common or {}), **(extra or {})}
            if opts:
                element = element.opts(backend=backend, **opts)
    return element


def theta_map(x_um, y_um, theta, *, title="", clim=(None, None), colorbar=False):
    """One θ map: ``theta`` (n_row, n_col) on pixel centres ``x_um``, ``y_um`` (row 0 on top)."""
    hv = _hv()
    dx = abs(x_um[1] - x_um[0]) if len(x_um) > 1 else 1.0
    dy = abs(y_um[1] - y_um[0]) if len(y_um) > 1 else 1.0
    bounds = (x_um.min() - dx / 2, y_um.min() - dy / 2, x_um.max() + dx / 2, y_um.max() + dy / 2)
    img = hv.Image(np.asarray(theta, dtype=float), bounds=bounds, kdims=["x (µm)", "y (µm)"],
                   vdims=[hv.Dimension("theta", label="Li occupancy θ", range=clim)])
    return img.opts(cmap=THETA_CMAP, clim=clim, title=title, colorbar=colorbar,
                    clipping_colors={"NaN": "white"}, fontsize={"title": 8})


def fig4_theta_maps(data: pd.DataFrame, *, clim=None, surfaces=None, radius_um: float | None = None,
                    frame_size: int | None = None, colorbar: bool = False):
    """Fig. 4: θ maps, one row per surface, one column per time.

    Parameters
    ----------
    data : DataFrame from :func:`asymflux.figures.fig4_data` (``surface, minutes, x_um,
        y_um, theta``). A ``theta`` that is all NaN (a time the run did not reach) gives
        an empty panel titled "not reached".
    clim : (float, float), optional
        Colour limits (default: the data's range).
    surfaces : mapping label -> :class:`asymflux.model.Surface`, optional
        Outline each particle and draw its blocked arcs thick (red), as in Fig. 4.
    radius_um : float, optional
        Radius of the outline (default: half the extent of the pixel grid).
    frame_size : int, optional
        Width and height of each panel in screen pixels (bokeh).
    colorbar : bool
        A θ colour bar beside the last panel of each row (the panels share ``clim``).
    """
    hv = _hv()
    if clim is None:
        finite = [t for t in data["theta"] if np.any(np.isfinite(t))]
        lo = min(np.nanmin(t) for t in finite) if finite else 0.0
        hi = max(np.nanmax(t) for t in finite) if finite else 1.0
        clim = (float(lo), float(hi))
    panels, outlines = [], {}
    ncols = data["minutes"].nunique()
    for i, (_, row) in enumerate(data.iterrows()):
        reached = bool(np.any(np.isfinite(row.theta)))
        title = f"{row.surface}, {row.minutes:g} min" + ("" if reached else " (not reached)")
        panel = theta_map(row.x_um, row.y_um, row.theta, clim=clim, title=title,
                          colorbar=colorbar and (i + 1) % ncols == 0)
        if frame_size is not None:
            panel = _style(panel, bokeh={"frame_width": frame_size, "frame_height": frame_size})
        if surfaces is not None and row.surface in surfaces:
            r = radius_um if radius_um is not None else float(
                (np.max(row.x_um) - np.min(row.x_um)) / 2)
            if (row.surface, r) not in outlines:
                outlines[row.surface, r] = surface_outline(surfaces[row.surface], r)
            panel = panel * outlines[row.surface, r]
        panels.append(panel)
    return hv.Layout(panels).cols(ncols)


def surface_outline(surface, radius_um: float, *, center=(0.0, 0.0), n: int = 361):
    """The particle's perimeter (thin, black) with its blocked arcs (thick, red).

    Angles follow ``docs/architecture.md`` (counter-clockwise from +x, y up), so on a
    :func:`theta_map` an arc centred at 180° sits on the left. Drawn as two curves (arcs
    separated by NaN), which update in a dashboard several times faster than paths.
    """
    hv = _hv()
    phi = np.linspace(0, 2 * np.pi, n)
    x0, y0 = center
    kd, vd = ["x (µm)"], ["y (µm)"]
    circle = _style(hv.Curve((x0 + radius_um * np.cos(phi), y0 + radius_um * np.sin(phi)),
                             kdims=kd, vdims=vd),
                    {"color": "black"}, bokeh={"line_width": 1}, matplotlib={"linewidth": 1})
    blocked = _style(hv.Curve(arc_outline_xy(surface, radius_um, center=center, n=n),
                              kdims=kd, vdims=vd),
                     {"color": "red"}, bokeh={"line_width": 4}, matplotlib={"linewidth": 3})
    return circle * blocked


def arc_outline_xy(surface, radius_um: float, *, center=(0.0, 0.0), n: int = 361):
    """``(x, y)`` in µm of a surface's blocked (or film-covered) arcs on a circle of
    ``radius_um``, the arcs separated by NaN (empty without arcs): the red curve of
    :func:`surface_outline`, without HoloViews (the model explorer redraws it per change)."""
    x0, y0 = center
    xs, ys = [], []
    for arc in getattr(surface, "arcs", ()):
        c, hw = np.deg2rad(arc.center_deg), arc.half_width_rad
        t = np.linspace(c - hw, c + hw, max(8, int(n * arc.fraction)))
        xs += [x0 + radius_um * np.cos(t), [np.nan]]
        ys += [y0 + radius_um * np.sin(t), [np.nan]]
    return (np.concatenate(xs) if xs else np.zeros(0),
            np.concatenate(ys) if ys else np.zeros(0))


def fig5b_layers(table: pd.DataFrame, *, current_rate_mA_g: float | None = None,
                 current_li_extracted: float | None = None,
                 labels: dict | None = None) -> list[tuple[str, str, object]]:
    """The layers of :func:`fig5b_rate_capability`, in drawing order, as data.

    Returns
    -------
    list of (kind, label, data)
        ``kind`` is ``"curve"`` or ``"scatter"`` (``data``: a DataFrame ``rate_mA_g,
        li_extracted``; one of each per surface, sorted by rate), ``"vline"`` (``data``: the
        rate, mA/g) or ``"star"`` (the current setting's point, a one-row DataFrame). A page
        that updates the figure in place puts these columns into its data sources without
        building the HoloViews elements (``asymflux.views.model_explorer``).
    """
    labels = labels or {}
    layers = []
    for label, grp in table.groupby("blocked", sort=False):
        grp = grp.sort_values("rate_mA_g")[["rate_mA_g", "li_extracted"]]
        name = labels.get(label, "no blocking" if label == "none" else f"blocked {label}")
        layers += [("curve", name, grp), ("scatter", name, grp)]
    if current_rate_mA_g is not None:
        layers.append(("vline", "", float(current_rate_mA_g)))
        if current_li_extracted is not None:
            # its own legend entry: under the current setting's curve's label its black
            # star was drawn over that curve's coloured marker in the legend
            layers.append(("star", "at the current rate", pd.DataFrame(
                {"rate_mA_g": [float(current_rate_mA_g)],
                 "li_extracted": [float(current_li_extracted)]})))
    return layers


def fig5b_rate_capability(table: pd.DataFrame, *, current_rate_mA_g: float | None = None,
                          current_li_extracted: float | None = None, logx: bool = False,
                          labels: dict | None = None):
    """Fig. 5b: Li extracted at the cut-off against rate, one curve per surface.

    Parameters
    ----------
    table : DataFrame with ``rate_mA_g, blocked, li_extracted`` (from
        :func:`asymflux.model.rate_capability`); its ``attrs["end_condition"]``, when
        present, goes into the title.
    current_rate_mA_g : float, optional
        Marks a rate with a vertical line (the dashboard's slider).
    current_li_extracted : float, optional
        With ``current_rate_mA_g``: also mark the point (rate, Li extracted) of the
        current setting with a star.
    logx : bool
        Logarithmic rate axis.
    labels : dict, optional
        Legend label for a ``blocked`` value (default: ``"no blocking"`` for ``"none"``,
        ``"blocked <value>"`` otherwise).

    The layers, as data: :func:`fig5b_layers`.
    """
    hv = _hv()
    kd, vd = [hv.Dimension("rate_mA_g", label="rate (mA/g)")], [
        hv.Dimension("li_extracted", label="Li extracted at cut-off (per f.u.)")]
    layers = fig5b_layers(table, current_rate_mA_g=current_rate_mA_g,
                          current_li_extracted=current_li_extracted, labels=labels)
    overlay = hv.Overlay([hv.Curve(d, kd, vd, label=name) if kind == "curve"
                          else hv.Scatter(d, kd, vd, label=name)
                          for kind, name, d in layers if kind in ("curve", "scatter")])
    for kind, name, d in layers:
        if kind == "vline":
            overlay = overlay * hv.VLine(d).opts(color="grey")
        elif kind == "star":
            star = hv.Scatter(d, kd, vd, label=name)
            overlay = overlay * _style(star, {"color": "black", "marker": "*"},
                                       bokeh={"size": 16}, matplotlib={"s": 150})
    end = table.attrs.get("end_condition")  # rate_capability's: written on the plot
    title = "Rate capability (Fig. 5b)" + (f"\neach charge {end}" if end else "")
    overlay = overlay.opts(title=title, legend_position="bottom_left")
    if logx:
        overlay = overlay.opts(logx=True)
    return overlay


FLUX_RATIO_COLOR, MODEL_VOLTAGE_COLOR = "#d62728", "#1f77b4"
"""Line colours of the model's flux ratio and V(t) (the measured voltage is black)."""


def _run_curve(curves, x, y, kd, vd, label, color):
    hv = _hv()
    data = (pd.DataFrame({x: [], y: []}) if curves is None or not len(curves)
            else pd.DataFrame({x: np.asarray(curves[x], dtype=float),
                               y: np.asarray(curves[y], dtype=float)}))
    return _style(hv.Curve(data, kd, vd, label=label), {"color": color},
                  bokeh={"line_width": 2}, matplotlib={"linewidth": 2})


def flux_ratio_vs_time(curves: pd.DataFrame | None, *, title="flux ratio of the arc",
                       label="model (θ maps' run)", ylim=(0.0, 1.1)):
    """The blocked arc's flux ratio against time of charge: its mean current density over
    the clean surface's (:attr:`asymflux.model.Result.arc_flux_ratio`; flat at η for a
    prescribed arc, following the state for a kinetic film).

    Parameters
    ----------
    curves : DataFrame
        ``minutes, flux_ratio`` (:func:`asymflux.views._compute.run_curves` of a run: the
        model explorer's ``curves()``); None or empty gives an empty curve.

    Returns
    -------
    holoviews.Overlay
        One curve (an overlay, so that its legend is drawn).
    """
    hv = _hv()
    kd = [hv.Dimension("minutes", label="time of charge (min)")]
    vd = [hv.Dimension("flux_ratio", label="flux ratio η (arc / clean surface)")]
    curve = _run_curve(curves, "minutes", "flux_ratio", kd, vd, label, FLUX_RATIO_COLOR)
    overlay = hv.Overlay([curve]).opts(title=title)
    return _style(overlay, {"ylim": ylim}, bokeh={"legend_position": "top_right"})


def voltage_vs_capacity(curves: pd.DataFrame | None, measured: pd.DataFrame | None = None, *,
                        title="voltage vs Li", label="model",
                        measured_label="measured (cycler)"):
    """The model's voltage vs Li against capacity beside a measured cycler voltage.

    Parameters
    ----------
    curves : DataFrame
        ``capacity_mAh_g, voltage_V`` of a run (:func:`asymflux.views._compute.run_curves`:
        the particle potential with a kinetic surface, else the highest surface OCV).
    measured : DataFrame, optional
        ``capacity_mAh_g, voltage_V`` of a dataset's echem table; drawn first, in black
        (an empty curve without it, so that the plot keeps its layers).

    Returns
    -------
    holoviews.Overlay
        The measured curve, then the model's.
    """
    hv = _hv()
    kd = [hv.Dimension("capacity_mAh_g", label="capacity (mAh/g)")]
    vd = [hv.Dimension("voltage_V", label="voltage vs Li (V)")]
    meas = _run_curve(measured, "capacity_mAh_g", "voltage_V", kd, vd, measured_label, "black")
    model = _run_curve(curves, "capacity_mAh_g", "voltage_V", kd, vd, label,
                       MODEL_VOLTAGE_COLOR)
    overlay = hv.Overlay([meas, model]).opts(title=title)
    return _style(overlay, bokeh={"legend_position": "bottom_right"})


QUALITY_DOC = "docs/analysis.md#quality-flags-what-the-microscope-did-to-the-numbers"
"""Where the quality flags the plots mark are explained (each flag, its threshold and what it
means for the numbers)."""

BAND_LABEL = "d range (threshold ± noise)"
FLAGGED_LABEL = "flagged frame"
FLAGGED_NO_D_LABEL = "flagged, no d"


def band_xy(x, low, high) -> tuple[np.ndarray, np.ndarray]:
    """The outline of a band between ``low`` and ``high`` over ``x``, as the Bokeh patch of
    a HoloViews ``Area`` holds it: one polygon per run of finite values, separated by NaN
    (``holoviews.plotting.bokeh.chart.SpreadPlot._split_area``)."""
    x, low, high = (np.asarray(a, dtype=float) for a in (x, low, high))
    split = np.flatnonzero(~np.isfinite(x) | ~np.isfinite(low) | ~np.isfinite(high))
    xs, ys = [], []
    for i, (xx, lo, hi) in enumerate(zip(np.split(x, split), np.split(low, split),
                                         np.split(high, split), strict=True)):
        if i:
            xx, lo, hi = xx[1:], lo[1:], hi[1:]
        if not len(xx):
            continue
        xs += [np.append(xx, xx[::-1]), [np.nan]]
        ys += [np.append(lo, hi[::-1]), [np.nan]]
    if not xs:
        return np.array([]), np.array([])
    return np.concatenate(xs[:-1]), np.concatenate(ys[:-1])


def _flagged(ts) -> np.ndarray:
    if "quality_flags" not in ts:
        return np.zeros(len(ts), bool)
    return ts["quality_flags"].fillna("").astype(str).str.len().to_numpy() > 0


def offset_layers(timeseries: pd.DataFrame, *, by: str | None = "source", normalized=False,
                  curves=None, quality=None) -> list[tuple[str, str, pd.DataFrame]]:
    """The layers of :func:`offset_vs_capacity`, in drawing order, as data: ``(kind,
    label, DataFrame)``, arguments as there.

    First a ``"band"`` (``capacity_mAh_g``, ``d_nm_low``, ``d_nm_high``, or
    ``offset_norm_low`` / ``_high``) for each curve named in ``quality``; then for each
    curve a ``"curve"`` and a ``"scatter"`` (``capacity_mAh_g``, ``offset_nm`` or
    ``offset_norm``); then for each curve in ``quality`` its ``"flagged"`` frames (any
    quality flag; ``capacity_mAh_g``, d at that frame, ``quality_flags``) and its
    ``"flagged_no_d"`` ones (flagged and d NaN while a core is left, e.g.
    ``core_too_small``: d given as 0; the frames after the core has vanished, which have no
    d to lose, are not marked).
    A curve in ``quality`` whose table has no such columns gets those layers empty, so a
    plot updated in place keeps its layers.
    """
    y = "offset_norm" if normalized else "offset_nm"
    lo, hi = ("offset_norm_low", "offset_norm_high") if normalized else ("d_nm_low", "d_nm_high")
    if by and curves is not None:
        groups = [(c, timeseries[timeseries[by] == c] if by in timeseries
                   else timeseries.iloc[:0]) for c in curves]
    elif by and by in timeseries:
        groups = list(timeseries.groupby(by, sort=False))
    else:
        groups = [("", timeseries)]
    if quality is True:
        quality = [str(label) for label, _ in groups]
    quality = [str(q) for q in (quality or ())]
    groups = [(str(label), grp.sort_values("capacity_mAh_g")) for label, grp in groups]
    bands, lines, flags = [], [], []
    for label, grp in groups:
        lines += [("curve", label, grp[["capacity_mAh_g", y]]),
                  ("scatter", label, grp[["capacity_mAh_g", y]])]
        if label not in quality:
            continue
        if {lo, hi} <= set(grp.columns):
            band = grp[["capacity_mAh_g", lo, hi]]
        else:
            band = pd.DataFrame({"capacity_mAh_g": [], lo: [], hi: []})
        bands.append(("band", label, band))
        flagged = _flagged(grp)
        d = grp[y].to_numpy(float)
        if "unreacted_fraction" in grp:  # not after the core has vanished (no d to lose)
            core = grp["unreacted_fraction"].to_numpy(float) > 0
            flagged &= np.isfinite(d) | core
        cols = ["capacity_mAh_g", y, "quality_flags"]
        f = grp.loc[flagged, [c for c in cols if c in grp]].reindex(columns=cols)
        with_d = np.isfinite(d[flagged])
        flags += [("flagged", label, f[with_d].astype({"quality_flags": str})),
                  ("flagged_no_d", label, f[~with_d].assign(**{y: 0.0}).astype(
                      {"quality_flags": str}))]
    return bands + lines + flags


def offset_vs_capacity(timeseries: pd.DataFrame, *, by: str | None = "source", normalized=False,
                       title="d(capacity) (Fig. 5d)", curves=None, quality=None):
    """Fig. 5d: distance d between O_COM and O_Li-rich against capacity.

    Parameters
    ----------
    timeseries : DataFrame
        Rows of :func:`asymflux.analysis.particle_timeseries` (``capacity_mAh_g``,
        ``offset_nm``, ``offset_norm``) for one particle, or several stacked with a
        column ``by`` (e.g. ``source`` = measured / simulated) giving one curve each.
    by : str or None
        Column naming the curves.
    normalized : bool
        Plot d / R_eq instead of d in nm.
    curves : sequence of str, optional
        Values of ``by`` to draw, in this order; one without rows gives an empty curve,
        so the plot keeps its layers (as a plot updated in place needs). Default: the
        values present, in order of appearance.
    quality : True or sequence of str, optional
        Curves (values of ``by``; True: every one; ``by=None``: ``[""]`` or True) drawn
        with their quality: a band under the curve, d with the dI threshold moved down and
        up by the pixel noise (``d_nm_low`` .. ``d_nm_high`` of the table), and the frames
        with a quality flag (``quality_flags``, hover for the names) marked with a cross
        at their d, or a triangle at d = 0 when d is NaN there while a core is left
        (:data:`QUALITY_DOC`). Band and marks stay out of the legend (a 380-pixel plot's
        legend covered the curves): the page says what they are beside the plot.

    The layers, as data: :func:`offset_layers`.
    """
    hv = _hv()
    y = "offset_norm" if normalized else "offset_nm"
    vd = [hv.Dimension(y, label="d / R_eq" if normalized else "d (nm)")]
    kd = [hv.Dimension("capacity_mAh_g", label="capacity (mAh/g)")]
    flags_dim = hv.Dimension("quality_flags", label="quality flags")
    layers = offset_layers(timeseries, by=by, normalized=normalized, curves=curves,
                           quality=quality)
    several = len({label for kind, label, _ in layers if kind == "band"}) > 1

    def name(label, what):
        return f"{label}: {what}" if several and label else what

    elements = []
    for kind, label, d in layers:
        if kind == "band":
            # the upper edge first: HoloViews' Area fills from its second value dimension
            # to its first (the first labelled as d: the overlay's axis says "d (nm)")
            edges = [hv.Dimension(d.columns[2], label=vd[0].label),
                     hv.Dimension(d.columns[1], label=f"{vd[0].label}, low end")]
            el = _style(hv.Area(d, kd, edges, label=name(label, BAND_LABEL)),
                        {"alpha": 0.25, "show_legend": False}, bokeh={"line_alpha": 0.0},
                        matplotlib={"linewidth": 0.0})
        elif kind in ("flagged", "flagged_no_d"):
            el = _style(
                hv.Scatter(d, kd, [*vd, flags_dim],
                           label=name(label, FLAGGED_LABEL if kind == "flagged"
                                      else FLAGGED_NO_D_LABEL)),
                {"color": "black", "show_legend": False},
                bokeh={"marker": "x" if kind == "flagged" else "triangle", "size": 9,
                       "tools": ["hover"]},
                matplotlib={"marker": "X" if kind == "flagged" else "^", "s": 30})
        else:
            el = (hv.Curve if kind == "curve" else hv.Scatter)(d, kd, vd, label=label)
        elements.append(el)
    overlay = hv.Overlay(elements).opts(title=title)
    return _style(overlay, bokeh={"legend_position": "top_left"})


def dqdv_optical(table: pd.DataFrame, *, title="dQ/dV and the mean optical signal"):
    """dQ/dV beside the particles' mean optical signal, against voltage.

    Parameters
    ----------
    table : DataFrame
        :func:`asymflux.analysis.incremental_capacity_table` of a dataset's timeseries
        (``segment, voltage_V, dqdv_mAh_g_V, mean_dI, dmean_dI_dV``); empty gives empty
        panels.

    Returns
    -------
    holoviews.Layout
        Left: dQ/dV (solid, one curve per segment: charge, discharge or half-cycle) and
        d(mean dI)/dV scaled to the dQ/dV's peak of its segment (dashed): their peaks
        line up when the optical signal follows the charge. Right: the mean dI.
    """
    hv = _hv()
    vdim = hv.Dimension("voltage_V", label="voltage vs Li (V)")
    dq = hv.Dimension("dqdv_mAh_g_V", label="dQ/dV (mAh/g/V)")
    di = hv.Dimension("mean_dI", label="mean dI of the particles")
    table = table if table is not None else pd.DataFrame()
    segments = list(dict.fromkeys(table["segment"])) if "segment" in table else []
    left, right = [], []
    for seg in segments or [""]:
        g = (table[table["segment"] == seg] if seg else
             pd.DataFrame({c: [] for c in ("voltage_V", "dqdv_mAh_g_V", "mean_dI",
                                           "dmean_dI_dV")}))
        g = g.sort_values("voltage_V")
        peak_q = np.nanmax(np.abs(g["dqdv_mAh_g_V"])) if len(g) else np.nan
        peak_i = np.nanmax(np.abs(g["dmean_dI_dV"])) if len(g) else np.nan
        scale = peak_q / peak_i if np.isfinite(peak_q) and peak_i > 0 else np.nan
        optical = g.assign(dqdv_mAh_g_V=g["dmean_dI_dV"] * scale)
        label = str(seg) or "dQ/dV"
        left.append(hv.Curve(g, vdim, dq, label=f"dQ/dV {seg}".strip()))
        left.append(_style(hv.Curve(optical, vdim, dq,
                                    label=f"d(mean dI)/dV, scaled {seg}".strip()),
                           bokeh={"line_dash": "dashed"}, matplotlib={"linestyle": "dashed"}))
        right.append(hv.Curve(g, vdim, di, label=label) * hv.Scatter(g, vdim, di, label=label))
    a = _style(hv.Overlay(left).opts(title=title), bokeh={"legend_position": "top_left"})
    b = hv.Overlay(right).opts(title="mean optical signal")
    return hv.Layout([a, b]).cols(2)


def kymograph(kymo, distance_nm, capacity_mAh_g, *, boundaries: pd.DataFrame | None = None,
              title="line-cut kymograph (Fig. 5c)", clim=(0.0, 0.3), cmap="Reds",
              xticks: int = 4):
    """Fig. 5c: differential intensity along a line-cut against capacity.

    Parameters
    ----------
    kymo : (n_frames, n_points) array
        From :func:`asymflux.analysis.line_kymograph`.
    distance_nm : (n_points,) array
        Distance along the line.
    capacity_mAh_g : (n_frames,) array
        Capacity of each frame (increasing).
    boundaries : DataFrame, optional
        From :func:`asymflux.analysis.kymograph_boundaries` (``frame, position_nm``):
        drawn as black dots (the paper's dashed guides); an empty table still adds the
        (empty) layer.
    xticks : int
        Number of ticks of the distance axis, at most (more overlap on a narrow plot).
    """
    hv = _hv()
    kymo = np.asarray(kymo, dtype=float)
    x = np.asarray(distance_nm, dtype=float)
    cap = np.asarray(capacity_mAh_g, dtype=float)
    keep = np.isfinite(cap)
    kymo, cap = kymo[keep], cap[keep]
    kd = [hv.Dimension("distance_nm", label="distance along line (nm)"),
          hv.Dimension("capacity_mAh_g", label="capacity (mAh/g)")]
    vd = [hv.Dimension("dI", label=KYMOGRAPH_LABEL, range=clim)]
    if cap.size < 2 or x.size < 2:
        img = hv.QuadMesh(([0, 1], [0, 1], np.full((2, 2), np.nan)), kd, vd)
    else:
        img = hv.QuadMesh((x, cap, kymo), kd, vd)
    # four distance ticks: five (0 to 2500 nm) overlap on a dashboard's 340-pixel plot
    img = _style(img.opts(cmap=cmap, clim=clim, title=title), {"xticks": xticks},
                 bokeh={"colorbar": True, "tools": ["hover"]})
    if boundaries is not None:
        frames = np.flatnonzero(keep)
        xs = ys = np.empty(0)
        if len(boundaries):
            b = boundaries[boundaries["frame"].isin(frames)]
            fmap = {f: c for f, c in zip(frames, cap, strict=True)}
            xs, ys = b["position_nm"].to_numpy(float), b["frame"].map(fmap).to_numpy(float)
        pts = hv.Scatter((xs, ys), kd[0], kd[1])
        img = img * _style(pts, {"color": "black"}, bokeh={"size": 3}, matplotlib={"s": 4})
    return img


def differential_frame(dI, pixel_nm: float, *, title="", clim=(0.0, 0.3), cmap="Reds",
                       line=None):
    """One frame of a differential movie (dI = I/I0 - 1; the Fig. 2 colour scale, white to red).

    ``dI`` is (n_row, n_col); axes are in µm from the top-left corner, y pointing up.
    ``line``: ``((row0, col0), (row1, col1))`` pixel indices of a line-cut, drawn in blue.
    """
    hv = _hv()
    dI = np.asarray(dI, dtype=float)
    n_row, n_col = dI.shape
    p = float(pixel_nm) / 1000.0
    img = hv.Image(dI, bounds=(0, 0, n_col * p, n_row * p), kdims=["x (µm)", "y (µm)"],
                   vdims=[hv.Dimension("dI", label=KYMOGRAPH_LABEL, range=clim)])
    img = _style(img.opts(cmap=cmap, clim=clim, title=title),
                 bokeh={"colorbar": True, "data_aspect": 1}, matplotlib={"colorbar": True})
    if line is None:
        return img
    (r0, c0), (r1, c1) = line
    path = hv.Path([[(c0 * p + p / 2, (n_row - r0) * p - p / 2),
                     (c1 * p + p / 2, (n_row - r1) * p - p / 2)]], kdims=["x (µm)", "y (µm)"])
    return img * _style(path, {"color": "blue"}, bokeh={"line_width": 2},
                        matplotlib={"linewidth": 2})


FRESH_LABELS = ("fresh", "pristine", "uncycled")
"""Ageing conditions drawn first in Fig. 5e (case-insensitive)."""

SYMMETRIC_COLOR, ASYMMETRIC_COLOR = "#9ecae1", "#2ca02c"
"""Bar colours of Fig. 5e: symmetric (light blue) and asymmetric (green) particles."""


def condition_order(conditions, appearance=None) -> list[str]:
    """Ageing conditions in the order Fig. 5e draws them: fresh first, then the aged ones in the
    order of ``appearance`` (e.g. the pooled particle table's ``ageing`` column: the order in
    which the datasets were given); conditions not in ``appearance`` (all of them without it)
    follow by the number of ageing cycles in their names ("... 200 cycles"), then as given.
    """
    import re

    conditions = [str(c) for c in dict.fromkeys(conditions)]
    seen = [str(c) for c in dict.fromkeys(appearance if appearance is not None else ())]
    rank = {c: i for i, c in enumerate(c for c in seen if c in conditions)}

    def cycles(c):
        m = re.search(r"(\d+)\s*cycles?", c)
        return int(m.group(1)) if m else float("inf")

    def key(item):
        i, c = item
        fresh = c.strip().lower() in FRESH_LABELS
        return (not fresh, rank.get(c, len(rank)), 0 if c in rank else cycles(c), i)

    return [c for _i, c in sorted(enumerate(conditions), key=key)]


def fig5e_order(stats: pd.DataFrame, appearance=None, *, by="ageing") -> pd.DataFrame:
    """The rows of ``stats`` (:func:`asymflux.analysis.cohort_statistics`, sorted by name) in
    the order Fig. 5e draws them (:func:`condition_order`; ``appearance``: the conditions in
    the order they appear in the data, e.g. the particle table's ``ageing`` column); ``by`` as
    text, a fresh index."""
    stats = stats.assign(**{by: stats[by].astype(str)})
    order = condition_order(stats[by], appearance)
    return stats.set_index(by).loc[order].reset_index()


def fig5e_cohorts(stats: pd.DataFrame, *, by="ageing", order=None, width=900, height=420):
    """Fig. 5e as the paper draws it: per ageing condition, the symmetric and asymmetric
    particles as stacked bars (counts, left axis) and the fraction asymmetric as a diamond
    with its 95 % Wilson interval (right axis, 0-1). Conditions: fresh first, then
    ``order`` (see :func:`condition_order`).

    Parameters
    ----------
    stats : DataFrame from :func:`asymflux.analysis.cohort_statistics` (``n_symmetric``,
        ``n_asymmetric``, ``fraction_asymmetric``, ``ci_low``, ``ci_high``).
    order : sequence of str, optional
        Conditions in the order they appear in the data (default: the rows' order).
    width, height : int
        Size in screen pixels (bokeh). For a PNG use :func:`fig5e_figure`: HoloViews'
        matplotlib backend draws no second y axis.

    Returns
    -------
    holoviews.Overlay
        Bars, error bars and diamonds on two y axes (bokeh ``multi_y``).
    """
    hv = _hv()
    t = fig5e_order(stats, order, by=by)
    groups = list(t[by])
    cond = hv.Dimension(by, label="ageing condition")
    long = pd.DataFrame({
        by: groups * 2,
        "behaviour": ["symmetric"] * len(groups) + ["asymmetric"] * len(groups),
        "count": np.r_[t["n_symmetric"].to_numpy(), t["n_asymmetric"].to_numpy()],
    })
    bars = hv.Bars(long, [cond, "behaviour"], [hv.Dimension("count", label="number of particles")])
    bars = _style(bars, bokeh={
        "stacked": True, "tools": ["hover"], "line_color": "white", "show_legend": True,
        "ylim": (0, max(1.0, float((t["n_symmetric"] + t["n_asymmetric"]).max()) * 1.12)),
        "cmap": {"symmetric": SYMMETRIC_COLOR, "asymmetric": ASYMMETRIC_COLOR}})
    frac = t["fraction_asymmetric"].to_numpy(dtype=float)
    fd = pd.DataFrame({by: groups, "fraction": frac,
                       "lo": frac - t["ci_low"].to_numpy(dtype=float),
                       "hi": t["ci_high"].to_numpy(dtype=float) - frac})
    vd = hv.Dimension("fraction", label="fraction asymmetric (95 % Wilson CI)", range=(0, 1))
    err = _style(hv.ErrorBars(fd, [cond], [vd, "lo", "hi"]), {"color": "black"},
                 bokeh={"line_width": 2})
    pts = _style(hv.Scatter(fd, [cond], [vd], label="fraction asymmetric"),
                 {"color": "black"},
                 bokeh={"size": 14, "marker": "diamond", "tools": ["hover"],
                        "line_color": "white"},
                 matplotlib={"s": 60, "marker": "D"})
    overlay = (bars * err * pts).opts(
        title="Fig. 5e: asymmetric particles per ageing condition", show_legend=True)
    return _style(overlay, bokeh={
        "multi_y": True, "width": width, "height": height, "legend_position": "top",
        "hooks": [_whiskers_on_second_axis],
        "xrotation": 0 if max(map(len, groups), default=0) * len(groups) < width / 9 else 20,
        "fontsize": {"title": 12, "labels": 11, "xticks": 10, "yticks": 10},
        "shared_axes": False})


def _whiskers_on_second_axis(plot, _element):
    """Bokeh hook of Fig. 5e: HoloViews draws error bars as Bokeh ``Whisker`` annotations on
    the first y axis even with ``multi_y``; the Wilson intervals belong to the fraction's."""
    from bokeh.models import Whisker

    fig = plot.state
    if "fraction" in getattr(fig, "extra_y_ranges", {}):
        for annotation in fig.center:
            if isinstance(annotation, Whisker):  # drawn over the bars, not under them
                annotation.update(y_range_name="fraction", level="overlay")


def fig5e_figure(stats: pd.DataFrame, *, by="ageing", order=None, size_inches=(9.0, 4.6),
                 dpi=100):
    """Fig. 5e (as :func:`fig5e_cohorts`) drawn with plain matplotlib (stacked bars, and the
    fraction asymmetric with its Wilson interval on a second y axis), for PNG files. Needs no
    display: the figure is not managed by pyplot. Returns a ``matplotlib.figure.Figure``."""
    from matplotlib.figure import Figure

    t = fig5e_order(stats, order, by=by)
    x = np.arange(len(t))
    sym, asym = t["n_symmetric"].to_numpy(float), t["n_asymmetric"].to_numpy(float)
    frac = t["fraction_asymmetric"].to_numpy(float)
    fig = Figure(figsize=size_inches, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    ax.bar(x, sym, width=0.6, color=SYMMETRIC_COLOR, edgecolor="white", label="symmetric")
    ax.bar(x, asym, width=0.6, bottom=sym, color=ASYMMETRIC_COLOR, edgecolor="white",
           label="asymmetric")
    ax.set_ylabel("number of particles")
    ax.set_xlabel("ageing condition")
    ax.set_xticks(x, [textwrap.fill(str(g), 14) for g in t[by]])
    top = float(np.nanmax(sym + asym)) if len(t) else 1.0
    ax.set_ylim(0, top * 1.15 if top > 0 else 1)
    ax2 = ax.twinx()
    yerr = np.vstack([frac - t["ci_low"].to_numpy(float), t["ci_high"].to_numpy(float) - frac])
    ax2.errorbar(x, frac, yerr=yerr, fmt="D", color="black", markerfacecolor="black",
                 markeredgecolor="white", markersize=9, capsize=4, lw=1.5,
                 label="fraction asymmetric (95 % Wilson CI)")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("fraction asymmetric (95 % Wilson CI)")
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3,
              frameon=False, fontsize=9)
    ax.set_title("Fig. 5e: asymmetric particles per ageing condition", pad=24)
    return fig


# ----------------------------------------------------------------------------- PNG files


def figure_png(fig, *, dpi=None, fmt="png") -> bytes:
    """PNG (or ``fmt``: SVG, PDF) bytes of a matplotlib figure (Agg canvas: no display
    needed)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


_BACKEND_LOCK = threading.RLock()


FORMATS = ("png", "svg", "pdf")
"""The file formats of :func:`render` (and the dashboards' figure downloads)."""

def to_png(build, *args, dpi=100, mpl_opts=None, **kwargs) -> bytes:
    """PNG bytes of the HoloViews figure ``build(*args, **kwargs)``: :func:`render` with
    ``fmt="png"``."""
    return render(build, *args, fmt="png", dpi=dpi, mpl_opts=mpl_opts, **kwargs)


def render(build, *args, fmt: str = "png", subtitle: str | None = None,
           colorbar_label: str | None = None, dpi=100, mpl_opts=None, **kwargs) -> bytes:
    """PNG, SVG or PDF bytes of the HoloViews figure ``build(*args, **kwargs)`` (a builder
    of this module), built and rendered with HoloViews' matplotlib backend: no browser,
    webdriver or display needed.

    The builders give their options to the current backend, so for the build the current
    backend is matplotlib, then the previous one again (under a lock: a Panel server builds
    its pages in one thread, so no page sees the switch). A builder returning a matplotlib
    ``Figure`` (:func:`fig5e_figure`) is saved as it is. ``mpl_opts``: matplotlib options of
    the figure (``fig_inches``, ``aspect``, ...). ``subtitle``: a line of text written
    above the figure (e.g. the settings it was computed with), so that the file says what
    it shows without its name. In an SVG the text stays text (searchable, editable).
    ``colorbar_label``: the label of a colour bar added beside the figure's image (a
    :func:`kymograph`, whose HoloViews colour bar, in an overlay, the matplotlib backend
    draws over the plot).
    """
    import holoviews as hv
    import matplotlib

    if fmt not in FORMATS:
        raise ValueError(f"figure format {fmt!r}: expected one of {FORMATS}")
    with _BACKEND_LOCK:
        if "matplotlib" not in hv.Store.renderers:
            _headless_matplotlib()
            import holoviews.plotting.mpl  # noqa: F401 - registers the backend, keeps the current one
        previous = hv.Store.current_backend
        hv.Store.set_current_backend("matplotlib")
        try:
            obj = build(*args, **kwargs)
            with matplotlib.rc_context({"svg.fonttype": "none", "pdf.fonttype": 42}):
                if hasattr(obj, "savefig"):
                    _write_subtitle(obj, subtitle)
                    return figure_png(obj, dpi=dpi, fmt=fmt)
                if mpl_opts:
                    obj = obj.opts(backend="matplotlib", **mpl_opts)
                renderer = hv.renderer("matplotlib").instance(dpi=dpi)
                plot = renderer.get_plot(obj)
                if colorbar_label:
                    _add_colorbar(plot.state, colorbar_label)
                _write_subtitle(plot.state, subtitle)
                data, _info = renderer(plot, fmt=fmt)
                return data.encode("utf-8") if isinstance(data, str) else data
        finally:
            if previous in hv.Store.renderers:
                hv.Store.set_current_backend(previous)


def _add_colorbar(fig, label: str) -> None:
    """A colour bar (labelled ``label``) beside each axes of the matplotlib figure ``fig``
    that draws an image or a mesh."""
    from matplotlib.collections import QuadMesh

    for ax in list(fig.axes):
        mappables = [*ax.images, *(c for c in ax.collections if isinstance(c, QuadMesh))]
        if mappables:
            fig.colorbar(mappables[0], ax=ax, label=label, fraction=0.05, pad=0.03)


def _write_subtitle(fig, subtitle) -> None:
    """``subtitle`` above everything drawn in the matplotlib figure ``fig`` (saved with a
    tight bounding box, which takes it in)."""
    if not subtitle:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if fig.canvas is None or not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    top = fig.get_tightbbox(fig.canvas.get_renderer()).y1 * fig.dpi / fig.bbox.height \
        if fig.bbox.height else 1.0
    fig.text(0.5, max(top, 1.0) + 0.01, subtitle, ha="center", va="bottom", fontsize=8,
             color="0.2", wrap=False, gid="settings")


def save_png(obj, path, *, fig_inches=None) -> None:
    """Render a HoloViews object to a PNG with the matplotlib backend (atomic write)."""
    from ._atomic import write_bytes_atomic

    hv = use_backend("matplotlib")
    if fig_inches is not None:
        obj = obj.opts(fig_inches=fig_inches, backend="matplotlib")
    data, _info = hv.renderer("matplotlib")(obj, fmt="png")
    write_bytes_atomic(path, data)
