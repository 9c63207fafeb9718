"""HoloViews figure builders: one function per figure, shared by notebooks, dashboards
and ``asymflux demo``. Each takes tidy data (from :mod:`asymflux.figures` or
:mod:`asymflux.analysis`) and returns a HoloViews object; render it with the bokeh
backend in notebooks/dashboards or save it with :func:`save_png`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

THETA_CMAP = "viridis"


def use_backend(name: str = "bokeh"):
    """Load a HoloViews plotting backend (``"bokeh"`` for notebooks and dashboards,
    ``"matplotlib"`` for PNG files) and make it the current one."""
    import holoviews as hv

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
                    frame_size: int | None = None):
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
    """
    hv = _hv()
    if clim is None:
        finite = [t for t in data["theta"] if np.any(np.isfinite(t))]
        lo = min(np.nanmin(t) for t in finite) if finite else 0.0
        hi = max(np.nanmax(t) for t in finite) if finite else 1.0
        clim = (float(lo), float(hi))
    panels, outlines = [], {}
    for _, row in data.iterrows():
        reached = bool(np.any(np.isfinite(row.theta)))
        title = f"{row.surface}, {row.minutes:g} min" + ("" if reached else " (not reached)")
        panel = theta_map(row.x_um, row.y_um, row.theta, clim=clim, title=title)
        if frame_size is not None:
            panel = _style(panel, bokeh={"frame_width": frame_size, "frame_height": frame_size})
        if surfaces is not None and row.surface in surfaces:
            r = radius_um if radius_um is not None else float(
                (np.max(row.x_um) - np.min(row.x_um)) / 2)
            if (row.surface, r) not in outlines:
                outlines[row.surface, r] = surface_outline(surfaces[row.surface], r)
            panel = panel * outlines[row.surface, r]
        panels.append(panel)
    ncols = data["minutes"].nunique()
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
    xs, ys = [], []
    for arc in getattr(surface, "arcs", ()):
        c, hw = np.deg2rad(arc.center_deg), arc.half_width_rad
        t = np.linspace(c - hw, c + hw, max(8, int(n * arc.fraction)))
        xs += [x0 + radius_um * np.cos(t), [np.nan]]
        ys += [y0 + radius_um * np.sin(t), [np.nan]]
    blocked = _style(hv.Curve((np.concatenate(xs) if xs else np.zeros(0),
                               np.concatenate(ys) if ys else np.zeros(0)), kdims=kd, vdims=vd),
                     {"color": "red"}, bokeh={"line_width": 4}, matplotlib={"linewidth": 3})
    return circle * blocked


def fig5b_rate_capability(table: pd.DataFrame, *, current_rate_mA_g: float | None = None,
                          current_li_extracted: float | None = None, logx: bool = False,
                          labels: dict | None = None):
    """Fig. 5b: Li extracted at the cut-off against rate, one curve per surface.

    Parameters
    ----------
    table : DataFrame with ``rate_mA_g, blocked, li_extracted`` (from
        :func:`asymflux.model.rate_capability`).
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
    """
    hv = _hv()
    labels = labels or {}
    curves = []
    kd, vd = [hv.Dimension("rate_mA_g", label="rate (mA/g)")], [
        hv.Dimension("li_extracted", label="Li extracted at cut-off (per f.u.)")]
    for label, grp in table.groupby("blocked", sort=False):
        grp = grp.sort_values("rate_mA_g")
        name = labels.get(label, "no blocking" if label == "none" else f"blocked {label}")
        curves.append(hv.Curve(grp, kd, vd, label=name))
        curves.append(hv.Scatter(grp, kd, vd, label=name))
    overlay = hv.Overlay(curves)
    if current_rate_mA_g is not None:
        overlay = overlay * hv.VLine(float(current_rate_mA_g)).opts(color="grey")
        if current_li_extracted is not None:
            star = hv.Scatter([(float(current_rate_mA_g), float(current_li_extracted))], kd, vd,
                              label="current setting")
            overlay = overlay * _style(star, {"color": "black", "marker": "*"},
                                       bokeh={"size": 16}, matplotlib={"s": 150})
    overlay = overlay.opts(title="Rate capability (Fig. 5b)", legend_position="bottom_left")
    if logx:
        overlay = overlay.opts(logx=True)
    return overlay


