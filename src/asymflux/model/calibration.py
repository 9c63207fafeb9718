"""The film's calibration: which film resistance gives which flux ratio.

A kinetic surface's film (:class:`~asymflux.model.surface.FilmArc`) is given as an
area-specific resistance; the paper and the prescribed model speak of a flux ratio η. The
ratio at the start of a charge (uniform occupancy, :func:`initial_flux_ratio`) does not last
(the clean surface delithiates fastest); the effective ratio, the charge-weighted ratio over
the first 10 min of a 100 mA/g charge (:func:`effective_flux_ratio`), is the kinetic
counterpart of the prescribed η. :data:`EFFECTIVE_RATIO_TABLE` holds it for a quarter of
the perimeter, and :func:`film_resistance_for_eta` interpolates it; the default film
resistances :data:`FILM_RESISTANCE_ETA_0_3_OHM_M2` and :data:`FILM_RESISTANCE_ETA_0_7_OHM_M2`
are documented in ``docs/calibration.md``.
"""

from __future__ import annotations

import numpy as np

from .kinetics import GAS_CONSTANT_J_MOL_K
from .parameters import FARADAY_C_MOL
from .protocol import Charge
from .simulation import simulate
from .surface import FilmArc, Surface

FILM_RESISTANCE_ETA_0_3_OHM_M2 = 0.171
"""Default film resistance (Ω m²) of a quarter that passes ~0.3 of the clean surface's
charge per unit length over the first 10 min of a 100 mA/g charge of the default set
(:func:`effective_flux_ratio` = 0.30; ``docs/calibration.md``). What it means: as a 4 nm
rock-salt layer (:data:`ROCKSALT_THICKNESS_NM`) it needs a Li-ion conductivity of 2.3e-8 S/m,
~40x below the paper's own estimate for rock salt (~1e-6 S/m, which gives only 4e-3 Ω m²);
read it as the aged surface's total interfacial resistance (rock salt, surface films, contact),
not rock salt alone."""

FILM_RESISTANCE_ETA_0_7_OHM_M2 = 0.0255
"""Default film resistance (Ω m²) for an effective ratio of ~0.7 (0.70; 4 nm at 1.6e-7 S/m)."""

FILM_RESISTANCE_ETA_0_3_OTHER_OCV_OHM_M2 = {"nmc88_verbrugge2017_ocv": 0.135,
                                           "nmc88_chen2020_ocv": 0.20}
"""The film resistance (Ω m²) for an effective ratio of ~0.3 with the other sourced OCVs (the
sets named; ``tools/film_calibration.py --params NAME``, each the default's calibration while
that curve was the default): the default's film passes 0.262 / 0.328 with them. For
comparing Fig. 5c/d between OCVs at the same effective η (notebook 01, ``docs/calibration.md``)."""

ROCKSALT_THICKNESS_NM = 4.0
"""Thickest rock-salt layer seen by HAADF-STEM on the aged particle (Lun et al. 2025,
Fig. 3b, region 1): the thickness used to turn a film resistance into a conductivity."""


def _split_at_uniform_state(params, rate_mA_g, fraction, resistance_ohm_m2, theta):
    """Current densities (film, clean) in A/m² when the whole surface is at occupancy
    ``theta``, a fraction ``fraction`` of the perimeter under the film (``brentq`` on V)."""
    from scipy.optimize import brentq

    from .mesh import disk_mesh

    mesh = disk_mesh(1.2, n_radial=2, n_angular=8)  # only the area/perimeter ratio matters
    mean_i = rate_mA_g * float(params["Density [kg.m-3]"]) * mesh.area_um2 / mesh.perimeter_um * 1e-6
    k0 = float(params["Exchange-current prefactor [A.m-2]"])
    alpha = FARADAY_C_MOL / (2 * GAS_CONSTANT_J_MOL_K * float(params.get("Temperature [K]", 298.15)))
    i0 = k0 * np.sqrt(theta * (1 - theta))

    def clean_current(over):  # over = V - U
        return 2 * i0 * np.sinh(alpha * over)

    def film_current(over):
        if resistance_ohm_m2 == 0:
            return clean_current(over)
        if not np.isfinite(resistance_ohm_m2):
            return 0.0
        # i = 2 i0 sinh(α (over − i R)): monotone in i, root between 0 and over / R
        hi = over / resistance_ohm_m2
        return brentq(lambda i: i - 2 * i0 * np.sinh(alpha * (over - i * resistance_ohm_m2)),
                      min(0.0, hi), max(0.0, hi), xtol=1e-15, rtol=1e-14)

    def balance(over):
        return (1 - fraction) * clean_current(over) + fraction * film_current(over) - mean_i

    top = np.arcsinh(mean_i / (2 * i0 * (1 - fraction))) / alpha + mean_i * (
        resistance_ohm_m2 if np.isfinite(resistance_ohm_m2) else 0.0) + 1e-6
    over = brentq(balance, 0.0, top, xtol=1e-16, rtol=1e-14)
    return film_current(over), clean_current(over), over


def initial_flux_ratio(resistance_ohm_m2, *, params=None, rate_mA_g=100.0, fraction=0.25,
                       theta=None) -> float:
    """Effective ``η = i_film / i_clean`` at the start of a charge (uniform occupancy).

    Parameters
    ----------
    resistance_ohm_m2 : float
        Film resistance on the arc.
    params : dict, optional
        Default :func:`~asymflux.model.parameters.nmc88_lun2025`.
    rate_mA_g : float
        Specific current.
    fraction : float
        Fraction of the perimeter under the film.
    theta : float, optional
        Occupancy of the surface (default: the set's initial occupancy).
    """
    from .parameters import nmc88_lun2025

    params = nmc88_lun2025() if params is None else params
    theta = float(params["Initial occupancy"]) if theta is None else float(theta)
    film, clean, _ = _split_at_uniform_state(params, rate_mA_g, fraction, resistance_ohm_m2, theta)
    return film / clean


