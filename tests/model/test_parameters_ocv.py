"""The sourced OCV curves: the NMC811 table of Sturm et al. 2019 (PyBaMM Zhuo2023)."""

import numpy as np
import pytest

from asymflux import model
from asymflux.model import parameters as P

# Rows of PyBaMM's nmc811_18650_ocp_Zhuo2023.csv (commit 36daff8) that are *not* among the
# 56 rows ocv_nmc811_sturm2019 interpolates: θ -> U (V), as tabulated.
_SOURCE_ROWS_BETWEEN_NODES = {
    0.225685: 4.267354, 0.245685: 4.223006, 0.265685: 4.199877, 0.325685: 4.165775,
    0.345685: 4.142809, 0.505685: 3.937469, 0.605685: 3.812048, 0.705685: 3.738450,
    0.845685: 3.630763, 0.905685: 3.585278, 0.925685: 3.574116, 0.950685: 3.561666,
    0.968685: 3.552205, 0.983685: 3.542444, 0.992685: 3.533295, 0.995500: 3.526435,
    0.997500: 3.515344, 0.998500: 3.501785, 0.999200: 3.468013, 0.999600: 3.370132,
}


def test_sturm2019_ocv_reproduces_the_source_table():
    f = P.ocv_nmc811_sturm2019
    # the tabulated rows it is built on, exactly
    assert f(P._STURM2019_THETA) == pytest.approx(P._STURM2019_U_V, abs=1e-12)
    assert P._STURM2019_THETA[0] == pytest.approx(0.215685)
    assert P._STURM2019_THETA[-1] == 1.0
    # the table's other rows within 0.7 mV up to θ 0.9985, 2 mV in the steep last rows
    theta = np.array(list(_SOURCE_ROWS_BETWEEN_NODES))
    u = np.array(list(_SOURCE_ROWS_BETWEEN_NODES.values()))
    err = np.abs(f(theta) - u)
    assert err[theta <= 0.9985].max() < 7e-4
    assert err.max() < 2e-3
    # monotone, and the analytic slope is the curve's
    grid = np.linspace(0.0, 1.0, 2001)
    assert np.all(np.diff(f(grid)) <= 0)
    probe = np.array([0.5, 0.85, 0.9, 0.97])
    h = 1e-6
    _, slope = f.value_and_slope(probe)
    assert slope == pytest.approx((f(probe + h) - f(probe - h)) / (2 * h), rel=1e-4)


def test_sturm2019_ocv_is_flat_where_the_asymmetry_forms():
    """What docs/calibration.md says of it: flat from 0.85 to 0.97 like the NMC622 MSMR
    curve on average, flatter than it at θ0 = 0.97, steep only above 0.995."""
    f, v = P.ocv_nmc811_sturm2019, P.ocv_nmc622_verbrugge2017
    mean_slope = (f(0.97) - f(0.85)) / 0.12
    assert mean_slope == pytest.approx(-0.63, abs=0.01)
    assert (v(0.97) - v(0.85)) / 0.12 == pytest.approx(mean_slope, abs=0.03)
    _, s_f = f.value_and_slope(np.array([0.9, 0.97, 0.985, 0.9995]))
    _, s_v = v.value_and_slope(np.array([0.97]))
    assert -0.8 < s_f[0] < -0.4 and -0.8 < s_f[1] < -0.4
    assert s_v[0] < 2 * s_f[1]  # the NMC622 curve is twice as steep at θ0
    assert -1.5 < s_f[2] < -0.8
    assert s_f[3] < -100
    assert float(f(0.97)) == pytest.approx(3.5511, abs=1e-3)


def test_default_set_uses_the_sturm2019_table_and_the_named_sets_only_change_the_ocv():
    d = model.get_parameter_set("nmc88_lun2025")
    assert d["Open-circuit voltage [V]"] is P.ocv_nmc811_sturm2019
    for name, ocv in (("nmc88_verbrugge2017_ocv", P.ocv_nmc622_verbrugge2017),
                      ("nmc88_chen2020_ocv", P.ocv_nmc811_chen2020)):
        p = model.get_parameter_set(name)
        assert p["Open-circuit voltage [V]"] is ocv
        assert set(p) == set(d)
        for key in d:
            if key not in ("Open-circuit voltage [V]", "Diffusivity [m2.s-1]"):
                assert p[key] == d[key]
        th = np.linspace(0.2, 1.0, 9)
        assert p["Diffusivity [m2.s-1]"](th) == pytest.approx(d["Diffusivity [m2.s-1]"](th))


def test_verbrugge2017_set_needs_its_own_films():
    """docs/calibration.md: with the NMC622 MSMR curve the default η≈0.3 film passes an
    effective 0.262 only; 0.135 Ω m² restores 0.300, and 0.20 Ω m² with Chen 2020's curve
    (calibration.FILM_RESISTANCE_ETA_0_3_OTHER_OCV_OHM_M2)."""
    from asymflux.model import calibration

    p = model.get_parameter_set("nmc88_verbrugge2017_ocv")
    assert calibration.effective_flux_ratio(
        calibration.FILM_RESISTANCE_ETA_0_3_OHM_M2, params=p) == pytest.approx(0.262, abs=0.005)
    for name, r in calibration.FILM_RESISTANCE_ETA_0_3_OTHER_OCV_OHM_M2.items():
        p = model.get_parameter_set(name)
        assert calibration.effective_flux_ratio(r, params=p) == pytest.approx(0.300, abs=0.005)


def test_sturm2019_ocv_is_held_above_full_lithiation():
    """Above θ = 1 (a solver's trial step) the curve stays at its last row with zero slope:
    its end slope (~−2e3 V) would put θ 1.05 at −95 V; below 1 it is the table's."""
    u, du = P.ocv_nmc811_sturm2019.value_and_slope(np.array([0.999, 1.0, 1.05]))
    assert u[1] == pytest.approx(3.023636) and u[2] == u[1] and du[2] == 0.0
    assert du[1] < -1000
    assert float(P.ocv_nmc811_sturm2019(0.999)) == pytest.approx(u[0])
    assert u[0] == pytest.approx(P._STURM2019_TABLE(0.999))
