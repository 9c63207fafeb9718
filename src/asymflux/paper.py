"""Numbers from Lun et al. 2025 (Energy Environ. Sci., doi:10.1039/d5ee00267b), in one place.

Each constant says where in the paper it comes from (the seed text:
``../shared/seed/lun2025_asymmetric_ion_flux.md``). The library's defaults, the figures
(:mod:`asymflux.figures`), the model's rate sweep (:mod:`asymflux.model.sweep`), the
dashboards and the command line import them from here. One is this project's own choice
rather than the paper's, and says so: :data:`ASYMMETRY_THRESHOLD`.

This module imports nothing from asymflux, so any module may import it.
"""

from __future__ import annotations

__all__ = [
    "ASYMMETRY_THRESHOLD", "BLOCKED_ARC_CENTER_DEG", "FIG4_MINUTES", "FIG4_RADIUS_UM",
    "FIG4_SURFACES", "FIG5B_SURFACES", "PAPER_RATES_MA_G", "UNREACTED_THRESHOLD", "arc_text",
]

UNREACTED_THRESHOLD = 0.05
"""Differential intensity dI below which a pixel counts as "unreacted" (Li-rich)
(Fig. 5d caption: "the region with differential optical intensity < 0.05"). Dimensionless."""

ASYMMETRY_THRESHOLD = 0.08
"""Asymmetry score (max of d / R_eq in the early-charge window) at or above which a particle
is classified "asymmetric" (:func:`asymflux.analysis.classify_asymmetry`; the analysis
exports it as ``DEFAULT_ASYMMETRY_THRESHOLD``). Dimensionless.

Not a number of the paper: the paper classifies particles as symmetric or asymmetric by
eye (Fig. 5e). 0.08 is this project's threshold, set on the model of Fig. 4 (2.4 µm disk,
100 mA/g) through the synthetic microscope: an unblocked particle stays below ~0.04, a
quarter blocked at η = 0.5 reaches ~0.12-0.15 (:mod:`asymflux.analysis._summary` gives the
numbers; ``tests/analysis/test_classify_model.py`` checks them)."""

PAPER_RATES_MA_G = (50.0, 100.0, 200.0, 400.0)
"""The paper's charging rates, mA/g: Fig. 5b (simulated Li extracted) and Fig. 5c, d
(measured line-cuts and core offset d)."""

FIG4_MINUTES = (5.0, 10.0, 15.0, 20.0)
"""Times of the simulated θ maps, min (Fig. 4 caption: "5 min, 10 min, 15 min and 20 min")."""

FIG4_RADIUS_UM = 1.2
"""Radius of the simulated particle, µm (Fig. 4 caption and Fig. 5b's text: a 2.4 µm
diameter cylinder)."""

BLOCKED_ARC_CENTER_DEG = 180.0
"""Centre of the paper's blocked arc, degrees counter-clockwise from +x (180: the left on
screen). The paper does not state an angle (Fig. 4 draws the blocked region on one side);
180° is this project's choice, as :func:`asymflux.model.paper_fig5b_surfaces` says."""

FIG4_SURFACES = {
    "no blocking": (0.0, 1.0),
    "quarter, η = 0.7": (0.25, 0.7),
    "quarter, η = 0.3": (0.25, 0.3),
    "half, η = 0.3": (0.5, 0.3),
}
"""The surfaces of Fig. 4 a-d: label -> (blocked fraction of the perimeter, flux ratio
η = j_RSL / j_NMC) of one arc centred at :data:`BLOCKED_ARC_CENTER_DEG` (Fig. 4 caption and
the section "Asymmetric Li-ion flux is a surface dominated phenomenon": none; a quarter at
η = 0.7; a quarter at 0.3; a half at 0.3)."""

FIG5B_SURFACES = ("no blocking", "quarter, η = 0.7", "quarter, η = 0.3")
"""The surfaces of Fig. 5b (labels of :data:`FIG4_SURFACES`): none, and a quarter blocked
at η = 0.7 or 0.3 (Fig. 5b caption)."""


def arc_text(label: str) -> str:
    """A paper surface (a label of :data:`FIG4_SURFACES`) as ``"CENTER_DEG:FRACTION:ETA"``
    (what ``asymflux simulate --blocked`` and ``model.Surface.from_strings`` read), or
    ``"none"`` when nothing is blocked.

    >>> arc_text("quarter, η = 0.3")
    '180:0.25:0.3'
    >>> arc_text("no blocking")
    'none'
    """
    fraction, eta = FIG4_SURFACES[label]
    if fraction <= 0:
        return "none"
    return f"{BLOCKED_ARC_CENTER_DEG:g}:{fraction:g}:{eta:g}"
