"""The data behind the paper's model figures, computed once and shared by
``asymflux demo``, the notebooks and the dashboards (plots in :mod:`asymflux.plots`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import model
from .paper import FIG4_MINUTES, FIG4_RADIUS_UM, FIG4_SURFACES, PAPER_RATES_MA_G, arc_text


def fig4_surfaces() -> dict[str, model.Surface]:
    """Fig. 4 a-d: no blocking; a quarter at η = 0.7; a quarter at η = 0.3; a half at η = 0.3
    (:data:`asymflux.paper.FIG4_SURFACES`).

    Blocked arcs are centred at 180° (left on screen).
    """
    surfaces = {}
    for label in FIG4_SURFACES:
        arc = arc_text(label)
        surfaces[label] = model.Surface() if arc == "none" else model.Surface.from_strings([arc])
    return surfaces


def fig4_data(
    *,
    rate_mA_g: float = 100.0,
    minutes=FIG4_MINUTES,
    pixel_nm: float = 20.0,
    params: dict | None = None,
    surfaces: dict[str, model.Surface] | None = None,
    radius_um: float = FIG4_RADIUS_UM,
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


def fig5b_data(*, params: dict | None = None, rates_mA_g=PAPER_RATES_MA_G,
               progress: bool = True) -> pd.DataFrame:
    """Rate capability of Fig. 5b (see :func:`asymflux.model.rate_capability`)."""
    return model.rate_capability(rates_mA_g, model.paper_fig5b_surfaces(), params=params,
                                 progress=progress)


def fig5b_rate_gap(table: pd.DataFrame) -> pd.DataFrame:
    """The rate gap of a :func:`fig5b_data` table: per surface, Li extracted at the
    cut-off at the slowest rate minus that at the fastest.

    Returns
    -------
    pandas.DataFrame
        One row per surface (``blocked``, in the table's order): ``slowest_mA_g``,
        ``fastest_mA_g``, ``li_gap`` (per formula unit) and ``capacity_gap_mAh_g``.
    """
    rows = []
    for label, g in table.groupby("blocked", sort=False):
        g = g.sort_values("rate_mA_g")
        slow, fast = g.iloc[0], g.iloc[-1]
        rows.append({"blocked": label, "slowest_mA_g": float(slow["rate_mA_g"]),
                     "fastest_mA_g": float(fast["rate_mA_g"]),
                     "li_gap": float(slow["li_extracted"] - fast["li_extracted"]),
                     "capacity_gap_mAh_g": float(slow["capacity_mAh_g"] - fast["capacity_mAh_g"])})
    return pd.DataFrame(rows, columns=["blocked", "slowest_mA_g", "fastest_mA_g", "li_gap",
                                       "capacity_gap_mAh_g"])


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


FIG5D_RATES_MA_G = PAPER_RATES_MA_G

FIG5D_MESH = (20, 96)
"""(n_radial, n_angular) of :func:`fig5d_data`'s runs: the core's offset d converges in the
angle, not the radius. At 400 mA/g (a quarter under the η ≈ 0.3 film, 0.171 Ω m² with the
default Sturm 2019 OCV, 20 nm pixels) max d is 650 nm on 20 x 48 (the library's default until
issue #29), 685 on 20 x 72, 690 on 20 x 96 (the default since) and 710 on 30 x 144, 40 x 192
and 80 x 192: 20 x 96 is within 2.8 % of the refined meshes
(``tests/model/test_kinetics.py::test_max_d_converged_at_400_mA_g``), 20 x 48 8.5 % low (with
the Verbrugge 2017 OCV and its 0.135 Ω m² film: 680 / 720 / 740 nm, 2.7 %). Li extracted (Fig. 5b) and the θ maps at the paper's 100 mA/g converge on
20 x 48 too (the model explorer's mesh, its runs 2-4x faster)."""


def fig5d_data(
    surface: model.Surface | None = None,
    *,
    rates_mA_g=FIG5D_RATES_MA_G,
    params: dict | None = None,
    mesh: model.Mesh | None = None,
    pixel_nm: float = 20.0,
    capacity_step_mAh_g: float = 0.25,
    max_capacity_mAh_g: float = 60.0,
) -> pd.DataFrame:
    """The shrinking core's offset d against capacity at several rates (Fig. 5c/d).

    Each rate is a charge of ``surface`` (default: a quarter under the film of
    :data:`asymflux.model.calibration.FILM_RESISTANCE_ETA_0_3_OHM_M2` at 180°) to
    ``max_capacity_mAh_g`` or 4.3 V, sampled every ``capacity_step_mAh_g``; θ is sampled on
    ``pixel_nm`` pixels, turned into dI (:func:`asymflux.optics.dI_from_theta`) and
    measured as a movie is (:func:`asymflux.analysis.particle_timeseries`: the unreacted
    region dI < 0.05 (:data:`asymflux.paper.UNREACTED_THRESHOLD`), its centre of mass and its distance d from the particle's). The
    default ``mesh`` is a 1.2 µm disk on :data:`FIG5D_MESH` (converged at 400 mA/g).

    Returns
    -------
    pandas.DataFrame
        The :func:`~asymflux.analysis.particle_timeseries` rows with a ``rate_mA_g`` column
        (``particle_id`` 1, one row per frame). :func:`fig5d_summary` reduces it.
    """
    from . import analysis, optics

    surface = model.paper_film_surfaces()["quarter, film η≈0.3"] if surface is None else surface
    mesh = model.disk_mesh(FIG4_RADIUS_UM, n_radial=FIG5D_MESH[0], n_angular=FIG5D_MESH[1]) \
        if mesh is None else mesh
    tables = []
    for rate in rates_mA_g:
        caps = np.arange(capacity_step_mAh_g, max_capacity_mAh_g + 1e-9, capacity_step_mAh_g)
        minutes = caps / float(rate) * 60.0
        res = model.simulate(params, mesh, surface,
                             [model.Charge(float(rate), capacity_mAh_g=max_capacity_mAh_g,
                                           cutoff_voltage_V=4.3)],
                             output_minutes=minutes)
        img = res.to_image(pixel_nm)
        labels = np.isfinite(img.theta[0]).astype(int)
        di = optics.dI_from_theta(img.theta, theta_ref=res.theta0)
        # the model's noise-free dI: the last few-pixel core is the paper's last unreacted
        # point (min_core_px=1; a movie's would be noise and is NaN by default)
        ts = analysis.particle_timeseries(di, labels, pixel_nm=pixel_nm, differential=True,
                                          time_s=res.times_s, capacity_mAh_g=res.capacity_mAh_g,
                                          min_core_px=1)
        ts.insert(0, "rate_mA_g", float(rate))
        tables.append(ts)
    return pd.concat(tables, ignore_index=True)


def fig5d_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per rate, from :func:`fig5d_data`: ``max_d_nm`` (largest offset d while a core is
    left), ``vanish_capacity_mAh_g`` (first frame without an unreacted pixel),
    ``last_offset_nm`` (offset of the last core, the frame before) and
    ``last_from_edge_nm`` (its distance from the particle's edge, R_eq − offset)."""
    rows = []
    for rate, g in table.groupby("rate_mA_g", sort=True):
        g = g.sort_values("frame")
        f = g["unreacted_fraction"].to_numpy(float)
        d = g["offset_nm"].to_numpy(float)
        r_eq_nm = float(np.sqrt(g["area_um2"].iloc[0] / np.pi)) * 1000.0
        has_core = f > 0
        gone = np.flatnonzero(~has_core & (np.cumsum(has_core) > 0))
        row = {"rate_mA_g": float(rate),
               "max_d_nm": float(np.nanmax(np.where(has_core, d, np.nan))) if has_core.any() else np.nan,
               "vanish_capacity_mAh_g": np.nan, "last_offset_nm": np.nan, "last_from_edge_nm": np.nan}
        if gone.size:
            k = int(gone[0])
            row["vanish_capacity_mAh_g"] = float(g["capacity_mAh_g"].iloc[k])
            row["last_offset_nm"] = float(d[k - 1])
            row["last_from_edge_nm"] = r_eq_nm - float(d[k - 1])
        rows.append(row)
    return pd.DataFrame(rows, columns=["rate_mA_g", "max_d_nm", "vanish_capacity_mAh_g",
                                       "last_offset_nm", "last_from_edge_nm"])


def fig5d_trend_checks(summary: pd.DataFrame) -> list[tuple[str, bool]]:
    """The paper's Fig. 5c/d trends on a :func:`fig5d_summary`, each as (statement, holds)."""
    s = summary.sort_values("rate_mA_g")
    d = s["max_d_nm"].to_numpy(float)
    cap = s["vanish_capacity_mAh_g"].to_numpy(float)
    edge = s["last_from_edge_nm"].to_numpy(float)
    return [
        ("max d grows with rate", bool(np.all(np.diff(d) > 0))),
        ("max d at the highest rate >= 1.5x that at the lowest", bool(d[-1] >= 1.5 * d[0])),
        ("the core vanishes at a larger capacity at higher rate",
         bool(np.all(np.isfinite(cap)) and np.all(np.diff(cap) > 0))),
        ("the last core point moves towards the edge with rate",
         bool(np.all(np.isfinite(edge)) and np.all(np.diff(edge) < 0))),
    ]
