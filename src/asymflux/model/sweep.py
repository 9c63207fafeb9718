"""Rate capability (Lun et al. 2025, Fig. 5b): Li extracted at the cut-off vs rate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
from tqdm.auto import tqdm

from ..paper import FIG5B_SURFACES, PAPER_RATES_MA_G, arc_text
from .calibration import FILM_RESISTANCE_ETA_0_3_OHM_M2, FILM_RESISTANCE_ETA_0_7_OHM_M2
from .mesh import Mesh, disk_mesh
from .protocol import DEFAULT_CUTOFF_OCCUPANCY, Charge, end_condition_text
from .simulation import simulate
from .surface import FilmArc, Surface

FIG5B_END = {"cutoff_occupancy": DEFAULT_CUTOFF_OCCUPANCY, "cutoff_voltage_V": None}
"""The one end condition of every run of Fig. 5b, prescribed and kinetic surfaces alike
(:func:`rate_capability`'s default, ``asymflux rate-sweep``'s, the model explorer's): the
charge ends when the surface occupancy first reaches 0.2 (Lun et al. 2025, Fig. 5b). A
kinetic surface's own default (4.3 V, :data:`~asymflux.model.protocol.DEFAULT_CUTOFF_VOLTAGE_V`)
is *not* used here: it would end film-covered and clean particles at a different state than
the prescribed reference curves beside them. :func:`fig5b_charge` makes the step."""


def fig5b_charge(rate_mA_g: float, *, cutoff_occupancy: float | None = FIG5B_END["cutoff_occupancy"],
                 cutoff_voltage_V: float | None = FIG5B_END["cutoff_voltage_V"]) -> Charge:
    """The charge of one Fig. 5b run: at ``rate_mA_g`` until the first of the cut-offs
    (default :data:`FIG5B_END`); at least one cut-off must be given."""
    if cutoff_occupancy is None and cutoff_voltage_V is None:
        raise ValueError("a rate-capability run needs an end: give cutoff_occupancy (e.g. 0.2) "
                         "or cutoff_voltage_V (e.g. 4.3)")
    return Charge(float(rate_mA_g), cutoff_occupancy=cutoff_occupancy,
                  cutoff_voltage_V=cutoff_voltage_V)


def paper_fig5b_surfaces() -> dict[str, Surface]:
    """The three surfaces of Fig. 5b: none, a quarter at η = 0.7, a quarter at η = 0.3
    (:data:`asymflux.paper.FIG5B_SURFACES`), keyed ``"none"``, ``"180:0.25:0.7"``,
    ``"180:0.25:0.3"``.

    The blocked quarter is centred at 180° (the left-hand side on screen), as in the
    aged particle of Fig. 2d whose Li-rich core sits near its left edge.
    """
    surfaces = {}
    for label in FIG5B_SURFACES:
        arc = arc_text(label)
        surfaces[arc] = Surface() if arc == "none" else Surface.from_strings([arc])
    return surfaces


def paper_film_surfaces() -> dict[str, Surface]:
    """Kinetic counterparts of :func:`paper_fig5b_surfaces`: a clean particle, and a quarter
    centred at 180° under the default films for an early flux ratio of ~0.7 and ~0.3
    (:data:`~asymflux.model.calibration.FILM_RESISTANCE_ETA_0_7_OHM_M2`,
    :data:`~asymflux.model.calibration.FILM_RESISTANCE_ETA_0_3_OHM_M2`)."""
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
    cutoff_occupancy: float | None = FIG5B_END["cutoff_occupancy"],
    cutoff_voltage_V: float | None = FIG5B_END["cutoff_voltage_V"],
    progress: bool = True,
) -> pd.DataFrame:
    """Charge from the initial state until the cut-off, the same end for every run.

    Parameters
    ----------
    rates_mA_g : sequence of float
        Specific currents in mA/g.
    surfaces : mapping label -> Surface, or sequence of Surface
        Default: :func:`paper_fig5b_surfaces`.
    params, mesh :
        As for :func:`~asymflux.model.simulation.simulate`, except that the default mesh is
        ``disk_mesh(n_angular=48)``, not the library's 20 x 96: Li extracted at the cut-off
        agrees with 20 x 96 within 1e-6 per f.u. on the paper's 12 runs, 3.5x faster.
    cutoff_occupancy : float or None
        Surface occupancy that ends the charge (0.2 in the paper, :data:`FIG5B_END`).
    cutoff_voltage_V : float or None
        Voltage that ends the charge (the particle potential on a kinetic surface, the
        least lithiated surface point's OCV on a prescribed one). With both cut-offs the
        first reached ends the run; at least one must be given.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per (surface, rate): ``rate_mA_g, blocked, li_extracted,
        capacity_mAh_g, minutes, end_reason``. ``li_extracted`` is Li removed per formula
        unit (θ0 − mean θ at the cut-off); ``end_reason`` which limit ended the run.
        ``attrs["end_condition"]``: the end condition in words
        (:func:`~asymflux.model.protocol.end_condition_text`), for a plot's title.
    """
    if surfaces is None:
        surfaces = paper_fig5b_surfaces()
    if not isinstance(surfaces, Mapping):
        surfaces = {s.label: s for s in surfaces}
    mesh = disk_mesh(n_angular=48) if mesh is None else mesh
    rates = [float(r) for r in rates_mA_g]
    if not rates:
        raise ValueError("rates_mA_g must list at least one rate")
    for r in rates:
        fig5b_charge(r, cutoff_occupancy=cutoff_occupancy, cutoff_voltage_V=cutoff_voltage_V)
    rows = []
    jobs = [(label, s, r) for label, s in surfaces.items() for r in rates]
    for label, surface, rate in tqdm(jobs, desc="rate sweep", unit="run", disable=not progress):
        step = fig5b_charge(rate, cutoff_occupancy=cutoff_occupancy,
                            cutoff_voltage_V=cutoff_voltage_V)
        res = simulate(params, mesh, surface, [step])
        rows.append({
            "rate_mA_g": rate,
            "blocked": label,
            "li_extracted": float(res.li_extracted[-1]),
            "capacity_mAh_g": float(res.capacity_mAh_g[-1]),
            "minutes": float(res.minutes[-1]),
            "end_reason": res.end_reason,
        })
    table = pd.DataFrame(rows, columns=["rate_mA_g", "blocked", "li_extracted", "capacity_mAh_g",
                                        "minutes", "end_reason"])
    table.attrs["end_condition"] = end_condition_text(cutoff_occupancy, cutoff_voltage_V)
    return table