def offset_vs_capacity(timeseries: pd.DataFrame, *, by: str | None = "source", normalized=False,
                       title="d(capacity) (Fig. 5d)", curves=None):
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
    """
    hv = _hv()
    y = "offset_norm" if normalized else "offset_nm"
    vd = [hv.Dimension(y, label="d / R_eq" if normalized else "d (nm)")]
    kd = [hv.Dimension("capacity_mAh_g", label="capacity (mAh/g)")]
    if by and curves is not None:
        groups = [(c, timeseries[timeseries[by] == c] if by in timeseries
                   else timeseries.iloc[:0]) for c in curves]
    elif by and by in timeseries:
        groups = timeseries.groupby(by, sort=False)
    else:
        groups = [("", timeseries)]
    curves = []
    for label, grp in groups:
        grp = grp.sort_values("capacity_mAh_g")[["capacity_mAh_g", y]]
        curves.append(hv.Curve(grp, kd, vd, label=str(label)))
        curves.append(hv.Scatter(grp, kd, vd, label=str(label)))
    overlay = hv.Overlay(curves).opts(title=title)
    return _style(overlay, bokeh={"legend_position": "top_left"})


def kymograph(kymo, distance_nm, capacity_mAh_g, *, boundaries: pd.DataFrame | None = None,
              title="line-cut kymograph (Fig. 5c)", clim=(0.0, 0.3), cmap="Reds"):
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
    """
    hv = _hv()
    kymo = np.asarray(kymo, dtype=float)
    x = np.asarray(distance_nm, dtype=float)
    cap = np.asarray(capacity_mAh_g, dtype=float)
    keep = np.isfinite(cap)
    kymo, cap = kymo[keep], cap[keep]
    kd = [hv.Dimension("distance_nm", label="distance along line (nm)"),
          hv.Dimension("capacity_mAh_g", label="capacity (mAh/g)")]
    vd = [hv.Dimension("dI", label="differential intensity", range=clim)]
    if cap.size < 2 or x.size < 2:
        img = hv.QuadMesh(([0, 1], [0, 1], np.full((2, 2), np.nan)), kd, vd)
    else:
        img = hv.QuadMesh((x, cap, kymo), kd, vd)
    img = _style(img.opts(cmap=cmap, clim=clim, title=title), bokeh={"colorbar": True,
                                                                      "tools": ["hover"]})
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


def differential_frame(dI, pixel_nm: float, *, title="", clim=(0.0, 0.3), cmap="Reds"):
    """One frame of a differential movie (dI = I/I0 - 1; the Fig. 2 colour scale, white to red).

    ``dI`` is (n_row, n_col); axes are in µm from the top-left corner, y pointing up.
    """
    hv = _hv()
    dI = np.asarray(dI, dtype=float)
    n_row, n_col = dI.shape
    p = float(pixel_nm) / 1000.0
    img = hv.Image(dI, bounds=(0, 0, n_col * p, n_row * p), kdims=["x (µm)", "y (µm)"],
                   vdims=[hv.Dimension("dI", label="differential intensity", range=clim)])
    return _style(img.opts(cmap=cmap, clim=clim, title=title),
                  bokeh={"colorbar": True, "data_aspect": 1})


def fig5e_cohorts(stats: pd.DataFrame, *, by="ageing"):
    """Fig. 5e: symmetric / asymmetric counts per group (bars) and the asymmetric fraction
    with its Wilson interval (diamonds with error bars).

    Parameters
    ----------
    stats : DataFrame from :func:`asymflux.analysis.cohort_statistics` (``n_symmetric``,
        ``n_asymmetric``, ``fraction_asymmetric``, ``ci_low``, ``ci_high``).

    Returns
    -------
    holoviews.Layout
        Counts on the left, fractions on the right (sharing the group axis).
    """
    hv = _hv()
    groups = [str(g) for g in stats[by]]
    long = pd.DataFrame({
        by: groups * 2,
        "behaviour": ["symmetric"] * len(groups) + ["asymmetric"] * len(groups),
        "count": np.r_[stats["n_symmetric"].to_numpy(), stats["n_asymmetric"].to_numpy()],
    })
    bars = hv.Bars(long, [hv.Dimension(by, label="ageing condition"), "behaviour"],
                   [hv.Dimension("count", label="number of particles")])
    bars = _style(bars.opts(title="Particles per ageing condition (Fig. 5e)"),
                  bokeh={"color": hv.dim("behaviour").categorize(
                      {"symmetric": "#1f77b4", "asymmetric": "#2ca02c"}),
                      "xrotation": 30, "tools": ["hover"]})
    frac = stats["fraction_asymmetric"].to_numpy(dtype=float)
    lo = frac - stats["ci_low"].to_numpy(dtype=float)
    hi = stats["ci_high"].to_numpy(dtype=float) - frac
    fd = pd.DataFrame({by: groups, "fraction": frac, "lo": lo, "hi": hi})
    kd = [hv.Dimension(by, label="ageing condition")]
    vd = hv.Dimension("fraction", label="fraction asymmetric", range=(0, 1))
    err = hv.ErrorBars(fd, kd, [vd, "lo", "hi"])
    pts = _style(hv.Scatter(fd, kd, [vd]), {"color": "black"},
                 bokeh={"size": 12, "marker": "diamond", "tools": ["hover"]},
                 matplotlib={"s": 60, "marker": "D"})
    fraction = _style((err * pts).opts(title="Fraction asymmetric, 95 % Wilson interval"),
                      bokeh={"xrotation": 30})
    return hv.Layout([bars, fraction]).cols(2)


def save_png(obj, path, *, fig_inches=None) -> None:
    """Render a HoloViews object to a PNG with the matplotlib backend (atomic write)."""
    from ._atomic import write_bytes_atomic

    hv = use_backend("matplotlib")
    if fig_inches is not None:
        obj = obj.opts(fig_inches=fig_inches, backend="matplotlib")
    data, _info = hv.renderer("matplotlib")(obj, fmt="png")
    write_bytes_atomic(path, data)
