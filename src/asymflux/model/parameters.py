r"""Parameter sets, PyBaMM-style: functions returning ``{"Name [unit]": value}``.

Units: SI except where the name says otherwise. Functions of occupancy θ (1 = fully
lithiated LiTMO2) are callables taking and returning arrays.

Mean surface flux from the specific current
-------------------------------------------
A cylinder of radius R and height L, density ρ, carries a specific current I (A/kg =
mA/g). Only its side surface (2πRL) is active, so the mean molar flux out of it is

.. math::  \bar j = \frac{I \rho \pi R^2 L}{F \, 2\pi R L} = \frac{I \rho R}{2F}
           \quad [\mathrm{mol\,m^{-2}\,s^{-1}}].

With the site concentration :math:`c_{max} = \rho / M` the boundary condition of
:math:`\partial_t\theta = \nabla\cdot(D\nabla\theta)` is :math:`D\,\partial_n\theta =
-\bar j\,w(\varphi)/\langle w\rangle / c_{max}`, and the mean occupancy falls at
:math:`d\bar\theta/dt = -2\bar j/(R c_{max}) = -I M / F`, independent of size and
shape. The solver uses this general form: the boundary faces carry
``(I M / F) · area · w_f / Σ(w_f ℓ_f)`` in occupancy·µm/s.
"""

from __future__ import annotations

import numpy as np

from .._validate import check_range

FARADAY_C_MOL = 96485.33212


class ConstantDiffusivity:
    """``D(θ) = D``; Kirchhoff potential ``Φ(θ) = D θ``."""

    def __init__(self, value_m2_s: float):
        self.value_m2_s = check_range("diffusivity_m2_s", value_m2_s, 0, None, low_inclusive=False)

    def __call__(self, theta):
        return np.full(np.shape(theta), self.value_m2_s)

    def kirchhoff(self, theta):
        return self.value_m2_s * np.asarray(theta, dtype=float)

    def __repr__(self):
        return f"ConstantDiffusivity({self.value_m2_s:g} m2/s)"


class LogisticDiffusivity:
    r"""Diffusivity that falls by orders of magnitude near full lithiation.

    .. math:: D(\theta) = D_{lo} + \frac{D_{hi} - D_{lo}}{1 + \exp((\theta-\theta_c)/w)}

    with the closed-form Kirchhoff potential :math:`\Phi = \int D\,d\theta`
    (a softplus), which the finite-volume fluxes use so that steep D(θ) fronts are
    resolved on coarse meshes.
    """

    def __init__(self, high_m2_s, low_m2_s, center, width):
        self.high_m2_s = check_range("diffusivity high_m2_s", high_m2_s, 0, None, low_inclusive=False)
        self.low_m2_s = check_range("diffusivity low_m2_s", low_m2_s, 0, self.high_m2_s,
                                    low_inclusive=False)
        self.center = check_range("diffusivity center", center, 0, 1)
        self.width = check_range("diffusivity width", width, 0, 1, low_inclusive=False)

    def __call__(self, theta):
        z = (np.asarray(theta, dtype=float) - self.center) / self.width
        return self.low_m2_s + (self.high_m2_s - self.low_m2_s) * _expit(-z)

    def kirchhoff(self, theta):
        th = np.asarray(theta, dtype=float)
        z = (th - self.center) / self.width
        return self.low_m2_s * th + (self.high_m2_s - self.low_m2_s) * (
            th - self.width * np.logaddexp(0.0, z)
        )

    def __repr__(self):
        return (f"LogisticDiffusivity(high={self.high_m2_s:g}, low={self.low_m2_s:g}, "
                f"center={self.center:g}, width={self.width:g})")


class DeepDelithiationDiffusivity:
    r"""A diffusivity ``base`` that falls again at deep delithiation (low θ).

    .. math:: D(\theta) = D_{base}(\theta) - (D_{hi} - D_{deep})\,S(\theta), \qquad
              S = 1 - h\Big(\frac{\theta - \theta_a}{\theta_b - \theta_a}\Big),
              \quad h(u) = 3u^2 - 2u^3 \text{ on } [0, 1]

    with ``D_hi`` the base's mid-SOC value (``base.high_m2_s``): ``D = D_deep`` below
    ``θ_a``, a smooth (C¹) step between ``θ_a`` and ``θ_b``, and **exactly** the base
    above ``θ_b`` (S = 0 there). The Kirchhoff potential is closed-form (a quartic in the
    step) and equal to the base's above ``θ_b``, so the finite-volume fluxes there are the
    base's to the last bit.

    Parameters
    ----------
    base : LogisticDiffusivity
        The diffusivity elsewhere; must be flat (``D_hi``) over ``[θ_a, θ_b]``: its step
        centre must lie more than 10 widths above ``θ_b``.
    deep_m2_s : float
        Diffusivity below ``θ_a``, in (0, ``D_hi``].
    start, end : float
        ``θ_a < θ_b``: the occupancies where the fall is complete and where it begins.
    """

    def __init__(self, base, deep_m2_s, start, end):
        if not hasattr(base, "high_m2_s") or not hasattr(base, "kirchhoff"):
            raise ValueError("DeepDelithiationDiffusivity needs a base diffusivity with high_m2_s "
                             "and a closed-form kirchhoff (e.g. LogisticDiffusivity)")
        self.base = base
        self.deep_m2_s = check_range("deep-delithiation diffusivity deep_m2_s", deep_m2_s, 0,
                                     base.high_m2_s, low_inclusive=False)
        self.start = check_range("deep-delithiation start (theta_a)", start, 0, 1)
        self.end = check_range("deep-delithiation end (theta_b)", end, self.start, 1,
                               low_inclusive=False)
        center, width = getattr(base, "center", None), getattr(base, "width", None)
        if center is not None and width is not None and center - 10 * width <= self.end:
            raise ValueError(
                f"deep-delithiation end (theta_b) {self.end:g} must lie more than 10 widths "
                f"below the base diffusivity's step (centre {center:g}, width {width:g})")

    def _step(self, theta):
        """``S(θ)`` and ``∫_θ^{θ_b} S`` (0 above ``θ_b``)."""
        th = np.asarray(theta, dtype=float)
        span = self.end - self.start
        u = np.clip((th - self.start) / span, 0.0, 1.0)
        s = 1.0 - u * u * (3.0 - 2.0 * u)
        integral = span * (0.5 - u + u**3 - 0.5 * u**4) + np.clip(self.start - th, 0.0, None)
        return s, integral

    def __call__(self, theta):
        s, _ = self._step(theta)
        return self.base(theta) - (self.base.high_m2_s - self.deep_m2_s) * s

    def kirchhoff(self, theta):
        _, integral = self._step(theta)
        return self.base.kirchhoff(theta) + (self.base.high_m2_s - self.deep_m2_s) * integral

    def __repr__(self):
        return (f"DeepDelithiationDiffusivity({self.base!r}, deep={self.deep_m2_s:g} below "
                f"theta={self.start:g}, base above theta={self.end:g})")


