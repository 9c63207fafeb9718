"""The data behind the paper's model figures, computed once and shared by
``asymflux demo``, the notebooks and the dashboards (plots in :mod:`asymflux.plots`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import model

FIG4_MINUTES = (5.0, 10.0, 15.0, 20.0)


def fig4_surfaces() -> dict[str, model.Surface]:
    """Fig. 4 a-d: no blocking; a quarter at η = 0.7; a quarter at η = 0.3; a half at η = 0.3.

    Blocked arcs are centred at 180° (left on screen).
    """
    return {
        "no blocking": model.Surface(),
        "quarter, η = 0.7": model.Surface.from_strings(["180:0.25:0.7"]),
        "quarter, η = 0.3": model.Surface.from_strings(["180:0.25:0.3"]),
        "half, η = 0.3": model.Surface.from_strings(["180:0.5:0.3"]),
    }


def fig4_data(
    *,
    rate_mA_g: float = 100.0,
    minutes=FIG4_MINUTES,
    pixel_nm: float = 20.0,
    params: dict | None = None,
    surfaces: dict[str, model.Surface] | None = None,
    radius_um: float = 1.2,
) -> pd.DataFrame:
    """θ maps of Fig. 4 as a tidy table.

    Returns
    -------
    pandas.DataFrame
        One row per (surface, minute): ``surface``, ``minutes``, ``x_um`` (n_col,),
        ``y_um`` (n_row,), ``theta`` (n_row, n_col; NaN outside the particle).
    """
    surfaces = fig4_surfaces() if surfaces is None else surfaces
    mesh = model.disk_mesh(radius_um)
    rows = []
    for label, surface in surfaces.items():
        res = model.simulate(params, mesh, surface,
                             [model.Charge(rate_mA_g, minutes=max(minutes))],
                             output_minutes=minutes)
        idx = res.index_of_minutes(minutes)
        img = res.to_image(pixel_nm, indices=idx)
        for m, th in zip(minutes, img.theta, strict=True):
            rows.append({"surface": label, "minutes": float(m), "x_um": img.x_um,
                         "y_um": img.y_um, "theta": th})
    return pd.DataFrame(rows)


def fig5b_data(*, params: dict | None = None, rates_mA_g=model.PAPER_RATES_MA_G,
               progress: bool = True) -> pd.DataFrame:
    """Rate capability of Fig. 5b (see :func:`asymflux.model.rate_capability`)."""
    return model.rate_capability(rates_mA_g, model.paper_fig5b_surfaces(), params=params,
                                 progress=progress)


def fig5b_trend_checks(table: pd.DataFrame) -> list[tuple[str, bool]]:
    """The paper's Fig. 5b trends, each as (statement, holds)."""
    wide = table.pivot(index="rate_mA_g", columns="blocked", values="li_extracted").sort_index()
    checks = []
    for col in wide:
        checks.append((f"less Li extracted at higher rate ({col})",
                       bool(np.all(np.diff(wide[col].to_numpy()) < 0))))
    blocked = [c for c in wide if c != "none"]
    gaps = {c: (wide["none"] - wide[c]).to_numpy() for c in blocked}
    for c, gap in gaps.items():
        checks.append((f"gap to unblocked grows with rate ({c})",
                       bool(np.all(gap > 0) and np.all(np.diff(gap) > 0))))
    by_eta = sorted(blocked, key=lambda c: float(c.split(":")[-1]))
    for low, high in zip(by_eta, by_eta[1:], strict=False):
        checks.append((f"gap larger for lower η ({low} vs {high})",
                       bool(np.all(gaps[low] > gaps[high]))))
    return checks