def film_resistance_for_ratio(eta, *, params=None, rate_mA_g=100.0, fraction=0.25,
                              theta=None) -> float:
    """The film resistance (Ω m²) whose :func:`initial_flux_ratio` is ``eta`` (in (0, 1))."""
    from scipy.optimize import brentq

    if not 0 < eta < 1:
        raise ValueError(f"eta must be in (0, 1), got {eta!r}")
    kw = dict(params=params, rate_mA_g=rate_mA_g, fraction=fraction, theta=theta)
    hi = 1e-3
    while initial_flux_ratio(hi, **kw) > eta:
        hi *= 4
    return brentq(lambda r: initial_flux_ratio(r, **kw) - eta, 0.0, hi, xtol=1e-12, rtol=1e-12)


CALIBRATION_MINUTES = 10.0
"""The early charge over which a film's effective flux ratio is measured (the first 10 min
of a 100 mA/g charge: the Li-rich core of a clean particle lasts ~17 min)."""


CALIBRATION_MESH = (20, 48)
"""(n_radial, n_angular) of the disk on which :func:`effective_flux_ratio` is measured by
default and :data:`EFFECTIVE_RATIO_TABLE` was computed: the library's default mesh until
issue #29 made it 20 x 96 (on which the table's ratios are up to ~0.004 lower, e.g. 0.743
against 0.747 at 0.02 Ω m², 0.296 against 0.300 at 0.171 Ω m²). Kept so that the table, the
films for η ≈ 0.3 / 0.7 and the model explorer (20 x 48) keep one definition."""


def effective_flux_ratio(resistance_ohm_m2, *, params=None, mesh=None, rate_mA_g=100.0,
                         fraction=0.25, minutes=CALIBRATION_MINUTES) -> float:
    """The charge-weighted flux ratio of a film arc over the first ``minutes`` of a charge.

    The charge passed per unit length through an arc (centred at 180°, ``fraction`` of the
    perimeter, film ``resistance_ohm_m2``) over that through the clean surface
    (:meth:`~asymflux.model.result.Result.charge_weighted_flux_ratio`), sampled every 3 s.
    This is the kinetic surface's counterpart of the prescribed η: the prescribed model
    passes exactly η times the clean surface's charge through a blocked arc.
    """
    if mesh is None:
        from .mesh import disk_mesh

        mesh = disk_mesh(n_radial=CALIBRATION_MESH[0], n_angular=CALIBRATION_MESH[1])
    surface = Surface.kinetic([FilmArc(180.0, fraction, resistance_ohm_m2)])
    out = np.arange(0.05, minutes + 1e-9, 0.05)
    res = simulate(params, mesh, surface, [Charge(rate_mA_g, minutes=minutes)], output_minutes=out)
    return float(res.charge_weighted_flux_ratio(minutes)[0])


def film_resistance_for_effective_ratio(eta, **kwargs) -> float:
    """The film resistance (Ω m²) whose :func:`effective_flux_ratio` is ``eta`` (in (0, 1)).

    Keyword arguments are those of :func:`effective_flux_ratio` (default: a quarter, 100
    mA/g, the first 10 minutes, the default set, :data:`CALIBRATION_MESH`). About 10 simulations.
    """
    from scipy.optimize import brentq

    if not 0 < eta < 1:
        raise ValueError(f"eta must be in (0, 1), got {eta!r}")
    hi = 0.05
    while effective_flux_ratio(hi, **kwargs) > eta:
        hi *= 2
    return brentq(lambda r: effective_flux_ratio(r, **kwargs) - eta, 0.0, hi, xtol=1e-4, rtol=1e-3)


#: ``(R_film [Ω m²], effective flux ratio)`` of a quarter of the perimeter under the film,
#: charge-weighted over the first 10 min of a 100 mA/g charge of the default set on
#: :data:`CALIBRATION_MESH` (20 x 48):
#: :func:`effective_flux_ratio` at each resistance (``tests/model/test_kinetics.py`` checks
#: rows against it). :func:`film_resistance_for_eta` interpolates it.
EFFECTIVE_RATIO_TABLE = (
    (0.0005, 0.991), (0.001, 0.982), (0.002, 0.965), (0.004, 0.933), (0.01, 0.851),
    (0.02, 0.747), (0.0255, 0.700), (0.05, 0.557), (0.1, 0.405), (0.171, 0.300),
    (0.3, 0.210), (0.5, 0.148), (1.0, 0.089), (2.0, 0.051),
)


def film_resistance_for_eta(eta) -> float:
    """The film resistance (Ω m²) whose effective flux ratio is ``eta``, from the table.

    Interpolates log R_film linearly in η through :data:`EFFECTIVE_RATIO_TABLE` (a quarter,
    100 mA/g, the first 10 min, the default set): no simulation, so it is cheap enough for
    every arc of a demo field of view. :func:`film_resistance_for_effective_ratio` solves
    the same question by simulation for other fractions, rates or parameter sets.

    Parameters
    ----------
    eta : float
        Effective flux ratio, within the table's range (0.051 to 0.991).

    Returns
    -------
    float
        R_film, Ω m².
    """
    r, e = np.array(EFFECTIVE_RATIO_TABLE).T
    if not e[-1] <= eta <= e[0]:
        raise ValueError(f"eta must be within {e[-1]:g} to {e[0]:g} (the calibration table), "
                         f"got {eta!r}")
    return float(np.exp(np.interp(eta, e[::-1], np.log(r[::-1]))))
