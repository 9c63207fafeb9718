"""Rate capability (Lun et al. 2025, Fig. 5b): Li extracted at the cut-off vs rate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
from tqdm.auto import tqdm

from .kinetics import FILM_RESISTANCE_ETA_0_3_OHM_M2, FILM_RESISTANCE_ETA_0_7_OHM_M2
from .mesh import Mesh, disk_mesh
from .protocol import DEFAULT_CUTOFF_OCCUPANCY, Charge
from .solver import simulate
from .surface import FilmArc, Surface

PAPER_RATES_MA_G = (50.0, 100.0, 200.0, 400.0)


def paper_fig5b_surfaces() -> dict[str, Surface]:
    """The three surfaces of Fig. 5b: none, a quarter at η = 0.7, a quarter at η = 0.3.

    The blocked quarter is centred at 180° (the left-hand side on screen), as in the
    aged particle of Fig. 2d whose Li-rich core sits near its left edge.
    """
    return {
        "none": Surface(),
        "180:0.25:0.7": Surface.from_strings(["180:0.25:0.7"]),
        "180:0.25:0.3": Surface.from_strings(["180:0.25:0.3"]),
    }


def paper_film_surfaces() -> dict[str, Surface]:
    """Kinetic counterparts of :func:`paper_fig5b_surfaces`: a clean particle, and a quarter
    centred at 180° under the default films for an early flux ratio of ~0.7 and ~0.3
    (:data:`~asymflux.model.kinetics.FILM_RESISTANCE_ETA_0_7_OHM_M2`,
    :data:`~asymflux.model.kinetics.FILM_RESISTANCE_ETA_0_3_OHM_M2`)."""
    return {
        "none": Surface.kinetic(),
        "quarter, film η≈0.7": Surface.kinetic([FilmArc(180.0, 0.25, FILM_RESISTANCE_ETA_0_7_OHM_M2)]),
        "quarter, film η≈0.3": Surface.kinetic([FilmArc(180.0, 0.25, FILM_RESISTANCE_ETA_0_3_OHM_M2)]),
    }


def rate_capability(
    rates_mA_g: Sequence[float] = PAPER_RATES_MA_G,
    surfaces: Mapping[str, Surface] | Sequence[Surface] | None = None,
    *,
    params: dict | None = None,
    mesh: Mesh | None = None,
    cutoff_occupancy: float = DEFAULT_CUTOFF_OCCUPANCY,
    progress: bool = True,
) -> pd.DataFrame:
    """Charge from the initial state until the surface occupancy reaches the cut-off.

    Parameters
    ----------
    rates_mA_g : sequence of float
        Specific currents in mA/g.
    surfaces : mapping label -> Surface, or sequence of Surface
        Default: :func:`paper_fig5b_surfaces`.
    params, mesh :
        As for :func:`~asymflux.model.solver.simulate`.
    cutoff_occupancy : float
        Surface occupancy that ends the charge (0.2 in the paper).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per (surface, rate): ``rate_mA_g, blocked, li_extracted,
        capacity_mAh_g, minutes``. ``li_extracted`` is Li removed per formula unit
        (θ0 − mean θ at the cut-off).
    """
    if surfaces is None:
        surfaces = paper_fig5b_surfaces()
    if not isinstance(surfaces, Mapping):
        surfaces = {s.label: s for s in surfaces}
    mesh = disk_mesh() if mesh is None else mesh
    rates = [float(r) for r in rates_mA_g]
    if not rates:
        raise ValueError("rates_mA_g must list at least one rate")
    for r in rates:
        Charge(r)  # validates
    rows = []
    jobs = [(label, s, r) for label, s in surfaces.items() for r in rates]
    for label, surface, rate in tqdm(jobs, desc="rate sweep", unit="run", disable=not progress):
        res = simulate(params, mesh, surface, [Charge(rate, cutoff_occupancy=cutoff_occupancy)])
        rows.append({
            "rate_mA_g": rate,
            "blocked": label,
            "li_extracted": float(res.li_extracted[-1]),
            "capacity_mAh_g": float(res.capacity_mAh_g[-1]),
            "minutes": float(res.minutes[-1]),
        })
    return pd.DataFrame(rows, columns=["rate_mA_g", "blocked", "li_extracted", "capacity_mAh_g", "minutes"])