def _expit(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def ocv_nmc811_chen2020(theta):
    """Open-circuit potential of NMC811 vs Li/Li+ in V as a function of Li occupancy.

    Fit of Chen et al., J. Electrochem. Soc. 167, 080534 (2020), to GITT on the LG M50
    cell's LiNi0.8Mn0.1Co0.1O2 positive electrode (PyBaMM ``nmc_LGM50_ocp_Chen2020``);
    fitted for occupancies 0.27-0.91 and used here as the nearest sourced curve for
    LiNi0.88Mn0.05Co0.07O2. Monotonically decreasing in θ over [0.15, 1].
    """
    x = np.asarray(theta, dtype=float)
    # the three tanh terms in one call (the kinetic surface evaluates this at every step)
    t = np.tanh(_CHEN2020_K * (x[..., None] - _CHEN2020_X0))
    return 4.4875 - 0.8090 * x + t @ _CHEN2020_A


_CHEN2020_A = np.array([-0.0428, -17.7326, 17.5842])
_CHEN2020_K = np.array([18.5138, 15.7890, 15.9308])
_CHEN2020_X0 = np.array([0.5542, 0.3117, 0.3120])


def _ocv_nmc811_chen2020_slope(theta):
    """``(U(θ), dU/dθ)`` of :func:`ocv_nmc811_chen2020`, the slope analytic."""
    x = np.asarray(theta, dtype=float)
    t = np.tanh(_CHEN2020_K * (x[..., None] - _CHEN2020_X0))
    return (4.4875 - 0.8090 * x + t @ _CHEN2020_A,
            -0.8090 + (1.0 - t * t) @ (_CHEN2020_A * _CHEN2020_K))


ocv_nmc811_chen2020.value_and_slope = _ocv_nmc811_chen2020_slope
ocv_nmc811_chen2020.tanh_series = (4.4875, -0.8090, _CHEN2020_A, _CHEN2020_K, _CHEN2020_X0)
"""Its closed form ``(c0, c1, amp, rate, mid)``: ``U = c0 + c1 θ + Σ amp tanh(rate (θ − mid))``
(the kinetic surface evaluates it compiled at every right-hand side)."""


EXCHANGE_CURRENT_PREFACTOR_CHEN2020_A_M2 = 3.42e-6 * 1000.0**0.5 * 63104.0
"""k0 of ``i0 = k0 √(θ(1−θ))`` in A/m², from PyBaMM's Chen2020 NMC811 exchange current
(``nmc_LGM50_electrolyte_exchange_current_density_Chen2020``: ``m_ref c_e^0.5 c_s^0.5
(c_max − c_s)^0.5`` with m_ref = 3.42e-6 (A/m²)(m³/mol)^1.5, c_e = 1000 mol/m³ and
c_max = 63104 mol/m³ at 298.15 K): 6.82 A/m².

Chen's c_max, not this model's site concentration ρ/M (48 737 mol/m³ for
:func:`nmc88_lun2025`), on purpose: m_ref was fitted with it, and the film resistances are
calibrated with this k0. With ρ/M instead k0 would be 23 % lower (5.27 A/m²) and the
effective flux ratio of the default η ≈ 0.3 / 0.7 films (0.171 / 0.0255 Ω m²) 0.309 / 0.713
instead of 0.300 / 0.700 (``docs/calibration.md``)."""


# Verbrugge et al. 2017 multi-site multi-reaction (MSMR) model of NMC622 (positive electrode):
# occupancy fraction X_j, standard potential U0_j (V vs Li/Li+), ideality factor ω_j per gallery
MSMR_NMC622_VERBRUGGE2017 = {
    "X": np.array([0.13442, 0.3246, 0.21118, 0.32980]),
    "U0_V": np.array([3.62274, 3.72645, 3.90575, 4.22955]),
    "omega": np.array([0.96710, 1.39712, 3.505, 5.52757]),
}
r"""MSMR parameters of LiNi0.6Mn0.2Co0.2O2 (Verbrugge, Baker, Koch, Xiao & Gu, J. Electrochem.
Soc. 164, E3243 (2017), doi:10.1149/2.0341708jes; the positive electrode of PyBaMM's
``MSMR_Example`` set): :math:`\theta(U) = \sum_j X_j / (1 + \exp(F(U - U^0_j)/(\omega_j RT)))`,
defined for every θ in (0, 1)."""


def msmr_occupancy(voltage_V, *, params=None, temperature_K=298.15):
    """Occupancy θ(U) of an MSMR electrode (default :data:`MSMR_NMC622_VERBRUGGE2017`)."""
    p = MSMR_NMC622_VERBRUGGE2017 if params is None else params
    f = FARADAY_C_MOL / (8.314462618 * temperature_K)
    u = np.asarray(voltage_V, dtype=float)[..., None]
    return (p["X"] * _expit(-f * (u - p["U0_V"]) / p["omega"])).sum(axis=-1)


def ocv_msmr_nmc622_verbrugge2017_exact(theta):
    """θ -> U by inverting :func:`msmr_occupancy` (bisection to 1e-12 V; θ in (0, 1)).

    The reference :func:`ocv_nmc622_verbrugge2017` is fitted to; slow (60 bisections),
    for checks and plots, not for the solver."""
    th = np.asarray(theta, dtype=float)
    lo, hi = np.full(th.shape, 1.0), np.full(th.shape, 6.0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        high_theta = msmr_occupancy(mid) > th  # θ(U) falls with U: the root is above mid
        lo, hi = np.where(high_theta, mid, lo), np.where(high_theta, hi, mid)
    return 0.5 * (lo + hi)


def ocv_nmc622_verbrugge2017(theta):
    """Open-circuit potential of a Ni-rich NMC vs Li/Li+ in V, up to full lithiation.

    The MSMR curve of LiNi0.6Mn0.2Co0.2O2 of Verbrugge et al., J. Electrochem. Soc. 164,
    E3243 (2017) (:data:`MSMR_NMC622_VERBRUGGE2017`; PyBaMM ``MSMR_Example``), fitted by
    its authors to half-cell data over the whole occupancy range. Being a sum of Nernst-like
    galleries it is defined up to θ -> 1, where it falls logarithmically (dU/dθ = −0.51 V at
    θ = 0.9, −1.25 at 0.97, −4.8 at 0.99): the region where the particles start (θ0 = 0.97)
    and where the asymmetry forms, which the first default
    (:func:`ocv_nmc811_chen2020`, a fit for θ 0.27-0.91, straight above 0.7) only
    extrapolated. NMC622, not NMC811: the default's OCV until the NMC811 table
    :func:`ocv_nmc811_sturm2019` replaced it (issue #29); now the set
    :func:`nmc88_verbrugge2017_ocv` (``docs/calibration.md``).

    Evaluated as ``c0 + c1 θ + Σ amp tanh(rate (θ − mid))`` (five terms) least-squares
    fitted to the exact MSMR inversion (:func:`ocv_msmr_nmc622_verbrugge2017_exact`): within
    2 mV over θ 0.1-0.995 (1 mV over 0.3-0.99), slope within 5 % at θ 0.95-0.99; so the
    kinetic surface evaluates it compiled. Monotonically decreasing over [0, 1]; 3.41 V at
    θ = 1, where the MSMR curve itself diverges.
    """
    x = np.asarray(theta, dtype=float)
    t = np.tanh(_MSMR622_K * (x[..., None] - _MSMR622_X0))
    return _MSMR622_C0 + _MSMR622_C1 * x + t @ _MSMR622_A


_MSMR622_C0, _MSMR622_C1 = -2.32661, -34.0827
_MSMR622_A = np.array([53.1032, 0.0191692, 1.02947, 0.659736, -15.5521])
_MSMR622_K = np.array([0.608688, 14.1988, 3.67002, 6.66876, 95.2040])
_MSMR622_X0 = np.array([0.217026, 0.555539, 0.758732, 0.980300, 1.02913])


def _ocv_nmc622_verbrugge2017_slope(theta):
    """``(U(θ), dU/dθ)`` of :func:`ocv_nmc622_verbrugge2017`, the slope analytic."""
    x = np.asarray(theta, dtype=float)
    t = np.tanh(_MSMR622_K * (x[..., None] - _MSMR622_X0))
    return (_MSMR622_C0 + _MSMR622_C1 * x + t @ _MSMR622_A,
            _MSMR622_C1 + (1.0 - t * t) @ (_MSMR622_A * _MSMR622_K))


ocv_nmc622_verbrugge2017.value_and_slope = _ocv_nmc622_verbrugge2017_slope
ocv_nmc622_verbrugge2017.tanh_series = (_MSMR622_C0, _MSMR622_C1, _MSMR622_A, _MSMR622_K,
                                        _MSMR622_X0)


def _molar_mass_kg_mol(ni=0.88, mn=0.05, co=0.07) -> float:
    grams = 6.941 + ni * 58.6934 + mn * 54.938 + co * 58.9332 + 2 * 15.999
    return grams / 1000.0


def _with_capacity(params: dict) -> dict:
    m = params["Molar mass [kg.mol-1]"]
    params["Theoretical capacity [mA.h.g-1]"] = FARADAY_C_MOL / (m * 1000.0) / 3.6
    return params


def nmc88_lun2025() -> dict:
    """Default Ni-rich set: single-crystal LiNi0.88Mn0.05Co0.07O2 (Lun et al. 2025).

    - Molar mass from the composition (97.5 g/mol), theoretical capacity 275 mAh/g
      (one Li per formula unit).
    - Density 4750 kg/m³, the X-ray density of Ni-rich layered oxides
      (a = 2.87 Å, c = 14.2 Å, Z = 3; e.g. Noh et al., J. Power Sources 233, 121 (2013)).
    - Initial occupancy 0.97: the discharged state after formation keeps a few per cent
      of sites empty (first-cycle loss of Ni-rich NMC, Xu et al., Nat. Mater. 20, 84 (2021)).
    - ``D(θ)``: :class:`LogisticDiffusivity` from 2e-14 m²/s (1e-10 cm²/s, the mid-SOC
      GITT value of NMC811) down to 2e-17 m²/s (1e-13 cm²/s) near full lithiation, the
      three-orders-of-magnitude fall reported by GITT and used to explain the shrinking
      core (Xu et al., Joule 6, 2535 (2022); Märker et al., Chem. Mater. 31, 2545 (2019)).
      Centre (θ_c = 0.86) and width (0.01) were calibrated against two observations of
      the paper: at 100 mA/g an unblocked 2.4 µm disk keeps a Li-rich core for 17 min
      (paper, Fig. 2b: ~15 min, gone by ~25 min), and after 20 min at 70 mA/g the gradient
      relaxes within ~10 min of rest (Fig. 2e/f). See ``docs/calibration.md`` and
      ``tests/model/test_calibration.py``.
    - OCV(θ): :func:`ocv_nmc811_sturm2019`, the NMC811 of the LG MJ1 cell (Sturm et al.,
      J. Power Sources 412, 204 (2019), as tabulated in PyBaMM's Zhuo2023 set), tabulated up
      to θ = 1: the one sourced NMC811 curve found that covers full lithiation, where the
      particles start (θ0 = 0.97) and the asymmetry forms. Two other sourced curves are
      named sets: :func:`nmc88_verbrugge2017_ocv` (:func:`ocv_nmc622_verbrugge2017`, an
      MSMR curve of NMC622 defined up to full lithiation, the default until issue #29
      was closed) and :func:`nmc88_chen2020_ocv` (:func:`ocv_nmc811_chen2020`, a fit for
      θ 0.27-0.91 used linearly above; the default before that).
    - Exchange-current prefactor k0 = 6.82 A/m² (kinetic surfaces only,
      :mod:`asymflux.model.kinetics`: ``i0 = k0 √(θ(1−θ))``): PyBaMM's Chen2020 NMC811
      value, ``nmc_LGM50_electrolyte_exchange_current_density_Chen2020`` (Chen et al.,
      J. Electrochem. Soc. 167, 080534 (2020); m_ref = 3.42e-6 (A/m²)(m³/mol)^1.5 times
      √c_e and c_max, with c_e = 1000 mol/m³, c_max = 63104 mol/m³), at 298.15 K
      (:data:`EXCHANGE_CURRENT_PREFACTOR_CHEN2020_A_M2`).
    """
    return _with_capacity({
        "Molar mass [kg.mol-1]": _molar_mass_kg_mol(),
        "Density [kg.m-3]": 4750.0,
        "Initial occupancy": 0.97,
        "Diffusivity [m2.s-1]": LogisticDiffusivity(
            high_m2_s=2e-14, low_m2_s=2e-17, center=0.86, width=0.01
        ),
        "Open-circuit voltage [V]": ocv_nmc811_sturm2019,
        "Exchange-current prefactor [A.m-2]": EXCHANGE_CURRENT_PREFACTOR_CHEN2020_A_M2,
        "Temperature [K]": 298.15,
    })


def nmc88_chen2020_ocv() -> dict:
    """The default set with the OCV of the first default, :func:`ocv_nmc811_chen2020`
    (Chen et al. 2020).

    Chen's curve is a fit for θ 0.27-0.91; above θ ≈ 0.7 it is a straight line (dU/dθ =
    −0.81 V up to θ = 1), so where the particles start (θ0 = 0.97) it is an extrapolation.
    Kept to show how much Fig. 5c/d depend on the OCV near full lithiation
    (``docs/calibration.md``, notebook 01). The film resistances
    (:data:`~asymflux.model.calibration.FILM_RESISTANCE_ETA_0_3_OHM_M2`) are calibrated for
    the default set; with this one the same film passes a different share of the charge.
    """
    params = nmc88_lun2025()
    params["Open-circuit voltage [V]"] = ocv_nmc811_chen2020
    return params


def nmc88_verbrugge2017_ocv() -> dict:
    """The default set with the OCV of NMC622, :func:`ocv_nmc622_verbrugge2017`
    (Verbrugge et al. 2017, MSMR, defined up to full lithiation).

    The default's OCV between the first default (:func:`nmc88_chen2020_ocv`) and the
    NMC811 table (:func:`ocv_nmc811_sturm2019`): a sourced curve up to θ -> 1, but of NMC622.
    Kept to show how much Fig. 5c/d depend on the OCV near full lithiation
    (``docs/calibration.md``, notebook 01); the default's film resistances pass a different
    share of the charge with it (``docs/calibration.md`` gives the ones that restore η ≈ 0.3
    / 0.7).
    """
    params = nmc88_lun2025()
    params["Open-circuit voltage [V]"] = ocv_nmc622_verbrugge2017
    return params


DEEP_DELITHIATION_DIFFUSIVITY_M2_S = 2e-15
"""Diffusivity of the :func:`nmc88_h2h3_low_diffusivity` set below θ = 0.25 (1e-11 cm²/s,
ten times below the mid-SOC value)."""

DEEP_DELITHIATION_THETA = (0.25, 0.35)
"""Occupancies between which the :func:`nmc88_h2h3_low_diffusivity` diffusivity falls
(``θ_a``, ``θ_b``): 4.34 V and 4.18 V on :func:`ocv_nmc811_chen2020`, the H2-H3 region."""


def nmc88_h2h3_low_diffusivity() -> dict:
    """The default set with a diffusivity that falls again at deep delithiation (H2-H3).

    Identical to :func:`nmc88_lun2025` except ``D(θ)``
    (:class:`DeepDelithiationDiffusivity`): above θ = 0.35 it *is* the default's
    (same object, same numbers); between θ = 0.35 and 0.25 it falls smoothly to
    2e-15 m²/s (1e-11 cm²/s, :data:`DEEP_DELITHIATION_DIFFUSIVITY_M2_S`), ten times below
    the mid-SOC value, and stays there below θ = 0.25. θ = 0.35 / 0.30 / 0.25 are 4.18 /
    4.21 / 4.34 V on :func:`ocv_nmc811_chen2020`.

    Why D falls there (the shape, not the exact numbers):

    - Ni-rich layered oxides shrink along c at deep delithiation (the H2-H3 region of
      NMC811 near 4.2 V): below ~40 % Li in the Li layers the structure collapses,
      independently of Ni content and rate (Jousseaume et al., Energy Environ. Sci. 17
      (2024), doi:10.1039/D3EE04115H, operando XRD).
    - A smaller Li-slab spacing raises the Li hopping barrier, so D falls as the slab
      collapses (Van der Ven & Ceder, Electrochem. Solid-State Lett. 3, 301 (2000), for
      LixCoO2; recalled, not re-checked here); kinetic Monte Carlo on LiNiO2 finds Li
      transport limited at the end of charge, with the bottleneck in the H2/H3 region
      (arXiv:2311.06140).
    - GITT on NMC811 reports D falling again above ~4.1-4.2 V after its mid-SOC plateau
      (e.g. Märker et al., Chem. Mater. 31, 2545 (2019); recalled, not re-checked here).

    The depth (10×) and the position are a modelling choice inside the reported range,
    not a fit: GITT diffusivities of layered oxides differ by up to four orders of
    magnitude between studies (Kang & Chueh, J. Electrochem. Soc. 168, 120504 (2021)).
    The paper (Lun et al. 2025) gives no D(θ); its Fig. 5b gap between rates, larger than
    the default set's, is the motivation (``docs/calibration.md``).
    """
    params = nmc88_lun2025()
    start, end = DEEP_DELITHIATION_THETA
    params["Diffusivity [m2.s-1]"] = DeepDelithiationDiffusivity(
        params["Diffusivity [m2.s-1]"], DEEP_DELITHIATION_DIFFUSIVITY_M2_S, start, end)
    return params


def constant_diffusivity(diffusivity_m2_s: float = 1e-15, theta0: float = 0.97) -> dict:
    """Validation set: the Ni-rich material with a constant diffusivity.

    With D constant the problem is linear and has the series solutions used in the tests
    (J1 roots for uniform flux, J_m' roots for the cos mφ modes of a blocked arc).
    """
    params = nmc88_lun2025()
    params["Diffusivity [m2.s-1]"] = ConstantDiffusivity(diffusivity_m2_s)
    params["Initial occupancy"] = check_range("theta0", theta0, 0, 1, low_inclusive=False)
    return params


class TableOCV:
    """Open-circuit voltage interpolated from a measured table ``θ -> U`` (V vs Li).

    Monotone cubic (PCHIP: no overshoot between points, the table's own plateaus kept)
    inside the table, straight lines with the end slopes outside it (the model may sample
    θ a little beyond a table's range). :meth:`value_and_slope` gives the analytic slope
    (the kinetic surface's Jacobian uses it).

    Parameters
    ----------
    theta : (n,) array
        Occupancies in [0, 1], distinct, n >= 2 (any order).
    voltage_V : (n,) array
        OCV in V, finite, in (0, 10), not increasing with θ (a cathode's OCV falls as it
        lithiates).
    source : str
        Where the table came from (a file name), named in errors and ``repr``.
    """

    def __init__(self, theta, voltage_V, *, source="OCV table"):
        from scipy.interpolate import PchipInterpolator

        th, u = _check_table(theta, voltage_V, source=source, value_name="voltage_V",
                             low=0.0, high=10.0, unit="V")
        if np.any(np.diff(u) > 1e-9):
            k = int(np.argmax(np.diff(u) > 1e-9))
            raise ValueError(f"{source}: column voltage_V must not increase with theta (a "
                             f"cathode's OCV falls as it lithiates), but it rises from "
                             f"{u[k]:g} V at theta {th[k]:g} to {u[k + 1]:g} V at {th[k + 1]:g}")
        self.theta, self.voltage_V, self.source = th, u, source
        self._f = PchipInterpolator(th, u, extrapolate=False)
        self._df = self._f.derivative()
        self._ends = (th[0], th[-1], float(self._df(th[0])), float(self._df(th[-1])))

    def value_and_slope(self, theta):
        x = np.asarray(theta, dtype=float)
        lo, hi, s_lo, s_hi = self._ends
        xc = np.clip(x, lo, hi)
        u, du = self._f(xc), self._df(xc)
        u = np.where(x < lo, self.voltage_V[0] + s_lo * (x - lo), u)
        u = np.where(x > hi, self.voltage_V[-1] + s_hi * (x - hi), u)
        du = np.where(x < lo, s_lo, np.where(x > hi, s_hi, du))
        return u, du

    def __call__(self, theta):
        return self.value_and_slope(theta)[0]

    def __repr__(self):
        return (f"TableOCV({self.source}: {self.theta.size} points, theta "
                f"{self.theta[0]:g}-{self.theta[-1]:g})")


class TableDiffusivity:
    """Diffusivity interpolated from a measured table ``θ -> D`` (m²/s, e.g. GITT).

    Linear in log D between the points (D spans orders of magnitude), constant beyond the
    table's ends; the Kirchhoff potential is tabulated
    (:func:`kirchhoff_function`).

    Parameters
    ----------
    theta : (n,) array
        Occupancies in [0, 1], distinct, n >= 2 (any order).
    diffusivity_m2_s : (n,) array
        D in m²/s, finite, in (0, 1e-8].
    source : str
        Where the table came from, named in errors and ``repr``.
    """

    def __init__(self, theta, diffusivity_m2_s, *, source="diffusivity table"):
        th, d = _check_table(theta, diffusivity_m2_s, source=source,
                             value_name="diffusivity_m2_s", low=0.0, high=1e-8, unit="m2/s")
        self.theta, self.diffusivity_m2_s, self.source = th, d, source
        self._log_d = np.log(d)

    def __call__(self, theta):
        return np.exp(np.interp(np.asarray(theta, dtype=float), self.theta, self._log_d))

    def __repr__(self):
        return (f"TableDiffusivity({self.source}: {self.theta.size} points, theta "
                f"{self.theta[0]:g}-{self.theta[-1]:g})")



def _check_table(theta, values, *, source, value_name, low, high, unit):
    """``(theta, values)`` sorted by θ, or a ``ValueError`` naming the source, the column and
    what was expected."""
    th = np.asarray(theta, dtype=float).ravel() if np.ndim(theta) else np.array([])
    v = np.asarray(values, dtype=float).ravel() if np.ndim(values) else np.array([])
    if th.size != v.size:
        raise ValueError(f"{source}: columns theta and {value_name} must have the same length, "
                         f"got {th.size} and {v.size}")
    if th.size < 2:
        raise ValueError(f"{source}: needs at least 2 rows (theta, {value_name}), got {th.size}")
    for name, col in (("theta", th), (value_name, v)):
        if not np.all(np.isfinite(col)):
            k = int(np.argmax(~np.isfinite(col)))
            raise ValueError(f"{source}: column {name} must be finite numbers, row {k + 1} is "
                             f"{col[k]!r}")
    if np.any((th < 0) | (th > 1)):
        k = int(np.argmax((th < 0) | (th > 1)))
        raise ValueError(f"{source}: column theta must be occupancies in [0, 1], row {k + 1} "
                         f"is {th[k]:g}")
    if np.any((v <= low) | (v > high)):
        k = int(np.argmax((v <= low) | (v > high)))
        raise ValueError(f"{source}: column {value_name} must be in ({low:g}, {high:g}] {unit}, "
                         f"row {k + 1} is {v[k]:g}")
    order = np.argsort(th, kind="stable")
    th, v = th[order], v[order]
    if np.any(np.diff(th) <= 0):
        k = int(np.argmax(np.diff(th) <= 0))
        raise ValueError(f"{source}: column theta must not repeat a value, {th[k]:g} appears "
                         "twice")
    return th, v


def read_table_csv(path, value_column: str, *, source=None):
    """``(theta, values)`` from a CSV file with a header naming the columns ``theta`` and
    ``value_column`` (other columns ignored); a ``ValueError`` names the file and the
    column on a missing column or a cell that is not a number. ``path`` may also be an open
    file (an upload's bytes in ``io.BytesIO``): ``source`` is then the name the errors give
    (default: ``path``)."""
    import pandas as pd

    name = path if source is None else source
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: not a readable CSV table ({type(exc).__name__}: {exc})") from None
    table.columns = [str(c).strip() for c in table.columns]
    for col in ("theta", value_column):
        if col not in table.columns:
            raise ValueError(f"{name}: needs a column {col!r} (a header line 'theta,"
                             f"{value_column}'), found {list(table.columns)}")
    out = []
    for col in ("theta", value_column):
        values = pd.to_numeric(table[col], errors="coerce")
        bad = values.isna() & table[col].notna()
        if bad.any():
            k = int(np.argmax(bad.to_numpy()))
            raise ValueError(f"{name}: column {col!r} must hold numbers, row {k + 1} is "
                             f"{table[col].iloc[k]!r}")
        out.append(values.to_numpy(dtype=float))
    return out[0], out[1]


def parameters_from_tables(*, ocv=None, diffusivity=None, base="nmc88_lun2025") -> dict:
    """A parameter set from the user's own material tables.

    ``base`` (a set's name in :data:`PARAMETER_SETS` or a parameter dict) with its
    ``"Open-circuit voltage [V]"`` replaced by :class:`TableOCV` and/or its
    ``"Diffusivity [m2.s-1]"`` by :class:`TableDiffusivity`.

    Parameters
    ----------
    ocv : (theta, voltage_V) pair of arrays, path of a CSV file (columns ``theta,
        voltage_V``), a :class:`TableOCV`, or None (keep the base's)
    diffusivity : (theta, diffusivity_m2_s) pair, path of a CSV file (columns ``theta,
        diffusivity_m2_s``), a :class:`TableDiffusivity`, or None (keep the base's)
    base : str or dict

    Returns
    -------
    dict
        ``{"Name [unit]": value}``, as the other sets.

    >>> import numpy as np
    >>> th = np.linspace(0.2, 1.0, 81)
    >>> p = parameters_from_tables(ocv=(th, ocv_nmc811_chen2020(th)))
    >>> round(float(p["Open-circuit voltage [V]"](0.5)), 3)
    3.972
    """
    params = dict(get_parameter_set(base) if isinstance(base, str) else base)
    if ocv is not None:
        table = _table(ocv, TableOCV, "voltage_V")
        params["Open-circuit voltage [V]"] = table
        theta0 = params.get("Initial occupancy")
        if theta0 is not None and not table.theta[0] <= float(theta0) <= table.theta[-1]:
            import warnings

            warnings.warn(f"{table.source}: the table covers theta {table.theta[0]:g}-"
                          f"{table.theta[-1]:g}, but a particle starts at theta {float(theta0):g}: "
                          "the OCV there is the table's end continued in a straight line, where "
                          "the asymmetry forms; give points up to the initial occupancy",
                          UserWarning, stacklevel=2)
    if diffusivity is not None:
        params["Diffusivity [m2.s-1]"] = _table(diffusivity, TableDiffusivity,
                                                "diffusivity_m2_s")
    return params


def _table(spec, cls, value_column):
    if isinstance(spec, cls):
        return spec
    if isinstance(spec, (str, bytes)) or hasattr(spec, "__fspath__"):
        theta, values = read_table_csv(spec, value_column)
        return cls(theta, values, source=str(spec))
    try:
        theta, values = spec
    except (TypeError, ValueError):
        raise ValueError(f"a {value_column} table must be a CSV path or a (theta, "
                         f"{value_column}) pair of arrays, got {type(spec).__name__}") from None
    return cls(theta, values)

# Sampled from the NMC811 OCP table of PyBaMM's ``Zhuo2023`` parameter set
# (pybamm-team/PyBaMM, src/pybamm/input/parameters/lithium_ion/data/nmc811_18650_ocp_Zhuo2023.csv
# at commit 36daff8efd94b960700d22651840f493971638ed: "OCP data for LG INR18650-MJ1 NMC811
# cathode", 812 rows θ 0.215685-1, cited to Sturm et al. 2019; the same numbers as
# mzzhuo/PyBaMM's ``NMC811_Ghosh2021/NMC_OCP.csv``): every 0.02 in θ to 0.956, every 0.005
# to 0.995, then its last rows. Values as tabulated (V vs Li/Li+).
_STURM2019_THETA = np.array([
    0.215685, 0.235685, 0.255685, 0.275685, 0.295685, 0.315685, 0.335685, 0.355685,
    0.375685, 0.395685, 0.415685, 0.435685, 0.455685, 0.475685, 0.495685, 0.515685,
    0.535685, 0.555685, 0.575685, 0.595685, 0.615685, 0.635685, 0.655685, 0.675685,
    0.695685, 0.715685, 0.735685, 0.755685, 0.775685, 0.795685, 0.815685, 0.835685,
    0.855685, 0.875685, 0.895685, 0.915685, 0.935685, 0.945685, 0.955685, 0.960685,
    0.965685, 0.970685, 0.975685, 0.980685, 0.985685, 0.990685, 0.994685, 0.996000,
    0.997000, 0.998000, 0.999000, 0.999250, 0.999500, 0.999750, 0.999900, 1.000000])
_STURM2019_U_V = np.array([
    4.299909, 4.241753, 4.209522, 4.192768, 4.182539, 4.173192, 4.155421, 4.128462,
    4.098107, 4.068211, 4.041553, 4.017964, 3.996210, 3.973908, 3.949965, 3.924456,
    3.897679, 3.870735, 3.844952, 3.822110, 3.802827, 3.786365, 3.771788, 3.758308,
    3.745116, 3.731741, 3.717973, 3.704004, 3.688946, 3.673256, 3.656620, 3.639283,
    3.622152, 3.605920, 3.591494, 3.579484, 3.569071, 3.564111, 3.559247, 3.556606,
    3.553855, 3.551081, 3.548016, 3.544703, 3.540879, 3.536024, 3.529007, 3.524446,
    3.519015, 3.510180, 3.484231, 3.461844, 3.406766, 3.296864, 3.183146, 3.023636])
_STURM2019_TABLE = TableOCV(_STURM2019_THETA, _STURM2019_U_V,
                            source="Sturm et al. 2019 NMC811 OCP (PyBaMM Zhuo2023 table)")


def ocv_nmc811_sturm2019(theta):
    """Open-circuit potential of NMC811 vs Li/Li+ in V, tabulated up to θ = 1.

    The LG INR18650-MJ1 cell's LiNi0.8Mn0.1Co0.1O2 positive electrode of Sturm et al.,
    J. Power Sources 412, 204 (2019), doi:10.1016/j.jpowsour.2018.11.043, as tabulated in
    PyBaMM's ``Zhuo2023`` parameter set (``nmc811_18650_ocp_Zhuo2023.csv``: θ 0.2157-1,
    812 rows; Zhuo, Offer & Marinescu, J. Power Sources 556, 232461 (2023)) and earlier in
    the ``NMC811_Ghosh2021`` set of the same group (Ghosh et al., J. Electrochem. Soc. 168,
    020509 (2021)). LiionDB's entry for it (``NMC811_626_Sturm2019``, as its users quote
    it) describes the measurement as a C/30 quasi-OCV on charge in a three-electrode
    full cell. θ is the stoichiometry c/c_max of that table (c_max = 49 340 mol/m³ in the
    Zhuo2023 set, one Li per formula unit within 1 %); the full cell itself cycles the
    cathode between θ 0.22 and 0.94 (Zhuo2023), so the rows above ~0.94 probably come from the
    start of the charge, and the last ones (θ > 0.999: 3.48 -> 3.02 V) from its first
    minutes, where polarisation is not separable from the OCP. Not checked against the
    paper's text (no copy found): the numbers are the table's.

    56 of its rows (``_STURM2019_THETA``: every 0.02 to θ 0.956, every 0.005 to 0.995,
    then 8 of the last rows), joined by a monotone cubic (:class:`TableOCV`): the rows in
    between within 0.6 mV up to θ 0.9985, 2 mV above (``tests/model/test_parameters_ocv.py``).
    Flat near full lithiation: dU/dθ ≈ −0.5 to −0.7 V at θ 0.9-0.98 (average −0.63 V from
    0.85 to 0.97), −0.8 V at 0.985, −1.1 V at 0.99, −3 V at 0.995; steep only above that.
    The default set's OCV (:func:`nmc88_lun2025`; ``docs/calibration.md``). Not a closed
    form: the kinetic surface evaluates it through :meth:`TableOCV.value_and_slope` (NumPy)
    rather than compiled (one measurement: 0.22 against 0.17 s CPU for a 30 min kinetic run
    on 20 x 48 with the Verbrugge 2017 series).

    Above θ = 1 (no material state; a solver's trial step may get there) it stays at the
    last row's 3.024 V with zero slope, rather than a :class:`TableOCV`'s straight line:
    at the table's end slope (about −2e3 V per unit θ) a trial step to θ 1.05 met −95 V and
    the Butler-Volmer balance of a discharge failed before the step could be rejected.
    """
    return _sturm2019_value_and_slope(theta)[0]


def _sturm2019_value_and_slope(theta):
    """``(U(θ), dU/dθ)`` of :func:`ocv_nmc811_sturm2019`: the table's, held above θ = 1."""
    x = np.asarray(theta, dtype=float)
    u, du = _STURM2019_TABLE.value_and_slope(np.minimum(x, 1.0))
    return u, np.where(x > 1.0, 0.0, du)


ocv_nmc811_sturm2019.value_and_slope = _sturm2019_value_and_slope



PARAMETER_SETS = {
    "nmc88_lun2025": nmc88_lun2025,
    "nmc88_h2h3_low_diffusivity": nmc88_h2h3_low_diffusivity,
    "nmc88_chen2020_ocv": nmc88_chen2020_ocv,
    "nmc88_verbrugge2017_ocv": nmc88_verbrugge2017_ocv,
    "constant": constant_diffusivity,
}
"""Name -> function, for ``--params NAME``."""


def get_parameter_set(name: str) -> dict:
    """Look up a parameter set by name (see :data:`PARAMETER_SETS`)."""
    try:
        return PARAMETER_SETS[name]()
    except KeyError:
        raise ValueError(
            f"--params must be one of {sorted(PARAMETER_SETS)}, got {name!r}"
        ) from None


def validate(params: dict) -> dict:
    """Check a parameter dict; raise ``ValueError`` naming the bad entry."""
    required = ["Molar mass [kg.mol-1]", "Density [kg.m-3]", "Initial occupancy",
                "Diffusivity [m2.s-1]"]
    for key in required:
        if key not in params:
            raise ValueError(f"parameter set is missing {key!r}")
    check_range("Molar mass [kg.mol-1]", params["Molar mass [kg.mol-1]"], 0, None,
                low_inclusive=False)
    check_range("Density [kg.m-3]", params["Density [kg.m-3]"], 0, None, low_inclusive=False)
    check_range("Initial occupancy (theta0)", params["Initial occupancy"], 0, 1,
                low_inclusive=False)
    if not callable(params["Diffusivity [m2.s-1]"]):
        raise ValueError("'Diffusivity [m2.s-1]' must be a callable D(theta)")
    if params.get("Exchange-current prefactor [A.m-2]") is not None:  # 0 is no kinetics, not a default
        check_range("'Exchange-current prefactor [A.m-2]' (k0)",
                    params["Exchange-current prefactor [A.m-2]"], 0, None, low_inclusive=False)
    return _with_capacity(dict(params))


def scale_diffusivity(params: dict, factor: float) -> dict:
    """Return a copy of ``params`` with ``D(θ)`` multiplied by ``factor`` (> 0)."""
    factor = check_range("diffusivity scale", factor, 0, None, low_inclusive=False)
    out = dict(params)
    out["Diffusivity [m2.s-1]"] = _ScaledDiffusivity(params["Diffusivity [m2.s-1]"], factor)
    return out


class _ScaledDiffusivity:
    def __init__(self, base, factor):
        self.base, self.factor = base, factor

    def __call__(self, theta):
        return self.factor * self.base(theta)

    def kirchhoff(self, theta):
        return self.factor * kirchhoff_function(self.base)(theta)

    def __repr__(self):
        return f"{self.factor:g} x {self.base!r}"


def kirchhoff_function(diffusivity):
    """``Φ(θ) = ∫ D dθ`` for any ``D``: closed form when provided, else tabulated."""
    if hasattr(diffusivity, "kirchhoff"):
        return diffusivity.kirchhoff
    grid = np.linspace(-0.5, 1.5, 8001)
    d = np.asarray(diffusivity(grid), dtype=float)
    if d.shape != grid.shape or not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise ValueError("'Diffusivity [m2.s-1]' must return positive finite values for theta in [-0.5, 1.5]")
    phi = np.concatenate([[0.0], np.cumsum(0.5 * (d[1:] + d[:-1]) * np.diff(grid))])

    def tabulated(theta):
        th = np.asarray(theta, dtype=float)
        out = np.interp(th, grid, phi)
        out = np.where(th < grid[0], phi[0] + d[0] * (th - grid[0]), out)
        return np.where(th > grid[-1], phi[-1] + d[-1] * (th - grid[-1]), out)

    return tabulated
