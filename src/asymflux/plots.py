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


def fig4_theta_maps(data: pd.DataFrame, *, clim=None):
    """Fig. 4: θ maps, one row per surface, one column per time.

    Parameters
    ----------
    data : DataFrame from :func:`asymflux.figures.fig4_data`.
    """
    hv = _hv()
    if clim is None:
        lo = min(np.nanmin(t) for t in data["theta"])
        hi = max(np.nanmax(t) for t in data["theta"])
        clim = (float(lo), float(hi))
    panels = []
    for _, row in data.iterrows():
        panels.append(theta_map(row.x_um, row.y_um, row.theta, clim=clim,
                                title=f"{row.surface}, {row.minutes:g} min"))
    ncols = data["minutes"].nunique()
    return hv.Layout(panels).cols(ncols)


def fig5b_rate_capability(table: pd.DataFrame, *, current_rate_mA_g: float | None = None):
    """Fig. 5b: Li extracted at the cut-off against rate, one curve per surface.

    Parameters
    ----------
    table : DataFrame with ``rate_mA_g, blocked, li_extracted`` (from
        :func:`asymflux.model.rate_capability`).
    current_rate_mA_g : float, optional
        Marks a rate with a vertical line (the dashboard's slider).
    """
    hv = _hv()
    curves = []
    for label, grp in table.groupby("blocked", sort=False):
        grp = grp.sort_values("rate_mA_g")
        name = "no blocking" if label == "none" else f"blocked {label}"
        kd, vd = [hv.Dimension("rate_mA_g", label="rate (mA/g)")], [
            hv.Dimension("li_extracted", label="Li extracted at cut-off (per f.u.)")]
        curves.append(hv.Curve(grp, kd, vd, label=name))
        curves.append(hv.Scatter(grp, kd, vd, label=name))
    overlay = hv.Overlay(curves)
    if current_rate_mA_g is not None:
        overlay = overlay * hv.VLine(float(current_rate_mA_g)).opts(color="grey")
    return overlay.opts(title="Rate capability (Fig. 5b)", legend_position="bottom_left")


def save_png(obj, path, *, fig_inches=None) -> None:
    """Render a HoloViews object to a PNG with the matplotlib backend (atomic write)."""
    from ._atomic import write_bytes_atomic

    hv = use_backend("matplotlib")
    if fig_inches is not None:
        obj = obj.opts(fig_inches=fig_inches, backend="matplotlib")
    data, _info = hv.renderer("matplotlib")(obj, fmt="png")
    write_bytes_atomic(path, data)
